/**
 * Operators, teams, sign-in sessions and the inbox's conversation fields.
 *
 * - `chorus_operators`: people who work in the inbox: e-mail (unique, lower-case), role
 *   (admin | supervisor | operator), scrypt password hash, optional TOTP secret, presence
 *   (online | away | offline) and capacity (concurrent conversations routing may give them).
 * - `chorus_teams`, `chorus_team_members`, `chorus_team_inboxes`: a team owns inboxes (a channel
 *   account, or every account of a channel with account `*`); an inbox belongs to one team.
 * - `chorus_sessions`: sign-in sessions; only the SHA-256 of the cookie's token is kept, with the
 *   session's CSRF token.
 * - `chorus_login_failures`: wrong passwords per key (an e-mail, an address), for throttling
 *   that survives restarts and is shared by every node.
 * - `chorus_canned_responses`: saved answers with a short code, for everyone or one team.
 * - conversations gain the inbox's fields: owning team, when it was assigned, since when the
 *   customer waits for an answer (the queue's order), unread count, snooze time, whether the
 *   assignee answered since the assignment, and who last let it go back to the queue.
 * - messages gain `mentions` (JSON array of operator ids, notes only).
 */
import type { Kysely } from "kysely"

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.createTable("chorus_operators")
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("email", "text", (c) => c.notNull().unique())
    .addColumn("name", "text", (c) => c.notNull())
    .addColumn("role", "text", (c) => c.notNull())
    .addColumn("password_hash", "text", (c) => c.notNull())
    .addColumn("totp_secret", "text")
    .addColumn("totp_enabled", "integer", (c) => c.notNull().defaultTo(0))
    .addColumn("presence", "text", (c) => c.notNull().defaultTo("offline"))
    .addColumn("capacity", "integer", (c) => c.notNull().defaultTo(6))
    .addColumn("locale", "text", (c) => c.notNull().defaultTo("en"))
    .addColumn("disabled", "integer", (c) => c.notNull().defaultTo(0))
    .addColumn("created_at", "bigint", (c) => c.notNull())
    .addColumn("updated_at", "bigint", (c) => c.notNull())
    .addColumn("last_assigned_at", "bigint")
    .execute()

  await db.schema.createTable("chorus_teams")
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("name", "text", (c) => c.notNull().unique())
    .addColumn("created_at", "bigint", (c) => c.notNull())
    .execute()
  await db.schema.createTable("chorus_team_members")
    .addColumn("team_id", "text", (c) => c.notNull().references("chorus_teams.id"))
    .addColumn("operator_id", "text", (c) => c.notNull().references("chorus_operators.id"))
    .addPrimaryKeyConstraint("chorus_team_members_pk", ["team_id", "operator_id"])
    .execute()
  await db.schema.createIndex("chorus_team_members_operator")
    .on("chorus_team_members").column("operator_id").execute()
  await db.schema.createTable("chorus_team_inboxes")
    .addColumn("channel", "text", (c) => c.notNull())
    .addColumn("account", "text", (c) => c.notNull())
    .addColumn("team_id", "text", (c) => c.notNull().references("chorus_teams.id"))
    .addPrimaryKeyConstraint("chorus_team_inboxes_pk", ["channel", "account"])
    .execute()

  await db.schema.createTable("chorus_sessions")
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("operator_id", "text", (c) => c.notNull().references("chorus_operators.id"))
    .addColumn("csrf_token", "text", (c) => c.notNull())
    .addColumn("created_at", "bigint", (c) => c.notNull())
    .addColumn("last_seen_at", "bigint", (c) => c.notNull())
    .addColumn("expires_at", "bigint", (c) => c.notNull())
    .addColumn("user_agent", "text")
    .addColumn("address", "text")
    .execute()
  await db.schema.createIndex("chorus_sessions_operator")
    .on("chorus_sessions").column("operator_id").execute()

  await db.schema.createTable("chorus_login_failures")
    .addColumn("key", "text", (c) => c.primaryKey())
    .addColumn("failures", "integer", (c) => c.notNull())
    .addColumn("first_failed_at", "bigint", (c) => c.notNull())
    .addColumn("locked_until", "bigint")
    .execute()

  await db.schema.createTable("chorus_canned_responses")
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("short_code", "text", (c) => c.notNull().unique())
    .addColumn("text", "text", (c) => c.notNull())
    .addColumn("team_id", "text")
    .addColumn("created_by", "text")
    .addColumn("created_at", "bigint", (c) => c.notNull())
    .addColumn("updated_at", "bigint", (c) => c.notNull())
    .execute()

  for (
    const [name, type] of [
      ["team_id", "text"],
      ["assigned_at", "bigint"],
      ["waiting_since", "bigint"],
      ["snoozed_until", "bigint"],
      ["assignee_replied_at", "bigint"],
      ["requeued_from", "text"],
    ] as const
  ) {
    await db.schema.alterTable("conversations").addColumn(name, type).execute()
  }
  await db.schema.alterTable("conversations")
    .addColumn("unread_count", "integer", (c) => c.notNull().defaultTo(0)).execute()
  await db.schema.createIndex("conversations_queue")
    .on("conversations").columns(["status", "assignee_id", "team_id", "waiting_since"]).execute()
  await db.schema.createIndex("conversations_team_updated")
    .on("conversations").columns(["team_id", "updated_at", "id"]).execute()
  await db.schema.alterTable("messages").addColumn("mentions", "text").execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable("messages").dropColumn("mentions").execute()
  await db.schema.dropIndex("conversations_team_updated").ifExists().execute()
  await db.schema.dropIndex("conversations_queue").ifExists().execute()
  for (
    const name of [
      "unread_count",
      "requeued_from",
      "assignee_replied_at",
      "snoozed_until",
      "waiting_since",
      "assigned_at",
      "team_id",
    ]
  ) {
    await db.schema.alterTable("conversations").dropColumn(name).execute()
  }
  for (
    const table of [
      "chorus_canned_responses",
      "chorus_login_failures",
      "chorus_sessions",
      "chorus_team_inboxes",
      "chorus_team_members",
      "chorus_teams",
      "chorus_operators",
    ]
  ) {
    await db.schema.dropTable(table).ifExists().execute()
  }
}
