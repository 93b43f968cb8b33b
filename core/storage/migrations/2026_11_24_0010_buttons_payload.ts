/**
 * Buttons under an outgoing message (JSON rows of `{ text, payload | url }`) and the payload of
 * an incoming one (a pressed button's, a deep link's parameter).
 */
import type { Kysely } from "kysely"

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable("messages").addColumn("buttons", "text").execute()
  await db.schema.alterTable("messages").addColumn("payload", "text").execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable("messages").dropColumn("payload").execute()
  await db.schema.alterTable("messages").dropColumn("buttons").execute()
}
