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
  FiberSet,
  ParseResult,
  Queue,
  Schema,
  Stream,
} from "effect"
import { Presence } from "../../actors/routing/Presence.ts"
import type { OperatorId, TeamId } from "../../schemas/Ids.ts"
import { canSee, operatorOf, type Visibility, visibilityOf } from "../accounts/Access.ts"
import { Bus, type BusMessage, describeCause } from "../bus/Bus.ts"
import { Lru } from "../lru.ts"
import { Database, type DatabaseShape } from "../storage/Database.ts"
import { CurrentPrincipal } from "./Authentication.ts"
import { EventsStream, eventSubject } from "../pipeline/Streams.ts"
import { ChorusEvent } from "../../schemas/Events.ts"
import { ChorusApi } from "./Api.ts"
import { EventsUnavailable } from "./EventsApi.ts"
import * as EventTail from "./EventTail.ts"
import * as SseBody from "./SseBody.ts"

/** Tunables of the event stream; tests shorten the keepalive. */
export interface EventStreamOptions {
  /** How often a `: keepalive` comment line is sent, so proxies keep the connection. Default: 15 s. */
  readonly keepAlive: Duration.DurationInput
  /** Recent events the shared reader keeps for reconnecting clients. Default: 1,024. */
  readonly tailCapacity?: number
  /**
   * Events a connection following the shared reader may have waiting; beyond, it falls behind
   * and reads the bus on its own until it has caught up. Default: 4,096.
   */
  readonly followBuffer?: number
}

/** Bytes of frames held for a client that reads slower than events come. */
const OUT_BYTES = 64 * 1024

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

/** An event as every connection needs it: decoded (or why not) and framed. */
interface Decoded {
  readonly event: ChorusEvent | undefined
  /** Why it does not decode. */
  readonly error: string | undefined
  readonly frame: string
}

/**
 * One SSE frame per event: the JSON as published, one `data:` line per line of it. An event that
 * does not decode is logged and sent as a bare `id:` (no event is dispatched, but the client's
 * last event id moves past it, so a reconnect does not ask for it again).
 */
const decode = (message: BusMessage): Decoded => {
  const json = decoder.decode(message.data)
  // Published by this process: the event itself (its JSON is `data`, see schemas/Wire.ts).
  const decoded = message.local !== undefined
    ? Either.right(message.local as ChorusEvent)
    : decodeEvent(json)
  if (Either.isLeft(decoded)) {
    return {
      event: undefined,
      error: ParseResult.TreeFormatter.formatErrorSync(decoded.left),
      frame: `id: ${message.seq}\n\n`,
    }
  }
  const data = json.split(/\r\n|\r|\n/).map((line) => `data: ${line}\n`).join("")
  return {
    event: decoded.right,
    error: undefined,
    frame: `id: ${message.seq}\nevent: ${decoded.right.type}\n${data}\n`,
  }
}

/**
 * Every open inbox reads every event: each is decoded and framed once per server, not once per
 * connection (with 50 inboxes open the decoding was most of the cost of an event).
 */
const decodedEvents = () => {
  const recent = new Lru<string, Decoded>(4_096)
  return (message: BusMessage): Decoded => {
    const key = `${message.seq}\u0000${message.id}`
    const known = recent.get(key)
    if (known !== undefined) return known
    const decoded = decode(message)
    recent.set(key, decoded)
    return decoded
  }
}
type DecodeOnce = ReturnType<typeof decodedEvents>

/**
 * The frames of a chunk of events as one piece of text, written to the client at once: one
 * write per chunk the bus hands over, not one per event.
 */
const frames = (
  decodeOnce: DecodeOnce,
  chunk: Iterable<BusMessage>,
  wanted: ReadonlySet<string>,
): Effect.Effect<string> => {
  const invalid: Array<[BusMessage, string]> = []
  let text = ""
  for (const message of chunk) {
    if (wanted.size === 0 || wanted.has(message.subject)) {
      const decoded = decodeOnce(message)
      if (decoded.error !== undefined) invalid.push([message, decoded.error])
      text += decoded.frame
    }
  }
  if (invalid.length === 0) return Effect.succeed(text)
  return Effect.forEach(
    invalid,
    ([message, error]) =>
      Effect.logWarning("skipping an event that does not decode").pipe(
        Effect.annotateLogs({ seq: message.seq, subject: message.subject, id: message.id, error }),
      ),
    { discard: true },
  ).pipe(Effect.as(text))
}

