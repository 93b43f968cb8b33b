import { assert, describe, it } from "@effect/vitest"
import { Effect, Either, Exit, Fiber, Scope } from "effect"
import { type Kysely, sql } from "kysely"
import {
  type DatabaseShape,
  isStatementTimeout,
  makeDatabase,
} from "../../core/storage/Database.ts"
import * as GroupCommit from "../../core/storage/GroupCommit.ts"
import {
  coreMigrationSet,
  migrate,
  type MigrationSet,
  pluginMigrationTable,
} from "../../core/storage/Migrations.ts"
import {
  POSTGRES_URL,
  postgresDatabase,
  scratchSchema,
  sqliteDatabase,
  tableNames,
} from "../support/TestDatabase.ts"
import { prepare, prepareList } from "../../core/storage/Prepared.ts"

// A plugin's own migrations: they must run on both dialects, in their own migration table.
const notesPlugin: MigrationSet = {
  table: pluginMigrationTable("acme.notes"),
  migrations: {
    "2026_11_23_0001_notes": {
      up: async (db: Kysely<any>) => {
        await db.schema.createTable("acme_notes")
          .addColumn("id", "integer", (c) => c.primaryKey())
          .addColumn("body", "text", (c) => c.notNull())
          .addColumn("created_at", "bigint", (c) => c.notNull())
          .execute()
      },
      down: async (db: Kysely<any>) => {
        await db.schema.dropTable("acme_notes").execute()
      },
    },
  },
}

/** The ids in the notes plugin's table, ascending. */
const noteIds = (db: DatabaseShape) =>
  db.query(
    "read",
    (k) =>
      (k as unknown as Kysely<any>).selectFrom("acme_notes").select("id").orderBy("id").execute(),
  ).pipe(Effect.map((rows) => rows.map((r) => Number(r.id))))

