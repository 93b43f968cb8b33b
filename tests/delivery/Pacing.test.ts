/**
 * Pacing under `TestClock`: a token bucket lets `limit` sends through at once, then one every
 * `interval / limit`, first come first served; buckets per recipient are independent.
 */
import { assert, describe, it } from "@effect/vitest"
import { Clock, Duration, Effect, Fiber, TestClock } from "effect"
import * as Pacing from "../../core/delivery/Pacing.ts"

describe("Pacing", () => {
  it.effect("a burst of `limit`, then one every interval/limit", () =>
    Effect.gen(function* () {
      const bucket = yield* Pacing.bucket({ limit: 5, interval: "1 second" })
      const times: Array<number> = []
      const fiber = yield* Effect.fork(Effect.forEach(
        Array.from({ length: 8 }),
        () =>
          bucket.take.pipe(
            Effect.zipRight(Clock.currentTimeMillis),
            Effect.map((t) => times.push(t)),
          ),
      ))
      yield* TestClock.adjust("5 seconds")
      yield* Fiber.join(fiber)
      assert.deepStrictEqual(times, [0, 0, 0, 0, 0, 200, 400, 600])
    }))

  it.effect("concurrent takers are served in arrival order, each in its own slot", () =>
    Effect.gen(function* () {
      const bucket = yield* Pacing.bucket({ limit: 1, interval: "1 second" })
      const order: Array<[number, number]> = []
      const fibers = []
      for (let i = 0; i < 4; i++) {
        fibers.push(
          yield* Effect.fork(
            bucket.take.pipe(
              Effect.zipRight(Clock.currentTimeMillis),
              Effect.map((t) => order.push([i, t])),
            ),
          ),
        )
        yield* Effect.yieldNow()
      }
      yield* TestClock.adjust("4 seconds")
      yield* Fiber.joinAll(fibers)
      assert.deepStrictEqual(order, [[0, 0], [1, 1_000], [2, 2_000], [3, 3_000]])
    }))

  it.effect("per-recipient buckets: one recipient's pace does not slow another", () =>
    Effect.gen(function* () {
      const perChat = Pacing.keyed({ limit: 1, interval: "1 second" })
      const times: Record<string, Array<number>> = { a: [], b: [] }
      const fiber = yield* Effect.fork(Effect.all(
        ["a", "a", "b", "a", "b"].map((to) =>
          perChat.take(to).pipe(
            Effect.zipRight(Clock.currentTimeMillis),
            Effect.map((t) => times[to]!.push(t)),
          )
        ),
        { concurrency: "unbounded" },
      ))
      yield* TestClock.adjust("3 seconds")
      yield* Fiber.join(fiber)
      assert.deepStrictEqual(times, { a: [0, 1_000, 2_000], b: [0, 1_000] })
    }))

  it.effect("an idle bucket refills: after a pause the burst is available again", () =>
    Effect.gen(function* () {
      const bucket = yield* Pacing.bucket({ limit: 3, interval: "3 seconds" })
      for (let i = 0; i < 3; i++) yield* bucket.take
      // Spent: the next take would wait one interval/limit.
      assert.strictEqual(Duration.toMillis(yield* bucket.wait), 1_000)
      yield* TestClock.adjust("3 seconds")
      const start = yield* Clock.currentTimeMillis
      for (let i = 0; i < 3; i++) yield* bucket.take
      assert.strictEqual((yield* Clock.currentTimeMillis) - start, 0)
    }))
})
