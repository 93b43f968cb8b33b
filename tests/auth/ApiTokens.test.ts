import { createHash } from "node:crypto"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Redacted, type Scope, TestClock } from "effect"
import { ApiTokens } from "../../core/auth/ApiTokens.ts"
import { Database, type DatabaseShape } from "../../core/storage/Database.ts"
import { postgresDatabase, sqliteDatabase } from "../support/TestDatabase.ts"

/** The token service over a fresh database. */
const open = (database: Effect.Effect<DatabaseShape, unknown, Scope.Scope>) =>
  Effect.gen(function* () {
    const db = yield* database
    const tokens = yield* ApiTokens.pipe(
      Effect.provide(ApiTokens.Default),
      Effect.provideService(Database, db),
    )
    return { db, tokens }
  })

const failureTag = <A, E extends { _tag: string }, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.exit(effect).pipe(
    Effect.map((exit) =>
      Exit.isFailure(exit) && exit.cause._tag === "Fail" ? exit.cause.error._tag : "no failure"
    ),
  )

const tokenStore = (
  name: string,
  database: () => Effect.Effect<DatabaseShape, unknown, Scope.Scope>,
) =>
  describe(`API tokens on ${name}`, () => {
    it.scoped("stores only a SHA-256 hash: the plaintext is nowhere in the database", () =>
      Effect.gen(function* () {
        const { db, tokens } = yield* open(database())
        const { info, token } = yield* tokens.create("crm sync")
        const plaintext = Redacted.value(token)
        assert.match(plaintext, /^chorus_[0-9A-Za-z]{43}$/)
        const rows = yield* db.query(
          "read",
          (k) => k.selectFrom("api_tokens").selectAll().execute(),
        )
        assert.strictEqual(rows.length, 1)
        const row = rows[0]!
        assert.strictEqual(row.hash, createHash("sha256").update(plaintext).digest("hex"))
        assert.strictEqual(row.prefix, plaintext.slice(0, 15))
        assert.strictEqual(info.prefix, row.prefix)
        const secret = plaintext.slice("chorus_".length)
        for (const value of Object.values(row)) {
          assert.notInclude(String(value), secret)
        }
        // Two tokens never share a secret.
        const other = yield* tokens.create("grafana")
        assert.notStrictEqual(Redacted.value(other.token), plaintext)
      }))

    it.scoped("verifies a good token; refuses a wrong, malformed or revoked one", () =>
      Effect.gen(function* () {
        const { tokens } = yield* open(database())
        const { info, token } = yield* tokens.create("crm sync")
        const good = Redacted.value(token)
        const me = yield* tokens.verify(good)
        assert.strictEqual(me.id, info.id)
        assert.strictEqual(me.name, "crm sync")

        // Same prefix, different secret: found by prefix, refused by the hash comparison.
        const wrong = good.slice(0, -1) + (good.endsWith("A") ? "B" : "A")
        assert.strictEqual(yield* failureTag(tokens.verify(wrong)), "InvalidToken")
        assert.strictEqual(yield* failureTag(tokens.verify("")), "InvalidToken")
        assert.strictEqual(yield* failureTag(tokens.verify("chorus_short")), "InvalidToken")

        const revoked = yield* tokens.revoke("crm sync")
        assert.isNotNull(revoked.revokedAt)
        const exit = yield* Effect.exit(tokens.verify(good))
        assert.isTrue(Exit.isFailure(exit))
        if (Exit.isFailure(exit) && exit.cause._tag === "Fail") {
          assert.deepInclude(exit.cause.error, { _tag: "InvalidToken", reason: "revoked" })
        }
      }))

    it.scoped("a name is unique among active tokens and free again once revoked", () =>
      Effect.gen(function* () {
        const { tokens } = yield* open(database())
        const first = yield* tokens.create("ci")
        assert.strictEqual(yield* failureTag(tokens.create("ci")), "TokenNameTaken")
        assert.strictEqual(yield* failureTag(tokens.create("no/slashes")), "InvalidTokenName")
        yield* tokens.revoke(first.info.id)
        const second = yield* tokens.create("ci")
        assert.notStrictEqual(second.info.id, first.info.id)
        assert.strictEqual(yield* failureTag(tokens.revoke("ci-typo")), "TokenNotFound")
        assert.strictEqual(yield* failureTag(tokens.revoke(first.info.id)), "TokenNotFound")

        const active = yield* tokens.list()
        assert.deepStrictEqual(active.map((t) => t.id), [second.info.id])
        const all = yield* tokens.list({ includeRevoked: true })
        assert.deepStrictEqual(all.map((t) => t.id), [first.info.id, second.info.id])
      }))

    it.scoped("the database itself refuses two active tokens with one name", () =>
      Effect.gen(function* () {
        const { db } = yield* open(database())
        const row = (id: string, revokedAt: number | null) => ({
          id,
          name: "dup",
          prefix: `chorus_${id.slice(0, 8)}`,
          hash: id.padEnd(64, "0"),
          created_at: 1,
          last_used_at: null,
          revoked_at: revokedAt,
        })
        const insert = (r: ReturnType<typeof row>) =>
          db.query("insert", (k) => k.insertInto("api_tokens").values(r).execute())
        yield* insert(row("a1", null))
        yield* insert(row("a2", 5)) // revoked: allowed
        const duplicate = yield* Effect.exit(insert(row("a3", null)))
        assert.isTrue(Exit.isFailure(duplicate))
      }))

    it.scoped("writes last_used_at at most once a minute per token", () =>
      Effect.gen(function* () {
        const { db, tokens } = yield* open(database())
        const { info, token } = yield* tokens.create("poller")
        const lastUsed = db.query(
          "read",
          (k) =>
            k.selectFrom("api_tokens").select("last_used_at").where("id", "=", info.id)
              .executeTakeFirstOrThrow(),
        ).pipe(
          Effect.map((r) => (r.last_used_at === null ? null : Number(r.last_used_at))),
        )
        assert.isNull(yield* lastUsed)

        yield* TestClock.setTime(1_000_000)
        yield* tokens.verify(Redacted.value(token))
        assert.strictEqual(yield* lastUsed, 1_000_000)

        yield* TestClock.adjust("30 seconds")
        const me = yield* tokens.verify(Redacted.value(token))
        assert.strictEqual(yield* lastUsed, 1_000_000)
        assert.strictEqual(me.lastUsedAt?.getTime(), 1_000_000)

        yield* TestClock.adjust("31 seconds")
        yield* tokens.verify(Redacted.value(token))
        assert.strictEqual(yield* lastUsed, 1_061_000)
      }))
  })

tokenStore("SQLite", () => sqliteDatabase())
tokenStore("PostgreSQL", () => postgresDatabase())
