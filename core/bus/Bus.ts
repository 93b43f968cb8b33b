/**
 * The bus: durable, at-least-once messaging between actors and plugins.
 *
 * Two implementations share this contract and one conformance suite (tests/bus):
 * - `JetStreamBus` on NATS JetStream (`CHORUS_NATS_URL`), for one or many nodes;
 * - `EmbeddedBus` persisted in the local database, for a single node with no NATS.
 *
 * Semantics every implementation keeps:
 * - `publish` resolves only once the message is durable in its stream; publishing the same
 *   message id again within the stream's duplicate window stores nothing and answers
 *   `duplicate: true`. It answers within a bound of its own (JetStream 5 s, embedded 10 s):
 *   past it, `BusUnavailable`, though the message may still be stored (a retry is then a
 *   duplicate). Callers need no timeout of their own.
 * - A consumer is durable: it resumes where it stopped. A message is redelivered until it is
 *   acknowledged; a handler that fails (or asks for a nak) gets it again after the retry delay;
 *   an unacknowledged delivery is redelivered after `ackWait`.
 * - After `maxDeliver` failed deliveries the message is dead-lettered with the last error and can
 *   be listed, replayed (to that consumer only) or discarded.
 * - With `ordering: "key"` messages with the same key are handled one at a time in publish order,
 *   also across failures and redeliveries; different keys run concurrently.
 * - `read` is a non-durable reader: every message with a sequence from `fromSeq` on, in sequence
 *   order, then live ones, with no gap and no repeat, also across reconnects of the backend.
 *
 * Subjects and stream names here are logical: the bus prefixes them with its namespace
 * (`CHORUS_BUS_NAMESPACE`, default `chorus`), so tests and tenants never collide.
 */
import {
  Context,
  Data,
  type Duration,
  type Effect,
  type Schedule,
  type Scope,
  type Stream,
} from "effect"

/** A stream: the durable log that stores every message published on its subjects. */
export interface StreamSpec {
  /** Logical name, `[A-Za-z0-9_-]+`, e.g. `inbound`. */
  readonly name: string
  /** Logical subjects, NATS wildcards allowed: `inbound.>`. */
  readonly subjects: ReadonlyArray<string>
  /** How long messages are kept. Default: 7 days. */
  readonly maxAge?: Duration.DurationInput
  /** Window in which a repeated message id is recognised as a duplicate. Default: 10 minutes. */
  readonly duplicateWindow?: Duration.DurationInput
}

export interface PublishOptions {
  /** The message id used for de-duplication (`Nats-Msg-Id`). Required: callers know their ids. */
  readonly id: string
  /** Ordering key for consumers with `ordering: "key"` (a conversation id, a channel account). */
  readonly key?: string
  readonly headers?: Readonly<Record<string, string>>
  /**
   * The decoded value `data` is the encoding of, for a consumer in this process: its delivery
   * may carry it as `BusMessage.local` instead of making it decode `data` again (see
   * LocalValues.ts). Kept only when the message is stored as new; never leaves the process.
   */
  readonly local?: unknown
}

export interface PublishAck {
  readonly stream: string
  /** Position in the stream; for a duplicate, the position of the original where known, else 0. */
  readonly seq: number
  readonly duplicate: boolean
}

/** One delivery of a message to a consumer. */
export interface BusMessage {
  readonly stream: string
  readonly seq: number
  /** Logical subject (namespace removed). */
  readonly subject: string
  readonly id: string
  readonly key: string | undefined
  readonly headers: Readonly<Record<string, string>>
  readonly data: Uint8Array
  /** 1 on the first delivery. */
  readonly deliveryCount: number
  readonly publishedAt: Date
  /**
   * The value a publisher in this process gave as `PublishOptions.local`, on the first delivery
   * or read of the message here; usually absent (another process published it, a redelivery, a
   * second reader), and then `data` is decoded as usual.
   */
  readonly local?: unknown
}

