/**
 * The actor supervisor: one actor per key (a conversation, a channel account), each with its own
 * state and a bounded mailbox, handling one message at a time; idle actors passivate and are
 * rehydrated from storage by their next message; a crashing actor is restarted under a
 * `Schedule` and the message that crashed it is handled again, not lost.
 *
 * It is fed from the bus (core/bus): a bus handler `ask`s the actor and acknowledges the bus
 * message only once the reply arrives, so a message counts as handled only when the actor
 * committed its effect. When restarts are exhausted the ask fails with `ActorDefect`, the bus
 * handler fails with it, and the bus redelivers and finally dead-letters the message with that
 * reason.
 *
 * Memory: an idle resident actor is a small record (its key, its state, an empty mailbox) in two
 * maps; it owns no fiber. A message to an idle actor runs in the asker's fiber; a drain fiber is
 * forked only when messages queue up (or a message must restart) and ends when the mailbox is
 * empty. One sweeper fiber per supervisor passivates idle actors, sleeping
 * until the oldest idle actor's deadline.
 */
import {
  Cause,
  Context,
  Data,
  Deferred,
  Duration,
  Effect,
  Exit,
  Fiber,
  FiberId,
  FiberRef,
  FiberSet,
  HashMap,
  Layer,
  Option,
  Schedule,
  ScheduleDecision,
  type Scope,
} from "effect"
import { registerActors } from "../metrics/CoreMetrics.ts"

// ---------------------------------------------------------------------------------------------
// The behaviour an actor runs

/**
 * What an actor does, for every key of a supervisor. `S` is the state of one actor, `M` the
 * messages it accepts, `Reply` what an `ask` gets back, `E` the typed failures of `load` and
 * `receive`.
 *
 * State is owned by storage: `load` reads it, `receive` writes what it changes (in the same
 * effect, before it returns) and returns the new in-memory state. The in-memory copy is a cache
 * that can be dropped at any time (passivation, restart) and rebuilt by `load`. `receive` must
 * tolerate a repeat: a restart handles the message again, and the bus delivers at least once.
 * Never `ask` your own key from `receive`: the actor would wait for itself.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import * as ActorSupervisor from "./core/actor/mod.ts"
 *
 * // A counter per conversation, persisted in a Map standing in for the database.
 * const store = new Map<string, number>()
 * const counter: ActorSupervisor.ActorBehaviour<string, number, "increment", number> = {
 *   load: (key) => Effect.sync(() => store.get(key) ?? 0),
 *   receive: (count, _message, key) =>
 *     Effect.sync(() => {
 *       store.set(key, count + 1) // commit first, then reply
 *       return [count + 1, count + 1] as const
 *     }),
 * }
 *
 * const program = Effect.gen(function* () {
 *   const counters = yield* ActorSupervisor.make(counter, { idleTimeout: "10 minutes" })
 *   yield* counters.ask("conversation-1", "increment") // 1
 *   return yield* counters.ask("conversation-1", "increment") // 2
 * })
 * Effect.runPromise(Effect.scoped(program)).then(console.log) // 2
 * ```
 */
export interface ActorBehaviour<K extends string, S, M, Reply, E = never, R = never> {
  /**
   * Rehydrate the state of `key` from storage: on the first message to a key, after a
   * passivation and after every restart. A key storage does not know yet gets its initial state.
   */
  readonly load: (key: K) => Effect.Effect<S, E, R>
  /**
   * Handle one message: commit its effects, then return the new state and the reply. Never runs
   * twice at once for one key. A defect (a thrown exception, `Effect.die`) or a failure for which
   * `restartOn` answers `true` restarts the actor and handles the message again; any other typed
   * failure is returned to the asker and the state stays what it was.
   */
  readonly receive: (state: S, message: M, key: K) => Effect.Effect<readonly [S, Reply], E, R>
  /**
   * Called when an actor passivates (idle, evicted, shutdown) with its last state, e.g. to flush
   * a write-behind cache. Failures are logged and otherwise ignored: storage stays the truth.
   * Not called for an actor whose state never loaded. Default: nothing.
   */
  readonly onPassivate?: (key: K, state: S) => Effect.Effect<void, unknown, R>
  /**
   * Which typed failures of `load` and `receive` restart the actor (transient ones: storage
   * unavailable) rather than going back to the asker. Default: none (only defects restart).
   */
  readonly restartOn?: (error: E) => boolean
}

