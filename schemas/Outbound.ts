/**
 * Replies: what an operator or an API client posts to answer a conversation, and what travels
 * on the `outbound` stream to the channel that sends it.
 */
import { Schema } from "effect"
import { InboundAttachment, ReplyButtons } from "./Common.ts"
import { ChannelIdentityId } from "./Ids.ts"
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
 * key = channel and account): the message as stored when it was queued. The channel reads its
 * current state before sending, so a late duplicate of a message already sent is skipped.
 */
export const OutboundDelivery = Schema.Struct({
  message: OutgoingMessage,
}).annotations({ identifier: "OutboundDelivery" })
export type OutboundDelivery = typeof OutboundDelivery.Type
