/**
 * The store's side of replies: appending an outgoing message (group-committed, like inbound
 * appends, with the sequence number the conversation actor hands over), recording its delivery
 * outcome, and reading the outbox (replies still `queued`).
 *
 * Idempotency: a reply may carry the client's key (`client_id`, unique per conversation); a
 * second append with the same key stores nothing and answers `Duplicate` with the stored reply.
 * A delivery outcome is recorded only while the message is still `queued`, so a late duplicate
 * delivery can never overwrite (or repeat) one already recorded.
 */
import { sql } from "kysely"
import { Context, Effect, Either, Layer, Option, type Scope } from "effect"
import type { ChannelIdentity } from "../../schemas/Contact.ts"
import type { InboundAttachment, ReplyButtons } from "../../schemas/Common.ts"
import type { ChannelIdentityId, ConversationId, MessageId, OperatorId } from "../../schemas/Ids.ts"
import type { OutgoingMessage, ProviderError } from "../../schemas/Message.ts"
import { newId } from "../../core/ids.ts"
import type { MessageRow, NewMessage } from "../../core/storage/ConversationTables.ts"
import { Database, type DatabaseError, type DatabaseShape } from "../../core/storage/Database.ts"
import * as GroupCommit from "../../core/storage/GroupCommit.ts"
import type { ChannelReason } from "../../schemas/Message.ts"
import { attachmentsJson, ResolvedMeanwhile, toIdentity, toMessage } from "./ConversationRows.ts"

export interface AppendOutbound {
  readonly conversationId: ConversationId
  /** The next sequence number, assigned by the conversation's actor. */
  readonly seq: number
  /** The identity it is sent to (its channel and account are the message's). */
  readonly recipient: ChannelIdentity
  readonly text: string
  readonly attachments: ReadonlyArray<InboundAttachment>
  /** The client's idempotency key, if it sent one. */
  readonly clientId: string | undefined
  readonly authorId: OperatorId | null
  /** Buttons under the reply (channels that show them). */
  readonly buttons?: ReplyButtons | undefined
  /** This reply is the fallback copy of that one (its channel could not deliver it). */
  readonly fallbackOf?: MessageId | undefined
  /** Why it goes out on the recipient's channel (`last_used`, `operator_choice`). */
  readonly channelReason?: ChannelReason | undefined
}

export type AppendOutboundResult =
  | { readonly _tag: "Stored"; readonly message: OutgoingMessage }
  | { readonly _tag: "Duplicate"; readonly message: OutgoingMessage }

/**
 * How a delivery ended: the provider took it, or it failed for good — then either a fallback
 * copy went instead (`fallbackTo`) or it enters the dead-letter list for a person to handle.
 */
export type DeliveryOutcome =
  | { readonly state: "sent"; readonly externalId: string }
  | {
    readonly state: "failed"
    readonly error: ProviderError
    readonly fallbackTo?: MessageId | undefined
  }

/** One provider call of a reply, as recorded in `delivery_attempts`. */
export interface AttemptRecord {
  readonly messageId: MessageId
  readonly channel: string
  readonly account: string
  readonly startedAt: number
  readonly durationMs: number
  readonly outcome: "sent" | "unavailable" | "rejected" | "timeout"
  readonly code?: string | undefined
  readonly reason?: string | undefined
}

export interface RecordDelivery {
  readonly messageId: MessageId
  readonly outcome: DeliveryOutcome
  /** Provider calls of this series (since it was queued), this one included. */
  readonly attempts: number
  /** The call that ended it, if one did (none for a reply failed before any call). */
  readonly attempt?: AttemptRecord | undefined
}

/** A reply that ended `failed` with no fallback, waiting for a person. */
export interface OutboundDeadLetter {
  readonly messageId: MessageId
  readonly conversationId: ConversationId
  readonly channel: string
  readonly account: string
  readonly code: string
  readonly reason: string
  readonly attempts: number
  readonly deadAt: Date
  readonly resolvedAt: Date | null
  readonly resolvedBy: string | null
  readonly resolution: "retried" | "discarded" | null
}

export interface RecordedDelivery {
  /** False when the message was no longer `queued` (another delivery recorded it first). */
  readonly changed: boolean
  readonly message: OutgoingMessage
}

/** An outgoing message with its send attempts so far. */
export interface StoredReply {
  readonly message: OutgoingMessage
  readonly attempts: number
}

