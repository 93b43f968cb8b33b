/**
 * The built-in `api` channel's endpoint: `POST /api/v1/inbound` hands Chorus a customer's
 * message. It answers 202 only once the message is durable on the bus (the conversation actor
 * stores it from there); posting the same `externalId` again answers 202 with
 * `duplicate: true` and stores nothing new, so a client retries safely after a timeout.
 */
import { HttpApiEndpoint, HttpApiGroup, HttpApiSchema, OpenApi } from "@effect/platform"
import { Schema } from "effect"
import { ApiInboundAccepted, ApiInboundRequest } from "../../schemas/ApiChannel.ts"
import { AdminAuthentication } from "./Authentication.ts"

/** The bus did not take the message: nothing was accepted, the client should retry later. */
export class InboundUnavailable extends Schema.TaggedError<InboundUnavailable>()(
  "InboundUnavailable",
  {
    message: Schema.String,
    /** Also sent as the `Retry-After` header. */
    retryAfterSeconds: Schema.Int,
  },
  HttpApiSchema.annotations({
    status: 503,
    description: "The bus is unavailable; the message was not accepted. Retry after a while " +
      "with the same externalId (a retry never stores it twice).",
  }),
) {}

/** The most bytes a `POST /api/v1/inbound` body may have. */
export const INBOUND_BODY_MAX = 1_048_576

export class InboundTooLarge extends Schema.TaggedError<InboundTooLarge>()(
  "InboundTooLarge",
  { message: Schema.String, maxBytes: Schema.Int },
  HttpApiSchema.annotations({
    status: 413,
    description: "The body is larger than 1 MiB; nothing was accepted.",
  }),
) {}

export class InboundApi extends HttpApiGroup.make("inbound")
  .add(
    HttpApiEndpoint.post("send", "/inbound")
      .setPayload(ApiInboundRequest)
      .addSuccess(ApiInboundAccepted, { status: 202 })
      .addError(InboundUnavailable)
      .addError(InboundTooLarge)
      .annotate(
        OpenApi.Summary,
        "Hand Chorus a customer's message (channel `api`); 202 once it is durable.",
      )
      .annotate(
        OpenApi.Description,
        "The message is published on the bus and stored in the sender's conversation shortly " +
          "after. The same `externalId` (per account) again is a duplicate: 202 with " +
          "`duplicate: true`, stored once. A malformed body gets 400 naming each wrong field " +
          "(`sender.id: …`). The sender's phone and e-mail are recorded as claimed, not verified.",
      ),
  )
  .middleware(AdminAuthentication)
  .annotate(OpenApi.Description, "The built-in api channel: messages from your own systems.") {}
