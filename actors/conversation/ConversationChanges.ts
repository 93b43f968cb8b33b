/**
 * The store's side of what operators and routing do to a conversation: status (open, pending,
 * snoozed, resolved), assignment and transfer (with a compare-and-set for routing), private
 * notes (numbered like every message), and read marks.
 *
 * Status, assignment and notes are run by the conversation's actor (one writer per
 * conversation); a read mark is one atomic statement and needs no actor.
 */
import { sql } from "kysely"
import { Context, Effect, Layer, Option } from "effect"
import { newId } from "../../core/ids.ts"
import type { ConversationRow, ConversationUpdate } from "../../core/storage/ConversationTables.ts"
import { Database, type DatabaseError, type DatabaseShape } from "../../core/storage/Database.ts"
import type { Conversation } from "../../schemas/Conversation.ts"
import type { ConversationId, OperatorId, TeamId } from "../../schemas/Ids.ts"
import type { Note } from "../../schemas/Message.ts"
import { ResolvedMeanwhile, toConversation, toMessage } from "./ConversationRows.ts"

/** What to change; absent fields stay as they are. */
export interface ConversationChange {
  /** `snoozed` is `pending` with `snoozedUntil`. */
  readonly status?: "open" | "pending" | "snoozed" | "resolved"
  readonly snoozedUntil?: Date
  readonly assignee?: {
    readonly id: OperatorId | null
    /**
     * Compare-and-set: change only if the current assignee is this (`null`: nobody). Routing
     * uses it so a conversation someone took meanwhile is not taken from them.
     */
    readonly expect?: OperatorId | null
    /** Routing gives it back to the queue because this assignee left it unanswered. */
    readonly requeuedFrom?: OperatorId
  }
  readonly teamId?: TeamId | null
}

export type ChangeResult =
  | {
    readonly _tag: "Changed"
    readonly conversation: Conversation
    /** Names of the `Conversation` fields that changed. */
    readonly changed: ReadonlyArray<string>
  }
  | { readonly _tag: "Unchanged"; readonly conversation: Conversation }
  /** The compare-and-set failed: the assignee is not the expected one. */
  | { readonly _tag: "Conflict"; readonly conversation: Conversation }

export interface AppendNote {
  readonly conversationId: ConversationId
  readonly seq: number
  readonly authorId: OperatorId | null
  readonly text: string
  readonly mentions: ReadonlyArray<OperatorId>
  readonly clientId: string | undefined
}

export type AppendNoteResult =
  | { readonly _tag: "Stored"; readonly message: Note }
  | { readonly _tag: "Duplicate"; readonly message: Note }

export interface ConversationChangesShape {
  readonly change: (
    id: ConversationId,
    change: ConversationChange,
  ) => Effect.Effect<Option.Option<ChangeResult>, DatabaseError>
  readonly appendNote: (input: AppendNote) => Effect.Effect<AppendNoteResult, DatabaseError>
  /** The operator saw everything up to `seq`: unread counts the customer's later messages. */
  readonly markRead: (id: ConversationId, seq: number) => Effect.Effect<void, DatabaseError>
}

export class ConversationChanges extends Context.Tag("chorus/actors/ConversationChanges")<
  ConversationChanges,
  ConversationChangesShape
>() {}

const FIELD_OF: Partial<Record<keyof ConversationRow, string>> = {
  status: "status",
  snoozed_until: "snoozedUntil",
  resolved_at: "resolvedAt",
  assignee_id: "assigneeId",
  assigned_at: "assignedAt",
  team_id: "teamId",
}

/** The row update a change asks for, against the current row. */
const updateFor = (
  row: ConversationRow,
  change: ConversationChange,
  now: number,
): ConversationUpdate => {
  const update: ConversationUpdate = {}
  if (change.status !== undefined) {
    if (change.status === "snoozed") {
      update.status = "pending"
      update.snoozed_until = change.snoozedUntil?.getTime() ?? null
    } else {
      update.status = change.status
      update.snoozed_until = null
      if (change.status === "resolved") {
        update.resolved_at = now
        update.waiting_since = null
      }
    }
  }
  if (change.assignee !== undefined && change.assignee.id !== row.assignee_id) {
    update.assignee_id = change.assignee.id
    update.assigned_at = change.assignee.id === null ? null : now
    update.assignee_replied_at = null
    update.requeued_from = change.assignee.requeuedFrom ?? null
  }
  if (change.teamId !== undefined && change.teamId !== row.team_id) {
    update.team_id = change.teamId
  }
  return update
}

