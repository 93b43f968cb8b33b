/**
 * The client side of a durable consumer, shared by every bus backend.
 *
 * A backend only provides a `ConsumerSource` (pull deliveries, ack, nak with delay, extend the
 * ack deadline, dead-letter). Everything a handler observes — concurrency, per-key ordering,
 * handler timeouts, retry delays, dead-lettering after `maxDeliver`, replay targeting, graceful
 * stop — is decided here once, so the JetStream and embedded buses cannot drift apart.
 *
 * Per-key ordering across failures: a failed message is nak'd on the bus (so the bus owns the
 * retry and its delivery count survives a crash) and its key's lane stays blocked on it until
 * the redelivery arrives; later messages of that key wait behind it. Lanes are kept sorted by
 * stream sequence, so a redelivery that overtakes newer messages still runs first.
 *
 * Lost deliveries: a backend whose deliveries can be lost on the way (a connection that dies
 * with some on the wire; the server keeps them pending until `ack_wait` while it delivers newer
 * ones) offers `rewind`. Once it reports a loss, the runner starts nothing more, lets running
 * handlers finish and settle, forgets everything it holds, and has the source start again after
 * what was acknowledged, so every key resumes at its oldest unacknowledged message.
 */
import {
  Cause,
  Chunk,
  Duration,
  Effect,
  Exit,
  Fiber,
  FiberSet,
  HashSet,
  Schedule,
  type Scope,
} from "effect"
import {
  type BusError,
  BusHeader,
  type BusMessage,
  type ConsumerSpec,
  describeCause,
  type Disposition,
  type Handler,
} from "./Bus.ts"
import { retryAfterFailure } from "../effect/retry.ts"
import { interruptAfter } from "../effect/timeout.ts"
import { makeWakeup } from "../effect/Wakeup.ts"
import { registerConsumer } from "../metrics/CoreMetrics.ts"

/** One delivery as a backend hands it over. */
export interface Delivery {
  readonly message: BusMessage
  readonly ack: Effect.Effect<void, BusError>
  readonly nak: (delay: Duration.Duration) => Effect.Effect<void, BusError>
  /** Push the ack deadline out by another `ackWait`. */
  readonly inProgress: Effect.Effect<void, BusError>
}

export interface ConsumerSource {
  /**
   * Wait up to `expires` for deliveries; return at most `max` (possibly none). The runner pulls
   * even when it holds `maxAckPending` messages if some of them wait for a redelivery after a
   * nak, so the backend must cap outstanding deliveries (nak'd ones included) at
   * `maxAckPending` itself, as JetStream's `max_ack_pending` does.
   */
  readonly pull: (
    max: number,
    expires: Duration.Duration,
  ) => Effect.Effect<ReadonlyArray<Delivery>, BusError>
  /**
   * Store the delivery as a dead letter with `reason` and `deliveries`, then remove it from the
   * consumer for good. Idempotent per (consumer, stream sequence).
   */
  readonly deadLetter: (
    delivery: Delivery,
    reason: string,
    deliveries: number,
  ) => Effect.Effect<void, BusError>
  /**
   * For ordered consumers of a backend that can lose deliveries. `needed` turns true when the
   * source lost some (it then delivers nothing more); the runner lets its running handlers
   * settle, drops what it holds (without nak: the source takes everything back) and runs `run`,
   * which restarts delivery after the acknowledged messages. Runs again after a failure.
   */
  readonly rewind?: {
    readonly needed: () => boolean
    readonly run: Effect.Effect<void, BusError>
  }
}

export interface ResolvedConsumerSpec {
  readonly stream: string
  readonly name: string
  readonly filter: string | undefined
  readonly ackWait: Duration.Duration
  readonly maxDeliver: number
  readonly maxAckPending: number
  readonly concurrency: number
  readonly ordering: "none" | "key"
  readonly handlerTimeout: Duration.Duration
  readonly retry: Schedule.Schedule<unknown, unknown>
  readonly startAt: "all" | "new"
}

export const defaultRetry: Schedule.Schedule<unknown, unknown> = Schedule.exponential(
  "500 millis",
).pipe(Schedule.either(Schedule.spaced("30 seconds")))

