/**
 * Operators: the people who work in the inbox. Add, read, update (role, capacity, presence,
 * disabling), set a password, and enrol in TOTP two-factor sign-in.
 *
 * Guard rails: e-mails are unique, lower-cased and trimmed; the last enabled admin cannot be
 * demoted or disabled (`LastAdmin`: nobody could manage people any more); disabling an operator
 * or setting their password ends all their sessions at once.
 *
 * ```ts
 * const operators = yield* Operators
 * const ann = yield* operators.add({
 *   email: "ann@example.com", name: "Ann", role: "admin", password: "correct horse battery",
 * }) // capacity defaults to 6, locale to "en"
 * ```
 */
import { Clock, Context, Effect, Layer, Option } from "effect"
import type { OperatorId } from "../../schemas/Ids.ts"
import {
  Capacity,
  DEFAULT_CAPACITY,
  Locale,
  type Operator,
  OperatorName,
  Presence,
  Role,
} from "../../schemas/Operator.ts"
import { newId } from "../ids.ts"
import { Database, type DatabaseError } from "../storage/Database.ts"
import {
  type InvalidAccountInput,
  InvalidTotpCode,
  LastAdmin,
  OperatorEmailTaken,
  OperatorNotFound,
  TotpState,
  type WeakPassword,
} from "./AccountErrors.ts"
import type { OperatorRow } from "./AccountTables.ts"
import {
  claimTotpStep,
  decodeField,
  isUniqueViolation,
  loadOperator,
  normalizeEmail,
  teamIdsOf,
  toOperator,
} from "./OperatorRecords.ts"
import { Passwords } from "./Passwords.ts"
import { SessionCache } from "./SessionCache.ts"
import * as Totp from "./Totp.ts"

export interface NewOperatorInput {
  readonly email: string
  readonly name: string
  readonly role: Role
  readonly password: string
  /** Default 6 (`DEFAULT_CAPACITY`). */
  readonly capacity?: number | undefined
  /** Default "en". */
  readonly locale?: Locale | undefined
}

export interface OperatorPatch {
  readonly name?: string | undefined
  readonly role?: Role | undefined
  readonly capacity?: number | undefined
  readonly locale?: Locale | undefined
  readonly disabled?: boolean | undefined
  readonly presence?: Presence | undefined
}

export interface TotpEnrolment {
  /** Base32, for typing into an app by hand. */
  readonly secret: string
  /** `otpauth://…`, for a QR code. */
  readonly uri: string
}

export interface OperatorsShape {
  readonly add: (
    input: NewOperatorInput,
  ) => Effect.Effect<
    Operator,
    OperatorEmailTaken | WeakPassword | InvalidAccountInput | DatabaseError
  >
  readonly get: (id: OperatorId) => Effect.Effect<Option.Option<Operator>, DatabaseError>
  /** By e-mail, compared lower-cased and trimmed. */
  readonly byEmail: (email: string) => Effect.Effect<Option.Option<Operator>, DatabaseError>
  /** Everyone, by name. */
  readonly list: () => Effect.Effect<ReadonlyArray<Operator>, DatabaseError>
  readonly update: (
    id: OperatorId,
    patch: OperatorPatch,
  ) => Effect.Effect<Operator, OperatorNotFound | LastAdmin | InvalidAccountInput | DatabaseError>
  /** Sets the password and ends all the operator's sessions. */
  readonly setPassword: (
    id: OperatorId,
    password: string,
  ) => Effect.Effect<void, OperatorNotFound | WeakPassword | DatabaseError>
  /** Whether `password` is the operator's (for changing one's own password). */
  readonly checkPassword: (
    id: OperatorId,
    password: string,
  ) => Effect.Effect<boolean, OperatorNotFound | DatabaseError>
  /** Starts TOTP enrolment: a new secret is stored, not yet required at sign-in. */
  readonly beginTotp: (
    id: OperatorId,
  ) => Effect.Effect<TotpEnrolment, OperatorNotFound | TotpState | DatabaseError>
  /** Enables TOTP once the operator shows a code from their app. */
  readonly confirmTotp: (
    id: OperatorId,
    code: string,
  ) => Effect.Effect<Operator, OperatorNotFound | TotpState | InvalidTotpCode | DatabaseError>
  /** Turns TOTP off, with a current code as proof. */
  readonly disableTotp: (
    id: OperatorId,
    code: string,
  ) => Effect.Effect<Operator, OperatorNotFound | TotpState | InvalidTotpCode | DatabaseError>
  /** Admin recovery (a lost phone): turns TOTP off without a code. */
  readonly resetTotp: (id: OperatorId) => Effect.Effect<Operator, OperatorNotFound | DatabaseError>
}

