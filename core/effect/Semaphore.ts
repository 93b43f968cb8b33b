/**
 * A semaphore that wakes one waiter per released permit, in the order they came.
 *
 * Effect's own `Semaphore` wakes every waiting fiber at each release; all but one find the permit
 * taken and wait again. With a few waiters that is harmless; with hundreds (a consumer's backlog,
 * an account's queue of sends) each release costs a wake-up per waiter. Here a release hands its
 * permit straight to the oldest waiter.
 *
 * Interruption: a waiter interrupted before it got a permit leaves the line; one interrupted just
 * after it was handed one passes the permit on, so none is ever lost.
 */
import { Effect } from "effect"

export interface FifoSemaphore {
  /** Run `self` holding one permit; waits (in line) for one if none is free. */
  readonly withPermit: <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  /** Permits free now. */
  readonly available: () => number
  /** Fibers waiting for a permit now. */
  readonly waiting: () => number
}

interface Waiter {
  readonly resume: (effect: Effect.Effect<void>) => void
  granted: boolean
}

export const unsafeMake = (permits: number): FifoSemaphore => {
  let free = Math.max(0, permits)
  // A Set keeps insertion order and removes a leaving waiter in O(1).
  const line = new Set<Waiter>()

  const release = () => {
    for (const next of line) {
      line.delete(next)
      next.granted = true
      next.resume(Effect.void)
      return
    }
    free++
  }

  const take = Effect.async<void>((resume) => {
    if (free > 0) {
      free--
      resume(Effect.void)
      return
    }
    const waiter: Waiter = { resume, granted: false }
    line.add(waiter)
    return Effect.sync(() => {
      if (waiter.granted) release()
      else line.delete(waiter)
    })
  })

  const releaseEffect = Effect.sync(release)

  return {
    withPermit: (self) =>
      Effect.uninterruptibleMask((restore) =>
        Effect.zipRight(restore(take), Effect.ensuring(restore(self), releaseEffect))
      ),
    available: () => free,
    waiting: () => line.size,
  }
}

export const make = (permits: number): Effect.Effect<FifoSemaphore> =>
  Effect.sync(() => unsafeMake(permits))
