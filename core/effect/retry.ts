/**
 * Retries for code that runs once per message.
 *
 * `Effect.retry` builds a schedule driver every time it runs, also when the effect succeeds at
 * once, which for a per-message effect (a pull, a group commit) cost more operations than the
 * effect itself. `retryAfterFailure` runs the effect bare and builds the retry only after a
 * failure: the first retry after `first`, the next ones after the delays of `later`.
 */
import { type Duration, Effect, type Schedule } from "effect"

export const retryAfterFailure = <A, E, R>(
  self: Effect.Effect<A, E, R>,
  options: {
    readonly first: Duration.DurationInput
    readonly later: Schedule.Schedule<unknown, E>
    /** Which failures are retried (default: all). */
    readonly while?: (error: E) => boolean
    /** Runs on every failure that is retried, e.g. to log it. */
    readonly onRetry?: (error: E) => Effect.Effect<void>
  },
): Effect.Effect<A, E, R> => {
  const retried = options.while ?? (() => true)
  const onRetry = options.onRetry ?? (() => Effect.void)
  return self.pipe(
    Effect.catchIf(retried, (error) =>
      onRetry(error).pipe(
        Effect.zipRight(Effect.sleep(options.first)),
        Effect.zipRight(self.pipe(
          Effect.tapError((e) => (retried(e) ? onRetry(e) : Effect.void)),
          Effect.retry({ schedule: options.later, while: retried }),
        )),
      )),
  )
}
