/**
 * The identity graph: what we know about a contact and how sure we are of it.
 *
 * - `contacts` gains a row version (compare-and-set for merges and edits), `merged_into` (a
 *   merged contact is kept, pointing at the survivor, so a split can bring it back), a lower-cased
 *   name for prefix search, and custom fields (JSON).
 * - `identity_signals`: one row per (contact, kind, value, source): a phone, an e-mail or an
 *   external id, normalised, with where it came from and whether it is verified or only claimed.
 * - `contact_merges`: every merge, who and why, and the ids it moved (what a split moves back).
 * - `merge_suggestions`: weaker matches for an operator to decide, one per pair of contacts.
 * - `inbox_settings`: per inbox (channel account), how conversations are kept.
 * - `messages.channel_reason`: why an outgoing message went out on its channel.
 */
import { type Kysely, sql } from "kysely"

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable("contacts")
    .addColumn("version", "integer", (c) => c.notNull().defaultTo(1)).execute()
  await db.schema.alterTable("contacts").addColumn("merged_into", "text").execute()
  await db.schema.alterTable("contacts").addColumn("name_lower", "text").execute()
  await db.schema.alterTable("contacts")
    .addColumn("custom", "text", (c) => c.notNull().defaultTo("{}")).execute()
  await sql`UPDATE contacts SET name_lower = lower(name) WHERE name IS NOT NULL`.execute(db)
  await db.schema.createIndex("contacts_name_lower")
    .on("contacts").columns(["name_lower", "id"]).execute()
  await db.schema.createIndex("contacts_merged_into")
    .on("contacts").column("merged_into").execute()

  // Search by a provider's id, whatever the channel.
  await db.schema.createIndex("channel_identities_external_id")
    .on("channel_identities").column("external_id").execute()

  await db.schema.createTable("identity_signals")
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("contact_id", "text", (c) => c.notNull().references("contacts.id"))
    .addColumn("kind", "text", (c) => c.notNull())
    .addColumn("value", "text", (c) => c.notNull())
    .addColumn("source", "text", (c) => c.notNull())
    .addColumn("verification", "text", (c) => c.notNull())
    .addColumn("identity_id", "text")
    .addColumn("first_seen_at", "bigint", (c) => c.notNull())
    .addColumn("last_seen_at", "bigint", (c) => c.notNull())
    .execute()
  await db.schema.createIndex("identity_signals_value")
    .on("identity_signals").columns(["kind", "value"]).execute()
  await db.schema.createIndex("identity_signals_contact")
    .on("identity_signals").columns(["contact_id", "kind"]).execute()
  await db.schema.createIndex("identity_signals_identity")
    .on("identity_signals").column("identity_id").execute()
  // Existing identities' phones and e-mails become signals, with the trust they had.
  await sql`INSERT INTO identity_signals
      (id, contact_id, kind, value, source, verification, identity_id, first_seen_at, last_seen_at)
    SELECT 'sp' || id, contact_id, 'phone', phone, channel || ':sender',
      CASE WHEN verification = 'verified' THEN 'verified' ELSE 'claimed' END,
      id, created_at, COALESCE(last_seen_at, created_at)
    FROM channel_identities WHERE phone IS NOT NULL`.execute(db)
  await sql`INSERT INTO identity_signals
      (id, contact_id, kind, value, source, verification, identity_id, first_seen_at, last_seen_at)
    SELECT 'se' || id, contact_id, 'email', lower(email), channel || ':sender',
      CASE WHEN verification = 'verified' THEN 'verified' ELSE 'claimed' END,
      id, created_at, COALESCE(last_seen_at, created_at)
    FROM channel_identities WHERE email IS NOT NULL`.execute(db)

  await db.schema.createTable("contact_merges")
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("target_id", "text", (c) => c.notNull())
    .addColumn("source_id", "text", (c) => c.notNull())
    /** automatic | manual | suggestion */
    .addColumn("kind", "text", (c) => c.notNull())
    .addColumn("reason", "text", (c) => c.notNull())
    .addColumn("merged_by", "text", (c) => c.notNull())
    .addColumn("evidence", "text", (c) => c.notNull())
    /** JSON: the ids moved and the survivor's fields before the merge. */
    .addColumn("moved", "text", (c) => c.notNull())
    .addColumn("created_at", "bigint", (c) => c.notNull())
    .addColumn("split_at", "bigint")
    .addColumn("split_by", "text")
    .addColumn("split_reason", "text")
    .execute()
  await db.schema.createIndex("contact_merges_target")
    .on("contact_merges").columns(["target_id", "created_at"]).execute()
  await db.schema.createIndex("contact_merges_source")
    .on("contact_merges").column("source_id").execute()

  await db.schema.createTable("merge_suggestions")
    .addColumn("id", "text", (c) => c.primaryKey())
    /** The pair, smaller id first: one suggestion per pair, whatever found it. */
    .addColumn("contact_a", "text", (c) => c.notNull())
    .addColumn("contact_b", "text", (c) => c.notNull())
    .addColumn("evidence", "text", (c) => c.notNull())
    /** open | accepted | rejected */
    .addColumn("status", "text", (c) => c.notNull())
    .addColumn("created_at", "bigint", (c) => c.notNull())
    .addColumn("decided_at", "bigint")
    .addColumn("decided_by", "text")
    .execute()
  await db.schema.createIndex("merge_suggestions_pair")
    .on("merge_suggestions").columns(["contact_a", "contact_b"]).unique().execute()
  await db.schema.createIndex("merge_suggestions_b")
    .on("merge_suggestions").column("contact_b").execute()
  await db.schema.createIndex("merge_suggestions_status")
    .on("merge_suggestions").columns(["status", "created_at", "id"]).execute()

  await db.schema.createTable("inbox_settings")
    .addColumn("channel", "text", (c) => c.notNull())
    .addColumn("account", "text", (c) => c.notNull())
    /** per_contact (default) | per_channel */
    .addColumn("conversation_mode", "text", (c) => c.notNull())
    .addPrimaryKeyConstraint("inbox_settings_pk", ["channel", "account"])
    .execute()

  await db.schema.alterTable("messages").addColumn("channel_reason", "text").execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable("messages").dropColumn("channel_reason").execute()
  await db.schema.dropTable("inbox_settings").ifExists().execute()
  await db.schema.dropTable("merge_suggestions").ifExists().execute()
  await db.schema.dropTable("contact_merges").ifExists().execute()
  await db.schema.dropTable("identity_signals").ifExists().execute()
  await db.schema.dropIndex("channel_identities_external_id").ifExists().execute()
  await db.schema.dropIndex("contacts_merged_into").ifExists().execute()
  await db.schema.dropIndex("contacts_name_lower").ifExists().execute()
  for (const column of ["custom", "name_lower", "merged_into", "version"]) {
    await db.schema.alterTable("contacts").dropColumn(column).execute()
  }
}
