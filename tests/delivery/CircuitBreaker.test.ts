/**
 * The circuit breaker under `TestClock`: it trips on consecutive failures and on a failure rate
 * over its window, refuses calls while open (saying for how long), lets exactly one probe through
 * when half-open, closes on the probe's success, and stays open longer after each failed probe.
 */
import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Either, Schedule, TestClock } from "effect"
import * as CircuitBreaker from "../../core/delivery/CircuitBreaker.ts"

const fail = (breaker: CircuitBreaker.CircuitBreaker) =>
  breaker.acquire.pipe(Effect.flatMap((p) => breaker.record(p, "failure")))
const succeed = (breaker: CircuitBreaker.CircuitBreaker) =>
  breaker.acquire.pipe(Effect.flatMap((p) => breaker.record(p, "success")))

describe("CircuitBreaker", () => {
  it.effect("trips after N consecutive failures; a success in between resets the count", () =>
    Effect.gen(function* () {
      const changes: Array<string> = []
      const breaker = yield* CircuitBreaker.make({
        consecutiveFailures: 3,
        minCalls: 1_000,
        openFor: Schedule.spaced("10 seconds"),
        onChange: (from, to) => Effect.sync(() => changes.push(`${from}→${to}`)),
      })
      yield* fail(breaker)
      yield* fail(breaker)
      yield* succeed(breaker)
      yield* fail(breaker)
      yield* fail(breaker)
      assert.strictEqual((yield* breaker.snapshot).state, "closed")
      yield* fail(breaker)
      const open = yield* breaker.snapshot
      assert.strictEqual(open.state, "open")
      assert.strictEqual(open.trips, 1)
      assert.deepStrictEqual(changes, ["closed→open"])
      const refused = yield* breaker.acquire.pipe(Effect.either)
      assert.isTrue(Either.isLeft(refused))
      if (Either.isLeft(refused)) {
        assert.strictEqual(refused.left.state, "open")
        assert.strictEqual(Duration.toMillis(refused.left.retryAfter), 10_000)
      }
    }))

  it.effect("trips on the failure rate over its window once it has enough calls", () =>
    Effect.gen(function* () {
      const breaker = yield* CircuitBreaker.make({
        consecutiveFailures: 100,
        failureRate: 0.5,
        minCalls: 10,
        window: "60 seconds",
      })
      // Alternate: 50% failures, never 2 in a row; the 10th call reaches minCalls.
      for (let i = 0; i < 9; i++) {
        yield* (i % 2 === 0 ? fail(breaker) : succeed(breaker))
        assert.strictEqual((yield* breaker.snapshot).state, "closed", `call ${i + 1}`)
      }
      yield* succeed(breaker) // 10 calls, 5 failed, but this one succeeded: no trip on success
      assert.strictEqual((yield* breaker.snapshot).state, "closed")
      yield* fail(breaker) // 11 calls, 6 failed
      assert.strictEqual((yield* breaker.snapshot).state, "open")
    }))

  it.effect("calls older than the window no longer count toward the rate", () =>
    Effect.gen(function* () {
      const breaker = yield* CircuitBreaker.make({
        consecutiveFailures: 100,
        failureRate: 0.5,
        minCalls: 4,
        window: "10 seconds",
      })
      yield* fail(breaker)
      yield* fail(breaker)
      yield* succeed(breaker)
      yield* TestClock.adjust("11 seconds")
      yield* fail(breaker) // the three before are outside the window: 1 call only
      assert.strictEqual((yield* breaker.snapshot).state, "closed")
      assert.strictEqual((yield* breaker.snapshot).calls, 1)
    }))

  it.effect("half-open lets a single probe through; its success closes the breaker", () =>
    Effect.gen(function* () {
      const breaker = yield* CircuitBreaker.make({
        consecutiveFailures: 1,
        openFor: Schedule.spaced("5 seconds"),
      })
      yield* fail(breaker)
      yield* TestClock.adjust("4999 millis")
      assert.isTrue(Either.isLeft(yield* breaker.acquire.pipe(Effect.either)))
      yield* TestClock.adjust("1 millis")
      const probe = yield* breaker.acquire
      assert.isTrue(probe.probe)
      assert.strictEqual((yield* breaker.snapshot).state, "half_open")
      // Everyone else waits while the probe is out.
      const other = yield* breaker.acquire.pipe(Effect.either)
      assert.isTrue(Either.isLeft(other) && other.left.state === "half_open")
      yield* breaker.record(probe, "success")
      assert.strictEqual((yield* breaker.snapshot).state, "closed")
      assert.isFalse((yield* breaker.acquire).probe)
    }))

  it.effect("a failed probe opens it again, for longer each time (the openFor schedule), up to its cap", () =>
    Effect.gen(function* () {
      const breaker = yield* CircuitBreaker.make({
        consecutiveFailures: 1,
        openFor: Schedule.exponential("1 second").pipe(
          Schedule.modifyDelay((_, d) => Duration.min(d, Duration.seconds(4))),
        ),
      })
      yield* fail(breaker)
      const waits: Array<number> = []
      for (let i = 0; i < 4; i++) {
        const refused = yield* breaker.acquire.pipe(Effect.flip)
        waits.push(Duration.toMillis(refused.retryAfter))
        yield* TestClock.adjust(refused.retryAfter)
        yield* fail(breaker) // the probe fails
      }
      assert.deepStrictEqual(waits, [1_000, 2_000, 4_000, 4_000])
      assert.strictEqual((yield* breaker.snapshot).trips, 5)
      // Recovery resets the schedule: the next trip waits its first delay again.
      yield* TestClock.adjust("4 seconds")
      yield* succeed(breaker)
      yield* fail(breaker)
      const again = yield* breaker.acquire.pipe(Effect.flip)
      assert.strictEqual(Duration.toMillis(again.retryAfter), 1_000)
    }))

  it.effect("a slow call that started before the trip and fails after it leaves the breaker open", () =>
    Effect.gen(function* () {
      const breaker = yield* CircuitBreaker.make({ consecutiveFailures: 2 })
      const slow = yield* breaker.acquire
      yield* fail(breaker)
      yield* fail(breaker)
      assert.strictEqual((yield* breaker.snapshot).state, "open")
      yield* breaker.record(slow, "success")
      assert.strictEqual((yield* breaker.snapshot).state, "open")
    }))
})
