/**
 * Handler of the events group: `GET /api/v1/events` as Server-Sent Events, read from the bus's
 * events stream (core/pipeline/Streams.ts `EventsStream`). The `id:` of each event is its stream
 * sequence, so resuming after `Last-Event-ID: n` is `bus.read(events, { fromSeq: n + 1 })`:
 * every event after n, in order, none twice, however long the client was away (within the
 * stream's 30 days).
 *
 * Frames:
 * ```
 * id: 1042
 * event: message.received
 * data: {"type":"message.received","version":1,…}
 *
 * : keepalive
 * ```
 */
import { HttpApiBuilder, HttpServerResponse } from "@effect/platform"
import {
  Chunk,
  Context,
  Deferred,
  Duration,
  Effect,
  Either,
  ParseResult,
  Schedule,
  Schema,
  Stream,
} from "effect"
import { Bus, type BusMessage, describeCause } from "../bus/Bus.ts"
import { EventsStream, eventSubject } from "../pipeline/Streams.ts"
import { ChorusEvent } from "../../schemas/Events.ts"
import { ChorusApi } from "./Api.ts"
import { EventsUnavailable } from "./EventsApi.ts"

/** Tunables of the event stream; tests shorten the keepalive. */
export interface EventStreamOptions {
  /** How often a `: keepalive` comment line is sent, so proxies keep the connection. Default: 15 s. */
  readonly keepAlive: Duration.DurationInput
}

export class EventStreamSettings extends Context.Reference<EventStreamSettings>()(
  "chorus/core/http/EventStreamSettings",
  { defaultValue: (): EventStreamOptions => ({ keepAlive: Duration.seconds(15) }) },
) {}

/**
 * Completed when the HTTP server begins to stop: open event streams end then. The server's close
 * waits for every open connection, and an event stream would otherwise hold it (and the shutdown)
 * forever. The HTTP server's layer provides it and completes it before the server closes.
 */
export class EventStreamsStop extends Context.Tag("chorus/core/http/EventStreamsStop")<
  EventStreamsStop,
  Deferred.Deferred<void>
>() {}

const decodeEvent = Schema.decodeUnknownEither(Schema.parseJson(ChorusEvent))
const decoder = new TextDecoder()
const encoder = new TextEncoder()

/**
 * One SSE frame per event: the JSON as published, one `data:` line per line of it. An event that
 * does not decode is logged and sent as a bare `id:` (no event is dispatched, but the client's
 * last event id moves past it, so a reconnect does not ask for it again).
 */
const frame = (message: BusMessage, invalid: Array<BusMessage>): string => {
  const json = decoder.decode(message.data)
  const decoded = decodeEvent(json)
  if (Either.isLeft(decoded)) {
    invalid.push(message)
    return `id: ${message.seq}\n\n`
  }
  const data = json.split(/\r\n|\r|\n/).map((line) => `data: ${line}\n`).join("")
  return `id: ${message.seq}\nevent: ${decoded.right.type}\n${data}\n`
}

/**
 * The frames of a chunk of events as one piece of text: the stream machinery then runs once per
 * chunk the bus hands over, not once per event (at thousands of events a second, per-element
 * stream steps cost more than the framing itself).
 */
const frames = (
  chunk: Chunk.Chunk<BusMessage>,
  wanted: ReadonlySet<string>,
): Effect.Effect<Chunk.Chunk<string>> => {
  const invalid: Array<BusMessage> = []
  let text = ""
  for (const message of chunk) {
    if (wanted.size === 0 || wanted.has(message.subject)) text += frame(message, invalid)
  }
  const out = text === "" ? Chunk.empty<string>() : Chunk.of(text)
  if (invalid.length === 0) return Effect.succeed(out)
  return Effect.forEach(
    invalid,
    (message) =>
      Effect.logWarning("skipping an event that does not decode").pipe(
        Effect.annotateLogs({
          seq: message.seq,
          subject: message.subject,
          id: message.id,
          error: Either.match(decodeEvent(decoder.decode(message.data)), {
            onLeft: (e) => ParseResult.TreeFormatter.formatErrorSync(e),
            onRight: () => "",
          }),
        }),
      ),
    { discard: true },
  ).pipe(Effect.as(out))
}

export const EventsHandlers = HttpApiBuilder.group(
  ChorusApi,
  "events",
  (handlers) =>
    Effect.gen(function* () {
      const bus = yield* Bus
      const settings = yield* EventStreamSettings
      // Whoever starts first creates the stream; publishers ensure it too.
      yield* bus.ensureStream(EventsStream)
      const stopping = yield* EventStreamsStop
      return handlers.handle("stream", ({ headers, urlParams }) =>
        Effect.gen(function* () {
          const after = headers["last-event-id"] ?? urlParams.lastEventId ??
            (yield* bus.lastSeq(EventsStream.name).pipe(
              Effect.mapError((e) => new EventsUnavailable({ message: describeCause(e) })),
            ))
          const types = [
            ...new Set((urlParams.types ?? "").split(",").map((t) => t.trim()).filter((t) => t)),
          ]
          const wanted = new Set(types.map(eventSubject))
          const events = bus.read(EventsStream.name, {
            fromSeq: after + 1,
            // One type is a filter the bus applies; several are picked here.
            ...(types.length === 1 ? { filter: eventSubject(types[0]!) } : {}),
          }).pipe(
            Stream.mapChunksEffect((chunk) => frames(chunk, wanted)),
            // The client reconnects with its last id; a broken read must not look like the end.
            Stream.catchAll((e) =>
              Stream.fromEffect(
                Effect.logWarning("event stream ended by a bus failure", e).pipe(
                  Effect.as(": the bus failed; reconnect with Last-Event-ID\n\n"),
                ),
              )
            ),
          )
          const keepAlive = Stream.fromSchedule(Schedule.spaced(settings.keepAlive)).pipe(
            Stream.as(": keepalive\n\n"),
          )
          const body = Stream.make(": connected\n\n").pipe(
            Stream.concat(Stream.merge(events, keepAlive, { haltStrategy: "left" })),
            Stream.interruptWhen(Deferred.await(stopping)),
            Stream.map((text) => encoder.encode(text)),
          )
          return HttpServerResponse.stream(body, {
            contentType: "text/event-stream",
            headers: { "cache-control": "no-cache", "x-accel-buffering": "no" },
          })
        }))
    }),
)