export interface OutboundStoreShape {
  readonly appendOutbound: (
    input: AppendOutbound,
  ) => Effect.Effect<AppendOutboundResult, DatabaseError>
  readonly recordDelivery: (
    input: RecordDelivery,
  ) => Effect.Effect<Option.Option<RecordedDelivery>, DatabaseError>
  readonly reply: (id: MessageId) => Effect.Effect<Option.Option<StoredReply>, DatabaseError>
  readonly identity: (
    id: ChannelIdentityId,
  ) => Effect.Effect<Option.Option<ChannelIdentity>, DatabaseError>
  /**
   * The provider says nothing sent to this identity can arrive (blocked, left, bounces): replies
   * and fallbacks skip it until the customer writes from it again.
   */
  readonly markUnreachable: (id: ChannelIdentityId) => Effect.Effect<void, DatabaseError>
  /**
   * Replies still `queued`, oldest first, created before `createdBefore` (and at or after
   * `createdAfter`, if given; epoch ms); page on with `after` = the last one's `[createdAt, id]`.
   */
  readonly queued: (options: {
    readonly createdBefore: number
    readonly createdAfter?: number
    readonly after?: readonly [number, string]
    readonly limit: number
  }) => Effect.Effect<ReadonlyArray<OutgoingMessage>, DatabaseError>
  /** Record a provider call that did not end the delivery (a retryable failure). */
  readonly recordAttempt: (
    attempt: AttemptRecord & { readonly attempts: number },
  ) => Effect.Effect<void, DatabaseError>
  /** Every provider call of a reply, oldest first. */
  readonly attemptsOf: (id: MessageId) => Effect.Effect<ReadonlyArray<AttemptRecord>, DatabaseError>
  /** Dead letters, newest first; `open` only those no person handled yet (default true). */
  readonly deadLetters: (query: {
    readonly open?: boolean
    readonly channel?: string
    readonly account?: string
    /** Page on after the last one's `[deadAt ms, messageId]`. */
    readonly before?: readonly [number, string]
    readonly limit: number
  }) => Effect.Effect<ReadonlyArray<OutboundDeadLetter>, DatabaseError>
  readonly deadLetter: (
    id: MessageId,
  ) => Effect.Effect<Option.Option<OutboundDeadLetter>, DatabaseError>
  /**
   * A person handles a failed reply: `retried` puts it back to `queued` (a new series of
   * attempts; the caller publishes it), whether or not it is in the dead-letter list;
   * `discarded` takes it off the list and leaves it failed. `changed` is false when there was
   * nothing to do (not failed, or handled already). None: no such outgoing message.
   */
  readonly resolveDeadLetter: (
    id: MessageId,
    input: { readonly by: string; readonly resolution: "retried" | "discarded" },
  ) => Effect.Effect<
    Option.Option<{ readonly changed: boolean; readonly message: OutgoingMessage }>,
    DatabaseError
  >
  /** A reply a receipt failed after it was sent, with no fallback: into the dead-letter list. */
  readonly deadLetterFailed: (message: OutgoingMessage) => Effect.Effect<void, DatabaseError>
  /** Replies still queued, by channel account, with the oldest one's time. */
  readonly backlog: Effect.Effect<
    ReadonlyArray<
      {
        readonly channel: string
        readonly account: string
        readonly queued: number
        readonly oldest: number
      }
    >,
    DatabaseError
  >
  /**
   * The channel identities of a conversation's contact that can be reached, the most recently
   * heard from first: where a fallback copy can go.
   */
  readonly reachableIdentities: (
    conversationId: ConversationId,
  ) => Effect.Effect<ReadonlyArray<ChannelIdentity>, DatabaseError>
  /** Point a reply failed after it was sent at the fallback copy sent instead. */
  readonly linkFallback: (
    original: MessageId,
    copy: MessageId,
  ) => Effect.Effect<void, DatabaseError>
  /** The fallback copy made of a reply, if one was. */
  readonly fallbackLink: (
    original: MessageId,
  ) => Effect.Effect<Option.Option<MessageId>, DatabaseError>
}

export class OutboundStore extends Context.Tag("chorus/actors/OutboundStore")<
  OutboundStore,
  OutboundStoreShape
>() {}

const asReply = (row: MessageRow): OutgoingMessage => toMessage(row) as OutgoingMessage

