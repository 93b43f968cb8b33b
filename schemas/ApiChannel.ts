/**
 * The built-in `api` channel: what an API client posts to `POST /api/v1/inbound` to hand Chorus a
 * customer's message, and what it gets back. The body is mapped to an `InboundMessage` on channel
 * `api` and published on the bus, like any channel plugin's message. Replies go the other way:
 * Chorus POSTs an `ApiOutboundWebhook` to the client's webhook.
 */
import { Schema } from "effect"
import { Attachment, Email, InboundAttachment, Phone, Timestamp } from "./Common.ts"
import { AccountId, ConversationId, ExternalId, MessageId } from "./Ids.ts"

/**
 * Who wrote, as the API client knows them. Phone and e-mail are the client's claims: the
 * identity they create is `claimed`, never `verified` (signed identities come later).
 */
export const ApiInboundSender = Schema.Struct({
  /** The client's id of the person, unique within `account`. */
  id: ExternalId,
  name: Schema.optionalWith(
    Schema.String.pipe(
      Schema.maxLength(512, { message: () => "expected at most 512 characters" }),
    ),
    { exact: true },
  ),
  phone: Schema.optionalWith(Phone, { exact: true }),
  email: Schema.optionalWith(Email, { exact: true }),
}).annotations({ identifier: "ApiInboundSender" })
export type ApiInboundSender = typeof ApiInboundSender.Type

/** The longest `text` the api channel takes, in characters (a long e-mail fits; a dump does not). */
export const API_TEXT_MAX = 100_000

export const ApiInboundRequest = Schema.Struct({
  /** The client's account (a site, an app, a tenant of the client): like a channel account. */
  account: AccountId,
  sender: ApiInboundSender,
  /** The client's id of the message, unique within `account`: posting it again is a duplicate. */
  externalId: ExternalId,
  text: Schema.String.pipe(
    Schema.maxLength(API_TEXT_MAX, { message: () => "expected at most 100,000 characters" }),
  ),
  /** When the customer sent it. Default: when Chorus received it. */
  sentAt: Schema.optionalWith(Timestamp, { exact: true }),
  attachments: Schema.optionalWith(Schema.Array(InboundAttachment), { exact: true }),
}).annotations({
  identifier: "ApiInboundRequest",
  description: "A customer's message handed to Chorus by an API client (channel `api`).",
})
export type ApiInboundRequest = typeof ApiInboundRequest.Type

export const ApiInboundAccepted = Schema.Struct({
  /** The bus message id (`api:<account>:<externalId>`): the same message always gets the same id. */
  id: Schema.String,
  /** True when this message had been accepted before; it is stored once. */
  duplicate: Schema.Boolean,
}).annotations({
  identifier: "ApiInboundAccepted",
  description: "The message is durable on the bus; it will be stored in its conversation.",
})
export type ApiInboundAccepted = typeof ApiInboundAccepted.Type

/**
 * What Chorus POSTs to the `api` channel's webhook (`channels.api.webhookUrl`) for each reply to
 * an `api` conversation. Headers: `X-Chorus-Delivery` (the message id: the same reply POSTed
 * again, after a retry or a crash, carries the same one, so receivers de-duplicate on it),
 * `X-Chorus-Timestamp` (Unix seconds) and, when a secret is set, `X-Chorus-Signature:
 * sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">`.
 */
export const ApiOutboundWebhook = Schema.Struct({
  type: Schema.Literal("message.outbound"),
  /** The Chorus message id (also `X-Chorus-Delivery`). */
  id: MessageId,
  conversationId: ConversationId,
  /** The account the customer wrote to (as in `POST /api/v1/inbound`). */
  account: AccountId,
  /** The customer, by the client's own id (`sender.id` of their inbound messages). */
  recipient: Schema.Struct({ id: ExternalId }),
  text: Schema.String,
  attachments: Schema.Array(Attachment),
  createdAt: Timestamp,
}).annotations({
  identifier: "ApiOutboundWebhook",
  description: "A reply to an api-channel conversation, POSTed to the configured webhook.",
})
export type ApiOutboundWebhook = typeof ApiOutboundWebhook.Type
