/**
 * Delivery that never gives up quietly (core/delivery, actors/channel):
 *
 * - `messages_by_external`: a provider's receipt (delivered, read, failed, a bounce) names the
 *   sent message by its provider id on the channel account.
 * - `messages.fallback_of` / `fallback_to`: a reply the channel could not deliver and the copy
 *   sent instead on the customer's next reachable channel point at each other.
 * - `delivery_attempts`: every provider call of every reply, with how it ended.
 * - `outbound_dead_letters`: replies that ended `failed` with no fallback, until a person retries
 *   or discards them.
 */
import { type Kysely, sql } from "kysely"

export async function up(db: Kysely<any>): Promise<void> {
  await sql`CREATE INDEX messages_by_external ON messages (channel, account, external_id) WHERE direction = 'out' AND external_id IS NOT NULL`
    .execute(db)
  await db.schema.alterTable("messages").addColumn("fallback_of", "text").execute()
  await db.schema.alterTable("messages").addColumn("fallback_to", "text").execute()

  await db.schema.createTable("delivery_attempts")
    .addColumn("message_id", "text", (c) => c.notNull())
    .addColumn("attempt", "integer", (c) => c.notNull())
    .addColumn("channel", "text", (c) => c.notNull())
    .addColumn("account", "text", (c) => c.notNull())
    .addColumn("started_at", "bigint", (c) => c.notNull())
    .addColumn("duration_ms", "integer", (c) => c.notNull())
    /** sent | unavailable | rejected | timeout */
    .addColumn("outcome", "text", (c) => c.notNull())
    .addColumn("code", "text")
    .addColumn("reason", "text")
    .addPrimaryKeyConstraint("delivery_attempts_pk", ["message_id", "attempt"])
    .execute()

  await db.schema.createTable("outbound_dead_letters")
    .addColumn("message_id", "text", (c) => c.primaryKey())
    .addColumn("conversation_id", "text", (c) => c.notNull())
    .addColumn("channel", "text", (c) => c.notNull())
    .addColumn("account", "text", (c) => c.notNull())
    .addColumn("code", "text", (c) => c.notNull())
    .addColumn("reason", "text", (c) => c.notNull())
    .addColumn("attempts", "integer", (c) => c.notNull())
    .addColumn("dead_at", "bigint", (c) => c.notNull())
    .addColumn("resolved_at", "bigint")
    .addColumn("resolved_by", "text")
    /** retried | discarded */
    .addColumn("resolution", "text")
    .execute()
  await sql`CREATE INDEX outbound_dead_letters_open ON outbound_dead_letters (dead_at, message_id) WHERE resolved_at IS NULL`
    .execute(db)
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable("outbound_dead_letters").ifExists().execute()
  await db.schema.dropTable("delivery_attempts").ifExists().execute()
  await db.schema.alterTable("messages").dropColumn("fallback_to").execute()
  await db.schema.alterTable("messages").dropColumn("fallback_of").execute()
  await db.schema.dropIndex("messages_by_external").ifExists().execute()
}
