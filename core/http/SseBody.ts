/**
 * The body of a long-lived text response (Server-Sent Events) as a Node stream the HTTP server
 * pipes to the client: what the connection's fibers write goes straight into it, without an
 * Effect stream between (a stream's steps per chunk cost, for every open inbox, more than the
 * framing of the event).
 *
 * Writing waits while the client has `highWaterMark` bytes unread, so a slow client holds its
 * writer back instead of growing memory. The fibers that write live in a scope of their own,
 * closed when the response ends for any reason: the client went away, `end`, or the server stops.
 */
import { Readable } from "node:stream"
import { Effect, FiberId, FiberSet, type Scope } from "effect"

export interface SseBody {
  /** Queue `text` for the client; waits while the client is `highWaterMark` bytes behind. */
  readonly write: (text: string) => Effect.Effect<void>
  /** End the response once what is written has been sent. */
  readonly end: Effect.Effect<void>
}

/**
 * Open a body whose writers `connection` starts in its scope; they are interrupted (and the
 * scope's finalizers run) when the response is over. Returns the Node stream to answer with
 * (`HttpServerResponse.raw`). `fibers` holds the connection
 * while it lasts, so closing it (the server stops) ends every connection.
 */
export const open = (
  fibers: FiberSet.FiberSet,
  connection: (body: SseBody) => Effect.Effect<void, never, Scope.Scope>,
  options: { readonly highWaterMark?: number } = {},
): Effect.Effect<Readable> =>
  Effect.gen(function* () {
    let ended = false
    /** The writers waiting for the client to read (the events and the keep-alive may both). */
    const waiting = new Set<() => void>()
    const readable = new Readable({
      highWaterMark: options.highWaterMark ?? 64 * 1024,
      read() {
        const resume = [...waiting]
        waiting.clear()
        for (const r of resume) r()
      },
    })
    const waitForReader = Effect.async<void>((resume) => {
      const waiter = () => resume(Effect.void)
      waiting.add(waiter)
      return Effect.sync(() => waiting.delete(waiter))
    })
    const body: SseBody = {
      write: (text) =>
        Effect.suspend(() =>
          ended || readable.destroyed || readable.push(text) ? Effect.void : waitForReader
        ),
      end: Effect.sync(() => {
        if (ended || readable.destroyed) return
        ended = true
        readable.push(null)
      }),
    }
    const fiber = yield* FiberSet.run(
      fibers,
      // Held open until the response is over (the close below interrupts it).
      Effect.scoped(Effect.zipRight(connection(body), Effect.never)).pipe(
        // Stopped from outside (the server stops) or by a defect: the response ends too.
        Effect.ensuring(Effect.sync(() => {
          if (!readable.destroyed && !readable.readableEnded) readable.destroy()
        })),
      ),
    )
    // Ended, destroyed by the server (the client went away) or failed: the writers stop.
    readable.once("close", () => fiber.unsafeInterruptAsFork(FiberId.none))
    return readable
  })
