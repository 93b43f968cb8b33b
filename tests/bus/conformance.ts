/**
 * The bus conformance suite: the behaviours every `BusShape` keeps (see the header of
 * core/bus/Bus.ts), written once and run against each backend by its own test file.
 *
 * A backend hands the suite a `BusSetup`: a scoped effect that prepares fresh, isolated storage
 * (a namespace, a database file or schema) and can open any number of bus instances over it.
 * Opening a second instance over the same storage is how the suite restarts "the process".
 *
 * Everything runs in real time with short durations (ack waits of about a second), so both
 * backends run the very same tests; timing assertions leave slack for a loaded machine but never
 * accept a redelivery sooner than the contract allows.
 */
import { assert, it } from "@effect/vitest"
import {
  Chunk,
  Data,
  Deferred,
  Duration,
  Effect,
  Exit,
  Fiber,
  Option,
  Schedule,
  Scope,
  Stream,
} from "effect"
import {
  BusHeader,
  type BusMessage,
  type BusShape,
  type ConsumerSpec,
  type DeadLetter,
  type DeadLetterQuery,
  Disposition,
  type Handler,
  type ReadOptions,
  type StreamSpec,
} from "../../core/bus/Bus.ts"
import type { BusBackend } from "../support/BusBackend.ts"
import { holdingConsumer } from "../support/HoldingConsumer.ts"

export interface BusUnderTest {
  /** The backend and its storage, as a child process would open it. */
  readonly backend: BusBackend
  /**
   * Open a bus instance over this test's namespace and storage. Every call opens a new instance
   * over the same data, as a restarted process would; it closes with the enclosing scope.
   */
  readonly open: Effect.Effect<BusShape, unknown, Scope.Scope>
}

/** Prepare fresh storage for one test; cleaning it up is a finalizer of the same scope. */
export type BusSetup = Effect.Effect<BusUnderTest, unknown, Scope.Scope>

// ---------------------------------------------------------------------------------------------
// Test vocabulary

const orders: StreamSpec = { name: "orders", subjects: ["orders.>"] }

const encoder = new TextEncoder()
const decoder = new TextDecoder()
const bytes = (text: string): Uint8Array => encoder.encode(text)
const text = (data: Uint8Array): string => decoder.decode(data)

const now = Effect.sync(() => performance.now())

/** Timer slack: an event measured in this process may look up to this much early. */
const SLACK_MS = 25

class HandlerFailed extends Data.TaggedError("HandlerFailed")<{ readonly message: string }> {}

/** One handler invocation as the test saw it. */
interface Attempt {
  readonly message: BusMessage
  readonly body: string
  readonly startedAt: number
  endedAt: number | undefined
}

/** Every handler invocation of one consumer, in the order they started. */
class Attempts {
  readonly all: Array<Attempt> = []
  get size(): number {
    return this.all.length
  }
  /** Attempts whose handler returned (whatever it decided). */
  get finished(): Array<Attempt> {
    return this.all.filter((a) => a.endedAt !== undefined)
  }
  of(id: string): Array<Attempt> {
    return this.all.filter((a) => a.message.id === id)
  }
  ids(): Array<string> {
    return this.all.map((a) => a.message.id)
  }
  /** A handler that records each attempt, then runs `decide` (default: acknowledge). */
  handler<E = never, R = never>(
    decide: (message: BusMessage, attempt: Attempt) => Effect.Effect<Disposition | void, E, R> =
      () => Effect.void,
  ): Handler<E, R> {
    return (message) =>
      Effect.suspend(() => {
        const attempt: Attempt = {
          message,
          body: text(message.data),
          startedAt: performance.now(),
          endedAt: undefined,
        }
        this.all.push(attempt)
        return decide(message, attempt).pipe(
          Effect.tap(() =>
            Effect.sync(() => {
              attempt.endedAt = performance.now()
            })
          ),
          Effect.tapErrorCause(() =>
            Effect.sync(() => {
              attempt.endedAt = performance.now()
            })
          ),
        )
      })
  }
}

/** Wait until `done()` holds, polling; fail with `what()` (evaluated late, so it can show state). */
const eventually = (
  what: () => string,
  done: () => boolean,
  within: Duration.DurationInput = "15 seconds",
) =>
  Effect.suspend(() => (done() ? Effect.void : Effect.fail("not yet" as const))).pipe(
    Effect.retry(Schedule.spaced("10 millis")),
    Effect.timeoutFail({
      duration: within,
      onTimeout: () => new Error(`timed out after ${Duration.format(within)} waiting: ${what()}`),
    }),
  )

/** List dead letters until `done` holds for the list. */
const deadLettersWhen = (
  bus: BusShape,
  query: DeadLetterQuery,
  done: (dls: ReadonlyArray<DeadLetter>) => boolean,
) => {
  let last: ReadonlyArray<DeadLetter> = []
  return bus.deadLetters.list(query).pipe(
    Effect.tap((dls) => Effect.sync(() => (last = dls))),
    Effect.filterOrFail(done, () => "not yet" as const),
    Effect.retry({ schedule: Schedule.spaced("50 millis"), while: (e) => e === "not yet" }),
    Effect.timeoutFail({
      duration: "15 seconds",
      onTimeout: () =>
        new Error(`timed out waiting for dead letters; last listed ${JSON.stringify(last)}`),
    }),
  )
}

/** Run `effect`, expecting it to fail with the tagged error `tag`; report anything else plainly. */
const failsWith = <A, E extends { readonly _tag: string }>(
  what: string,
  effect: Effect.Effect<A, E>,
  tag: E["_tag"],
) =>
  Effect.either(effect).pipe(
    Effect.map((result) => {
      if (result._tag === "Right") {
        assert.fail(`${what}: expected ${tag}, but it succeeded`)
      } else {
        const e = result.left as E & { readonly message?: unknown }
        assert.strictEqual(e._tag, tag, `${what}: ${e._tag}: ${String(e.message)}`)
      }
    }),
  )

/** Let time pass so that anything the bus should not deliver would have arrived. */
const quietFor = (duration: Duration.DurationInput) => Effect.sleep(duration)

/** Run `consume` in its own scope; closing the returned scope stops the consumer. */
const consumeIn = <E, R>(bus: BusShape, spec: ConsumerSpec, handler: Handler<E, R>) =>
  Effect.gen(function* () {
    const scope = yield* Scope.make()
    yield* bus.consume(spec, handler).pipe(Scope.extend(scope))
    return scope
  })

const publishAll = (bus: BusShape, ids: ReadonlyArray<string>, subject = "orders.created") =>
  Effect.forEach(ids, (id) => bus.publish(subject, bytes(`body of ${id}`), { id }), {
    discard: true,
  })

