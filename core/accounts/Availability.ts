/**
 * Whether anybody can answer an inbox now: the operators who are online (and not disabled) in
 * the team that owns the channel account (its own entry, else the channel's `*`); for an inbox
 * no team owns, the online admins (they get its conversations). The web chat shows its offline
 * form when this is zero.
 */
import { Effect } from "effect"
import type { DatabaseShape } from "../storage/Database.ts"
import { inboxOwner } from "./InboxOwner.ts"

export const onlineOperatorsFor = (database: DatabaseShape, channel: string, account: string) =>
  Effect.gen(function* () {
    const owner = yield* database.query("inbox owner", (db) => inboxOwner(db, channel, account))
    const row = yield* database.query("online operators", (db) => {
      const online = db.selectFrom("chorus_operators")
        .select((eb) => eb.fn.countAll<number | string>().as("n"))
        .where("presence", "=", "online")
        .where("disabled", "=", 0)
      return (owner === undefined ? online.where("role", "=", "admin") : online.where(
        "id",
        "in",
        db.selectFrom("chorus_team_members").select("operator_id")
          .where("team_id", "=", owner),
      )).executeTakeFirstOrThrow()
    })
    return Number(row.n)
  })