// ---------------------------------------------------------------------------------------------
// Options

export interface ActorSupervisorOptions {
  /** Name used in logs, spans and errors, e.g. `"conversation"`. Default: `"actor"`. */
  readonly name?: string
  /**
   * Messages one actor holds, the one in hand included. A full mailbox suspends `ask`/`tell`
   * until there is room (first come, first served). Default: 64.
   */
  readonly mailboxCapacity?: number
  /**
   * How long `ask`/`tell` wait for room in a full mailbox before failing with `MailboxFull`.
   * Default: no limit (wait; the caller's own timeout applies).
   */
  readonly mailboxTimeout?: Duration.DurationInput
  /**
   * Resident actors at most. A new key beyond it passivates the least recently used idle actor;
   * when every actor is busy the new key waits until one is idle (its messages wait in its
   * mailbox, its further asks suspend: the callers' own concurrency bounds how many keys wait).
   * Default: 50,000.
   */
  readonly maxActors?: number
  /** An actor idle this long is passivated. `Duration.infinity`: never. Default: 5 minutes. */
  readonly idleTimeout?: Duration.DurationInput
  /**
   * Delays between restarts of an actor while one message keeps failing; when it ends, that
   * message's ask fails with `ActorDefect`. The schedule starts afresh for each message.
   * Default: {@link defaultRestart} (exponential from 100 ms, capped at 5 s, jittered, 5 restarts).
   */
  readonly restart?: Schedule.Schedule<unknown, unknown>
  /** `onPassivate` calls running at once. Default: 16. */
  readonly passivationConcurrency?: number
  /**
   * On shutdown, how long to wait for actors to finish the message in hand before interrupting
   * them. Default: 10 seconds.
   */
  readonly shutdownTimeout?: Duration.DurationInput
}

/** Exponential from 100 ms, capped at 5 s, jittered, at most 5 restarts for one message. */
export const defaultRestart: Schedule.Schedule<unknown, unknown> = Schedule.exponential(
  "100 millis",
).pipe(
  Schedule.either(Schedule.spaced("5 seconds")),
  Schedule.jittered,
  Schedule.intersect(Schedule.recurs(5)),
)

// ---------------------------------------------------------------------------------------------
// Errors

/**
 * The actor kept failing on this message until its restart schedule ran out. The message was
 * not handled; redelivering it later may succeed (the bus does, then dead-letters it with this
 * error's message as the reason).
 */
export class ActorDefect extends Data.TaggedError("ActorDefect")<{
  readonly actor: string
  readonly key: string
  /** Restarts tried for this message. */
  readonly restarts: number
  readonly cause: Cause.Cause<unknown>
}> {
  override get message() {
    return `${this.actor} ${this.key} failed after ${this.restarts} restart(s): ${
      Cause.pretty(this.cause)
    }`
  }
}

/** The mailbox stayed full for `mailboxTimeout`; the message was not enqueued. Retry later. */
export class MailboxFull extends Data.TaggedError("MailboxFull")<{
  readonly actor: string
  readonly key: string
  readonly capacity: number
}> {
  override get message() {
    return `mailbox of ${this.actor} ${this.key} full (capacity ${this.capacity})`
  }
}

/** The supervisor is shutting down; the message was not handled. Another node or a restart will. */
export class SupervisorClosed extends Data.TaggedError("SupervisorClosed")<{
  readonly actor: string
  readonly key: string
}> {
  override get message() {
    return `${this.actor} supervisor is shutting down; ${this.key} did not handle the message`
  }
}

export type ActorError = ActorDefect | MailboxFull | SupervisorClosed

// ---------------------------------------------------------------------------------------------
// The supervisor