const range = (n: number, prefix: string): Array<string> =>
  Array.from({ length: n }, (_, i) => `${prefix}-${i}`)

const sorted = (xs: Iterable<string>): Array<string> => [...xs].sort()

const countBy = (xs: ReadonlyArray<string>): Map<string, number> => {
  const counts = new Map<string, number>()
  for (const x of xs) counts.set(x, (counts.get(x) ?? 0) + 1)
  return counts
}

/** The first `n` messages a reader emits, failing the test if they take longer than `within`. */
const readN = (
  bus: BusShape,
  stream: string,
  options: ReadOptions,
  n: number,
  within: Duration.DurationInput = "15 seconds",
) =>
  bus.read(stream, options).pipe(
    Stream.take(n),
    Stream.runCollect,
    Effect.map(Chunk.toReadonlyArray),
    Effect.timeoutFail({
      duration: within,
      onTimeout: () => new Error(`timed out reading ${n} messages from ${stream}`),
    }),
  )

/** Publish `ids` one after the other; their sequence numbers, in order. */
const publishSeqs = (bus: BusShape, ids: ReadonlyArray<string>, subject = "orders.created") =>
  Effect.forEach(ids, (id) => bus.publish(subject, bytes(`body of ${id}`), { id })).pipe(
    Effect.map((acks) => acks.map((a) => a.seq)),
  )

const assertAscending = (seqs: ReadonlyArray<number>) => {
  for (let i = 1; i < seqs.length; i++) {
    assert.isAbove(seqs[i]!, seqs[i - 1]!, `sequence ${i} (${seqs[i]}) after ${seqs[i - 1]}`)
  }
}

// ---------------------------------------------------------------------------------------------
// The suite

