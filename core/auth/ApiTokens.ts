/**
 * API bearer tokens: create, verify, list, revoke.
 *
 * A token is `chorus_` followed by 43 base-62 characters (32 random bytes), e.g.
 * `chorus_4hT9…`. Only its SHA-256 hash is stored (why not a slow hash: see the migration
 * 2026_11_23_0002_api_tokens.ts), with its first 8 secret characters as a non-secret `prefix`.
 * Verification looks rows up by that prefix and compares the hashes with `timingSafeEqual`, so
 * neither the database index nor the comparison reveals, through timing, how close a guess was.
 *
 * `last_used_at` is written at most once a minute per token (and process): a write per request
 * would cost an fsync per API call on SQLite for a value nobody needs to the second.
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto"
import { Clock, Data, Effect, Option, Redacted, Schema } from "effect"
import { type ApiTokenInfo, ApiTokenName } from "../../schemas/ApiToken.ts"
import type { ApiTokenId } from "../../schemas/Ids.ts"
import { newId } from "../ids.ts"
import { Database, DatabaseError } from "../storage/Database.ts"
import type { ApiTokenRow } from "./ApiTokensTable.ts"

const TOKEN_PREFIX = "chorus_"
const SECRET_LENGTH = 43 // 62^43 > 2^256: 32 random bytes always fit
const TOKEN_FORMAT = /^chorus_[0-9A-Za-z]{43}$/
const DISPLAY_CHARS = 8
const BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
/** `last_used_at` is refreshed when it is older than this. */
const TOUCH_INTERVAL_MS = 60_000
/** How long a verified token is trusted without asking the database again. */
const VERIFIED_TTL_MS = 2_000
const VERIFIED_MAX = 10_000

export class InvalidToken extends Data.TaggedError("InvalidToken")<{
  /** For logs only; never shown to the client, which gets a bare 401. */
  readonly reason: "malformed" | "unknown" | "revoked"
}> {
  override get message() {
    return `invalid API token (${this.reason})`
  }
}

export class InvalidTokenName extends Data.TaggedError("InvalidTokenName")<{
  readonly name: string
  readonly detail: string
}> {
  override get message() {
    return `invalid token name ${JSON.stringify(this.name)}: ${this.detail}`
  }
}

export class TokenNameTaken extends Data.TaggedError("TokenNameTaken")<{ readonly name: string }> {
  override get message() {
    return `an active token named ${
      JSON.stringify(this.name)
    } already exists (revoke it first, or pick another name)`
  }
}

export class TokenNotFound
  extends Data.TaggedError("TokenNotFound")<{ readonly nameOrId: string }> {
  override get message() {
    return `no active token with the name or id ${JSON.stringify(this.nameOrId)}`
  }
}

const base62 = (bytes: Uint8Array): string => {
  let n = BigInt(`0x${Buffer.from(bytes).toString("hex")}`)
  let out = ""
  while (n > 0n) {
    out = BASE62[Number(n % 62n)] + out
    n /= 62n
  }
  return out.padStart(SECRET_LENGTH, "0")
}

const sha256 = (token: string): Buffer => createHash("sha256").update(token, "utf8").digest()

const prefixOf = (token: string): string => token.slice(0, TOKEN_PREFIX.length + DISPLAY_CHARS)

const millis = (v: number | string | null): number | null => (v === null ? null : Number(v))

const toInfo = (row: ApiTokenRow): ApiTokenInfo => ({
  id: row.id as ApiTokenId,
  name: row.name,
  prefix: row.prefix,
  createdAt: new Date(Number(row.created_at)),
  lastUsedAt: row.last_used_at === null ? null : new Date(Number(row.last_used_at)),
  revokedAt: row.revoked_at === null ? null : new Date(Number(row.revoked_at)),
})

const isUniqueViolation = (error: DatabaseError): boolean => {
  const code = (error.cause as { code?: unknown } | null)?.code
  return code === "SQLITE_CONSTRAINT_UNIQUE" || code === "23505"
}

const ULID = /^[0-9A-HJKMNP-TV-Z]{26}$/

