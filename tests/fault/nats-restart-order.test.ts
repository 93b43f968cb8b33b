/**
 * Fault injection: while an ordered consumer (`ordering: "key"`) of a running `JetStreamBus`
 * works through a backlog, the connection to nats-server dies with deliveries on the wire (a relay
 * drops what the server sent, then cuts both sides) or nats-server is killed with SIGKILL and
 * restarted on the same store. A delivery the server sent but the client never received stays
 * pending on the server until `ack_wait` (after a kill the server may also have forgotten some of
 * its deliveries); later messages of its key must not be handled before it. Per key, no message
 * may be handled before every earlier message of that key was handled at least once (duplicates
 * are allowed: the bus is at-least-once), and every published message must be handled.
 */
import { assert, describe, it } from "@effect/vitest"
import { type Duration, Effect, Schedule } from "effect"
import type { BusMessage } from "../../core/bus/Bus.ts"
import * as JetStreamBus from "../../core/bus/JetStreamBus.ts"
import * as NatsServer from "../support/NatsServer.ts"
import { createConnection, createServer, type Socket } from "node:net"

const KEYS = 64
const PER_KEY = 200
const KILLS = 6

const encoder = new TextEncoder()

/**
 * A TCP relay between the bus and the server that can lose what the server sends: `hold` stops
 * passing the server's bytes on, `cut` then closes both sides and drops what it held, like a
 * connection that dies with deliveries on the wire.
 */
const relay = (port: number) =>
  Effect.acquireRelease(
    Effect.async<{
      readonly url: string
      readonly hold: Effect.Effect<void>
      readonly cut: Effect.Effect<void>
      readonly close: () => void
    }>((resume) => {
      const pairs = new Set<{ client: Socket; upstream: Socket; held: boolean }>()
      const server = createServer((client) => {
        const upstream = createConnection({ host: "127.0.0.1", port })
        const pair = { client, upstream, held: false }
        pairs.add(pair)
        client.on("data", (b) => upstream.write(b))
        upstream.on("data", (b) => {
          if (!pair.held) client.write(b)
        })
        const end = () => {
          pairs.delete(pair)
          client.destroy()
          upstream.destroy()
        }
        client.on("error", end).on("close", end)
        upstream.on("error", end).on("close", end)
      })
      server.listen(0, "127.0.0.1", () => {
        const address = server.address()
        const listening = typeof address === "object" && address !== null ? address.port : 0
        resume(Effect.succeed({
          url: `nats://127.0.0.1:${listening}`,
          hold: Effect.sync(() => pairs.forEach((p) => (p.held = true))),
          cut: Effect.sync(() =>
            pairs.forEach((p) => {
              p.client.resetAndDestroy()
              p.upstream.resetAndDestroy()
            })
          ),
          close: () => {
            pairs.forEach((p) => (p.client.destroy(), p.upstream.destroy()))
            server.close()
          },
        }))
      })
    }),
    (r) => Effect.sync(() => r.close()),
  )

const until = (condition: () => boolean, every: Duration.DurationInput = "5 millis") =>
  Effect.suspend(() => (condition() ? Effect.void : Effect.fail("not yet" as const))).pipe(
    Effect.retry(Schedule.spaced(every)),
  )

describe("ordered JetStream consumer across nats-server restarts", () => {
  it.scopedLive(
    `handles each key in publish order across ${KILLS / 2} dropped connections and ${
      KILLS / 2
    } kills of the server, losing nothing`,
    () =>
      Effect.gen(function* () {
        const server = yield* NatsServer.start()
        const proxy = yield* relay(server.port)
        const bus = yield* JetStreamBus.make({ servers: proxy.url, namespace: "order" })
        yield* bus.ensureStream({ name: "events", subjects: ["events.>"] })

        /** Per key: how many of its first messages were all handled at least once. */
        const prefix = new Array<number>(KEYS).fill(0)
        const seen = Array.from({ length: KEYS }, () => new Uint8Array(PER_KEY))
        const violations: Array<string> = []
        let handled = 0
        let published = 0

        const handler = (m: BusMessage) =>
          Effect.gen(function* () {
            const [k, i] = new TextDecoder().decode(m.data).split("-").map(Number) as [
              number,
              number,
            ]
            if (i > prefix[k]!) violations.push(`k${k}-${i} handled before k${k}-${prefix[k]}`)
            seen[k]![i] = 1
            while (prefix[k]! < PER_KEY && seen[k]![prefix[k]!] === 1) prefix[k]!++
            handled++
            // A little work, so that a backlog builds up and handlers run when the server dies.
            yield* Effect.sleep("5 millis")
          })
        yield* bus.consume(
          {
            stream: "events",
            name: "ordered",
            ordering: "key",
            concurrency: 16,
            maxAckPending: 256,
          },
          handler,
        )

        // One publisher per key, in order: the next message of a key goes out once the previous
        // one is stored. A publish that fails while the server is down is retried with its id.
        const publishKey = (k: number) =>
          Effect.forEach(
            Array.from({ length: PER_KEY }, (_, i) => i),
            (i) =>
              bus.publish(`events.k${k}`, encoder.encode(`${k}-${i}`), {
                id: `${k}-${i}`,
                key: `k${k}`,
              }).pipe(
                Effect.retry({
                  while: (e) => e._tag === "BusUnavailable",
                  schedule: Schedule.exponential("20 millis").pipe(
                    Schedule.either(Schedule.spaced("250 millis")),
                  ),
                }),
                Effect.tap(() => Effect.sync(() => published++)),
              ),
            { discard: true },
          )
        const publisher = Effect.forEach(
          Array.from({ length: KEYS }, (_, k) => k),
          publishKey,
          { concurrency: KEYS, discard: true },
        )

        const total = KEYS * PER_KEY
        const started = Date.now()
        const killer = Effect.gen(function* () {
          for (let n = 1; n <= KILLS; n++) {
            yield* until(() => handled >= Math.floor((total * n) / (KILLS + 2)))
            // Odd rounds lose what the server sent on a connection that dies; even ones kill it.
            if (n % 2 === 1) {
              yield* proxy.hold
              yield* Effect.sleep("30 millis")
              yield* proxy.cut
            } else {
              yield* server.kill9
              yield* Effect.sleep("150 millis")
              yield* server.restart
            }
          }
        })

        yield* Effect.all([publisher, killer], { concurrency: 2, discard: true })
        yield* until(() => prefix.every((p) => p === PER_KEY), "50 millis").pipe(
          Effect.timeout("40 seconds"),
          Effect.ignore,
        )
        const missing = prefix.reduce((sum, p) => sum + (PER_KEY - p), 0)
        console.log(
          JSON.stringify({
            published,
            handled,
            missing,
            violations: violations.length,
            first: violations.slice(0, 3),
            seconds: (Date.now() - started) / 1000,
          }),
        )
        assert.deepStrictEqual(violations.slice(0, 10), [], "a key was handled out of order")
        assert.strictEqual(missing, 0, "every published message is handled")
      }),
    { timeout: 90_000 },
  )
})
