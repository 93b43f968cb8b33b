/**
 * When a queued conversation's customer was told their place in line (`routing.queueMessage`),
 * so they are told once, whatever restarts happen.
 */
import type { Kysely } from "kysely"

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable("conversations").addColumn("queue_announced_at", "bigint").execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable("conversations").dropColumn("queue_announced_at").execute()
}