const appendKind: GroupCommit.WriteKind<AppendOutbound, AppendOutboundResult, never> = {
  name: "append outbound",
  rank: 0,
  execute: async (trx, inputs, now) => {
    const keyOf = (conversationId: string, clientId: string) => `${conversationId}\u0000${clientId}`
    const stored = new Map<string, MessageRow>()
    const keyed = inputs.filter((i) => i.clientId !== undefined)
    if (keyed.length > 0) {
      const rows = await trx.selectFrom("messages").selectAll()
        .where("conversation_id", "in", [...new Set(keyed.map((i) => i.conversationId))])
        .where("client_id", "in", [...new Set(keyed.map((i) => i.clientId!))])
        .execute()
      for (const row of rows) stored.set(keyOf(row.conversation_id, row.client_id!), row)
    }
    const results: Array<Either.Either<AppendOutboundResult, never>> = []
    const rows: Array<NewMessage> = []
    const last = new Map<string, { seq: number; authorId: OperatorId | null }>()
    /** Conversations that get only fallback copies here: those may follow a resolution. */
    const fallbacksOnly = new Set<string>(inputs.map((i) => i.conversationId))
    for (const input of inputs) {
      if (input.fallbackOf === undefined) fallbacksOnly.delete(input.conversationId)
      const key = input.clientId === undefined
        ? undefined
        : keyOf(input.conversationId, input.clientId)
      const existing = key === undefined ? undefined : stored.get(key)
      if (existing !== undefined) {
        results.push(Either.right({ _tag: "Duplicate", message: asReply(existing) }))
        continue
      }
      const row: NewMessage = {
        id: newId.message(),
        conversation_id: input.conversationId,
        seq: input.seq,
        direction: "out",
        channel: input.recipient.channel,
        account: input.recipient.account,
        identity_id: input.recipient.id,
        external_id: null,
        author_id: input.authorId,
        text: input.text,
        attachments: attachmentsJson(input.attachments),
        delivery_state: "queued",
        delivery_at: now,
        delivery_error: null,
        sent_at: null,
        received_at: null,
        created_at: now,
        client_id: input.clientId ?? null,
        delivery_attempts: 0,
        buttons: input.buttons === undefined ? null : JSON.stringify(input.buttons),
        fallback_of: input.fallbackOf ?? null,
        channel_reason: input.channelReason ?? null,
      }
      if (key !== undefined) stored.set(key, row as MessageRow)
      rows.push(row)
      if (input.seq > (last.get(input.conversationId)?.seq ?? 0)) {
        last.set(input.conversationId, { seq: input.seq, authorId: input.authorId })
      }
      results.push(Either.right({ _tag: "Stored", message: asReply(row as MessageRow) }))
    }
    if (rows.length > 0) {
      await trx.insertInto("messages").values(rows).execute()
      for (const [conversationId, { seq, authorId }] of last) {
        // Answered: the customer no longer waits; the assignee's answer keeps it theirs (routing
        // gives back to the queue only what the assignee left unanswered).
        const updated = await trx.updateTable("conversations")
          .set((eb) => ({
            last_seq: seq,
            last_message_at: now,
            updated_at: now,
            waiting_since: null,
            unread_count: 0,
            assignee_replied_at: authorId === null ? eb.ref("assignee_replied_at") : eb.case()
              .when("assignee_id", "=", authorId)
              .then(eb.fn.coalesce("assignee_replied_at", eb.val(now)))
              .else(eb.ref("assignee_replied_at"))
              .end(),
          }))
          .where("id", "=", conversationId)
          .$if(!fallbacksOnly.has(conversationId), (q) => q.where("status", "!=", "resolved"))
          .executeTakeFirst()
        // Refused by the actor had it known: resolved by another node's actor meanwhile.
        if (Number(updated.numUpdatedRows) === 0) throw new ResolvedMeanwhile(conversationId)
      }
    }
    return results
  },
}

