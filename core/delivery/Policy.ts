/**
 * The delivery policy of a channel account, as a typed value: how long one provider call may
 * take, how failed calls are retried (an Effect `Schedule`: exponential from `baseDelay`,
 * jittered, capped at `maxDelay`, honouring the provider's `Retry-After`, only for errors the
 * adapter calls retryable, at most `maxAttempts` calls), the circuit breaker, the bulkhead, the
 * pacing at the provider's limits, the fallback channels and how long a reply may wait at most.
 *
 * Where it comes from, each layer overriding the one before, field by field:
 * 1. the built-in defaults below;
 * 2. the channel's own defaults (a plugin's `contributes.channels[].delivery`: its provider's
 *    published limits);
 * 3. `delivery.defaults`, then `delivery.channels.<channel>`, then
 *    `delivery.accounts["<channel>:<account>"]` of chorus.config.json (validated at start).
 *
 * @example
 * ```ts
 * import * as Policy from "./core/delivery/Policy.ts"
 *
 * const whatsapp = Policy.resolve(
 *   { pacing: { account: { limit: 80, interval: "1 second" } } }, // the channel's defaults
 *   { retry: { maxAttempts: 12 }, fallback: ["telegram", "email"] }, // chorus.config.json
 * )
 * whatsapp.timeout // 10 seconds (built-in default)
 * ```
 */
import { Duration, Effect, Schedule } from "effect"
import type { DeliveryConfig } from "../../schemas/DeliverySettings.ts"
import * as CircuitBreaker from "./CircuitBreaker.ts"
import type { Rate } from "./Pacing.ts"

export {
  DeliveryConfig,
  DeliverySettings,
  DurationSetting,
  RateSetting,
} from "../../schemas/DeliverySettings.ts"

export interface DeliveryPolicy {
  readonly timeout: Duration.Duration
  readonly baseDelay: Duration.Duration
  readonly maxDelay: Duration.Duration
  readonly maxAttempts: number
  readonly breaker: {
    readonly consecutiveFailures: number
    readonly failureRate: number
    readonly window: Duration.Duration
    readonly minCalls: number
    readonly openFor: Duration.Duration
    readonly maxOpenFor: Duration.Duration
  }
  readonly bulkhead: { readonly concurrency: number; readonly queue: number }
  readonly pacing: { readonly account?: Rate | undefined; readonly recipient?: Rate | undefined }
  readonly fallback: ReadonlyArray<string>
  readonly expireAfter: Duration.Duration
}

/** Settings as code writes them (tests, defaults): durations as `Duration.DurationInput`. */
export type DeliverySettingsInput = {
  readonly timeout?: Duration.DurationInput | string
  readonly retry?: {
    readonly baseDelay?: Duration.DurationInput | string
    readonly maxDelay?: Duration.DurationInput | string
    readonly maxAttempts?: number
  }
  readonly breaker?: {
    readonly consecutiveFailures?: number
    readonly failureRate?: number
    readonly window?: Duration.DurationInput | string
    readonly minCalls?: number
    readonly openFor?: Duration.DurationInput | string
    readonly maxOpenFor?: Duration.DurationInput | string
  }
  readonly bulkhead?: { readonly concurrency?: number; readonly queue?: number }
  readonly pacing?: {
    readonly account?: {
      readonly limit: number
      readonly interval: Duration.DurationInput | string
    }
    readonly recipient?: {
      readonly limit: number
      readonly interval: Duration.DurationInput | string
    }
  }
  readonly fallback?: ReadonlyArray<string>
  readonly expireAfter?: Duration.DurationInput | string
}

const d = (input: Duration.DurationInput | string): Duration.Duration =>
  Duration.decode(input as Duration.DurationInput)

export const defaults: DeliveryPolicy = {
  timeout: Duration.seconds(10),
  baseDelay: Duration.seconds(1),
  maxDelay: Duration.minutes(1),
  maxAttempts: 8,
  breaker: {
    consecutiveFailures: 5,
    failureRate: 0.5,
    window: Duration.seconds(60),
    minCalls: 20,
    openFor: Duration.seconds(5),
    maxOpenFor: Duration.minutes(5),
  },
  bulkhead: { concurrency: 4, queue: 100 },
  pacing: {},
  fallback: [],
  expireAfter: Duration.hours(24),
}

const rate = (
  r: { readonly limit: number; readonly interval: Duration.DurationInput | string },
) => ({
  limit: r.limit,
  interval: d(r.interval),
})