const sameValue = (a: unknown, b: unknown) =>
  (a === null || a === undefined) && (b === null || b === undefined)
    ? true
    : String(a) === String(b)

export const make: Effect.Effect<ConversationChangesShape, never, Database> = Effect.gen(
  function* () {
    const database: DatabaseShape = yield* Database

    const change = Effect.fn("ConversationChanges.change")(function* (
      id: ConversationId,
      wanted: ConversationChange,
    ) {
      return yield* database.transaction("change conversation", async (trx) => {
        const row = await trx.selectFrom("conversations").selectAll().where("id", "=", id)
          .executeTakeFirst()
        if (row === undefined) return Option.none<ChangeResult>()
        const expect = wanted.assignee?.expect
        if (expect !== undefined && (row.assignee_id ?? null) !== expect) {
          return Option.some<ChangeResult>({
            _tag: "Conflict",
            conversation: toConversation(row),
          })
        }
        const now = Date.now()
        const update = updateFor(row, wanted, now)
        const changedColumns = (Object.keys(update) as Array<keyof ConversationRow>).filter(
          (column) => !sameValue(update[column as keyof ConversationUpdate], row[column]),
        )
        const changed = [
          ...new Set(changedColumns.flatMap((c) => FIELD_OF[c] ?? [])),
        ]
        if (changed.length === 0) {
          return Option.some<ChangeResult>({ _tag: "Unchanged", conversation: toConversation(row) })
        }
        await trx.updateTable("conversations").set({ ...update, updated_at: now })
          .where("id", "=", id).execute()
        if (update.assignee_id !== undefined && update.assignee_id !== null) {
          await trx.updateTable("chorus_operators").set({ last_assigned_at: now })
            .where("id", "=", update.assignee_id).execute()
        }
        const after: ConversationRow = { ...row, ...update, updated_at: now } as ConversationRow
        return Option.some<ChangeResult>({
          _tag: "Changed",
          conversation: toConversation(after),
          changed,
        })
      })
    })

    const appendNote = Effect.fn("ConversationChanges.appendNote")(function* (input: AppendNote) {
      return yield* database.transaction("append note", async (trx) => {
        if (input.clientId !== undefined) {
          const existing = await trx.selectFrom("messages").selectAll()
            .where("conversation_id", "=", input.conversationId)
            .where("client_id", "=", input.clientId)
            .executeTakeFirst()
          if (existing !== undefined && existing.direction === "note") {
            return { _tag: "Duplicate", message: toMessage(existing) as Note } as AppendNoteResult
          }
        }
        const now = Date.now()
        const row = {
          id: newId.message(),
          conversation_id: input.conversationId,
          seq: input.seq,
          direction: "note",
          channel: null,
          account: null,
          identity_id: null,
          external_id: null,
          author_id: input.authorId,
          text: input.text,
          attachments: "[]",
          delivery_state: null,
          delivery_at: null,
          delivery_error: null,
          sent_at: null,
          received_at: null,
          created_at: now,
          client_id: input.clientId ?? null,
          delivery_attempts: 0,
          mentions: JSON.stringify(input.mentions),
          buttons: null,
          payload: null,
          fallback_of: null,
          fallback_to: null,
        }
        await trx.insertInto("messages").values(row).execute()
        const updated = await trx.updateTable("conversations")
          .set({ last_seq: input.seq, updated_at: now })
          .where("id", "=", input.conversationId).where("status", "!=", "resolved")
          .executeTakeFirst()
        // The actor refuses notes on a resolved conversation: another node's actor resolved it.
        if (Number(updated.numUpdatedRows) === 0) throw new ResolvedMeanwhile(input.conversationId)
        return { _tag: "Stored", message: toMessage(row) as Note } as AppendNoteResult
      })
    })

    const markRead = Effect.fn("ConversationChanges.markRead")(function* (
      id: ConversationId,
      seq: number,
    ) {
      yield* database.query("mark read", (db) =>
        db.updateTable("conversations")
          .set((eb) => ({
            unread_count: eb.selectFrom("messages")
              .select((m) => m.fn.countAll<number>().as("n"))
              .where("conversation_id", "=", id)
              .where("direction", "=", sql.lit("in"))
              .where("seq", ">", seq),
          }))
          .where("id", "=", id)
          .execute())
    })

    return { change, appendNote, markRead } satisfies ConversationChangesShape
  },
)

export const layer = Layer.effect(ConversationChanges, make)
