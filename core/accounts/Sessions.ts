/**
 * Sign-in sessions for the operator web inbox.
 *
 * `signIn` checks the throttle first, then the password (scrypt; an unknown e-mail costs the
 * same time), then the TOTP code when the operator has one, and answers a token for the
 * session cookie plus the session's details. The token is `chs_` and 32 random bytes in
 * base64url; only its SHA-256 (hex) is stored, as the row id, so a copy of the table signs
 * nobody in. Each session also has a CSRF token (32 random bytes) the browser sends back as
 * `X-CSRF-Token` on every change.
 *
 * A session ends after `idleTimeout` without requests (default 12 hours; each request moves
 * the end, writing `last_seen_at` at most once a minute) and at the latest `absoluteTimeout`
 * after sign-in (default 7 days).
 *
 * A TOTP code's time step is accepted once per operator (`chorus_operators.totp_last_step`,
 * written with a conditional update so every node refuses a replay).
 *
 * ```ts
 * const sessions = yield* Sessions
 * const { token, info } = yield* sessions.signIn({ email, password, address: "203.0.113.7" })
 * // Set-Cookie: chorus_session=<Redacted.value(token)>; HttpOnly; Secure; SameSite=Lax
 * const { operator } = yield* sessions.verify(cookieValue) // InvalidSession → 401
 * ```
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto"
import { Clock, Context, Duration, Effect, Layer, Redacted } from "effect"
import type { OperatorId, SessionId } from "../../schemas/Ids.ts"
import type { Operator, SessionInfo } from "../../schemas/Operator.ts"
import { newId } from "../ids.ts"
import { Database, type DatabaseError } from "../storage/Database.ts"
import {
  InvalidCredentials,
  InvalidSession,
  InvalidTotpCode,
  type LoginThrottled,
  TotpRequired,
} from "./AccountErrors.ts"
import type { SessionRow } from "./AccountTables.ts"
import { LoginThrottle, throttleKeys } from "./LoginThrottle.ts"
import { claimTotpStep, loadOperator, teamIdsOf, toOperator } from "./OperatorRecords.ts"
import { Passwords } from "./Passwords.ts"
import { SessionCache } from "./SessionCache.ts"
import * as Totp from "./Totp.ts"

const TOKEN_PREFIX = "chs_"
const TOKEN_FORMAT = /^chs_[A-Za-z0-9_-]{43}$/
/** `last_seen_at` (and the idle expiry) is moved when it is older than this. */
const TOUCH_INTERVAL_MS = 60_000
/** Expired rows are deleted at most this often per process. */
const SWEEP_INTERVAL_MS = 10 * 60_000
const MAX_USER_AGENT = 512
const MAX_ADDRESS = 64

export interface SessionsOptions {
  /** A session ends after this long without a request. Default 12 hours. */
  readonly idleTimeout?: Duration.DurationInput
  /** A session ends this long after sign-in, however active. Default 7 days. */
  readonly absoluteTimeout?: Duration.DurationInput
}

export interface SignInInput {
  readonly email: string
  readonly password: string
  /** The 6-digit code, when the operator has TOTP. */
  readonly totp?: string | undefined
  /** For the operator's list of sessions. */
  readonly userAgent?: string | undefined
  /** The client's IP address: throttled as a key of its own, and listed. */
  readonly address?: string | undefined
}

export interface SignedIn {
  /** The cookie's value, shown this once. */
  readonly token: Redacted.Redacted<string>
  readonly info: SessionInfo
}

export interface VerifiedSession {
  readonly info: SessionInfo
  readonly operator: Operator
}

/** A session as its operator sees it in "where you are signed in"; never a token. */
export interface SessionSummary {
  readonly id: SessionId
  readonly createdAt: Date
  readonly lastSeenAt: Date
  readonly expiresAt: Date
  readonly userAgent: string | null
  readonly address: string | null
}

export interface SessionsShape {
  readonly signIn: (
    input: SignInInput,
  ) => Effect.Effect<
    SignedIn,
    InvalidCredentials | TotpRequired | InvalidTotpCode | LoginThrottled | DatabaseError
  >
  /** The session of a cookie's token; `InvalidSession` if unknown, expired or its operator is disabled. */
  readonly verify: (token: string) => Effect.Effect<VerifiedSession, InvalidSession | DatabaseError>
  /** Ends one session; false if there was none with this id. */
  readonly signOut: (sessionId: SessionId) => Effect.Effect<boolean, DatabaseError>
  /** Ends every session of the operator; answers how many there were. */
  readonly signOutEverywhere: (operatorId: OperatorId) => Effect.Effect<number, DatabaseError>
  /** The operator's live sessions, most recently seen first. */
  readonly list: (
    operatorId: OperatorId,
  ) => Effect.Effect<ReadonlyArray<SessionSummary>, DatabaseError>
}

