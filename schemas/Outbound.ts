/**
 * Replies: what an operator or an API client posts to answer a conversation, and what travels
 * on the `outbound` stream to the channel that sends it.
 */
import { Schema } from "effect"
import { InboundAttachment, ReplyButtons, Timestamp } from "./Common.ts"
import { AccountId, ChannelIdentityId, ExternalId } from "./Ids.ts"
import { OutgoingMessage } from "./Message.ts"

/** The longest reply Chorus stores; a channel may accept less (its `maxTextLength`). */
export const MAX_REPLY_TEXT = 100_000

/** An idempotency key chosen by the client: printable ASCII, at most 255 characters. */
export const ClientId = Schema.String.pipe(
  Schema.pattern(/^[\x21-\x7e]{1,255}$/, {
    message: () => "expected 1 to 255 printable ASCII characters without spaces",
  }),
).annotations({ identifier: "ClientId" })

export const ReplyRequest = Schema.Struct({
  /** The reply. May be empty only when there are attachments. */
  text: Schema.String.pipe(
    Schema.maxLength(MAX_REPLY_TEXT, {
      message: () => `expected at most ${MAX_REPLY_TEXT} characters`,
    }),
  ),
  attachments: Schema.optionalWith(Schema.Array(InboundAttachment), { exact: true }),
  /** Buttons under the reply, for channels that show them (Telegram's inline keyboard). */
  buttons: Schema.optionalWith(ReplyButtons, { exact: true }),
  /**
   * Which of the contact's channel identities to answer on. Default: the one the customer wrote
   * from last, across all the contact's conversations (the reply's `channelReason` says
   * `last_used`; a given identity is `operator_choice`).
   */
  identityId: Schema.optionalWith(ChannelIdentityId, { exact: true }),
  /**
   * Idempotency key (same as the `Idempotency-Key` header): posting a reply with a key already
   * used in this conversation stores nothing new and answers the stored reply.
   */
  clientId: Schema.optionalWith(ClientId, { exact: true }),
}).pipe(
  Schema.filter((r) =>
    r.text.trim().length > 0 || (r.attachments?.length ?? 0) > 0 ||
    { path: ["text"], message: "expected a non-empty text (or at least one attachment)" }
  ),
).annotations({
  identifier: "ReplyRequest",
  description: "An answer to a conversation, sent on one of the contact's channels.",
})
export type ReplyRequest = typeof ReplyRequest.Type

/**
 * A reply on the `outbound` stream (`outbound.<channel>`, bus message id = message id, ordering
 * key = conversation): the message as stored when it was queued. The channel reads its
 * current state before sending, so a late duplicate of a message already sent is skipped.
 */
export const OutboundDelivery = Schema.Struct({
  message: OutgoingMessage,
  /**
   * `failed`: a follow-up of a reply a provider's receipt failed after it was sent; the channel
   * side falls back or dead-letters it. Absent: send it.
   */
  after: Schema.optionalWith(Schema.Literal("failed"), { exact: true }),
}).annotations({ identifier: "OutboundDelivery" })
export type OutboundDelivery = typeof OutboundDelivery.Type

/**
 * What became of a reply after the provider took it: a status webhook, a read receipt, a bounce
 * (`chorus.channels.status`), naming the sent message by its provider id on the account.
 */
export const DeliveryReceipt = Schema.Struct({
  account: AccountId,
  /** The provider's id of the sent message (what the send returned). */
  externalId: ExternalId,
  state: Schema.Literal("delivered", "read", "failed"),
  /** For `failed`: the provider's code and words. */
  error: Schema.optionalWith(
    Schema.Struct({
      code: Schema.String.pipe(Schema.minLength(1), Schema.maxLength(100)),
      reason: Schema.String.pipe(Schema.maxLength(2_000)),
    }),
    { exact: true },
  ),
  /** For `failed`: nothing sent to this recipient can arrive (a hard bounce, blocked). */
  unreachable: Schema.optionalWith(Schema.Boolean, { exact: true }),
  /** When it happened, by the provider's clock; default now. */
  at: Schema.optionalWith(Timestamp, { exact: true }),
}).annotations({ identifier: "DeliveryReceipt" })
export type DeliveryReceipt = typeof DeliveryReceipt.Type
