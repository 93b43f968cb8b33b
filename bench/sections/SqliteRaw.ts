/**
 * The raw limit of durable writes to SQLite on this machine: better-sqlite3 in WAL mode with
 * `synchronous=FULL` (as durable as the embedded default, which syncs off the event loop),
 * inserting rows shaped like the embedded bus's message log. One row per transaction is the fsync-bound floor; batched transactions (group
 * commit) are the ceiling a durable embedded bus can approach.
 */
import { join } from "node:path"
import { Duration, Effect } from "effect"
import { openSqlite, type SqliteDatabase } from "../../core/storage/sqlite.node.ts"
import type { BenchContext, BenchSection, Measurement } from "../Benchmark.ts"

/** Rows per transaction in the batched variant: the bus's publish window. */
const batchSize = (ctx: BenchContext) => ctx.window

const open = (file: string): SqliteDatabase => {
  const db = openSqlite(file)
  db.pragma("journal_mode = WAL")
  db.pragma("synchronous = FULL")
  db.exec(`
    create table messages (
      seq integer primary key autoincrement,
      stream text not null,
      subject text not null,
      msg_id text not null,
      key text,
      headers text not null,
      data blob not null,
      published_at integer not null
    );
    create index messages_msg_id on messages (stream, msg_id);
  `)
  return db
}

const measure = (db: SqliteDatabase, ctx: BenchContext): Array<Measurement> => {
  const insert = db.prepare(
    "insert into messages (stream, subject, msg_id, key, headers, data, published_at) values (?, ?, ?, ?, ?, ?, ?)",
  )
  const payload = Buffer.from(ctx.payload)
  const row = (id: string) => insert.run("bench", "bench.pub", id, null, "{}", payload, Date.now())
  const budgetMs = Duration.toMillis(ctx.budget)

  let started = performance.now()
  let single = 0
  while (single < ctx.count && performance.now() - started < budgetMs) row(`single-${single++}`)
  const singleSeconds = (performance.now() - started) / 1_000

  const size = batchSize(ctx)
  const batch = db.transaction((from: number) => {
    for (let i = 0; i < size; i++) row(`batch-${from + i}`)
  })
  started = performance.now()
  let batched = 0
  // Batches are fast: measure ten times the count so the figure is not a few milliseconds.
  while (batched < ctx.count * 10 && performance.now() - started < budgetMs) {
    batch(batched)
    batched += size
  }
  const batchedSeconds = (performance.now() - started) / 1_000

  return [
    {
      name: "sqlite.raw.insert.row-per-tx",
      label: "insert, 1 row per transaction",
      ops: single,
      seconds: singleSeconds,
    },
    {
      name: "sqlite.raw.insert.batched",
      label: `insert, ${size} rows per transaction`,
      ops: batched,
      seconds: batchedSeconds,
    },
  ]
}

export const sqliteRaw: BenchSection = {
  name: "sqlite-raw",
  title: "SQLite, raw better-sqlite3 (WAL, synchronous=FULL)",
  run: (ctx) =>
    Effect.acquireRelease(
      Effect.try(() => open(join(ctx.workDir, "raw.sqlite"))),
      (db) => Effect.sync(() => db.close()),
    ).pipe(Effect.flatMap((db) => Effect.try(() => measure(db, ctx)))),
}
