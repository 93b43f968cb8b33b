/**
 * Branded identifiers. Chorus's own ids are ULIDs: 26 Crockford base-32 characters, a 48-bit
 * millisecond timestamp then 80 random bits, so they sort by creation time as plain strings
 * (handy for keyset pagination and for reading logs). They are generated in `core/ids.ts`;
 * these schemas only validate them, and the brand keeps a `ContactId` from being passed where a
 * `ConversationId` is expected.
 *
 * Identifiers that come from outside (a channel's name, a provider's account or message id)
 * are branded too but keep the provider's own format.
 */
import { Schema } from "effect"

const ULID = /^[0-9A-HJKMNP-TV-Z]{26}$/

/** A ULID string; the base of every Chorus id. */
export const Ulid = Schema.String.pipe(
  Schema.pattern(ULID, {
    message: () => "expected a ULID: 26 characters of 0-9 and A-Z without I, L, O, U",
  }),
)

const ulidId = <const B extends string>(brand: B, description: string) =>
  Ulid.pipe(Schema.brand(brand)).annotations({ identifier: brand, description })

export const ContactId = ulidId("ContactId", "A contact (one person, across channels).")
export type ContactId = typeof ContactId.Type

export const ChannelIdentityId = ulidId(
  "ChannelIdentityId",
  "One identity of a contact on one channel account.",
)
export type ChannelIdentityId = typeof ChannelIdentityId.Type

export const ConversationId = ulidId("ConversationId", "A conversation.")
export type ConversationId = typeof ConversationId.Type

export const MessageId = ulidId("MessageId", "A message in a conversation.")
export type MessageId = typeof MessageId.Type

export const AttachmentId = ulidId("AttachmentId", "A file attached to a message.")
export type AttachmentId = typeof AttachmentId.Type

export const EventId = ulidId("EventId", "An event on the bus; also its de-duplication id.")
export type EventId = typeof EventId.Type

export const OperatorId = ulidId("OperatorId", "An operator (a person working in the inbox).")
export type OperatorId = typeof OperatorId.Type

export const TeamId = ulidId("TeamId", "A team of operators; it owns inboxes.")
export type TeamId = typeof TeamId.Type

export const SessionId = ulidId("SessionId", "A sign-in session (its id, not the cookie's token).")
export type SessionId = typeof SessionId.Type

export const CannedResponseId = ulidId("CannedResponseId", "A saved answer (canned response).")
export type CannedResponseId = typeof CannedResponseId.Type

export const ApiTokenId = ulidId("ApiTokenId", "An API bearer token (its id, not the secret).")
export type ApiTokenId = typeof ApiTokenId.Type

/**
 * A channel, named by the plugin that provides it: `telegram`, `whatsapp`, `email`, `webchat`.
 */
export const ChannelName = Schema.String.pipe(
  Schema.pattern(/^[a-z][a-z0-9_-]{0,31}$/, {
    message: () =>
      "expected a channel name: a lower-case letter, then letters, digits, '_' or '-' (at most 32)",
  }),
  Schema.brand("ChannelName"),
).annotations({ identifier: "ChannelName", description: "e.g. telegram, whatsapp, email" })
export type ChannelName = typeof ChannelName.Type

const externalString = <const B extends string>(brand: B, description: string) =>
  Schema.String.pipe(
    Schema.minLength(1, { message: () => "expected a non-empty string" }),
    Schema.maxLength(512, { message: () => "expected at most 512 characters" }),
    Schema.brand(brand),
  ).annotations({ identifier: brand, description })

/**
 * One account of a channel: a Telegram bot, a WhatsApp business number, a mailbox. In the
 * provider's format.
 */
export const AccountId = externalString(
  "AccountId",
  "A channel account (bot, business number, mailbox), in the provider's format.",
)
export type AccountId = typeof AccountId.Type

/** An id the provider gave: a user id, a chat id, a message id. Unique within an account. */
export const ExternalId = externalString(
  "ExternalId",
  "An identifier assigned by the provider, unique within its channel account.",
)
export type ExternalId = typeof ExternalId.Type
