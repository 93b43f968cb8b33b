import { assert, describe, it } from "@effect/vitest"
import { Effect, Option, TestClock } from "effect"
import * as Totp from "../../core/accounts/Totp.ts"
import { failureTag, openAccounts, PASSWORD, stores } from "./AccountsTest.ts"

for (const [store, database] of stores) {
  describe(`Operators on ${store}`, () => {
    it.scoped("adds an operator with a lower-cased e-mail and defaults; finds them by id and e-mail", () =>
      Effect.gen(function* () {
        const { db, operators } = yield* openAccounts(database)
        yield* TestClock.setTime(1_800_000_000_000)
        const ann = yield* operators.add({
          email: "  Ann@Example.COM ",
          name: " Ann Lee ",
          role: "admin",
          password: PASSWORD,
        })
        assert.strictEqual(ann.email, "ann@example.com")
        assert.strictEqual(ann.name, "Ann Lee")
        assert.strictEqual(ann.role, "admin")
        assert.strictEqual(ann.capacity, 6)
        assert.strictEqual(ann.locale, "en")
        assert.strictEqual(ann.presence, "offline")
        assert.isFalse(ann.totpEnabled)
        assert.isFalse(ann.disabled)
        assert.deepStrictEqual(ann.teamIds, [])
        assert.strictEqual(ann.createdAt.getTime(), 1_800_000_000_000)

        assert.deepStrictEqual(yield* operators.get(ann.id), Option.some(ann))
        assert.deepStrictEqual(yield* operators.byEmail("ANN@example.com "), Option.some(ann))
        assert.isTrue(Option.isNone(yield* operators.byEmail("bob@example.com")))

        const row = yield* db.query(
          "read",
          (k) => k.selectFrom("chorus_operators").selectAll().executeTakeFirstOrThrow(),
        )
        assert.match(row.password_hash, /^scrypt\$/)
        assert.notInclude(row.password_hash, PASSWORD)
      }))

    it.scoped("refuses a taken e-mail (whatever its case), a weak password and bad fields", () =>
      Effect.gen(function* () {
        const { operators } = yield* openAccounts(database)
        const base = {
          email: "ann@example.com",
          name: "Ann",
          role: "operator",
          password: PASSWORD,
        } as const
        yield* operators.add(base)
        assert.strictEqual(
          yield* failureTag(operators.add({ ...base, email: "ANN@example.com" })),
          "OperatorEmailTaken",
        )
        assert.strictEqual(
          yield* failureTag(
            operators.add({ ...base, email: "bob@example.com", password: "short" }),
          ),
          "WeakPassword",
        )
        for (
          const bad of [
            { email: "not an e-mail" },
            { name: "   " },
            { capacity: 101 },
            { capacity: 1.5 },
            { role: "root" as never },
          ]
        ) {
          assert.strictEqual(
            yield* failureTag(operators.add({ ...base, email: "carol@example.com", ...bad })),
            "InvalidAccountInput",
            JSON.stringify(bad),
          )
        }
        assert.strictEqual((yield* operators.list()).length, 1)
      }))

    it.scoped("lists everyone by name, with their teams", () =>
      Effect.gen(function* () {
        const { operators, teams } = yield* openAccounts(database)
        const zoe = yield* operators.add({
          email: "z@x.io",
          name: "Zoe",
          role: "operator",
          password: PASSWORD,
        })
        const bob = yield* operators.add({
          email: "b@x.io",
          name: "Bob",
          role: "supervisor",
          password: PASSWORD,
          capacity: 3,
          locale: "ru",
        })
        const team = yield* teams.add("Support")
        yield* teams.addMember(team.id, zoe.id)
        const list = yield* operators.list()
        assert.deepStrictEqual(list.map((o) => o.name), ["Bob", "Zoe"])
        assert.deepStrictEqual(list.map((o) => o.teamIds), [[], [team.id]])
        assert.strictEqual(list[0]!.capacity, 3)
        assert.strictEqual(list[0]!.locale, "ru")
        assert.strictEqual(list[0]!.id, bob.id)
      }))

    it.scoped("updates fields; the last enabled admin can be neither demoted nor disabled", () =>
      Effect.gen(function* () {
        const { operators } = yield* openAccounts(database)
        const ann = yield* operators.add({
          email: "ann@x.io",
          name: "Ann",
          role: "admin",
          password: PASSWORD,
        })
        const updated = yield* operators.update(ann.id, {
          name: "Ann L.",
          capacity: 2,
          presence: "online",
          locale: "ru",
        })
        assert.deepInclude(updated, {
          name: "Ann L.",
          capacity: 2,
          presence: "online",
          locale: "ru",
          role: "admin",
        })

        assert.strictEqual(
          yield* failureTag(operators.update(ann.id, { role: "operator" })),
          "LastAdmin",
        )
        assert.strictEqual(
          yield* failureTag(operators.update(ann.id, { disabled: true })),
          "LastAdmin",
        )
        assert.strictEqual(
          yield* failureTag(operators.update(ann.id, { role: "supervisor", disabled: true })),
          "LastAdmin",
        )
        assert.strictEqual(Option.getOrThrow(yield* operators.get(ann.id)).role, "admin")

        // A disabled admin is no admin for this rule.
        const bob = yield* operators.add({
          email: "bob@x.io",
          name: "Bob",
          role: "admin",
          password: PASSWORD,
        })
        yield* operators.update(bob.id, { disabled: true })
        assert.strictEqual(
          yield* failureTag(operators.update(ann.id, { role: "operator" })),
          "LastAdmin",
        )

        yield* operators.update(bob.id, { disabled: false })
        const demoted = yield* operators.update(ann.id, { role: "operator" })
        assert.strictEqual(demoted.role, "operator")
        assert.strictEqual(
          yield* failureTag(operators.update(bob.id, { disabled: true })),
          "LastAdmin",
        )
        // Staying an admin while changing something else is fine.
        assert.strictEqual((yield* operators.update(bob.id, { capacity: 9 })).capacity, 9)

        assert.strictEqual(
          yield* failureTag(operators.update(ann.id, { capacity: -1 })),
          "InvalidAccountInput",
        )
        assert.strictEqual(
          yield* failureTag(operators.update("01JAAAAAAAAAAAAAAAAAAAAAAA" as never, { name: "x" })),
          "OperatorNotFound",
        )
      }))

    it.scoped("two admins demoting each other at once: one of them stays admin", () =>
      Effect.gen(function* () {
        const { operators } = yield* openAccounts(database)
        for (let round = 0; round < 3; round++) {
          const a = yield* operators.add({
            email: `a${round}@x.io`,
            name: "A",
            role: "admin",
            password: PASSWORD,
          })
          const b = yield* operators.add({
            email: `b${round}@x.io`,
            name: "B",
            role: "admin",
            password: PASSWORD,
          })
          // Whoever is left from the previous round steps down first.
          for (const o of yield* operators.list()) {
            if (o.role === "admin" && o.id !== a.id && o.id !== b.id) {
              yield* operators.update(o.id, { role: "operator" })
            }
          }
          const results = yield* Effect.all(
            [
              failureTag(operators.update(a.id, { role: "operator" })),
              failureTag(operators.update(b.id, { disabled: true })),
            ],
            { concurrency: "unbounded" },
          )
          assert.sameMembers(results, ["no failure", "LastAdmin"])
          const admins = (yield* operators.list()).filter((o) => o.role === "admin" && !o.disabled)
          assert.strictEqual(admins.length, 1)
        }
      }))

    it.scoped("TOTP enrolment: begin, confirm with a code from the app, disable with a fresh one", () =>
      Effect.gen(function* () {
        const { db, operators } = yield* openAccounts(database)
        yield* TestClock.setTime(1_800_000_000_000)
        const ann = yield* operators.add({
          email: "ann@x.io",
          name: "Ann",
          role: "operator",
          password: PASSWORD,
        })
        assert.strictEqual(yield* failureTag(operators.confirmTotp(ann.id, "123456")), "TotpState")
        assert.strictEqual(yield* failureTag(operators.disableTotp(ann.id, "123456")), "TotpState")

        const { secret, uri } = yield* operators.beginTotp(ann.id)
        assert.match(secret, /^[A-Z2-7]{32}$/)
        assert.include(uri, `secret=${secret}`)
        assert.include(uri, "ann%40x.io")
        // Begun, not enabled: sign-in does not ask for a code yet.
        assert.isFalse(Option.getOrThrow(yield* operators.get(ann.id)).totpEnabled)

        const now = 1_800_000_000_000
        const right = Totp.codeAt(secret, now)
        const wrong = String((Number(right) + 500_000) % 1_000_000).padStart(6, "0")
        assert.strictEqual(
          yield* failureTag(operators.confirmTotp(ann.id, wrong)),
          "InvalidTotpCode",
        )
        const enabled = yield* operators.confirmTotp(ann.id, right)
        assert.isTrue(enabled.totpEnabled)
        assert.strictEqual(yield* failureTag(operators.beginTotp(ann.id)), "TotpState")

        // The code that confirmed cannot be used again, even within its 90 seconds.
        assert.strictEqual(
          yield* failureTag(operators.disableTotp(ann.id, right)),
          "InvalidTotpCode",
        )
        yield* TestClock.adjust("30 seconds")
        const disabled = yield* operators.disableTotp(ann.id, Totp.codeAt(secret, now + 30_000))
        assert.isFalse(disabled.totpEnabled)
        const row = yield* db.query(
          "read",
          (k) =>
            k.selectFrom("chorus_operators").select(["totp_secret", "totp_enabled"])
              .executeTakeFirstOrThrow(),
        )
        assert.isNull(row.totp_secret)

        // Admin recovery turns it off without a code.
        const again = yield* operators.beginTotp(ann.id)
        yield* operators.confirmTotp(ann.id, Totp.codeAt(again.secret, now + 30_000))
        assert.isFalse((yield* operators.resetTotp(ann.id)).totpEnabled)
      }))
  })
}