/** Figures for metrics, read at one instant. */
export interface ActorStats {
  /** Actors in memory (loaded or loading), busy or idle. */
  readonly resident: number
  /** Of those, actors handling a message. */
  readonly busy: number
  /** Keys with messages waiting for a resident slot (`maxActors` reached, all busy). */
  readonly waitingForSlot: number
  /** Actors whose `onPassivate` is running. */
  readonly passivating: number
  /** Messages in all mailboxes (in hand included). */
  readonly mailboxDepthTotal: number
  /** The fullest mailbox. */
  readonly mailboxDepthMax: number
  /** Asks and tells suspended on a full mailbox. */
  readonly waitingForMailbox: number
  /** Since start: messages handled successfully. */
  readonly handled: number
  /** Since start: restarts. */
  readonly restarts: number
  /** Since start: messages failed with `ActorDefect` (restart schedule exhausted). */
  readonly defects: number
  /** Since start: passivations (idle, evicted, shutdown). */
  readonly passivations: number
}

export interface ActorSupervisor<K extends string, M, Reply, E = never> {
  readonly name: string
  /**
   * Enqueue `message` for the actor of `key` (starting or rehydrating it) and wait for its reply.
   * Suspends while the mailbox is full. Interrupting the ask before the actor took the message
   * withdraws it; once taken, it is handled to the end and the reply dropped. Fails with the
   * behaviour's typed failures not in `restartOn`, `ActorDefect` when restarts ran out,
   * `MailboxFull` after `mailboxTimeout`, `SupervisorClosed` during shutdown.
   */
  readonly ask: (key: K, message: M) => Effect.Effect<Reply, E | ActorError>
  /**
   * Enqueue without waiting for the reply (still suspends while the mailbox is full). Failures
   * of a told message are logged.
   */
  readonly tell: (key: K, message: M) => Effect.Effect<void, MailboxFull | SupervisorClosed>
  readonly stats: Effect.Effect<ActorStats>
}

interface Envelope<M, Reply, E> {
  readonly message: M
  /** Absent for `tell`, and for an ask running in its asker's fiber (see `askIdle`). */
  reply: Deferred.Deferred<Reply, E | ActorError> | undefined
  /** Set while the envelope waits for room in a full mailbox. */
  admitted: Deferred.Deferred<void, SupervisorClosed> | undefined
  /** The asker went away before the actor took the message: skip it. */
  cancelled: boolean
}

interface Cell<K, S, M, Reply, E> {
  readonly key: K
  state: S | undefined
  loaded: boolean
  /** Head = the message in hand; it leaves only once handled, so a restart handles it again. */
  readonly mailbox: Array<Envelope<M, Reply, E>>
  /** Envelopes waiting for room, in arrival order; allocated only when needed. */
  overflow: Array<Envelope<M, Reply, E>> | undefined
  /** Holds a resident slot (else it waits for one in `admission`). */
  resident: boolean
  /** A drain fiber is working through the mailbox. */
  running: boolean
  idleSince: number
}

interface Config {
  readonly name: string
  readonly capacity: number
  readonly mailboxTimeout: Duration.Duration | undefined
  readonly maxActors: number
  readonly idleTimeout: Duration.Duration
  readonly restart: Schedule.Schedule<unknown, unknown>
  readonly passivationConcurrency: number
  readonly shutdownTimeout: Duration.Duration
}

const resolve = (options: ActorSupervisorOptions): Config => ({
  name: options.name ?? "actor",
  capacity: Math.max(1, options.mailboxCapacity ?? 64),
  mailboxTimeout: options.mailboxTimeout === undefined
    ? undefined
    : Duration.decode(options.mailboxTimeout),
  maxActors: Math.max(1, options.maxActors ?? 50_000),
  idleTimeout: Duration.decode(options.idleTimeout ?? "5 minutes"),
  restart: options.restart ?? defaultRestart,
  passivationConcurrency: Math.max(1, options.passivationConcurrency ?? 16),
  shutdownTimeout: Duration.decode(options.shutdownTimeout ?? "10 seconds"),
})

const signal = <X>(deferred: Deferred.Deferred<void, X> | undefined) => {
  if (deferred) Deferred.unsafeDone(deferred, Exit.void)
}