const recordKind: GroupCommit.WriteKind<RecordDelivery, Option.Option<RecordedDelivery>, never> = {
  name: "record delivery",
  rank: 1,
  execute: async (trx, inputs, now) => {
    const results: Array<Either.Either<Option.Option<RecordedDelivery>, never>> = []
    for (const { messageId, outcome, attempts, attempt } of inputs) {
      const updated = await trx.updateTable("messages")
        .set({
          delivery_state: outcome.state,
          delivery_at: now,
          delivery_attempts: attempts,
          ...(outcome.state === "sent"
            ? { external_id: outcome.externalId, delivery_error: null }
            : {
              delivery_error: JSON.stringify(outcome.error),
              fallback_to: outcome.fallbackTo ?? null,
            }),
        })
        .where("id", "=", messageId)
        .where("direction", "=", sql.lit("out"))
        .where("delivery_state", "=", sql.lit("queued"))
        .executeTakeFirst()
      const row = await trx.selectFrom("messages").selectAll().where("id", "=", messageId)
        .executeTakeFirst()
      if (Number(updated.numUpdatedRows) > 0 && row !== undefined) {
        if (attempt !== undefined) await insertAttempt(trx, attempt)
        if (outcome.state === "failed" && outcome.fallbackTo === undefined) {
          await insertDeadLetter(trx, row, outcome.error, attempts, now)
        }
      }
      results.push(Either.right(
        row === undefined || row.direction !== "out" ? Option.none() : Option.some({
          changed: Number(updated.numUpdatedRows) > 0,
          message: asReply(row),
        }),
      ))
    }
    return results
  },
}

type Trx = Parameters<GroupCommit.WriteKind<unknown, unknown, never>["execute"]>[0]

const insertAttempt = async (trx: Trx, a: AttemptRecord) => {
  const prior = await trx.selectFrom("delivery_attempts")
    .select((eb) => eb.fn.countAll<number>().as("n"))
    .where("message_id", "=", a.messageId).executeTakeFirst()
  await trx.insertInto("delivery_attempts").values({
    message_id: a.messageId,
    attempt: Number(prior?.n ?? 0) + 1,
    channel: a.channel,
    account: a.account,
    started_at: a.startedAt,
    duration_ms: Math.max(0, Math.round(a.durationMs)),
    outcome: a.outcome,
    code: a.code ?? null,
    reason: a.reason === undefined ? null : a.reason.slice(0, 2_000),
  }).execute()
}

const insertDeadLetter = async (
  trx: Trx,
  row: MessageRow,
  error: ProviderError,
  attempts: number,
  now: number,
) => {
  // A reply retried from the list and failing again comes back into it.
  await trx.deleteFrom("outbound_dead_letters").where("message_id", "=", row.id).execute()
  await trx.insertInto("outbound_dead_letters").values({
    message_id: row.id,
    conversation_id: row.conversation_id,
    channel: row.channel ?? "",
    account: row.account ?? "",
    code: error.code,
    reason: error.message.slice(0, 2_000),
    attempts,
    dead_at: now,
  }).execute()
}

const attemptKind: GroupCommit.WriteKind<AttemptRecord & { attempts: number }, void, never> = {
  name: "record attempt",
  rank: 1,
  execute: async (trx, inputs) => {
    for (const input of inputs) {
      await insertAttempt(trx, input)
      await trx.updateTable("messages").set({ delivery_attempts: input.attempts })
        .where("id", "=", input.messageId).where("delivery_state", "=", sql.lit("queued")).execute()
    }
    return inputs.map(() => Either.right(undefined))
  },
}

const toDeadLetter = (r: {
  message_id: string
  conversation_id: string
  channel: string
  account: string
  code: string
  reason: string
  attempts: number
  dead_at: number | string
  resolved_at: number | string | null
  resolved_by: string | null
  resolution: string | null
}): OutboundDeadLetter => ({
  messageId: r.message_id as MessageId,
  conversationId: r.conversation_id as ConversationId,
  channel: r.channel,
  account: r.account,
  code: r.code,
  reason: r.reason,
  attempts: Number(r.attempts),
  deadAt: new Date(Number(r.dead_at)),
  resolvedAt: r.resolved_at === null ? null : new Date(Number(r.resolved_at)),
  resolvedBy: r.resolved_by,
  resolution: r.resolution as OutboundDeadLetter["resolution"],
})

