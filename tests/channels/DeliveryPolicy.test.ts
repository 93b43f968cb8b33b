/**
 * The delivery policy under `TestClock`: which errors are retried, how long it waits between
 * attempts (exponential, jittered, capped, `Retry-After`), and the per-attempt timeout.
 */
import { assert, describe, it } from "@effect/vitest"
import { Clock, Duration, Effect, Either, Fiber, TestClock } from "effect"
import {
  ProviderRejected,
  ProviderUnavailable,
  type SendError,
} from "../../core/channels/ChannelAdapter.ts"
import * as DeliveryPolicy from "../../core/channels/DeliveryPolicy.ts"

/** Run `fail(n)` as every attempt under `policy` on the test clock; the attempt times. */
const attemptsUnder = (
  policy: DeliveryPolicy.DeliveryPolicy,
  fail: (n: number) => SendError | "ok" | "hang",
) =>
  Effect.gen(function* () {
    const times: Array<number> = []
    const attempt = Effect.gen(function* () {
      times.push(yield* Clock.currentTimeMillis)
      const outcome = fail(times.length)
      if (outcome === "ok") return "receipt"
      if (outcome === "hang") return yield* Effect.never
      return yield* Effect.fail(outcome)
    })
    const fiber = yield* Effect.fork(DeliveryPolicy.run(policy, attempt))
    yield* TestClock.adjust("2 hours")
    const outcome = yield* Fiber.join(fiber)
    const gaps = times.slice(1).map((t, i) => Math.round(t - times[i]!))
    return { outcome, times, gaps }
  })

const unavailable = (retryAfter?: Duration.DurationInput) =>
  new ProviderUnavailable({
    code: "503",
    reason: "down",
    ...(retryAfter !== undefined ? { retryAfter: Duration.decode(retryAfter) } : {}),
  })

describe("DeliveryPolicy", () => {
  it.effect("retries a retryable error with exponential, jittered delays capped at maxDelay, then gives up", () =>
    Effect.gen(function* () {
      const policy = DeliveryPolicy.resolve({
        baseDelay: "1 second",
        maxDelay: "4 seconds",
        maxAttempts: 5,
      })
      const { outcome, gaps } = yield* attemptsUnder(policy, () => unavailable())
      assert.strictEqual(outcome.attempts, 5)
      assert.isTrue(Either.isLeft(outcome.result))
      // 1 s, 2 s, 4 s, 8 s, each ×0.8–1.2 (jitter), none above 4 s.
      const [a, b, c, d] = gaps as [number, number, number, number]
      assert.isTrue(a >= 800 && a <= 1200, `first delay ${a}`)
      assert.isTrue(b >= 1600 && b <= 2400, `second delay ${b}`)
      assert.isTrue(c >= 3200 && c <= 4000, `third delay ${c}`)
      assert.strictEqual(d, 4000)
    }))

  it.effect("a permanent error is not retried", () =>
    Effect.gen(function* () {
      const policy = DeliveryPolicy.resolve({ maxAttempts: 5 })
      const { outcome, times } = yield* attemptsUnder(
        policy,
        () => new ProviderRejected({ code: "400", reason: "bad recipient" }),
      )
      assert.strictEqual(outcome.attempts, 1)
      assert.lengthOf(times, 1)
      assert.isTrue(Either.isLeft(outcome.result) && outcome.result.left.code === "400")
    }))

  it.effect("waits at least the provider's Retry-After, but never longer than maxDelay", () =>
    Effect.gen(function* () {
      const policy = DeliveryPolicy.resolve({ baseDelay: "100 millis", maxDelay: "1 minute" })
      const asked = yield* attemptsUnder(
        policy,
        (n) => (n === 1 ? unavailable("30 seconds") : "ok"),
      )
      assert.strictEqual(asked.outcome.attempts, 2)
      assert.isTrue(Either.isRight(asked.outcome.result))
      assert.strictEqual(asked.gaps[0], 30_000)

      const tooLong = yield* attemptsUnder(policy, (n) => (n === 1 ? unavailable("1 day") : "ok"))
      assert.strictEqual(tooLong.gaps[0], 60_000)
    }))

  it.effect("an attempt with no answer times out and counts as retryable", () =>
    Effect.gen(function* () {
      const policy = DeliveryPolicy.resolve({
        timeout: "5 seconds",
        baseDelay: "1 second",
        maxAttempts: 3,
      })
      const { outcome, times } = yield* attemptsUnder(policy, (n) => (n < 3 ? "hang" : "ok"))
      assert.strictEqual(outcome.attempts, 3)
      assert.isTrue(Either.isRight(outcome.result))
      // Each hanging attempt ends at its timeout, then the backoff.
      assert.isAtLeast(times[1]! - times[0]!, 5_000 + 800)

      const never = yield* attemptsUnder(policy, () => "hang")
      assert.strictEqual(never.outcome.attempts, 3)
      assert.isTrue(
        Either.isLeft(never.outcome.result) && never.outcome.result.left.code === "timeout",
      )
    }))

  it("worstCase bounds every attempt timing out with every delay at its cap", () => {
    const policy = DeliveryPolicy.resolve({
      timeout: "10 seconds",
      maxDelay: "1 minute",
      maxAttempts: 3,
    })
    assert.strictEqual(Duration.toMillis(DeliveryPolicy.worstCase(policy)), 3 * 10_000 + 2 * 60_000)
  })
})
