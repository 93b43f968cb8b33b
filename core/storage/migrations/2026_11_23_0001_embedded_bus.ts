/**
 * Tables of the embedded bus (core/bus/EmbeddedBus.ts), on SQLite and PostgreSQL alike.
 *
 * Sequences and dead-letter ids never go backwards or get reused: consumer cursors and
 * dead-letter pagination rely on it. SQLite therefore uses `AUTOINCREMENT` (a plain rowid
 * would restart at 1 once retention emptied the table), PostgreSQL `bigserial`.
 */
import { type Kysely, PostgresAdapter, sql } from "kysely"

const isPostgres = (db: Kysely<any>): boolean => {
  const adapter = db.getExecutor().adapter
  return adapter instanceof PostgresAdapter || adapter.constructor.name === "PostgresAdapter"
}

export async function up(db: Kysely<any>): Promise<void> {
  const pg = isPostgres(db)
  const blob = pg ? "bytea" : "blob"

  await db.schema
    .createTable("bus_streams")
    .addColumn("namespace", "text", (c) => c.notNull())
    .addColumn("name", "text", (c) => c.notNull())
    .addColumn("subjects", "text", (c) => c.notNull())
    .addColumn("max_age_ms", "bigint", (c) => c.notNull())
    .addColumn("duplicate_window_ms", "bigint", (c) => c.notNull())
    .addColumn("updated_at", "bigint", (c) => c.notNull())
    .addPrimaryKeyConstraint("bus_streams_pk", ["namespace", "name"])
    .execute()

  await db.schema
    .createTable("bus_messages")
    .addColumn(
      "seq",
      pg ? "bigserial" : "integer",
      (c) => (pg ? c.primaryKey() : c.primaryKey().autoIncrement()),
    )
    .addColumn("namespace", "text", (c) => c.notNull())
    .addColumn("stream", "text", (c) => c.notNull())
    .addColumn("subject", "text", (c) => c.notNull())
    .addColumn("msg_id", "text", (c) => c.notNull())
    .addColumn("key", "text")
    .addColumn("headers", "text", (c) => c.notNull())
    .addColumn("data", sql.raw(blob), (c) => c.notNull())
    .addColumn("published_at", "bigint", (c) => c.notNull())
    .execute()
  // Consumers scan a stream in sequence order; publish looks up ids in the duplicate window;
  // retention deletes by age.
  await db.schema.createIndex("bus_messages_stream_seq").on("bus_messages")
    .columns(["namespace", "stream", "seq"]).execute()
  // published_at is part of the id index so the planner (no statistics) never prefers the
  // age index for the duplicate lookup, which would scan the whole duplicate window.
  await db.schema.createIndex("bus_messages_stream_msg_id").on("bus_messages")
    .columns(["namespace", "stream", "msg_id", "published_at"]).execute()
  await db.schema.createIndex("bus_messages_stream_published_at").on("bus_messages")
    .columns(["namespace", "stream", "published_at"]).execute()

  await db.schema
    .createTable("bus_consumers")
    .addColumn("namespace", "text", (c) => c.notNull())
    .addColumn("stream", "text", (c) => c.notNull())
    .addColumn("name", "text", (c) => c.notNull())
    .addColumn("filter", "text")
    .addColumn("delivered_seq", "bigint", (c) => c.notNull())
    .addColumn("config", "text", (c) => c.notNull())
    .addColumn("created_at", "bigint", (c) => c.notNull())
    .addPrimaryKeyConstraint("bus_consumers_pk", ["namespace", "stream", "name"])
    .execute()

  await db.schema
    .createTable("bus_pending")
    .addColumn("namespace", "text", (c) => c.notNull())
    .addColumn("stream", "text", (c) => c.notNull())
    .addColumn("consumer", "text", (c) => c.notNull())
    .addColumn("seq", "bigint", (c) => c.notNull())
    .addColumn("deliveries", "integer", (c) => c.notNull())
    .addColumn("due_at", "bigint", (c) => c.notNull())
    .addPrimaryKeyConstraint("bus_pending_pk", ["namespace", "stream", "consumer", "seq"])
    .execute()
  await db.schema.createIndex("bus_pending_due").on("bus_pending")
    .columns(["namespace", "stream", "consumer", "due_at"]).execute()

  await db.schema
    .createTable("bus_dead_letters")
    .addColumn(
      "id",
      pg ? "bigserial" : "integer",
      (c) => (pg ? c.primaryKey() : c.primaryKey().autoIncrement()),
    )
    .addColumn("namespace", "text", (c) => c.notNull())
    .addColumn("stream", "text", (c) => c.notNull())
    .addColumn("consumer", "text", (c) => c.notNull())
    .addColumn("subject", "text", (c) => c.notNull())
    .addColumn("msg_id", "text", (c) => c.notNull())
    .addColumn("key", "text")
    .addColumn("headers", "text", (c) => c.notNull())
    .addColumn("data", sql.raw(blob), (c) => c.notNull())
    .addColumn("seq", "bigint", (c) => c.notNull())
    .addColumn("deliveries", "integer", (c) => c.notNull())
    .addColumn("reason", "text", (c) => c.notNull())
    .addColumn("dead_at", "bigint", (c) => c.notNull())
    // Dead-lettering the same delivery twice (a retry after a lost answer) stores it once.
    .addUniqueConstraint("bus_dead_letters_once", ["namespace", "consumer", "stream", "seq"])
    .execute()
  await db.schema.createIndex("bus_dead_letters_consumer_id").on("bus_dead_letters")
    .columns(["namespace", "consumer", "id"]).execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  for (
    const table of [
      "bus_dead_letters",
      "bus_pending",
      "bus_consumers",
      "bus_messages",
      "bus_streams",
    ]
  ) {
    await db.schema.dropTable(table).ifExists().execute()
  }
}
