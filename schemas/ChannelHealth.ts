/**
 * Live health of a channel account (its delivery side): what `GET /api/v1/channels/health`
 * answers, what `channel.health_changed` carries, and what the inbox shows.
 */
import { Schema } from "effect"
import { Timestamp } from "./Common.ts"

export const ChannelStatus = Schema.Literal("up", "degraded", "down").annotations({
  identifier: "ChannelStatus",
  description: "up: sending normally; degraded: failing often or probing after an outage; " +
    "down: the circuit breaker is open (sends wait, or fall back).",
})
export type ChannelStatus = typeof ChannelStatus.Type

export const BreakerStateSchema = Schema.Literal("closed", "open", "half_open")

export const ChannelHealth = Schema.Struct({
  channel: Schema.String,
  account: Schema.String,
  status: ChannelStatus,
  /** Since when it has this status (this node's view). */
  since: Timestamp,
  breaker: Schema.Struct({
    state: BreakerStateSchema,
    /** When an open breaker lets its next probe through. */
    probeAt: Schema.NullOr(Timestamp),
    consecutiveFailures: Schema.Int,
    /** Times it opened since this node started. */
    trips: Schema.Int,
  }),
  /** Provider calls in the last 5 minutes, and the share that failed (retryable failures). */
  calls: Schema.Int,
  errorRate: Schema.Number,
  /** Provider call latency over the last calls, in milliseconds. */
  latencyMs: Schema.Struct({
    p50: Schema.NullOr(Schema.Number),
    p95: Schema.NullOr(Schema.Number),
  }),
  /** Replies waiting (stored, not yet sent), and the oldest one's time. */
  queueDepth: Schema.Int,
  oldestQueued: Schema.NullOr(Timestamp),
  /** Sends under way and waiting for a turn in the bulkhead on this node. */
  inFlight: Schema.Int,
  waiting: Schema.Int,
  /** Totals since this node started. */
  sent: Schema.Int,
  failed: Schema.Int,
  lastError: Schema.NullOr(
    Schema.Struct({ code: Schema.String, reason: Schema.String, at: Timestamp }),
  ),
}).annotations({ identifier: "ChannelHealth" })
export type ChannelHealth = typeof ChannelHealth.Type