export const make = (
  options: { readonly maxBatch?: number } = {},
): Effect.Effect<OutboundStoreShape, never, Database | Scope.Scope> =>
  Effect.gen(function* () {
    const database: DatabaseShape = yield* Database
    const writer = yield* GroupCommit.make(database, {
      label: "outbound",
      maxBatch: Math.max(1, options.maxBatch ?? 200),
    })

    const reply = Effect.fn("OutboundStore.reply")(function* (id: MessageId) {
      const row = yield* database.query("get reply", (db) =>
        db.selectFrom("messages").selectAll().where("id", "=", id)
          .where("direction", "=", sql.lit("out")).executeTakeFirst())
      return Option.fromNullable(row).pipe(Option.map((r): StoredReply => ({
        message: asReply(r),
        attempts: Number(r.delivery_attempts ?? 0),
      })))
    })

    const identity = Effect.fn("OutboundStore.identity")(function* (id: ChannelIdentityId) {
      const row = yield* database.query("get identity", (db) =>
        db.selectFrom("channel_identities").selectAll().where("id", "=", id).executeTakeFirst())
      return Option.fromNullable(row).pipe(Option.map(toIdentity))
    })

    const markUnreachable = Effect.fn("OutboundStore.markUnreachable")(function* (
      id: ChannelIdentityId,
    ) {
      yield* database.query("mark identity unreachable", (db) =>
        db.updateTable("channel_identities").set({ reachable: 0 }).where("id", "=", id).execute())
    })

    const queued = Effect.fn("OutboundStore.queued")(function* (options: {
      readonly createdBefore: number
      readonly createdAfter?: number
      readonly after?: readonly [number, string]
      readonly limit: number
    }) {
      const rows = yield* database.query("outbox page", (db) => {
        let q = db.selectFrom("messages").selectAll()
          .where("delivery_state", "=", sql.lit("queued"))
          .where("direction", "=", sql.lit("out"))
          .where("created_at", "<", options.createdBefore)
        if (options.createdAfter !== undefined) {
          q = q.where("created_at", ">=", options.createdAfter)
        }
        const after = options.after
        if (after !== undefined) {
          q = q.where((eb) =>
            eb.or([
              eb("created_at", ">", after[0]),
              eb.and([eb("created_at", "=", after[0]), eb("id", ">", after[1])]),
            ])
          )
        }
        return q.orderBy("created_at").orderBy("id").limit(options.limit).execute()
      })
      return rows.map(asReply)
    })

    const attemptsOf = Effect.fn("OutboundStore.attemptsOf")(function* (id: MessageId) {
      const rows = yield* database.query("attempts of reply", (db) =>
        db.selectFrom("delivery_attempts").selectAll().where("message_id", "=", id)
          .orderBy("attempt").execute())
      return rows.map((r): AttemptRecord => ({
        messageId: r.message_id as MessageId,
        channel: r.channel,
        account: r.account,
        startedAt: Number(r.started_at),
        durationMs: Number(r.duration_ms),
        outcome: r.outcome as AttemptRecord["outcome"],
        code: r.code ?? undefined,
        reason: r.reason ?? undefined,
      }))
    })

    const deadLetters = Effect.fn("OutboundStore.deadLetters")(function* (query: {
      readonly open?: boolean
      readonly channel?: string
      readonly account?: string
      readonly before?: readonly [number, string]
      readonly limit: number
    }) {
      const rows = yield* database.query("dead letters", (db) => {
        let q = db.selectFrom("outbound_dead_letters").selectAll()
        if (query.open !== false) {
          q = q.where("resolved_at", "is", null)
        }
        if (query.channel !== undefined) {
          q = q.where("channel", "=", query.channel)
        }
        if (query.account !== undefined) {
          q = q.where("account", "=", query.account)
        }
        const before = query.before
        if (before !== undefined) {
          q = q.where((eb) =>
            eb.or([
              eb("dead_at", "<", before[0]),
              eb.and([eb("dead_at", "=", before[0]), eb("message_id", "<", before[1])]),
            ])
          )
        }
        return q.orderBy("dead_at", "desc").orderBy("message_id", "desc").limit(query.limit)
          .execute()
      })
      return rows.map(toDeadLetter)
    })

    const deadLetter = Effect.fn("OutboundStore.deadLetter")(function* (id: MessageId) {
      const row = yield* database.query("dead letter", (db) =>
        db.selectFrom("outbound_dead_letters").selectAll().where("message_id", "=", id)
          .executeTakeFirst())
      return Option.fromNullable(row).pipe(Option.map(toDeadLetter))
    })

    const resolveDeadLetter = Effect.fn("OutboundStore.resolveDeadLetter")(function* (
      id: MessageId,
      input: { readonly by: string; readonly resolution: "retried" | "discarded" },
    ) {
      return yield* database.transaction("resolve dead letter", async (trx) => {
        const now = Date.now()
        const resolved = await trx.updateTable("outbound_dead_letters")
          .set({ resolved_at: now, resolved_by: input.by, resolution: input.resolution })
          .where("message_id", "=", id).where("resolved_at", "is", null)
          .executeTakeFirst()
        let changed = Number(resolved.numUpdatedRows) > 0
        if (input.resolution === "retried") {
          // A failed reply goes back to `queued`, in or out of the list (the inbox's resend).
          const requeued = await trx.updateTable("messages")
            .set({
              delivery_state: "queued",
              delivery_at: now,
              delivery_error: null,
              delivery_attempts: 0,
            })
            .where("id", "=", id).where("direction", "=", sql.lit("out"))
            .where("delivery_state", "=", sql.lit("failed"))
            .executeTakeFirst()
          changed = Number(requeued.numUpdatedRows) > 0
        }
        const row = await trx.selectFrom("messages").selectAll().where("id", "=", id)
          .where("direction", "=", sql.lit("out")).executeTakeFirst()
        return row === undefined ? Option.none() : Option.some({ changed, message: asReply(row) })
      })
    })

    const deadLetterFailed = Effect.fn("OutboundStore.deadLetterFailed")(function* (
      message: OutgoingMessage,
    ) {
      if (message.delivery.state !== "failed") {
        return
      }
      const error = message.delivery.error
      yield* database.transaction("dead-letter a failed reply", async (trx) => {
        const row = await trx.selectFrom("messages").selectAll().where("id", "=", message.id)
          .executeTakeFirst()
        if (row === undefined || row.delivery_state !== "failed" || row.fallback_to !== null) {
          return
        }
        await insertDeadLetter(trx, row, error, Number(row.delivery_attempts ?? 0), Date.now())
      })
    })

    const backlog = database.query("outbound backlog", (db) =>
      db.selectFrom("messages")
        .select((eb) => [
          "channel",
          "account",
          eb.fn.countAll<number>().as("queued"),
          eb.fn.min("created_at").as("oldest"),
        ])
        .where("delivery_state", "=", sql.lit("queued")).where("direction", "=", sql.lit("out"))
        .groupBy(["channel", "account"]).execute()).pipe(
        Effect.map((rows) =>
          rows.map((r) => ({
            channel: r.channel ?? "",
            account: r.account ?? "",
            queued: Number(r.queued),
            oldest: Number(r.oldest),
          }))
        ),
        Effect.withSpan("OutboundStore.backlog"),
      )

    const fallbackLink = Effect.fn("OutboundStore.fallbackLink")(function* (original: MessageId) {
      const row = yield* database.query("fallback copy of", (db) =>
        db.selectFrom("messages").select("id").where("fallback_of", "=", original)
          .executeTakeFirst())
      return Option.fromNullable(row?.id as MessageId | undefined)
    })

    const reachableIdentities = Effect.fn("OutboundStore.reachableIdentities")(function* (
      conversationId: ConversationId,
    ) {
      const rows = yield* database.query("reachable identities", (db) =>
        db.selectFrom("channel_identities").selectAll("channel_identities")
          .innerJoin("conversations", "conversations.contact_id", "channel_identities.contact_id")
          .where("conversations.id", "=", conversationId)
          .where("channel_identities.reachable", "=", 1)
          .orderBy(
            (eb) =>
              eb.fn.coalesce("channel_identities.last_seen_at", "channel_identities.created_at"),
            "desc",
          )
          .execute())
      return rows.map(toIdentity)
    })

    const linkFallback = Effect.fn("OutboundStore.linkFallback")(function* (
      original: MessageId,
      copy: MessageId,
    ) {
      yield* database.query("link fallback", (db) =>
        db.updateTable("messages").set({ fallback_to: copy }).where("id", "=", original)
          .where("fallback_to", "is", null).execute())
    })

    return {
      linkFallback,
      reachableIdentities,
      recordAttempt: (input) =>
        writer.submit(attemptKind, input).pipe(Effect.withSpan("OutboundStore.recordAttempt")),
      attemptsOf,
      deadLetters,
      deadLetter,
      resolveDeadLetter,
      deadLetterFailed,
      backlog,
      fallbackLink,
      appendOutbound: (input) =>
        writer.submit(appendKind, input).pipe(Effect.withSpan("OutboundStore.appendOutbound")),
      recordDelivery: (input) =>
        writer.submit(recordKind, input).pipe(Effect.withSpan("OutboundStore.recordDelivery")),
      reply,
      identity,
      markUnreachable,
      queued,
    } satisfies OutboundStoreShape
  })

export const layer = (options: { readonly maxBatch?: number } = {}) =>
  Layer.scoped(OutboundStore, make(options))
