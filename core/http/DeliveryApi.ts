/**
 * Delivery: live health of every channel account, the dead-letter list of replies that could not
 * be delivered (retry or discard them), and per reply its provider calls and a resend.
 */
import { HttpApiEndpoint, HttpApiGroup, HttpApiSchema, OpenApi } from "@effect/platform"
import { Schema } from "effect"
import {
  ChannelHealthList,
  DeadLetterPage,
  DeadLetterParams,
  DeliveryAttempts,
  OutboundDeadLetter,
} from "../../schemas/Delivery.ts"
import { ConversationId, MessageId } from "../../schemas/Ids.ts"
import { OutgoingMessage } from "../../schemas/Message.ts"
import { Authentication, SupervisorAuthentication } from "./Authentication.ts"
import { ConversationNotFound } from "./ReadApi.ts"

export class MessageNotFound extends Schema.TaggedError<MessageNotFound>()(
  "MessageNotFound",
  { id: Schema.String, message: Schema.String },
  HttpApiSchema.annotations({
    status: 404,
    description: "No reply (outgoing message) has this id here.",
  }),
) {}

/** The reply is not in a state this action applies to (a resend of a reply not failed). */
export class DeliveryConflict extends Schema.TaggedError<DeliveryConflict>()(
  "DeliveryConflict",
  { id: Schema.String, message: Schema.String },
  HttpApiSchema.annotations({
    status: 409,
    description: "The reply is not failed (any more), or the dead letter was handled already.",
  }),
) {}

export class ChannelsApi extends HttpApiGroup.make("channels")
  .add(
    HttpApiEndpoint.get("health", "/channels/health")
      .addSuccess(ChannelHealthList)
      .annotate(
        OpenApi.Summary,
        "Live delivery health of every channel account: up / degraded / down, breaker, error " +
          "rate, latency, queue depth, last error.",
      ),
  )
  .middleware(Authentication)
  .annotate(OpenApi.Description, "Channels: live delivery health.") {}

const DeadLetterPath = Schema.Struct({ messageId: MessageId })

export class DeadLettersApi extends HttpApiGroup.make("deadLetters")
  .add(
    HttpApiEndpoint.get("list", "/outbound/dead-letters")
      .setUrlParams(DeadLetterParams)
      .addSuccess(DeadLetterPage)
      .annotate(
        OpenApi.Summary,
        "Replies that could not be delivered and had no fallback, newest first.",
      ),
  )
  .add(
    HttpApiEndpoint.post("retry", "/outbound/dead-letters/:messageId/retry")
      .setPath(DeadLetterPath)
      .addSuccess(OutgoingMessage, { status: 202 })
      .addError(MessageNotFound)
      .addError(DeliveryConflict)
      .annotate(
        OpenApi.Summary,
        "Send it again: back to `queued`, a new series of attempts on its channel.",
      ),
  )
  .add(
    HttpApiEndpoint.post("discard", "/outbound/dead-letters/:messageId/discard")
      .setPath(DeadLetterPath)
      .addSuccess(OutboundDeadLetter)
      .addError(MessageNotFound)
      .addError(DeliveryConflict)
      .annotate(OpenApi.Summary, "Take it off the list; the reply stays failed in the history."),
  )
  .middleware(SupervisorAuthentication)
  .annotate(
    OpenApi.Description,
    "The dead-letter list of replies (supervisors, admins, API tokens). Every retry and discard " +
      "is recorded with who did it.",
  ) {}

const ReplyPath = Schema.Struct({ id: ConversationId, messageId: MessageId })

export class MessageDeliveryApi extends HttpApiGroup.make("messageDelivery")
  .add(
    HttpApiEndpoint.post("resend", "/conversations/:id/messages/:messageId/resend")
      .setPath(ReplyPath)
      .addSuccess(OutgoingMessage, { status: 202 })
      .addError(ConversationNotFound)
      .addError(MessageNotFound)
      .addError(DeliveryConflict)
      .annotate(
        OpenApi.Summary,
        "Resend a failed reply on its channel (the inbox's resend action).",
      ),
  )
  .add(
    HttpApiEndpoint.get("attempts", "/conversations/:id/messages/:messageId/attempts")
      .setPath(ReplyPath)
      .addSuccess(DeliveryAttempts)
      .addError(ConversationNotFound)
      .addError(MessageNotFound)
      .annotate(OpenApi.Summary, "Every provider call made for a reply, with how it ended."),
  )
  .middleware(Authentication)
  .annotate(OpenApi.Description, "A reply's delivery: its attempts, and resending it.") {}

/** Prometheus text: the plugins' metrics and the channels' delivery figures. */
export class MetricsApi extends HttpApiGroup.make("metrics")
  .add(
    HttpApiEndpoint.get("metrics", "/metrics")
      .addSuccess(HttpApiSchema.Text({ contentType: "text/plain; version=0.0.4; charset=utf-8" }))
      .annotate(
        OpenApi.Summary,
        "Prometheus text exposition: channel delivery (chorus_channel_*) and plugin metrics.",
      ),
  )
  .middleware(SupervisorAuthentication)
  .annotate(OpenApi.Description, "Metrics for Prometheus (bearer token of an API client).") {}
