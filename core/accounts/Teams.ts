/**
 * Teams: groups of operators that own inboxes. An inbox is one channel account
 * (`telegram:@acme_bot`) or every account of a channel (`telegram:*`); it belongs to one team,
 * and a conversation arriving on it goes to that team. For a conversation's channel and
 * account, an exact inbox wins over the channel's `*`.
 *
 * ```ts
 * const teams = yield* Teams
 * const support = yield* teams.add("Support")
 * yield* teams.addMember(support.id, ann.id)
 * const { movedFrom } = yield* teams.claimInbox(support.id, { channel: "telegram", account: "*" })
 * yield* teams.teamForInbox("telegram", "@acme_bot") // Option.some(support.id)
 * ```
 */
import { Clock, Context, Effect, Layer, Option } from "effect"
import type { OperatorId, TeamId } from "../../schemas/Ids.ts"
import { Inbox, type Team, TeamName } from "../../schemas/Operator.ts"
import { newId } from "../ids.ts"
import { inboxOwner } from "./InboxOwner.ts"
import { Database, type DatabaseError } from "../storage/Database.ts"
import {
  type InvalidAccountInput,
  OperatorNotFound,
  TeamNameTaken,
  TeamNotFound,
} from "./AccountErrors.ts"
import { decodeField, isUniqueViolation } from "./OperatorRecords.ts"
import { SessionCache } from "./SessionCache.ts"

export interface InboxClaim {
  readonly team: Team
  /** The team that owned the inbox until now, if another one did. */
  readonly movedFrom: Option.Option<TeamId>
}

export interface TeamsShape {
  readonly add: (
    name: string,
  ) => Effect.Effect<Team, TeamNameTaken | InvalidAccountInput | DatabaseError>
  /** Every team, by name. */
  readonly list: () => Effect.Effect<ReadonlyArray<Team>, DatabaseError>
  readonly get: (id: TeamId) => Effect.Effect<Option.Option<Team>, DatabaseError>
  readonly byName: (name: string) => Effect.Effect<Option.Option<Team>, DatabaseError>
  readonly rename: (
    id: TeamId,
    name: string,
  ) => Effect.Effect<Team, TeamNotFound | TeamNameTaken | InvalidAccountInput | DatabaseError>
  /** Deletes the team, its memberships and its inboxes (which then belong to nobody). */
  readonly remove: (id: TeamId) => Effect.Effect<void, TeamNotFound | DatabaseError>
  /** Adds the operator to the team (nothing changes if they are in it already). */
  readonly addMember: (
    teamId: TeamId,
    operatorId: OperatorId,
  ) => Effect.Effect<Team, TeamNotFound | OperatorNotFound | DatabaseError>
  readonly removeMember: (
    teamId: TeamId,
    operatorId: OperatorId,
  ) => Effect.Effect<Team, TeamNotFound | DatabaseError>
  /** Gives the inbox to the team, taking it from its previous team if any (see `movedFrom`). */
  readonly claimInbox: (
    teamId: TeamId,
    inbox: { readonly channel: string; readonly account: string },
  ) => Effect.Effect<InboxClaim, TeamNotFound | InvalidAccountInput | DatabaseError>
  /** The inbox belongs to no team any more; answers the team it belonged to. */
  readonly releaseInbox: (
    inbox: { readonly channel: string; readonly account: string },
  ) => Effect.Effect<Option.Option<TeamId>, DatabaseError>
  /** The team owning `channel:account`, else the one owning `channel:*`. */
  readonly teamForInbox: (
    channel: string,
    account: string,
  ) => Effect.Effect<Option.Option<TeamId>, DatabaseError>
  /** The operator's teams, by name. */
  readonly teamsOf: (operatorId: OperatorId) => Effect.Effect<ReadonlyArray<Team>, DatabaseError>
}