const sha256 = (token: string): string => createHash("sha256").update(token, "utf8").digest("hex")

/** Whether the CSRF token a request sent is the session's, compared in constant time. */
export const csrfMatches = (info: SessionInfo, given: string | undefined): boolean => {
  if (given === undefined) return false
  const expected = Buffer.from(info.csrfToken)
  const actual = Buffer.from(given)
  return expected.length === actual.length && timingSafeEqual(expected, actual)
}

const clip = (value: string | undefined, max: number): string | null =>
  value === undefined || value === "" ? null : value.slice(0, max)

export const make = (options: SessionsOptions = {}) =>
  Effect.gen(function* () {
    const database = yield* Database
    const passwords = yield* Passwords
    const throttle = yield* LoginThrottle
    const cache = yield* SessionCache
    const idleMs = Duration.toMillis(options.idleTimeout ?? "12 hours")
    const absoluteMs = Duration.toMillis(options.absoluteTimeout ?? "7 days")
    let sweptAt = -Infinity

    const infoOf = (row: SessionRow, operator: Operator): SessionInfo => ({
      sessionId: row.public_id as SessionId,
      operator,
      csrfToken: row.csrf_token,
      expiresAt: new Date(Number(row.expires_at)),
    })

    const sweep = (now: number) =>
      now - sweptAt < SWEEP_INTERVAL_MS ? Effect.void : Effect.gen(function* () {
        sweptAt = now
        yield* database.query(
          "sessions.sweep",
          (db) => db.deleteFrom("chorus_sessions").where("expires_at", "<=", now).execute(),
        ).pipe(Effect.ignore)
      })

    const signIn = Effect.fn("Sessions.signIn")(function* (input: SignInInput) {
      const email = input.email.trim().toLowerCase()
      const keys = throttleKeys(email, input.address)
      yield* throttle.check(keys)
      const row = email === "" ? undefined : yield* database.query(
        "sessions.credentials",
        (db) =>
          db.selectFrom("chorus_operators").selectAll().where("email", "=", email)
            .executeTakeFirst(),
      )
      const passwordOk = row === undefined
        ? yield* passwords.verifyNobody(input.password)
        : yield* passwords.verify(input.password, row.password_hash)
      if (row === undefined || !passwordOk || Number(row.disabled) === 1) {
        yield* throttle.recordFailure(keys)
        return yield* new InvalidCredentials()
      }
      const now = yield* Clock.currentTimeMillis
      if (Number(row.totp_enabled) === 1 && row.totp_secret !== null) {
        if (input.totp === undefined || input.totp.trim() === "") return yield* new TotpRequired()
        const step = Totp.verifyCode(row.totp_secret, input.totp, now)
        const fresh = step !== undefined && (yield* claimTotpStep(database, row.id, step))
        if (!fresh) {
          yield* throttle.recordFailure(keys)
          return yield* new InvalidTotpCode()
        }
      }
      yield* throttle.recordSuccess(keys)
      yield* sweep(now)
      const token = TOKEN_PREFIX + randomBytes(32).toString("base64url")
      const session: SessionRow = {
        id: sha256(token),
        public_id: newId.session(),
        operator_id: row.id,
        csrf_token: randomBytes(32).toString("base64url"),
        created_at: now,
        last_seen_at: now,
        expires_at: Math.min(now + idleMs, now + absoluteMs),
        user_agent: clip(input.userAgent, MAX_USER_AGENT),
        address: clip(input.address, MAX_ADDRESS),
      }
      yield* database.query(
        "sessions.insert",
        (db) => db.insertInto("chorus_sessions").values(session).execute(),
      )
      const teams = yield* teamIdsOf(database, [row.id])
      return {
        token: Redacted.make(token),
        info: infoOf(session, toOperator(row, teams.get(row.id) ?? [])),
      } satisfies SignedIn
    })

    // No span: verify runs on every request of the inbox.
    const verify = Effect.fnUntraced(function* (token: string) {
      if (!TOKEN_FORMAT.test(token)) return yield* new InvalidSession({ reason: "malformed" })
      const hash = sha256(token)
      const now = yield* Clock.currentTimeMillis
      const cached = cache.get(hash, now)
      if (cached !== undefined && now - cached.lastSeenAt < TOUCH_INTERVAL_MS) {
        return { info: cached.info, operator: cached.operator } satisfies VerifiedSession
      }
      const row = yield* database.query(
        "sessions.verify",
        (db) =>
          db.selectFrom("chorus_sessions").selectAll().where("id", "=", hash).executeTakeFirst(),
      )
      if (row === undefined) return yield* new InvalidSession({ reason: "unknown" })
      if (Number(row.expires_at) <= now) {
        yield* database.query(
          "sessions.expire",
          (db) => db.deleteFrom("chorus_sessions").where("id", "=", hash).execute(),
        )
        return yield* new InvalidSession({ reason: "expired" })
      }
      const operator = yield* loadOperator(database, row.operator_id)
      if (operator === undefined || operator.disabled) {
        return yield* new InvalidSession({ reason: "operator disabled" })
      }
      let current = row
      if (now - Number(row.last_seen_at) >= TOUCH_INTERVAL_MS) {
        const expiresAt = Math.min(now + idleMs, Number(row.created_at) + absoluteMs)
        current = { ...row, last_seen_at: now, expires_at: expiresAt }
        // A failed touch must not fail the request; the session just expires a bit earlier.
        yield* database.query(
          "sessions.touch",
          (db) =>
            db.updateTable("chorus_sessions").set({ last_seen_at: now, expires_at: expiresAt })
              .where("id", "=", hash).execute(),
        ).pipe(
          Effect.tapError((e) => Effect.logWarning("session last_seen_at not updated", e.message)),
          Effect.ignore,
        )
      }
      const info = infoOf(current, operator)
      cache.set(hash, {
        info,
        operator,
        at: now,
        lastSeenAt: Number(current.last_seen_at),
        createdAt: Number(current.created_at),
      })
      return { info, operator } satisfies VerifiedSession
    })

    const signOut = Effect.fn("Sessions.signOut")(function* (sessionId: SessionId) {
      const result = yield* database.query(
        "sessions.sign_out",
        (db) =>
          db.deleteFrom("chorus_sessions").where("public_id", "=", sessionId).executeTakeFirst(),
      )
      cache.dropSession(sessionId)
      return result.numDeletedRows > 0n
    })

    const signOutEverywhere = Effect.fn("Sessions.signOutEverywhere")(
      function* (operatorId: OperatorId) {
        const result = yield* database.query(
          "sessions.sign_out_everywhere",
          (db) =>
            db.deleteFrom("chorus_sessions").where("operator_id", "=", operatorId)
              .executeTakeFirst(),
        )
        cache.dropOperator(operatorId)
        return Number(result.numDeletedRows)
      },
    )

    const list = Effect.fn("Sessions.list")(function* (operatorId: OperatorId) {
      const now = yield* Clock.currentTimeMillis
      const rows = yield* database.query(
        "sessions.list",
        (db) =>
          db.selectFrom("chorus_sessions")
            .select([
              "public_id",
              "created_at",
              "last_seen_at",
              "expires_at",
              "user_agent",
              "address",
            ])
            .where("operator_id", "=", operatorId).where("expires_at", ">", now)
            .orderBy("last_seen_at", "desc").orderBy("public_id").execute(),
      )
      return rows.map((r): SessionSummary => ({
        id: r.public_id as SessionId,
        createdAt: new Date(Number(r.created_at)),
        lastSeenAt: new Date(Number(r.last_seen_at)),
        expiresAt: new Date(Number(r.expires_at)),
        userAgent: r.user_agent,
        address: r.address,
      }))
    })

    return { signIn, verify, signOut, signOutEverywhere, list } satisfies SessionsShape
  })

export class Sessions extends Context.Tag("chorus/core/accounts/Sessions")<
  Sessions,
  SessionsShape
>() {
  /** Needs `Database`, `Passwords`, `LoginThrottle` and the process's `SessionCache`. */
  static readonly layer = (
    options: SessionsOptions = {},
  ): Layer.Layer<Sessions, never, Database | Passwords | LoginThrottle | SessionCache> =>
    Layer.effect(Sessions, make(options))
}