const storageBehaviour = (
  name: string,
  open: Effect.Effect<DatabaseShape, unknown, import("effect").Scope.Scope>,
) =>
  describe(name, () => {
    it.scoped("runs the core migrations once; a second run applies nothing", () =>
      Effect.gen(function* () {
        const db = yield* open
        const again = yield* migrate(db, coreMigrationSet)
        assert.deepStrictEqual(again.applied, [])
      }))

    it.scoped("a plugin's migrations run in their own table, independent of the core's", () =>
      Effect.gen(function* () {
        const db = yield* open
        const first = yield* migrate(db, notesPlugin)
        assert.deepStrictEqual(first.applied, ["2026_11_23_0001_notes"])
        assert.strictEqual(first.table, "chorus_plugin_acme_notes_migrations")
        const names = yield* tableNames(db)
        assert.include(names, "chorus_migrations")
        assert.include(names, "chorus_plugin_acme_notes_migrations")
        assert.include(names, "acme_notes")
      }))

    it.scoped("the same queries write and read on this dialect, in transactions", () =>
      Effect.gen(function* () {
        const db = yield* open
        yield* migrate(db, notesPlugin)
        const k = db.db as unknown as Kysely<any>
        yield* db.transaction("insert notes", async (trx) => {
          const t = trx as unknown as Kysely<any>
          for (let i = 1; i <= 100; i++) {
            await t.insertInto("acme_notes").values({
              id: i,
              body: `note ${i}`,
              created_at: Date.now(),
            }).execute()
          }
        })
        const rows = yield* db.query("read", () =>
          k.selectFrom("acme_notes").select(["id", "body"]).where("id", ">", 95).orderBy("id")
            .execute())
        assert.deepStrictEqual(
          rows.map((r) =>
            Number(r.id)
          ),
          [96, 97, 98, 99, 100],
        )
        const count = yield* db.query("count", () =>
          k.selectFrom("acme_notes").select((e) =>
            e.fn.countAll().as("n")
          ).executeTakeFirstOrThrow())
        assert.strictEqual(Number(count.n), 100)
      }))

    it.scoped("a prepared query is compiled once and runs with each call's values, constants kept", () =>
      Effect.gen(function* () {
        const db = yield* open
        yield* migrate(db, notesPlugin)
        const k = db.db as unknown as Kysely<any>
        yield* db.query("seed", () =>
          k.insertInto("acme_notes").values(
            [1, 2, 3].map((id) => ({ id, body: `note ${id}`, created_at: 0 })),
          ).execute())
        const touch = prepare(["id", "body", "at"], (d: Kysely<any>, param) =>
          d.updateTable("acme_notes").set((eb) => ({
            body: param("body"),
            created_at: eb("created_at", "+", param("at")),
          })).where("id", "=", param("id")).where("body", "!=", "frozen"))
        const changed = yield* db.transaction("touch", async (trx) => [
          await touch.run(trx, { id: 1, body: "one", at: 5 }),
          await touch.run(trx, { id: 2, body: "frozen", at: 7 }),
          // Now "frozen": the constant in the where clause must still be there.
          await touch.run(trx, { id: 2, body: "two", at: 1 }),
          await touch.run(trx, { id: 9, body: "none", at: 1 }),
        ])
        assert.deepStrictEqual(
          changed.map((r) =>
            Number(r.numAffectedRows)
          ),
          [1, 1, 0, 0],
        )
        const rows = yield* db.query("read", () =>
          k.selectFrom("acme_notes").select(["id", "body", "created_at"]).orderBy("id").execute())
        assert.deepStrictEqual(
          rows.map((r) => [Number(r.id), r.body, Number(r.created_at)]),
          [[1, "one", 5], [2, "frozen", 7], [3, "note 3", 0]],
        )
        const undeclared = prepare(["id"], (d: Kysely<any>, param) =>
          d.deleteFrom("acme_notes").where("id", "=", param("other" as "id")))
        const unused = prepare(["id", "body"], (d: Kysely<any>, param) =>
          d.deleteFrom("acme_notes").where("id", "=", param("id")))
        for (const bad of [undeclared, unused]) {
          const error = yield* Effect.tryPromise(() =>
            bad.run(k, { id: 1, body: "x" })
          ).pipe(
            Effect.flip,
          )
          assert.match(String(error.error), /prepare: /)
        }
      }))

    it.scoped("a prepared list query runs with each call's list, whatever its length, constants kept", () =>
      Effect.gen(function* () {
        const db = yield* open
        yield* migrate(db, notesPlugin)
        const k = db.db as unknown as Kysely<any>
        const insert = prepareList([], ["id", "body"], (d: Kysely<any>, _param, items) =>
          d.insertInto("acme_notes").values(
            items.map((item) => ({ id: item("id"), body: item("body"), created_at: 7 })),
          ))
        const select = prepareList(["after"], ["id"], (d: Kysely<any>, param, items) =>
          d.selectFrom("acme_notes").select(["id", "body", "created_at"])
            .where(
              "id",
              "in",
              items.map((item) =>
                item("id")
              ),
            )
            .where("id", ">", param("after"))
            .where("body", "!=", "hidden")
            .orderBy("id"))
        const read = (after: number, ids: ReadonlyArray<number>) =>
          db.query("read", (d) =>
            select.run(d as unknown as Kysely<any>, { after }, ids.map((id) => ({ id }))).then((
              r,
            ) =>
              (r.rows as Array<{ id: number; body: string; created_at: number }>).map((
                row,
              ) => [Number(row.id), row.body, Number(row.created_at)])
            ))
        // Lengths 1, 3 and 100 (past the compiled-once limit), each twice with other values.
        const notes = Array.from({ length: 104 }, (_, i) => ({
          id: i + 1,
          body: i === 2 ? "hidden" : `n${i + 1}`,
        }))
        yield* db.transaction("seed", async (trx) => {
          await insert.run(trx, {}, notes.slice(0, 1))
          await insert.run(trx, {}, notes.slice(1, 4))
          await insert.run(trx, {}, notes.slice(4, 104))
        })
        assert.deepStrictEqual(yield* read(0, [1]), [[1, "n1", 7]])
        assert.deepStrictEqual(yield* read(0, [2]), [[2, "n2", 7]])
        assert.deepStrictEqual(yield* read(0, [1, 3, 4]), [[1, "n1", 7], [4, "n4", 7]])
        assert.deepStrictEqual(yield* read(1, [1, 2, 4]), [[2, "n2", 7], [4, "n4", 7]])
        const hundred = notes.slice(4).map((n) =>
          n.id
        )
        assert.strictEqual((yield* read(0, hundred)).length, 100)
        assert.deepStrictEqual(
          (yield* read(100, hundred)).map(([id]) =>
            id
          ),
          [101, 102, 103, 104],
        )
        const undeclared = prepareList([], ["id"], (d: Kysely<any>, _param, items) =>
          d.deleteFrom("acme_notes").where(
            "id",
            "in",
            items.map((item) =>
              item("x" as "id")
            ),
          ))
        const error = yield* Effect.tryPromise(() =>
          undeclared.run(k, {}, [{ id: 1 }])
        ).pipe(
          Effect.flip,
        )
        assert.match(String(error.error), /prepare: /)
      }))

    it.scoped("a failed transaction leaves nothing behind and reports a typed error", () =>
      Effect.gen(function* () {
        const db = yield* open
        yield* migrate(db, notesPlugin)
        const error = yield* db.transaction("duplicate ids", async (trx) => {
          const t = trx as unknown as Kysely<any>
          await t.insertInto("acme_notes").values({ id: 1, body: "a", created_at: 1 }).execute()
          await t.insertInto("acme_notes").values({ id: 1, body: "b", created_at: 2 }).execute()
        }).pipe(Effect.flip)
        assert.strictEqual(error._tag, "DatabaseError")
        assert.strictEqual(error.operation, "duplicate ids")
        assert.isFalse(error.retryable)
        const rows = yield* db.query("read", (k) =>
          (k as unknown as Kysely<any>).selectFrom("acme_notes").selectAll().execute())
        assert.lengthOf(rows, 0)
      }))

    it.scoped(
      "group-committed writes under savepoints: one failing write rolls back only its own rows",
      () =>
        Effect.gen(function* () {
          const db = yield* open
          yield* migrate(db, notesPlugin)
          const writer = yield* GroupCommit.make(db, { label: "test", maxBatch: 100 })
          // Each write inserts two rows; id 7's second row collides with id 1's, after its
          // first row went in: that first row must not survive, nor may the others suffer.
          const addPair = GroupCommit.eachInSavepoint({
            name: "add pair",
            rank: 0,
            write: async (trx, id: number) => {
              const t = trx as unknown as Kysely<any>
              await t.insertInto("acme_notes").values({ id, body: "first", created_at: 1 })
                .execute()
              const second = id === 7 ? 1001 : 1000 + id
              await t.insertInto("acme_notes").values({ id: second, body: "second", created_at: 1 })
                .execute()
              // What an earlier write of the same batch wrote is visible to a later one.
              const seen = await t.selectFrom("acme_notes").select("id").execute()
              return seen.length
            },
          })
          const results = yield* Effect.forEach(
            [1, 2, 3, 7, 4],
            (id) =>
              writer.submit(addPair, id).pipe(Effect.either),
            { concurrency: "unbounded" },
          )
          const before = writer.stats().transactions
          assert.deepStrictEqual(
            results.map((r) =>
              r._tag
            ),
            [
              "Right",
              "Right",
              "Right",
              "Left",
              "Right",
            ],
          )
          // Rows each write saw: the pairs written before it in the batch, and its own.
          assert.deepStrictEqual(
            results.map((r) => (r._tag === "Right" ? r.right : undefined)),
            [2, 4, 6, undefined, 8],
          )
          const failed = results[3]!
          assert.strictEqual(failed._tag === "Left" && failed.left.operation, "add pair")
          // One transaction for the five (they were queued together).
          assert.strictEqual(before, 1)
          assert.deepStrictEqual(
            yield* noteIds(db),
            [
              1,
              2,
              3,
              4,
              1001,
              1002,
              1003,
              1004,
            ],
          )
        }),
    )

    it.scoped("ping answers", () =>
      Effect.gen(function* () {
        const db = yield* open
        yield* db.ping
      }))
  })

