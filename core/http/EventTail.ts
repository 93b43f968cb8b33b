/**
 * One reader of the events stream per server, shared by every open `GET /api/v1/events`.
 *
 * Every open inbox reads every event. With a reader (a bus consumer) per connection, each event
 * was fetched, parsed and queued once per connection; the tail reads it once and hands the same
 * message to every connection that is up to date. It keeps the last `capacity` events, so a
 * client that reconnects with a recent `Last-Event-ID` is served from memory too.
 *
 * A connection joins the tail only when the tail holds every event after the connection's
 * position: joining returns those events and subscribes in one synchronous step, so nothing falls
 * between them. A connection further behind reads the bus on its own until it has caught up, and
 * a connection that cannot keep up (its buffer is full) is dropped from the tail and catches up
 * the same way: never a gap, never a repeat.
 */
import { Effect, type Scope } from "effect"
import type { BusMessage, BusShape } from "../bus/Bus.ts"
import { EventsStream } from "../pipeline/Streams.ts"

export interface TailSubscriber {
  /** The tail's next events, in order; false when they do not fit (the subscriber is dropped). */
  readonly push: (messages: ReadonlyArray<BusMessage>) => boolean
  /** Dropped, or the tail stopped: read the bus on your own from your position. */
  readonly lost: () => void
}

export interface Joined {
  /** The events after the position the tail already holds, oldest first. */
  readonly backlog: ReadonlyArray<BusMessage>
  readonly leave: () => void
}

export interface EventTail {
  /**
   * Subscribe from `position` (the last event sequence the connection has seen), or `undefined`
   * when the tail does not hold every event after it (it was evicted, or came before the tail
   * started): the caller reads the bus until it gets closer.
   */
  readonly join: (position: number, subscriber: TailSubscriber) => Joined | undefined
  /** Whether `join` would take a connection at `position` now. */
  readonly canJoin: (position: number) => boolean
}

export const make = (
  bus: BusShape,
  options: { readonly capacity: number },
): Effect.Effect<EventTail, never, Scope.Scope> =>
  Effect.gen(function* () {
    const capacity = Math.max(1, options.capacity)
    /** Recent events, oldest first, from index `first`. */
    let ring: Array<BusMessage> = []
    let first = 0
    /** Every event with a greater sequence is in the ring, or still to come from the reader. */
    let coveredAfter = yield* bus.lastSeq(EventsStream.name).pipe(Effect.orElseSucceed(() => 0))
    let alive = true
    const subscribers = new Set<TailSubscriber>()

    const append = (messages: ReadonlyArray<BusMessage>) => {
      for (const m of messages) ring.push(m)
      const excess = ring.length - first - capacity
      if (excess > 0) {
        coveredAfter = ring[first + excess - 1]!.seq
        first += excess
        // Compact now and then, not on every event.
        if (first >= capacity) {
          ring = ring.slice(first)
          first = 0
        }
      }
      for (const subscriber of subscribers) {
        if (!subscriber.push(messages)) {
          subscribers.delete(subscriber)
          subscriber.lost()
        }
      }
    }

    yield* bus.readEach(
      EventsStream.name,
      { fromSeq: coveredAfter + 1 },
      (batch) => Effect.sync(() => append(batch)),
    ).pipe(
      Effect.catchAllCause((cause) =>
        Effect.logError("the shared events reader stopped; event streams read the bus each", cause)
      ),
      Effect.ensuring(Effect.sync(() => {
        alive = false
        for (const subscriber of subscribers) subscriber.lost()
        subscribers.clear()
      })),
      Effect.forkScoped,
    )

    const join = (position: number, subscriber: TailSubscriber): Joined | undefined => {
      if (!alive || position < coveredAfter) return undefined
      let from = ring.length
      while (from > first && ring[from - 1]!.seq > position) from--
      const backlog = ring.slice(from)
      subscribers.add(subscriber)
      return { backlog, leave: () => subscribers.delete(subscriber) }
    }

    return {
      join,
      canJoin: (position) => alive && position >= coveredAfter,
    }
  })
