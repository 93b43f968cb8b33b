/**
 * A stored message. Three directions share the same numbering within their conversation:
 * `in` (the customer wrote, on some channel), `out` (an operator or a bot answered, on some
 * channel) and `note` (a private note between operators, never sent). Only `out` has a delivery
 * state; only `in` and `out` have a channel.
 */
import { Schema } from "effect"
import { Attachment, MessagePayload, ReplyButtons, Timestamp } from "./Common.ts"
import {
  AccountId,
  ChannelIdentityId,
  ChannelName,
  ConversationId,
  ExternalId,
  MessageId,
  OperatorId,
} from "./Ids.ts"

/** The provider's answer when it refused or failed a message, in its own words. */
export const ProviderError = Schema.Struct({
  /** The provider's error code (`403`, `131047`, `bounce`). */
  code: Schema.String,
  message: Schema.String,
  /** Whether sending again (later, or on the same channel) can help. */
  retryable: Schema.Boolean,
}).annotations({ identifier: "ProviderError" })
export type ProviderError = typeof ProviderError.Type

export const DELIVERY_STATES = ["queued", "sent", "delivered", "read", "failed"] as const
export type DeliveryStateName = typeof DELIVERY_STATES[number]

/**
 * Where an outgoing message is: queued (stored, waiting for the channel) → sent (the provider
 * accepted it) → delivered → read, or failed with the provider's error. `at` is when it got there.
 */
export const DeliveryState = Schema.Union(
  Schema.Struct({
    state: Schema.Literal("queued", "sent", "delivered", "read"),
    at: Timestamp,
  }),
  Schema.Struct({
    state: Schema.Literal("failed"),
    at: Timestamp,
    error: ProviderError,
  }),
).annotations({ identifier: "DeliveryState" })
export type DeliveryState = typeof DeliveryState.Type

const base = {
  id: MessageId,
  conversationId: ConversationId,
  /** 1, 2, 3…: the message's place in its conversation, gap-free, assigned when stored. */
  seq: Schema.Int.pipe(Schema.positive()),
  text: Schema.String,
  attachments: Schema.Array(Attachment),
  /** When Chorus stored it. */
  createdAt: Timestamp,
}

export const IncomingMessage = Schema.Struct({
  ...base,
  direction: Schema.Literal("in"),
  channel: ChannelName,
  account: AccountId,
  identityId: ChannelIdentityId,
  /** The provider's message id: with channel and account, what makes a redelivery a duplicate. */
  externalId: ExternalId,
  /** When the customer sent it, by the provider's clock. */
  sentAt: Timestamp,
  /** When the channel plugin received it. */
  receivedAt: Timestamp,
  /** A pressed button's payload, a deep link's parameter (see `MessagePayload`). */
  payload: Schema.optionalWith(MessagePayload, { exact: true }),
}).annotations({ identifier: "IncomingMessage" })
export type IncomingMessage = typeof IncomingMessage.Type

/**
 * Why a reply went out on its channel: `last_used` (the channel the customer wrote from last),
 * `operator_choice` (the operator picked one of the contact's identities), `last_reachable` (the
 * last one cannot be reached any more; the most recent reachable one instead), `fallback` (a copy
 * of a reply its own channel could not deliver, sent on the customer's next reachable channel).
 */
export const ChannelReason = Schema.Literal(
  "last_used",
  "operator_choice",
  "last_reachable",
  "fallback",
)
  .annotations({ identifier: "ChannelReason" })
export type ChannelReason = typeof ChannelReason.Type

export const OutgoingMessage = Schema.Struct({
  ...base,
  direction: Schema.Literal("out"),
  channel: ChannelName,
  account: AccountId,
  identityId: ChannelIdentityId,
  /** The provider's message id, once it accepted the message. */
  externalId: Schema.NullOr(ExternalId),
  /** The operator who wrote it; null for a bot or an API client. */
  authorId: Schema.NullOr(OperatorId),
  delivery: DeliveryState,
  /** Buttons shown under it (channels that declare `buttons`). */
  buttons: Schema.optionalWith(ReplyButtons, { exact: true }),
  /** This reply is the fallback copy of that one, which its own channel could not deliver. */
  fallbackOf: Schema.optionalWith(MessageId, { exact: true }),
  /** This reply could not be delivered on its channel; that copy was sent instead. */
  fallbackTo: Schema.optionalWith(MessageId, { exact: true }),
  /** Why it went out on this channel; absent on replies stored before it was recorded. */
  channelReason: Schema.optionalWith(ChannelReason, { exact: true }),
}).annotations({ identifier: "OutgoingMessage" })
export type OutgoingMessage = typeof OutgoingMessage.Type

export const Note = Schema.Struct({
  ...base,
  direction: Schema.Literal("note"),
  authorId: Schema.NullOr(OperatorId),
  /** Operators the note mentions (`@name`): they are notified. */
  mentions: Schema.optionalWith(Schema.Array(OperatorId), { exact: true }),
}).annotations({ identifier: "Note" })
export type Note = typeof Note.Type

export const Message = Schema.Union(IncomingMessage, OutgoingMessage, Note).annotations({
  identifier: "Message",
})
export type Message = typeof Message.Type
export type Direction = Message["direction"]
