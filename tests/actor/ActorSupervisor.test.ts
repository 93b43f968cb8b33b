/**
 * The actor supervisor (core/actor): per-key order and exclusivity, passivation and
 * rehydration, supervision with restarts, backpressure, the resident-actor bound and graceful
 * shutdown. Everything timed runs on the TestClock.
 */
import { assert, describe, it } from "@effect/vitest"
import {
  Cause,
  Context,
  Deferred,
  Effect,
  Exit,
  Fiber,
  FiberId,
  FiberRef,
  Schedule,
  Scope,
  TestClock,
} from "effect"
import {
  type ActorBehaviour,
  ActorDefect,
  type ActorStats,
  type ActorSupervisor,
  type ActorSupervisorOptions,
  MailboxFull,
  make,
  SupervisorClosed,
} from "../../core/actor/mod.ts"

/** Let forked fibers run until `done` holds (no time passes). */
const eventually = (done: () => boolean) =>
  Effect.gen(function* () {
    for (let i = 0; i < 1_000 && !done(); i++) yield* Effect.yieldNow()
    assert.isTrue(done(), "condition not reached")
  })

const until = <K extends string, M, R, E>(
  actors: ActorSupervisor<K, M, R, E>,
  done: (stats: ActorStats) => boolean,
) =>
  Effect.gen(function* () {
    let stats = yield* actors.stats
    for (let i = 0; i < 1_000 && !done(stats); i++) {
      yield* Effect.yieldNow()
      stats = yield* actors.stats
    }
    assert.isTrue(done(stats), `stats never matched: ${JSON.stringify(stats)}`)
    return stats
  })

/**
 * A sequence counter per key persisted in a fake store: `receive` commits `seq + 1` and replies
 * with it; the test sees every load, receive and passivation.
 */
const counterStore = () => {
  const store = new Map<string, number>()
  const loads: Array<string> = []
  const received: Array<string> = []
  const passivated: Array<readonly [string, number]> = []
  const behaviour: ActorBehaviour<string, { seq: number }, string, number> = {
    load: (key) =>
      Effect.sync(() => {
        loads.push(key)
        return { seq: store.get(key) ?? 0 }
      }),
    receive: (state, message, key) =>
      Effect.sync(() => {
        received.push(`${key}:${message}`)
        store.set(key, state.seq + 1)
        return [{ seq: state.seq + 1 }, state.seq + 1] as const
      }),
    onPassivate: (key, state) => Effect.sync(() => passivated.push([key, state.seq])),
  }
  return { store, loads, received, passivated, behaviour }
}

/**
 * Counters (as `counterStore`) whose actors wait at `gate` before each message `held` picks
 * (every message by default), so a test can keep one in hand while others queue.
 */
const gatedCounters = (
  options: ActorSupervisorOptions = {},
  held: (message: string, key: string) => boolean = () => true,
) =>
  Effect.gen(function* () {
    const gate = yield* Deferred.make<void>()
    const t = counterStore()
    const actors = yield* make<string, { seq: number }, string, number>({
      ...t.behaviour,
      receive: (state, message, key) =>
        (held(message, key) ? Deferred.await(gate) : Effect.void).pipe(
          Effect.zipRight(t.behaviour.receive(state, message, key)),
        ),
    }, options)
    return { gate, t, actors }
  })

