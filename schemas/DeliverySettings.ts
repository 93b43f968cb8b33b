/**
 * Delivery settings of a channel account, as written in a plugin manifest
 * (`contributes.channels[].delivery`) and in chorus.config.json (`delivery`): every field
 * optional, what is absent comes from the layer below (core/delivery/Policy.ts).
 */
import { Duration, Option, Schema } from "effect"

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
