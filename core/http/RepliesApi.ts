/**
 * The reply API: `POST /api/v1/conversations/{id}/messages` answers a conversation. The reply is
 * stored as the conversation's next message, `queued`, and sent by its channel shortly after;
 * its delivery (`sent`, `failed` with the provider's error) shows in the message history and as
 * `message.delivery_changed` events.
 */
import { HttpApiEndpoint, HttpApiGroup, HttpApiSchema, OpenApi } from "@effect/platform"
import { Schema } from "effect"
import { ConversationId } from "../../schemas/Ids.ts"
import { OutgoingMessage } from "../../schemas/Message.ts"
import { ClientId, ReplyRequest } from "../../schemas/Outbound.ts"
import { Authentication } from "./Authentication.ts"
import { ConversationNotFound } from "./ReadApi.ts"

/** The reply cannot go where it was asked to (identity not the contact's, channel limits). */
export class ReplyRejected extends Schema.TaggedError<ReplyRejected>()(
  "ReplyRejected",
  {
    /** The request field at fault: `identityId`, `text`, `attachments`. */
    field: Schema.String,
    message: Schema.String,
  },
  HttpApiSchema.annotations({
    status: 422,
    description: "The identity is not one of the contact's, the conversation has no channel " +
      "to answer on, or the channel cannot carry this reply.",
  }),
) {}

/** The conversation is resolved; it takes no more messages. */
export class ConversationClosed extends Schema.TaggedError<ConversationClosed>()(
  "ConversationClosed",
  { id: Schema.String, message: Schema.String },
  HttpApiSchema.annotations({
    status: 409,
    description: "The conversation is resolved: it takes no more replies (the customer's next " +
      "message opens a new conversation).",
  }),
) {}

/** Header set on the answer to a repeated idempotency key: nothing new was stored. */
export const IDEMPOTENT_REPLAYED = "idempotent-replayed"

export class RepliesApi extends HttpApiGroup.make("replies")
  .add(
    HttpApiEndpoint.post("send", "/conversations/:id/messages")
      .setPath(Schema.Struct({ id: ConversationId }))
      .setHeaders(Schema.Struct({ "idempotency-key": Schema.optional(ClientId) }))
      .setPayload(ReplyRequest)
      .addSuccess(OutgoingMessage, { status: 202 })
      .addError(ConversationNotFound)
      .addError(ConversationClosed)
      .addError(ReplyRejected)
      .annotate(
        OpenApi.Summary,
        "Reply in a conversation; 202 with the stored message (`queued`) once it is durable.",
      )
      .annotate(
        OpenApi.Description,
        "The reply goes out on `identityId` (one of the contact's channel identities), by " +
          "default the one the customer wrote from last. It is stored as the conversation's " +
          "next message with delivery state `queued`, announced as `message.sent`, and sent by " +
          "its channel; the outcome (`sent` or `failed` with the provider's error) follows as " +
          "`message.delivery_changed` and in the history. Idempotency: send an " +
          "`Idempotency-Key` header (or `clientId` in the body; both must agree); the same key " +
          "again in this conversation stores nothing and answers the stored reply with " +
          "`Idempotent-Replayed: true`. A malformed body gets 400 naming each wrong field.",
      ),
  )
  .middleware(Authentication)
  .annotate(OpenApi.Description, "Replies: answer a conversation on the contact's channels.") {}