export const resolveConsumerSpec = (spec: ConsumerSpec): ResolvedConsumerSpec => ({
  stream: spec.stream,
  name: spec.name,
  filter: spec.filter,
  ackWait: Duration.decode(spec.ackWait ?? "30 seconds"),
  maxDeliver: Math.max(1, spec.maxDeliver ?? 5),
  maxAckPending: Math.max(1, spec.maxAckPending ?? 256),
  concurrency: Math.max(1, spec.concurrency ?? 16),
  ordering: spec.ordering ?? "none",
  handlerTimeout: Duration.decode(spec.handlerTimeout ?? "30 seconds"),
  retry: spec.retry ?? defaultRetry,
  startAt: spec.startAt ?? "all",
})

/** The delay the retry schedule prescribes before delivery number `failedDeliveries + 1`. */
export const retryDelay = (
  schedule: Schedule.Schedule<unknown, unknown>,
  failedDeliveries: number,
): Effect.Effect<Duration.Duration> =>
  Schedule.run(
    Schedule.delays(schedule),
    0,
    Array.from({ length: Math.max(1, failedDeliveries) }, () => undefined),
  ).pipe(
    Effect.map((delays) => Chunk.last(delays)),
    Effect.map((last) => (last._tag === "Some" ? last.value : Duration.zero)),
  )

/** A failed pull is tried again after 100, 200, 400 ms…, at most every 5 s. */
const FIRST_PULL_RETRY = "100 millis"
const laterPullRetries = Schedule.exponential("200 millis").pipe(
  Schedule.either(Schedule.spaced("5 seconds")),
)

/** This fiber is being interrupted (the consumer stops), as opposed to a handler that gave up. */
const stoppedFromOutside = Effect.descriptorWith((d) =>
  Effect.succeed(HashSet.size(d.interruptors) > 0)
)

type Status = "queued" | "running" | "waiting"
interface Held {
  delivery: Delivery
  status: Status
  readonly key: string
}
interface Lane {
  readonly seqs: Array<number>
  running: boolean
}

const insertSorted = (seqs: Array<number>, seq: number) => {
  let i = seqs.length
  while (i > 0 && seqs[i - 1]! > seq) i--
  seqs.splice(i, 0, seq)
}

/**
 * Run `handler` over `source` in the background of the current scope. Closing the scope stops
 * pulling, waits (up to `drainTimeout`) for running handlers and hands queued deliveries back.
 */
