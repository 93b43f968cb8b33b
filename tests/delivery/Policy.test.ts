/**
 * The delivery policy as a value: layers of settings (built-in < the channel's own < config
 * defaults < channel < account), validation of written settings, and the retry delays
 * (exponential, jittered, at least the provider's Retry-After, capped).
 */
import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Either, Schema } from "effect"
import * as CircuitBreaker from "../../core/delivery/CircuitBreaker.ts"
import * as Policy from "../../core/delivery/Policy.ts"

describe("delivery policy", () => {
  it("layers override field by field: built-in < channel's own < defaults < channel < account", () => {
    const config = Schema.decodeUnknownSync(Policy.DeliveryConfig)({
      defaults: { retry: { maxAttempts: 10 } },
      channels: { whatsapp: { timeout: "20 seconds", fallback: ["telegram", "email"] } },
      accounts: { "whatsapp:sales": { bulkhead: { concurrency: 16 } } },
    })
    const own = { timeout: "15 seconds", pacing: { account: { limit: 80, interval: "1 second" } } }
    const sales = Policy.forAccount(config, own, "whatsapp", "sales")
    assert.strictEqual(Duration.toMillis(sales.timeout), 20_000)
    assert.strictEqual(sales.maxAttempts, 10)
    assert.deepStrictEqual(sales.fallback, ["telegram", "email"])
    assert.deepStrictEqual(sales.bulkhead, { concurrency: 16, queue: 100 })
    assert.strictEqual(sales.pacing.account?.limit, 80)
    const support = Policy.forAccount(config, own, "whatsapp", "support")
    assert.strictEqual(support.bulkhead.concurrency, 4)
    const telegram = Policy.forAccount(config, undefined, "telegram", "main")
    assert.strictEqual(Duration.toMillis(telegram.timeout), 10_000)
    assert.deepStrictEqual(telegram.fallback, [])
  })

  it("written settings are validated, naming what is wrong", () => {
    const bad = Schema.decodeUnknownEither(Policy.DeliverySettings)({
      timeout: "soon",
      retry: { maxAttempts: 0 },
      breaker: { failureRate: 1.5 },
    }, { errors: "all" })
    assert.isTrue(Either.isLeft(bad))
    if (Either.isLeft(bad)) {
      const text = String(bad.left)
      assert.include(text, 'expected a duration such as "10 seconds"')
      assert.include(text, "maxAttempts")
      assert.include(text, "failureRate")
    }
  })

  it.effect("retry delays: exponential from baseDelay, jittered, at least Retry-After, at most maxDelay", () =>
    Effect.gen(function* () {
      const policy = Policy.resolve({ retry: { baseDelay: "1 second", maxDelay: "4 seconds" } })
      const delays = []
      for (let n = 1; n <= 5; n++) {
        delays.push(Duration.toMillis(yield* Policy.retryDelay(policy, n)))
      }
      const [a, b, c, d, e] = delays as [number, number, number, number, number]
      assert.isTrue(a >= 800 && a <= 1200, `1st ${a}`)
      assert.isTrue(b >= 1600 && b <= 2400, `2nd ${b}`)
      assert.isTrue(c >= 3200 && c <= 4000, `3rd ${c}`)
      assert.strictEqual(d, 4000)
      assert.strictEqual(e, 4000)
      const asked = yield* Policy.retryDelay(policy, 1, Duration.seconds(3))
      assert.strictEqual(Duration.toMillis(asked), 3000)
      const tooLong = yield* Policy.retryDelay(policy, 1, Duration.minutes(10))
      assert.strictEqual(Duration.toMillis(tooLong), 4000)
    }))

  it.effect("the breaker stays open for openFor, doubling after each failed probe up to maxOpenFor", () =>
    Effect.gen(function* () {
      const policy = Policy.resolve({ breaker: { openFor: "2 seconds", maxOpenFor: "5 seconds" } })
      const delays = []
      for (let n = 1; n <= 4; n++) {
        delays.push(
          Duration.toMillis(yield* CircuitBreaker.nthDelay(Policy.openSchedule(policy), n)),
        )
      }
      assert.deepStrictEqual(delays, [2_000, 4_000, 5_000, 5_000])
    }))
})
