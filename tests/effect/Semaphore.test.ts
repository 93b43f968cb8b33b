/**
 * The FIFO semaphore: at most `permits` holders, waiters served in arrival order one per release,
 * and no permit lost or doubled when a waiter is interrupted before or just after its turn.
 */
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Fiber } from "effect"
import * as FifoSemaphore from "../../core/effect/Semaphore.ts"

/** A semaphore of one permit, held by a forked fiber until `gate` opens. */
const heldByOne = Effect.gen(function* () {
  const semaphore = yield* FifoSemaphore.make(1)
  const gate = yield* Deferred.make<void>()
  const holder = yield* Effect.fork(semaphore.withPermit(Deferred.await(gate)))
  return { semaphore, gate, holder }
})

describe("FifoSemaphore", () => {
  it.effect("holds at most `permits` at once and serves waiters in the order they came", () =>
    Effect.gen(function* () {
      const semaphore = yield* FifoSemaphore.make(2)
      const gates = yield* Effect.forEach(Array.from({ length: 6 }), () => Deferred.make<void>())
      const order: Array<number> = []
      let holding = 0
      let most = 0
      const fibers = yield* Effect.forEach(
        gates,
        (gate, i) =>
          Effect.fork(semaphore.withPermit(Effect.gen(function* () {
            order.push(i)
            most = Math.max(most, ++holding)
            yield* Deferred.await(gate)
            holding--
          }))),
      )
      yield* Effect.yieldNow()
      assert.deepStrictEqual(order, [0, 1])
      assert.strictEqual(semaphore.waiting(), 4)
      // Release out of order: the next in line gets each freed permit.
      for (const i of [1, 0, 3, 2, 5, 4]) {
        yield* Deferred.succeed(gates[i]!, undefined)
        yield* Effect.yieldNow()
      }
      yield* Fiber.joinAll(fibers)
      assert.deepStrictEqual(order, [0, 1, 2, 3, 4, 5])
      assert.strictEqual(most, 2)
      assert.strictEqual(semaphore.available(), 2)
      assert.strictEqual(semaphore.waiting(), 0)
    }))

  it.effect("a waiter interrupted before its turn leaves the line; a holder's failure frees its permit", () =>
    Effect.gen(function* () {
      const { semaphore, gate, holder } = yield* heldByOne
      const waiter = yield* Effect.fork(semaphore.withPermit(Effect.void))
      yield* Effect.yieldNow()
      assert.strictEqual(semaphore.waiting(), 1)
      yield* Fiber.interrupt(waiter)
      assert.strictEqual(semaphore.waiting(), 0)
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(holder)
      assert.strictEqual(semaphore.available(), 1)
      yield* semaphore.withPermit(Effect.fail("boom")).pipe(Effect.ignore)
      assert.strictEqual(semaphore.available(), 1)
    }))

  it.effect("a waiter interrupted right after it was handed the permit passes it on", () =>
    Effect.gen(function* () {
      const { semaphore, gate, holder } = yield* heldByOne
      const first = yield* Effect.fork(semaphore.withPermit(Effect.never))
      const ran: Array<string> = []
      const second = yield* Effect.fork(semaphore.withPermit(Effect.sync(() => ran.push("second"))))
      yield* Effect.yieldNow()
      // In one step: the holder's release hands the permit to `first`, which is interrupted
      // before it runs. The permit must reach `second`.
      yield* Effect.all([Deferred.succeed(gate, undefined), Fiber.interruptFork(first)])
      yield* Fiber.join(holder)
      yield* Fiber.join(second)
      yield* Fiber.await(first)
      assert.deepStrictEqual(ran, ["second"])
      assert.strictEqual(semaphore.available(), 1)
      assert.strictEqual(semaphore.waiting(), 0)
    }))
})