/**
 * Start a supervisor for `behaviour` in the current scope. Closing the scope shuts it down
 * gracefully: new messages are refused with `SupervisorClosed`, actors finish the message in
 * hand (up to `shutdownTimeout`), messages not started fail with `SupervisorClosed`, and every
 * resident actor is passivated (`onPassivate`).
 */
export const make = <K extends string, S, M, Reply, E = never, R = never>(
  behaviour: ActorBehaviour<K, S, M, Reply, E, R>,
  options: ActorSupervisorOptions = {},
): Effect.Effect<ActorSupervisor<K, M, Reply, E>, never, Scope.Scope | R> =>
  Effect.gen(function* () {
    type C = Cell<K, S, M, Reply, E>
    type Env = Envelope<M, Reply, E>
    const config = resolve(options)
    const { name, capacity } = config
    const clock = yield* Effect.clock
    // Passivations outlive drains at shutdown, so they run in a set of their own.
    const passivations = yield* FiberSet.make()
    const runPassivation = yield* FiberSet.runtime(passivations)<R>()
    const drains = yield* FiberSet.make()
    const runDrain = yield* FiberSet.runtime(drains)<R>()
    const passivationPermits = yield* Effect.makeSemaphore(config.passivationConcurrency)
    const restartOn = behaviour.restartOn ?? (() => false)
    /** What a drain fiber starts with, for an ask that runs in its asker's fiber. */
    const context = yield* Effect.context<R>()
    const annotations = yield* FiberRef.get(FiberRef.currentLogAnnotations)

    /** Every known key: resident actors and keys waiting for a slot. */
    const cells = new Map<K, C>()
    /** Resident idle actors, least recently used first (a Map keeps insertion order). */
    const idle = new Map<K, C>()
    /** Keys waiting for a resident slot, first come first served. */
    const admission: Array<C> = []
    /** Keys whose `onPassivate` is running: their next incarnation loads after it. */
    const stopping = new Map<K, Deferred.Deferred<void>>()
    let resident = 0
    let busy = 0
    let closed = false
    let idleWake: Deferred.Deferred<void> | undefined
    let quiet: Deferred.Deferred<void> | undefined
    const closing = Deferred.unsafeMake<void>(FiberId.none)
    const counters = { handled: 0, restarts: 0, defects: 0, passivations: 0 }

    const annotate = (key: K) => Effect.annotateLogs({ actor: name, key })
    const closedError = (key: K) => new SupervisorClosed({ actor: name, key })

    // All bookkeeping below is synchronous: nothing can interleave between a check and the
    // change it leads to (a fiber only yields between effects).

    const passivate = (cell: C): Effect.Effect<void, never, R> => {
      cells.delete(cell.key)
      idle.delete(cell.key)
      if (cell.resident) resident--
      cell.resident = false
      counters.passivations++
      const { loaded, state } = cell
      cell.state = undefined
      cell.loaded = false
      const done = Deferred.unsafeMake<void>(FiberId.none)
      stopping.set(cell.key, done)
      return Effect.suspend(() =>
        loaded && behaviour.onPassivate ? behaviour.onPassivate(cell.key, state as S) : Effect.void
      ).pipe(
        Effect.catchAllCause((cause) => Effect.logWarning("onPassivate failed", cause)),
        Effect.zipRight(Effect.logDebug("actor passivated")),
        passivationPermits.withPermits(1),
        annotate(cell.key),
        Effect.ensuring(Effect.sync(() => {
          if (stopping.get(cell.key) === done) stopping.delete(cell.key)
          signal(done)
        })),
      )
    }

    /** Give resident slots to waiting keys, evicting least recently used idle actors. */
    const admitWaiting = () => {
      while (admission.length > 0) {
        if (resident >= config.maxActors) {
          const lru = idle.values().next()
          if (lru.done) return
          runPassivation(passivate(lru.value))
        }
        const cell = admission.shift()!
        cell.resident = true
        resident++
        if (cell.mailbox.length > 0 && !cell.running) startDrain(cell)
      }
    }

    const startDrain = (cell: C) => {
      cell.running = true
      busy++
      idle.delete(cell.key)
      runDrain(drain(cell))
    }

    const stopRunning = (cell: C) => {
      cell.running = false
      busy--
      if (closed && busy === 0) signal(quiet)
    }

    const becomeIdle = (cell: C) => {
      stopRunning(cell)
      if (closed) return
      cell.idleSince = clock.unsafeCurrentTimeMillis()
      idle.set(cell.key, cell)
      signal(idleWake)
      idleWake = undefined
      admitWaiting()
    }

    /** Move waiting envelopes into the mailbox while there is room. */
    const refill = (cell: C) => {
      while (cell.overflow !== undefined && cell.mailbox.length < capacity) {
        const next = cell.overflow.shift()!
        if (cell.overflow.length === 0) cell.overflow = undefined
        cell.mailbox.push(next)
        signal(next.admitted)
      }
    }

    /** Fail every message of `cell` not yet handled. */
    const failPending = (cell: C, error: ActorError) => {
      const pending = cell.mailbox.splice(0).concat(cell.overflow ?? [])
      cell.overflow = undefined
      for (const env of pending) {
        if (env.reply) Deferred.unsafeDone(env.reply, Exit.fail(error))
        if (env.admitted) Deferred.unsafeDone(env.admitted, Exit.fail(closedError(cell.key)))
      }
    }

    /** `true`: in the mailbox; `false`: waiting for room in `overflow`. */
    const enqueue = (key: K, env: Env): boolean => {
      let cell = cells.get(key)
      if (cell === undefined) {
        cell = {
          key,
          state: undefined,
          loaded: false,
          mailbox: [env],
          overflow: undefined,
          resident: false,
          running: false,
          idleSince: 0,
        }
        cells.set(key, cell)
        admission.push(cell)
        admitWaiting()
        return true
      }
      if (cell.overflow === undefined && cell.mailbox.length < capacity) {
        cell.mailbox.push(env)
        if (cell.resident && !cell.running) startDrain(cell)
        return true
      }
      env.admitted = Deferred.unsafeMake(FiberId.none)
      ;(cell.overflow ??= []).push(env)
      return false
    }

    /** Take a waiting envelope back out of `overflow`; `false` if it already got in. */
    const withdraw = (key: K, env: Env): boolean => {
      const cell = cells.get(key)
      const at = cell?.overflow?.indexOf(env) ?? -1
      if (cell === undefined || at < 0) return false
      cell.overflow!.splice(at, 1)
      if (cell.overflow!.length === 0) cell.overflow = undefined
      return true
    }

    const admit = (key: K, env: Env): Effect.Effect<void, MailboxFull | SupervisorClosed> =>
      Effect.suspend(() => {
        if (closed) return Effect.fail(closedError(key))
        if (enqueue(key, env)) return Effect.void
        const wait = Deferred.await(env.admitted!)
        const timeout = config.mailboxTimeout
        const bounded = timeout === undefined ? wait : wait.pipe(
          Effect.timeoutOption(timeout),
          Effect.flatMap((admitted) =>
            Option.isNone(admitted) && withdraw(key, env)
              ? Effect.fail(new MailboxFull({ actor: name, key, capacity }))
              : Effect.void
          ),
        )
        return bounded.pipe(
          Effect.onInterrupt(() =>
            Effect.sync(() => {
              if (!withdraw(key, env)) env.cancelled = true
            })
          ),
        )
      })

    /** The next envelope to handle, or `undefined` after marking the actor idle or stopped. */
    const next = (cell: C): Env | undefined => {
      for (;;) {
        if (closed) {
          failPending(cell, closedError(cell.key))
          stopRunning(cell)
          return undefined
        }
        const head = cell.mailbox[0]
        if (head === undefined) {
          becomeIdle(cell)
          return undefined
        }
        if (!head.cancelled) return head
        cell.mailbox.shift()
        refill(cell)
      }
    }

    /** Load if needed, then receive; the state is replaced only on success. */
    const step = (cell: C, message: M): Effect.Effect<Reply, E, R> =>
      Effect.gen(function* () {
        if (!cell.loaded) {
          const loaded = yield* behaviour.load(cell.key)
          cell.state = loaded
          cell.loaded = true
        }
        const [state, reply] = yield* behaviour.receive(cell.state as S, message, cell.key)
        cell.state = state
        return reply
      })

    /** One attempt at `message`. */
    const attempt = (cell: C, message: M) => Effect.exit(Effect.suspend(() => step(cell, message)))

    /**
     * The asker's answer for an attempt that needs no restart: its reply, or a typed failure not
     * in `restartOn`. `undefined`: the actor must restart (a defect or a `restartOn` failure).
     */
    const settled = (exit: Exit.Exit<Reply, E>): Exit.Exit<Reply, E> | undefined => {
      if (Exit.isSuccess(exit)) {
        counters.handled++
        return exit
      }
      const failure = Cause.failureOption(exit.cause)
      return Option.isSome(failure) && !restartOn(failure.value)
        ? Exit.fail(failure.value)
        : undefined
    }

    /**
     * Handle one message under supervision: restart (reload, handle again) per the schedule.
     * `failed`: the first attempt was made elsewhere (`askIdle`) and failed with this cause.
     */
    const handle = (cell: C, message: M, failed?: Cause.Cause<E>) =>
      Effect.gen(function* () {
        let driver: Schedule.ScheduleDriver<unknown, unknown> | undefined
        let restarts = 0
        let last: Cause.Cause<unknown> = Cause.empty
        let exit: Exit.Exit<Reply, E> = failed === undefined
          ? yield* attempt(cell, message)
          : Exit.failCause(failed)
        for (;;) {
          const answer = settled(exit)
          if (answer !== undefined || Exit.isSuccess(exit)) {
            return (answer ?? exit) as Exit.Exit<Reply, E | ActorDefect>
          }
          // The in-memory state may be half-updated: drop it, storage is the truth.
          cell.state = undefined
          cell.loaded = false
          last = exit.cause
          // Counted and logged when the schedule decides, before its delay.
          driver ??= yield* Schedule.driver(config.restart.pipe(Schedule.onDecision((_, decision) =>
            ScheduleDecision.isContinue(decision)
              ? Effect.suspend(() => {
                restarts++
                counters.restarts++
                return Effect.logWarning("actor restarting", last).pipe(
                  Effect.annotateLogs({ restart: restarts }),
                )
              })
              : Effect.void
          )))
          // Shutdown cuts a restart delay short: the message then fails with the defect.
          const more = closed ? Option.none() : yield* Effect.raceFirst(
            Effect.option(driver.next(last)),
            Deferred.await(closing).pipe(Effect.as(Option.none())),
          )
          if (Option.isNone(more)) {
            counters.defects++
            yield* Effect.logError("actor failed; restarts exhausted", last).pipe(
              Effect.annotateLogs({ restarts }),
            )
            return Exit.fail(
              new ActorDefect({ actor: name, key: cell.key, restarts, cause: last }),
            )
          }
          exit = yield* attempt(cell, message)
        }
      })

    /** `failed`: the message in hand was tried in its asker's fiber and must restart. */
    const drain = (cell: C, failed?: Cause.Cause<E>): Effect.Effect<void, never, R> =>
      Effect.gen(function* () {
        const previous = stopping.get(cell.key)
        if (previous) yield* Deferred.await(previous)
        for (let restart = failed;; restart = undefined) {
          const env = restart === undefined ? next(cell) : cell.mailbox[0]
          if (env === undefined) return
          const exit = yield* handle(cell, env.message, restart)
          cell.mailbox.shift()
          refill(cell)
          if (env.reply) Deferred.unsafeDone(env.reply, exit)
          else if (Exit.isFailure(exit)) {
            yield* Effect.logWarning("told message failed", exit.cause)
          }
        }
      }).pipe(
        Effect.onExit((exit) =>
          Effect.sync(() => {
            if (!cell.running) return
            // Interrupted (shutdown timeout): what is in hand may be half done, drop the state.
            cell.state = undefined
            cell.loaded = false
            failPending(
              cell,
              closed || Exit.isSuccess(exit)
                ? closedError(cell.key)
                : new ActorDefect({ actor: name, key: cell.key, restarts: 0, cause: exit.cause }),
            )
            becomeIdle(cell)
          })
        ),
        annotate(cell.key),
      )

    const sweeper = Effect.gen(function* () {
      const idleMillis = Duration.toMillis(config.idleTimeout)
      for (;;) {
        const action = yield* Effect.sync(() => {
          const oldest = idle.values().next()
          if (oldest.done) {
            idleWake = Deferred.unsafeMake(FiberId.none)
            return { wait: idleWake }
          }
          const now = clock.unsafeCurrentTimeMillis()
          const remaining = oldest.value.idleSince + idleMillis - now
          if (remaining > 0) return { sleep: remaining }
          const expired: Array<C> = []
          for (const cell of idle.values()) {
            if (cell.idleSince + idleMillis > now) break
            expired.push(cell)
          }
          for (const cell of expired) runPassivation(passivate(cell))
          admitWaiting()
          return {}
        })
        if (action.wait) yield* Deferred.await(action.wait)
        else if (action.sleep !== undefined) yield* Effect.sleep(Duration.millis(action.sleep))
      }
    })
    const sweeperFiber: Fiber.RuntimeFiber<void> | undefined = Duration.isFinite(config.idleTimeout)
      ? yield* Effect.forkDaemon(sweeper)
      : undefined

    yield* Effect.addFinalizer(() =>
      Effect.gen(function* () {
        closed = true
        signal(closing)
        if (sweeperFiber) yield* Fiber.interrupt(sweeperFiber)
        for (const cell of admission.splice(0)) {
          failPending(cell, closedError(cell.key))
          cells.delete(cell.key)
        }
        if (busy > 0) {
          quiet = Deferred.unsafeMake(FiberId.none)
          yield* Deferred.await(quiet).pipe(
            // Finalizers are uninterruptible: without this the timeout could never stop the wait.
            Effect.interruptible,
            Effect.timeout(config.shutdownTimeout),
            Effect.ignore,
          )
          yield* FiberSet.clear(drains)
        }
        for (const cell of [...cells.values()]) runPassivation(passivate(cell))
        yield* FiberSet.awaitEmpty(passivations).pipe(
          Effect.interruptible,
          Effect.timeout(config.shutdownTimeout),
          Effect.ignore,
        )
        yield* Effect.logDebug("actor supervisor stopped").pipe(
          Effect.annotateLogs({ actor: name, passivations: counters.passivations }),
        )
      })
    )

    /**
     * Run `self` (which cannot fail, uninterruptibly) in the asker's fiber as a drain fiber would
     * run it: with the supervisor's context and log annotations plus the actor's name and key;
     * the asker's are put back after. Set by hand: `Effect.provide` and `Effect.annotateLogs`
     * cost some forty operations per message.
     */
    const inActor = <A>(cell: C, self: Effect.Effect<A, never, R>): Effect.Effect<A> =>
      Effect.withFiberRuntime<A>((fiber) => {
        const askerContext = fiber.getFiberRef(FiberRef.currentContext)
        const askerAnnotations = fiber.getFiberRef(FiberRef.currentLogAnnotations)
        const restore = (a: A) =>
          FiberRef.set(FiberRef.currentContext, askerContext).pipe(
            Effect.zipRight(FiberRef.set(FiberRef.currentLogAnnotations, askerAnnotations)),
            Effect.as(a),
          )
        return FiberRef.set(FiberRef.currentContext, context).pipe(
          Effect.zipRight(FiberRef.set(
            FiberRef.currentLogAnnotations,
            HashMap.set(HashMap.set(annotations, "actor", name), "key", cell.key),
          )),
          Effect.zipRight(self as Effect.Effect<A>),
          Effect.flatMap(restore),
        )
      })

    /**
     * An ask to an idle actor (resident, its mailbox empty) runs in the asker's fiber: no drain
     * fiber to fork, no reply to hand over, no hop through the scheduler. That was a third of the
     * Effect operations of a message through the inbound pipeline. Everything else is as in a
     * drain: the message is the head of the mailbox while it runs, so messages arriving meanwhile
     * queue behind it (a drain fiber takes them on after it), and it is handled to the end even if
     * the asker is interrupted (the reply is then dropped). If it must restart, a drain fiber takes
     * it over under the restart schedule and the asker waits for its reply as for any other.
     */
    const askIdle = (cell: C, message: M): Effect.Effect<Reply, E | ActorError> =>
      Effect.uninterruptibleMask((restore) => {
        const env: Env = { message, reply: undefined, admitted: undefined, cancelled: false }
        cell.mailbox.push(env)
        cell.running = true
        busy++
        idle.delete(cell.key)
        return inActor(cell, attempt(cell, message)).pipe(
          Effect.flatMap((exit): Effect.Effect<Reply, E | ActorError> => {
            const answer = settled(exit)
            if (answer !== undefined || Exit.isSuccess(exit)) {
              cell.mailbox.shift()
              refill(cell)
              if (cell.mailbox.length > 0) runDrain(drain(cell))
              else becomeIdle(cell)
              return answer ?? exit
            }
            const reply = Deferred.unsafeMake<Reply, E | ActorError>(FiberId.none)
            env.reply = reply
            runDrain(drain(cell, exit.cause))
            return restore(Deferred.await(reply))
          }),
        )
      })

    /** An ask that waits in the mailbox (or for room in it) for the actor's drain fiber. */
    const askQueued = Effect.fnUntraced(function* (key: K, message: M) {
      const reply = yield* Deferred.make<Reply, E | ActorError>()
      const env: Env = { message, reply, admitted: undefined, cancelled: false }
      yield* admit(key, env)
      return yield* Deferred.await(reply).pipe(
        Effect.onInterrupt(() => Effect.sync(() => (env.cancelled = true))),
      )
    })

    // ask, tell and receive carry no spans: they run per message, and a span costs a stack
    // capture each. Logs inside an actor are annotated with its name and key (`annotate`).
    const ask = (key: K, message: M): Effect.Effect<Reply, E | ActorError> =>
      Effect.suspend(() => {
        const cell = cells.get(key)
        return !closed && cell !== undefined && cell.resident && !cell.running &&
            cell.mailbox.length === 0 && cell.overflow === undefined
          ? askIdle(cell, message)
          : askQueued(key, message)
      })

    const tell = Effect.fnUntraced(function* (key: K, message: M) {
      yield* admit(key, { message, reply: undefined, admitted: undefined, cancelled: false })
    })

    const readStats = (): ActorStats => {
      let total = 0
      let max = 0
      let waiting = 0
      for (const cell of cells.values()) {
        const depth = cell.mailbox.length
        total += depth
        if (depth > max) max = depth
        waiting += cell.overflow?.length ?? 0
      }
      return {
        resident,
        busy,
        waitingForSlot: admission.length,
        passivating: stopping.size,
        mailboxDepthTotal: total,
        mailboxDepthMax: max,
        waitingForMailbox: waiting,
        ...counters,
      }
    }
    const stats = Effect.sync(readStats)
    // For GET /metrics (core/metrics/CoreMetrics.ts), until the supervisor stops.
    const unregister = registerActors(name, readStats)
    yield* Effect.addFinalizer(() => Effect.sync(unregister))

    return { name, ask, tell, stats } satisfies ActorSupervisor<K, M, Reply, E>
  })

/**
 * A layer providing a supervisor under `tag`, e.g.
 * `class Conversations extends Context.Tag("chorus/actors/Conversations")<Conversations,
 * ActorSupervisor<ConversationId, ConversationMessage, Reply, ConversationError>>() {}` and
 * `layer(Conversations, conversationBehaviour, { name: "conversation" })`.
 */
export const layer = <I, K extends string, S, M, Reply, E = never, R = never>(
  tag: Context.Tag<I, ActorSupervisor<K, M, Reply, E>>,
  behaviour: ActorBehaviour<K, S, M, Reply, E, R>,
  options: ActorSupervisorOptions = {},
): Layer.Layer<I, never, Exclude<R, Scope.Scope>> =>
  Layer.scoped(tag, make(behaviour, options)) as Layer.Layer<I, never, Exclude<R, Scope.Scope>>