storageBehaviour("SQLite storage", sqliteDatabase())
storageBehaviour("PostgreSQL storage", postgresDatabase())

describe("group commit waits", () => {
  it.scoped(
    "a submit with a timeout stops waiting for a stalled writer (the write stays queued and " +
      "commits); after the writer closed, a submit fails at once",
    () =>
      Effect.gen(function* () {
        const db = yield* sqliteDatabase()
        let release: () => void = () => {}
        const stalled = new Promise<void>((resolve) => (release = resolve))
        const written: Array<string> = []
        const kind: GroupCommit.WriteKind<string, string, never> = {
          name: "slow write",
          rank: 0,
          execute: async (_trx, inputs) => {
            await stalled
            written.push(...inputs)
            return inputs.map((i) => Either.right(i))
          },
        }
        const scope = yield* Scope.make()
        const writer = yield* GroupCommit.make(db, { label: "test", maxBatch: 10 }).pipe(
          Scope.extend(scope),
        )
        const started = Date.now()
        const timedOut = yield* Effect.flip(writer.submit(kind, "first", 100))
        assert.isAtLeast(Date.now() - started, 90)
        assert.isTrue(timedOut.retryable)
        assert.include(timedOut.message, "not committed within 100 ms")
        const waiting = yield* Effect.fork(writer.submit(kind, "second"))
        release()
        assert.strictEqual(yield* Fiber.join(waiting), "second")
        assert.deepStrictEqual(written, ["first", "second"])

        yield* Scope.close(scope, Exit.void)
        const refused = yield* Effect.flip(writer.submit(kind, "late"))
        assert.include(refused.message, "writer closed")
      }),
  )
})

