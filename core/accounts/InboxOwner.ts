/**
 * Which team owns an inbox: the channel account's own entry, else the channel's `*`. One query,
 * used where a conversation is opened (in its transaction), by `Teams.teamForInbox` and by the
 * web chat's availability.
 */
import type { Kysely } from "kysely"
import type { CoreTables } from "../storage/tables.ts"

export const inboxOwner = async (
  db: Kysely<CoreTables>,
  channel: string,
  account: string,
): Promise<string | undefined> => {
  const rows = await db.selectFrom("chorus_team_inboxes").select(["account", "team_id"])
    .where("channel", "=", channel)
    .where("account", "in", [account, "*"])
    .execute()
  return (rows.find((r) => r.account === account) ?? rows.find((r) => r.account === "*"))
    ?.team_id
}