export class ApiTokens extends Effect.Service<ApiTokens>()("chorus/core/auth/ApiTokens", {
  effect: Effect.gen(function* () {
    const database = yield* Database
    /** Token id → when this process last wrote its last_used_at. */
    const touched = new Map<string, number>()
    /**
     * Tokens verified in the last `VERIFIED_TTL_MS`: a client sending thousands of requests a
     * second costs one lookup per token and interval, not one per request. Keyed by the token
     * itself, in memory only and for seconds, as each request holds it anyway: hashing it on every
     * request cost more than the rest of the check (the database keeps only hashes). A token
     * revoked here is dropped at once; one revoked by another process (`chorus token revoke`) is
     * refused within the interval.
     */
    const verified = new Map<
      string,
      { readonly info: ApiTokenInfo; readonly at: number }
    >()

    const findActive = (nameOrId: string) =>
      database.query("api_tokens.find", (db) =>
        db.selectFrom("api_tokens").selectAll()
          .where("revoked_at", "is", null)
          .where((eb) =>
            ULID.test(nameOrId)
              ? eb.or([eb("id", "=", nameOrId), eb("name", "=", nameOrId)])
              : eb("name", "=", nameOrId)
          )
          .execute()).pipe(
          // An id match wins over a token that happens to be named like another's id.
          Effect.map((rows) => Option.fromNullable(rows.find((r) => r.id === nameOrId) ?? rows[0])),
        )

    /**
     * Create a token. The plaintext is returned once, here, and never stored.
     * Fails with `InvalidTokenName` or `TokenNameTaken` (an active token has that name).
     */
    const create = Effect.fn("ApiTokens.create")(function* (name: string) {
      yield* Schema.decodeUnknown(ApiTokenName)(name).pipe(
        Effect.mapError((e) =>
          new InvalidTokenName({ name, detail: e.message.split("\n").pop()!.trim() })
        ),
      )
      const taken = yield* database.query(
        "api_tokens.name_taken",
        (db) =>
          db.selectFrom("api_tokens").select("id")
            .where("name", "=", name).where("revoked_at", "is", null)
            .executeTakeFirst(),
      )
      if (taken !== undefined) return yield* new TokenNameTaken({ name })
      const token = TOKEN_PREFIX + base62(randomBytes(32))
      const row = {
        id: newId.apiToken(),
        name,
        prefix: prefixOf(token),
        hash: sha256(token).toString("hex"),
        created_at: yield* Clock.currentTimeMillis,
        last_used_at: null,
        revoked_at: null,
      }
      yield* database.query(
        "api_tokens.insert",
        (db) => db.insertInto("api_tokens").values(row).execute(),
      ).pipe(
        // Two creates racing for one name: the partial unique index decides.
        Effect.catchIf(isUniqueViolation, () => new TokenNameTaken({ name })),
      )
      return { token: Redacted.make(token), info: toInfo(row) }
    })

    /**
     * The token's details if it is active; `InvalidToken` if it is malformed, unknown or
     * revoked. Fails with `DatabaseError` only when the store cannot answer.
     */
    // No span: verify runs on every request.
    const verify = Effect.fnUntraced(function* (token: string) {
      if (!TOKEN_FORMAT.test(token)) return yield* new InvalidToken({ reason: "malformed" })
      const now = yield* Clock.currentTimeMillis
      const recent = verified.get(token)
      if (recent !== undefined && now - recent.at < VERIFIED_TTL_MS) return recent.info
      const hash = sha256(token)
      const prefix = prefixOf(token)
      const rows = yield* database.query(
        "api_tokens.verify",
        (db) => db.selectFrom("api_tokens").selectAll().where("prefix", "=", prefix).execute(),
      )
      let match: ApiTokenRow | undefined
      // Compare against every candidate: the time taken does not depend on which one matched.
      for (const row of rows) {
        const stored = Buffer.from(row.hash, "hex")
        if (stored.length === hash.length && timingSafeEqual(stored, hash)) match = row
      }
      if (match === undefined) return yield* new InvalidToken({ reason: "unknown" })
      if (match.revoked_at !== null) return yield* new InvalidToken({ reason: "revoked" })
      if (verified.size >= VERIFIED_MAX) verified.clear()
      verified.set(token, { info: toInfo(match), at: now })
      const lastUsed = Math.max(
        millis(match.last_used_at) ?? -Infinity,
        touched.get(match.id) ?? -Infinity,
      )
      if (now - lastUsed >= TOUCH_INTERVAL_MS) {
        touched.set(match.id, now)
        const id = match.id
        // A failed touch must not fail the request: the value is informational.
        yield* database.query(
          "api_tokens.touch",
          (db) =>
            db.updateTable("api_tokens").set({ last_used_at: now }).where("id", "=", id).execute(),
        ).pipe(
          Effect.tapError((e) =>
            Effect.logWarning("api token last_used_at not updated", e.message)
          ),
          Effect.ignore,
        )
        return toInfo({ ...match, last_used_at: now })
      }
      return toInfo(match)
    })

    /** Tokens, oldest first; revoked ones only when asked for. */
    const list = Effect.fn("ApiTokens.list")(
      function* (options: { includeRevoked?: boolean } = {}) {
        const rows = yield* database.query("api_tokens.list", (db) => {
          let q = db.selectFrom("api_tokens").selectAll().orderBy("created_at").orderBy("id")
          if (options.includeRevoked !== true) q = q.where("revoked_at", "is", null)
          return q.execute()
        })
        return rows.map(toInfo)
      },
    )

    /** Revoke the active token with this name or id; it stops working at once. */
    const revoke = Effect.fn("ApiTokens.revoke")(function* (nameOrId: string) {
      const found = yield* findActive(nameOrId)
      if (Option.isNone(found)) return yield* new TokenNotFound({ nameOrId })
      const now = yield* Clock.currentTimeMillis
      const id = found.value.id
      const result = yield* database.query(
        "api_tokens.revoke",
        (db) =>
          db.updateTable("api_tokens").set({ revoked_at: now })
            .where("id", "=", id).where("revoked_at", "is", null).executeTakeFirst(),
      )
      verified.clear()
      if (result.numUpdatedRows === 0n) return yield* new TokenNotFound({ nameOrId })
      return toInfo({ ...found.value, revoked_at: now })
    })

    return { create, verify, list, revoke }
  }),
}) {}
