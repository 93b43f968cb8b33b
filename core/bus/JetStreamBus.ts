/**
 * The bus on NATS JetStream: for one or many nodes sharing a NATS server or cluster.
 *
 * Layout on the server, for namespace `ns`:
 * - logical stream `name` is the JetStream stream `ns_name`, logical subject `s` is `ns.s`;
 *   handlers only ever see logical names;
 * - dead letters live in the stream `ns__dlq`, at `ns._dlq.<stream>.<consumer>`, each with the
 *   original data and headers plus `Chorus-Dlq-*` headers; their ids are stream sequences;
 * - `ns__advisories` captures the server's MAX_DELIVERIES advisories for every stream of the
 *   namespace. An internal durable consumer (`chorus-dlq-mover`) moves the message each advisory
 *   names into the dead letters. It is the backstop for a message whose holder died on its very
 *   last delivery: the advisory is stored even if no bus is connected when the server gives up.
 *   (2.9 gives up, and advises, when a pull finds the message past `max_deliver`, not when
 *   `ack_wait` runs out.)
 *
 * Consumers are durable pull consumers driven by the shared `ConsumerRunner`; this module only
 * provides the `ConsumerSource`. Server-side `max_deliver` is `maxDeliver + 1`: the runner
 * dead-letters on the last allowed delivery itself, and the one extra delivery lets it dead-letter
 * a message whose holder crashed on its final delivery.
 *
 * Ordered consumers (`ordering: "key"`) assume ONE active instance per durable consumer at a time:
 * on start, a consumer that a previous incarnation left with unacknowledged deliveries is deleted
 * and recreated at its ack floor (see `prepareConsumer`). Running two instances of the same
 * ordered consumer would make them rewind each other; with several nodes only the leader (the
 * holder of the cluster lease, core/cluster/Leadership.ts) runs them. An incarnation that stops cleanly (everything it held acked or nak'd, and the server's
 * pending count agrees) records that in the consumer's description, and the next one does not
 * rewind: a rewind redelivers messages acked above the ack floor. A running ordered consumer
 * rewinds the same way (through the runner, once its handlers are done) after a reconnect and when
 * its delivery sequence skips or goes back: a delivery lost on the wire would otherwise stay
 * pending until ack_wait while newer messages of its key are handled (see `makeSource`).
 *
 * Namespaces must not be prefixes of each other joined by `_` with colliding stream names
 * (`a` + stream `b_c` vs `a_b` + stream `c`): `ensureStream` refuses to take over such a stream.
 *
 * Readers (`read`) are ephemeral pull consumers without acks, started at the sequence after the
 * last message the reader emitted. The reader checks that delivery sequences follow each other;
 * on a gap (a delivery lost in a reconnect), a failed pull, a missed heartbeat or a consumer the
 * server dropped (restart, inactivity) it deletes the consumer and creates a new one from that
 * sequence: the library's ordered consumer does the same, but this way the restart position is
 * ours and no failure ends the read. Messages below the position are never emitted twice.
 *
 * A publish or a confirmed ack in flight when the connection drops fails at once with
 * `BusUnavailable` (its answer can no longer come; nats.js would let it wait out its timeout).
 *
 * Written for nats-server 2.9: one `filter_subject` per consumer, no per-message TTL, no priority
 * groups, no consumer reset API, `+TERM` without a reason.
 */
import {
  AckPolicy,
  type Consumer,
  type ConsumerConfig,
  type ConsumerInfo,
  type ConsumerMessages,
  DeliverPolicy,
  DiscardPolicy,
  jetstream,
  JetStreamApiError,
  type JetStreamClient,
  type JetStreamManager,
  jetstreamManager,
  type JsMsg,
  ReplayPolicy,
  RetentionPolicy,
  StorageType,
  type StoredMsg,
  type StreamConfig,
} from "@nats-io/jetstream"
import {
  AuthorizationError,
  connect,
  headers as natsHeaders,
  InvalidArgumentError,
  InvalidSubjectError,
  type MsgHdrs,
  type NatsConnection,
  PermissionViolationError,
  RequestError,
} from "@nats-io/transport-node"
import { randomBytes } from "node:crypto"
import { makeReplies } from "./JetStreamReplies.ts"
import { makeWakeup } from "../effect/Wakeup.ts"
import {
  Chunk,
  Duration,
  Effect,
  Fiber,
  Layer,
  Option,
  Queue,
  Schedule,
  Schema,
  type Scope,
  Stream,
  Take,
} from "effect"
import {
  Bus,
  type BusError,
  BusHeader,
  type BusMessage,
  BusRejected,
  type BusShape,
  BusUnavailable,
  type ConsumerSpec,
  type DeadLetter,
  DeadLetterNotFound,
  type DeadLetterQuery,
  type Handler,
  isValidName,
  type PublishAck,
  type PublishOptions,
  publishProblem,
  type ReadOptions,
  type StreamSpec,
} from "./Bus.ts"
import {
  type ConsumerSource,
  type Delivery,
  resolveConsumerSpec,
  type ResolvedConsumerSpec,
  runConsumer,
} from "./ConsumerRunner.ts"
import { makeLocalValues } from "./LocalValues.ts"

export interface JetStreamBusOptions {
  /** NATS server URL(s), e.g. `nats://127.0.0.1:4222`. */
  readonly servers: string | ReadonlyArray<string>
  /** Prefix of every stream and subject, `[A-Za-z0-9_-]+`. */
  readonly namespace: string
  /** Replicas of every stream the bus creates. Default: 1. */
  readonly replicas?: number
  /** Connection name shown by the server's monitoring. Default: `chorus-<namespace>`. */
  readonly connectionName?: string
}

/** Headers of a dead letter, next to the original message's own headers. */
const DlqHeader = {
  stream: "Chorus-Dlq-Stream",
  consumer: "Chorus-Dlq-Consumer",
  subject: "Chorus-Dlq-Subject",
  seq: "Chorus-Dlq-Seq",
  messageId: "Chorus-Dlq-Msg-Id",
  key: "Chorus-Dlq-Key",
  deliveries: "Chorus-Dlq-Deliveries",
  reason: "Chorus-Dlq-Reason",
  deadAt: "Chorus-Dlq-Dead-At",
} as const

const MSG_ID_HEADER = "Nats-Msg-Id"
const MOVER = "chorus-dlq-mover"
const MOVER_REASON = "max deliveries exceeded"
/** Consumer descriptions that tell the next incarnation of an ordered consumer how we stopped. */
const RUNNING = "chorus: running"
const STOPPED_CLEANLY = "chorus: stopped cleanly"
const REQUEST_TIMEOUT_MS = 5_000
/** Lifetime of one pull request; closing a consumer waits it out (see `makeSource`). */
const FETCH_EXPIRES_MS = 1_000
const PING_TIMEOUT = Duration.seconds(2)
/** Readers: messages per pull request and buffered for the stream's consumer; request lifetime. */
const READ_BATCH = 256
const READ_EXPIRES_MS = 5_000
/** A reader's consumer that nobody pulls from for this long is removed by the server. */
const READ_INACTIVE = Duration.seconds(30)

/** The payload of `io.nats.jetstream.advisory.v1.max_deliver` (server field names). */
const MaxDeliverAdvisory = Schema.parseJson(Schema.Struct({
  stream: Schema.String,
  consumer: Schema.String,
  stream_seq: Schema.Number,
  deliveries: Schema.Number,
}))

// ---------------------------------------------------------------------------------------------
// Errors: every Promise of nats.js goes through `call`, which maps its failure once.