describe("group commit failures", () => {
  /** A kind writing its inputs in one multi-row insert: one bad input fails the whole batch. */
  const insertAll: GroupCommit.WriteKind<number, number, never> = {
    name: "insert all",
    rank: 0,
    execute: async (trx, inputs) => {
      const t = trx as unknown as Kysely<any>
      await t.insertInto("acme_notes")
        // A body of null breaks the NOT NULL constraint: the input 13 is bad.
        .values(inputs.map((id) => ({ id, body: id === 13 ? null : "ok", created_at: 1 })))
        .execute()
      return inputs.map((id) => Either.right(id))
    },
  }

  it.scoped(
    "a batch failed by one bad write is retried write by write: the others commit",
    () =>
      Effect.gen(function* () {
        const db = yield* sqliteDatabase()
        yield* migrate(db, notesPlugin)
        const writer = yield* GroupCommit.make(db, { label: "test", maxBatch: 10 })
        const results = yield* Effect.forEach(
          [11, 12, 13, 14],
          (id) => writer.submit(insertAll, id).pipe(Effect.either),
          { concurrency: "unbounded" },
        )
        assert.deepStrictEqual(results.map((r) => r._tag), ["Right", "Right", "Left", "Right"])
        // The batch, then each of its four writes alone.
        assert.strictEqual(writer.stats().transactions, 5)
        assert.deepStrictEqual(
          yield* noteIds(db),
          [11, 12, 14],
        )
      }),
  )
})

describe("SQLite durability settings", () => {
  it.scoped("runs in WAL mode; SQLite does not sync in COMMIT, WalSync does (see WalSync.test.ts)", () =>
    Effect.gen(function* () {
      const db = yield* sqliteDatabase()
      const mode = yield* db.query(
        "journal",
        (k) => sql<{ journal_mode: string }>`PRAGMA journal_mode`.execute(k),
      )
      assert.strictEqual(mode.rows[0]?.journal_mode, "wal")
      const sync = yield* db.query(
        "sync",
        (k) => sql<{ synchronous: number }>`PRAGMA synchronous`.execute(k),
      )
      assert.strictEqual(sync.rows[0]?.synchronous, 1) // 1 = NORMAL
    }))

  it.scoped("an in-memory database keeps synchronous=FULL (there is no file to sync)", () =>
    Effect.gen(function* () {
      const db = yield* makeDatabase({ sqliteFile: ":memory:" })
      const sync = yield* db.query(
        "sync",
        (k) => sql<{ synchronous: number }>`PRAGMA synchronous`.execute(k),
      )
      assert.strictEqual(sync.rows[0]?.synchronous, 2) // 2 = FULL
    }))
})

describe("PostgreSQL schema isolation", () => {
  it.scoped("creates the configured schema and keeps its tables there", () =>
    Effect.gen(function* () {
      const db = yield* postgresDatabase()
      const rows = yield* db.query(
        "where",
        (k) =>
          sql<
            { table_schema: string }
          >`select table_schema from information_schema.tables where table_name = 'chorus_migrations'`
            .execute(k),
      )
      assert.include(rows.rows.map((r) => r.table_schema), db.schema!)
    }))
})