/** What decides whether an operator sees an event about a conversation. */
interface Placement {
  readonly teamId: TeamId | null
  readonly assigneeId: OperatorId | null
}

const conversationOf = (event: ChorusEvent): string | undefined =>
  "conversation" in event
    ? event.conversation.id
    : "message" in event
    ? event.message.conversationId
    : "conversationId" in event
    ? event.conversationId
    : undefined

/**
 * The events an operator may see, for one connection: conversations of their teams or assigned
 * to them (a conversation that leaves them is announced once more, so their list drops it),
 * every `operator.updated`, no contact events. Where each conversation is comes from the events
 * themselves, or the store for one not seen yet on this connection (one query per chunk).
 */
const operatorFilter = (
  database: DatabaseShape,
  decodeOnce: DecodeOnce,
  visibility: Visibility,
) => {
  const placements = new Lru<string, Placement>(10_000)
  const visible = (p: Placement | undefined) => p !== undefined && canSee(visibility, p)
  return (chunk: ReadonlyArray<BusMessage>) =>
    Effect.gen(function* () {
      const decoded: Array<[BusMessage, ChorusEvent | undefined]> = []
      const missing = new Set<string>()
      for (const message of chunk) {
        const event = decodeOnce(message).event
        decoded.push([message, event])
        const id = event === undefined ? undefined : conversationOf(event)
        if (
          id !== undefined && placements.get(id) === undefined &&
          !(event && "conversation" in event)
        ) {
          missing.add(id)
        }
      }
      if (missing.size > 0) {
        const rows = yield* database.query("event visibility", (db) =>
          db.selectFrom("conversations").select(["id", "team_id", "assignee_id"])
            .where("id", "in", [...missing]).execute()).pipe(Effect.orDie)
        for (const row of rows) {
          placements.set(row.id, {
            teamId: row.team_id as TeamId | null,
            assigneeId: row.assignee_id as OperatorId | null,
          })
        }
      }
      const kept: Array<BusMessage> = []
      for (const [message, event] of decoded) {
        if (event === undefined) {
          continue // logged by `frames`, never shown to operators
        }
        // Who is online and how the channels are doing: everyone's business.
        if (
          event.type === "operator.updated" || event.type === "channel.health_changed" ||
          event.type === "channel.alert"
        ) {
          kept.push(message)
          continue
        }
        if ("conversation" in event) {
          const before = placements.get(event.conversation.id)
          const after: Placement = {
            teamId: event.conversation.teamId ?? null,
            assigneeId: event.conversation.assigneeId,
          }
          placements.set(event.conversation.id, after)
          if (visible(before) || visible(after)) {
            kept.push(message)
          }
          continue
        }
        const id = conversationOf(event)
        if (id !== undefined && visible(placements.get(id))) {
          kept.push(message)
        }
      }
      return kept
    })
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
      const database = yield* Database
      const presence = yield* Presence
      const decodeOnce = decodedEvents()
      const tail = yield* EventTail.make(bus, { capacity: settings.tailCapacity ?? 1_024 })
      const followBuffer = Math.max(1, settings.followBuffer ?? 4_096)
      // Every open connection, ended when the server stops.
      const connections = yield* FiberSet.make()
      return handlers.handle("stream", ({ headers, urlParams }) =>
        Effect.gen(function* () {
          const principal = yield* CurrentPrincipal
          const visibility = visibilityOf(principal)
          const filter = visibility.all
            ? undefined
            : operatorFilter(database, decodeOnce, visibility)
          const after = headers["last-event-id"] ?? urlParams.lastEventId ??
            (yield* bus.lastSeq(EventsStream.name).pipe(
              Effect.mapError((e) => new EventsUnavailable({ message: describeCause(e) })),
            ))
          const types = [
            ...new Set((urlParams.types ?? "").split(",").map((t) => t.trim()).filter((t) => t)),
          ]
          const wanted = new Set(types.map(eventSubject))
          /** The last event sequence this connection has passed (sent or filtered out). */
          let position = after
          const emit = (out: SseBody.SseBody, batch: Iterable<BusMessage>) =>
            Effect.gen(function* () {
              const fresh: Array<BusMessage> = []
              for (const m of batch) if (m.seq > position) fresh.push(m)
              if (fresh.length === 0) return
              position = fresh[fresh.length - 1]!.seq
              const text = yield* filter === undefined
                ? frames(decodeOnce, fresh, wanted)
                : Effect.flatMap(filter(fresh), (visible) => frames(decodeOnce, visible, wanted))
              if (text !== "") yield* out.write(text)
            })

          /** Follow the shared tail while it has this connection; returns when dropped. */
          const follow = (out: SseBody.SseBody) =>
            Effect.gen(function* () {
              const inbox = yield* Queue.bounded<BusMessage | null>(followBuffer)
              let lost = false
              const joined = tail.join(position, {
                push: (messages) => {
                  for (const m of messages) if (!Queue.unsafeOffer(inbox, m)) return false
                  return true
                },
                lost: () => {
                  lost = true
                  Queue.unsafeOffer(inbox, null) // wakes a waiting take; full means awake anyway
                },
              })
              if (joined === undefined) return false
              yield* Effect.gen(function* () {
                yield* emit(out, joined.backlog)
                while (!(lost && (yield* Queue.isEmpty(inbox)))) {
                  const batch = yield* Queue.takeBetween(inbox, 1, 1_024)
                  yield* emit(out, Chunk.filter(batch, (m): m is BusMessage => m !== null))
                }
              }).pipe(Effect.ensuring(Effect.sync(joined.leave)))
              return true
            })

          /**
           * Read the bus from this connection's position until the tail holds what follows it.
           * False when the bus failed (the client is told, and reconnects with its last id).
           */
          const catchUp = (out: SseBody.SseBody) =>
            Effect.scoped(Effect.gen(function* () {
              // Every type, filtered here: the position must pass every event to meet the tail.
              const pull = yield* Stream.toPull(
                bus.read(EventsStream.name, { fromSeq: position + 1 }),
              )
              for (;;) {
                const next = yield* Effect.either(pull)
                if (Either.isLeft(next)) {
                  if (next.left._tag === "None") return true
                  yield* Effect.logWarning("event stream ended by a bus failure", next.left.value)
                  yield* out.write(": the bus failed; reconnect with Last-Event-ID\n\n")
                  return false
                }
                yield* emit(out, next.right)
                if (tail.canJoin(position)) return true
              }
            }))

          const events = (out: SseBody.SseBody) =>
            Effect.gen(function* () {
              for (;;) {
                if (yield* follow(out)) continue // dropped: catch up from where it stopped
                if (!(yield* catchUp(out))) return
              }
            })
          const operator = operatorOf(principal)
          // The connection's fibers write straight into the response (SseBody.ts); they stop
          // when it ends, and they end it: the events fail or stop, or the server stops.
          const readable = yield* SseBody.open(connections, (out) =>
            Effect.gen(function* () {
              // An operator's open inbox keeps them present (actors/routing/Presence.ts).
              if (operator !== undefined) yield* presence.connected(operator.id)
              yield* out.write(": connected\n\n")
              yield* events(out).pipe(
                Effect.catchAllCause((cause) =>
                  Effect.logError("event stream failed; the client reconnects", cause)
                ),
                Effect.zipRight(out.end),
                Effect.forkScoped,
              )
              yield* out.write(": keepalive\n\n").pipe(
                Effect.delay(settings.keepAlive),
                Effect.forever,
                Effect.forkScoped,
              )
              // The server stops: end at once.
              yield* Deferred.await(stopping).pipe(Effect.zipRight(out.end), Effect.forkScoped)
            }), { highWaterMark: OUT_BYTES })
          return HttpServerResponse.raw(readable, {
            contentType: "text/event-stream",
            headers: { "cache-control": "no-cache", "x-accel-buffering": "no" },
          })
        }))
    }),
)
