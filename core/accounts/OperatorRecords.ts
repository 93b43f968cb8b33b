/**
 * Reading operators out of their rows, shared by `Operators`, `Teams` and `Sessions`
 * (internal: not exported from mod.ts).
 */
import { Effect, Schema } from "effect"
import type { OperatorId, TeamId } from "../../schemas/Ids.ts"
import { Locale, type Operator, OperatorEmail, Presence, Role } from "../../schemas/Operator.ts"
import type { DatabaseShape } from "../storage/Database.ts"
import { InvalidAccountInput } from "./AccountErrors.ts"
import type { OperatorRow } from "./AccountTables.ts"

/** Rows store what the schemas allow (the services write them); a foreign value falls back. */
const oneOf = <const T extends string>(value: string, allowed: ReadonlyArray<T>, fallback: T): T =>
  (allowed as ReadonlyArray<string>).includes(value) ? (value as T) : fallback

export const toOperator = (row: OperatorRow, teamIds: ReadonlyArray<string>): Operator => ({
  id: row.id as OperatorId,
  email: row.email,
  name: row.name,
  role: oneOf(row.role, Role.literals, "operator"),
  presence: oneOf(row.presence, Presence.literals, "offline"),
  capacity: Number(row.capacity),
  locale: oneOf(row.locale, Locale.literals, "en"),
  totpEnabled: Number(row.totp_enabled) === 1,
  disabled: Number(row.disabled) === 1,
  teamIds: teamIds as ReadonlyArray<TeamId>,
  createdAt: new Date(Number(row.created_at)),
})

/** Team ids of each operator in `operatorIds` (all operators when undefined), sorted. */
export const teamIdsOf = (database: DatabaseShape, operatorIds?: ReadonlyArray<string>) =>
  database.query("accounts.team_ids", (db) => {
    let q = db.selectFrom("chorus_team_members").select(["operator_id", "team_id"])
      .orderBy("team_id")
    if (operatorIds !== undefined) {
      if (operatorIds.length === 0) return Promise.resolve([])
      q = q.where("operator_id", "in", operatorIds)
    }
    return q.execute()
  }).pipe(
    Effect.map((rows) => {
      const byOperator = new Map<string, Array<string>>()
      for (const r of rows) {
        const list = byOperator.get(r.operator_id)
        if (list === undefined) byOperator.set(r.operator_id, [r.team_id])
        else list.push(r.team_id)
      }
      return byOperator
    }),
  )

/** The operator with this id, with their teams, or undefined. */
export const loadOperator = (database: DatabaseShape, id: string) =>
  Effect.gen(function* () {
    const row = yield* database.query(
      "operators.get",
      (db) => db.selectFrom("chorus_operators").selectAll().where("id", "=", id).executeTakeFirst(),
    )
    if (row === undefined) return undefined
    const teams = yield* teamIdsOf(database, [id])
    return toOperator(row, teams.get(id) ?? [])
  })

/** `email` lower-cased and trimmed, or `InvalidAccountInput`. */
export const normalizeEmail = (email: string) =>
  Schema.decodeUnknown(OperatorEmail)(email).pipe(
    Effect.mapError((e) =>
      new InvalidAccountInput({ field: "e-mail", detail: lastLine(e.message) })
    ),
  )

/** The last line of a ParseError's message: the part that says what was expected. */
export const lastLine = (message: string): string => message.split("\n").pop()!.trim()

export const decodeField = <A, I>(schema: Schema.Schema<A, I>, field: string, value: unknown) =>
  Schema.decodeUnknown(schema)(value).pipe(
    Effect.mapError((e) => new InvalidAccountInput({ field, detail: lastLine(e.message) })),
  )

/**
 * Marks TOTP `step` used by the operator unless it (or a later one) already was: one
 * conditional update, so two nodes racing with one code let only one through.
 */
export const claimTotpStep = (database: DatabaseShape, operatorId: string, step: number) =>
  database.query(
    "operators.totp_step",
    (db) =>
      db.updateTable("chorus_operators").set({ totp_last_step: step })
        .where("id", "=", operatorId)
        .where((eb) => eb.or([eb("totp_last_step", "is", null), eb("totp_last_step", "<", step)]))
        .executeTakeFirst(),
  ).pipe(Effect.map((r) => r.numUpdatedRows > 0n))

export const isUniqueViolation = (cause: unknown): boolean => {
  const code = (cause as { code?: unknown } | null)?.code
  return code === "SQLITE_CONSTRAINT_UNIQUE" || code === "SQLITE_CONSTRAINT_PRIMARYKEY" ||
    code === "23505"
}
