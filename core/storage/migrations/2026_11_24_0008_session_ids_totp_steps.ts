/**
 * Two columns the accounts services need (core/accounts):
 *
 * - `chorus_sessions.public_id`: a session's public id (a ULID). The row's id is the SHA-256 of
 *   the cookie's token, which is a lookup key and not something to hand to a browser listing
 *   "your sessions" or to put in a sign-out URL; the public id is.
 * - `chorus_operators.totp_last_step`: the last TOTP time step an operator used. A code is
 *   valid for up to 90 s (the window), so without it a code seen over a shoulder or in a proxy
 *   log could be replayed; kept in the database rather than in memory so every node refuses
 *   the replay, and a conditional update makes the check atomic.
 */
import type { Kysely } from "kysely"

export async function up(db: Kysely<any>): Promise<void> {
  // The table is new in 0007 and empty until sign-in exists, so no backfill is needed; the
  // column stays nullable because SQLite cannot add a NOT NULL column without a default.
  await db.schema.alterTable("chorus_sessions").addColumn("public_id", "text").execute()
  await db.schema.createIndex("chorus_sessions_public_id").on("chorus_sessions")
    .column("public_id").unique().execute()
  await db.schema.alterTable("chorus_operators").addColumn("totp_last_step", "bigint").execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable("chorus_operators").dropColumn("totp_last_step").execute()
  await db.schema.dropIndex("chorus_sessions_public_id").ifExists().execute()
  await db.schema.alterTable("chorus_sessions").dropColumn("public_id").execute()
}