describe("PostgreSQL statement limits", () => {
  /** A migrated schema of its own whose pool has one connection limited to 1 s per statement. */
  const limited = Effect.gen(function* () {
    const schema = yield* scratchSchema("lim")
    return yield* makeDatabase({
      url: POSTGRES_URL,
      schema,
      sqliteFile: "",
      poolSize: 1,
      statementTimeoutSeconds: 1,
    })
  })
  const sleep = (db: DatabaseShape, seconds: number) =>
    db.query("sleep", (k) => sql`select pg_sleep(${seconds})`.execute(k))
  const setting = (
    db: DatabaseShape,
    name: "statement_timeout" | "idle_in_transaction_session_timeout",
  ) =>
    db.query("show", (k) => sql.raw<Record<string, string>>(`show ${name}`).execute(k)).pipe(
      Effect.map((r) => r.rows[0]?.[name]),
    )

  it.scoped("a statement running past the limit is cancelled with a DatabaseError", () =>
    Effect.gen(function* () {
      const db = yield* limited
      assert.strictEqual(yield* setting(db, "statement_timeout"), "1s")
      assert.strictEqual(yield* setting(db, "idle_in_transaction_session_timeout"), "1s")
      const started = Date.now()
      const error = yield* Effect.flip(sleep(db, 5))
      const took = Date.now() - started
      assert.strictEqual(error._tag, "DatabaseError")
      assert.strictEqual((error.cause as { code?: string }).code, "57014") // query_canceled
      assert.isAtLeast(took, 900)
      assert.isBelow(took, 4_000, "cancelled near the limit, not after the 5 s sleep")
      // The connection is still good for the next query.
      yield* sleep(db, 0.1)
    }))

  it.scoped("a session left idle inside a transaction is ended", () =>
    Effect.gen(function* () {
      const db = yield* limited
      const exit = yield* Effect.exit(db.transaction("idle", async (trx) => {
        await sql`select 1`.execute(trx)
        await new Promise((r) => setTimeout(r, 2_500))
        await sql`select 1`.execute(trx)
      }))
      assert.isTrue(Exit.isFailure(exit), "the server ended the idle transaction")
    }))

  it.scopedLive(
    "migrations run without the limit, then the pooled connection has it again",
    () =>
      Effect.gen(function* () {
        const db = yield* limited
        const slow: MigrationSet = {
          table: pluginMigrationTable("acme.slow"),
          migrations: {
            "2026_11_25_0001_slow": {
              up: async (k: Kysely<any>) => {
                await sql`select pg_sleep(1.5)`.execute(k)
              },
            },
          },
        }
        // Another node holds the migration lock (Kysely's advisory lock) for 1.5 s: waiting for
        // it is a statement past the limit too.
        const other = yield* makeDatabase({ url: POSTGRES_URL, schema: db.schema!, sqliteFile: "" })
        const holder = yield* Effect.fork(other.query("hold the lock", (k) =>
          k.connection().execute(async (c) => {
            await sql`select pg_advisory_lock(${sql.lit(BigInt("3853314791062309107"))})`.execute(c)
            await new Promise((r) => setTimeout(r, 1_500))
            await sql`select pg_advisory_unlock(${sql.lit(BigInt("3853314791062309107"))})`.execute(
              c,
            )
          })))
        yield* Effect.sleep("200 millis")
        const report = yield* migrate(db, slow)
        assert.deepStrictEqual(report.applied, ["2026_11_25_0001_slow"])
        yield* Fiber.join(holder)
        // One connection in the pool: the same one the migration used, its limits restored.
        assert.strictEqual(yield* setting(db, "statement_timeout"), "1s")
        assert.strictEqual(yield* setting(db, "idle_in_transaction_session_timeout"), "1s")
        const cancelled = yield* Effect.flip(sleep(db, 5))
        assert.strictEqual((cancelled.cause as { code?: string }).code, "57014")
      }),
    20_000,
  )

  it.scoped(
    "a group-committed batch that runs out of time fails all its writes at once, not one by one",
    () =>
      Effect.gen(function* () {
        const db = yield* limited
        const writer = yield* GroupCommit.make(db, { label: "test", maxBatch: 10 })
        const stuck: GroupCommit.WriteKind<number, number, never> = {
          name: "stuck",
          rank: 0,
          execute: async (trx, inputs) => {
            await sql`select pg_sleep(5)`.execute(trx)
            return inputs.map((i) => Either.right(i))
          },
        }
        const started = Date.now()
        const results = yield* Effect.forEach(
          [1, 2, 3],
          (i) => writer.submit(stuck, i).pipe(Effect.either),
          { concurrency: "unbounded" },
        )
        for (const r of results) {
          assert.isTrue(r._tag === "Left" && isStatementTimeout(r.left), JSON.stringify(r))
        }
        // One transaction, cut at the 1 s limit; one by one would have taken three more.
        assert.strictEqual(writer.stats().transactions, 1)
        assert.isBelow(Date.now() - started, 3_000)
      }),
    15_000,
  )

  it.scoped("0 means no limit", () =>
    Effect.gen(function* () {
      const schema = yield* scratchSchema("lim")
      const db = yield* makeDatabase({
        url: POSTGRES_URL,
        schema,
        sqliteFile: "",
        statementTimeoutSeconds: 0,
      })
      assert.strictEqual(yield* setting(db, "statement_timeout"), "0")
    }))
})

describe("database errors", () => {
  it.scoped("a PostgreSQL server that went away is a retryable error", () =>
    Effect.gen(function* () {
      // Nothing listens on port 1: the connection is refused, which a retry later may fix.
      const error = yield* makeDatabase({
        url: "postgres://postgres@127.0.0.1:1/test",
        sqliteFile: "",
      }).pipe(
        Effect.flip,
      )
      assert.strictEqual(error._tag, "DatabaseError")
      assert.isTrue(error.retryable)
    }))
})