const isNoResponders = (cause: unknown): boolean =>
  (cause instanceof RequestError && cause.isNoResponders()) ||
  (cause instanceof Error && cause.cause !== undefined && cause.cause !== cause &&
    isNoResponders(cause.cause))

const isRejection = (cause: unknown): boolean => {
  if (cause instanceof JetStreamApiError) {
    return cause.status >= 400 && cause.status < 500 &&
      cause.status !== 408
  }
  return cause instanceof InvalidArgumentError || cause instanceof InvalidSubjectError ||
    cause instanceof PermissionViolationError || cause instanceof AuthorizationError ||
    (cause instanceof Error && cause.name === "InvalidNameError")
}

const toBusError = (operation: string) => (cause: unknown): BusError =>
  isRejection(cause)
    ? new BusRejected({
      operation,
      reason: cause instanceof Error ? cause.message : String(cause),
    })
    : new BusUnavailable({ operation, cause })

/**
 * A request to NATS as an Effect, in one step (publishes and acks run per message, and
 * `Effect.tryPromise` plus the combinators around it cost more operations than the request).
 */
const call = <A>(operation: string, f: () => Promise<A>): Effect.Effect<A, BusError> =>
  Effect.async<A, BusError>((resume) => {
    let promise: Promise<A>
    try {
      promise = f()
    } catch (e) {
      return resume(Effect.fail(toBusError(operation)(e)))
    }
    promise.then(
      (a) => resume(Effect.succeed(a)),
      (e) => resume(Effect.fail(toBusError(operation)(e))),
    )
  })

const reject = (operation: string, reason: string) => new BusRejected({ operation, reason })

/** The server's answer to an API call, or `undefined` when it answers with an error in `codes`. */
const unlessCode = <A>(
  operation: string,
  codes: number | ReadonlyArray<number>,
  f: () => Promise<A>,
): Effect.Effect<A | undefined, BusError> =>
  Effect.tryPromise({ try: f, catch: (e) => e }).pipe(
    Effect.catchAll((e) =>
      e instanceof JetStreamApiError &&
        (typeof codes === "number" ? e.code === codes : codes.includes(e.code))
        ? Effect.succeed(undefined)
        : Effect.fail(toBusError(operation)(e))
    ),
  )

const ApiCode = {
  consumerNotFound: 10014,
  streamNotFound: 10059,
  streamNameInUse: 10058,
  sequenceNotFound: 10043,
  /** "no message found" among other delete failures (status 500). */
  messageDeleteFailed: 10057,
} as const

// ---------------------------------------------------------------------------------------------
// Names and subjects.

/** A NATS subject; with `wildcards`, `*` tokens and a final `>` are allowed. */
const isValidSubject = (subject: string, wildcards: boolean): boolean => {
  const tokens = subject.split(".")
  return tokens.every((t, i) =>
    t.length > 0 && !/\s/.test(t) &&
    (wildcards && (t === "*" || (t === ">" && i === tokens.length - 1)) || !/[*>]/.test(t))
  )
}

const subjectMatches = (pattern: string, subject: string): boolean => {
  const p = pattern.split(".")
  const s = subject.split(".")
  for (let i = 0; i < p.length; i++) {
    if (p[i] === ">") return s.length > i
    if (i >= s.length) return false
    if (p[i] !== "*" && p[i] !== s[i]) return false
  }
  return p.length === s.length
}

const toNanos = (d: Duration.Duration): number => Math.round(Duration.toMillis(d) * 1_000_000)

const finiteDuration = (
  operation: string,
  input: Duration.DurationInput,
): Effect.Effect<Duration.Duration, BusRejected> => {
  const d = Duration.decode(input)
  return Duration.isFinite(d) && Duration.greaterThan(d, Duration.zero)
    ? Effect.succeed(d)
    : Effect.fail(reject(operation, `duration must be finite and positive: ${Duration.format(d)}`))
}

/** Header values cannot carry line breaks; reasons (stack traces) are flattened and capped. */
const headerValue = (value: string): string => value.replace(/[\r\n]+/g, " ").slice(0, 2_000)

/** The headers a message shows its consumers: not the bus's own (`Nats-…`, key, dead letters). */
const isOwnHeader = (k: string) =>
  k.startsWith("Nats-") || k === BusHeader.key || k.startsWith("Chorus-Dlq-")

/**
 * A delivered message's id, key and shown headers in one pass over its headers: nats.js's
 * `has`/`get` copy the key list on every call, which made reading them a good part of a
 * delivery's garbage.
 */
const readHeaders = (h: MsgHdrs | undefined) => {
  let id: string | undefined
  let key: string | undefined
  const headers: Record<string, string> = {}
  if (h) {
    for (const [k, values] of h) {
      const v = values[0] ?? ""
      if (k === MSG_ID_HEADER) id = v
      else if (k === BusHeader.key) key = v
      else if (!isOwnHeader(k)) headers[k] = v
    }
  }
  return { id, key, headers }
}

const headerRecord = (h: MsgHdrs | undefined): Record<string, string> => readHeaders(h).headers

const headerOf = (h: MsgHdrs | undefined, key: string): string | undefined => {
  if (!h || !h.has(key)) return undefined
  return h.get(key)
}

/** The reply subject of a delivery, to which acks are sent. */
const replySubject = (m: JsMsg): string | undefined =>
  "reply" in m && typeof m.reply === "string" && m.reply.length > 0 ? m.reply : undefined

const ACK = new TextEncoder().encode("+ACK")
const TERM = new TextEncoder().encode("+TERM")

/** A stream configuration as we send it; the server fills in the rest. */
type StreamSetup = Partial<StreamConfig> & { readonly name: string }

/** What a dead letter records about the message it keeps. */
interface DeadMessage {
  readonly stream: string
  readonly subject: string
  readonly seq: number
  readonly id: string
  readonly key: string | undefined
  readonly headers: Readonly<Record<string, string>>
  readonly data: Uint8Array
}

// ---------------------------------------------------------------------------------------------

/**
 * A bus on NATS JetStream, living as long as the current scope. Fails with `BusUnavailable` if
 * the server cannot be reached now; after that the connection reconnects forever.
 *
 * @example
 * const bus = yield* JetStreamBus.make({ servers: "nats://127.0.0.1:4222", namespace: "chorus" })
 * yield* bus.ensureStream({ name: "inbound", subjects: ["inbound.>"] })
 * yield* bus.publish("inbound.telegram", data, { id: update.id, key: conversationId })
 */
