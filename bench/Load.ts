/**
 * Load shapes shared by the sections: keep `window` operations in flight until `count` are done
 * or the time budget is spent, and time it. One version drives Effects (the buses), one drives
 * Promises (the raw clients, measured without Effect in the way).
 */
import { Duration, Effect, Schedule } from "effect"

export interface Run {
  readonly ops: number
  readonly seconds: number
}

/** Run `op(i)` for i = 0, 1, … with `window` in flight, until `count` or `budget`. */
export const windowed = <E, R>(
  options: { readonly count: number; readonly window: number; readonly budget: Duration.Duration },
  op: (i: number) => Effect.Effect<unknown, E, R>,
): Effect.Effect<Run, E, R> =>
  Effect.suspend(() => {
    const started = performance.now()
    const deadline = started + Duration.toMillis(options.budget)
    let next = 0
    let done = 0
    const worker = Effect.suspend(() => {
      if (next >= options.count || performance.now() >= deadline) return Effect.succeed(false)
      return op(next++).pipe(Effect.map(() => (done++, true)))
    }).pipe(Effect.repeat({ while: (more) => more }))
    return Effect.all(Array.from({ length: options.window }, () => worker), {
      concurrency: "unbounded",
      discard: true,
    }).pipe(Effect.map(() => ({ ops: done, seconds: (performance.now() - started) / 1_000 })))
  })

/** Promise flavour of `windowed`, for raw clients. */
export const windowedAsync = async (
  options: { readonly count: number; readonly window: number; readonly budget: Duration.Duration },
  op: (i: number) => Promise<unknown>,
): Promise<Run> => {
  const started = performance.now()
  const deadline = started + Duration.toMillis(options.budget)
  let next = 0
  let done = 0
  const worker = async () => {
    while (next < options.count && performance.now() < deadline) {
      await op(next++)
      done++
    }
  }
  await Promise.all(Array.from({ length: options.window }, worker))
  return { ops: done, seconds: (performance.now() - started) / 1_000 }
}

/** Wait until `done()` reaches `target` or `deadline` (a `performance.now()` time) passes. */
export const until = (
  done: () => number,
  target: number,
  deadline: number,
): Effect.Effect<void> =>
  Effect.suspend(() =>
    done() >= target || performance.now() >= deadline ? Effect.void : Effect.fail("not yet")
  ).pipe(Effect.retry(Schedule.spaced("1 millis")), Effect.orDie)
