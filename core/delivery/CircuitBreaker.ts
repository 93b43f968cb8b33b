/**
 * A circuit breaker for one channel account: Effect has none, so this is a small service over a
 * `Ref` and the `Clock` (tested with `TestClock`).
 *
 * - **closed**: calls go through; it trips (opens) after `consecutiveFailures` failures in a row,
 *   or when at least `minCalls` calls in the last `window` failed at `failureRate` or more.
 * - **open**: calls fail at once with `CircuitOpen` (saying when it may close) for a time taken
 *   from the `openFor` Schedule: its first delay the first time, its next delay each time a probe
 *   fails again (so an outage that lasts is probed less and less often), afresh once it closes.
 * - **half-open**: after that time one call, a single probe, goes through; the others still get
 *   `CircuitOpen`. The probe's success closes the breaker; its failure opens it again.
 *
 * Only failures that say the provider is unwell count (`failure`: 5xx, timeouts, network);
 * a permanent rejection of one message is the provider working (`success`).
 *
 * @example
 * ```ts
 * import { Effect, Schedule } from "effect"
 * import * as CircuitBreaker from "./core/delivery/CircuitBreaker.ts"
 *
 * const program = Effect.gen(function* () {
 *   const breaker = yield* CircuitBreaker.make({
 *     consecutiveFailures: 5, // default
 *     openFor: Schedule.exponential("5 seconds"), // default: 5 s doubling, at most 5 minutes
 *   })
 *   const permit = yield* breaker.acquire // fails with CircuitOpen while open
 *   yield* breaker.record(permit, "failure")
 *   return yield* breaker.snapshot
 * })
 * ```
 */
import { Clock, Data, Duration, Effect, Option, Ref, Schedule, SynchronizedRef } from "effect"

export type BreakerState = "closed" | "open" | "half_open"

/** The breaker refused the call: it is open, or half-open with its probe under way. */
export class CircuitOpen extends Data.TaggedError("CircuitOpen")<{
  readonly state: "open" | "half_open"
  /** How long until a probe may go (0 while the probe is under way). */
  readonly retryAfter: Duration.Duration
}> {
  override get message() {
    return this.state === "open"
      ? `circuit open: the provider is failing; next probe in ${Duration.format(this.retryAfter)}`
      : "circuit half-open: a probe call is under way"
  }
}

export interface CircuitBreakerOptions {
  /** Failures in a row that open the breaker. Default: 5. */
  readonly consecutiveFailures?: number
  /** Share of failed calls in `window` that opens the breaker. Default: 0.5. */
  readonly failureRate?: number
  /** The window for `failureRate`. Default: 60 seconds. */
  readonly window?: Duration.DurationInput
  /** Calls in `window` before `failureRate` applies. Default: 20. */
  readonly minCalls?: number
  /**
   * How long it stays open: the schedule's first delay the first time, the next one after each
   * failed probe. Default: exponential from 5 seconds, at most 5 minutes.
   */
  readonly openFor?: Schedule.Schedule<unknown, unknown>
  /** Told every change of state (health, alerts, logs). */
  readonly onChange?: (from: BreakerState, to: BreakerState) => Effect.Effect<void>
}

/** What `acquire` hands out; give it back to `record`. */
export interface Permit {
  readonly probe: boolean
}

export interface BreakerSnapshot {
  readonly state: BreakerState
  readonly consecutiveFailures: number
  /** Calls and failures in the current window. */
  readonly calls: number
  readonly failures: number
  /** Epoch ms when an open breaker lets its next probe through. */
  readonly probeAt: number | undefined
  /** Times it opened since it was made. */
  readonly trips: number
}

export interface CircuitBreaker {
  readonly acquire: Effect.Effect<Permit, CircuitOpen>
  readonly record: (permit: Permit, outcome: "success" | "failure") => Effect.Effect<void>
  readonly snapshot: Effect.Effect<BreakerSnapshot>
}

export const defaultOpenFor: Schedule.Schedule<Duration.Duration, unknown> = Schedule
  .exponential("5 seconds").pipe(
    Schedule.modifyDelay((_, d) => Duration.min(d, Duration.minutes(5))),
    Schedule.map((d) => Duration.min(d, Duration.minutes(5))),
  )

interface Internal {
  readonly state: BreakerState
  readonly consecutive: number
  /** Recent calls: [epoch ms, failed]. */
  readonly recent: ReadonlyArray<readonly [number, boolean]>
  /** Opened this many times in a row without closing (the `openFor` step). */
  readonly reopenings: number
  readonly probeAt: number | undefined
  readonly probing: boolean
  readonly trips: number
}

