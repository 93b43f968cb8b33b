/**
 * How a channel actor sends one reply: each attempt under a timeout, retried on a typed
 * schedule (exponential from `baseDelay`, jittered, capped at `maxDelay`, honouring the
 * provider's `Retry-After`) only while the error is `ProviderUnavailable`, at most
 * `maxAttempts` attempts in all. A `ProviderRejected` ends it at once.
 */
import { Duration, Effect, Either, Ref, Schedule } from "effect"
import { isRetryable, ProviderUnavailable, type SendError } from "./ChannelAdapter.ts"

export interface DeliveryPolicyOptions {
  /** One attempt longer than this counts as a retryable `timeout`. Default: 10 seconds. */
  readonly timeout?: Duration.DurationInput
  /** Delay before the first retry; doubles after each. Default: 1 second. */
  readonly baseDelay?: Duration.DurationInput
  /** Longest delay between two attempts, a provider's `Retry-After` included. Default: 1 minute. */
  readonly maxDelay?: Duration.DurationInput
  /** Attempts in all, the first included. Default: 8. */
  readonly maxAttempts?: number
}

export interface DeliveryPolicy {
  readonly timeout: Duration.Duration
  readonly baseDelay: Duration.Duration
  readonly maxDelay: Duration.Duration
  readonly maxAttempts: number
}

export const resolve = (options: DeliveryPolicyOptions = {}): DeliveryPolicy => ({
  timeout: Duration.decode(options.timeout ?? "10 seconds"),
  baseDelay: Duration.decode(options.baseDelay ?? "1 second"),
  maxDelay: Duration.decode(options.maxDelay ?? "1 minute"),
  maxAttempts: Math.max(1, options.maxAttempts ?? 8),
})

/**
 * The longest a delivery can take with this policy (every attempt timing out, every delay at
 * its cap): what the outbound consumer allows a handler before it counts as stuck.
 */
export const worstCase = (policy: DeliveryPolicy): Duration.Duration =>
  Duration.sum(
    Duration.times(policy.timeout, policy.maxAttempts),
    Duration.times(policy.maxDelay, policy.maxAttempts - 1),
  )

/** The retry schedule: its input is the error of the attempt that just failed. */
export const schedule = (policy: DeliveryPolicy): Schedule.Schedule<unknown, SendError> =>
  Schedule.intersect(
    Schedule.identity<SendError>(),
    Schedule.exponential(policy.baseDelay).pipe(Schedule.jittered),
  ).pipe(
    Schedule.modifyDelay(([error], delay) => {
      const asked = isRetryable(error) && error.retryAfter !== undefined
        ? Duration.max(delay, error.retryAfter)
        : delay
      return Duration.min(asked, policy.maxDelay)
    }),
    Schedule.whileInput(isRetryable),
    Schedule.intersect(Schedule.recurs(policy.maxAttempts - 1)),
  )

export interface DeliveryOutcome<A> {
  readonly result: Either.Either<A, SendError>
  /** Attempts made, the first included. */
  readonly attempts: number
}

/** Run `attempt` under the policy; never fails: the last error is in `result`. */
export const run = <A, R>(
  policy: DeliveryPolicy,
  attempt: Effect.Effect<A, SendError, R>,
): Effect.Effect<DeliveryOutcome<A>, never, R> =>
  Effect.gen(function* () {
    const attempts = yield* Ref.make(0)
    const once = Ref.update(attempts, (n) => n + 1).pipe(
      Effect.zipRight(attempt),
      Effect.timeoutFail({
        duration: policy.timeout,
        onTimeout: () =>
          new ProviderUnavailable({
            code: "timeout",
            reason: `no answer within ${Duration.format(policy.timeout)}`,
          }),
      }),
    )
    const result = yield* once.pipe(
      Effect.tapError((error) =>
        Effect.logDebug("send attempt failed").pipe(Effect.annotateLogs({ error: error.message }))
      ),
      Effect.retry(schedule(policy)),
      Effect.either,
    )
    return { result, attempts: yield* Ref.get(attempts) }
  })