export const runConsumer = <E, R>(
  spec: ResolvedConsumerSpec,
  source: ConsumerSource,
  handler: Handler<E, R>,
  options: { readonly drainTimeout?: Duration.DurationInput } = {},
): Effect.Effect<void, never, Scope.Scope | R> =>
  Effect.gen(function* () {
    const fibers = yield* FiberSet.make()
    const fork = yield* FiberSet.runtime(fibers)<R>()
    /** The pull loop, waiting for room: a delivery was settled or is waiting for its redelivery. */
    const wake = makeWakeup()
    /** Room for this many more deliveries wakes a full pull loop. */
    const lowWater = Math.max(1, Math.min(64, Math.floor(spec.maxAckPending / 4)))
    /** Held deliveries with status `waiting` (nak'd, waiting for their redelivery). */
    let waiting = 0
    const held = new Map<number, Held>()
    const lanes = new Map<string, Lane>()
    let running = 0
    /** Handlers holding one of the `concurrency` slots (from their start to their handler's end). */
    let slots = 0
    /**
     * Deliveries ready to run, waiting for a slot, oldest first. Not forked yet: a semaphore with
     * hundreds of fibers waiting on it wakes them all at every release (each but one goes back to
     * waiting), which at `maxAckPending` 1,024 cost more than the handlers themselves.
     */
    let ready: Array<number> = []
    /** Handler fibers forked and not yet done (running or settling). */
    let active = 0
    let stopping = false
    /** While the source rewinds: nothing new starts. */
    let paused = false
    const log = Effect.annotateLogs({ consumer: spec.name, stream: spec.stream })
    // For GET /metrics (core/metrics/CoreMetrics.ts), until the consumer stops.
    const { figures, unregister } = registerConsumer(
      { stream: spec.stream, consumer: spec.name },
      { held: () => held.size, running: () => running, waiting: () => waiting },
    )
    yield* Effect.addFinalizer(() => Effect.sync(unregister))

    const release = (seq: number) => {
      const entry = held.get(seq)
      held.delete(seq)
      if (entry?.status === "waiting") waiting--
      if (entry && spec.ordering === "key") {
        const lane = lanes.get(entry.key)
        if (lane) {
          const at = lane.seqs.indexOf(seq)
          if (at >= 0) lane.seqs.splice(at, 1)
          lane.running = false
          if (lane.seqs.length === 0) lanes.delete(entry.key)
          else pump(lane)
        }
      }
      if (spec.maxAckPending - held.size >= lowWater) wake.notify()
    }

    /** The common end of a delivery: acknowledge it (retried twice), then let its key go on. */
    const acknowledge = (seq: number, delivery: Delivery) =>
      delivery.ack.pipe(
        Effect.as(true),
        // Built only when needed: a retry schedule per message is a measurable cost.
        Effect.catchAll(() =>
          delivery.ack.pipe(
            Effect.retry(Schedule.recurs(2).pipe(Schedule.addDelay(() => "100 millis"))),
            Effect.as(true),
            Effect.catchAll((e) =>
              Effect.logWarning("ack failed; message may be redelivered", e).pipe(
                log,
                Effect.as(false),
              )
            ),
          )
        ),
        Effect.map((acknowledged) => {
          if (acknowledged) figures.acknowledged++
          release(seq)
        }),
      )

    const settle = (
      seq: number,
      exit: Exit.Exit<Disposition | void, unknown>,
    ): Effect.Effect<void> => {
      const entry = held.get(seq)
      if (!entry) return Effect.void
      const { delivery } = entry
      const value = Exit.isSuccess(exit) ? exit.value : undefined
      if (Exit.isSuccess(exit) && (value === undefined || value._tag === "Ack")) {
        return acknowledge(seq, delivery)
      }
      return Effect.gen(function* () {
        const count = delivery.message.deliveryCount
        let failure: { reason: string; delay: Duration.Duration | undefined } | undefined
        let deadNow: string | undefined
        if (Exit.isSuccess(exit)) {
          const d = exit.value
          if (d && d._tag === "Nak") {
            failure = { reason: d.reason, delay: Duration.decode(d.delay) }
          } else if (d && d._tag === "DeadLetter") deadNow = d.reason
        } else {
          const cause = exit.cause
          const reason = Cause.isInterruptedOnly(cause)
            ? "interrupted"
            : Cause.failureOption(cause).pipe((o) =>
              o._tag === "Some" ? describeCause(o.value) : Cause.pretty(cause)
            )
          failure = { reason, delay: undefined }
        }
        if (deadNow === undefined && failure && count >= spec.maxDeliver) deadNow = failure.reason
        if (deadNow !== undefined) {
          yield* source.deadLetter(delivery, deadNow, count).pipe(
            Effect.tap(() => {
              figures.deadLettered++
              return Effect.logWarning("message dead-lettered").pipe(
                Effect.annotateLogs({
                  seq,
                  subject: delivery.message.subject,
                  deliveries: count,
                  reason: deadNow,
                }),
              )
            }),
            Effect.catchAll((e) =>
              Effect.logError("could not dead-letter; the bus will redeliver it", e)
            ),
            log,
          )
          release(seq)
        } else if (failure) {
          const delay = failure.delay ?? (yield* retryDelay(spec.retry, count))
          yield* Effect.logDebug("handler failed; redelivery scheduled").pipe(
            Effect.annotateLogs({ seq, deliveries: count, reason: failure.reason }),
            log,
          )
          entry.status = "waiting"
          waiting++
          figures.retried++
          yield* delivery.nak(delay).pipe(
            Effect.catchAll((e) =>
              Effect.logWarning("nak failed; redelivery after ack wait", e).pipe(log)
            ),
          )
          if (spec.ordering === "key") {
            const lane = lanes.get(entry.key)
            if (lane) lane.running = false
          }
          // A full consumer now pulls for this redelivery (see pullLoop): wake it.
          wake.notify()
        } else yield* acknowledge(seq, delivery)
      })
    }

    /** A slot is free again: start the oldest ready deliveries that still wait to run. */
    const freeSlot = () => {
      slots--
      while (slots < spec.concurrency && ready.length > 0 && !stopping && !paused) {
        const seq = ready.shift()!
        if (held.get(seq)?.status === "queued") launch(seq)
      }
    }

    const timeoutMillis = Duration.toMillis(spec.handlerTimeout)

    /**
     * One delivery, start to settle, in one fiber. Only the handler is interruptible: a Node timer
     * interrupts this fiber when the handler overruns `handlerTimeout` (`Effect.timeout` would race
     * a second fiber), and the settle (nak, then retry or dead letter) still runs. A fiber
     * interrupted by the stop skips the settle: the bus redelivers what was not acknowledged.
     */
    const execute = (seq: number, counted: { running: boolean }) =>
      Effect.uninterruptibleMask((restore) =>
        Effect.withFiberRuntime<void, never, R>((fiber) => {
          const entry = held.get(seq)
          // Forked just before a stop: it stays queued, and the stop hands it back.
          if (!entry || stopping || paused) {
            if (entry) entry.status = "queued"
            freeSlot()
            return Effect.void
          }
          // Counted as running until settled, so a graceful stop waits for the ack too.
          running++
          counted.running = true
          const alarm = interruptAfter(fiber, timeoutMillis)
          // The slot bounds handlers, not acks: a confirmed ack is a round trip to the bus, and
          // holding a handler slot through it would cap throughput at concurrency / ack latency.
          return Effect.exit(restore(Effect.suspend(() => handler(entry.delivery.message)))).pipe(
            Effect.flatMap((exit) => {
              alarm.cancel()
              freeSlot()
              const timedOut = alarm.timedOut() && Exit.isInterrupted(exit)
              if (timedOut) {
                figures.timedOut++
                return settle(
                  seq,
                  Exit.fail(`handler timed out after ${Duration.format(spec.handlerTimeout)}`),
                )
              }
              return Exit.isInterrupted(exit)
                ? Effect.flatMap(
                  stoppedFromOutside,
                  (stopped) => (stopped ? Effect.void : settle(seq, exit)),
                )
                : settle(seq, exit)
            }),
          )
        })
      )

    const launch = (seq: number) => {
      // Marked at once, so a later look at the entry (a redelivery, the ready list) sees it taken.
      held.get(seq)!.status = "running"
      slots++
      active++
      // Counters follow the fiber's end (an observer costs no Effect operations; it also runs
      // for a fiber interrupted before it started).
      const counted = { running: false }
      fork(execute(seq, counted)).addObserver(() => {
        active--
        if (counted.running) running--
      })
    }

    const start = (seq: number) => {
      if (stopping || paused) return
      if (slots < spec.concurrency) launch(seq)
      else ready.push(seq)
    }

    const pump = (lane: Lane) => {
      if (lane.running || stopping || paused) return
      const head = lane.seqs[0]
      if (head === undefined) return
      const entry = held.get(head)
      if (!entry || entry.status !== "queued") return
      lane.running = true
      start(head)
    }

    const dispatch = (delivery: Delivery) =>
      Effect.gen(function* () {
        const message = delivery.message
        const target = message.headers[BusHeader.replayFor]
        if (target !== undefined && target !== spec.name) {
          yield* delivery.ack.pipe(Effect.ignore)
          return
        }
        figures.delivered++
        const existing = held.get(message.seq)
        if (existing) {
          // A redelivery of something we hold: keep the newest handle; run it if it was waiting.
          existing.delivery = delivery
          if (existing.status === "waiting") {
            existing.status = "queued"
            waiting--
            if (spec.ordering === "key") {
              const lane = lanes.get(existing.key)
              if (lane) pump(lane)
            } else start(message.seq)
          }
          return
        }
        if (message.deliveryCount > spec.maxDeliver) {
          // The previous holder crashed or hung on its last allowed delivery.
          yield* source.deadLetter(
            delivery,
            `delivered ${
              message.deliveryCount - 1
            } times without an acknowledgement (consumer crashed or timed out)`,
            message.deliveryCount - 1,
          ).pipe(
            Effect.tap(() => {
              figures.deadLettered++
            }),
            Effect.catchAll((e) => Effect.logError("could not dead-letter", e)),
          )
          return
        }
        const key = message.key ?? message.subject
        held.set(message.seq, { delivery, status: "queued", key })
        if (spec.ordering === "key") {
          let lane = lanes.get(key)
          if (!lane) {
            lane = { seqs: [], running: false }
            lanes.set(key, lane)
          }
          insertSorted(lane.seqs, message.seq)
          pump(lane)
        } else start(message.seq)
      })

    const heartbeat = Effect.gen(function* () {
      for (const entry of held.values()) {
        if (entry.status !== "waiting") yield* entry.delivery.inProgress.pipe(Effect.ignore)
      }
    }).pipe(
      Effect.repeat(Schedule.spaced(
        Duration.divide(spec.ackWait, 3).pipe((d) => d._tag === "Some" ? d.value : spec.ackWait),
      )),
    )

    const rewind = (r: NonNullable<ConsumerSource["rewind"]>) =>
      Effect.gen(function* () {
        paused = true
        yield* Effect.logInfo("deliveries were lost; rewinding to the oldest unacknowledged")
        yield* Effect.suspend(() => (active === 0 ? Effect.void : Effect.fail("busy"))).pipe(
          Effect.retry(Schedule.spaced("10 millis")),
        )
        // What we hold comes again from the source, in stream order.
        held.clear()
        waiting = 0
        lanes.clear()
        ready = []
        yield* r.run.pipe(
          Effect.tapError((e) => Effect.logWarning("rewind failed; retrying", e)),
          Effect.retry(
            Schedule.exponential("100 millis").pipe(Schedule.either(Schedule.spaced("2 seconds"))),
          ),
        )
        paused = false
      })

    const pullLoop = Effect.gen(function* () {
      if (source.rewind?.needed()) return yield* rewind(source.rewind)
      // Pull when there is room for a batch (one pull per released message cost a turn of this
      // loop each), or for the redeliveries of nak'd messages we wait on: nothing else frees a
      // slot when every held message is failed or queued behind a failed one.
      const room = spec.maxAckPending - held.size
      const max = room >= lowWater ? room : waiting > 0 ? Math.max(room, waiting) : 0
      if (max <= 0) {
        yield* wake.wait(1_000)
        return
      }
      // A pull often brings one or two deliveries: its retry is built only after a failure.
      const deliveries = yield* retryAfterFailure(
        source.pull(Math.min(max, 256), Duration.seconds(1)),
        {
          first: FIRST_PULL_RETRY,
          later: laterPullRetries,
          onRetry: (e) => Effect.logWarning("pull failed; retrying", e),
        },
      )
      for (const d of deliveries) yield* dispatch(d)
    }).pipe(Effect.forever, log)

    const pullFiber = yield* Effect.forkDaemon(pullLoop)
    const beatFiber = yield* Effect.forkDaemon(heartbeat)

    yield* Effect.addFinalizer(() =>
      Effect.gen(function* () {
        stopping = true
        yield* Fiber.interrupt(pullFiber)
        // Let running handlers finish, then hand everything not started back to the bus.
        yield* Effect.suspend(() => (running === 0 ? Effect.void : Effect.fail("busy"))).pipe(
          Effect.retry(Schedule.spaced("20 millis")),
          // Finalizers are uninterruptible: without this the timeout could never stop the wait.
          Effect.interruptible,
          Effect.timeout(options.drainTimeout ?? "10 seconds"),
          Effect.ignore,
        )
        for (const [seq, entry] of held) {
          if (entry.status === "queued") {
            yield* entry.delivery.nak(Duration.zero).pipe(Effect.ignore)
            held.delete(seq)
          }
        }
        yield* Fiber.interrupt(beatFiber)
      }).pipe(log)
    )
  })
