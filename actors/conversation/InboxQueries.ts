/**
 * The inbox's read side: the conversation list an operator sees (their views, filters and
 * teams, each row with its contact and last message), the tab counts, a contact's past
 * conversations, and the queue with each conversation's place in line.
 *
 * Lists page like `ConversationQueries.list` (keyset on updated_at, id, descending). The preview
 * is the conversation's newest message, found through the (conversation_id, seq) index.
 */
import { Context, Effect, Layer } from "effect"
import { type ExpressionBuilder, sql } from "kysely"
import { type Visibility } from "../../core/accounts/Access.ts"
import { Database, type DatabaseError } from "../../core/storage/Database.ts"
import type { CoreTables } from "../../core/storage/tables.ts"
import type { Conversation } from "../../schemas/Conversation.ts"
import type { ContactId, ConversationId, OperatorId, TeamId } from "../../schemas/Ids.ts"
import type { InboxConversation, InboxListParams, QueueEntry } from "../../schemas/Inbox.ts"
import type { ConversationPosition } from "../../schemas/ReadApi.ts"
import { millis, toContact, toConversation } from "./ConversationRows.ts"

const PREVIEW_CHARS = 200

export interface InboxPage {
  readonly conversations: ReadonlyArray<InboxConversation>
  readonly next: ConversationPosition | null
}

export interface InboxCounts {
  readonly mine: number
  readonly unassigned: number
  readonly all: number
}

export interface InboxQueriesShape {
  readonly list: (
    params: Omit<InboxListParams, "cursor"> & { readonly after?: ConversationPosition },
    visibility: Visibility,
    me: OperatorId | null,
  ) => Effect.Effect<InboxPage, DatabaseError>
  /** Open conversations per tab. */
  readonly counts: (
    visibility: Visibility,
    me: OperatorId | null,
  ) => Effect.Effect<InboxCounts, DatabaseError>
  /** Every conversation of a contact, newest first (at most 100). */
  readonly contactConversations: (
    contactId: ContactId,
  ) => Effect.Effect<ReadonlyArray<Conversation>, DatabaseError>
  /** Unassigned open conversations, per team in order of waiting, with their places. */
  readonly queue: (
    visibility: Visibility,
  ) => Effect.Effect<ReadonlyArray<QueueEntry>, DatabaseError>
  /** Open conversations assigned to each operator. */
  readonly loads: () => Effect.Effect<ReadonlyMap<OperatorId, number>, DatabaseError>
}

export class InboxQueries extends Context.Tag("chorus/actors/InboxQueries")<
  InboxQueries,
  InboxQueriesShape
>() {}

type Eb = ExpressionBuilder<CoreTables, "conversations">

/** The visibility rule as SQL: the principal's teams, or assigned to them. */
const visible = (eb: Eb, visibility: Visibility) =>
  visibility.all ? sql<boolean>`1 = 1` : eb.or([
    eb("conversations.assignee_id", "=", visibility.operatorId),
    ...(visibility.teamIds.length > 0
      ? [eb("conversations.team_id", "in", [...visibility.teamIds])]
      : []),
  ])

/** The queue's order: longest waiting first; never-waiting ones (no customer message) last. */
const queueOrder = (row: { waiting_since: number | string | null; created_at: number | string }) =>
  row.waiting_since === null ? Number.MAX_SAFE_INTEGER : millis(row.waiting_since)

