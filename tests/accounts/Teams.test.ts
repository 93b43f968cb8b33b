import { assert, describe, it } from "@effect/vitest"
import { Effect, Option } from "effect"
import type { TeamId } from "../../schemas/Ids.ts"
import { failureTag, openAccounts, PASSWORD, stores } from "./AccountsTest.ts"

for (const [store, database] of stores) {
  describe(`Teams on ${store}`, () => {
    it.scoped("adds, lists by name, renames and refuses a taken name", () =>
      Effect.gen(function* () {
        const { teams } = yield* openAccounts(database)
        const support = yield* teams.add(" Support ")
        assert.strictEqual(support.name, "Support")
        const billing = yield* teams.add("Billing")
        assert.deepStrictEqual((yield* teams.list()).map((t) => t.name), ["Billing", "Support"])
        assert.deepStrictEqual(yield* teams.get(support.id), Option.some(support))
        assert.deepStrictEqual(yield* teams.byName("Billing"), Option.some(billing))
        assert.strictEqual(yield* failureTag(teams.add("Support")), "TeamNameTaken")
        assert.strictEqual(yield* failureTag(teams.add("  ")), "InvalidAccountInput")
        assert.strictEqual(yield* failureTag(teams.rename(billing.id, "Support")), "TeamNameTaken")
        assert.strictEqual((yield* teams.rename(billing.id, "Sales")).name, "Sales")
        assert.strictEqual(
          yield* failureTag(teams.rename("01JAAAAAAAAAAAAAAAAAAAAAAA" as TeamId, "X")),
          "TeamNotFound",
        )
      }))

    it.scoped("members: added once, listed on the team and the operator, removed with the team", () =>
      Effect.gen(function* () {
        const { operators, teams } = yield* openAccounts(database)
        const ann = yield* operators.add({
          email: "ann@x.io",
          name: "Ann",
          role: "operator",
          password: PASSWORD,
        })
        const support = yield* teams.add("Support")
        const sales = yield* teams.add("Sales")
        yield* teams.addMember(support.id, ann.id)
        const twice = yield* teams.addMember(support.id, ann.id)
        assert.deepStrictEqual(twice.memberIds, [ann.id])
        yield* teams.addMember(sales.id, ann.id)
        assert.deepStrictEqual(
          (yield* teams.teamsOf(ann.id)).map((t) => t.name),
          ["Sales", "Support"],
        )
        assert.sameMembers(
          [...Option.getOrThrow(yield* operators.get(ann.id)).teamIds],
          [support.id, sales.id],
        )
        assert.strictEqual(
          yield* failureTag(teams.addMember(support.id, "01JAAAAAAAAAAAAAAAAAAAAAAA" as never)),
          "OperatorNotFound",
        )
        assert.strictEqual(
          yield* failureTag(teams.addMember("01JAAAAAAAAAAAAAAAAAAAAAAA" as TeamId, ann.id)),
          "TeamNotFound",
        )

        const removed = yield* teams.removeMember(sales.id, ann.id)
        assert.deepStrictEqual(removed.memberIds, [])
        yield* teams.claimInbox(support.id, { channel: "telegram", account: "*" })
        yield* teams.remove(support.id)
        assert.isTrue(Option.isNone(yield* teams.get(support.id)))
        assert.deepStrictEqual(Option.getOrThrow(yield* operators.get(ann.id)).teamIds, [])
        assert.isTrue(Option.isNone(yield* teams.teamForInbox("telegram", "@bot")))
        assert.strictEqual(yield* failureTag(teams.remove(support.id)), "TeamNotFound")
      }))

    it.scoped("an inbox belongs to one team; an exact account wins over the channel's *", () =>
      Effect.gen(function* () {
        const { teams } = yield* openAccounts(database)
        const support = yield* teams.add("Support")
        const vip = yield* teams.add("VIP")
        const first = yield* teams.claimInbox(support.id, { channel: "telegram", account: "*" })
        assert.isTrue(Option.isNone(first.movedFrom))
        assert.deepStrictEqual(first.team.inboxes, [{ channel: "telegram", account: "*" }] as never)
        yield* teams.claimInbox(vip.id, { channel: "telegram", account: "@acme_vip_bot" })

        assert.deepStrictEqual(
          yield* teams.teamForInbox("telegram", "@acme_vip_bot"),
          Option.some(vip.id),
        )
        assert.deepStrictEqual(
          yield* teams.teamForInbox("telegram", "@acme_bot"),
          Option.some(support.id),
        )
        assert.isTrue(Option.isNone(yield* teams.teamForInbox("whatsapp", "+15550100")))

        // Claiming an inbox another team owns moves it, and says from where.
        const moved = yield* teams.claimInbox(support.id, {
          channel: "telegram",
          account: "@acme_vip_bot",
        })
        assert.deepStrictEqual(moved.movedFrom, Option.some(vip.id))
        assert.deepStrictEqual(Option.getOrThrow(yield* teams.get(vip.id)).inboxes, [])
        assert.deepStrictEqual(
          yield* teams.teamForInbox("telegram", "@acme_vip_bot"),
          Option.some(support.id),
        )
        // Claiming one's own inbox again moves nothing.
        const again = yield* teams.claimInbox(support.id, { channel: "telegram", account: "*" })
        assert.isTrue(Option.isNone(again.movedFrom))

        assert.deepStrictEqual(
          yield* teams.releaseInbox({ channel: "telegram", account: "*" }),
          Option.some(support.id),
        )
        assert.isTrue(Option.isNone(yield* teams.teamForInbox("telegram", "@acme_bot")))
        assert.isTrue(
          Option.isNone(yield* teams.releaseInbox({ channel: "telegram", account: "*" })),
        )
        assert.strictEqual(
          yield* failureTag(teams.claimInbox(vip.id, { channel: "Tele Gram", account: "x" })),
          "InvalidAccountInput",
        )
        assert.strictEqual(
          yield* failureTag(teams.claimInbox(vip.id, { channel: "email", account: "" })),
          "InvalidAccountInput",
        )
      }))
  })
}
