/**
 * Canned answers: saved replies with a short code (`/refund` in the reply box), shared by
 * everyone or by one team. Short codes are unique.
 */
import { Context, Data, Effect, Layer } from "effect"
import { newId } from "../ids.ts"
import type { CannedResponseRow } from "../accounts/AccountTables.ts"
import { Database, type DatabaseError } from "../storage/Database.ts"
import type { CannedResponse } from "../../schemas/Inbox.ts"
import type { CannedResponseId, OperatorId, TeamId } from "../../schemas/Ids.ts"

export class ShortCodeTaken
  extends Data.TaggedError("ShortCodeTaken")<{ readonly shortCode: string }> {
  override get message() {
    return `a canned answer with the short code ${JSON.stringify(this.shortCode)} exists`
  }
}

export interface CannedResponsesShape {
  /** Everyone's, plus those of `teamIds` (all of them when `teamIds` is "all"). */
  readonly list: (
    teamIds: ReadonlyArray<TeamId> | "all",
  ) => Effect.Effect<ReadonlyArray<CannedResponse>, DatabaseError>
  readonly create: (input: {
    readonly shortCode: string
    readonly text: string
    readonly teamId: TeamId | null
    readonly createdBy: OperatorId | null
  }) => Effect.Effect<CannedResponse, ShortCodeTaken | DatabaseError>
  /** Whether it existed. */
  readonly remove: (id: CannedResponseId) => Effect.Effect<boolean, DatabaseError>
  readonly get: (id: CannedResponseId) => Effect.Effect<CannedResponse | undefined, DatabaseError>
}

export class CannedResponses extends Context.Tag("chorus/core/inbox/CannedResponses")<
  CannedResponses,
  CannedResponsesShape
>() {}

const toCanned = (row: CannedResponseRow): CannedResponse => ({
  id: row.id as CannedResponseId,
  shortCode: row.short_code,
  text: row.text,
  teamId: row.team_id as TeamId | null,
  createdAt: new Date(Number(row.created_at)),
})

export const make = Effect.gen(function* () {
  const database = yield* Database

  const list = Effect.fn("CannedResponses.list")(function* (
    teamIds: ReadonlyArray<TeamId> | "all",
  ) {
    const rows = yield* database.query("canned responses", (db) => {
      let q = db.selectFrom("chorus_canned_responses").selectAll()
      if (teamIds !== "all") {
        q = q.where((eb) =>
          eb.or([
            eb("team_id", "is", null),
            ...(teamIds.length > 0 ? [eb("team_id", "in", [...teamIds])] : []),
          ])
        )
      }
      return q.orderBy("short_code").execute()
    })
    return rows.map(toCanned)
  })

  const create = Effect.fn("CannedResponses.create")(function* (input: {
    readonly shortCode: string
    readonly text: string
    readonly teamId: TeamId | null
    readonly createdBy: OperatorId | null
  }) {
    const now = Date.now()
    const row: CannedResponseRow = {
      id: newId.cannedResponse(),
      short_code: input.shortCode,
      text: input.text,
      team_id: input.teamId,
      created_by: input.createdBy,
      created_at: now,
      updated_at: now,
    }
    const inserted = yield* database.transaction("create canned response", async (trx) => {
      const taken = await trx.selectFrom("chorus_canned_responses").select("id")
        .where("short_code", "=", input.shortCode).executeTakeFirst()
      if (taken !== undefined) return false
      await trx.insertInto("chorus_canned_responses").values(row).execute()
      return true
    })
    if (!inserted) return yield* new ShortCodeTaken({ shortCode: input.shortCode })
    return toCanned(row)
  })

  const remove = Effect.fn("CannedResponses.remove")(function* (id: CannedResponseId) {
    const result = yield* database.query(
      "delete canned response",
      (db) => db.deleteFrom("chorus_canned_responses").where("id", "=", id).executeTakeFirst(),
    )
    return Number(result.numDeletedRows) > 0
  })

  const get = Effect.fn("CannedResponses.get")(function* (id: CannedResponseId) {
    const row = yield* database.query(
      "get canned response",
      (db) =>
        db.selectFrom("chorus_canned_responses").selectAll().where("id", "=", id)
          .executeTakeFirst(),
    )
    return row === undefined ? undefined : toCanned(row)
  })

  return { list, create, remove, get } satisfies CannedResponsesShape
})

export const layer = Layer.effect(CannedResponses, make)