/** Register the conformance tests for one backend inside the caller's `describe`. */
export const busConformance = (setup: BusSetup): void => {
  it.scopedLive(
    "delivers a published message with its stream, subject, id, key, headers and data",
    () =>
      Effect.gen(function* () {
        const t = yield* setup
        const bus = yield* t.open
        assert.strictEqual(bus.backend, t.backend.kind)
        yield* bus.ping
        yield* bus.ensureStream(orders)
        const before = Date.now()
        const ack = yield* bus.publish("orders.created", bytes("hello"), {
          id: "order-1",
          key: "customer-42",
          headers: { "X-Trace": "trace-1" },
        })
        assert.strictEqual(ack.stream, "orders")
        assert.strictEqual(ack.duplicate, false)
        assert.isAbove(ack.seq, 0)

        const log = new Attempts()
        yield* bus.consume({ stream: "orders", name: "reader" }, log.handler())
        yield* eventually(() => "the message is delivered", () => log.size >= 1)
        const m = log.all[0]!.message
        assert.strictEqual(m.stream, "orders")
        assert.strictEqual(m.seq, ack.seq)
        assert.strictEqual(m.subject, "orders.created")
        assert.strictEqual(m.id, "order-1")
        assert.strictEqual(m.key, "customer-42")
        assert.strictEqual(m.headers["X-Trace"], "trace-1")
        assert.strictEqual(text(m.data), "hello")
        assert.strictEqual(m.deliveryCount, 1)
        assert.instanceOf(m.publishedAt, Date)
        assert.isAtLeast(m.publishedAt.getTime(), before - 5_000)
        assert.isAtMost(m.publishedAt.getTime(), Date.now() + 5_000)
      }),
    20_000,
  )

  it.scopedLive(
    "a value published as `local` rides on this process's first delivery of that message only",
    () =>
      Effect.gen(function* () {
        const t = yield* setup
        const bus = yield* t.open
        const elsewhere = yield* t.open // another process over the same storage
        yield* bus.ensureStream(orders)
        const value = { order: 1 }
        yield* bus.publish("orders.created", bytes("first"), { id: "l-1", local: value })
        // A duplicate may carry other content than what is stored: its value is not kept.
        const dup = yield* bus.publish("orders.created", bytes("other"), {
          id: "l-1",
          local: { order: 2 },
        })
        assert.isTrue(dup.duplicate)
        yield* bus.publish("orders.created", bytes("plain"), { id: "l-2" })

        // Nothing leaves the process: the other instance reads bytes only.
        yield* elsewhere.ensureStream(orders)
        const there = yield* readN(elsewhere, "orders", { fromSeq: 1 }, 2)
        assert.deepStrictEqual(there.map((m) => m.local), [undefined, undefined])

        const log = new Attempts()
        yield* bus.consume({ stream: "orders", name: "local-reader" }, log.handler())
        yield* eventually(() => "both messages delivered", () => log.size >= 2)
        const byId = new Map(log.all.map((a) => [a.message.id, a.message]))
        assert.strictEqual(byId.get("l-1")!.local, value) // the very object, not a copy
        assert.strictEqual(text(byId.get("l-1")!.data), "first")
        assert.isUndefined(byId.get("l-2")!.local)
        // Handed out once: a later reader here decodes the bytes as anyone else would.
        const again = yield* readN(bus, "orders", { fromSeq: 1 }, 2)
        assert.deepStrictEqual(again.map((m) => m.local), [undefined, undefined])
      }),
    20_000,
  )

  it.scopedLive(
    "a consumer with a subject filter sees only the messages on matching subjects",
    () =>
      Effect.gen(function* () {
        const t = yield* setup
        const bus = yield* t.open
        yield* bus.ensureStream(orders)
        yield* bus.publish("orders.created", bytes("c"), { id: "c-1" })
        yield* bus.publish("orders.paid", bytes("p"), { id: "p-1" })
        yield* bus.publish("orders.created", bytes("c"), { id: "c-2" })
        const log = new Attempts()
        yield* bus.consume(
          { stream: "orders", name: "payments", filter: "orders.paid" },
          log.handler(),
        )
        yield* eventually(() => "the paid message is delivered", () => log.size >= 1)
        yield* quietFor("400 millis")
        assert.deepStrictEqual(log.ids(), ["p-1"])
        assert.strictEqual(log.all[0]!.message.subject, "orders.paid")
      }),
    20_000,
  )

  it.scopedLive(
    "ensureStream is idempotent; publishing to a subject of no stream fails with BusRejected",
    () =>
      Effect.gen(function* () {
        const t = yield* setup
        const bus = yield* t.open
        yield* bus.ensureStream(orders)
        yield* bus.ensureStream(orders)
        const ack = yield* bus.publish("orders.created", bytes("x"), { id: "x-1" })
        assert.isFalse(ack.duplicate)

        yield* failsWith(
          "publish to a subject of no stream",
          bus.publish("invoices.created", bytes("x"), { id: "x-2" }),
          "BusRejected",
        )
        yield* failsWith(
          "ensureStream with an invalid name",
          bus.ensureStream({ name: "not a valid name", subjects: ["bad.>"] }),
          "BusRejected",
        )
      }),
    20_000,
  )

  it.scopedLive(
    "publishing the same message id twice stores it once, answers duplicate: true, and the consumer sees it once",
    () =>
      Effect.gen(function* () {
        const t = yield* setup
        const bus = yield* t.open
        yield* bus.ensureStream(orders)
        const first = yield* bus.publish("orders.created", bytes("once"), { id: "dup-1" })
        const second = yield* bus.publish("orders.created", bytes("once"), { id: "dup-1" })
        assert.isFalse(first.duplicate)
        assert.isTrue(second.duplicate)
        assert.strictEqual(second.stream, "orders")
        assert.include([first.seq, 0], second.seq, "a duplicate answers the original's seq or 0")

        // Racing publishers of one id: exactly one of them stores it.
        const racing = yield* Effect.forEach(
          range(8, "racer"),
          () => bus.publish("orders.created", bytes("race"), { id: "dup-2" }),
          { concurrency: "unbounded" },
        )
        assert.strictEqual(racing.filter((a) => !a.duplicate).length, 1)
        yield* bus.publish("orders.created", bytes("other"), { id: "dup-3" })

        const log = new Attempts()
        yield* bus.consume({ stream: "orders", name: "reader" }, log.handler())
        yield* eventually(() => `3 distinct messages delivered, saw ${log.ids()}`, () =>
          log.size >= 3)
        yield* quietFor("500 millis")
        assert.deepStrictEqual(sorted(log.ids()), ["dup-1", "dup-2", "dup-3"])
      }),
    20_000,
  )

  it.scopedLive(
    "a durable consumer that stops and starts again resumes where it stopped: nothing lost, nothing acknowledged redelivered",
    () =>
      Effect.gen(function* () {
        const t = yield* setup
        const bus = yield* t.open
        yield* bus.ensureStream(orders)
        const early = range(30, "early")
        yield* publishAll(bus, early)
        const spec: ConsumerSpec = {
          stream: "orders",
          name: "worker",
          ackWait: "1 second",
          concurrency: 2,
        }

        const before = new Attempts()
        const slow = before.handler(() => Effect.sleep("20 millis"))
        const stop = yield* consumeIn(bus, spec, slow)
        yield* eventually(() => "10 messages handled before the stop", () =>
          before.finished.length >= 10)
        const stopAt = Date.now()
        yield* Scope.close(stop, Exit.void)
        assert.isBelow(
          Date.now() - stopAt,
          5_000,
          "the stop waits for the running handlers to settle, not for its 10 s drain timeout",
        )
        const acked = new Set(before.finished.map((a) =>
          a.message.id
        ))
        assert.strictEqual(
          acked.size,
          before.size,
          "closing the scope lets running handlers finish and starts none after",
        )

        const late = range(10, "late")
        yield* publishAll(bus, late)

        const after = new Attempts()
        yield* bus.consume(spec, after.handler())
        const all = [...early, ...late]
        yield* eventually(
          () =>
            `every message handled once across both runs; missing ${
              all.filter((id) => !acked.has(id) && after.of(id).length === 0)
            }`,
          () => all.every((id) => acked.has(id) || after.of(id).length > 0),
        )
        yield* quietFor("1500 millis") // past ackWait: a lost ack would show up as a redelivery
        const again = after.ids().filter((id) => acked.has(id))
        assert.deepStrictEqual(again, [], "acknowledged messages are not delivered again")
        const twice = [...countBy(after.ids())].filter(([, n]) => n > 1)
        assert.deepStrictEqual(twice, [], "each remaining message is handled once")
        assert.deepStrictEqual(sorted([...acked, ...after.ids()]), sorted(all))
      }),
    30_000,
  )

  it.scopedLive(
    "a second bus instance over the same namespace and storage resumes the durable consumer and keeps the duplicate window",
    () =>
      Effect.gen(function* () {
        const t = yield* setup
        const spec: ConsumerSpec = { stream: "orders", name: "worker", ackWait: "1 second" }
        const first = new Attempts()
        yield* Effect.scoped(
          Effect.gen(function* () {
            const bus = yield* t.open
            yield* bus.ensureStream(orders)
            yield* publishAll(bus, range(5, "m"))
            const stop = yield* consumeIn(bus, spec, first.handler())
            yield* eventually(() => "5 messages handled by the first instance", () =>
              first.finished.length >= 5)
            yield* Scope.close(stop, Exit.void)
            // Published while no consumer runs, then the whole instance goes away.
            yield* publishAll(bus, ["m-5", "m-6", "m-7"])
          }),
        )
        assert.deepStrictEqual(sorted(first.ids()), sorted(range(5, "m")))

        const bus = yield* t.open
        yield* bus.ensureStream(orders)
        const replayed = yield* bus.publish("orders.created", bytes("body of m-2"), { id: "m-2" })
        assert.isTrue(replayed.duplicate, "the duplicate window survives a restart")
        yield* publishAll(bus, ["m-8", "m-9"])
        const second = new Attempts()
        yield* bus.consume(spec, second.handler())
        yield* eventually(() =>
          `m-5..m-9 handled by the second instance, saw ${second.ids()}`, () =>
          ["m-5", "m-6", "m-7", "m-8", "m-9"].every((id) =>
            second.of(id).length > 0
          ))
        yield* quietFor("1500 millis")
        assert.deepStrictEqual(sorted(second.ids()), ["m-5", "m-6", "m-7", "m-8", "m-9"])
      }),
    30_000,
  )

  it.scopedLive(
    "a handler running longer than ackWait keeps its message: no redelivery while it runs",
    () =>
      Effect.gen(function* () {
        const t = yield* setup
        const bus = yield* t.open
        yield* bus.ensureStream(orders)
        yield* bus.publish("orders.created", bytes("slow"), { id: "slow-1" })
        const log = new Attempts()
        yield* bus.consume(
          { stream: "orders", name: "worker", ackWait: "1 second", handlerTimeout: "10 seconds" },
          log.handler(() => Effect.sleep("2500 millis")),
        )
        yield* eventually(() => "the slow handler finishes", () => log.finished.length >= 1)
        yield* quietFor("1500 millis")
        assert.deepStrictEqual(log.all.map((a) => a.message.deliveryCount), [1])
      }),
    20_000,
  )

  it.scopedLive(
    "redelivers an unacknowledged message after ackWait, with deliveryCount 2, once the process holding it dies",
    () =>
      Effect.gen(function* () {
        const t = yield* setup
        const bus = yield* t.open
        yield* bus.ensureStream(orders)
        yield* bus.publish("orders.created", bytes("held"), { id: "held-1" })
        const ackWaitMs = 1_000
        const spec: ConsumerSpec = {
          stream: "orders",
          name: "worker",
          ackWait: Duration.millis(ackWaitMs),
        }
        // Another process takes the message and holds it; a stopping consumer would hand it
        // back, a killed one cannot: only ackWait brings it back.
        const holder = yield* holdingConsumer({
          backend: t.backend,
          stream: "orders",
          consumer: "worker",
          ackWaitMillis: ackWaitMs,
        })
        assert.deepStrictEqual([holder.held.id, holder.held.deliveryCount], ["held-1", 1])

        const next = new Attempts()
        yield* bus.consume(spec, next.handler())
        yield* quietFor(Duration.millis(ackWaitMs * 1.5))
        assert.strictEqual(next.size, 0, "a held message is not redelivered while its holder lives")

        yield* holder.kill
        const killedAt = yield* now
        yield* eventually(() => "the message is redelivered", () => next.size >= 1)
        const again = next.all[0]!
        assert.strictEqual(again.message.id, "held-1")
        assert.strictEqual(again.message.deliveryCount, 2)
        // The holder extended its deadline every ackWait/3 until it died, so the redelivery may
        // not come sooner than 2/3 of ackWait after the kill.
        const waited = again.startedAt - killedAt
        assert.isAtLeast(waited, (ackWaitMs * 2) / 3 - 100)
        assert.isAtMost(waited, ackWaitMs + 3_000)
      }),
    45_000,
  )

  it.scopedLive(
    "a nak with delay redelivers no sooner than the delay, with deliveryCount incremented",
    () =>
      Effect.gen(function* () {
        const t = yield* setup
        const bus = yield* t.open
        yield* bus.ensureStream(orders)
        yield* bus.publish("orders.created", bytes("later"), { id: "nak-1" })
        const delayMs = 700
        const log = new Attempts()
        yield* bus.consume(
          // A long ackWait: the redelivery must come from the nak, not from the ack deadline.
          { stream: "orders", name: "worker", ackWait: "20 seconds" },
          log.handler((m) =>
            Effect.succeed(
              m.deliveryCount === 1
                ? Disposition.Nak({ delay: Duration.millis(delayMs), reason: "not yet" })
                : Disposition.Ack(),
            )
          ),
        )
        yield* eventually(() => "the nak'd message is redelivered", () => log.size >= 2)
        yield* quietFor("300 millis")
        const [first, second] = log.all
        assert.strictEqual(log.size, 2)
        assert.strictEqual(first!.message.deliveryCount, 1)
        assert.strictEqual(second!.message.deliveryCount, 2)
        assert.strictEqual(second!.message.seq, first!.message.seq)
        const waited = second!.startedAt - first!.endedAt!
        assert.isAtLeast(waited, delayMs - SLACK_MS)
        assert.isAtMost(waited, delayMs + 3_000)
      }),
    30_000,
  )

  it.scopedLive(
    "a handler that fails with a typed error gets the message again after each delay of the retry schedule",
    () =>
      Effect.gen(function* () {
        const t = yield* setup
        const bus = yield* t.open
        yield* bus.ensureStream(orders)
        yield* bus.publish("orders.created", bytes("flaky"), { id: "flaky-1" })
        const log = new Attempts()
        yield* bus.consume(
          {
            stream: "orders",
            name: "worker",
            retry: Schedule.exponential("200 millis"), // 200 ms, then 400 ms
            maxDeliver: 5,
          },
          log.handler((m) =>
            m.deliveryCount < 3
              ? Effect.fail(new HandlerFailed({ message: `attempt ${m.deliveryCount}` }))
              : Effect.void
          ),
        )
        yield* eventually(() => "the third delivery succeeds", () => log.finished.length >= 3)
        yield* quietFor("600 millis")
        assert.deepStrictEqual(log.all.map((a) => a.message.deliveryCount), [1, 2, 3])
        const [a, b, c] = log.all
        assert.isAtLeast(b!.startedAt - a!.endedAt!, 200 - SLACK_MS)
        assert.isAtLeast(c!.startedAt - b!.endedAt!, 400 - SLACK_MS)
        assert.isAtMost(c!.startedAt - b!.endedAt!, 400 + 3_000)
      }),
    30_000,
  )

  it.scopedLive(
    "a handler that dies with a defect or throws gets the message again after the retry delay",
    () =>
      Effect.gen(function* () {
        const t = yield* setup
        const bus = yield* t.open
        yield* bus.ensureStream(orders)
        yield* bus.publish("orders.created", bytes("buggy"), { id: "buggy-1" })
        const log = new Attempts()
        yield* bus.consume(
          { stream: "orders", name: "worker", retry: Schedule.spaced("300 millis") },
          log.handler((m) =>
            m.deliveryCount === 1
              ? Effect.die(new Error("defect in handler"))
              : m.deliveryCount === 2
              ? Effect.sync(() => {
                throw new Error("thrown in handler")
              })
              : Effect.void
          ),
        )
        yield* eventually(() => "the third delivery succeeds", () => log.finished.length >= 3)
        yield* quietFor("500 millis")
        assert.deepStrictEqual(log.all.map((a) => a.message.deliveryCount), [1, 2, 3])
        const [a, b, c] = log.all
        assert.isAtLeast(b!.startedAt - a!.endedAt!, 300 - SLACK_MS)
        assert.isAtLeast(c!.startedAt - b!.endedAt!, 300 - SLACK_MS)
      }),
    30_000,
  )

  it.scopedLive(
    "a handler running past handlerTimeout is interrupted and the message is redelivered",
    () =>
      Effect.gen(function* () {
        const t = yield* setup
        const bus = yield* t.open
        yield* bus.ensureStream(orders)
        yield* bus.publish("orders.created", bytes("stuck"), { id: "stuck-1" })
        const interrupted = yield* Deferred.make<void>()
        const log = new Attempts()
        yield* bus.consume(
          {
            stream: "orders",
            name: "worker",
            handlerTimeout: "300 millis",
            retry: Schedule.spaced("100 millis"),
          },
          log.handler((m) =>
            m.deliveryCount === 1
              ? Effect.never.pipe(
                Effect.onInterrupt(() => Deferred.succeed(interrupted, undefined)),
              )
              : Effect.void
          ),
        )
        yield* eventually(() => "the second delivery succeeds", () => log.finished.length >= 1)
        assert.isTrue(yield* Deferred.isDone(interrupted))
        assert.deepStrictEqual(log.all.map((a) => a.message.deliveryCount), [1, 2])
        assert.isAtLeast(log.all[1]!.startedAt - log.all[0]!.startedAt, 300 + 100 - SLACK_MS)
      }),
    20_000,
  )

  it.scopedLive(
    "a consumer with concurrency N runs at most N handlers at once",
    () =>
      Effect.gen(function* () {
        const t = yield* setup
        const bus = yield* t.open
        yield* bus.ensureStream(orders)
        yield* publishAll(bus, range(30, "c"))
        let running = 0
        let most = 0
        const log = new Attempts()
        yield* bus.consume(
          { stream: "orders", name: "worker", concurrency: 3 },
          log.handler(() =>
            Effect.acquireUseRelease(
              Effect.sync(() => {
                running++
                most = Math.max(most, running)
              }),
              () => Effect.sleep("40 millis"),
              () => Effect.sync(() => running--),
            )
          ),
        )
        yield* eventually(() => `30 handled, ${log.finished.length} so far`, () =>
          log.finished.length >= 30)
        assert.strictEqual(most, 3)
      }),
    30_000,
  )

  it.scopedLive(
    "a consumer holds at most maxAckPending messages at once, whatever its concurrency",
    () =>
      Effect.gen(function* () {
        const t = yield* setup
        const bus = yield* t.open
        yield* bus.ensureStream(orders)
        yield* publishAll(bus, range(12, "h"))
        let running = 0
        let most = 0
        const log = new Attempts()
        yield* bus.consume(
          { stream: "orders", name: "worker", concurrency: 10, maxAckPending: 3 },
          log.handler(() =>
            Effect.acquireUseRelease(
              Effect.sync(() => {
                running++
                most = Math.max(most, running)
              }),
              () => Effect.sleep("60 millis"),
              () => Effect.sync(() => running--),
            )
          ),
        )
        yield* eventually(() => `12 handled, ${log.finished.length} so far`, () =>
          log.finished.length >= 12)
        assert.strictEqual(most, 3)
      }),
    30_000,
  )

  it.scopedLive(
    "failed messages waiting for redelivery do not stall a consumer at maxAckPending",
    () =>
      Effect.gen(function* () {
        const t = yield* setup
        const bus = yield* t.open
        yield* bus.ensureStream(orders)
        const ids = range(12, "w")
        yield* publishAll(bus, ids)
        const log = new Attempts()
        yield* bus.consume(
          {
            stream: "orders",
            name: "worker",
            maxAckPending: 4,
            concurrency: 4,
            retry: Schedule.spaced("50 millis"),
          },
          log.handler((m) =>
            m.deliveryCount === 1
              ? Effect.fail(new HandlerFailed({ message: "downstream down" }))
              : Effect.void
          ),
        )
        yield* eventually(
          () => `every message acknowledged on its second delivery, saw ${log.size} attempts`,
          () => ids.every((id) => log.of(id).some((a) => a.message.deliveryCount === 2)),
        )
      }),
    30_000,
  )

  it.scopedLive(
    "with ordering by key, messages queued behind a failed one at maxAckPending do not block its redelivery",
    () =>
      Effect.gen(function* () {
        const t = yield* setup
        const bus = yield* t.open
        yield* bus.ensureStream(orders)
        yield* Effect.forEach(
          [0, 1, 2, 3],
          (i) =>
            Effect.forEach(["a", "b"], (k) =>
              bus.publish("orders.created", bytes(`${k}:${i}`), { id: `${k}-${i}`, key: k }), {
              discard: true,
            }),
          { discard: true },
        )
        const log = new Attempts()
        yield* bus.consume(
          {
            stream: "orders",
            name: "worker",
            ordering: "key",
            maxAckPending: 4,
            concurrency: 2,
            retry: Schedule.spaced("50 millis"),
          },
          log.handler((m) =>
            m.deliveryCount === 1 && m.id.endsWith("-0")
              ? Effect.fail(new HandlerFailed({ message: "first of its key fails once" }))
              : Effect.void
          ),
        )
        yield* eventually(
          () =>
            `all 8 acknowledged, saw ${log.ids()}`,
          () =>
            log.finished.filter((a) =>
              !(a.message.deliveryCount === 1 && a.message.id.endsWith("-0"))
            ).length >= 8,
        )
        for (const k of ["a", "b"]) {
          const handled = log.all.filter((a) =>
            a.message.key === k
          ).map((a) => a.message.id)
          assert.deepStrictEqual(handled, [`${k}-0`, `${k}-0`, `${k}-1`, `${k}-2`, `${k}-3`])
        }
      }),
    30_000,
  )

  it.scopedLive(
    "a message that fails maxDeliver times is dead-lettered with the last error and its delivery count",
    () =>
      Effect.gen(function* () {
        const t = yield* setup
        const bus = yield* t.open
        yield* bus.ensureStream(orders)
        const ack = yield* bus.publish("orders.created", bytes("poison"), {
          id: "poison-1",
          key: "customer-7",
          headers: { "X-Trace": "trace-7" },
        })
        const log = new Attempts()
        yield* bus.consume(
          { stream: "orders", name: "worker", maxDeliver: 3, retry: Schedule.spaced("100 millis") },
          log.handler((m) =>
            Effect.fail(new HandlerFailed({ message: `attempt ${m.deliveryCount}` }))
          ),
        )
        const listed = yield* deadLettersWhen(bus, { consumer: "worker" }, (dls) => dls.length > 0)
        yield* quietFor("500 millis")
        assert.deepStrictEqual(log.all.map((a) => a.message.deliveryCount), [1, 2, 3])
        assert.strictEqual(listed.length, 1)
        const dl = listed[0]!
        assert.strictEqual(dl.consumer, "worker")
        assert.strictEqual(dl.stream, "orders")
        assert.strictEqual(dl.subject, "orders.created")
        assert.strictEqual(dl.messageId, "poison-1")
        assert.strictEqual(dl.seq, ack.seq)
        assert.strictEqual(dl.key, "customer-7")
        assert.strictEqual(dl.headers["X-Trace"], "trace-7")
        assert.strictEqual(text(dl.data), "poison")
        assert.strictEqual(dl.deliveries, 3)
        assert.include(dl.reason, "attempt 3")
        assert.instanceOf(dl.deadAt, Date)
        const got = yield* bus.deadLetters.get(dl.id)
        assert.strictEqual(got.id, dl.id)
        assert.strictEqual(got.reason, dl.reason)
      }),
    30_000,
  )

  it.scopedLive(
    "dead letters are listed per consumer and page by page",
    () =>
      Effect.gen(function* () {
        const t = yield* setup
        const bus = yield* t.open
        yield* bus.ensureStream(orders)
        yield* publishAll(bus, range(3, "bad"))
        const refuse = (reason: string) => () => Effect.succeed(Disposition.DeadLetter({ reason }))
        yield* bus.consume({ stream: "orders", name: "alpha" }, refuse("alpha refuses"))
        yield* bus.consume({ stream: "orders", name: "beta" }, refuse("beta refuses"))
        const everything = yield* deadLettersWhen(bus, {}, (dls) => dls.length >= 6)
        assert.strictEqual(everything.length, 6)

        const alpha = yield* bus.deadLetters.list({ consumer: "alpha" })
        assert.strictEqual(alpha.length, 3)
        assert.isTrue(alpha.every((dl) => dl.consumer === "alpha" && dl.reason === "alpha refuses"))
        assert.isTrue(alpha.every((dl) => dl.deliveries === 1))
        assert.deepStrictEqual(sorted(alpha.map((dl) => dl.messageId)), range(3, "bad"))

        const page1 = yield* bus.deadLetters.list({ consumer: "beta", limit: 2 })
        assert.strictEqual(page1.length, 2)
        const page2 = yield* bus.deadLetters.list({
          consumer: "beta",
          limit: 2,
          after: page1[page1.length - 1]!.id,
        })
        assert.strictEqual(page2.length, 1)
        const paged = [...page1, ...page2]
        assert.isTrue(paged.every((dl) => dl.consumer === "beta"))
        assert.deepStrictEqual(sorted(paged.map((dl) => dl.messageId)), range(3, "bad"))
      }),
    30_000,
  )

  it.scopedLive(
    "replaying a dead letter delivers it again to that consumer only and removes the dead letter",
    () =>
      Effect.gen(function* () {
        const t = yield* setup
        const bus = yield* t.open
        yield* bus.ensureStream(orders)
        yield* bus.publish("orders.created", bytes("retry me"), { id: "r-1", key: "customer-1" })
        const alpha = new Attempts()
        let refusing = true
        yield* bus.consume(
          { stream: "orders", name: "alpha" },
          alpha.handler(() =>
            Effect.succeed(
              refusing ? Disposition.DeadLetter({ reason: "poison" }) : Disposition.Ack(),
            )
          ),
        )
        const beta = new Attempts()
        yield* bus.consume({ stream: "orders", name: "beta" }, beta.handler())
        const [dl] = yield* deadLettersWhen(bus, { consumer: "alpha" }, (dls) => dls.length > 0)
        yield* eventually(() => "beta handles the original", () => beta.finished.length >= 1)
        refusing = false

        const ack = yield* bus.deadLetters.replay(dl!.id)
        assert.strictEqual(ack.stream, "orders")
        assert.isFalse(ack.duplicate, "a replay is a new message, not a duplicate of the original")
        yield* eventually(() => "alpha handles the replay", () => alpha.finished.length >= 2)
        yield* quietFor("700 millis")

        const replay = alpha.all[1]!.message
        assert.strictEqual(text(replay.data), "retry me")
        assert.strictEqual(replay.subject, "orders.created")
        assert.strictEqual(replay.key, "customer-1")
        assert.strictEqual(replay.headers[BusHeader.replayFor], "alpha")
        assert.strictEqual(alpha.size, 2)
        assert.strictEqual(beta.size, 1, "the other consumer does not see the replay")
        assert.deepStrictEqual(yield* bus.deadLetters.list({ consumer: "alpha" }), [])
        yield* failsWith("get after replay", bus.deadLetters.get(dl!.id), "DeadLetterNotFound")
        yield* failsWith("a second replay", bus.deadLetters.replay(dl!.id), "DeadLetterNotFound")
      }),
    30_000,
  )

  it.scopedLive(
    "discarding a dead letter removes it for good",
    () =>
      Effect.gen(function* () {
        const t = yield* setup
        const bus = yield* t.open
        yield* bus.ensureStream(orders)
        yield* bus.publish("orders.created", bytes("junk"), { id: "junk-1" })
        const log = new Attempts()
        yield* bus.consume(
          { stream: "orders", name: "worker" },
          log.handler(() => Effect.succeed(Disposition.DeadLetter({ reason: "unreadable" }))),
        )
        const [dl] = yield* deadLettersWhen(bus, { consumer: "worker" }, (dls) => dls.length > 0)
        assert.strictEqual(dl!.reason, "unreadable")
        assert.strictEqual(dl!.deliveries, 1)
        yield* bus.deadLetters.discard(dl!.id)
        assert.deepStrictEqual(yield* bus.deadLetters.list(), [])
        yield* failsWith("get after discard", bus.deadLetters.get(dl!.id), "DeadLetterNotFound")
        yield* failsWith("a second discard", bus.deadLetters.discard(dl!.id), "DeadLetterNotFound")
        yield* failsWith(
          "replay after discard",
          bus.deadLetters.replay(dl!.id),
          "DeadLetterNotFound",
        )
        yield* quietFor("500 millis")
        assert.strictEqual(log.size, 1)
      }),
    20_000,
  )

  it.scopedLive(
    "with ordering by key, 1,000 interleaved keys are each handled one at a time in publish order",
    () =>
      Effect.gen(function* () {
        const t = yield* setup
        const bus = yield* t.open
        yield* bus.ensureStream(orders)
        const keys = 1_000
        const perKey = 10
        yield* publishRounds(bus, keys, perKey)

        const check = new KeyOrder()
        yield* bus.consume(
          { stream: "orders", name: "worker", ordering: "key", concurrency: 8 },
          (m) => check.handle(m, () => Effect.void),
        )
        yield* eventually(
          () => `${keys * perKey} handled, ${check.acked} so far`,
          () => check.acked >= keys * perKey,
          "40 seconds",
        )
        check.assertInOrder(keys, perKey)
        assert.isAbove(check.mostAtOnce, 1, "different keys run concurrently")
      }),
    60_000,
  )

  it.scopedLive(
    "with ordering by key, order holds when messages fail once and are redelivered",
    () =>
      Effect.gen(function* () {
        const t = yield* setup
        const bus = yield* t.open
        yield* bus.ensureStream(orders)
        const keys = 200
        const perKey = 10
        yield* publishRounds(bus, keys, perKey)
        const failsOnce = (k: number, i: number) => (k * 7 + i) % 9 === 0

        const check = new KeyOrder()
        yield* bus.consume(
          {
            stream: "orders",
            name: "worker",
            ordering: "key",
            concurrency: 8,
            retry: Schedule.spaced("30 millis"),
          },
          (m) =>
            check.handle(m, (k, i) =>
              m.deliveryCount === 1 && failsOnce(k, i)
                ? i % 2 === 0
                  ? Effect.fail(new HandlerFailed({ message: `fails once: ${k}:${i}` }))
                  : Effect.succeed(Disposition.Nak({ delay: "30 millis", reason: "once" }))
                : Effect.void),
        )
        yield* eventually(
          () =>
            `${keys * perKey} handled, ${check.acked} so far`,
          () =>
            check.acked >= keys * perKey,
          "40 seconds",
        )
        check.assertInOrder(keys, perKey)
        let expectedFailures = 0
        for (let k = 0; k < keys; k++) {
          for (let i = 0; i < perKey; i++) if (failsOnce(k, i)) expectedFailures++
        }
        assert.strictEqual(check.failed, expectedFailures)
      }),
    60_000,
  )

  // -------------------------------------------------------------------------------------------
  // Readers: `read` and `lastSeq`

  it.scopedLive(
    "read returns every message from a sequence on, in sequence order, then live ones",
    () =>
      Effect.gen(function* () {
        const t = yield* setup
        const bus = yield* t.open
        yield* bus.ensureStream(orders)
        const ids = range(10, "r")
        const seqs = yield* publishSeqs(bus, ids)
        assertAscending(seqs)

        const fromFourth = yield* readN(bus, "orders", { fromSeq: seqs[3]! }, 7)
        assert.deepStrictEqual(fromFourth.map((m) => m.id), ids.slice(3))
        assert.deepStrictEqual(fromFourth.map((m) => m.seq), seqs.slice(3))
        const first = fromFourth[0]!
        assert.strictEqual(first.stream, "orders")
        assert.strictEqual(first.subject, "orders.created")
        assert.strictEqual(text(first.data), "body of r-3")
        assert.strictEqual(first.deliveryCount, 1)

        // The same reader goes on with messages published while it waits.
        const reading = yield* Effect.fork(readN(bus, "orders", { fromSeq: seqs[8]! }, 5))
        yield* quietFor("300 millis")
        const live = range(3, "live")
        yield* publishSeqs(bus, live)
        const got = yield* Fiber.join(reading)
        assert.deepStrictEqual(got.map((m) => m.id), [...ids.slice(8), ...live])
        assertAscending(got.map((m) => m.seq))
      }),
    30_000,
  )

  it.scopedLive(
    "read with a filter returns only messages on matching subjects, in order",
    () =>
      Effect.gen(function* () {
        const t = yield* setup
        const bus = yield* t.open
        yield* bus.ensureStream(orders)
        yield* bus.publish("orders.created", bytes("c"), { id: "c-1" })
        yield* bus.publish("orders.paid", bytes("p"), { id: "p-1" })
        yield* bus.publish("orders.created", bytes("c"), { id: "c-2" })
        yield* bus.publish("orders.paid", bytes("p"), { id: "p-2" })
        const paid = yield* readN(bus, "orders", { fromSeq: 1, filter: "orders.paid" }, 2)
        assert.deepStrictEqual(paid.map((m) => m.id), ["p-1", "p-2"])
        assert.deepStrictEqual(paid.map((m) => m.subject), ["orders.paid", "orders.paid"])

        const reading = yield* Effect.fork(
          readN(bus, "orders", { fromSeq: paid[1]!.seq + 1, filter: "orders.paid" }, 1),
        )
        yield* bus.publish("orders.created", bytes("c"), { id: "c-3" })
        yield* bus.publish("orders.paid", bytes("p"), { id: "p-3" })
        assert.deepStrictEqual((yield* Fiber.join(reading)).map((m) => m.id), ["p-3"])

        const firstOf = (stream: string, options: ReadOptions) =>
          bus.read(stream, options).pipe(Stream.runHead, Effect.timeout("5 seconds"))
        yield* failsWith("unknown stream", firstOf("nope", { fromSeq: 1 }), "BusRejected")
        yield* failsWith(
          "invalid filter",
          firstOf("orders", { fromSeq: 1, filter: "orders.>.x" }),
          "BusRejected",
        )
      }),
    30_000,
  )

  it.scopedLive(
    "readEach hands over what read emits, in non-empty batches, waiting for each sink; it fails as read fails",
    () =>
      Effect.gen(function* () {
        const t = yield* setup
        const bus = yield* t.open
        yield* bus.ensureStream(orders)
        const early = range(6, "e")
        const seqs = yield* publishSeqs(bus, early)
        const batches: Array<ReadonlyArray<BusMessage>> = []
        let inSink = 0
        let overlapped = false
        const got = () => batches.flat()
        yield* bus.readEach("orders", { fromSeq: seqs[2]! }, (batch) =>
          Effect.gen(function* () {
            if (inSink++ > 0) overlapped = true
            batches.push(batch)
            // A slow sink: the next batch waits for it.
            yield* Effect.sleep("20 millis")
            inSink--
          })).pipe(Effect.forkScoped)
        const live = range(5, "l")
        yield* publishSeqs(bus, live, "orders.paid")
        yield* Effect.gen(function* () {
          while (got().length < 9) yield* Effect.sleep("20 millis")
        }).pipe(Effect.timeout("15 seconds"))
        assert.deepStrictEqual(got().map((m) => m.id), [...early.slice(2), ...live])
        assertAscending(got().map((m) => m.seq))
        assert.isTrue(batches.every((b) => b.length > 0), "no empty batch")
        assert.isFalse(overlapped, "one batch at a time")

        // With a filter, only matching subjects.
        const paid: Array<string> = []
        yield* bus.readEach(
          "orders",
          { fromSeq: 1, filter: "orders.paid" },
          (batch) => Effect.sync(() => paid.push(...batch.map((m) => m.id))),
        ).pipe(Effect.forkScoped)
        yield* Effect.gen(function* () {
          while (paid.length < 5) yield* Effect.sleep("20 millis")
        }).pipe(Effect.timeout("15 seconds"))
        assert.deepStrictEqual(paid, live)

        const none = () => Effect.void
        yield* failsWith(
          "unknown stream",
          bus.readEach("nope", { fromSeq: 1 }, none).pipe(Effect.timeout("5 seconds")),
          "BusRejected",
        )
        yield* failsWith(
          "invalid filter",
          bus.readEach("orders", { fromSeq: 1, filter: "orders.>.x" }, none).pipe(
            Effect.timeout("5 seconds"),
          ),
          "BusRejected",
        )
      }),
    30_000,
  )

  it.scopedLive(
    "lastSeq is 0 for an empty stream, then the last stored sequence; reading past it waits",
    () =>
      Effect.gen(function* () {
        const t = yield* setup
        const bus = yield* t.open
        yield* bus.ensureStream(orders)
        assert.strictEqual(yield* bus.lastSeq("orders"), 0)
        const [, second] = yield* publishSeqs(bus, ["a", "b"])
        assert.strictEqual(yield* bus.lastSeq("orders"), second)
        yield* failsWith("unknown stream", bus.lastSeq("nope"), "BusRejected")

        // From "now": nothing already stored comes back, even a long way past the end.
        const now = yield* bus.lastSeq("orders")
        const reading = yield* Effect.fork(readN(bus, "orders", { fromSeq: now + 1 }, 1))
        const farAhead = yield* Effect.fork(
          readN(bus, "orders", { fromSeq: now + 1_000_000 }, 1, "1 second").pipe(Effect.either),
        )
        yield* quietFor("300 millis")
        assert.isTrue(Option.isNone(yield* Fiber.poll(reading)), "nothing new yet")
        yield* bus.publish("orders.created", bytes("c"), { id: "c" })
        assert.deepStrictEqual((yield* Fiber.join(reading)).map((m) => m.id), ["c"])
        assert.strictEqual((yield* Fiber.join(farAhead))._tag, "Left", "still waiting")
      }),
    30_000,
  )

  it.scopedLive(
    "a reader stopped and restarted after the last message it saw misses and repeats nothing",
    () =>
      Effect.gen(function* () {
        const t = yield* setup
        const bus = yield* t.open
        yield* bus.ensureStream(orders)
        const total = 250
        yield* publishAll(bus, range(50, "early"))
        // Four publishers keep going while the reader stops and starts again and again.
        const publishing = yield* Effect.fork(
          Effect.forEach(
            [0, 1, 2, 3],
            (p) =>
              Effect.forEach(
                range((total - 50) / 4, `p${p}`),
                (id) => bus.publish(`orders.p${p}`, bytes(id), { id }),
                { discard: true },
              ),
            { concurrency: 4, discard: true },
          ),
        )
        const seen: Array<BusMessage> = []
        let next = 1
        let rounds = 0
        while (seen.length < total) {
          rounds++
          const take = 1 + ((rounds * 7) % 23)
          const got = yield* readN(
            bus,
            "orders",
            { fromSeq: next },
            Math.min(take, total - seen.length),
          )
          seen.push(...got)
          next = got[got.length - 1]!.seq + 1
        }
        yield* Fiber.join(publishing)
        assertAscending(seen.map((m) => m.seq))
        const ids = seen.map((m) => m.id)
        assert.strictEqual(new Set(ids).size, total, "no repeats")
        // Per publisher, its messages in the order it published them.
        for (const p of [0, 1, 2, 3]) {
          assert.deepStrictEqual(
            ids.filter((id) => id.startsWith(`p${p}-`)),
            range((total - 50) / 4, `p${p}`),
          )
        }
        assert.isAbove(rounds, 10)
        yield* quietFor("200 millis")
        assert.strictEqual(yield* bus.lastSeq("orders"), seen[seen.length - 1]!.seq)
      }),
    60_000,
  )
}

