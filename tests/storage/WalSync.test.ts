/**
 * WalSync: a write is answered only after an fdatasync of the WAL that started after its commit;
 * reads wait for nobody; writes waiting together share one sync; a failed sync fails the writes
 * it covered. The sync is replaced by one the test holds and releases, on a real SQLite file.
 */
import * as NodeFs from "node:fs"
import * as NodePath from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { Kysely, sql } from "kysely"
import { makeDatabase } from "../../core/storage/Database.ts"
import { openSqlite, withStatementCache } from "../../core/storage/sqlite.node.ts"
import { DurableSqliteDialect, makeWalSync } from "../../core/storage/WalSync.node.ts"
import { tempDir } from "../support/TestDatabase.ts"

interface Held {
  readonly fd: number
  readonly done: (error: Error | null) => void
}

/** A database whose WAL syncs wait in `held` until the test releases them. */
const openHeld = Effect.gen(function* () {
  const file = NodePath.join(yield* tempDir(), "held.sqlite")
  const sqlite = openSqlite(file)
  sqlite.pragma("journal_mode = WAL")
  sqlite.pragma("synchronous = NORMAL")
  const held: Array<Held> = []
  const wal = makeWalSync(file, (fd, done) => held.push({ fd, done }))
  const statements = withStatementCache(sqlite, { onWrite: wal.wrote })
  const db = new Kysely<any>({
    dialect: new DurableSqliteDialect(
      { database: { prepare: statements.prepare, close: statements.close } },
      wal,
      () => sqlite.inTransaction,
    ),
  })
  yield* Effect.addFinalizer(() => Effect.promise(() => db.destroy()))
  const release = (error: Error | null = null) => {
    const all = held.splice(0)
    for (const h of all) h.done(error)
    return all.length
  }
  // The DDL is a write too: it waits for a sync, which the test releases.
  yield* Effect.promise(async () => {
    const created = sql`create table t (id integer primary key, v text)`.execute(db)
    while (held.length === 0) await new Promise((r) => setTimeout(r, 1))
    release()
    await created
  })
  return { db, held, release, file }
})

/** Whether `promise` settled within a few turns of the event loop. */
const settled = (promise: Promise<unknown>) =>
  Effect.promise(async () => {
    let done = false
    promise.then(() => (done = true), () => (done = true))
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r))
    return done
  })

describe("WalSync", () => {
  it.scoped("an autocommit write is answered only after its WAL sync; a read waits for none", () =>
    Effect.gen(function* () {
      const { db, held, release } = yield* openHeld
      const write = db.insertInto("t").values({ id: 1, v: "a" }).execute()
      assert.isFalse(yield* settled(write), "answered before the sync")
      assert.strictEqual(held.length, 1)
      // The row is committed meanwhile (another reader sees it); only the answer waits.
      release()
      assert.isTrue(yield* settled(write))
      const read = db.selectFrom("t").selectAll().execute()
      assert.isTrue(yield* settled(read), "a read waited for a sync")
      assert.strictEqual(held.length, 0)
      assert.deepStrictEqual(yield* Effect.promise(() => read), [{ id: 1, v: "a" }])
    }))

  it.scoped("a transaction's statements do not wait; its COMMIT does; a read-only one does not", () =>
    Effect.gen(function* () {
      const { db, held, release } = yield* openHeld
      const trx = db.transaction().execute(async (t) => {
        await t.insertInto("t").values({ id: 1, v: "a" }).execute()
        await t.insertInto("t").values({ id: 2, v: "b" }).execute()
        return "committed"
      })
      assert.isFalse(yield* settled(trx))
      assert.strictEqual(held.length, 1, "one sync, for the commit")
      release()
      assert.strictEqual(yield* Effect.promise(() => trx), "committed")
      const readOnly = db.transaction().execute((t) => t.selectFrom("t").selectAll().execute())
      assert.isTrue(yield* settled(readOnly))
      assert.strictEqual(held.length, 0)
    }))

  it.scoped("a write queued behind another is answered by a sync of its own, never an earlier one", () =>
    Effect.gen(function* () {
      const { db, release } = yield* openHeld
      const first = db.insertInto("t").values({ id: 1, v: "a" }).execute()
      yield* settled(first)
      // Kysely's one SQLite connection runs the second once the first is answered.
      const second = db.insertInto("t").values({ id: 2, v: "b" }).execute()
      assert.isFalse(yield* settled(second))
      assert.strictEqual(release(), 1)
      assert.isTrue(yield* settled(first))
      assert.isFalse(yield* settled(second), "answered by the first write's sync")
      assert.strictEqual(release(), 1)
      assert.isTrue(yield* settled(second))
    }))

  it.scoped("writes waiting together share one sync; one made during a sync waits for the next", () =>
    Effect.gen(function* () {
      const file = NodePath.join(yield* tempDir(), "unit.sqlite")
      const held: Array<Held> = []
      NodeFs.writeFileSync(`${file}-wal`, "")
      const wal = makeWalSync(file, (fd, done) => held.push({ fd, done }))
      assert.isUndefined(wal.durable(), "nothing written, nothing to wait for")
      wal.wrote()
      wal.wrote()
      const together = [wal.durable()!, wal.durable()!]
      assert.strictEqual(held.length, 1)
      wal.wrote()
      const during = wal.durable()!
      assert.strictEqual(held.length, 1, "no second sync while one runs")
      held.shift()!.done(null)
      assert.isTrue(yield* settled(Promise.all(together)))
      assert.isFalse(yield* settled(during))
      assert.strictEqual(held.length, 1, "the next sync starts at once for the waiting write")
      held.shift()!.done(null)
      assert.isTrue(yield* settled(during))
      assert.isUndefined(wal.durable())
      wal.close()
    }))

  it.scoped("a failed sync fails the writes it covered; the next write syncs again", () =>
    Effect.gen(function* () {
      const { db, release } = yield* openHeld
      const write = db.insertInto("t").values({ id: 1, v: "a" }).execute()
      yield* settled(write)
      release(new Error("EIO: i/o error, fdatasync"))
      const failed = yield* Effect.promise(() => write.then(() => "ok", (e: Error) => e.message))
      assert.include(failed, "EIO")
      const next = db.insertInto("t").values({ id: 2, v: "b" }).execute()
      yield* settled(next)
      release()
      assert.isTrue(yield* settled(next))
    }))

  it.scoped("on a real file: what was answered is in the WAL on disk and reopens", () =>
    Effect.gen(function* () {
      const file = NodePath.join(yield* tempDir(), "real.sqlite")
      const rows = yield* Effect.scoped(Effect.gen(function* () {
        const db = yield* makeDatabase({ sqliteFile: file })
        yield* db.query("create", (k) => sql`create table t (id integer primary key)`.execute(k))
        yield* Effect.forEach(
          Array.from({ length: 50 }, (_, i) => i),
          (i) => db.query("insert", (k) => sql`insert into t (id) values (${i})`.execute(k)),
          { concurrency: "unbounded" },
        )
        assert.isAbove(NodeFs.statSync(`${file}-wal`).size, 0)
        return 50
      }))
      const again = yield* makeDatabase({ sqliteFile: file })
      const count = yield* again.query(
        "count",
        (k) => sql<{ n: number }>`select count(*) as n from t`.execute(k),
      )
      assert.strictEqual(count.rows[0]?.n, rows)
    }))
})
