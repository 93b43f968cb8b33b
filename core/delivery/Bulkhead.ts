/**
 * A bulkhead for one channel account: at most `concurrency` sends at once and at most `queue`
 * waiting for a turn. Beyond that a send is refused at once with `BulkheadFull`, so a provider
 * that hangs holds only its own account's places and never the shared workers of every other
 * account (the outbound consumer hands the refused message back to the bus for later).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import * as Bulkhead from "./core/delivery/Bulkhead.ts"
 *
 * const program = Effect.gen(function* () {
 *   const bulkhead = yield* Bulkhead.make({ concurrency: 4, queue: 100 }) // the defaults
 *   return yield* bulkhead.run(Effect.succeed("sent")) // fails with BulkheadFull when full
 * })
 * ```
 */
import { Data, Effect, Ref } from "effect"
import * as FifoSemaphore from "../effect/Semaphore.ts"

export class BulkheadFull extends Data.TaggedError("BulkheadFull")<{
  readonly concurrency: number
  readonly queue: number
}> {
  override get message() {
    return `bulkhead full: ${this.concurrency} sends under way and ${this.queue} waiting`
  }
}

export interface BulkheadOptions {
  /** Sends at once. Default: 4. */
  readonly concurrency?: number
  /** Sends waiting for a turn. Default: 100. */
  readonly queue?: number
}

export interface Bulkhead {
  readonly run: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E | BulkheadFull, R>
  /** Sends under way and waiting now. */
  readonly load: Effect.Effect<{ readonly running: number; readonly waiting: number }>
}

export const make = (options: BulkheadOptions = {}): Effect.Effect<Bulkhead> =>
  Effect.gen(function* () {
    const concurrency = Math.max(1, options.concurrency ?? 4)
    const queue = Math.max(0, options.queue ?? 100)
    // FIFO, one wake-up per release: up to `queue` sends may be waiting.
    const semaphore = yield* FifoSemaphore.make(concurrency)
    const admitted = yield* Ref.make(0)
    const running = yield* Ref.make(0)

    const run = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
      Effect.uninterruptibleMask((restore) =>
        Effect.gen(function* () {
          const ok = yield* Ref.modify(admitted, (n) =>
            n < concurrency + queue ? [true, n + 1] as const : [false, n] as const)
          if (!ok) {
            return yield* new BulkheadFull({ concurrency, queue })
          }
          return yield* restore(
            semaphore.withPermit(
              Effect.acquireUseRelease(
                Ref.update(running, (n) =>
                  n + 1),
                () => effect,
                () => Ref.update(running, (n) => n - 1),
              ),
            ),
          ).pipe(Effect.ensuring(Ref.update(admitted, (n) => n - 1)))
        })
      )

    const load = Effect.gen(function* () {
      const r = yield* Ref.get(running)
      const a = yield* Ref.get(admitted)
      return { running: r, waiting: Math.max(0, a - r) }
    })
    return { run, load } satisfies Bulkhead
  })
