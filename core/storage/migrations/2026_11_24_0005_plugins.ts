/**
 * The plugin host's own tables (core/plugins/PluginHost.ts):
 * - `chorus_plugin_state`: whether an operator disabled a plugin (kept across restarts), and
 *   the setting values set through the API, as JSON, over the manifest's defaults;
 * - `chorus_plugin_kv`: each plugin's small key-value store (`chorus.storage.kv`), values as JSON.
 */
import type { Kysely } from "kysely"

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable("chorus_plugin_state")
    .addColumn("plugin", "text", (c) => c.primaryKey())
    .addColumn("enabled", "integer", (c) => c.notNull())
    .addColumn("settings", "text", (c) => c.notNull().defaultTo("{}"))
    .addColumn("updated_at", "bigint", (c) => c.notNull())
    .execute()
  await db.schema
    .createTable("chorus_plugin_kv")
    .addColumn("plugin", "text", (c) => c.notNull())
    .addColumn("key", "text", (c) => c.notNull())
    .addColumn("value", "text", (c) => c.notNull())
    .addColumn("updated_at", "bigint", (c) => c.notNull())
    .addPrimaryKeyConstraint("chorus_plugin_kv_pk", ["plugin", "key"])
    .execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable("chorus_plugin_kv").ifExists().execute()
  await db.schema.dropTable("chorus_plugin_state").ifExists().execute()
}
