/**
 * The embedded bus: the `Bus` persisted in the local database (SQLite by default, PostgreSQL
 * when configured), used when no NATS URL is set. One process owns it.
 *
 * Storage (tables in EmbeddedBusTables.ts, every row tagged with the namespace): a message log
 * whose auto-incremented `seq` is the stream sequence; per consumer a cursor (the last sequence
 * examined as new) and a pending row per delivery not yet acknowledged, with the time it becomes
 * redeliverable; dead letters. Stream specs are stored too, so a restarted bus routes publishes
 * before anyone calls `ensureStream` again.
 *
 * Every write goes through one group-commit writer (core/storage/GroupCommit.ts): concurrent
 * publishes share a transaction and its fsync, and `publish` answers once that committed.
 * Consumers pull through the same writer; an idle pull sleeps until a publish in this process
 * signals its stream, its next pending delivery falls due, or `pollInterval` passes.
 * `read` needs no writer: it queries the log from its position in sequence order (the writer
 * commits one transaction at a time, so sequences become visible in order) and waits for the
 * same publish signal.
 *
 * Everything a handler observes (concurrency, ordering, retries, dead-lettering) is the shared
 * ConsumerRunner; this file only provides its `ConsumerSource`.
 *
 * @example
 * ```ts
 * const BusLive = EmbeddedBus.layer({ namespace: "chorus" }) // needs Database, migrated
 * ```
 */
import {
  Chunk,
  Clock,
  Deferred,
  Duration,
  Effect,
  Either,
  Exit,
  Layer,
  Queue,
  type Scope,
  Stream,
} from "effect"
import { sql } from "kysely"
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
import { Database, DatabaseError } from "../storage/Database.ts"
import type { BusDeadLetterRow, BusMessageRow, NewBusMessage } from "./EmbeddedBusTables.ts"
import * as GroupCommit from "../storage/GroupCommit.ts"
import type { Trx, WriteKind } from "../storage/GroupCommit.ts"
import * as Subjects from "./embedded/Subjects.ts"
import { type LocalValues, makeLocalValues } from "./LocalValues.ts"

export interface EmbeddedBusOptions {
  /** Namespace of every stream, consumer and dead letter of this bus (`CHORUS_BUS_NAMESPACE`). */
  readonly namespace: string
  /** Most writes committed in one transaction. Default: 500. */
  readonly maxBatch?: number
  /**
   * How often an idle consumer looks at the database even without a signal from a publish in
   * this process (writes by another bus instance over the same database). Default: 1 second.
   */
  readonly pollInterval?: Duration.DurationInput
}

const DEFAULT_MAX_AGE = Duration.days(7)
const DEFAULT_DUPLICATE_WINDOW = Duration.minutes(10)
/** Rows per multi-row statement / `in (…)` list: well under SQLite's and PostgreSQL's limits. */
const CHUNK = 400
/** Messages a pull examines per query, and queries per pull, when looking for new messages. */
const SCAN_BATCH = 256
const SCAN_QUERIES = 4
/** Messages a retention pass deletes per transaction, so a big purge never stalls publishes. */
const PURGE_CHUNK = 2_000
/**
 * A publish not committed by then fails with `BusUnavailable` (the database is stalled); it
 * stays queued and may still be stored, so a retry is then a duplicate.
 */
const PUBLISH_TIMEOUT_MS = 10_000

interface StreamState {
  readonly name: string
  readonly subjects: ReadonlyArray<string>
  readonly patterns: ReadonlyArray<Subjects.Tokens>
  readonly maxAgeMs: number
  readonly duplicateWindowMs: number
}

interface PublishInput {
  readonly stream: StreamState
  readonly subject: string
  readonly id: string
  readonly key: string | null
  readonly headers: string
  readonly data: Buffer
}

interface AckInput {
  readonly stream: string
  readonly consumer: string
  readonly seq: number
}

interface DueInput extends AckInput {
  readonly delayMs: number
  /** Wake the consumer's idle pull (the delivery may be due sooner than it expects). */
  readonly wake: boolean
}

/** A one-off write: any read-then-write that must see and change the database atomically. */
interface RunInput<A, E> {
  readonly operation: string
  readonly run: (trx: Trx, now: number) => Promise<Either.Either<A, E>>
  readonly after?: (result: A) => void
}

interface Pulled {
  readonly messages: ReadonlyArray<BusMessage>
  /** When the earliest pending delivery of the consumer becomes redeliverable. */
  readonly nextDue: number | undefined
  /** The scan stopped early: more messages may be waiting. */
  readonly more: boolean
  /** New messages were held back: `maxAckPending` deliveries are outstanding. */
  readonly full: boolean
}

const int = (value: number | string | bigint): number =>
  typeof value === "number" ? value : Number(value)

const bytes = (value: Uint8Array): Uint8Array =>
  Buffer.isBuffer(value) ? new Uint8Array(value.buffer, value.byteOffset, value.byteLength) : value

const parseHeaders = (json: string): Record<string, string> => JSON.parse(json)

const chunks = <A>(items: ReadonlyArray<A>, size = CHUNK): Array<ReadonlyArray<A>> => {
  const out: Array<ReadonlyArray<A>> = []
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size))
  return out
}

const toMessage = (
  stream: string,
  row: BusMessageRow,
  deliveryCount: number,
  local: LocalValues,
): BusMessage => ({
  stream,
  seq: int(row.seq),
  subject: row.subject,
  id: row.msg_id,
  key: row.key ?? undefined,
  headers: parseHeaders(row.headers),
  data: bytes(row.data),
  deliveryCount,
  publishedAt: new Date(int(row.published_at)),
  local: local.take(stream, int(row.seq)),
})

