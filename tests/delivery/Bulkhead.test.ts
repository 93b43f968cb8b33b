/**
 * The bulkhead: at most `concurrency` at once, `queue` more waiting, the rest refused at once
 * with `BulkheadFull`; a refusal or a finished call frees its place.
 */
import { assert, describe, it } from "@effect/vitest"
import { Clock, Deferred, Effect, Either, Exit, Fiber, TestClock } from "effect"
import * as Bulkhead from "../../core/delivery/Bulkhead.ts"

describe("Bulkhead", () => {
  it.effect("runs `concurrency` at once, queues `queue` more, refuses the rest at once", () =>
    Effect.gen(function* () {
      const bulkhead = yield* Bulkhead.make({ concurrency: 2, queue: 1 })
      const gate = yield* Deferred.make<void>()
      const started: Array<number> = []
      const fibers = []
      for (let i = 0; i < 3; i++) {
        fibers.push(
          yield* Effect.fork(
            bulkhead.run(
              Effect.sync(() => started.push(i)).pipe(Effect.zipRight(Deferred.await(gate))),
            ),
          ),
        )
      }
      yield* Effect.yieldNow()
      assert.deepStrictEqual(started, [0, 1])
      assert.deepStrictEqual(yield* bulkhead.load, { running: 2, waiting: 1 })
      const refused = yield* bulkhead.run(Effect.void).pipe(Effect.either)
      assert.isTrue(Either.isLeft(refused) && refused.left._tag === "BulkheadFull")
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.joinAll(fibers)
      assert.deepStrictEqual(started, [0, 1, 2])
      assert.deepStrictEqual(yield* bulkhead.load, { running: 0, waiting: 0 })
      assert.strictEqual(yield* bulkhead.run(Effect.succeed("ok")), "ok")
    }))

  it.effect("a failing or interrupted call gives its place back", () =>
    Effect.gen(function* () {
      const bulkhead = yield* Bulkhead.make({ concurrency: 1, queue: 0 })
      yield* bulkhead.run(Effect.fail("boom")).pipe(Effect.either)
      const hung = yield* Effect.fork(bulkhead.run(Effect.never))
      yield* Effect.yieldNow()
      assert.isTrue(Either.isLeft(yield* bulkhead.run(Effect.void).pipe(Effect.either)))
      yield* Fiber.interrupt(hung)
      assert.deepStrictEqual(yield* bulkhead.load, { running: 0, waiting: 0 })
      assert.strictEqual(yield* bulkhead.run(Effect.succeed(1)), 1)
    }))

  it.effect("isolation: one account's hung provider fills only its own bulkhead; another account's sends go at once", () =>
    Effect.gen(function* () {
      const hungAccount = yield* Bulkhead.make({ concurrency: 2, queue: 3 })
      const otherAccount = yield* Bulkhead.make({ concurrency: 2, queue: 3 })
      // Ten replies to the hung provider: 2 calls hang, 3 wait, 5 are handed back at once.
      const outcomes = yield* Effect.forEach(
        Array.from({ length: 10 }),
        () => Effect.fork(hungAccount.run(Effect.never)),
      )
      yield* TestClock.adjust("1 hour")
      const handedBack = yield* Effect.forEach(outcomes, (f) => Fiber.poll(f)).pipe(
        Effect.map((polls) =>
          polls.filter((p) => p._tag === "Some" && Exit.isFailure(p.value)).length
        ),
      )
      assert.strictEqual(handedBack, 5)
      assert.deepStrictEqual(yield* hungAccount.load, { running: 2, waiting: 3 })
      // Meanwhile the other account sends: no wait at all on the test clock.
      const start = yield* Clock.currentTimeMillis
      for (let i = 0; i < 20; i++) {
        yield* otherAccount.run(Effect.sleep("10 millis")).pipe(
          Effect.fork,
          Effect.flatMap((f) => TestClock.adjust("10 millis").pipe(Effect.zipRight(Fiber.join(f)))),
        )
      }
      assert.strictEqual((yield* Clock.currentTimeMillis) - start, 200)
      yield* Effect.forEach(outcomes, Fiber.interrupt)
    }))
})