describe("ActorSupervisor", () => {
  it.scoped(
    "handles each key's messages in ask order, one at a time, with 1,000 keys interleaved",
    () =>
      Effect.gen(function* () {
        const seen = new Map<string, Array<number>>()
        const inFlight = new Set<string>()
        let overlap = false
        let concurrent = 0
        let maxConcurrent = 0
        const behaviour: ActorBehaviour<string, number, number, number> = {
          load: () => Effect.succeed(0),
          receive: (count, n, key) =>
            Effect.gen(function* () {
              if (inFlight.has(key)) overlap = true
              inFlight.add(key)
              maxConcurrent = Math.max(maxConcurrent, ++concurrent)
              yield* Effect.yieldNow()
              const list = seen.get(key) ?? []
              list.push(n)
              seen.set(key, list)
              inFlight.delete(key)
              concurrent--
              return [count + 1, count + 1] as const
            }),
        }
        // Capacity 2 < 5 rounds: later asks also queue for room, which must keep their order.
        const actors = yield* make(behaviour, { mailboxCapacity: 2 })
        const keys = Array.from({ length: 1_000 }, (_, i) => `conversation-${i}`)
        const fibers: Array<readonly [string, number, Fiber.RuntimeFiber<number, unknown>]> = []
        for (let round = 0; round < 5; round++) {
          for (const key of keys) {
            fibers.push([key, round, yield* Effect.fork(actors.ask(key, round))])
          }
        }
        for (const [key, round, fiber] of fibers) {
          assert.strictEqual(yield* Fiber.join(fiber), round + 1, `${key} round ${round}`)
        }
        for (const key of keys) {
          assert.deepStrictEqual(seen.get(key), [0, 1, 2, 3, 4], key)
        }
        assert.isFalse(overlap, "two messages of one key ran at once")
        assert.isAbove(maxConcurrent, 1, "different keys never ran concurrently")
        const stats = yield* actors.stats
        assert.strictEqual(stats.resident, 1_000)
        assert.strictEqual(stats.handled, 5_000)
        assert.strictEqual(stats.mailboxDepthTotal, 0)
      }),
  )

  it.scoped("passivates an actor idle for idleTimeout and rehydrates it from storage", () =>
    Effect.gen(function* () {
      const t = counterStore()
      const actors = yield* make(t.behaviour, { idleTimeout: "1 minute" })
      assert.strictEqual(yield* actors.ask("a", "x"), 1)
      assert.strictEqual(yield* actors.ask("a", "x"), 2)
      assert.deepStrictEqual(t.loads, ["a"])

      yield* TestClock.adjust("59 seconds")
      yield* Effect.yieldNow()
      assert.strictEqual((yield* actors.stats).resident, 1)
      yield* TestClock.adjust("2 seconds")
      const stats = yield* until(actors, (s) => s.resident === 0 && s.passivating === 0)
      assert.strictEqual(stats.passivations, 1)
      assert.deepStrictEqual(t.passivated, [["a", 2]])

      // The next message rehydrates it through `load`: the sequence continues.
      assert.strictEqual(yield* actors.ask("a", "x"), 3)
      assert.deepStrictEqual(t.loads, ["a", "a"])
      assert.strictEqual(t.store.get("a"), 3)
    }))

  it.scoped("a message keeps an actor resident: the idle clock restarts after each one", () =>
    Effect.gen(function* () {
      const t = counterStore()
      const actors = yield* make(t.behaviour, { idleTimeout: "1 minute" })
      yield* actors.ask("a", "x")
      yield* TestClock.adjust("40 seconds")
      yield* actors.ask("a", "x")
      yield* TestClock.adjust("40 seconds")
      yield* Effect.yieldNow()
      assert.strictEqual((yield* actors.stats).resident, 1)
      yield* TestClock.adjust("21 seconds")
      yield* until(actors, (s) => s.resident === 0)
      assert.deepStrictEqual(t.loads, ["a"])
    }))

  it.scoped(
    "a defect restarts only that actor: state reloaded, message handled again, order kept",
    () =>
      Effect.gen(function* () {
        const store = new Map<string, number>()
        const loads: Array<string> = []
        const handled: Array<string> = []
        let crashes = 0
        const behaviour: ActorBehaviour<string, { seq: number }, string, number> = {
          load: (key) =>
            Effect.sync(() => {
              loads.push(key)
              return { seq: store.get(key) ?? 0 }
            }),
          receive: (state, message, key) =>
            Effect.sync(() => {
              // Mutates the in-memory state before crashing: the restart must not keep it.
              state.seq++
              if (message === "crash-once" && crashes++ === 0) throw new Error("boom")
              store.set(key, state.seq)
              handled.push(`${key}:${message}:${state.seq}`)
              return [state, state.seq] as const
            }),
        }
        const actors = yield* make(behaviour, {
          restart: Schedule.spaced("1 second").pipe(Schedule.intersect(Schedule.recurs(3))),
        })
        yield* actors.ask("a", "first")
        yield* actors.ask("b", "first")
        const crashing = yield* Effect.fork(actors.ask("a", "crash-once"))
        const after = yield* Effect.fork(actors.ask("a", "after"))
        yield* until(actors, (s) => s.restarts === 1)

        // While "a" waits for its restart, "b" is untouched and keeps working.
        assert.strictEqual(yield* actors.ask("b", "second"), 2)
        assert.isNull(crashing.unsafePoll())

        yield* TestClock.adjust("1 second")
        assert.strictEqual(yield* Fiber.join(crashing), 2)
        assert.strictEqual(yield* Fiber.join(after), 3)
        assert.deepStrictEqual(handled, [
          "a:first:1",
          "b:first:1",
          "b:second:2",
          "a:crash-once:2",
          "a:after:3",
        ])
        assert.deepStrictEqual(loads, ["a", "b", "a"])
        const stats = yield* actors.stats
        assert.strictEqual(stats.restarts, 1)
        assert.strictEqual(stats.defects, 0)
      }),
  )

  it.scoped("an exhausted restart schedule fails that ask with ActorDefect; the next one runs", () =>
    Effect.gen(function* () {
      const t = counterStore()
      const actors = yield* make<string, { seq: number }, string, number>({
        ...t.behaviour,
        receive: (state, message, key) =>
          message === "poison"
            ? Effect.dieMessage(`cannot handle ${key}`)
            : t.behaviour.receive(state, message, key),
      }, { restart: Schedule.spaced("1 second").pipe(Schedule.intersect(Schedule.recurs(2))) })
      const poisoned = yield* Effect.fork(actors.ask("a", "poison"))
      const next = yield* Effect.fork(actors.ask("a", "ok"))
      yield* until(actors, (s) => s.restarts === 1)
      yield* TestClock.adjust("1 second")
      yield* until(actors, (s) => s.restarts === 2)
      yield* TestClock.adjust("1 second")

      const exit = yield* Fiber.await(poisoned)
      assert.isTrue(Exit.isFailure(exit))
      const error = Exit.isFailure(exit) ? Cause.failureOption(exit.cause) : undefined
      assert.isTrue(error?._tag === "Some" && error.value instanceof ActorDefect)
      const defect = (error as { value: ActorDefect }).value
      assert.strictEqual(defect.key, "a")
      assert.strictEqual(defect.restarts, 2)
      assert.include(defect.message, "cannot handle a")
      assert.strictEqual(yield* Fiber.join(next), 1)
      assert.strictEqual((yield* actors.stats).defects, 1)
      // Three loads for the poison (first try, two restarts) and one for the fresh start after.
      assert.deepStrictEqual(t.loads, ["a", "a", "a", "a"])
    }))

  it.scoped("a typed failure goes back to the asker; one declared in restartOn restarts", () =>
    Effect.gen(function* () {
      class Invalid {
        readonly _tag = "Invalid"
      }
      class StorageDown {
        readonly _tag = "StorageDown"
      }
      let storageDown = 1
      let loads = 0
      const actors = yield* make<string, number, string, number, Invalid | StorageDown>({
        load: () =>
          Effect.suspend(() => {
            loads++
            return storageDown-- > 0 ? Effect.fail(new StorageDown()) : Effect.succeed(0)
          }),
        receive: (n, message) =>
          message === "invalid" ? Effect.fail(new Invalid()) : Effect.succeed([n + 1, n + 1]),
        restartOn: (e) => e._tag === "StorageDown",
      }, { restart: Schedule.spaced("1 second") })
      const first = yield* Effect.fork(actors.ask("a", "ok"))
      yield* until(actors, (s) => s.restarts === 1)
      yield* TestClock.adjust("1 second")
      assert.strictEqual(yield* Fiber.join(first), 1)
      const invalid = yield* Effect.flip(actors.ask("a", "invalid"))
      assert.strictEqual(invalid._tag, "Invalid")
      assert.strictEqual(yield* actors.ask("a", "ok"), 2)
      assert.strictEqual(loads, 2)
    }))

  it.scoped("a full mailbox suspends asks in order and holds no more than its capacity", () =>
    Effect.gen(function* () {
      const { gate, t, actors } = yield* gatedCounters({ mailboxCapacity: 2 })
      const fibers: Array<Fiber.RuntimeFiber<number, unknown>> = []
      for (let i = 0; i < 5; i++) fibers.push(yield* Effect.fork(actors.ask("a", `m${i}`)))
      const stats = yield* until(actors, (s) => s.waitingForMailbox === 3)
      assert.strictEqual(stats.mailboxDepthMax, 2)
      assert.strictEqual(stats.mailboxDepthTotal, 2)
      yield* Deferred.succeed(gate, undefined)
      for (let i = 0; i < 5; i++) assert.strictEqual(yield* Fiber.join(fibers[i]!), i + 1)
      assert.deepStrictEqual(t.received, ["a:m0", "a:m1", "a:m2", "a:m3", "a:m4"])
    }))

  it.scoped("an ask waiting longer than mailboxTimeout fails with MailboxFull, unsent", () =>
    Effect.gen(function* () {
      const { gate, t, actors } = yield* gatedCounters({
        mailboxCapacity: 1,
        mailboxTimeout: "1 second",
      })
      const inHand = yield* Effect.fork(actors.ask("a", "in-hand"))
      const waiting = yield* Effect.fork(actors.ask("a", "too-many"))
      yield* until(actors, (s) => s.waitingForMailbox === 1)
      yield* TestClock.adjust("1 second")
      const error = yield* Effect.flip(Fiber.join(waiting))
      assert.instanceOf(error, MailboxFull)
      assert.strictEqual((yield* actors.stats).waitingForMailbox, 0)
      yield* Deferred.succeed(gate, undefined)
      assert.strictEqual(yield* Fiber.join(inHand), 1)
      assert.deepStrictEqual(t.received, ["a:in-hand"])
    }))

  it.scoped("an interrupted ask the actor has not taken yet is withdrawn", () =>
    Effect.gen(function* () {
      const { gate, t, actors } = yield* gatedCounters({ mailboxCapacity: 2 })
      const first = yield* Effect.fork(actors.ask("a", "first"))
      const queued = yield* Effect.fork(actors.ask("a", "queued"))
      const overflow = yield* Effect.fork(actors.ask("a", "overflow"))
      const last = yield* Effect.fork(actors.ask("a", "last"))
      yield* until(actors, (s) => s.waitingForMailbox === 2)
      yield* Fiber.interrupt(queued)
      yield* Fiber.interrupt(overflow)
      yield* Deferred.succeed(gate, undefined)
      assert.strictEqual(yield* Fiber.join(first), 1)
      assert.strictEqual(yield* Fiber.join(last), 2)
      assert.deepStrictEqual(t.received, ["a:first", "a:last"])
    }))

  it.scoped("beyond maxActors the least recently used idle actor is passivated", () =>
    Effect.gen(function* () {
      const t = counterStore()
      const actors = yield* make(t.behaviour, { maxActors: 3 })
      for (const key of ["a", "b", "c"]) yield* actors.ask(key, "x")
      yield* actors.ask("a", "x") // "b" is now the least recently used
      yield* actors.ask("d", "x")
      yield* eventually(() => t.passivated.length === 1)
      assert.deepStrictEqual(t.passivated, [["b", 1]])
      assert.strictEqual((yield* actors.stats).resident, 3)
      assert.strictEqual(yield* actors.ask("b", "x"), 2) // rehydrated, evicting "c"
      yield* eventually(() => t.passivated.length === 2)
      assert.deepStrictEqual(t.passivated[1], ["c", 1])
    }))

  it.scoped("when every resident actor is busy a new key waits for one to become idle", () =>
    Effect.gen(function* () {
      const gates = new Map([["a", yield* Deferred.make<void>()], [
        "b",
        yield* Deferred.make<void>(),
      ]])
      const t = counterStore()
      const actors = yield* make<string, { seq: number }, string, number>({
        ...t.behaviour,
        receive: (state, message, key) =>
          (gates.get(key) ? Deferred.await(gates.get(key)!) : Effect.void).pipe(
            Effect.zipRight(t.behaviour.receive(state, message, key)),
          ),
      }, { maxActors: 2 })
      const a = yield* Effect.fork(actors.ask("a", "x"))
      const b = yield* Effect.fork(actors.ask("b", "x"))
      const c = yield* Effect.fork(actors.ask("c", "x"))
      const stats = yield* until(actors, (s) => s.busy === 2 && s.waitingForSlot === 1)
      assert.strictEqual(stats.resident, 2)
      assert.notInclude(t.loads, "c")
      yield* Deferred.succeed(gates.get("a")!, undefined)
      assert.strictEqual(yield* Fiber.join(a), 1)
      assert.strictEqual(yield* Fiber.join(c), 1)
      assert.deepStrictEqual(t.passivated, [["a", 1]])
      yield* Deferred.succeed(gates.get("b")!, undefined)
      assert.strictEqual(yield* Fiber.join(b), 1)
      assert.strictEqual((yield* actors.stats).resident, 2)
    }))

  it.effect(
    "shutdown refuses new messages, finishes the one in hand and passivates everyone",
    () =>
      Effect.gen(function* () {
        const scope = yield* Scope.make()
        const { gate, t, actors } = yield* gatedCounters({}, (_, key) => key === "slow").pipe(
          Scope.extend(scope),
        )
        for (const key of ["a", "b", "c"]) yield* actors.ask(key, "x")
        const inHand = yield* Effect.fork(actors.ask("slow", "in-hand"))
        const queued = yield* Effect.fork(actors.ask("slow", "queued"))
        yield* until(actors, (s) => s.mailboxDepthTotal === 2)

        const closing = yield* Effect.fork(Scope.close(scope, Exit.void))
        yield* Effect.yieldNow()
        const refused = yield* Effect.flip(actors.ask("a", "x"))
        assert.instanceOf(refused, SupervisorClosed)
        assert.isNull(closing.unsafePoll(), "shutdown did not wait for the message in hand")

        yield* Deferred.succeed(gate, undefined)
        yield* Fiber.join(closing)
        assert.strictEqual(yield* Fiber.join(inHand), 1)
        assert.instanceOf(yield* Effect.flip(Fiber.join(queued)), SupervisorClosed)
        assert.deepStrictEqual(
          [...t.passivated].sort(),
          [["a", 1], ["b", 1], ["c", 1], ["slow", 1]],
        )
        assert.deepStrictEqual(t.received, ["a:x", "b:x", "c:x", "slow:in-hand"])
      }),
  )

  it.effect("shutdown interrupts an actor still busy after shutdownTimeout and cuts restart delays", () =>
    Effect.gen(function* () {
      const t = counterStore()
      const scope = yield* Scope.make()
      const actors = yield* make<string, { seq: number }, string, number>({
        ...t.behaviour,
        receive: (state, message, key) =>
          message === "hang"
            ? Effect.never
            : message === "crash"
            ? Effect.dieMessage("crash")
            : t.behaviour.receive(state, message, key),
      }, { shutdownTimeout: "5 seconds", restart: Schedule.spaced("1 hour") }).pipe(
        Scope.extend(scope),
      )
      yield* actors.ask("idle", "x")
      const hung = yield* Effect.fork(actors.ask("hung", "hang"))
      const crashing = yield* Effect.fork(actors.ask("crashing", "crash"))
      yield* until(actors, (s) => s.restarts === 1 && s.busy === 2)

      const closing = yield* Effect.fork(Scope.close(scope, Exit.void))
      // The crashing actor stops waiting for its restart at once and fails with the defect.
      assert.instanceOf(yield* Effect.flip(Fiber.join(crashing)), ActorDefect)
      assert.isNull(closing.unsafePoll())
      yield* TestClock.adjust("5 seconds")
      yield* Fiber.join(closing)
      assert.instanceOf(yield* Effect.flip(Fiber.join(hung)), SupervisorClosed)
      // Only the actor whose state is sound is passivated with it.
      assert.deepStrictEqual(t.passivated, [["idle", 1]])
    }))

  it.scoped(
    "an idle actor's message runs in the asker's fiber; asks arriving meanwhile queue behind it",
    () =>
      Effect.gen(function* () {
        const gate = yield* Deferred.make<void>()
        const ranIn: Array<string> = []
        const t = counterStore()
        const actors = yield* make<string, { seq: number }, string, number>({
          ...t.behaviour,
          receive: (state, message, key) =>
            Effect.gen(function* () {
              ranIn.push(`${message}:${FiberId.threadName(yield* Effect.fiberId)}`)
              if (message === "slow") yield* Deferred.await(gate)
              return yield* t.behaviour.receive(state, message, key)
            }),
        }, { mailboxCapacity: 2 })
        yield* actors.ask("a", "first")
        const asker = yield* Effect.fork(actors.ask("a", "slow"))
        yield* until(actors, (s) => s.busy === 1)
        const second = yield* Effect.fork(actors.ask("a", "second"))
        const third = yield* Effect.fork(actors.ask("a", "third"))
        yield* until(actors, (s) => s.mailboxDepthTotal === 2 && s.waitingForMailbox === 1)
        yield* Deferred.succeed(gate, undefined)
        assert.deepStrictEqual(
          [yield* Fiber.join(asker), yield* Fiber.join(second), yield* Fiber.join(third)],
          [2, 3, 4],
        )
        assert.deepStrictEqual(t.received, ["a:first", "a:slow", "a:second", "a:third"])
        // The slow one ran in its asker's fiber; the two queued behind it in a drain fiber.
        assert.strictEqual(ranIn[1], `slow:${FiberId.threadName(asker.id())}`)
        assert.notStrictEqual(ranIn[2], `second:${FiberId.threadName(second.id())}`)
        const stats = yield* actors.stats
        assert.strictEqual(stats.busy, 0)
        assert.strictEqual(stats.handled, 4)
      }),
  )

  it.scoped("an asker interrupted while its idle actor runs the message does not cut it short", () =>
    Effect.gen(function* () {
      const { gate, t, actors } = yield* gatedCounters({}, (message) => message === "slow")
      yield* actors.ask("a", "first")
      const asker = yield* Effect.fork(actors.ask("a", "slow"))
      yield* until(actors, (s) => s.busy === 1)
      yield* Fiber.interruptFork(asker)
      yield* Effect.yieldNow()
      assert.isNull(asker.unsafePoll(), "the message in hand was cut short")
      yield* Deferred.succeed(gate, undefined)
      assert.isTrue(Exit.isInterrupted(yield* Fiber.await(asker)))
      assert.deepStrictEqual(t.received, ["a:first", "a:slow"])
      assert.strictEqual(yield* actors.ask("a", "next"), 3)
    }))

  it.scoped(
    "in the asker's fiber the actor sees the supervisor's services and log annotations",
    () =>
      Effect.gen(function* () {
        class Greeting extends Context.Tag("test/Greeting")<Greeting, string>() {}
        const seen: Array<[string, Record<string, unknown>]> = []
        const annotationsNow = FiberRef.get(FiberRef.currentLogAnnotations).pipe(
          Effect.map((map) => Object.fromEntries(map)),
        )
        const actors = yield* make<string, number, string, number, never, Greeting>({
          load: () => Effect.succeed(0),
          receive: (n) =>
            Effect.gen(function* () {
              seen.push([yield* Greeting, yield* annotationsNow])
              return [n + 1, n + 1] as const
            }),
        }, { name: "greeter" }).pipe(
          Effect.provideService(Greeting, "the supervisor's"),
          Effect.annotateLogs({ node: "n1" }),
        )
        const askAs = (who: string) =>
          Effect.gen(function* () {
            const reply = yield* actors.ask("a", who)
            // The asker's own services and annotations are back.
            return [reply, yield* Greeting, yield* annotationsNow] as const
          }).pipe(Effect.provideService(Greeting, who), Effect.annotateLogs({ asker: who }))
        yield* askAs("first asker") // a new key: its drain fiber
        const [reply, greeting, annotations] = yield* askAs("second asker") // idle: inline
        assert.strictEqual(reply, 2)
        assert.strictEqual(greeting, "second asker")
        assert.deepStrictEqual(annotations, { asker: "second asker" })
        const expected = { node: "n1", actor: "greeter", key: "a" }
        assert.deepStrictEqual(seen, [
          ["the supervisor's", expected],
          ["the supervisor's", expected],
        ])
      }),
  )

  it.scoped("tell enqueues without waiting for the reply, in order with asks", () =>
    Effect.gen(function* () {
      const t = counterStore()
      const actors = yield* make(t.behaviour)
      yield* actors.tell("a", "told-1")
      yield* actors.tell("a", "told-2")
      assert.strictEqual(yield* actors.ask("a", "asked"), 3)
      assert.deepStrictEqual(t.received, ["a:told-1", "a:told-2", "a:asked"])
    }))
})
