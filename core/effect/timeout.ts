/**
 * Timeouts for code that runs once per message.
 *
 * `Effect.timeoutFail` races the effect against a sleeping fiber: two forks, the Clock's sleep
 * and an interruption per call, about 50 µs of CPU on this machine — more than storing a
 * message. `timeoutFail` here runs the effect in one forked fiber and arms one Node timer; if
 * the timer fires first, the fiber is interrupted and, once it has stopped, the caller fails
 * with `onTimeout()`. Same outcome as `Effect.timeoutFail` (the timed-out effect has finished
 * its finalizers before the caller goes on), about a tenth of the cost.
 *
 * The timer is real time, not Effect's `Clock`: `TestClock` does not move it. Use
 * `Effect.timeoutFail` where a test must control the time.
 */
import { Duration, Effect, Exit, Fiber, FiberId, Runtime } from "effect"

export interface Alarm {
  /** Whether it fired (and so interrupted the fiber). */
  readonly timedOut: () => boolean
  readonly cancel: () => void
}

/**
 * A Node timer that interrupts `fiber` after `millis` unless cancelled first; an infinite
 * `millis` never fires. What the fiber does about the interruption is its own business.
 */
export const interruptAfter = (
  fiber: Fiber.RuntimeFiber<unknown, unknown>,
  millis: number,
): Alarm => {
  let timedOut = false
  const timer = Number.isFinite(millis)
    ? setTimeout(() => {
      timedOut = true
      fiber.unsafeInterruptAsFork(FiberId.none)
    }, millis)
    : undefined
  return { timedOut: () => timedOut, cancel: () => clearTimeout(timer) }
}

export const timeoutFail = <A, E, R, E1>(
  self: Effect.Effect<A, E, R>,
  duration: Duration.DurationInput,
  onTimeout: () => E1,
): Effect.Effect<A, E | E1, R> => {
  const millis = Duration.toMillis(Duration.decode(duration))
  if (!Number.isFinite(millis)) return self
  return Effect.flatMap(Effect.runtime<R>(), (runtime) =>
    Effect.async<A, E | E1>((resume) => {
      const fiber = Runtime.runFork(runtime)(self)
      const alarm = interruptAfter(fiber, millis)
      fiber.addObserver((exit) => {
        alarm.cancel()
        resume(alarm.timedOut() && Exit.isInterrupted(exit) ? Effect.fail(onTimeout()) : exit)
      })
      // The caller was interrupted: so is the effect, and the caller waits for it to stop.
      return Effect.suspend(() => {
        alarm.cancel()
        return Fiber.interrupt(fiber)
      })
    }))
}