const toDeadLetter = (row: BusDeadLetterRow): DeadLetter => ({
  id: String(row.id),
  stream: row.stream,
  consumer: row.consumer,
  subject: row.subject,
  messageId: row.msg_id,
  seq: int(row.seq),
  key: row.key ?? undefined,
  headers: parseHeaders(row.headers),
  data: bytes(row.data),
  deliveries: row.deliveries,
  reason: row.reason,
  deadAt: new Date(int(row.dead_at)),
})

/** Dead-letter ids are positive integers in decimal; anything else names no dead letter. */
const parseId = (id: string): number | undefined =>
  /^[1-9][0-9]{0,15}$/.test(id) ? Number(id) : undefined

const rejected = (operation: string, reason: string) => new BusRejected({ operation, reason })

const streamState = (spec: {
  name: string
  subjects: ReadonlyArray<string>
  maxAgeMs: number
  duplicateWindowMs: number
}): StreamState => ({
  ...spec,
  patterns: spec.subjects.map((s) => Subjects.parsePattern(s) as Subjects.Tokens),
})

export const make = (
  options: EmbeddedBusOptions,
): Effect.Effect<BusShape, BusError, Scope.Scope | Database> =>
  Effect.gen(function* () {
    const database = yield* Database
    const namespace = options.namespace
    if (!isValidName(namespace)) {
      return yield* rejected("start", `invalid namespace ${JSON.stringify(namespace)}`)
    }
    const pollMs = Math.max(1, Duration.toMillis(options.pollInterval ?? "1 second"))
    const groupCommit = yield* GroupCommit.make(database, {
      label: "bus",
      maxBatch: Math.max(1, options.maxBatch ?? 500),
      // SQLite's `begin` is deferred: a transaction that reads first and writes later fails with
      // SQLITE_BUSY_SNAPSHOT if another connection (a second process on the same file, a
      // migration, a CLI) wrote in between. Writing first takes the write lock at once, waiting
      // under busy_timeout like `begin immediate`; this no-op update is such a write.
      ...(database.dialect === "sqlite"
        ? { begin: (trx: Trx) => sql`update bus_streams set name = name where 1 = 0`.execute(trx) }
        : {}),
    })
    const fromDb = (operation: string) => (error: DatabaseError): BusError =>
      error.retryable
        ? new BusUnavailable({ operation, cause: error })
        : new BusRejected({ operation, reason: error.message })
    // The writer's own failures are database errors; callers of the bus see bus errors.
    const asBusError = <E>(operation: string) => (e: E | DatabaseError): E | BusError =>
      e instanceof DatabaseError ? fromDb(operation)(e) : e
    const writer = {
      submit: <I, A, E>(kind: WriteKind<I, A, E>, input: I, timeoutMillis?: number) =>
        groupCommit.submit(kind, input, timeoutMillis).pipe(
          Effect.mapError(asBusError<E>(kind.name)),
        ),
      enqueue: <I, A, E>(kind: WriteKind<I, A, E>, input: I) =>
        groupCommit.enqueue(kind, input).pipe(Effect.mapError(asBusError<never>(kind.name))),
      send: <I, A, E>(kind: WriteKind<I, A, E>, input: I) =>
        groupCommit.send(kind, input).pipe(Effect.mapError(asBusError<never>(kind.name))),
      stats: groupCommit.stats,
    }

    // ---------------------------------------------------------------------------------------
    // Streams: stored, and cached here (this process owns the namespace).

    const streams = new Map<string, StreamState>()
    const stored = yield* database.query("bus load streams", (db) =>
      db.selectFrom("bus_streams").selectAll().where("namespace", "=", namespace).execute()).pipe(
        Effect.mapError(fromDb("start")),
      )
    for (const row of stored) {
      streams.set(
        row.name,
        streamState({
          name: row.name,
          subjects: JSON.parse(row.subjects),
          maxAgeMs: int(row.max_age_ms),
          duplicateWindowMs: int(row.duplicate_window_ms),
        }),
      )
    }

    const streamFor = (subject: Subjects.Tokens): StreamState | undefined =>
      [...streams.values()].find((s) =>
        s.patterns.some((p) => Subjects.matches(p, subject))
      )

    // ---------------------------------------------------------------------------------------
    // Wake-ups for idle pulls: a publish wakes its stream's consumers, a nak its consumer.

    interface Waiter {
      readonly stream: string
      readonly consumer: string
      readonly wake: Deferred.Deferred<void>
      /** Also wake when a delivery of the consumer is settled (it waits for a free slot). */
      full: boolean
    }
    const waiters = new Set<Waiter>()
    const wakeWhere = (predicate: (w: Waiter) => boolean) => {
      for (const w of waiters) {
        if (predicate(w)) {
          waiters.delete(w)
          Deferred.unsafeDone(w.wake, Exit.void)
        }
      }
    }
    const wakeStream = (stream: string) => wakeWhere((w) => w.stream === stream)
    const wakeConsumer = (stream: string, consumer: string) =>
      wakeWhere((w) => w.stream === stream && w.consumer === consumer)
    const wakeFull = (stream: string, consumer: string) =>
      wakeWhere((w) => w.full && w.stream === stream && w.consumer === consumer)

    // ---------------------------------------------------------------------------------------
    // Write kinds

    /** Store messages, skipping ids already in their stream's duplicate window. */
    const publishMany = async (
      trx: Trx,
      inputs: ReadonlyArray<PublishInput>,
      now: number,
    ): Promise<Array<PublishAck>> => {
      const acks = new Array<PublishAck>(inputs.length)
      const byStream = new Map<StreamState, Array<number>>()
      inputs.forEach((input, i) => {
        const list = byStream.get(input.stream)
        if (list) list.push(i)
        else byStream.set(input.stream, [i])
      })
      for (const [stream, indexes] of byStream) {
        const dedupe = stream.duplicateWindowMs > 0
        const known = new Map<string, number>()
        if (dedupe) {
          const ids = [...new Set(indexes.map((i) => inputs[i]!.id))]
          for (const part of chunks(ids)) {
            const rows = await trx.selectFrom("bus_messages")
              .select(["seq", "msg_id"])
              .where("namespace", "=", namespace)
              .where("stream", "=", stream.name)
              .where("msg_id", "in", part)
              .where("published_at", ">=", now - stream.duplicateWindowMs)
              .execute()
            for (const row of rows) {
              known.set(row.msg_id, Math.max(known.get(row.msg_id) ?? 0, int(row.seq)))
            }
          }
        }
        const fresh: Array<number> = []
        const firstOf = new Map<string, number>()
        for (const i of indexes) {
          const id = inputs[i]!.id
          const seq = known.get(id)
          if (seq !== undefined) acks[i] = { stream: stream.name, seq, duplicate: true }
          else if (dedupe && firstOf.has(id)) continue // a repeat within this batch; answered below
          else {
            firstOf.set(id, i)
            fresh.push(i)
          }
        }
        for (const part of chunks(fresh)) {
          const rows: Array<NewBusMessage> = part.map((i) => {
            const input = inputs[i]!
            return {
              namespace,
              stream: stream.name,
              subject: input.subject,
              msg_id: input.id,
              key: input.key,
              headers: input.headers,
              data: input.data,
              published_at: now,
            }
          })
          const inserted = await trx.insertInto("bus_messages").values(rows)
            .returning(["seq", "msg_id"]).execute()
          if (dedupe) {
            // RETURNING order is not guaranteed; ids are unique within `part`.
            const seqOf = new Map(inserted.map((r) => [r.msg_id, int(r.seq)]))
            for (const i of part) {
              acks[i] = { stream: stream.name, seq: seqOf.get(inputs[i]!.id)!, duplicate: false }
            }
          } else {
            // Without de-duplication ids may repeat; one statement assigns ascending seqs.
            const seqs = inserted.map((r) => int(r.seq)).sort((a, b) => a - b)
            part.forEach((i, n) => {
              acks[i] = { stream: stream.name, seq: seqs[n]!, duplicate: false }
            })
          }
        }
        for (const i of indexes) {
          if (acks[i] === undefined) {
            const first = acks[firstOf.get(inputs[i]!.id)!]!
            acks[i] = { stream: stream.name, seq: first.seq, duplicate: true }
          }
        }
      }
      return acks
    }

    /** Decoded values of what this process published, for its own consumers (LocalValues.ts). */
    const localValues = makeLocalValues()

    const publishKind: WriteKind<PublishInput, PublishAck, never> = {
      name: "publish",
      rank: 0,
      execute: async (trx, inputs, now) => (await publishMany(trx, inputs, now)).map(Either.right),
      afterCommit: (input, ack) => {
        if (!ack.duplicate) wakeStream(input.stream.name)
      },
    }

    const ackKind: WriteKind<AckInput, void, never> = {
      name: "ack",
      rank: 1,
      execute: async (trx, inputs) => {
        const groups = new Map<string, { stream: string; consumer: string; seqs: Array<number> }>()
        for (const input of inputs) {
          const id = `${input.stream}\u0000${input.consumer}`
          const group = groups.get(id)
          if (group) group.seqs.push(input.seq)
          else groups.set(id, { stream: input.stream, consumer: input.consumer, seqs: [input.seq] })
        }
        for (const { stream, consumer, seqs } of groups.values()) {
          for (const part of chunks(seqs)) {
            await trx.deleteFrom("bus_pending")
              .where("namespace", "=", namespace)
              .where("stream", "=", stream)
              .where("consumer", "=", consumer)
              .where("seq", "in", part)
              .execute()
          }
        }
        return inputs.map(() => Either.right(undefined))
      },
      afterCommit: (input) => wakeFull(input.stream, input.consumer),
    }

    /** Set when pending deliveries become due (again): nak, and extending an ack deadline. */
    const dueKind: WriteKind<DueInput, void, never> = {
      name: "due",
      rank: 1,
      execute: async (trx, inputs, now) => {
        const groups = new Map<string, { input: DueInput; seqs: Array<number> }>()
        for (const input of inputs) {
          const id = `${input.stream}\u0000${input.consumer}\u0000${input.delayMs}`
          const group = groups.get(id)
          if (group) group.seqs.push(input.seq)
          else groups.set(id, { input, seqs: [input.seq] })
        }
        for (const { input, seqs } of groups.values()) {
          for (const part of chunks(seqs)) {
            await trx.updateTable("bus_pending").set({ due_at: now + input.delayMs })
              .where("namespace", "=", namespace)
              .where("stream", "=", input.stream)
              .where("consumer", "=", input.consumer)
              .where("seq", "in", part)
              .execute()
          }
        }
        return inputs.map(() => Either.right(undefined))
      },
      afterCommit: (input) => {
        if (input.wake) wakeConsumer(input.stream, input.consumer)
      },
    }

    const runKind: WriteKind<RunInput<any, any>, any, any> = {
      name: "write",
      rank: 2,
      execute: async (trx, inputs, now) => {
        const results: Array<Either.Either<unknown, unknown>> = []
        for (const input of inputs) results.push(await input.run(trx, now))
        return results
      },
      afterCommit: (input, result) => input.after?.(result),
    }

    const runAs = <A, E>() => runKind as unknown as WriteKind<RunInput<A, E>, A, E>

    /** Run `run` in the writer's next transaction; a `Left` fails the caller with it. */
    const write = <A, E = never>(
      operation: string,
      run: (trx: Trx, now: number) => Promise<Either.Either<A, E>>,
      after?: (result: A) => void,
    ): Effect.Effect<A, E | BusError> =>
      writer.submit(
        runAs<A, E>(),
        after ? { operation, run, after } : { operation, run },
      )

    // ---------------------------------------------------------------------------------------
    // Streams

    const ensureStream = Effect.fn("EmbeddedBus.ensureStream")(function* (spec: StreamSpec) {
      const operation = "ensureStream"
      if (!isValidName(spec.name)) {
        return yield* rejected(operation, `invalid stream name ${JSON.stringify(spec.name)}`)
      }
      if (spec.subjects.length === 0) {
        return yield* rejected(operation, `stream ${spec.name} has no subjects`)
      }
      const patterns: Array<Subjects.Tokens> = []
      for (const subject of spec.subjects) {
        const parsed = Subjects.parsePattern(subject)
        if (typeof parsed === "string") return yield* rejected(operation, parsed)
        patterns.push(parsed)
      }
      const maxAgeMs = Duration.toMillis(spec.maxAge ?? DEFAULT_MAX_AGE)
      const duplicateWindowMs = Duration.toMillis(spec.duplicateWindow ?? DEFAULT_DUPLICATE_WINDOW)
      if (!(maxAgeMs > 0) || !Number.isFinite(maxAgeMs)) {
        return yield* rejected(operation, `stream ${spec.name}: maxAge must be positive and finite`)
      }
      if (!(duplicateWindowMs >= 0) || !Number.isFinite(duplicateWindowMs)) {
        return yield* rejected(operation, `stream ${spec.name}: invalid duplicateWindow`)
      }
      for (const other of streams.values()) {
        if (other.name === spec.name) continue
        const clash = patterns.some((p) => other.patterns.some((q) => Subjects.overlaps(p, q)))
        if (clash) {
          return yield* rejected(
            operation,
            `subjects of stream ${spec.name} overlap those of stream ${other.name}`,
          )
        }
      }
      const state: StreamState = {
        name: spec.name,
        subjects: [...spec.subjects],
        patterns,
        maxAgeMs: Math.round(maxAgeMs),
        duplicateWindowMs: Math.round(duplicateWindowMs),
      }
      yield* write(
        "ensureStream",
        async (trx, now) => {
          const row = {
            subjects: JSON.stringify(state.subjects),
            max_age_ms: state.maxAgeMs,
            duplicate_window_ms: state.duplicateWindowMs,
            updated_at: now,
          }
          await trx.insertInto("bus_streams")
            .values({ namespace, name: state.name, ...row })
            .onConflict((oc) => oc.columns(["namespace", "name"]).doUpdateSet(row))
            .execute()
          return Either.right(undefined)
        },
        () => {
          streams.set(state.name, state)
          Queue.unsafeOffer(retentionChanged, undefined)
        },
      )
    })

    // ---------------------------------------------------------------------------------------
    // Publish

    // No span: publish runs per message (a span costs a stack capture).
    const publish = Effect.fnUntraced(function* (
      subject: string,
      data: Uint8Array,
      options: PublishOptions,
    ) {
      const operation = "publish"
      const tokens = Subjects.parseSubject(subject)
      if (typeof tokens === "string") return yield* rejected(operation, tokens)
      const problem = publishProblem(options)
      if (problem !== undefined) return yield* rejected(operation, problem)
      const headers = options.headers ?? {}
      const stream = streamFor(tokens)
      if (stream === undefined) {
        return yield* rejected(operation, `no stream stores subject ${subject}`)
      }
      const ack = yield* writer.submit(publishKind, {
        stream,
        subject,
        id: options.id,
        key: options.key ?? null,
        headers: JSON.stringify(headers),
        data: Buffer.from(data), // a copy: the caller may reuse its buffer before the commit
      }, PUBLISH_TIMEOUT_MS)
      if (!ack.duplicate) localValues.put(ack.stream, ack.seq, options.local)
      return ack
    })

    // ---------------------------------------------------------------------------------------
    // Consumers

    const ensureConsumer = (spec: ResolvedConsumerSpec) =>
      write("consume", async (trx, now) => {
        const where = {
          namespace,
          stream: spec.stream,
          name: spec.name,
        }
        const config = JSON.stringify({
          filter: spec.filter ?? null,
          ackWaitMs: Duration.toMillis(spec.ackWait),
          maxDeliver: spec.maxDeliver,
          maxAckPending: spec.maxAckPending,
          ordering: spec.ordering,
          startAt: spec.startAt,
        })
        const existing = await trx.selectFrom("bus_consumers").select(["filter"])
          .where("namespace", "=", where.namespace)
          .where("stream", "=", where.stream)
          .where("name", "=", where.name)
          .executeTakeFirst()
        if (existing === undefined) {
          let start = 0
          if (spec.startAt === "new") {
            const last = await trx.selectFrom("bus_messages")
              .select((eb) => eb.fn.max("seq").as("last"))
              .where("namespace", "=", namespace)
              .where("stream", "=", spec.stream)
              .executeTakeFirst()
            start = last?.last == null ? 0 : int(last.last)
          }
          await trx.insertInto("bus_consumers").values({
            ...where,
            filter: spec.filter ?? null,
            delivered_seq: start,
            config,
            created_at: now,
          }).execute()
        } else {
          await trx.updateTable("bus_consumers").set({ filter: spec.filter ?? null, config })
            .where("namespace", "=", where.namespace)
            .where("stream", "=", where.stream)
            .where("name", "=", where.name)
            .execute()
        }
        if (spec.ordering === "key") {
          // Whoever held these deliveries is gone (one process owns the bus): hand them out
          // first, in sequence order, before later messages of their keys.
          await trx.updateTable("bus_pending").set({ due_at: now })
            .where("namespace", "=", namespace)
            .where("stream", "=", spec.stream)
            .where("consumer", "=", spec.name)
            .where("due_at", ">", now)
            .execute()
        }
        return Either.right(undefined)
      })

    const makeSource = (spec: ResolvedConsumerSpec): ConsumerSource => {
      const stream = spec.stream
      const consumer = spec.name
      const ackWaitMs = Math.max(1, Math.round(Duration.toMillis(spec.ackWait)))
      const filter = spec.filter === undefined
        ? undefined
        : Subjects.parsePattern(spec.filter) as Subjects.Tokens
      const pendingOf = (trx: Trx) =>
        trx.updateTable("bus_pending")
          .where("namespace", "=", namespace)
          .where("stream", "=", stream)
          .where("consumer", "=", consumer)

      /** Is this row for this consumer? (Filter, and replays meant for another consumer.) */
      const wanted = (row: BusMessageRow): boolean => {
        if (filter !== undefined && !Subjects.matches(filter, row.subject.split("."))) return false
        if (row.headers.includes(BusHeader.replayFor)) {
          const target = parseHeaders(row.headers)[BusHeader.replayFor]
          if (target !== undefined && target !== consumer) return false
        }
        return true
      }

      /** Hand out up to `max` deliveries: due redeliveries first, then new messages. */
      const pullRun = async (
        trx: Trx,
        now: number,
        max: number,
      ): Promise<Either.Either<Pulled>> => {
        const messages: Array<BusMessage> = []
        // 1. Deliveries due again (nak'd, or unacknowledged past ackWait), lowest seq first.
        const due = await trx.selectFrom("bus_pending").select(["seq", "deliveries"])
          .where("namespace", "=", namespace)
          .where("stream", "=", stream)
          .where("consumer", "=", consumer)
          .where("due_at", "<=", now)
          .orderBy("seq")
          .limit(max)
          .execute()
        if (due.length > 0) {
          const seqs = due.map((r) => int(r.seq))
          const rows = await trx.selectFrom("bus_messages").selectAll()
            .where("seq", "in", seqs)
            .where("namespace", "=", namespace)
            .execute()
          const bySeq = new Map(rows.map((r) => [int(r.seq), r]))
          const gone = seqs.filter((s) => !bySeq.has(s))
          if (gone.length > 0) {
            // Removed by retention while pending: nothing left to deliver.
            await trx.deleteFrom("bus_pending")
              .where("namespace", "=", namespace)
              .where("stream", "=", stream)
              .where("consumer", "=", consumer)
              .where("seq", "in", gone)
              .execute()
          }
          const present = seqs.filter((s) => bySeq.has(s))
          if (present.length > 0) {
            await pendingOf(trx)
              .set((eb) => ({ deliveries: eb("deliveries", "+", 1), due_at: now + ackWaitMs }))
              .where("seq", "in", present)
              .execute()
          }
          for (const r of due) {
            const row = bySeq.get(int(r.seq))
            if (row) messages.push(toMessage(stream, row, r.deliveries + 1, localValues))
          }
        }
        // 2. New messages after the cursor, in bounded scans, while fewer than maxAckPending
        //    deliveries are outstanding (nak'd and expired ones count, as in JetStream).
        let room = max - messages.length
        let more = false
        let full = false
        if (room > 0) {
          const outstanding = await trx.selectFrom("bus_pending")
            .select((eb) => eb.fn.countAll().as("n"))
            .where("namespace", "=", namespace)
            .where("stream", "=", stream)
            .where("consumer", "=", consumer)
            .executeTakeFirst()
          const free = spec.maxAckPending - int(outstanding?.n ?? 0)
          if (free < room) {
            full = true
            room = Math.max(0, free)
          }
        }
        if (room > 0) {
          const cursorRow = await trx.selectFrom("bus_consumers").select("delivered_seq")
            .where("namespace", "=", namespace)
            .where("stream", "=", stream)
            .where("name", "=", consumer)
            .executeTakeFirst()
          const start = cursorRow === undefined ? 0 : int(cursorRow.delivered_seq)
          let cursor = start
          const fresh: Array<BusMessageRow> = []
          for (let q = 0; q < SCAN_QUERIES && room > 0; q++) {
            // Read about what fits: every row read is a blob allocated. A filter may skip rows.
            const limit = filter === undefined
              ? Math.min(SCAN_BATCH, room + 8)
              : Math.min(SCAN_BATCH, Math.max(32, room * 4))
            const rows = await trx.selectFrom("bus_messages").selectAll()
              .where("namespace", "=", namespace)
              .where("stream", "=", stream)
              .where("seq", ">", cursor)
              .orderBy("seq")
              .limit(limit)
              .execute()
            for (const row of rows) {
              if (room === 0) break
              cursor = int(row.seq)
              if (wanted(row)) {
                fresh.push(row)
                room--
              }
            }
            if (rows.length < limit) break
            if (q === SCAN_QUERIES - 1 && room > 0) more = true
          }
          for (const part of chunks(fresh)) {
            await trx.insertInto("bus_pending").values(part.map((row) => ({
              namespace,
              stream,
              consumer,
              seq: int(row.seq),
              deliveries: 1,
              due_at: now + ackWaitMs,
            }))).execute()
          }
          if (cursor !== start) {
            await trx.updateTable("bus_consumers").set({ delivered_seq: cursor })
              .where("namespace", "=", namespace)
              .where("stream", "=", stream)
              .where("name", "=", consumer)
              .execute()
          }
          for (const row of fresh) messages.push(toMessage(stream, row, 1, localValues))
        }
        let nextDue: number | undefined
        if (messages.length === 0 && !more) {
          const next = await trx.selectFrom("bus_pending")
            .select((eb) => eb.fn.min("due_at").as("next"))
            .where("namespace", "=", namespace)
            .where("stream", "=", stream)
            .where("consumer", "=", consumer)
            .executeTakeFirst()
          nextDue = next?.next == null ? undefined : int(next.next)
        }
        return Either.right({ messages, nextDue, more, full })
      }

      /** Deliveries a pull took but could not hand over (it was interrupted): as if never sent. */
      const giveBack = (messages: ReadonlyArray<BusMessage>) =>
        write("pull", async (trx, now) => {
          for (const part of chunks(messages.map((m) => m.seq))) {
            await pendingOf(trx)
              .set((eb) => ({ deliveries: eb("deliveries", "-", 1), due_at: now }))
              .where("seq", "in", part)
              .execute()
          }
          return Either.right(undefined)
        }, () => wakeConsumer(stream, consumer))

      // Acks, naks and deadline extensions are sent, not awaited: the writer commits them in
      // its next batch, before this consumer's next pull. Awaiting each commit would hold a
      // handler permit per fsync; losing one in a crash only means an earlier redelivery.
      const delivery = (message: BusMessage): Delivery => ({
        message,
        ack: writer.send(ackKind, { stream, consumer, seq: message.seq }),
        nak: (delay) =>
          writer.send(dueKind, {
            stream,
            consumer,
            seq: message.seq,
            delayMs: Math.max(0, Math.round(Duration.toMillis(delay))),
            wake: true,
          }),
        inProgress: writer.send(dueKind, {
          stream,
          consumer,
          seq: message.seq,
          delayMs: ackWaitMs,
          wake: false,
        }),
      })

      /** Take deliveries; if interrupted after the commit, hand them back. */
      const takeOnce = (max: number) =>
        Effect.uninterruptibleMask((restore) =>
          Effect.gen(function* () {
            const input: RunInput<Pulled, never> = {
              operation: "pull",
              run: (trx, now) => pullRun(trx, now, max),
            }
            const done = yield* writer.enqueue(runAs<Pulled, never>(), input)
            return yield* restore(Deferred.await(done)).pipe(
              Effect.mapError(asBusError<never>("pull")),
              Effect.onInterrupt(() =>
                Deferred.await(done).pipe(
                  Effect.flatMap(({ messages }) =>
                    messages.length > 0 ? giveBack(messages) : Effect.void
                  ),
                  Effect.ignore,
                  Effect.forkDaemon,
                )
              ),
            )
          })
        )

      const pull = Effect.fn("EmbeddedBus.pull")(
        function* (max: number, expires: Duration.Duration) {
          const deadline = (yield* Clock.currentTimeMillis) + Duration.toMillis(expires)
          let waiter: Waiter | undefined
          const wait = Effect.gen(function* () {
            for (;;) {
              if (waiter) waiters.delete(waiter)
              // Registered before the read, so a publish committed after it still wakes us.
              waiter = { stream, consumer, wake: yield* Deferred.make<void>(), full: false }
              waiters.add(waiter)
              const pulled = yield* takeOnce(max)
              if (pulled.messages.length > 0) return pulled.messages.map(delivery)
              if (pulled.more) continue
              waiter.full = pulled.full
              const now = yield* Clock.currentTimeMillis
              if (now >= deadline) return []
              const until = Math.min(deadline, pulled.nextDue ?? Infinity, now + pollMs)
              yield* Deferred.await(waiter.wake).pipe(
                Effect.timeout(Duration.millis(Math.max(1, until - now))),
                Effect.ignore,
              )
            }
          })
          return yield* wait.pipe(
            Effect.ensuring(Effect.sync(() => waiter && waiters.delete(waiter))),
          )
        },
      )

      const deadLetter = Effect.fn("EmbeddedBus.deadLetter")(function* (
        d: Delivery,
        reason: string,
        deliveries: number,
      ) {
        const m = d.message
        yield* write("deadLetter", async (trx, now) => {
          await trx.insertInto("bus_dead_letters").values({
            namespace,
            stream,
            consumer,
            subject: m.subject,
            msg_id: m.id,
            key: m.key ?? null,
            headers: JSON.stringify(m.headers),
            data: Buffer.from(m.data),
            seq: m.seq,
            deliveries,
            reason,
            dead_at: now,
          }).onConflict((oc) => oc.columns(["namespace", "consumer", "stream", "seq"]).doNothing())
            .execute()
          await trx.deleteFrom("bus_pending")
            .where("namespace", "=", namespace)
            .where("stream", "=", stream)
            .where("consumer", "=", consumer)
            .where("seq", "=", m.seq)
            .execute()
          return Either.right(undefined)
        }, () => wakeFull(stream, consumer))
      })

      return { pull, deadLetter }
    }

    const consume = <E, R>(
      spec: ConsumerSpec,
      handler: Handler<E, R>,
    ): Effect.Effect<void, BusError, Scope.Scope | R> =>
      Effect.gen(function* () {
        const operation = "consume"
        if (!isValidName(spec.name)) {
          return yield* rejected(operation, `invalid consumer name ${JSON.stringify(spec.name)}`)
        }
        const stream = streams.get(spec.stream)
        if (stream === undefined) return yield* rejected(operation, `no stream ${spec.stream}`)
        if (spec.filter !== undefined) {
          const filter = Subjects.parsePattern(spec.filter)
          if (typeof filter === "string") return yield* rejected(operation, filter)
          if (!stream.patterns.some((p) => Subjects.overlaps(p, filter))) {
            return yield* rejected(
              operation,
              `filter ${spec.filter} matches no subject of stream ${spec.stream}`,
            )
          }
        }
        const resolved = resolveConsumerSpec(spec)
        yield* ensureConsumer(resolved)
        yield* runConsumer(resolved, makeSource(resolved), handler)
      }).pipe(Effect.withSpan("EmbeddedBus.consume"))

    // ---------------------------------------------------------------------------------------
    // Readers: the log from a sequence on, then live; no state stored.

    const lastSeq = Effect.fn("EmbeddedBus.lastSeq")(function* (name: string) {
      if (!streams.has(name)) return yield* rejected("lastSeq", `no stream ${name}`)
      const row = yield* database.query("bus last seq", (db) =>
        db.selectFrom("bus_messages")
          .select((eb) => eb.fn.max("seq").as("last"))
          .where("namespace", "=", namespace)
          .where("stream", "=", name)
          .executeTakeFirst()).pipe(Effect.mapError(fromDb("lastSeq")))
      return row?.last == null ? 0 : int(row.last)
    })

    /** A reader's next batch (never empty), waiting for one as long as it takes. */
    const reader = (name: string, options: ReadOptions) =>
      Effect.gen(function* () {
        const operation = "read"
        if (!streams.has(name)) return yield* rejected(operation, `no stream ${name}`)
        let filter: Subjects.Tokens | undefined
        if (options.filter !== undefined) {
          const parsed = Subjects.parsePattern(options.filter)
          if (typeof parsed === "string") return yield* rejected(operation, parsed)
          if (!streams.get(name)!.patterns.some((p) => Subjects.overlaps(p, parsed))) {
            return yield* rejected(
              operation,
              `filter ${options.filter} matches no subject of stream ${name}`,
            )
          }
          filter = parsed
        }
        if (!Number.isSafeInteger(options.fromSeq)) {
          return yield* rejected(operation, `invalid fromSeq ${options.fromSeq}`)
        }
        /** The next sequence to look at; only ever moves forward. */
        let next = Math.max(1, options.fromSeq)
        const wanted = (row: BusMessageRow): boolean =>
          (filter === undefined || Subjects.matches(filter, row.subject.split("."))) &&
          // A replayed dead letter is meant for one durable consumer, not for readers.
          !row.headers.includes(BusHeader.replayFor)
        const query = (from: number) =>
          database.query("bus read", (db) =>
            db.selectFrom("bus_messages").selectAll()
              .where("namespace", "=", namespace)
              .where("stream", "=", name)
              .where("seq", ">=", from)
              .orderBy("seq")
              .limit(SCAN_BATCH)
              .execute()).pipe(Effect.mapError(fromDb(operation)))
        // Pulled by the consumer of the stream: nothing is read ahead of what it takes.
        /** One look at the log: the wanted messages after `next`, waiting once if there are none. */
        const look = (waiter: Waiter) =>
          Effect.gen(function* () {
            const rows = yield* query(next)
            const out: Array<BusMessage> = []
            for (const row of rows) {
              next = int(row.seq) + 1
              if (wanted(row)) out.push(toMessage(name, row, 1, localValues))
            }
            if (out.length === 0 && rows.length < SCAN_BATCH) {
              yield* Deferred.await(waiter.wake).pipe(
                Effect.timeout(Duration.millis(pollMs)),
                Effect.ignore,
              )
            }
            return out
          })
        const nextChunk = Effect.gen(function* () {
          for (;;) {
            // Registered before the query, so a publish committed after it still wakes us.
            const waiter: Waiter = {
              stream: name,
              consumer: "",
              wake: yield* Deferred.make<void>(),
              full: false,
            }
            waiters.add(waiter)
            const out = yield* look(waiter).pipe(
              Effect.ensuring(Effect.sync(() => waiters.delete(waiter))),
            )
            if (out.length > 0) return out
          }
        })
        return nextChunk
      })

    const read = (name: string, options: ReadOptions): Stream.Stream<BusMessage, BusError> =>
      Stream.unwrap(Effect.map(
        reader(name, options),
        (nextChunk) => Stream.repeatEffectChunk(Effect.map(nextChunk, Chunk.unsafeFromArray)),
      )).pipe(Stream.withSpan("EmbeddedBus.read"))

    const readEach: BusShape["readEach"] = (name, options, sink) => {
      const each = (nextChunk: Effect.Effect<Array<BusMessage>, BusError>) =>
        Effect.forever(Effect.flatMap(nextChunk, sink))
      return Effect.flatMap(reader(name, options), each).pipe(
        Effect.withSpan("EmbeddedBus.readEach"),
      )
    }

    // ---------------------------------------------------------------------------------------
    // Dead letters

    const list = Effect.fn("EmbeddedBus.deadLetters.list")(function* (query: DeadLetterQuery = {}) {
      let after = 0
      if (query.after !== undefined) {
        const parsed = parseId(query.after)
        if (parsed === undefined) {
          return yield* rejected(
            "deadLetters.list",
            `invalid cursor ${JSON.stringify(query.after)}`,
          )
        }
        after = parsed
      }
      const limit = Math.max(1, Math.min(1_000, query.limit ?? 100))
      const rows = yield* database.query("bus list dead letters", (db) => {
        let q = db.selectFrom("bus_dead_letters").selectAll()
          .where("namespace", "=", namespace)
          .where("id", ">", after)
        if (query.consumer !== undefined) q = q.where("consumer", "=", query.consumer)
        return q.orderBy("id").limit(limit).execute()
      }).pipe(Effect.mapError(fromDb("deadLetters.list")))
      return rows.map(toDeadLetter)
    })

    const get = Effect.fn("EmbeddedBus.deadLetters.get")(function* (id: string) {
      const key = parseId(id)
      if (key === undefined) return yield* new DeadLetterNotFound({ id })
      const row = yield* database.query(
        "bus get dead letter",
        (db) =>
          db.selectFrom("bus_dead_letters").selectAll()
            .where("namespace", "=", namespace)
            .where("id", "=", key)
            .executeTakeFirst(),
      ).pipe(Effect.mapError(fromDb("deadLetters.get")))
      if (row === undefined) return yield* new DeadLetterNotFound({ id })
      return toDeadLetter(row)
    })

    const replay = Effect.fn("EmbeddedBus.deadLetters.replay")(function* (id: string) {
      const key = parseId(id)
      if (key === undefined) return yield* new DeadLetterNotFound({ id })
      return yield* write<PublishAck, DeadLetterNotFound | BusRejected>(
        "deadLetters.replay",
        async (trx, now) => {
          const row = await trx.selectFrom("bus_dead_letters").selectAll()
            .where("namespace", "=", namespace)
            .where("id", "=", key)
            .executeTakeFirst()
          if (row === undefined) return Either.left(new DeadLetterNotFound({ id }))
          const tokens = Subjects.parseSubject(row.subject)
          const original = streams.get(row.stream)
          const stream = typeof tokens === "string"
            ? undefined
            : original && original.patterns.some((p) => Subjects.matches(p, tokens))
            ? original
            : streamFor(tokens)
          if (stream === undefined) {
            return Either.left(
              rejected("deadLetters.replay", `no stream stores subject ${row.subject} any more`),
            )
          }
          const headers = {
            ...parseHeaders(row.headers),
            [BusHeader.replayFor]: row.consumer,
            [BusHeader.replayOf]: row.msg_id,
          }
          const [ack] = await publishMany(trx, [{
            stream,
            subject: row.subject,
            id: `replay:${row.id}`,
            key: row.key,
            headers: JSON.stringify(headers),
            data: Buffer.from(row.data),
          }], now)
          await trx.deleteFrom("bus_dead_letters")
            .where("namespace", "=", namespace)
            .where("id", "=", key)
            .execute()
          return Either.right(ack!)
        },
        (ack) => wakeStream(ack.stream),
      )
    })

    const discard = Effect.fn("EmbeddedBus.deadLetters.discard")(function* (id: string) {
      const key = parseId(id)
      if (key === undefined) return yield* new DeadLetterNotFound({ id })
      yield* write<void, DeadLetterNotFound>("deadLetters.discard", async (trx) => {
        const result = await trx.deleteFrom("bus_dead_letters")
          .where("namespace", "=", namespace)
          .where("id", "=", key)
          .executeTakeFirst()
        return result.numDeletedRows > 0n
          ? Either.right(undefined)
          : Either.left(new DeadLetterNotFound({ id }))
      })
    })

    // ---------------------------------------------------------------------------------------
    // Retention: delete messages older than their stream's maxAge, a chunk per transaction.

    const retentionChanged = yield* Queue.sliding<void>(1)

    const purgeStream = (stream: StreamState) =>
      write("retention", async (trx, now) => {
        const old = trx.selectFrom("bus_messages").select("seq")
          .where("namespace", "=", namespace)
          .where("stream", "=", stream.name)
          .where("published_at", "<", now - stream.maxAgeMs)
          .limit(PURGE_CHUNK)
        const result = await trx.deleteFrom("bus_messages").where("seq", "in", old)
          .executeTakeFirst()
        return Either.right(Number(result.numDeletedRows))
      }).pipe(
        Effect.repeat({ while: (deleted) => deleted >= PURGE_CHUNK }),
      )

    const retention = Effect.gen(function* () {
      yield* Effect.forEach([...streams.values()], purgeStream, { discard: true }).pipe(
        Effect.catchAll((e) => Effect.logWarning("retention pass failed", e)),
      )
      const shortest = Math.min(...[...streams.values()].map((s) => s.maxAgeMs))
      const every = Math.min(60_000, Math.max(100, shortest / 10))
      yield* Queue.take(retentionChanged).pipe(
        Effect.timeout(Duration.millis(every)),
        Effect.ignore,
      )
    }).pipe(Effect.forever)

    yield* Effect.forkScoped(retention)

    yield* Effect.logDebug("embedded bus started").pipe(
      Effect.annotateLogs({ namespace, location: database.location, streams: streams.size }),
    )

    return {
      backend: "embedded",
      ensureStream,
      publish,
      consume,
      read,
      readEach,
      lastSeq,
      deadLetters: { list, get, replay, discard },
      ping: database.ping.pipe(
        Effect.mapError(fromDb("ping")),
        Effect.withSpan("EmbeddedBus.ping"),
      ),
    } satisfies BusShape
  })

export const layer = (options: EmbeddedBusOptions): Layer.Layer<Bus, BusError, Database> =>
  Layer.scoped(Bus, make(options))
