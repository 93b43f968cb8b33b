/**
 * The client event stream: `GET /api/v1/events` sends every `ChorusEvent` as Server-Sent Events,
 * numbered by the events stream's sequence, so a client that reconnects with `Last-Event-ID` gets
 * exactly the events it missed. The handler is core/http/EventsHandlers.ts.
 */
import { HttpApiEndpoint, HttpApiGroup, HttpApiSchema, OpenApi } from "@effect/platform"
import { Schema } from "effect"
import { EVENT_VERSIONS } from "../../schemas/Events.ts"
import { Authentication } from "./Authentication.ts"

/** An event number: the sequence of the event in the events stream. */
const EventNumber = Schema.NumberFromString.pipe(
  Schema.int(),
  Schema.nonNegative(),
  Schema.annotations({
    identifier: "EventNumber",
    description: "The id of the last event the client has (its `id:` line).",
  }),
)

/** `message.received,conversation.updated`: known event types, separated by commas. */
export const EventTypes = Schema.String.pipe(
  Schema.filter((list) => {
    const unknown = list.split(",").map((t) => t.trim()).filter((t) =>
      t.length > 0 && EVENT_VERSIONS[t] === undefined
    )
    return unknown.length === 0 ||
      `unknown event type ${unknown.join(", ")} (known: ${Object.keys(EVENT_VERSIONS).join(", ")})`
  }),
  Schema.annotations({
    identifier: "EventTypes",
    description: "Only these event types, comma-separated (e.g. `message.received,message.sent`).",
  }),
)

/** The bus could not say where the events stream ends: nothing was sent; retry later. */
export class EventsUnavailable extends Schema.TaggedError<EventsUnavailable>()(
  "EventsUnavailable",
  { message: Schema.String },
  HttpApiSchema.annotations({
    status: 503,
    description: "The bus is unavailable; reconnect after a while (with `Last-Event-ID`).",
  }),
) {}

export class EventsApi extends HttpApiGroup.make("events")
  .add(
    HttpApiEndpoint.get("stream", "/events")
      .setUrlParams(Schema.Struct({
        lastEventId: Schema.optional(EventNumber).annotations({
          description: "For clients that cannot set headers: the same as `Last-Event-ID`.",
        }),
        types: Schema.optional(EventTypes),
      }))
      .setHeaders(Schema.Struct({
        "last-event-id": Schema.optional(EventNumber),
      }))
      .addSuccess(HttpApiSchema.Text({ contentType: "text/event-stream" }))
      .addError(EventsUnavailable)
      .annotate(OpenApi.Summary, "Every event as it happens (Server-Sent Events), resumable.")
      .annotate(
        OpenApi.Description,
        "A `text/event-stream` that stays open. Each event is `id: <n>`, `event: <type>`, " +
          "`data: <the event JSON>`; `n` is the event's number in the events stream, always " +
          "increasing (not necessarily by one). Reconnect with `Last-Event-ID: <n>` (or " +
          "`?lastEventId=<n>`) to get every event after `n`, none twice; without it the stream " +
          "starts with the events after the moment of the request. A line `: keepalive` comes " +
          "every 15 s. `types=` keeps only those event types; ids stay the stream's numbers. " +
          "An event that cannot be decoded is sent as a bare `id: <n>` line (no event), so the " +
          "position still moves past it.",
      ),
  )
  .middleware(Authentication)
  .annotate(OpenApi.Description, "Live events for inboxes, dashboards and integrations.") {}
