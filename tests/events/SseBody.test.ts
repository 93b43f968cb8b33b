/**
 * The body of `GET /api/v1/events` (core/http/SseBody.ts): writes wait for a slow reader instead
 * of piling up, the connection's fibers and finalizers end with the response whichever side
 * ends it, and the server stopping ends every open body.
 */
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Fiber, FiberSet, Option, Ref } from "effect"
import type { Readable } from "node:stream"
import * as SseBody from "../../core/http/SseBody.ts"

/** Everything `readable` still gives, read until it ends. */
const readAll = (readable: Readable) =>
  Effect.async<string>((resume) => {
    let text = ""
    readable.setEncoding("utf8")
    readable.on("data", (chunk: string) => (text += chunk))
    readable.once("end", () => resume(Effect.succeed(text)))
  })

const closed = (readable: Readable) =>
  Effect.async<void>((resume) => {
    if (readable.closed) return resume(Effect.void)
    readable.once("close", () => resume(Effect.void))
  })

describe("SseBody", () => {
  it.scopedLive("a writer waits while the client has the high-water mark unread", () =>
    Effect.gen(function* () {
      const fibers = yield* FiberSet.make()
      const written = yield* Ref.make(0)
      const writer = yield* Deferred.make<Fiber.RuntimeFiber<void>>()
      const readable = yield* SseBody.open(fibers, (out) =>
        Effect.gen(function* () {
          const fiber = yield* Effect.forkScoped(Effect.gen(function* () {
            for (let i = 0; i < 100; i++) {
              yield* out.write("x".repeat(1_000))
              yield* Ref.update(written, (n) => n + 1)
            }
            yield* out.end
          }))
          yield* Deferred.succeed(writer, fiber)
        }), { highWaterMark: 10_000 })
      yield* Effect.sleep("100 millis")
      // Nobody reads: the writer stopped at the mark, not at the end.
      const before = yield* Ref.get(written)
      assert.isAtLeast(before, 9)
      assert.isAtMost(before, 11)
      assert.isTrue(Option.isNone(yield* Fiber.poll(yield* Deferred.await(writer))))
      // Reading lets it go on to the end, and every byte arrives once, in order.
      const text = yield* readAll(readable)
      assert.strictEqual(text.length, 100_000)
      assert.strictEqual(yield* Ref.get(written), 100)
    }))

  it.scopedLive("two writers held back by a slow client both go on once it reads", () =>
    Effect.gen(function* () {
      const fibers = yield* FiberSet.make()
      const done = yield* Ref.make(0)
      const readable = yield* SseBody.open(fibers, (out) =>
        Effect.gen(function* () {
          // The events and the keep-alive of one connection, both writing past the mark.
          const writer = (letter: string) =>
            Effect.gen(function* () {
              for (let i = 0; i < 20; i++) yield* out.write(letter.repeat(1_000))
              yield* Ref.update(done, (n) => n + 1)
            })
          yield* Effect.forkScoped(writer("a"))
          yield* Effect.forkScoped(writer("b"))
          yield* Effect.forkScoped(
            Effect.gen(function* () {
              while ((yield* Ref.get(done)) < 2) yield* Effect.sleep("5 millis")
              yield* out.end
            }),
          )
        }), { highWaterMark: 5_000 })
      yield* Effect.sleep("100 millis")
      assert.strictEqual(yield* Ref.get(done), 0, "both wait for the client")
      const text = yield* readAll(readable).pipe(Effect.timeout("5 seconds"))
      assert.strictEqual(text.length, 40_000)
      assert.strictEqual(yield* Ref.get(done), 2)
    }))

  it.scopedLive("the client going away interrupts the connection's fibers and runs its finalizers", () =>
    Effect.gen(function* () {
      const fibers = yield* FiberSet.make()
      const finalized = yield* Deferred.make<void>()
      const interrupted = yield* Deferred.make<void>()
      const readable = yield* SseBody.open(fibers, (out) =>
        Effect.gen(function* () {
          yield* Effect.addFinalizer(() => Deferred.succeed(finalized, undefined))
          yield* out.write(": connected\n\n")
          yield* Effect.never.pipe(
            Effect.onInterrupt(() => Deferred.succeed(interrupted, undefined)),
            Effect.forkScoped,
          )
        }))
      yield* Effect.sleep("20 millis")
      // What the HTTP server does when the client disconnects mid-stream.
      readable.destroy()
      yield* Deferred.await(finalized).pipe(Effect.timeout("2 seconds"))
      yield* Deferred.await(interrupted).pipe(Effect.timeout("2 seconds"))
      assert.strictEqual(yield* FiberSet.size(fibers), 0)
    }))

  it.scopedLive("end sends what was written, then ends the response and its fibers", () =>
    Effect.gen(function* () {
      const fibers = yield* FiberSet.make()
      const finalized = yield* Deferred.make<void>()
      const readable = yield* SseBody.open(fibers, (out) =>
        Effect.gen(function* () {
          yield* Effect.addFinalizer(() => Deferred.succeed(finalized, undefined))
          yield* out.write("a")
          yield* out.write("b")
          yield* out.end
          // Written after the end: dropped, not an error.
          yield* out.write("c")
        }))
      assert.strictEqual(yield* readAll(readable), "ab")
      yield* Deferred.await(finalized).pipe(Effect.timeout("2 seconds"))
    }))

  it.scopedLive("the server stopping (its connections closed) ends every open body", () =>
    Effect.gen(function* () {
      const fibers = yield* FiberSet.make()
      const bodies = yield* Effect.forEach(
        [1, 2, 3],
        () => SseBody.open(fibers, (out) => out.write(": connected\n\n")),
      )
      yield* Effect.sleep("20 millis")
      assert.strictEqual(yield* FiberSet.size(fibers), 3)
      yield* FiberSet.clear(fibers)
      yield* Effect.forEach(bodies, (b) => closed(b).pipe(Effect.timeout("2 seconds")))
      assert.isTrue(bodies.every((b) => b.destroyed))
    }))
})