/** The `n`-th delay (1-based) of `schedule`, or its last one if it ends sooner. */
export const nthDelay = (
  schedule: Schedule.Schedule<unknown, unknown>,
  n: number,
): Effect.Effect<Duration.Duration> =>
  Schedule.run(Schedule.delays(schedule), 0, Array.from({ length: Math.max(1, n) }, () => 0)).pipe(
    Effect.map((delays) => {
      const all = [...delays]
      return all[all.length - 1] ?? Duration.zero
    }),
  )

export const make = (options: CircuitBreakerOptions = {}): Effect.Effect<CircuitBreaker> =>
  Effect.gen(function* () {
    const consecutiveLimit = Math.max(1, options.consecutiveFailures ?? 5)
    const rateLimit = options.failureRate ?? 0.5
    const windowMs = Duration.toMillis(Duration.decode(options.window ?? "60 seconds"))
    const minCalls = Math.max(1, options.minCalls ?? 20)
    const openFor = options.openFor ?? defaultOpenFor
    const onChange = options.onChange ?? (() => Effect.void)
    const ref = yield* SynchronizedRef.make<Internal>({
      state: "closed",
      consecutive: 0,
      recent: [],
      reopenings: 0,
      probeAt: undefined,
      probing: false,
      trips: 0,
    })

    const open = (s: Internal, now: number) =>
      nthDelay(openFor, s.reopenings + 1).pipe(Effect.map((delay): Internal => ({
        ...s,
        state: "open",
        probing: false,
        reopenings: s.reopenings + 1,
        probeAt: now + Duration.toMillis(delay),
        trips: s.trips + 1,
      })))

    const acquire = Effect.gen(function* () {
      const now = yield* Clock.currentTimeMillis
      const [result, change] = yield* Ref.modify(
        ref,
        (s): readonly [
          readonly [Permit | CircuitOpen, Option.Option<readonly [BreakerState, BreakerState]>],
          Internal,
        ] => {
          if (s.state === "closed") return [[{ probe: false }, Option.none()], s]
          if (s.state === "open" && s.probeAt !== undefined && now >= s.probeAt) {
            return [[{ probe: true }, Option.some(["open", "half_open"] as const)], {
              ...s,
              state: "half_open",
              probing: true,
            }]
          }
          if (s.state === "half_open" && !s.probing) {
            return [[{ probe: true }, Option.none()], { ...s, probing: true }]
          }
          return [[
            new CircuitOpen({
              state: s.state,
              retryAfter: Duration.millis(
                s.state === "open" ? Math.max(0, (s.probeAt ?? now) - now) : 0,
              ),
            }),
            Option.none(),
          ], s]
        },
      )
      if (Option.isSome(change)) yield* onChange(change.value[0], change.value[1])
      if (result instanceof CircuitOpen) return yield* result
      return result
    })

    const record = (permit: Permit, outcome: "success" | "failure") =>
      Effect.gen(function* () {
        const now = yield* Clock.currentTimeMillis
        const failed = outcome === "failure"
        const [from, to] = yield* SynchronizedRef.modifyEffect(ref, (before) =>
          Effect.gen(function* () {
            const recent = [
              ...before.recent.filter(([t]) =>
                now - t < windowMs
              ),
              [now, failed] as const,
            ].slice(-10_000)
            let next: Internal = {
              ...before,
              recent,
              consecutive: failed ? before.consecutive + 1 : 0,
            }
            if (permit.probe) {
              next = failed ? yield* open(next, now) : {
                ...next,
                state: "closed",
                probing: false,
                reopenings: 0,
                probeAt: undefined,
                recent: [],
              }
            } else if (next.state === "closed" && failed) {
              // A call that started before a trip and ends after it leaves open/half-open alone.
              const failures = recent.filter(([, f]) => f).length
              const tripped = next.consecutive >= consecutiveLimit ||
                (recent.length >= minCalls && failures / recent.length >= rateLimit)
              if (tripped) next = yield* open(next, now)
            }
            return [[before.state, next.state] as const, next] as const
          }))
        if (from !== to) yield* onChange(from, to)
      })

    const snapshot = Effect.gen(function* () {
      const now = yield* Clock.currentTimeMillis
      const s = yield* Ref.get(ref)
      const recent = s.recent.filter(([t]) => now - t < windowMs)
      return {
        state: s.state,
        consecutiveFailures: s.consecutive,
        calls: recent.length,
        failures: recent.filter(([, f]) => f).length,
        probeAt: s.probeAt,
        trips: s.trips,
      } satisfies BreakerSnapshot
    })

    return { acquire, record, snapshot } satisfies CircuitBreaker
  })
