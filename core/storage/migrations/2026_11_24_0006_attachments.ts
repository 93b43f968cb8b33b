/**
 * The attachment store's index (core/attachments/AttachmentStore.ts): one row per stored file,
 * keyed by its content hash, with the type it was checked as. And `chorus_secrets`: keys the
 * installation makes for itself once (the attachment link signing key), shared by every node.
 */
import type { Kysely } from "kysely"

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable("attachment_files")
    .addColumn("key", "text", (c) => c.primaryKey())
    .addColumn("mime_type", "text", (c) => c.notNull())
    .addColumn("size", "bigint", (c) => c.notNull())
    .addColumn("created_at", "bigint", (c) => c.notNull())
    .execute()
  await db.schema
    .createTable("chorus_secrets")
    .addColumn("name", "text", (c) => c.primaryKey())
    .addColumn("value", "text", (c) => c.notNull())
    .addColumn("created_at", "bigint", (c) => c.notNull())
    .execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable("chorus_secrets").ifExists().execute()
  await db.schema.dropTable("attachment_files").ifExists().execute()
}