export const make = Effect.gen(function* () {
  const database = yield* Database
  const cache = yield* SessionCache

  /** Teams with their members and inboxes; `ids` undefined for all of them. */
  const load = (where: { ids?: ReadonlyArray<string>; name?: string }) =>
    Effect.gen(function* () {
      if (where.ids !== undefined && where.ids.length === 0) return []
      const rows = yield* database.query("teams.load", (db) => {
        let q = db.selectFrom("chorus_teams").selectAll().orderBy("name").orderBy("id")
        if (where.ids !== undefined) q = q.where("id", "in", where.ids)
        if (where.name !== undefined) q = q.where("name", "=", where.name)
        return q.execute()
      })
      if (rows.length === 0) return []
      const ids = rows.map((r) => r.id)
      const [members, inboxes] = yield* Effect.all([
        database.query(
          "teams.members",
          (db) =>
            db.selectFrom("chorus_team_members").selectAll().where("team_id", "in", ids)
              .orderBy("operator_id").execute(),
        ),
        database.query(
          "teams.inboxes",
          (db) =>
            db.selectFrom("chorus_team_inboxes").selectAll().where("team_id", "in", ids)
              .orderBy("channel").orderBy("account").execute(),
        ),
      ])
      return rows.map((r): Team => ({
        id: r.id as TeamId,
        name: r.name,
        memberIds: members.filter((m) => m.team_id === r.id).map((m) =>
          m.operator_id as OperatorId
        ),
        inboxes: inboxes.filter((i) => i.team_id === r.id).map((i) => ({
          channel: i.channel as Inbox["channel"],
          account: i.account as Inbox["account"],
        })),
        createdAt: new Date(Number(r.created_at)),
      }))
    })

  const one = (id: string) =>
    load({ ids: [id] }).pipe(
      Effect.flatMap((teams) =>
        teams[0] === undefined
          ? Effect.fail(new TeamNotFound({ team: id }))
          : Effect.succeed(teams[0])
      ),
    )

  const add = Effect.fn("Teams.add")(function* (rawName: string) {
    const name = yield* decodeField(TeamName, "team name", rawName)
    const now = yield* Clock.currentTimeMillis
    const id = newId.team()
    yield* database.query(
      "teams.insert",
      (db) => db.insertInto("chorus_teams").values({ id, name, created_at: now }).execute(),
    ).pipe(Effect.catchIf((e) => isUniqueViolation(e.cause), () => new TeamNameTaken({ name })))
    return { id, name, memberIds: [], inboxes: [], createdAt: new Date(now) } satisfies Team
  })

  const list = Effect.fn("Teams.list")(function* () {
    return yield* load({})
  })

  const get = Effect.fn("Teams.get")(function* (id: TeamId) {
    return Option.fromNullable((yield* load({ ids: [id] }))[0])
  })

  const byName = Effect.fn("Teams.byName")(function* (name: string) {
    return Option.fromNullable((yield* load({ name: name.trim() }))[0])
  })

  const rename = Effect.fn("Teams.rename")(function* (id: TeamId, rawName: string) {
    const name = yield* decodeField(TeamName, "team name", rawName)
    const result = yield* database.query(
      "teams.rename",
      (db) => db.updateTable("chorus_teams").set({ name }).where("id", "=", id).executeTakeFirst(),
    ).pipe(Effect.catchIf((e) => isUniqueViolation(e.cause), () => new TeamNameTaken({ name })))
    if (result.numUpdatedRows === 0n) return yield* new TeamNotFound({ team: id })
    return yield* one(id)
  })

  const remove = Effect.fn("Teams.remove")(function* (id: TeamId) {
    const deleted = yield* database.transaction("teams.remove", async (trx) => {
      await trx.deleteFrom("chorus_team_members").where("team_id", "=", id).execute()
      await trx.deleteFrom("chorus_team_inboxes").where("team_id", "=", id).execute()
      const result = await trx.deleteFrom("chorus_teams").where("id", "=", id).executeTakeFirst()
      return result.numDeletedRows > 0n
    })
    if (!deleted) return yield* new TeamNotFound({ team: id })
    // Members' sessions carry their team ids.
    cache.clear()
  })

  const addMember = Effect.fn("Teams.addMember")(
    function* (teamId: TeamId, operatorId: OperatorId) {
      yield* one(teamId)
      const operator = yield* database.query(
        "teams.member_operator",
        (db) =>
          db.selectFrom("chorus_operators").select("id").where("id", "=", operatorId)
            .executeTakeFirst(),
      )
      if (operator === undefined) return yield* new OperatorNotFound({ operator: operatorId })
      yield* database.query(
        "teams.add_member",
        (db) =>
          db.insertInto("chorus_team_members").values({ team_id: teamId, operator_id: operatorId })
            .onConflict((oc) => oc.columns(["team_id", "operator_id"]).doNothing()).execute(),
      )
      cache.dropOperator(operatorId)
      return yield* one(teamId)
    },
  )

  const removeMember = Effect.fn("Teams.removeMember")(
    function* (teamId: TeamId, operatorId: OperatorId) {
      yield* one(teamId)
      yield* database.query(
        "teams.remove_member",
        (db) =>
          db.deleteFrom("chorus_team_members").where("team_id", "=", teamId)
            .where("operator_id", "=", operatorId).execute(),
      )
      cache.dropOperator(operatorId)
      return yield* one(teamId)
    },
  )

  const decodeInbox = (inbox: { readonly channel: string; readonly account: string }) =>
    decodeField(Inbox, "inbox", inbox)

  const claimInbox = Effect.fn("Teams.claimInbox")(
    function* (teamId: TeamId, raw: { readonly channel: string; readonly account: string }) {
      const inbox = yield* decodeInbox(raw)
      yield* one(teamId)
      const previous = yield* database.transaction("teams.claim_inbox", async (trx) => {
        const owner = await trx.selectFrom("chorus_team_inboxes").select("team_id")
          .where("channel", "=", inbox.channel).where("account", "=", inbox.account)
          .executeTakeFirst()
        await trx.insertInto("chorus_team_inboxes")
          .values({ channel: inbox.channel, account: inbox.account, team_id: teamId })
          .onConflict((oc) => oc.columns(["channel", "account"]).doUpdateSet({ team_id: teamId }))
          .execute()
        return owner?.team_id
      })
      const team = yield* one(teamId)
      return {
        team,
        movedFrom: previous === undefined || previous === teamId
          ? Option.none()
          : Option.some(previous as TeamId),
      } satisfies InboxClaim
    },
  )

  const releaseInbox = Effect.fn("Teams.releaseInbox")(
    function* (inbox: { readonly channel: string; readonly account: string }) {
      const owner = yield* database.transaction("teams.release_inbox", async (trx) => {
        const found = await trx.selectFrom("chorus_team_inboxes").select("team_id")
          .where("channel", "=", inbox.channel).where("account", "=", inbox.account)
          .executeTakeFirst()
        await trx.deleteFrom("chorus_team_inboxes").where("channel", "=", inbox.channel)
          .where("account", "=", inbox.account).execute()
        return found?.team_id
      })
      return Option.fromNullable(owner as TeamId | undefined)
    },
  )

  const teamForInbox = Effect.fn("Teams.teamForInbox")(
    function* (channel: string, account: string) {
      const owner = yield* database.query(
        "teams.for_inbox",
        (db) => inboxOwner(db, channel, account),
      )
      return Option.fromNullable(owner as TeamId | undefined)
    },
  )

  const teamsOf = Effect.fn("Teams.teamsOf")(function* (operatorId: OperatorId) {
    const memberships = yield* database.query(
      "teams.of_operator",
      (db) =>
        db.selectFrom("chorus_team_members").select("team_id")
          .where("operator_id", "=", operatorId).execute(),
    )
    return yield* load({ ids: memberships.map((m) => m.team_id) })
  })

  return {
    add,
    list,
    get,
    byName,
    rename,
    remove,
    addMember,
    removeMember,
    claimInbox,
    releaseInbox,
    teamForInbox,
    teamsOf,
  } satisfies TeamsShape
})

export class Teams extends Context.Tag("chorus/core/accounts/Teams")<Teams, TeamsShape>() {
  /** Needs `Database` and the process's `SessionCache` (see `AccountsLive`). */
  static readonly layer: Layer.Layer<Teams, never, Database | SessionCache> = Layer.effect(
    Teams,
    make,
  )
}