/** Apply one layer of settings over a policy. */
export const apply = (
  policy: DeliveryPolicy,
  s: DeliverySettingsInput | undefined,
): DeliveryPolicy =>
  s === undefined ? policy : {
    timeout: s.timeout !== undefined ? d(s.timeout) : policy.timeout,
    baseDelay: s.retry?.baseDelay !== undefined ? d(s.retry.baseDelay) : policy.baseDelay,
    maxDelay: s.retry?.maxDelay !== undefined ? d(s.retry.maxDelay) : policy.maxDelay,
    maxAttempts: s.retry?.maxAttempts ?? policy.maxAttempts,
    breaker: {
      consecutiveFailures: s.breaker?.consecutiveFailures ?? policy.breaker.consecutiveFailures,
      failureRate: s.breaker?.failureRate ?? policy.breaker.failureRate,
      window: s.breaker?.window !== undefined ? d(s.breaker.window) : policy.breaker.window,
      minCalls: s.breaker?.minCalls ?? policy.breaker.minCalls,
      openFor: s.breaker?.openFor !== undefined ? d(s.breaker.openFor) : policy.breaker.openFor,
      maxOpenFor: s.breaker?.maxOpenFor !== undefined
        ? d(s.breaker.maxOpenFor)
        : policy.breaker.maxOpenFor,
    },
    bulkhead: {
      concurrency: s.bulkhead?.concurrency ?? policy.bulkhead.concurrency,
      queue: s.bulkhead?.queue ?? policy.bulkhead.queue,
    },
    pacing: {
      account: s.pacing?.account !== undefined ? rate(s.pacing.account) : policy.pacing.account,
      recipient: s.pacing?.recipient !== undefined
        ? rate(s.pacing.recipient)
        : policy.pacing.recipient,
    },
    fallback: s.fallback ?? policy.fallback,
    expireAfter: s.expireAfter !== undefined ? d(s.expireAfter) : policy.expireAfter,
  }

/** The built-in defaults with `layers` applied in order (later ones win). */
export const resolve = (
  ...layers: ReadonlyArray<DeliverySettingsInput | undefined>
): DeliveryPolicy => layers.reduce<DeliveryPolicy>(apply, defaults)

/** The policy of one channel account under a `delivery` config and the channel's own defaults. */
export const forAccount = (
  config: DeliveryConfig | undefined,
  channelDefaults: DeliverySettingsInput | undefined,
  channel: string,
  account: string,
  overrides?: DeliverySettingsInput,
): DeliveryPolicy =>
  resolve(
    channelDefaults,
    config?.defaults,
    config?.channels[channel],
    config?.accounts[`${channel}:${account}`],
    overrides,
  )

/** How long a breaker stays open: `openFor` doubling after each failed probe, up to `maxOpenFor`. */
export const openSchedule = (policy: DeliveryPolicy): Schedule.Schedule<Duration.Duration> =>
  Schedule.exponential(policy.breaker.openFor).pipe(
    Schedule.modifyDelay((_, delay) => Duration.min(delay, policy.breaker.maxOpenFor)),
    Schedule.map((delay) => Duration.min(delay, policy.breaker.maxOpenFor)),
  )

export const breakerOptions = (
  policy: DeliveryPolicy,
): Omit<CircuitBreaker.CircuitBreakerOptions, "onChange"> => ({
  consecutiveFailures: policy.breaker.consecutiveFailures,
  failureRate: policy.breaker.failureRate,
  window: policy.breaker.window,
  minCalls: policy.breaker.minCalls,
  openFor: openSchedule(policy),
})

/** The retry schedule's delays before the cap: exponential from `baseDelay`, jittered. */
export const retrySchedule = (policy: DeliveryPolicy): Schedule.Schedule<Duration.Duration> =>
  Schedule.exponential(policy.baseDelay).pipe(Schedule.jittered)

/**
 * The delay before the next call after `attempts` calls failed: the retry schedule's
 * `attempts`-th delay, at least the provider's `retryAfter`, at most `maxDelay`.
 */
export const retryDelay = (
  policy: DeliveryPolicy,
  attempts: number,
  retryAfter?: Duration.Duration,
): Effect.Effect<Duration.Duration> =>
  CircuitBreaker.nthDelay(retrySchedule(policy), attempts).pipe(
    Effect.map((delay) =>
      Duration.min(
        retryAfter === undefined ? delay : Duration.max(delay, retryAfter),
        policy.maxDelay,
      )
    ),
  )

/**
 * The longest one delivery handler can hold a worker: the calls it makes in place (each up to the
 * timeout, with retry delays of at most `inlineDelay` between them) until `inlineBudget` is
 * spent, plus the call under way then. What the outbound consumer allows a handler before it
 * counts as stuck.
 */
export const worstCase = (
  policy: DeliveryPolicy,
  inlineDelay: Duration.Duration,
  inlineBudget: Duration.Duration,
): Duration.Duration =>
  Duration.min(
    Duration.sum(
      Duration.times(policy.timeout, policy.maxAttempts),
      Duration.times(Duration.min(policy.maxDelay, inlineDelay), policy.maxAttempts - 1),
    ),
    Duration.sum(inlineBudget, Duration.sum(inlineDelay, Duration.times(policy.timeout, 2))),
  )
