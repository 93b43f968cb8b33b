/**
 * What the delivery API shows: the dead-letter list (replies that failed with no fallback, until
 * a person handles them) and the provider calls made for a reply.
 */
import { Schema } from "effect"
import { Timestamp } from "./Common.ts"
import { ChannelHealth } from "./ChannelHealth.ts"
import { ConversationId, MessageId } from "./Ids.ts"
import { OutgoingMessage } from "./Message.ts"

export const OutboundDeadLetter = Schema.Struct({
  messageId: MessageId,
  conversationId: ConversationId,
  channel: Schema.String,
  account: Schema.String,
  /** The provider's (or Chorus's) code: `429`, `timeout`, `reply_window_closed`, `unreachable`… */
  code: Schema.String,
  reason: Schema.String,
  /** Provider calls made before it was given up. */
  attempts: Schema.Int,
  deadAt: Timestamp,
  resolvedAt: Schema.NullOr(Timestamp),
  /** Who handled it: `operator:<id>` or `token:<name>`. */
  resolvedBy: Schema.NullOr(Schema.String),
  resolution: Schema.NullOr(Schema.Literal("retried", "discarded")),
  /** The reply as it is now. */
  message: Schema.optionalWith(OutgoingMessage, { exact: true }),
}).annotations({ identifier: "OutboundDeadLetter" })
export type OutboundDeadLetter = typeof OutboundDeadLetter.Type

export const DeadLetterPage = Schema.Struct({
  deadLetters: Schema.Array(OutboundDeadLetter),
  /** Pass as `before` for the next (older) page; null at the end. */
  next: Schema.NullOr(Schema.String),
}).annotations({ identifier: "DeadLetterPage" })

export const DeadLetterParams = Schema.Struct({
  /** `open` (default): not handled yet; `all`: handled ones too. */
  status: Schema.optionalWith(Schema.Literal("open", "all"), { exact: true }),
  channel: Schema.optionalWith(Schema.String, { exact: true }),
  account: Schema.optionalWith(Schema.String, { exact: true }),
  before: Schema.optionalWith(Schema.String, { exact: true }),
  limit: Schema.optionalWith(
    Schema.NumberFromString.pipe(Schema.int(), Schema.between(1, 200)),
    { exact: true },
  ),
})

export const DeliveryAttempt = Schema.Struct({
  /** 1, 2, 3… over the reply's life (a retry by a person continues the count). */
  attempt: Schema.Int,
  channel: Schema.String,
  account: Schema.String,
  startedAt: Timestamp,
  durationMs: Schema.Int,
  outcome: Schema.Literal("sent", "unavailable", "rejected", "timeout"),
  code: Schema.NullOr(Schema.String),
  reason: Schema.NullOr(Schema.String),
}).annotations({ identifier: "DeliveryAttempt" })

export const DeliveryAttempts = Schema.Struct({
  attempts: Schema.Array(DeliveryAttempt),
}).annotations({ identifier: "DeliveryAttempts" })

export const ChannelHealthList = Schema.Struct({
  channels: Schema.Array(ChannelHealth),
}).annotations({ identifier: "ChannelHealthList" })
