import { assert, describe, it } from "@effect/vitest"
import { Effect, TestClock } from "effect"
import type { LoginThrottled } from "../../core/accounts/mod.ts"
import { accountsOver, failure, failureTag, openAccounts, stores } from "./AccountsTest.ts"

const EMAIL = ["email:ann@x.io"]
/** The seconds `check` asks to wait (a test failure if it does not refuse). */
const retryAfter = (effect: Effect.Effect<void, { _tag: string }>) =>
  failure(effect).pipe(
    Effect.map((e) => {
      assert.strictEqual(e._tag, "LoginThrottled")
      return (e as LoginThrottled).retryAfterSeconds
    }),
  )

const times = (n: number, effect: Effect.Effect<void, unknown>) =>
  Effect.forEach(Array.from({ length: n }), () => effect, { discard: true })

for (const [store, database] of stores) {
  describe(`LoginThrottle on ${store}`, () => {
    it.scoped("locks a key after 5 failures in 15 minutes, for 1 minute, then twice as long each time", () =>
      Effect.gen(function* () {
        const { throttle } = yield* openAccounts(database)
        yield* TestClock.setTime(1_800_000_000_000)
        yield* times(4, throttle.recordFailure(EMAIL))
        yield* throttle.check(EMAIL)
        yield* throttle.recordFailure(EMAIL)
        assert.strictEqual(yield* retryAfter(throttle.check(EMAIL)), 60)
        yield* TestClock.adjust("59 seconds")
        assert.strictEqual(yield* retryAfter(throttle.check(EMAIL)), 1)
        yield* TestClock.adjust("1 second")
        yield* throttle.check(EMAIL)
        // Wrong again soon after: 2 minutes, then 4, … up to an hour.
        for (const seconds of [120, 240, 480, 960, 1920, 3600, 3600]) {
          yield* throttle.recordFailure(EMAIL)
          assert.strictEqual(yield* retryAfter(throttle.check(EMAIL)), seconds)
          yield* TestClock.adjust(`${seconds} seconds`)
          yield* throttle.check(EMAIL)
        }
        // Other keys are not affected.
        yield* throttle.check(["email:bob@x.io", "ip:198.51.100.1"])
      }))

    it.scoped("failures spread over more than 15 minutes do not lock; a long-past lock is forgotten", () =>
      Effect.gen(function* () {
        const { throttle } = yield* openAccounts(database)
        yield* TestClock.setTime(1_800_000_000_000)
        yield* times(4, throttle.recordFailure(EMAIL))
        yield* TestClock.adjust("16 minutes")
        yield* times(4, throttle.recordFailure(EMAIL))
        yield* throttle.check(EMAIL)
        yield* throttle.recordFailure(EMAIL)
        assert.strictEqual(yield* failureTag(throttle.check(EMAIL)), "LoginThrottled")
        // 15 minutes after the lock ended, the count starts again from nothing.
        yield* TestClock.adjust("17 minutes")
        yield* throttle.recordFailure(EMAIL)
        yield* throttle.check(EMAIL)
      }))

    it.scoped("a success clears the e-mail key but not the address key", () =>
      Effect.gen(function* () {
        const { throttle } = yield* openAccounts(database)
        yield* TestClock.setTime(1_800_000_000_000)
        const keys = ["email:ann@x.io", "ip:203.0.113.9"]
        yield* times(4, throttle.recordFailure(keys))
        yield* throttle.recordSuccess(keys)
        // Four more for the e-mail: fine, its count started again.
        yield* times(4, throttle.recordFailure(EMAIL))
        yield* throttle.check(EMAIL)
        // The address kept its four: sixteen more (20 in all) lock it.
        yield* times(15, throttle.recordFailure(["ip:203.0.113.9"]))
        yield* throttle.check(["ip:203.0.113.9"])
        yield* throttle.recordFailure(["ip:203.0.113.9"])
        assert.strictEqual(
          yield* retryAfter(throttle.check(["email:nobody@x.io", "ip:203.0.113.9"])),
          60,
        )
      }))

    it.scoped("an address is locked after 20 failures, whatever the e-mails tried", () =>
      Effect.gen(function* () {
        const { throttle } = yield* openAccounts(database)
        yield* TestClock.setTime(1_800_000_000_000)
        for (let i = 0; i < 19; i++) {
          yield* throttle.recordFailure([`email:user${i}@x.io`, "ip:192.0.2.5"])
        }
        yield* throttle.check(["email:user0@x.io", "ip:192.0.2.5"])
        yield* throttle.recordFailure(["email:user19@x.io", "ip:192.0.2.5"])
        assert.strictEqual(
          yield* failureTag(throttle.check(["email:someone@x.io", "ip:192.0.2.5"])),
          "LoginThrottled",
        )
        yield* throttle.check(["email:someone@x.io", "ip:192.0.2.6"])
      }))

    it.scoped("the lock is in the database: another process (or a restart) sees it", () =>
      Effect.gen(function* () {
        const first = yield* openAccounts(database)
        yield* TestClock.setTime(1_800_000_000_000)
        yield* times(5, first.throttle.recordFailure(EMAIL))
        const second = yield* accountsOver(first.db)
        assert.strictEqual(yield* retryAfter(second.throttle.check(EMAIL)), 60)
      }))
  })
}
