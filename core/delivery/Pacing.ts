/**
 * Pacing: a send waits its turn so a channel account stays within its provider's published rate
 * limits (WhatsApp's messages per second per number, Telegram's 30 per second per bot and one
 * per second per chat). A token bucket with `limit` tokens refilled over `interval`, kept as the
 * time the next token is free (GCRA): `take` reserves a slot at once (so concurrent senders
 * queue fairly, first come first served) and sleeps until it is due. Per-recipient buckets live
 * in a bounded LRU: a recipient not heard of for a while starts afresh, with a full bucket.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import * as Pacing from "./core/delivery/Pacing.ts"
 *
 * const program = Effect.gen(function* () {
 *   const perSecond = yield* Pacing.bucket({ limit: 30, interval: "1 second" })
 *   for (let i = 0; i < 60; i++) yield* perSecond.take // the last 30 wait about a second
 * })
 * ```
 */
import { Clock, Duration, Effect, Ref } from "effect"
import { Lru } from "../lru.ts"

export interface Rate {
  /** Sends allowed per `interval` (also the burst). */
  readonly limit: number
  readonly interval: Duration.DurationInput
}

export interface Bucket {
  /** Wait until a send is allowed, and count it. */
  readonly take: Effect.Effect<void>
  /** How long a `take` now would wait (0 when a token is free). */
  readonly wait: Effect.Effect<Duration.Duration>
}

/** The next token's time, given the bucket's last one; and how long its taker waits. */
const reserve = (tat: number, now: number, emission: number, burst: number) => {
  const next = Math.max(tat, now) + emission
  return { next, wait: Math.max(0, next - now - burst) }
}

const make = (rate: Rate, start: Ref.Ref<number>): Bucket => {
  const emission = Duration.toMillis(Duration.decode(rate.interval)) / Math.max(1, rate.limit)
  const burst = emission * Math.max(1, rate.limit)
  return {
    take: Effect.gen(function* () {
      const now = yield* Clock.currentTimeMillis
      const wait = yield* Ref.modify(start, (tat) => {
        const r = reserve(tat, now, emission, burst)
        return [r.wait, r.next] as const
      })
      if (wait > 0) yield* Effect.sleep(Duration.millis(wait))
    }),
    wait: Effect.gen(function* () {
      const now = yield* Clock.currentTimeMillis
      const tat = yield* Ref.get(start)
      return Duration.millis(reserve(tat, now, emission, burst).wait)
    }),
  }
}

/** One token bucket. */
export const bucket = (rate: Rate): Effect.Effect<Bucket> =>
  Ref.make(0).pipe(Effect.map((tat) => make(rate, tat)))

/** A bucket per key (a recipient), the `capacity` most recently used kept. */
export const keyed = (rate: Rate, capacity = 10_000) => {
  const buckets = new Lru<string, Bucket>(capacity)
  const of = (key: string): Bucket => {
    const known = buckets.get(key)
    if (known !== undefined) return known
    const created = make(rate, Ref.unsafeMake(0))
    buckets.set(key, created)
    return created
  }
  return { take: (key: string) => Effect.suspend(() => of(key).take) }
}
