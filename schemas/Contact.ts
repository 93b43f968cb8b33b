/**
 * A contact and its channel identities. A contact is one person as the business sees them; each
 * channel identity is that person's presence on one channel account (a Telegram user of our bot,
 * a WhatsApp number writing to our business number). The identity graph links identities to
 * contacts, merging only on strong signals, so an identity records how much we trust it.
 */
import { Schema } from "effect"
import { Email, Phone, Timestamp } from "./Common.ts"
import { AccountId, ChannelIdentityId, ChannelName, ContactId, ExternalId } from "./Ids.ts"

export const Contact = Schema.Struct({
  id: ContactId,
  /** The name operators see; taken from the first identity until someone edits it. */
  name: Schema.NullOr(Schema.String),
  createdAt: Timestamp,
  updatedAt: Timestamp,
}).annotations({ identifier: "Contact" })
export type Contact = typeof Contact.Type

/**
 * How far an identity's attributes are trusted:
 * - `unverified`: only what the channel reported (a display name, a self-declared e-mail);
 * - `claimed`: the person told us it is theirs (typed a phone number), not proven;
 * - `verified`: proven by the provider or a signature (WhatsApp's phone, a signed web-chat id).
 * Only `verified` identities may merge contacts automatically.
 */
export const Verification = Schema.Literal("unverified", "claimed", "verified").annotations({
  identifier: "Verification",
})
export type Verification = typeof Verification.Type

export const ChannelIdentity = Schema.Struct({
  id: ChannelIdentityId,
  contactId: ContactId,
  channel: ChannelName,
  account: AccountId,
  /** The provider's id of the person on this account (Telegram user id, phone, address). */
  externalId: ExternalId,
  name: Schema.NullOr(Schema.String),
  phone: Schema.NullOr(Phone),
  email: Schema.NullOr(Email),
  verification: Verification,
  /**
   * Whether a message sent here can arrive: false once the provider says the person blocked
   * us, left, or the address bounces; the fallback policy then skips this identity.
   */
  reachable: Schema.Boolean,
  createdAt: Timestamp,
  /** When the person last wrote from this identity. */
  lastSeenAt: Schema.NullOr(Timestamp),
}).annotations({ identifier: "ChannelIdentity" })
export type ChannelIdentity = typeof ChannelIdentity.Type
