/**
 * What a channel plugin publishes on the bus for each message a customer sends: the inbound
 * envelope, before identity resolution. The channel normalises the provider's payload into it
 * (phones in E.164, times in UTC); the provider's own wire format stays inside the plugin.
 *
 * A channel publishes it with the bus message id `inboundMessageId(...)`, so a provider that
 * redelivers a webhook produces one stored message, not two.
 */
import { Schema } from "effect"
import { Email, InboundAttachment, MessagePayload, Phone, Timestamp } from "./Common.ts"
import { AccountId, ChannelName, ExternalId } from "./Ids.ts"

/** Who wrote, as the channel knows them. Only `externalId` is always known. */
export const InboundSender = Schema.Struct({
  /** The provider's id of the person on this account. */
  externalId: ExternalId,
  name: Schema.optionalWith(Schema.String, { exact: true }),
  phone: Schema.optionalWith(Phone, { exact: true }),
  email: Schema.optionalWith(Email, { exact: true }),
  /**
   * True when the provider vouches for `phone`/`email` (WhatsApp's sender number, a signed
   * web-chat identity); a self-declared value is false. Default false.
   */
  verified: Schema.optionalWith(Schema.Boolean, { default: () => false }),
}).annotations({ identifier: "InboundSender" })
export type InboundSender = typeof InboundSender.Type

export const InboundMessage = Schema.Struct({
  channel: ChannelName,
  account: AccountId,
  sender: InboundSender,
  /** The provider's message id. */
  externalId: ExternalId,
  text: Schema.String,
  attachments: Schema.optionalWith(Schema.Array(InboundAttachment), { default: () => [] }),
  /** When the customer sent it, by the provider's clock. */
  sentAt: Timestamp,
  /** When the channel plugin received it. */
  receivedAt: Timestamp,
  /** A pressed button's payload, a deep link's parameter. */
  payload: Schema.optionalWith(MessagePayload, { exact: true }),
  /**
   * The provider ids of earlier messages (on the same channel account) this one answers, nearest
   * first: an e-mail's In-Reply-To then References, a quoted Telegram or WhatsApp message. The
   * core keeps a thread in the conversation of the message it answers.
   */
  inReplyTo: Schema.optionalWith(Schema.Array(ExternalId).pipe(Schema.maxItems(50)), {
    exact: true,
  }),
}).annotations({
  identifier: "InboundMessage",
  description: "A customer's message as a channel publishes it on the bus.",
})
export type InboundMessage = typeof InboundMessage.Type
export type InboundMessageEncoded = typeof InboundMessage.Encoded

/**
 * The bus de-duplication id of an inbound message: one per provider message. The parts are
 * URI-encoded so an account or id containing ':' cannot collide with another pair.
 */
export const inboundMessageId = (
  m: Pick<InboundMessage, "channel" | "account" | "externalId">,
): string => `${m.channel}:${encodeURIComponent(m.account)}:${encodeURIComponent(m.externalId)}`
