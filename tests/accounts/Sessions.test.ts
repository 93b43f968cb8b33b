import { createHash } from "node:crypto"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Option, Redacted, TestClock } from "effect"
import { csrfMatches } from "../../core/accounts/Sessions.ts"
import * as Totp from "../../core/accounts/Totp.ts"
import {
  accountsOver,
  failure,
  failureTag,
  openAccounts,
  PASSWORD,
  stores,
} from "./AccountsTest.ts"

const T0 = 1_800_000_000_000

/** Ann (an operator) and Adam (an admin, so Ann can be disabled). */
const withAnn = (open: ReturnType<typeof openAccounts>) =>
  Effect.gen(function* () {
    const accounts = yield* open
    yield* TestClock.setTime(T0)
    const ann = yield* accounts.operators.add({
      email: "ann@x.io",
      name: "Ann",
      role: "operator",
      password: PASSWORD,
    })
    yield* accounts.operators.add({
      email: "adam@x.io",
      name: "Adam",
      role: "admin",
      password: PASSWORD,
    })
    return { ...accounts, ann }
  })

for (const [store, database] of stores) {
  describe(`Sessions on ${store}`, () => {
    it.scoped("signs in, verifies the token, signs out; only the token's hash is stored", () =>
      Effect.gen(function* () {
        const { ann, db, sessions } = yield* withAnn(openAccounts(database))
        const { info, token } = yield* sessions.signIn({
          email: " ANN@x.io",
          password: PASSWORD,
          userAgent: "Firefox",
          address: "203.0.113.9",
        })
        const plaintext = Redacted.value(token)
        assert.match(plaintext, /^chs_[A-Za-z0-9_-]{43}$/)
        assert.strictEqual(info.operator.id, ann.id)
        assert.match(info.csrfToken, /^[A-Za-z0-9_-]{43}$/)
        assert.strictEqual(info.expiresAt.getTime(), T0 + 12 * 3600_000)
        assert.match(info.sessionId, /^[0-9A-HJKMNP-TV-Z]{26}$/)

        const rows = yield* db.query(
          "read",
          (k) => k.selectFrom("chorus_sessions").selectAll().execute(),
        )
        assert.strictEqual(rows.length, 1)
        assert.strictEqual(rows[0]!.id, createHash("sha256").update(plaintext).digest("hex"))
        for (const value of Object.values(rows[0]!)) {
          assert.notInclude(String(value), plaintext.slice(4))
        }

        const me = yield* sessions.verify(plaintext)
        assert.strictEqual(me.operator.id, ann.id)
        assert.strictEqual(me.info.sessionId, info.sessionId)
        assert.isTrue(csrfMatches(me.info, info.csrfToken))
        assert.isFalse(csrfMatches(me.info, info.csrfToken.slice(1)))
        assert.isFalse(csrfMatches(me.info, undefined))

        const listed = yield* sessions.list(ann.id)
        assert.deepStrictEqual(listed, [{
          id: info.sessionId,
          createdAt: new Date(T0),
          lastSeenAt: new Date(T0),
          expiresAt: info.expiresAt,
          userAgent: "Firefox",
          address: "203.0.113.9",
        }])

        assert.isTrue(yield* sessions.signOut(info.sessionId))
        // At once, though the verification was cached a moment ago.
        assert.deepInclude(yield* failure(sessions.verify(plaintext)), {
          _tag: "InvalidSession",
          reason: "unknown",
        })
        assert.isFalse(yield* sessions.signOut(info.sessionId))
        for (
          const bad of [
            "",
            "chs_short",
            plaintext.slice(0, -1) + (plaintext.endsWith("A") ? "B" : "A"),
          ]
        ) {
          assert.strictEqual(yield* failureTag(sessions.verify(bad)), "InvalidSession")
        }
      }))

    it.scoped("one answer for an unknown e-mail, a wrong password and a disabled operator", () =>
      Effect.gen(function* () {
        const { ann, operators, sessions } = yield* withAnn(openAccounts(database))
        assert.strictEqual(
          yield* failureTag(sessions.signIn({ email: "nobody@x.io", password: PASSWORD })),
          "InvalidCredentials",
        )
        assert.strictEqual(
          yield* failureTag(sessions.signIn({ email: "ann@x.io", password: PASSWORD + "!" })),
          "InvalidCredentials",
        )
        assert.strictEqual(
          yield* failureTag(sessions.signIn({ email: "", password: "" })),
          "InvalidCredentials",
        )
        const { token } = yield* sessions.signIn({ email: "ann@x.io", password: PASSWORD })
        yield* sessions.verify(Redacted.value(token))
        yield* operators.update(ann.id, { disabled: true })
        // Disabling ends the sessions at once, cache or not.
        assert.strictEqual(
          yield* failureTag(sessions.verify(Redacted.value(token))),
          "InvalidSession",
        )
        assert.strictEqual(
          yield* failureTag(sessions.signIn({ email: "ann@x.io", password: PASSWORD })),
          "InvalidCredentials",
        )
        yield* operators.update(ann.id, { disabled: false })
        yield* sessions.signIn({ email: "ann@x.io", password: PASSWORD })
      }))

    it.scoped("signs out everywhere, and a new password ends every session", () =>
      Effect.gen(function* () {
        const { ann, operators, sessions } = yield* withAnn(openAccounts(database))
        const a = yield* sessions.signIn({ email: "ann@x.io", password: PASSWORD })
        const b = yield* sessions.signIn({ email: "ann@x.io", password: PASSWORD })
        const adam = yield* sessions.signIn({ email: "adam@x.io", password: PASSWORD })
        for (const s of [a, b, adam]) yield* sessions.verify(Redacted.value(s.token))
        assert.strictEqual((yield* sessions.list(ann.id)).length, 2)
        assert.strictEqual(yield* sessions.signOutEverywhere(ann.id), 2)
        for (const s of [a, b]) {
          assert.strictEqual(
            yield* failureTag(sessions.verify(Redacted.value(s.token))),
            "InvalidSession",
          )
        }
        yield* sessions.verify(Redacted.value(adam.token))
        assert.strictEqual(yield* sessions.signOutEverywhere(ann.id), 0)

        const c = yield* sessions.signIn({ email: "ann@x.io", password: PASSWORD })
        yield* sessions.verify(Redacted.value(c.token))
        yield* operators.setPassword(ann.id, "a new long passphrase")
        assert.strictEqual(
          yield* failureTag(sessions.verify(Redacted.value(c.token))),
          "InvalidSession",
        )
        assert.strictEqual(
          yield* failureTag(sessions.signIn({ email: "ann@x.io", password: PASSWORD })),
          "InvalidCredentials",
        )
        yield* sessions.signIn({ email: "ann@x.io", password: "a new long passphrase" })
        assert.strictEqual(
          yield* failureTag(operators.setPassword(ann.id, "short")),
          "WeakPassword",
        )
      }))

    it.scoped("expires after the idle timeout; each request (at most once a minute) moves the end", () =>
      Effect.gen(function* () {
        const { db, sessions } = yield* withAnn(openAccounts(database))
        const { token } = yield* sessions.signIn({ email: "ann@x.io", password: PASSWORD })
        const plaintext = Redacted.value(token)
        const stored = db.query(
          "read",
          (k) =>
            k.selectFrom("chorus_sessions").select(["last_seen_at", "expires_at"])
              .executeTakeFirstOrThrow(),
        ).pipe(Effect.map((r) => [Number(r.last_seen_at), Number(r.expires_at)]))

        yield* TestClock.adjust("30 seconds")
        yield* sessions.verify(plaintext)
        assert.deepStrictEqual(yield* stored, [T0, T0 + 12 * 3600_000])

        yield* TestClock.adjust("11 hours")
        const moved = yield* sessions.verify(plaintext)
        const now = T0 + 30_000 + 11 * 3600_000
        assert.deepStrictEqual(yield* stored, [now, now + 12 * 3600_000])
        assert.strictEqual(moved.info.expiresAt.getTime(), now + 12 * 3600_000)

        yield* TestClock.adjust("11 hours")
        yield* sessions.verify(plaintext)
        yield* TestClock.adjust("12 hours")
        assert.deepInclude(yield* failure(sessions.verify(plaintext)), { reason: "expired" })
        // The expired row is gone.
        assert.strictEqual(
          (yield* db.query("count", (k) => k.selectFrom("chorus_sessions").selectAll().execute()))
            .length,
          0,
        )
      }))

    it.scoped("ends at the absolute limit however active the operator is", () =>
      Effect.gen(function* () {
        const { sessions } = yield* withAnn(
          openAccounts(database, {
            sessions: { idleTimeout: "1 hour", absoluteTimeout: "3 hours" },
          }),
        )
        const { info, token } = yield* sessions.signIn({ email: "ann@x.io", password: PASSWORD })
        assert.strictEqual(info.expiresAt.getTime(), T0 + 3600_000)
        const plaintext = Redacted.value(token)
        for (let i = 0; i < 5; i++) {
          yield* TestClock.adjust("30 minutes")
          yield* sessions.verify(plaintext)
        }
        // 2.5 hours in: the idle end would be 3.5 hours, the absolute one wins.
        const late = yield* sessions.verify(plaintext)
        assert.strictEqual(late.info.expiresAt.getTime(), T0 + 3 * 3600_000)
        yield* TestClock.adjust("29 minutes")
        yield* sessions.verify(plaintext)
        yield* TestClock.adjust("1 minute")
        assert.deepInclude(yield* failure(sessions.verify(plaintext)), { reason: "expired" })
      }))

    it.scoped("another process's sign-out is seen within two seconds (the verified cache)", () =>
      Effect.gen(function* () {
        const { db, sessions } = yield* withAnn(openAccounts(database))
        const { info, token } = yield* sessions.signIn({ email: "ann@x.io", password: PASSWORD })
        yield* sessions.verify(Redacted.value(token))
        const cli = yield* accountsOver(db)
        assert.isTrue(yield* cli.sessions.signOut(info.sessionId))
        yield* TestClock.adjust("1 second")
        yield* sessions.verify(Redacted.value(token))
        yield* TestClock.adjust("1 second")
        assert.strictEqual(
          yield* failureTag(sessions.verify(Redacted.value(token))),
          "InvalidSession",
        )
      }))

    it.scoped("with TOTP: asks for the code, refuses a wrong one and a replayed step", () =>
      Effect.gen(function* () {
        const { ann, db, operators, sessions } = yield* withAnn(openAccounts(database))
        const { secret } = yield* operators.beginTotp(ann.id)
        yield* operators.confirmTotp(ann.id, Totp.codeAt(secret, T0))
        const signIn = (totp?: string) =>
          sessions.signIn({
            email: "ann@x.io",
            password: PASSWORD,
            ...(totp !== undefined ? { totp } : {}),
          })

        assert.strictEqual(yield* failureTag(signIn()), "TotpRequired")
        // A wrong password with no code is still just wrong credentials.
        assert.strictEqual(
          yield* failureTag(sessions.signIn({ email: "ann@x.io", password: "wrong password!" })),
          "InvalidCredentials",
        )
        yield* TestClock.adjust("30 seconds")
        const code = Totp.codeAt(secret, T0 + 30_000)
        const wrong = String((Number(code) + 500_000) % 1_000_000).padStart(6, "0")
        assert.strictEqual(yield* failureTag(signIn(wrong)), "InvalidTotpCode")
        const signedIn = yield* signIn(code)
        assert.isTrue(signedIn.info.operator.totpEnabled)
        // The same code again (still inside its window): refused, also by another node.
        assert.strictEqual(yield* failureTag(signIn(code)), "InvalidTotpCode")
        const otherNode = yield* accountsOver(db)
        assert.strictEqual(
          yield* failureTag(
            otherNode.sessions.signIn({ email: "ann@x.io", password: PASSWORD, totp: code }),
          ),
          "InvalidTotpCode",
        )
        // The step the enrolment used is spent too.
        assert.strictEqual(yield* failureTag(signIn(Totp.codeAt(secret, T0))), "InvalidTotpCode")
        yield* TestClock.adjust("30 seconds")
        yield* signIn(Totp.codeAt(secret, T0 + 60_000))
      }))

    it.scoped("throttles: 5 failures lock the e-mail, even the right password waits", () =>
      Effect.gen(function* () {
        const { sessions } = yield* withAnn(openAccounts(database))
        for (let i = 0; i < 5; i++) {
          assert.strictEqual(
            yield* failureTag(
              sessions.signIn({ email: "ann@x.io", password: `wrong password ${i}` }),
            ),
            "InvalidCredentials",
          )
        }
        const locked = yield* failure(sessions.signIn({ email: "ann@x.io", password: PASSWORD }))
        assert.deepInclude(locked, { _tag: "LoginThrottled", retryAfterSeconds: 60 })
        // Others sign in as usual.
        yield* sessions.signIn({ email: "adam@x.io", password: PASSWORD })
        yield* TestClock.adjust("1 minute")
        yield* sessions.signIn({ email: "ann@x.io", password: PASSWORD })
        // The success cleared the count: four more mistakes do not lock.
        for (let i = 0; i < 4; i++) {
          yield* failureTag(sessions.signIn({ email: "ann@x.io", password: `wrong password ${i}` }))
        }
        yield* sessions.signIn({ email: "ann@x.io", password: PASSWORD })
      }))

    it.scoped("wrong TOTP codes count as failures; unknown e-mails are throttled too", () =>
      Effect.gen(function* () {
        const { ann, operators, sessions } = yield* withAnn(openAccounts(database))
        const { secret } = yield* operators.beginTotp(ann.id)
        yield* operators.confirmTotp(ann.id, Totp.codeAt(secret, T0))
        const valid = [-30_000, 0, 30_000].map((d) => Totp.codeAt(secret, T0 + d))
        let n = 0
        for (let tries = 0; tries < 5; n++) {
          const code = String(n).padStart(6, "0")
          if (valid.includes(code)) continue
          tries++
          assert.strictEqual(
            yield* failureTag(
              sessions.signIn({ email: "ann@x.io", password: PASSWORD, totp: code }),
            ),
            "InvalidTotpCode",
          )
        }
        assert.strictEqual(
          yield* failureTag(
            sessions.signIn({ email: "ann@x.io", password: PASSWORD, totp: valid[2]! }),
          ),
          "LoginThrottled",
        )
        for (let i = 0; i < 5; i++) {
          yield* failureTag(sessions.signIn({ email: "ghost@x.io", password: PASSWORD }))
        }
        assert.strictEqual(
          yield* failureTag(sessions.signIn({ email: "ghost@x.io", password: PASSWORD })),
          "LoginThrottled",
        )
        assert.isTrue(Option.isSome(yield* operators.get(ann.id)))
      }))
  })
}