/** What a handler wants done with a message; returning nothing (or `Ack`) acknowledges it. */
export type Disposition = Data.TaggedEnum<{
  // deno-lint-ignore ban-types -- Data.TaggedEnum's spelling of a case without fields
  Ack: {}
  /** Redeliver after `delay` (counts as a failed delivery). */
  Nak: { readonly delay: Duration.DurationInput; readonly reason: string }
  /** Do not retry: dead-letter now with this reason. */
  DeadLetter: { readonly reason: string }
}>
export const Disposition = Data.taggedEnum<Disposition>()

export type Handler<E, R> = (message: BusMessage) => Effect.Effect<Disposition | void, E, R>

export interface ConsumerSpec {
  /** Logical stream name. */
  readonly stream: string
  /** Durable consumer name, `[A-Za-z0-9_-]+`. */
  readonly name: string
  /** Logical subject filter. Default: every subject of the stream. */
  readonly filter?: string
  /** How long a delivery may stay unacknowledged before it is redelivered. Default: 30 s. */
  readonly ackWait?: Duration.DurationInput
  /** Deliveries before a message is dead-lettered. Default: 5. */
  readonly maxDeliver?: number
  /** Messages held (delivered, not yet acknowledged) at once. Default: 256. */
  readonly maxAckPending?: number
  /** Handlers running at once. Default: 16. */
  readonly concurrency?: number
  /** `"key"`: one message per key at a time, in publish order. Default: `"none"`. */
  readonly ordering?: "none" | "key"
  /** A handler running longer than this is interrupted and counts as failed. Default: 30 s. */
  readonly handlerTimeout?: Duration.DurationInput
  /** Delay before redelivery after the n-th failed delivery. Default: exponential from 500 ms, capped at 30 s. */
  readonly retry?: Schedule.Schedule<unknown, unknown>
  /** Where a newly created consumer starts. Default: `"all"` (every message in the stream). */
  readonly startAt?: "all" | "new"
}

/** Where a `read` starts and what it returns. */
export interface ReadOptions {
  /**
   * The first stream sequence wanted (at least 1). Messages below it are skipped; a sequence past
   * the end waits for it. Messages already removed by `maxAge` are gone: the read starts at the
   * oldest one kept.
   */
  readonly fromSeq: number
  /** Logical subject filter. Default: every subject of the stream. */
  readonly filter?: string
}

export interface DeadLetter {
  /** Id of the dead letter itself (for replay/discard). */
  readonly id: string
  readonly stream: string
  readonly consumer: string
  readonly subject: string
  readonly messageId: string
  readonly seq: number
  readonly key: string | undefined
  readonly headers: Readonly<Record<string, string>>
  readonly data: Uint8Array
  readonly deliveries: number
  readonly reason: string
  readonly deadAt: Date
}

export interface DeadLetterQuery {
  readonly consumer?: string
  /** Return dead letters after this id (pagination). */
  readonly after?: string
  /** Default 100. */
  readonly limit?: number
}

export interface DeadLetters {
  readonly list: (query?: DeadLetterQuery) => Effect.Effect<ReadonlyArray<DeadLetter>, BusError>
  readonly get: (id: string) => Effect.Effect<DeadLetter, BusError | DeadLetterNotFound>
  /** Publish the message again, delivered only to the consumer that dead-lettered it; removes the dead letter. */
  readonly replay: (id: string) => Effect.Effect<PublishAck, BusError | DeadLetterNotFound>
  /** Remove a dead letter for good. */
  readonly discard: (id: string) => Effect.Effect<void, BusError | DeadLetterNotFound>
}