export const make = Effect.gen(function* () {
  const database = yield* Database
  const passwords = yield* Passwords
  const cache = yield* SessionCache
  const postgres = database.dialect === "postgres"

  const row = (id: string) =>
    database.query(
      "operators.row",
      (db) => db.selectFrom("chorus_operators").selectAll().where("id", "=", id).executeTakeFirst(),
    ).pipe(
      Effect.flatMap((r) =>
        r === undefined ? Effect.fail(new OperatorNotFound({ operator: id })) : Effect.succeed(r)
      ),
    )

  const reload = (id: string) =>
    loadOperator(database, id).pipe(
      Effect.flatMap((o) =>
        o === undefined ? Effect.fail(new OperatorNotFound({ operator: id })) : Effect.succeed(o)
      ),
    )

  const add = Effect.fn("Operators.add")(function* (input: NewOperatorInput) {
    const email = yield* normalizeEmail(input.email)
    const name = yield* decodeField(OperatorName, "name", input.name)
    const role = yield* decodeField(Role, "role", input.role)
    const capacity = yield* decodeField(Capacity, "capacity", input.capacity ?? DEFAULT_CAPACITY)
    const locale = yield* decodeField(Locale, "locale", input.locale ?? "en")
    const taken = yield* database.query(
      "operators.email_taken",
      (db) =>
        db.selectFrom("chorus_operators").select("id").where("email", "=", email)
          .executeTakeFirst(),
    )
    if (taken !== undefined) return yield* new OperatorEmailTaken({ email })
    const passwordHash = yield* passwords.hash(input.password)
    const now = yield* Clock.currentTimeMillis
    const inserted: OperatorRow = {
      id: newId.operator(),
      email,
      name,
      role,
      password_hash: passwordHash,
      totp_secret: null,
      totp_enabled: 0,
      totp_last_step: null,
      presence: "offline",
      capacity,
      locale,
      disabled: 0,
      created_at: now,
      updated_at: now,
      last_assigned_at: null,
    }
    yield* database.query(
      "operators.insert",
      (db) => db.insertInto("chorus_operators").values(inserted).execute(),
    ).pipe(
      // Two adds racing for one e-mail: the unique index decides.
      Effect.catchIf((e) => isUniqueViolation(e.cause), () => new OperatorEmailTaken({ email })),
    )
    return toOperator(inserted, [])
  })

  const get = Effect.fn("Operators.get")(function* (id: OperatorId) {
    return Option.fromNullable(yield* loadOperator(database, id))
  })

  const byEmail = Effect.fn("Operators.byEmail")(function* (email: string) {
    const normalized = email.trim().toLowerCase()
    const found = yield* database.query(
      "operators.by_email",
      (db) =>
        db.selectFrom("chorus_operators").selectAll().where("email", "=", normalized)
          .executeTakeFirst(),
    )
    if (found === undefined) return Option.none()
    const teams = yield* teamIdsOf(database, [found.id])
    return Option.some(toOperator(found, teams.get(found.id) ?? []))
  })

  const list = Effect.fn("Operators.list")(function* () {
    const rows = yield* database.query(
      "operators.list",
      (db) => db.selectFrom("chorus_operators").selectAll().orderBy("name").orderBy("id").execute(),
    )
    const teams = yield* teamIdsOf(database)
    return rows.map((r) => toOperator(r, teams.get(r.id) ?? []))
  })

  const update = Effect.fn("Operators.update")(function* (id: OperatorId, patch: OperatorPatch) {
    const set: Partial<
      Pick<OperatorRow, "name" | "role" | "capacity" | "locale" | "disabled" | "presence">
    > = {}
    if (patch.name !== undefined) set.name = yield* decodeField(OperatorName, "name", patch.name)
    if (patch.role !== undefined) set.role = yield* decodeField(Role, "role", patch.role)
    if (patch.capacity !== undefined) {
      set.capacity = yield* decodeField(Capacity, "capacity", patch.capacity)
    }
    if (patch.locale !== undefined) set.locale = yield* decodeField(Locale, "locale", patch.locale)
    if (patch.presence !== undefined) {
      set.presence = yield* decodeField(Presence, "presence", patch.presence)
    }
    if (patch.disabled !== undefined) set.disabled = patch.disabled ? 1 : 0
    const now = yield* Clock.currentTimeMillis
    const mayRemoveAdmin = (set.role !== undefined && set.role !== "admin") || set.disabled === 1
    const outcome = yield* database.transaction("operators.update", async (trx) => {
      // On PostgreSQL, two demotions racing would each see the other admin and both succeed.
      // So a change that may remove an admin first locks every enabled admin's row, always in
      // id order (no deadlock); the second then waits, and sees the first one's result.
      // SQLite runs one writing transaction at a time.
      if (postgres && mayRemoveAdmin) {
        await trx.selectFrom("chorus_operators").select("id")
          .where("role", "=", "admin").where("disabled", "=", 0)
          .orderBy("id").forUpdate().execute()
      }
      const current = await trx.selectFrom("chorus_operators").selectAll().where("id", "=", id)
        .$if(postgres, (q) => q.forUpdate()).executeTakeFirst()
      if (current === undefined) return "not found" as const
      const isEnabledAdmin = current.role === "admin" && Number(current.disabled) === 0
      const staysEnabledAdmin = (set.role ?? current.role) === "admin" &&
        (set.disabled ?? Number(current.disabled)) === 0
      if (isEnabledAdmin && !staysEnabledAdmin) {
        const others = await trx.selectFrom("chorus_operators").select("id")
          .where("role", "=", "admin").where("disabled", "=", 0).where("id", "!=", id)
          .execute()
        if (others.length === 0) return { lastAdmin: current.email }
      }
      await trx.updateTable("chorus_operators").set({ ...set, updated_at: now })
        .where("id", "=", id).execute()
      if (set.disabled === 1) {
        await trx.deleteFrom("chorus_sessions").where("operator_id", "=", id).execute()
      }
      return "updated" as const
    })
    // Role, teams or disabling may change what a session may do: no cached answer survives.
    cache.dropOperator(id)
    if (outcome === "not found") return yield* new OperatorNotFound({ operator: id })
    if (typeof outcome === "object") return yield* new LastAdmin({ operator: outcome.lastAdmin })
    return yield* reload(id)
  })

  const endSessions = (id: string) =>
    database.query(
      "operators.end_sessions",
      (db) => db.deleteFrom("chorus_sessions").where("operator_id", "=", id).execute(),
    ).pipe(Effect.zipRight(Effect.sync(() => cache.dropOperator(id))))

  const setPassword = Effect.fn("Operators.setPassword")(
    function* (id: OperatorId, password: string) {
      yield* row(id)
      const passwordHash = yield* passwords.hash(password)
      const now = yield* Clock.currentTimeMillis
      const result = yield* database.query(
        "operators.set_password",
        (db) =>
          db.updateTable("chorus_operators").set({ password_hash: passwordHash, updated_at: now })
            .where("id", "=", id).executeTakeFirst(),
      )
      if (result.numUpdatedRows === 0n) return yield* new OperatorNotFound({ operator: id })
      yield* endSessions(id)
    },
  )

  const checkPassword = Effect.fn("Operators.checkPassword")(
    function* (id: OperatorId, password: string) {
      const current = yield* row(id)
      return yield* passwords.verify(password, current.password_hash)
    },
  )

  const beginTotp = Effect.fn("Operators.beginTotp")(function* (id: OperatorId) {
    const current = yield* row(id)
    if (Number(current.totp_enabled) === 1) {
      return yield* new TotpState({ state: "already enabled" })
    }
    const secret = Totp.newSecret()
    const now = yield* Clock.currentTimeMillis
    yield* database.query(
      "operators.totp_begin",
      (db) =>
        db.updateTable("chorus_operators")
          .set({ totp_secret: secret, totp_last_step: null, updated_at: now })
          .where("id", "=", id).where("totp_enabled", "=", 0).execute(),
    )
    return { secret, uri: Totp.otpauthUri({ secret, account: current.email, issuer: "Chorus" }) }
  })

  /** Checks `code` against the operator's secret and uses up its time step. */
  const useCode = (current: OperatorRow, code: string) =>
    Effect.gen(function* () {
      const now = yield* Clock.currentTimeMillis
      const step = current.totp_secret === null
        ? undefined
        : Totp.verifyCode(current.totp_secret, code, now)
      if (step === undefined) return yield* new InvalidTotpCode()
      if (!(yield* claimTotpStep(database, current.id, step))) return yield* new InvalidTotpCode()
      return now
    })

  const confirmTotp = Effect.fn("Operators.confirmTotp")(function* (id: OperatorId, code: string) {
    const current = yield* row(id)
    if (Number(current.totp_enabled) === 1) {
      return yield* new TotpState({ state: "already enabled" })
    }
    if (current.totp_secret === null) return yield* new TotpState({ state: "not started" })
    const now = yield* useCode(current, code)
    yield* database.query(
      "operators.totp_enable",
      (db) =>
        db.updateTable("chorus_operators").set({ totp_enabled: 1, updated_at: now })
          .where("id", "=", id).where("totp_secret", "=", current.totp_secret).execute(),
    )
    cache.dropOperator(id)
    return yield* reload(id)
  })

  const clearTotp = (id: string, now: number) =>
    database.query(
      "operators.totp_clear",
      (db) =>
        db.updateTable("chorus_operators")
          .set({ totp_enabled: 0, totp_secret: null, totp_last_step: null, updated_at: now })
          .where("id", "=", id).execute(),
    ).pipe(Effect.zipRight(Effect.sync(() => cache.dropOperator(id))))

  const disableTotp = Effect.fn("Operators.disableTotp")(function* (id: OperatorId, code: string) {
    const current = yield* row(id)
    if (Number(current.totp_enabled) !== 1) return yield* new TotpState({ state: "not enabled" })
    const now = yield* useCode(current, code)
    yield* clearTotp(id, now)
    return yield* reload(id)
  })

  const resetTotp = Effect.fn("Operators.resetTotp")(function* (id: OperatorId) {
    yield* row(id)
    yield* clearTotp(id, yield* Clock.currentTimeMillis)
    return yield* reload(id)
  })

  return {
    add,
    get,
    byEmail,
    list,
    update,
    setPassword,
    checkPassword,
    beginTotp,
    confirmTotp,
    disableTotp,
    resetTotp,
  } satisfies OperatorsShape
})

export class Operators extends Context.Tag("chorus/core/accounts/Operators")<
  Operators,
  OperatorsShape
>() {
  /** Needs `Database`, `Passwords` and the process's `SessionCache` (see `AccountsLive`). */
  static readonly layer: Layer.Layer<Operators, never, Database | Passwords | SessionCache> = Layer
    .effect(Operators, make)
}