export const make = (
  options: JetStreamBusOptions,
): Effect.Effect<BusShape, BusError, Scope.Scope> =>
  Effect.gen(function* () {
    const ns = options.namespace
    if (!isValidName(ns)) {
      return yield* Effect.fail(reject("make", `invalid namespace ${JSON.stringify(ns)}`))
    }
    const replicas = options.replicas ?? 1
    const servers = typeof options.servers === "string" ? [options.servers] : [...options.servers]
    const streamPrefix = `${ns}_`
    const subjectPrefix = `${ns}.`
    const dlqStream = `${ns}__dlq`
    const advisoryStream = `${ns}__advisories`
    const streamName = (logical: string) => `${streamPrefix}${logical}`
    const logicalStream = (name: string) =>
      name.startsWith(streamPrefix) ? name.slice(streamPrefix.length) : name
    const fullSubject = (logical: string) => `${subjectPrefix}${logical}`
    const logicalSubject = (subject: string) =>
      subject.startsWith(subjectPrefix) ? subject.slice(subjectPrefix.length) : subject
    const dlqSubject = (stream: string, consumer: string) => `${ns}._dlq.${stream}.${consumer}`
    const advisorySubject = (stream: string) =>
      `$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.${stream}.*`
    /** Logical names starting with `_` are the bus's own (`_dlq`, `_advisories`). */
    const isOwnStream = (name: string) =>
      name.startsWith(streamPrefix) && !name.slice(streamPrefix.length).startsWith("_")

    /** Between a `disconnect` and the next `reconnect` of the connection's status: false. */
    let connected = true
    const nc: NatsConnection = yield* Effect.acquireRelease(
      call("connect", () =>
        connect({
          servers,
          name: options.connectionName ?? `chorus-${ns}`,
          maxReconnectAttempts: -1,
          reconnectTimeWait: 250,
          timeout: REQUEST_TIMEOUT_MS,
          // A stack trace captured per request (publish, ack) costs more than the request.
          noAsyncTraces: true,
        })),
      (nc) =>
        // Draining needs the server: while disconnected it could only wait out its timeout.
        (connected ? call("close", () => nc.drain()) : Effect.void).pipe(
          Effect.timeout("5 seconds"),
          Effect.ignore,
          Effect.zipRight(
            call("close", () => (nc.isClosed() ? Promise.resolve() : nc.close())).pipe(
              Effect.timeout("5 seconds"),
              Effect.ignore,
            ),
          ),
        ),
    )
    // Publishes and confirmed acks: pipelined, without nats.js's per-request costs.
    const replies = yield* Effect.acquireRelease(
      Effect.sync(() => makeReplies(nc, REQUEST_TIMEOUT_MS)),
      (r) => Effect.sync(() => r.close()),
    )
    /** Called on every reconnect of the connection (see `makeSource`). */
    const reconnectListeners = new Set<() => void>()
    const onReconnect = (listener: () => void): Effect.Effect<void> => {
      reconnectListeners.add(listener)
      return Effect.sync(() => reconnectListeners.delete(listener))
    }
    void (async () => {
      // The one watch of the connection's status; ends when the connection closes.
      for await (const status of nc.status()) {
        if (status.type === "disconnect") {
          connected = false
          replies.connectionLost()
        } else if (status.type === "reconnect") {
          connected = true
          reconnectListeners.forEach((listener) => listener())
        }
      }
    })()
    const jsm: JetStreamManager = yield* call(
      "connect",
      () => jetstreamManager(nc, { timeout: REQUEST_TIMEOUT_MS }),
    )
    const js: JetStreamClient = jetstream(nc, { timeout: REQUEST_TIMEOUT_MS })

    /** Logical subjects of the streams we know, by logical stream name. */
    const knownStreams = new Map<string, ReadonlyArray<string>>()
    const advisorySubjects = new Set<string>()
    const advisoryLock = yield* Effect.makeSemaphore(1)

    const remember = (info: { config: StreamConfig }) =>
      knownStreams.set(
        logicalStream(info.config.name),
        (info.config.subjects ?? []).filter((s) => s.startsWith(subjectPrefix)).map(
          logicalSubject,
        ),
      )

    /**
     * Create the stream, or bring an existing one to `config`; both idempotent. With `mustOwn`,
     * an existing stream must store only subjects of this namespace: `a` + `b_c` and `a_b` + `c`
     * name the same JetStream stream, and one namespace must not rewrite the other's.
     */
    const upsertStream = (operation: string, config: StreamSetup, mustOwn = false) =>
      Effect.gen(function* () {
        const added = yield* unlessCode(
          operation,
          ApiCode.streamNameInUse,
          () => jsm.streams.add(config),
        )
        if (added !== undefined) return added
        const { name, retention: _r, storage: _s, ...update } = config
        if (mustOwn) {
          const current = yield* call(operation, () => jsm.streams.info(name))
          if (!(current.config.subjects ?? []).every((s) => s.startsWith(subjectPrefix))) {
            return yield* Effect.fail(
              reject(operation, `stream ${name} exists with subjects of another namespace`),
            )
          }
        }
        return yield* call(operation, () => jsm.streams.update(name, update))
      })

    const streamConfig = (
      name: string,
      subjects: ReadonlyArray<string>,
      extra: Partial<StreamConfig>,
    ): StreamSetup => ({
      name,
      subjects: [...subjects],
      storage: StorageType.File,
      retention: RetentionPolicy.Limits,
      discard: DiscardPolicy.Old,
      num_replicas: replicas,
      max_age: 0,
      duplicate_window: toNanos(Duration.minutes(10)),
      max_msgs: -1,
      max_bytes: -1,
      max_msg_size: -1,
      max_msgs_per_subject: -1,
      max_consumers: -1,
      ...extra,
    })

    /**
     * Make `ns__advisories` capture MAX_DELIVERIES advisories of `streams` too. The subject list is
     * read, extended and written back, then checked, since other nodes may extend it at once.
     */
    const captureAdvisories = (streams: ReadonlyArray<string>) =>
      advisoryLock.withPermits(1)(Effect.gen(function* () {
        const wanted = streams.map(advisorySubject).filter((s) => !advisorySubjects.has(s))
        if (wanted.length === 0) return
        for (let attempt = 0; attempt < 5; attempt++) {
          const info = yield* unlessCode(
            "ensureStream",
            ApiCode.streamNotFound,
            () => jsm.streams.info(advisoryStream),
          )
          const current = info?.config.subjects ?? []
          const missing = wanted.filter((s) => !current.includes(s))
          if (missing.length === 0) {
            for (const s of wanted) advisorySubjects.add(s)
            return
          }
          yield* upsertStream(
            "ensureStream",
            streamConfig(advisoryStream, [...current, ...missing], {
              // Advisories are deleted once moved; a week covers any outage we expect.
              retention: RetentionPolicy.Workqueue,
              max_age: toNanos(Duration.days(7)),
            }),
          )
        }
        return yield* Effect.fail(
          reject("ensureStream", "advisory stream subjects kept changing under us"),
        )
      }))

    // The dead-letter stream and the advisory stream exist before anything can go wrong.
    yield* upsertStream(
      "make",
      streamConfig(dlqStream, [`${ns}._dlq.>`], {
        // Dead letters stay until replayed or discarded.
        allow_direct: true,
      }),
    )
    const existing = yield* call("make", async () => {
      const names: Array<string> = []
      for await (const name of jsm.streams.names(`${ns}.>`)) {
        if (isOwnStream(name)) names.push(name)
      }
      return names
    })
    // The DLQ stream itself keeps the list non-empty (a stream needs a subject); nothing consumes
    // it with `max_deliver`, so no advisory ever arrives on that subject.
    yield* captureAdvisories([dlqStream, ...existing])

    // -------------------------------------------------------------------------------------------
    // Publishing.

    /** The stream storing `subject` among those this bus has seen; `undefined` if none. */
    const knownStreamOf = (subject: string): string | undefined => {
      for (const [name, patterns] of knownStreams) {
        if (patterns.some((p) => subjectMatches(p, subject))) return name
      }
      return undefined
    }

    /** The logical stream storing `subject`, asking the server when it is not one we know. */
    const streamFor = (operation: string, subject: string) =>
      Effect.gen(function* () {
        const known = knownStreamOf(subject)
        if (known !== undefined) return known
        const found = yield* call(operation, async () => {
          const names: Array<string> = []
          for await (const name of jsm.streams.names(fullSubject(subject))) {
            if (isOwnStream(name)) names.push(name)
          }
          return names
        })
        const name = found[0]
        if (name === undefined) {
          return yield* Effect.fail(reject(operation, `no stream stores subject ${subject}`))
        }
        const info = yield* call(operation, () => jsm.streams.info(name))
        remember(info)
        return logicalStream(name)
      })

    /**
     * Nobody answered a publish: the connection is reconnecting, JetStream is starting, or the
     * stream is gone. Only the last one is a rejection; ask the server which it is.
     */
    const explainNoResponders = (
      operation: string,
      stream: string,
      e: BusError,
    ): Effect.Effect<never, BusError> => {
      if (e._tag !== "BusUnavailable" || !isNoResponders(e.cause)) return Effect.fail(e)
      return unlessCode(
        operation,
        ApiCode.streamNotFound,
        () => jsm.streams.info(streamName(stream)),
      ).pipe(
        Effect.flatMap((info): Effect.Effect<never, BusError> => {
          if (info !== undefined) return Effect.fail(e)
          knownStreams.delete(stream)
          return Effect.fail(reject(operation, `stream ${stream} does not exist`))
        }),
      )
    }

    /** Decoded values of what this process published, for its own consumers (LocalValues.ts). */
    const localValues = makeLocalValues()

    /** Publish to a stream already known: no generator, the lookup only for a new stream. */
    const publishTo = (
      operation: string,
      stream: string,
      subject: string,
      data: Uint8Array,
      msgID: string,
      headers: MsgHdrs,
      local?: unknown,
    ): Effect.Effect<PublishAck, BusError> =>
      call(operation, () => {
        headers.set("Nats-Msg-Id", msgID)
        return replies.publish(fullSubject(subject), data, headers).then((ack) => {
          const published = {
            stream: logicalStream(ack.stream),
            seq: ack.seq,
            duplicate: ack.duplicate,
          }
          if (!published.duplicate) localValues.put(published.stream, published.seq, local)
          return published
        })
      }).pipe(Effect.catchAll((e) => explainNoResponders(operation, stream, e)))

    const publishRaw = (
      operation: string,
      subject: string,
      data: Uint8Array,
      msgID: string,
      headers: MsgHdrs,
      local?: unknown,
    ): Effect.Effect<PublishAck, BusError> => {
      const known = knownStreamOf(subject)
      return known !== undefined
        ? publishTo(operation, known, subject, data, msgID, headers, local)
        : Effect.flatMap(
          streamFor(operation, subject),
          (stream) => publishTo(operation, stream, subject, data, msgID, headers, local),
        )
    }

    // No span: publish runs per message (a span costs a stack capture).
    const publish = (
      subject: string,
      data: Uint8Array,
      options: PublishOptions,
    ): Effect.Effect<PublishAck, BusError> => {
      if (!isValidSubject(subject, false) || subject.startsWith("_dlq.")) {
        return Effect.fail(reject("publish", `invalid subject ${JSON.stringify(subject)}`))
      }
      const problem = publishProblem(options)
      if (problem !== undefined) return Effect.fail(reject("publish", problem))
      return Effect.suspend(() => {
        const h = natsHeaders()
        for (const [k, v] of Object.entries(options.headers ?? {})) h.set(k, headerValue(v))
        if (options.key !== undefined) h.set(BusHeader.key, headerValue(options.key))
        return publishRaw("publish", subject, data, options.id, h, options.local)
      })
    }

    const ensureStream = Effect.fn("JetStreamBus.ensureStream")(function* (spec: StreamSpec) {
      if (!isValidName(spec.name) || spec.name.startsWith("_")) {
        return yield* Effect.fail(
          reject("ensureStream", `invalid stream name ${JSON.stringify(spec.name)}`),
        )
      }
      if (spec.subjects.length === 0) {
        return yield* Effect.fail(reject("ensureStream", "a stream needs at least one subject"))
      }
      for (const s of spec.subjects) {
        if (!isValidSubject(s, true) || s.startsWith("_dlq.") || s === "_dlq") {
          return yield* Effect.fail(
            reject("ensureStream", `invalid subject ${JSON.stringify(s)}`),
          )
        }
      }
      const maxAge = yield* finiteDuration("ensureStream", spec.maxAge ?? Duration.days(7))
      const window = yield* finiteDuration(
        "ensureStream",
        spec.duplicateWindow ?? Duration.minutes(10),
      )
      const info = yield* upsertStream(
        "ensureStream",
        streamConfig(streamName(spec.name), spec.subjects.map(fullSubject), {
          max_age: toNanos(maxAge),
          duplicate_window: toNanos(Duration.min(window, maxAge)),
        }),
        true,
      )
      remember(info)
      yield* captureAdvisories([streamName(spec.name)])
    })

    // -------------------------------------------------------------------------------------------
    // Dead letters.

    const storeDeadLetter = (
      message: DeadMessage,
      consumer: string,
      reason: string,
      deliveries: number,
    ) => {
      const h = natsHeaders()
      for (const [k, v] of Object.entries(message.headers)) h.set(k, v)
      h.set(DlqHeader.stream, message.stream)
      h.set(DlqHeader.consumer, consumer)
      h.set(DlqHeader.subject, message.subject)
      h.set(DlqHeader.seq, String(message.seq))
      h.set(DlqHeader.messageId, headerValue(message.id))
      if (message.key !== undefined) h.set(DlqHeader.key, message.key)
      h.set(DlqHeader.deliveries, String(deliveries))
      h.set(DlqHeader.reason, headerValue(reason))
      h.set(DlqHeader.deadAt, new Date().toISOString())
      return call(
        "deadLetter",
        () =>
          js.publish(dlqSubject(message.stream, consumer), message.data, {
            // Idempotent: the runner and the advisory path may both try, and retries repeat.
            msgID: `dlq:${message.stream}:${consumer}:${message.seq}`,
            headers: h,
          }),
      ).pipe(Effect.asVoid)
    }

    const decodeDeadLetter = (m: StoredMsg): DeadLetter => {
      const h = m.header
      return {
        id: String(m.seq),
        stream: headerOf(h, DlqHeader.stream) ?? "",
        consumer: headerOf(h, DlqHeader.consumer) ?? "",
        subject: headerOf(h, DlqHeader.subject) ?? "",
        messageId: headerOf(h, DlqHeader.messageId) ?? "",
        seq: Number(headerOf(h, DlqHeader.seq) ?? 0),
        key: headerOf(h, DlqHeader.key),
        headers: headerRecord(h),
        data: m.data,
        deliveries: Number(headerOf(h, DlqHeader.deliveries) ?? 0),
        reason: headerOf(h, DlqHeader.reason) ?? "",
        deadAt: new Date(headerOf(h, DlqHeader.deadAt) ?? m.time),
      }
    }

    const dlqSeq = (id: string): Option.Option<number> =>
      /^[1-9][0-9]{0,15}$/.test(id) ? Option.some(Number(id)) : Option.none()

    const getDeadLetter = Effect.fn("JetStreamBus.deadLetters.get")(function* (id: string) {
      const seq = dlqSeq(id)
      if (Option.isNone(seq)) return yield* Effect.fail(new DeadLetterNotFound({ id }))
      const m = yield* call("deadLetters.get", () =>
        jsm.direct.getMessage(dlqStream, { seq: seq.value }))
      if (m === null || m.seq !== seq.value) {
        return yield* Effect.fail(new DeadLetterNotFound({ id }))
      }
      return decodeDeadLetter(m)
    })

    const listDeadLetters = Effect.fn("JetStreamBus.deadLetters.list")(function* (
      query: DeadLetterQuery = {},
    ) {
      if (query.consumer !== undefined && !isValidName(query.consumer)) {
        return []
      }
      let next = 1
      if (query.after !== undefined) {
        const after = dlqSeq(query.after)
        if (Option.isNone(after)) {
          return yield* Effect.fail(
            reject("deadLetters.list", `invalid cursor ${JSON.stringify(query.after)}`),
          )
        }
        next = after.value + 1
      }
      const filter = query.consumer === undefined
        ? `${ns}._dlq.>`
        : `${ns}._dlq.*.${query.consumer}`
      const limit = Math.max(0, query.limit ?? 100)
      const out: Array<DeadLetter> = []
      while (out.length < limit) {
        const seq = next
        const m = yield* call(
          "deadLetters.list",
          () => jsm.direct.getMessage(dlqStream, { seq, next_by_subj: filter }),
        )
        if (m === null) break
        out.push(decodeDeadLetter(m))
        next = m.seq + 1
      }
      return out
    })

    const deleteDeadLetter = (operation: string, id: string, seq: number) =>
      Effect.gen(function* () {
        const deleted = yield* unlessCode(
          operation,
          [ApiCode.sequenceNotFound, ApiCode.messageDeleteFailed],
          () => jsm.streams.deleteMessage(dlqStream, seq, false),
        )
        if (deleted !== undefined) return
        // The server answers "no message found" with a generic failure code: look again.
        const m = yield* call(operation, () => jsm.direct.getMessage(dlqStream, { seq }))
        return yield* m === null
          ? Effect.fail(new DeadLetterNotFound({ id }))
          : Effect.fail(new BusUnavailable({ operation, cause: `could not delete ${id}` }))
      })

    const replayDeadLetter = Effect.fn("JetStreamBus.deadLetters.replay")(function* (id: string) {
      const dl = yield* getDeadLetter(id)
      const h = natsHeaders()
      for (const [k, v] of Object.entries(dl.headers)) h.set(k, v)
      if (dl.key !== undefined) h.set(BusHeader.key, dl.key)
      h.set(BusHeader.replayFor, dl.consumer)
      h.set(BusHeader.replayOf, headerValue(dl.messageId))
      const ack = yield* publishRaw("deadLetters.replay", dl.subject, dl.data, `replay:${id}`, h)
      // Deleted only after the replay is stored; a repeated replay is a duplicate by its id.
      yield* deleteDeadLetter("deadLetters.replay", id, Number(id)).pipe(
        Effect.catchTag("DeadLetterNotFound", () => Effect.void),
      )
      return ack
    })

    const discardDeadLetter = Effect.fn("JetStreamBus.deadLetters.discard")(function* (id: string) {
      const seq = dlqSeq(id)
      if (Option.isNone(seq)) return yield* Effect.fail(new DeadLetterNotFound({ id }))
      yield* deleteDeadLetter("deadLetters.discard", id, seq.value)
    })

    // -------------------------------------------------------------------------------------------
    // Consumers.

    const toBusMessage = (m: JsMsg, deliveryCount = m.info.deliveryCount): BusMessage => {
      const stream = logicalStream(m.info.stream)
      const { id, key, headers } = readHeaders(m.headers)
      return {
        stream,
        seq: m.seq,
        subject: logicalSubject(m.subject),
        id: id ?? `${stream}:${m.seq}`,
        key,
        headers,
        data: m.data,
        deliveryCount,
        publishedAt: m.time,
        local: localValues.take(stream, m.seq),
      }
    }

    /**
     * Send `+ACK`/`+TERM` as a request and wait for the server to confirm it. This is what
     * `JsMsg.ackAck()` does, except that it can be repeated: `ackAck()` marks the message acked
     * before sending, so a retry after a timeout would send nothing.
     */
    const confirm = (
      operation: string,
      m: JsMsg,
      body: Uint8Array,
      /** Runs once the server confirmed, before the caller goes on. */
      onConfirmed?: () => void,
    ): Effect.Effect<void, BusError> => {
      const reply = replySubject(m)
      return reply === undefined
        ? Effect.fail(reject(operation, "the delivery has no reply subject"))
        : call(operation, () =>
          replies.request(reply, body).then(() => {
            onConfirmed?.()
          }))
    }

    /**
     * The `ConsumerSource` of one durable pull consumer. A pump keeps one fetch open at a time
     * (up to `batch` messages, `expires` 1 s) and queues what arrives; `pull` takes from that
     * queue. A fetch per `pull` would either wait out `expires` for a partial batch or abandon
     * deliveries already on their way.
     *
     * Every delivery is tracked until acked or terminated. Closing the scope hands back (naks)
     * what the runner left unsettled, and tells `onClosed` whether the consumer's pending count is
     * no more than what we nak'd, i.e. whether nothing we cannot account for waits out `ack_wait`.
     * `stopFetching` must run before the runner's own stop, which naks what it had queued: those
     * naks must wait until our last pull request has expired, or it would swallow the redeliveries.
     */
    const makeSource = (
      stream: string,
      durable: string,
      batch: number,
      onClosed: (clean: boolean) => Effect.Effect<void>,
      /** For ordered consumers: recreate the consumer after what was acknowledged. */
      rewindConsumer?: Effect.Effect<void, BusError>,
    ) =>
      Effect.gen(function* () {
        let consumer: Consumer = yield* call("consume", () => js.consumers.get(stream, durable))
        /** Fetched, not yet pulled by the runner, oldest first. */
        let inbox: Array<JsMsg> = []
        const arrived = makeWakeup()
        const tracked = new Map<number, { msg: JsMsg; nakd: boolean }>()
        const raw = new WeakMap<Delivery, JsMsg>()
        let stopping = false
        let current: ConsumerMessages | undefined
        /** When the server forgets our latest pull request (client clock, with a margin). */
        let requestDeadline = 0
        /** The consumer's last delivery sequence we received; the next must follow it. */
        let delivered = rewindConsumer === undefined
          ? 0
          : (yield* call("consume", () => jsm.consumers.info(stream, durable))).delivered
            .consumer_seq
        /** Deliveries were lost: fetch nothing until the runner has rewound the consumer. */
        let lost: string | undefined
        const fetching = yield* Effect.makeLatch(true)

        const loseDeliveries = (reason: string) => {
          if (lost !== undefined || rewindConsumer === undefined) return
          lost = reason
          fetching.unsafeClose()
          current?.stop()
        }

        const fetchOnce = call("pull", async () => {
          requestDeadline = Date.now() + FETCH_EXPIRES_MS + 250
          const messages = await consumer.fetch({
            max_messages: batch,
            expires: FETCH_EXPIRES_MS,
          })
          current = messages
          if (stopping || lost !== undefined) messages.stop()
          for await (const m of messages) {
            if (rewindConsumer !== undefined) {
              // Every delivery of the consumer is ours (one instance), so a delivery sequence
              // that skips one means a delivery was sent and never reached us; it stays pending
              // until ack_wait while newer messages of its key would run. One that goes back
              // means the server forgot deliveries (killed before it stored them).
              if (lost !== undefined) continue
              const dseq = m.info.deliverySequence
              if (dseq !== delivered + 1) {
                loseDeliveries(`delivery ${dseq} after ${delivered}`)
                continue
              }
              delivered = dseq
            }
            tracked.set(m.seq, { msg: m, nakd: false })
            inbox.push(m)
            arrived.notify()
          }
        })
        // The fetch itself is not interruptible: closing stops it (`stop()`) and waits for what
        // it already received to reach the queue, so nothing is dropped on the floor.
        const pump = fetching.await.pipe(
          Effect.zipRight(Effect.uninterruptible(fetchOnce)),
          Effect.tapError((e) => Effect.logDebug("fetch failed; retrying", e)),
          Effect.retry(
            Schedule.exponential("100 millis").pipe(Schedule.either(Schedule.spaced("2 seconds"))),
          ),
          Effect.forever,
          Effect.annotateLogs({ stream, consumer: durable }),
        )
        const pumpFiber = yield* Effect.forkDaemon(pump)

        // Stopping the iterator does not withdraw the pull request from the server (2.9 has no
        // way to), and the server would redeliver a nak'd message to it, into an inbox nobody
        // reads: that message would only return after ack_wait. Once stopping, naks wait until
        // the request has expired.
        const requestExpired = Effect.suspend(() =>
          stopping ? Effect.sleep(Math.max(0, requestDeadline - Date.now())) : Effect.void
        )

        const nak = (m: JsMsg, delay: Duration.Duration) =>
          requestExpired.pipe(
            Effect.zipRight(Effect.try({
              try: () => m.nak(Duration.toMillis(delay)),
              catch: toBusError("nak"),
            })),
            Effect.tap(() => {
              const t = tracked.get(m.seq)
              if (t && t.msg === m) t.nakd = true
            }),
          )

        const settled = (m: JsMsg) => {
          const t = tracked.get(m.seq)
          if (t && t.msg === m) tracked.delete(m.seq)
        }

        const toDelivery = (m: JsMsg): Delivery => {
          const delivery: Delivery = {
            message: toBusMessage(m),
            ack: confirm("ack", m, ACK, () => settled(m)),
            nak: (delay) => nak(m, delay),
            inProgress: Effect.try({ try: () => m.working(), catch: toBusError("inProgress") }),
          }
          raw.set(delivery, m)
          return delivery
        }

        const stopFetching = Effect.suspend(() => {
          stopping = true
          current?.stop()
          return Fiber.interrupt(pumpFiber)
        }).pipe(Effect.asVoid)

        yield* Effect.addFinalizer(() =>
          Effect.gen(function* () {
            yield* stopFetching
            let naks = true
            for (const t of tracked.values()) {
              if (!t.nakd) {
                yield* nak(t.msg, Duration.zero).pipe(Effect.catchAll(() => {
                  naks = false
                  return Effect.void
                }))
              }
            }
            inbox = []
            if (!naks) return yield* onClosed(false)
            // Naks are not confirmed, but pending counts them until redelivery; a higher count
            // means a delivery reached the server's books but not us.
            const info = yield* call("consume", () => jsm.consumers.info(stream, durable))
            yield* onClosed(info.num_ack_pending <= tracked.size)
          }).pipe(
            Effect.catchAll((e) => Effect.logDebug("consumer close: could not check state", e)),
          )
        )

        // A reconnect may have lost deliveries we cannot see (the last ones before it) and acks
        // and naks sent meanwhile (nats.js drops what is written while reconnecting): a nak'd
        // message would wait out ack_wait, blocking its key. Rewind on every reconnect.
        if (rewindConsumer !== undefined) {
          const stopListening = onReconnect(() => loseDeliveries("reconnected"))
          yield* Effect.addFinalizer(() => stopListening)
        }

        const rewind: ConsumerSource["rewind"] = rewindConsumer === undefined ? undefined : {
          needed: () => lost !== undefined,
          run: Effect.gen(function* () {
            yield* Effect.logInfo("ordered consumer rewinds to its ack floor").pipe(
              Effect.annotateLogs({ stream, consumer: durable, reason: lost }),
            )
            yield* rewindConsumer
            consumer = yield* call("consume", () => js.consumers.get(stream, durable))
            // Deliveries of the old consumer: its acks and naks go nowhere now.
            tracked.clear()
            inbox = []
            delivered = 0
            lost = undefined
            yield* fetching.open
          }).pipe(Effect.uninterruptible),
        }

        const source: ConsumerSource = {
          ...(rewind === undefined ? {} : { rewind }),
          // What is already here is taken without a timer; otherwise one wait (no forked race)
          // for the next arrival or `expires`.
          pull: (max, expires) => {
            const take = () => inbox.splice(0, Math.max(0, max)).map(toDelivery)
            return Effect.suspend(() =>
              inbox.length > 0
                ? Effect.succeed(take())
                : arrived.wait(Duration.toMillis(expires)).pipe(Effect.map(take))
            )
          },
          deadLetter: (delivery, reason, deliveries) =>
            Effect.gen(function* () {
              const m = raw.get(delivery)
              if (m === undefined) {
                return yield* Effect.fail(reject("deadLetter", "unknown delivery"))
              }
              const message = delivery.message
              yield* storeDeadLetter(message, durable, reason, deliveries)
              yield* confirm("deadLetter", m, TERM)
              settled(m)
            }),
        }
        return { source, stopFetching }
      })

    const sameConsumer = (a: Partial<ConsumerConfig>, b: Partial<ConsumerConfig>) =>
      a.ack_wait === b.ack_wait && a.max_deliver === b.max_deliver &&
      a.max_ack_pending === b.max_ack_pending &&
      (a.filter_subject ?? "") === (b.filter_subject ?? "") &&
      (b.description === undefined || a.description === b.description)

    const consumerConfig = (spec: ResolvedConsumerSpec): Partial<ConsumerConfig> => ({
      durable_name: spec.name,
      ack_policy: AckPolicy.Explicit,
      ack_wait: toNanos(spec.ackWait),
      max_deliver: spec.maxDeliver + 1,
      max_ack_pending: spec.maxAckPending,
      replay_policy: ReplayPolicy.Instant,
      deliver_policy: spec.startAt === "new" ? DeliverPolicy.New : DeliverPolicy.All,
      ...(spec.filter === undefined ? {} : { filter_subject: fullSubject(spec.filter) }),
      ...(spec.ordering === "key" ? { description: RUNNING } : {}),
    })

    /** Delete the consumer and create it again, delivering from stream sequence `start`. */
    const recreateAt = (stream: string, spec: ResolvedConsumerSpec, start: number) =>
      unlessCode(
        "consume",
        ApiCode.consumerNotFound,
        () => jsm.consumers.delete(stream, spec.name),
      ).pipe(
        // Insist: if we gave up here, the next start would create the consumer afresh, at the
        // start of the stream.
        Effect.zipRight(
          call("consume", () =>
            jsm.consumers.add(stream, {
              ...consumerConfig(spec),
              deliver_policy: DeliverPolicy.StartSequence,
              opt_start_seq: start,
            })).pipe(
              Effect.retry({
                while: (e) => e._tag === "BusUnavailable",
                schedule: Schedule.spaced("250 millis").pipe(
                  Schedule.upTo(Duration.seconds(30)),
                ),
              }),
            ),
        ),
        Effect.asVoid,
      )

    /**
     * An ordered consumer's rewind while running (see `makeSource`): recreate it after its ack
     * floor. The floor is read once and kept until the consumer exists again, so a retry after
     * the delete does not lose it.
     */
    const rewindToAckFloor = (stream: string, spec: ResolvedConsumerSpec) => {
      let start: number | undefined
      return Effect.gen(function* () {
        if (start === undefined) {
          const info = yield* call("consume", () => jsm.consumers.info(stream, spec.name))
          start = info.ack_floor.stream_seq + 1
        }
        yield* recreateAt(stream, spec, start)
        start = undefined
      })
    }

    /** Create the durable consumer, or bring an existing one to `spec` (keeping its position). */
    const prepareConsumer = (stream: string, spec: ResolvedConsumerSpec) =>
      Effect.gen(function* () {
        const ordered = spec.ordering === "key"
        const wanted = consumerConfig(spec)
        const existing: ConsumerInfo | undefined = yield* unlessCode(
          "consume",
          ApiCode.consumerNotFound,
          () => jsm.consumers.info(stream, spec.name),
        )
        if (existing === undefined) {
          yield* call("consume", () => jsm.consumers.add(stream, wanted))
          return
        }
        if (
          ordered && existing.num_ack_pending > 0 &&
          existing.config.description !== STOPPED_CLEANLY
        ) {
          // A previous incarnation did not stop cleanly and left deliveries unacknowledged. The
          // server would only redeliver them after ack_wait, and newer messages of the same key
          // would overtake them. Recreating the consumer at its ack floor delivers them first,
          // in stream order (acknowledged messages above the floor come again: at least once).
          const start = existing.ack_floor.stream_seq + 1
          yield* Effect.logInfo("ordered consumer rewinds to its ack floor").pipe(
            Effect.annotateLogs({
              consumer: spec.name,
              stream,
              pending: existing.num_ack_pending,
              start,
            }),
          )
          yield* recreateAt(stream, spec, start)
          return
        }
        const config = {
          ...wanted,
          // The start position only applies to a new consumer.
          deliver_policy: existing.config.deliver_policy,
          ...(existing.config.opt_start_seq === undefined
            ? {}
            : { opt_start_seq: existing.config.opt_start_seq }),
          ...(existing.config.opt_start_time === undefined
            ? {}
            : { opt_start_time: existing.config.opt_start_time }),
        }
        // nats-server 2.9 treats adding an existing durable with a new config as an update.
        if (!sameConsumer(existing.config, config)) {
          yield* call("consume", () => jsm.consumers.add(stream, config))
        }
      })

    const startConsumer = Effect.fn("JetStreamBus.consume")(function* (spec: ConsumerSpec) {
      if (!isValidName(spec.stream) || spec.stream.startsWith("_")) {
        return yield* Effect.fail(
          reject("consume", `invalid stream ${JSON.stringify(spec.stream)}`),
        )
      }
      if (!isValidName(spec.name)) {
        return yield* Effect.fail(
          reject("consume", `invalid consumer ${JSON.stringify(spec.name)}`),
        )
      }
      if (spec.filter !== undefined && !isValidSubject(spec.filter, true)) {
        return yield* Effect.fail(
          reject("consume", `invalid filter ${JSON.stringify(spec.filter)}`),
        )
      }
      const resolved = resolveConsumerSpec(spec)
      yield* finiteDuration("consume", resolved.ackWait)
      const stream = streamName(spec.stream)
      const info = yield* unlessCode(
        "consume",
        ApiCode.streamNotFound,
        () => jsm.streams.info(stream),
      )
      if (info === undefined) {
        return yield* Effect.fail(reject("consume", `stream ${spec.stream} does not exist`))
      }
      remember(info)
      yield* prepareConsumer(stream, resolved)
      const { source, stopFetching } = yield* makeSource(
        stream,
        spec.name,
        Math.min(resolved.maxAckPending, 256),
        (clean) =>
          resolved.ordering === "key" && clean
            ? call("consume", () =>
              jsm.consumers.update(stream, spec.name, { description: STOPPED_CLEANLY })).pipe(
                Effect.asVoid,
                Effect.catchAll((e) =>
                  Effect.logDebug("could not record a clean stop", e)
                ),
              )
            : Effect.void,
        resolved.ordering === "key" ? rewindToAckFloor(stream, resolved) : undefined,
      )
      return { resolved, source, stopFetching }
    })

    const consume = <E, R>(
      spec: ConsumerSpec,
      handler: Handler<E, R>,
    ): Effect.Effect<void, BusError, Scope.Scope | R> =>
      startConsumer(spec).pipe(
        Effect.flatMap(({ resolved, source, stopFetching }) =>
          runConsumer(resolved, source, handler).pipe(
            // Registered last, so it runs first on close (see `makeSource`).
            Effect.zipRight(Effect.addFinalizer(() => stopFetching)),
          )
        ),
      )

    // -------------------------------------------------------------------------------------------
    // Readers.

    const existingStream = (operation: string, name: string) =>
      Effect.gen(function* () {
        if (!isValidName(name) || name.startsWith("_")) {
          return yield* Effect.fail(reject(operation, `invalid stream ${JSON.stringify(name)}`))
        }
        const info = yield* unlessCode(
          operation,
          ApiCode.streamNotFound,
          () => jsm.streams.info(streamName(name)),
        )
        if (info === undefined) {
          return yield* Effect.fail(reject(operation, `stream ${name} does not exist`))
        }
        return info
      })

    const lastSeq = Effect.fn("JetStreamBus.lastSeq")(function* (name: string) {
      const info = yield* existingStream("lastSeq", name)
      return info.state.last_seq
    })

    /** Something went wrong inside a reader's session: start a new one, it is never fatal. */
    const readHiccup = (cause: unknown) => new BusUnavailable({ operation: "read", cause })

    const readEach: BusShape["readEach"] = (name, options, sink) =>
      Effect.gen(function* () {
        const operation = "read"
        yield* existingStream(operation, name)
        const filter = options.filter
        if (filter !== undefined && !isValidSubject(filter, true)) {
          return yield* Effect.fail(reject(operation, `invalid filter ${JSON.stringify(filter)}`))
        }
        if (!Number.isSafeInteger(options.fromSeq)) {
          return yield* Effect.fail(reject(operation, `invalid fromSeq ${options.fromSeq}`))
        }
        const stream = streamName(name)
        const prefix = `read_${randomBytes(6).toString("hex")}`
        let serial = 0
        /** The next sequence to emit; only ever moves forward. */
        let next = Math.max(1, options.fromSeq)

        const open = Effect.suspend(() => {
          const consumer = `${prefix}_${++serial}`
          return call(operation, () =>
            jsm.consumers.add(stream, {
              name: consumer,
              ack_policy: AckPolicy.None,
              deliver_policy: DeliverPolicy.StartSequence,
              opt_start_seq: next,
              replay_policy: ReplayPolicy.Instant,
              inactive_threshold: toNanos(READ_INACTIVE),
              mem_storage: true,
              num_replicas: 1,
              ...(filter === undefined ? {} : { filter_subject: fullSubject(filter) }),
            })).pipe(
              Effect.map((info) => ({
                name: consumer,
                consumer: js.consumers.getConsumerFromInfo(info),
                delivered: 0,
                messages: undefined as ConsumerMessages | undefined,
              })),
            )
        })

        type Reader = Effect.Effect.Success<typeof open>

        const close = (reader: Reader) =>
          Effect.sync(() => reader.messages?.stop()).pipe(
            Effect.zipRight(
              call(operation, () => jsm.consumers.delete(stream, reader.name)).pipe(
                Effect.timeout(Duration.millis(REQUEST_TIMEOUT_MS)),
                Effect.ignore,
                // Not awaited: the server drops the consumer after READ_INACTIVE anyway.
                Effect.forkDaemon,
              ),
            ),
          )

        /** One pull request's messages into the buffer, checking delivery sequences. */
        const drain = (reader: Reader) =>
          Effect.gen(function* () {
            const messages = yield* Effect.tryPromise({
              try: () =>
                reader.consumer.fetch({ max_messages: READ_BATCH, expires: READ_EXPIRES_MS }),
              catch: readHiccup,
            })
            reader.messages = messages
            const iterator = messages[Symbol.asyncIterator]()
            // Heartbeats end a dead request sooner; this watchdog only guards against a stuck
            // one. One timer per pull request: a timeout per message forked two fibers each.
            let waitingSince = 0
            let stuck = false
            const watchdog = setInterval(() => {
              if (waitingSince > 0 && Date.now() - waitingSince > READ_EXPIRES_MS * 2) {
                stuck = true
                messages.stop()
              }
            }, READ_EXPIRES_MS)
            yield* Effect.addFinalizer(() => Effect.sync(() => clearInterval(watchdog)))
            for (;;) {
              waitingSince = Date.now()
              // What arrived together is taken together: one Effect step and one chunk per
              // batch, not per message (the iterator's next() is only awaited in plain JS).
              const batch = yield* Effect.tryPromise({
                try: async () => {
                  const got: Array<JsMsg> = []
                  for (;;) {
                    const step = await iterator.next()
                    if (step.done) return { got, done: true }
                    got.push(step.value)
                    if (messages.getPending() === 0 || got.length >= READ_BATCH) {
                      return { got, done: false }
                    }
                  }
                },
                catch: readHiccup,
              })
              waitingSince = 0
              const out: Array<BusMessage> = []
              let lostOne: string | undefined
              for (const m of batch.got) {
                if (m.info.deliverySequence !== reader.delivered + 1) {
                  lostOne =
                    `delivery ${m.info.deliverySequence} after ${reader.delivered}: one was lost`
                  break
                }
                reader.delivered = m.info.deliverySequence
                if (m.seq < next) continue
                next = m.seq + 1
                // A replayed dead letter is meant for one durable consumer, not for readers.
                if (m.headers?.has(BusHeader.replayFor)) continue
                out.push(toBusMessage(m, 1))
              }
              // What came before a gap is emitted; the reader then restarts after it.
              if (out.length > 0) yield* sink(out)
              if (lostOne !== undefined) return yield* Effect.fail(readHiccup(lostOne))
              if (stuck) return yield* Effect.fail(readHiccup("a pull request did not end"))
              if (batch.done) return
            }
          }).pipe(Effect.scoped)

        const session = Effect.acquireUseRelease(
          open,
          (reader) => Effect.forever(drain(reader)),
          close,
        )

        const pump = session.pipe(
          Effect.tapError((e) =>
            Effect.logDebug("reader restarts after the last message it emitted", e).pipe(
              Effect.annotateLogs({ stream: name, next }),
            )
          ),
          Effect.retry({
            while: (e) => e._tag === "BusUnavailable",
            schedule: Schedule.exponential("50 millis").pipe(
              Schedule.either(Schedule.spaced("1 second")),
            ),
          }),
        )
        return yield* pump
      })

    const read = (name: string, options: ReadOptions): Stream.Stream<BusMessage, BusError> =>
      Stream.unwrapScoped(Effect.gen(function* () {
        // Messages, then the reader's failure if it ever gives up: read as one stream without a
        // race per element (`Stream.interruptWhen` forks one for every pull).
        const buffer = yield* Queue.bounded<Take.Take<BusMessage, BusError>>(READ_BATCH)
        yield* readEach(
          name,
          options,
          (batch) =>
            Queue.offer(buffer, Take.chunk(Chunk.unsafeFromArray(batch as Array<BusMessage>))),
        ).pipe(
          Effect.catchAllCause((cause) => Queue.offer(buffer, Take.failCause(cause))),
          Effect.forkScoped,
        )
        // No span around the stream: it would be provided to every pull of every message.
        return Stream.fromQueue(buffer).pipe(Stream.flattenTake)
      }))

    // -------------------------------------------------------------------------------------------
    // The advisory backstop: move the message each MAX_DELIVERIES advisory names to the DLQ.

    const moveAdvisory = (message: BusMessage) =>
      Effect.gen(function* () {
        const advisory = yield* Schema.decodeUnknown(MaxDeliverAdvisory)(
          new TextDecoder().decode(message.data),
        ).pipe(Effect.option)
        if (Option.isNone(advisory) || !isOwnStream(advisory.value.stream)) {
          yield* Effect.logWarning("ignoring an advisory that is not ours").pipe(
            Effect.annotateLogs({ subject: message.subject }),
          )
          return
        }
        const { stream, consumer, stream_seq, deliveries } = advisory.value
        const stored = yield* unlessCode(
          "deadLetter",
          ApiCode.streamNotFound,
          () => jsm.streams.getMessage(stream, { seq: stream_seq }),
        )
        if (stored === undefined || stored === null) {
          yield* Effect.logWarning("a message exceeded max deliveries but is gone already").pipe(
            Effect.annotateLogs({ stream, consumer, seq: stream_seq }),
          )
          return
        }
        const { id, key, headers } = readHeaders(stored.header)
        yield* storeDeadLetter(
          {
            stream: logicalStream(stream),
            subject: logicalSubject(stored.subject),
            seq: stored.seq,
            id: id ?? `${logicalStream(stream)}:${stored.seq}`,
            key,
            headers,
            data: stored.data,
          },
          consumer,
          MOVER_REASON,
          deliveries,
        )
        yield* Effect.logWarning("message dead-lettered from a max deliveries advisory").pipe(
          Effect.annotateLogs({ stream, consumer, seq: stream_seq, deliveries }),
        )
      })

    const moverSpec = resolveConsumerSpec({
      stream: "_advisories",
      name: MOVER,
      ackWait: "30 seconds",
      // The mover retries until it succeeds; it never dead-letters an advisory.
      maxDeliver: Number.MAX_SAFE_INTEGER,
      maxAckPending: 64,
      concurrency: 4,
    })
    yield* call("make", () =>
      jsm.consumers.add(advisoryStream, {
        durable_name: MOVER,
        ack_policy: AckPolicy.Explicit,
        ack_wait: toNanos(moverSpec.ackWait),
        max_deliver: -1,
        max_ack_pending: moverSpec.maxAckPending,
        deliver_policy: DeliverPolicy.All,
        replay_policy: ReplayPolicy.Instant,
      }))
    const mover = yield* makeSource(advisoryStream, MOVER, 64, () => Effect.void)
    yield* runConsumer(moverSpec, { ...mover.source, deadLetter: (d) => d.ack }, moveAdvisory)
    yield* Effect.addFinalizer(() => mover.stopFetching)

    const ping: Effect.Effect<void, BusError> = call("ping", () => jsm.getAccountInfo()).pipe(
      Effect.timeoutFail({
        duration: PING_TIMEOUT,
        onTimeout: () =>
          new BusUnavailable({
            operation: "ping",
            cause: `no answer in ${Duration.format(PING_TIMEOUT)}`,
          }),
      }),
      Effect.asVoid,
      Effect.withSpan("JetStreamBus.ping"),
    )

    const bus: BusShape = {
      backend: "jetstream",
      ensureStream,
      publish,
      consume,
      read,
      readEach,
      lastSeq,
      deadLetters: {
        list: listDeadLetters,
        get: getDeadLetter,
        replay: replayDeadLetter,
        discard: discardDeadLetter,
      },
      ping,
    }
    return bus
  })

/** The bus as a layer; the connection closes with the layer. */
export const layer = (options: JetStreamBusOptions): Layer.Layer<Bus, BusError> =>
  Layer.scoped(Bus, make(options))