export const make = Effect.gen(function* () {
  const database = yield* Database

  const list = Effect.fn("InboxQueries.list")(function* (
    params: Omit<InboxListParams, "cursor"> & { readonly after?: ConversationPosition },
    visibility: Visibility,
    me: OperatorId | null,
  ) {
    const limit = Math.max(1, Math.floor(params.limit))
    const rows = yield* database.query("inbox list", (db) => {
      let q = db.selectFrom("conversations")
        .innerJoin("contacts", "contacts.id", "conversations.contact_id")
        .leftJoin(
          "messages",
          (join) =>
            join.onRef("messages.conversation_id", "=", "conversations.id")
              .onRef("messages.seq", "=", "conversations.last_seq"),
        )
        .selectAll("conversations")
        .select([
          "contacts.name as contact_name",
          "contacts.created_at as contact_created_at",
          "contacts.updated_at as contact_updated_at",
          "messages.direction as preview_direction",
          "messages.text as preview_text",
          "messages.attachments as preview_attachments",
          "messages.created_at as preview_at",
        ])
        .where((eb) => visible(eb, visibility))
      if (params.view === "mine") {
        q = me === null
          ? q.where(sql<boolean>`1 = 0`)
          : q.where("conversations.assignee_id", "=", me)
      } else if (params.view === "unassigned") {
        q = q.where("conversations.assignee_id", "is", null)
      }
      switch (params.status) {
        case "snoozed":
          q = q.where("conversations.status", "=", "pending")
            .where("conversations.snoozed_until", "is not", null)
          break
        case "pending":
          q = q.where("conversations.status", "=", "pending")
            .where("conversations.snoozed_until", "is", null)
          break
        case "open":
        case "resolved":
          q = q.where("conversations.status", "=", params.status)
          break
      }
      if (params.channel !== undefined) {
        q = q.where("conversations.last_channel", "=", params.channel)
      }
      if (params.teamId !== undefined) q = q.where("conversations.team_id", "=", params.teamId)
      const after = params.after
      if (after !== undefined) {
        q = q.where((eb) =>
          eb.or([
            eb("conversations.updated_at", "<", after.updatedAt),
            eb.and([
              eb("conversations.updated_at", "=", after.updatedAt),
              eb("conversations.id", "<", after.id),
            ]),
          ])
        )
      }
      return q.orderBy("conversations.updated_at", "desc").orderBy("conversations.id", "desc")
        .limit(limit + 1).execute()
    })
    const pageRows = rows.slice(0, limit)
    const last = pageRows[pageRows.length - 1]
    return {
      conversations: pageRows.map((row): InboxConversation => ({
        ...toConversation(row),
        contact: toContact({
          id: row.contact_id,
          name: row.contact_name,
          created_at: row.contact_created_at,
          updated_at: row.contact_updated_at,
        }),
        preview: row.preview_direction === null || row.preview_at === null ? null : {
          direction: row.preview_direction as "in" | "out" | "note",
          text: (row.preview_text ?? "").slice(0, PREVIEW_CHARS),
          attachments: (JSON.parse(row.preview_attachments ?? "[]") as Array<unknown>).length,
          at: new Date(millis(row.preview_at)),
        },
      })),
      next: rows.length > limit && last !== undefined
        ? { updatedAt: millis(last.updated_at), id: last.id as ConversationId }
        : null,
    } satisfies InboxPage
  })

  const counts = Effect.fn("InboxQueries.counts")(function* (
    visibility: Visibility,
    me: OperatorId | null,
  ) {
    const row = yield* database.query("inbox counts", (db) =>
      db.selectFrom("conversations")
        .select((eb) => [
          eb.fn.countAll<number | string>().as("all"),
          eb.fn.sum<number | string | null>(
            eb.case().when("assignee_id", "is", null).then(1).else(0).end(),
          ).as("unassigned"),
          eb.fn.sum<number | string | null>(
            me === null ? eb.val(0) : eb.case().when("assignee_id", "=", me).then(1).else(0).end(),
          ).as("mine"),
        ])
        .where("status", "=", "open")
        .where((eb) => visible(eb, visibility))
        .executeTakeFirstOrThrow())
    return {
      all: Number(row.all),
      unassigned: Number(row.unassigned ?? 0),
      mine: Number(row.mine ?? 0),
    } satisfies InboxCounts
  })

  const contactConversations = Effect.fn("InboxQueries.contactConversations")(function* (
    contactId: ContactId,
  ) {
    const rows = yield* database.query(
      "contact conversations",
      (db) =>
        db.selectFrom("conversations").selectAll().where("contact_id", "=", contactId)
          .orderBy("created_at", "desc").orderBy("id", "desc").limit(100).execute(),
    )
    return rows.map(toConversation)
  })

  const queue = Effect.fn("InboxQueries.queue")(function* (visibility: Visibility) {
    const rows = yield* database.query("queue", (db) =>
      db.selectFrom("conversations")
        .select(["id", "team_id", "waiting_since", "created_at"])
        .where("status", "=", "open")
        .where("assignee_id", "is", null)
        .where((eb) => visible(eb, visibility))
        .execute())
    const sorted = [...rows].sort((a, b) =>
      queueOrder(a) - queueOrder(b) || millis(a.created_at) - millis(b.created_at) ||
      (a.id < b.id ? -1 : 1)
    )
    const places = new Map<string | null, number>()
    return sorted.map((row): QueueEntry => {
      const position = (places.get(row.team_id) ?? 0) + 1
      places.set(row.team_id, position)
      return {
        conversationId: row.id as ConversationId,
        teamId: row.team_id as TeamId | null,
        position,
        waitingSince: row.waiting_since === null ? null : new Date(millis(row.waiting_since)),
      }
    })
  })

  const loads = Effect.fn("InboxQueries.loads")(function* () {
    const rows = yield* database.query("operator loads", (db) =>
      db.selectFrom("conversations")
        .select((eb) => ["assignee_id", eb.fn.countAll<number | string>().as("load")])
        .where("status", "=", "open")
        .where("assignee_id", "is not", null)
        .groupBy("assignee_id")
        .execute())
    return new Map(rows.map((r) => [r.assignee_id as OperatorId, Number(r.load)]))
  })

  return { list, counts, contactConversations, queue, loads } satisfies InboxQueriesShape
})

export const layer = Layer.effect(InboxQueries, make)
