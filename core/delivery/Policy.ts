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
import { Duration, Effect, Option, Schedule, Schema } from "effect"
import * as CircuitBreaker from "./CircuitBreaker.ts"
import type { Rate } from "./Pacing.ts"

/** A duration as written in settings: `"10 seconds"`, `"500 millis"`, `"5 minutes"`. */
export const DurationSetting = Schema.String.pipe(
  Schema.filter((s) => Option.isSome(Duration.decodeUnknown(s)), {
    message: (issue) =>
      `expected a duration such as "10 seconds" or "500 millis", got ${
        JSON.stringify(issue.actual)
      }`,
  }),
).annotations({ identifier: "DurationSetting" })

const Positive = (max: number) => Schema.Int.pipe(Schema.between(1, max))

export const RateSetting = Schema.Struct({
  /** Sends per `interval` (also the burst). */
  limit: Positive(100_000),
  interval: DurationSetting,
}).annotations({ identifier: "RateSetting" })

const ChannelNameSetting = Schema.String.pipe(Schema.pattern(/^[a-z][a-z0-9_-]{0,31}$/))

/** Delivery settings: every field optional; what is absent comes from the layer below. */
export const DeliverySettings = Schema.Struct({
  /** One provider call longer than this counts as a retryable `timeout`. */
  timeout: Schema.optionalWith(DurationSetting, { exact: true }),
  retry: Schema.optionalWith(
    Schema.Struct({
      /** Delay before the first retry; doubles after each (jittered ±20%). */
      baseDelay: Schema.optionalWith(DurationSetting, { exact: true }),
      /** Longest delay between two calls, a provider's `Retry-After` included. */
      maxDelay: Schema.optionalWith(DurationSetting, { exact: true }),
      /** Provider calls in all, the first included. */
      maxAttempts: Schema.optionalWith(Positive(100), { exact: true }),
    }),
    { exact: true },
  ),
  breaker: Schema.optionalWith(
    Schema.Struct({
      /** Failures in a row that open the breaker. */
      consecutiveFailures: Schema.optionalWith(Positive(1_000), { exact: true }),
      /** Share of failed calls in `window` that opens it (0 < rate ≤ 1). */
      failureRate: Schema.optionalWith(
        Schema.Number.pipe(Schema.greaterThan(0), Schema.lessThanOrEqualTo(1)),
        { exact: true },
      ),
      window: Schema.optionalWith(DurationSetting, { exact: true }),
      /** Calls in `window` before `failureRate` applies. */
      minCalls: Schema.optionalWith(Positive(100_000), { exact: true }),
      /** How long it first stays open; doubles after each failed probe… */
      openFor: Schema.optionalWith(DurationSetting, { exact: true }),
      /** …up to this. */
      maxOpenFor: Schema.optionalWith(DurationSetting, { exact: true }),
    }),
    { exact: true },
  ),
  bulkhead: Schema.optionalWith(
    Schema.Struct({
      /** Sends under way at once for the account. */
      concurrency: Schema.optionalWith(Positive(256), { exact: true }),
      /** Sends waiting for a turn; beyond, a reply is handed back to the bus for later. */
      queue: Schema.optionalWith(Schema.Int.pipe(Schema.between(0, 100_000)), { exact: true }),
    }),
    { exact: true },
  ),
  pacing: Schema.optionalWith(
    Schema.Struct({
      /** The provider's limit per channel account. */
      account: Schema.optionalWith(RateSetting, { exact: true }),
      /** The provider's limit per recipient (one chat, one phone number). */
      recipient: Schema.optionalWith(RateSetting, { exact: true }),
    }),
    { exact: true },
  ),
  /**
   * Channels to fall back to, in order, when a reply cannot be delivered on its own (breaker
   * open, refused for good, reply window closed, recipient unreachable, retries exhausted): the
   * customer's first reachable identity on them gets a copy. Empty: no fallback.
   */
  fallback: Schema.optionalWith(Schema.Array(ChannelNameSetting), { exact: true }),
  /** A reply still not sent this long after it was written fails (and falls back). */
  expireAfter: Schema.optionalWith(DurationSetting, { exact: true }),
}).annotations({ identifier: "DeliverySettings" })
export type DeliverySettings = typeof DeliverySettings.Type

/** `chorus.config.json`'s `delivery` section. */
export const DeliveryConfig = Schema.Struct({
  defaults: Schema.optionalWith(DeliverySettings, { default: () => ({}) }),
  /** By channel name. */
  channels: Schema.optionalWith(Schema.Record({ key: Schema.String, value: DeliverySettings }), {
    default: () => ({}),
  }),
  /** By `"<channel>:<account>"`. */
  accounts: Schema.optionalWith(Schema.Record({ key: Schema.String, value: DeliverySettings }), {
    default: () => ({}),
  }),
}).annotations({ identifier: "DeliveryConfig" })
export type DeliveryConfig = typeof DeliveryConfig.Type

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
    readonly account?: { readonly limit: number; readonly interval: Duration.DurationInput | string }
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

const rate = (r: { readonly limit: number; readonly interval: Duration.DurationInput | string }) => ({
  limit: r.limit,
  interval: d(r.interval),
})

/** Apply one layer of settings over a policy. */
export const apply = (policy: DeliveryPolicy, s: DeliverySettingsInput | undefined): DeliveryPolicy =>
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
export const resolve = (...layers: ReadonlyArray<DeliverySettingsInput | undefined>): DeliveryPolicy =>
  layers.reduce<DeliveryPolicy>(apply, defaults)

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
 * The longest one delivery attempt chain can hold a worker when every delay is slept in place
 * (each call timing out, the inline retries at their cap): what the outbound consumer allows a
 * handler before it counts as stuck.
 */
export const worstCase = (policy: DeliveryPolicy, inlineDelay: Duration.Duration): Duration.Duration =>
  Duration.sum(
    Duration.times(policy.timeout, policy.maxAttempts),
    Duration.times(Duration.min(policy.maxDelay, inlineDelay), policy.maxAttempts - 1),
  )
