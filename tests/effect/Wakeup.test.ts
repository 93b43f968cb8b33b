/**
 * The wake-up call of a loop: a waiter resumes at the next notify or after its time, a notify
 * with nobody waiting is remembered once, and an interrupted wait leaves nothing behind.
 * (Real time: the wait's timer is a Node timer, which TestClock does not move.)
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { makeWakeup } from "../../core/effect/Wakeup.ts"

const elapsed = <A, E, R>(self: Effect.Effect<A, E, R>) =>
  Effect.suspend(() => {
    const start = performance.now()
    return self.pipe(Effect.map(() => performance.now() - start))
  })

describe("Wakeup", () => {
  it.live("a waiter resumes at the next notify, long before its time is up", () =>
    Effect.gen(function* () {
      const wakeup = makeWakeup()
      const waiter = yield* Effect.fork(elapsed(wakeup.wait(5_000)))
      yield* Effect.sleep("20 millis")
      wakeup.notify()
      const took = yield* Fiber.join(waiter)
      assert.isAtLeast(took, 15)
      assert.isBelow(took, 1_000)
    }))

  it.live("without a notify the wait ends after its time", () =>
    Effect.gen(function* () {
      const took = yield* elapsed(makeWakeup().wait(50))
      assert.isAtLeast(took, 45)
      assert.isBelow(took, 1_000)
    }))

  it.live("a notify with nobody waiting is remembered once: the next wait returns at once", () =>
    Effect.gen(function* () {
      const wakeup = makeWakeup()
      wakeup.notify()
      wakeup.notify()
      assert.isBelow(yield* elapsed(wakeup.wait(5_000)), 20)
      // Both notifies came before anyone waited: only one is remembered.
      assert.isAtLeast(yield* elapsed(wakeup.wait(50)), 45)
    }))

  it.live("an interrupted wait takes no later notify away from the next waiter", () =>
    Effect.gen(function* () {
      const wakeup = makeWakeup()
      const first = yield* Effect.fork(wakeup.wait(5_000))
      yield* Effect.sleep("10 millis")
      yield* Fiber.interrupt(first)
      wakeup.notify()
      assert.isBelow(yield* elapsed(wakeup.wait(5_000)), 20)
    }))
})