export interface BusShape {
  readonly backend: "jetstream" | "embedded"
  /** Create or update a stream; idempotent. */
  readonly ensureStream: (spec: StreamSpec) => Effect.Effect<void, BusError>
  readonly publish: (
    subject: string,
    data: Uint8Array,
    options: PublishOptions,
  ) => Effect.Effect<PublishAck, BusError>
  /**
   * Start a durable consumer in the background of the current scope. Resolves once the consumer
   * exists; closing the scope stops pulling, lets running handlers finish and returns what it
   * had not started to the bus.
   */
  readonly consume: <E, R>(
    spec: ConsumerSpec,
    handler: Handler<E, R>,
  ) => Effect.Effect<void, BusError, Scope.Scope | R>
  /**
   * Read a stream from a sequence number: a non-durable, ordered reader for clients that keep
   * their own position (the SSE event stream, a replay). Emits every message with `seq >=
   * fromSeq` (matching `filter`) in sequence order, then live ones as they are stored, until
   * the stream is no longer pulled. No acknowledgements, no redelivery: `deliveryCount` is 1.
   * Losing the connection to the backend is not an error: the reader resumes after the last
   * message it emitted, so nothing is skipped or repeated. Fails with `BusRejected` for an
   * unknown stream or an invalid filter.
   *
   * @example
   * // Everything from event 1,001 on, then live: a client that saw 1,000 reconnects.
   * bus.read("events", { fromSeq: 1_001, filter: "events.message.>" }).pipe(
   *   Stream.runForEach((m) => send(m.seq, m.data)),
   * )
   */
  readonly read: (stream: string, options: ReadOptions) => Stream.Stream<BusMessage, BusError>
  /**
   * `read` for a reader that never stops: hands what arrived together to `sink` as one batch
   * (never empty, in sequence order) and reads on once `sink` is done, without a stream's steps
   * per batch. Runs until interrupted; fails as `read` fails. For the hot readers of every event
   * (the shared tail of `GET /api/v1/events`).
   *
   * @example
   * yield* bus.readEach("events", { fromSeq: last + 1 }, (batch) =>
   *   Effect.sync(() => ring.push(...batch))).pipe(Effect.forkScoped)
   */
  readonly readEach: (
    stream: string,
    options: ReadOptions,
    sink: (batch: ReadonlyArray<BusMessage>) => Effect.Effect<void>,
  ) => Effect.Effect<void, BusError>
  /**
   * The sequence of the last message stored in `stream` (0 if it never stored one); reading
   * from `lastSeq + 1` returns only messages published after this call.
   */
  readonly lastSeq: (stream: string) => Effect.Effect<number, BusError>
  readonly deadLetters: DeadLetters
  /** Cheap reachability check for `/ready`. */
  readonly ping: Effect.Effect<void, BusError>
}

export class Bus extends Context.Tag("chorus/core/Bus")<Bus, BusShape>() {}

/** The bus could not be reached or did not answer in time: retrying later may succeed. */
export class BusUnavailable extends Data.TaggedError("BusUnavailable")<{
  readonly operation: string
  readonly cause: unknown
}> {
  override get message() {
    return `bus unavailable during ${this.operation}: ${describeCause(this.cause)}`
  }
}

/** The bus refused the request (no stream for the subject, invalid name, bad spec): retrying will not help. */
export class BusRejected extends Data.TaggedError("BusRejected")<{
  readonly operation: string
  readonly reason: string
}> {
  override get message() {
    return `bus rejected ${this.operation}: ${this.reason}`
  }
}

export type BusError = BusUnavailable | BusRejected

export class DeadLetterNotFound extends Data.TaggedError("DeadLetterNotFound")<{
  readonly id: string
}> {
  override get message() {
    return `no dead letter with id ${this.id}`
  }
}

/** Headers the bus itself sets; user headers must not start with `Chorus-`. */
export const BusHeader = {
  key: "Chorus-Key",
  /** On a replayed dead letter: only this consumer handles it, the others acknowledge and skip it. */
  replayFor: "Chorus-Replay-For",
  replayOf: "Chorus-Replay-Of",
} as const

/**
 * What is wrong with these publish options, if anything; the same rule on every backend, so a
 * publisher behaves the same on both. `Chorus-*` and `Nats-*` headers belong to the bus.
 */
export const publishProblem = (options: PublishOptions): string | undefined => {
  if (typeof options.id !== "string" || options.id.length === 0) return "a message id is required"
  for (const [name, value] of Object.entries(options.headers ?? {})) {
    const lower = name.toLowerCase()
    if (lower.startsWith("chorus-") || lower.startsWith("nats-")) {
      return `header ${name} is reserved`
    }
    if (typeof value !== "string") return `header ${name} must be a string`
  }
  return undefined
}

const NAME = /^[A-Za-z0-9_-]{1,64}$/
export const isValidName = (name: string): boolean => NAME.test(name)

export const describeCause = (cause: unknown): string =>
  cause instanceof Error ? cause.message : typeof cause === "string" ? cause : JSON.stringify(cause)