// ---------------------------------------------------------------------------------------------
// Per-key ordering support

/**
 * Publish `perKey` rounds; round i publishes message i of every key (concurrently within the
 * round), so every key's messages are interleaved with all the others and stored in order.
 */
const publishRounds = (bus: BusShape, keys: number, perKey: number) =>
  Effect.forEach(
    Array.from({ length: perKey }, (_, i) => i),
    (i) =>
      Effect.forEach(
        Array.from({ length: keys }, (_, k) => k),
        (k) =>
          bus.publish(`orders.k${k % 16}`, bytes(`${k}:${i}`), {
            id: `k${k}-${i}`,
            key: `key-${k}`,
          }),
        { concurrency: 64, discard: true },
      ),
    { discard: true },
  )

/** Watches a keyed consumer: attempts per key, overlaps within a key, concurrency across keys. */
class KeyOrder {
  readonly attempts = new Map<number, Array<{ i: number; ok: boolean }>>()
  readonly inFlight = new Map<number, number>()
  overlaps: Array<string> = []
  acked = 0
  failed = 0
  running = 0
  mostAtOnce = 0

  handle<E>(
    m: BusMessage,
    decide: (k: number, i: number) => Effect.Effect<Disposition | void, E>,
  ): Effect.Effect<Disposition | void, E> {
    const [k, i] = text(m.data).split(":").map(Number) as [number, number]
    return Effect.acquireUseRelease(
      Effect.sync(() => {
        if (m.key !== `key-${k}`) this.overlaps.push(`message ${k}:${i} arrived with key ${m.key}`)
        const n = (this.inFlight.get(k) ?? 0) + 1
        this.inFlight.set(k, n)
        if (n > 1) this.overlaps.push(`key ${k}: ${n} at once while handling ${i}`)
        this.running++
        this.mostAtOnce = Math.max(this.mostAtOnce, this.running)
      }),
      () =>
        // Yield, so the handlers of other keys interleave with this one.
        Effect.yieldNow().pipe(
          Effect.zipRight(decide(k, i)),
          Effect.tap((d) =>
            Effect.sync(() => {
              const ok = d === undefined || d._tag === "Ack"
              this.record(k, i, ok)
            })
          ),
          Effect.tapError(() => Effect.sync(() => this.record(k, i, false))),
        ),
      () =>
        Effect.sync(() => {
          this.inFlight.set(k, this.inFlight.get(k)! - 1)
          this.running--
        }),
    )
  }

  private record(k: number, i: number, ok: boolean) {
    let list = this.attempts.get(k)
    if (!list) this.attempts.set(k, list = [])
    list.push({ i, ok })
    if (ok) this.acked++
    else this.failed++
  }

  /** Every key saw 0..perKey-1 in order; a failed message was retried before the next ran. */
  assertInOrder(keys: number, perKey: number) {
    assert.deepStrictEqual(this.overlaps.slice(0, 5), [], "never two messages of a key at once")
    const wrong: Array<string> = []
    for (let k = 0; k < keys; k++) {
      const list = this.attempts.get(k) ?? []
      const seen = list.map((a) => `${a.i}${a.ok ? "" : "!"}`).join(" ")
      let expected = 0
      let inOrder = true
      for (const { i, ok } of list) {
        if (i !== expected) inOrder = false
        else if (ok) expected++
      }
      if (!inOrder || expected !== perKey) wrong.push(`key ${k}: ${seen}`)
    }
    assert.deepStrictEqual(wrong.slice(0, 5), [], "each key's messages in publish order")
  }
}
