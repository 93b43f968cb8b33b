/**
 * A wake-up call for one waiting fiber, for loops that run once per message.
 *
 * `Queue.take(q).pipe(Effect.timeout(...))` races the take against a sleeping fiber: two forks
 * and a Clock sleep per wait. A consumer that waits for room after every message paid that per
 * message. Here a wait is one `Effect.async` and one Node timer.
 *
 * `notify()` with nobody waiting is remembered, once: the next `wait` returns at once (like a
 * sliding queue of one). So a notification between a check and the wait that follows it is never
 * missed; the price is an occasional wake-up with nothing new, which a loop re-checks anyway.
 *
 * The timer is real time, not Effect's `Clock`: `TestClock` does not move it.
 */
import { Effect } from "effect"

export interface Wakeup {
  /** Wake the waiting fiber, or the next one to wait. */
  readonly notify: () => void
  /** Suspend until the next `notify()` (or a remembered one) or until `millis` have passed. */
  readonly wait: (millis: number) => Effect.Effect<void>
}

export const makeWakeup = (): Wakeup => {
  let pending = false
  let waiter: (() => void) | undefined
  return {
    notify: () => {
      const wake = waiter
      if (wake === undefined) {
        pending = true
        return
      }
      waiter = undefined
      wake()
    },
    wait: (millis) =>
      Effect.async<void>((resume) => {
        if (pending) {
          pending = false
          resume(Effect.void)
          return
        }
        const timer = setTimeout(() => {
          if (waiter === wake) waiter = undefined
          resume(Effect.void)
        }, Math.max(0, millis))
        const wake = () => {
          clearTimeout(timer)
          resume(Effect.void)
        }
        waiter = wake
        return Effect.sync(() => {
          clearTimeout(timer)
          if (waiter === wake) waiter = undefined
        })
      }),
  }
}
