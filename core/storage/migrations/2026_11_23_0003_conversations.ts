/**
 * Contacts, channel identities, conversations and messages. Works on SQLite and PostgreSQL.
 *
 * The unique indexes carry the pipeline's guarantees: one identity per (channel, account,
 * external id); one stored inbound message per (channel, account, external id), whatever the
 * redeliveries; gap-free, unique sequence numbers per conversation.
 */
import { type Kysely, sql } from "kysely"

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.createTable("contacts")
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("name", "text")
    .addColumn("created_at", "bigint", (c) => c.notNull())
    .addColumn("updated_at", "bigint", (c) => c.notNull())
    .execute()

  await db.schema.createTable("channel_identities")
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("contact_id", "text", (c) => c.notNull().references("contacts.id"))
    .addColumn("channel", "text", (c) => c.notNull())
    .addColumn("account", "text", (c) => c.notNull())
    .addColumn("external_id", "text", (c) => c.notNull())
    .addColumn("name", "text")
    .addColumn("phone", "text")
    .addColumn("email", "text")
    .addColumn("verification", "text", (c) => c.notNull())
    .addColumn("reachable", "integer", (c) => c.notNull().defaultTo(1))
    .addColumn("created_at", "bigint", (c) => c.notNull())
    .addColumn("last_seen_at", "bigint")
    .execute()
  await db.schema.createIndex("channel_identities_external")
    .on("channel_identities").columns(["channel", "account", "external_id"]).unique().execute()
  await db.schema.createIndex("channel_identities_contact")
    .on("channel_identities").column("contact_id").execute()
  await db.schema.createIndex("channel_identities_phone")
    .on("channel_identities").column("phone").execute()
  await db.schema.createIndex("channel_identities_email")
    .on("channel_identities").column("email").execute()

  await db.schema.createTable("conversations")
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("contact_id", "text", (c) => c.notNull().references("contacts.id"))
    .addColumn("status", "text", (c) => c.notNull())
    .addColumn("assignee_id", "text")
    .addColumn("last_channel", "text")
    .addColumn("last_account", "text")
    .addColumn("last_identity_id", "text")
    .addColumn("last_seq", "integer", (c) => c.notNull().defaultTo(0))
    .addColumn("created_at", "bigint", (c) => c.notNull())
    .addColumn("updated_at", "bigint", (c) => c.notNull())
    .addColumn("last_message_at", "bigint")
    .addColumn("resolved_at", "bigint")
    .execute()
  await db.schema.createIndex("conversations_contact_status")
    .on("conversations").columns(["contact_id", "status"]).execute()
  await db.schema.createIndex("conversations_status_updated")
    .on("conversations").columns(["status", "updated_at", "id"]).execute()
  await db.schema.createIndex("conversations_assignee_status")
    .on("conversations").columns(["assignee_id", "status", "updated_at"]).execute()

  await db.schema.createTable("messages")
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("conversation_id", "text", (c) => c.notNull().references("conversations.id"))
    .addColumn("seq", "integer", (c) => c.notNull())
    .addColumn("direction", "text", (c) => c.notNull())
    .addColumn("channel", "text")
    .addColumn("account", "text")
    .addColumn("identity_id", "text")
    .addColumn("external_id", "text")
    .addColumn("author_id", "text")
    .addColumn("text", "text", (c) => c.notNull())
    .addColumn("attachments", "text", (c) => c.notNull().defaultTo("[]"))
    .addColumn("delivery_state", "text")
    .addColumn("delivery_at", "bigint")
    .addColumn("delivery_error", "text")
    .addColumn("sent_at", "bigint")
    .addColumn("received_at", "bigint")
    .addColumn("created_at", "bigint", (c) => c.notNull())
    .execute()
  // History pages read newest first by seq: the primary access path.
  await db.schema.createIndex("messages_conversation_seq")
    .on("messages").columns(["conversation_id", "seq"]).unique().execute()
  // What makes a provider's redelivery a duplicate (inbound only; outbound ids arrive later).
  await sql`CREATE UNIQUE INDEX messages_inbound_external ON messages (channel, account, external_id) WHERE direction = 'in'`
    .execute(db)
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable("messages").ifExists().execute()
  await db.schema.dropTable("conversations").ifExists().execute()
  await db.schema.dropTable("channel_identities").ifExists().execute()
  await db.schema.dropTable("contacts").ifExists().execute()
}
