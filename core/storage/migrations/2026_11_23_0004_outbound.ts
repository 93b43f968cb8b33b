/**
 * Replies: what an outgoing message needs beyond the columns it shares with inbound ones.
 *
 * - `client_id`: the API client's idempotency key (`Idempotency-Key` / `clientId`); unique per
 *   conversation, so a client's retry of a reply stores it once.
 * - `delivery_attempts`: how many times the channel tried to send it (retries included).
 * - An index of the replies still `queued`: the outbox a starting node re-publishes.
 */
import { type Kysely, sql } from "kysely"

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable("messages").addColumn("client_id", "text").execute()
  await db.schema.alterTable("messages")
    .addColumn("delivery_attempts", "integer", (c) => c.notNull().defaultTo(0))
    .execute()
  await sql`CREATE UNIQUE INDEX messages_outbound_client ON messages (conversation_id, client_id) WHERE client_id IS NOT NULL`
    .execute(db)
  await sql`CREATE INDEX messages_outbox ON messages (created_at, id) WHERE delivery_state = 'queued'`
    .execute(db)
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex("messages_outbox").ifExists().execute()
  await db.schema.dropIndex("messages_outbound_client").ifExists().execute()
  await db.schema.alterTable("messages").dropColumn("delivery_attempts").execute()
  await db.schema.alterTable("messages").dropColumn("client_id").execute()
}
