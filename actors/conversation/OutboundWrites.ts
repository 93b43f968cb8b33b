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
import { attachmentsJson, toIdentity, toMessage } from "./ConversationRows.ts"

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
  /** Why it goes out on the recipient's channel (`last_used`, `operator_choice`). */
  readonly channelReason?: ChannelReason | undefined
}

export type AppendOutboundResult =
  | { readonly _tag: "Stored"; readonly message: OutgoingMessage }
  | { readonly _tag: "Duplicate"; readonly message: OutgoingMessage }

/** How a delivery ended: the provider took it, or it failed for good. */
export type DeliveryOutcome =
  | { readonly state: "sent"; readonly externalId: string }
  | { readonly state: "failed"; readonly error: ProviderError }

export interface RecordDelivery {
  readonly messageId: MessageId
  readonly outcome: DeliveryOutcome
  readonly attempts: number
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
   * Replies still `queued`, oldest first, created before `createdBefore` (epoch ms); page on with
   * `after` = the last one's `[createdAt, id]`.
   */
  readonly queued: (options: {
    readonly createdBefore: number
    readonly after?: readonly [number, string]
    readonly limit: number
  }) => Effect.Effect<ReadonlyArray<OutgoingMessage>, DatabaseError>
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
    for (const input of inputs) {
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
        await trx.updateTable("conversations")
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
          .where("id", "=", conversationId).execute()
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
    for (const { messageId, outcome, attempts } of inputs) {
      const updated = await trx.updateTable("messages")
        .set({
          delivery_state: outcome.state,
          delivery_at: now,
          delivery_attempts: attempts,
          ...(outcome.state === "sent"
            ? { external_id: outcome.externalId, delivery_error: null }
            : { delivery_error: JSON.stringify(outcome.error) }),
        })
        .where("id", "=", messageId)
        .where("direction", "=", "out")
        .where("delivery_state", "=", "queued")
        .executeTakeFirst()
      const row = await trx.selectFrom("messages").selectAll().where("id", "=", messageId)
        .executeTakeFirst()
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
          .where("direction", "=", "out").executeTakeFirst())
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
      readonly after?: readonly [number, string]
      readonly limit: number
    }) {
      const rows = yield* database.query("outbox page", (db) => {
        let q = db.selectFrom("messages").selectAll()
          .where("delivery_state", "=", "queued")
          .where("direction", "=", "out")
          .where("created_at", "<", options.createdBefore)
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

    return {
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
