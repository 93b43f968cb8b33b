/**
 * The built-in `api` channel: what an API client posts to `POST /api/v1/inbound` to hand Chorus a
 * customer's message, and what it gets back. The body is mapped to an `InboundMessage` on channel
 * `api` and published on the bus, like any channel plugin's message.
 */
import { Schema } from "effect"
import { Email, InboundAttachment, Phone, Timestamp } from "./Common.ts"
import { AccountId, ExternalId } from "./Ids.ts"

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
