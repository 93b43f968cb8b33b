/**
 * Fault injection: the nats-server is killed with SIGKILL (twice) while a publisher writes
 * 20,000 messages through `JetStreamBus`, and restarted on the same store. Each publish is retried
 * with the same id until it is acknowledged. Afterwards a consumer reads the stream: every
 * acknowledged message must be there, and no message id may come twice (the duplicate window
 * must survive the kill too).
 *
 * nats-server 2.9 acknowledges a publish before fsync; a process kill is still safe as long as
 * the write reached the kernel before the ack. This test measures exactly that (a power cut is
 * not covered). `CHORUS_SOAK=1` runs 100,000 messages and 5 kills.
 */
import { assert, describe, it } from "@effect/vitest"
import { jetstreamManager } from "@nats-io/jetstream"
import { connect } from "@nats-io/transport-node"
import { type Duration, Effect, Schedule } from "effect"
import type { BusMessage } from "../../core/bus/Bus.ts"
import * as JetStreamBus from "../../core/bus/JetStreamBus.ts"
import * as NatsServer from "../support/NatsServer.ts"

const soak = process.env["CHORUS_SOAK"] === "1"
const TOTAL = soak ? 100_000 : 20_000
const KILLS = soak ? 5 : 2
const IN_FLIGHT = 128

const encoder = new TextEncoder()

/** Wait (polling) until `condition` holds. */
const until = (condition: () => boolean, every: Duration.DurationInput = "5 millis") =>
  Effect.suspend(() => (condition() ? Effect.void : Effect.fail("not yet" as const))).pipe(
    Effect.retry(Schedule.spaced(every)),
  )

describe("JetStreamBus under kill -9", () => {
  it.scopedLive(
    `keeps every acknowledged publish across ${KILLS} kills of the server, and stores none twice`,
    () =>
      Effect.gen(function* () {
        const server = yield* NatsServer.start()
        const bus = yield* JetStreamBus.make({ servers: server.url, namespace: "fault" })
        yield* bus.ensureStream({ name: "events", subjects: ["events.>"] })

        const acked = new Uint8Array(TOTAL)
        let ackedCount = 0
        let attempts = 0
        let unavailable = 0
        let duplicateAcks = 0
        const rejected: Array<string> = []
        const kills: Array<{ readonly afterAcks: number; readonly downMs: number }> = []
        const started = Date.now()

        const publishOne = (i: number) =>
          Effect.suspend(() => {
            attempts++
            return bus.publish(`events.p${i % 32}`, encoder.encode(`m-${i}`), { id: `m-${i}` })
          }).pipe(
            Effect.tapError((e) =>
              Effect.sync(() =>
                e._tag === "BusUnavailable" ? unavailable++ : rejected.push(e.message)
              )
            ),
            Effect.retry({
              while: (e) => e._tag === "BusUnavailable",
              schedule: Schedule.exponential("20 millis").pipe(
                Schedule.either(Schedule.spaced("500 millis")),
              ),
            }),
            Effect.tap((ack) =>
              Effect.sync(() => {
                if (ack.duplicate) duplicateAcks++
                acked[i] = 1
                ackedCount++
              })
            ),
          )

        const publisher = Effect.forEach(
          Array.from({ length: TOTAL }, (_, i) => i),
          publishOne,
          { concurrency: IN_FLIGHT, discard: true },
        )

        const killer = Effect.gen(function* () {
          for (let k = 1; k <= KILLS; k++) {
            yield* until(() => ackedCount >= Math.floor((TOTAL * k) / (KILLS + 1)))
            const afterAcks = ackedCount
            const down = Date.now()
            yield* server.kill9
            yield* Effect.sleep("200 millis")
            yield* server.restart
            kills.push({ afterAcks, downMs: Date.now() - down })
          }
        })

        yield* Effect.all([publisher, killer], { concurrency: 2, discard: true })
        const publishedMs = Date.now() - started
        assert.deepStrictEqual(rejected, [], "no publish may be rejected")
        assert.strictEqual(ackedCount, TOTAL)
        assert.strictEqual(kills.length, KILLS, "the server was killed mid-stream")

        const stored = yield* Effect.acquireUseRelease(
          Effect.promise(() => connect({ servers: server.url })),
          (nc) =>
            Effect.promise(async () =>
              (await (await jetstreamManager(nc)).streams.info("fault_events")).state.messages
            ),
          (nc) => Effect.promise(() => nc.close()),
        )

        // Read everything back.
        const seen = new Uint16Array(TOTAL)
        let consumed = 0
        let foreign = 0
        const consumeStarted = Date.now()
        const handler = (m: BusMessage) =>
          Effect.sync(() => {
            consumed++
            const i = Number(m.id.slice(2))
            if (m.id.startsWith("m-") && i >= 0 && i < TOTAL) seen[i]!++
            else foreign++
          })
        yield* bus.consume(
          {
            stream: "events",
            name: "reader",
            concurrency: 64,
            maxAckPending: 2_048,
            ackWait: "30 seconds",
          },
          handler,
        )
        yield* until(() => consumed >= stored, "50 millis").pipe(Effect.timeout("60 seconds"))
        // Give late duplicates a chance to show up.
        yield* Effect.sleep("1 second")
        const consumedMs = Date.now() - consumeStarted

        let lost = 0
        let twice = 0
        let distinct = 0
        for (let i = 0; i < TOTAL; i++) {
          const n = seen[i]!
          if (n > 0) distinct++
          if (n > 1) twice++
          if (acked[i] === 1 && n === 0) lost++
        }
        console.log(JSON.stringify({
          messages: TOTAL,
          inFlight: IN_FLIGHT,
          kills,
          publishAttempts: attempts,
          publishFailuresUnavailable: unavailable,
          acked: ackedCount,
          ackedAsDuplicate: duplicateAcks,
          storedInStream: stored,
          consumedDeliveries: consumed,
          consumedDistinct: distinct,
          lostAcked: lost,
          consumedTwice: twice,
          foreign,
          publishSeconds: publishedMs / 1000,
          consumeSeconds: consumedMs / 1000,
        }))

        assert.strictEqual(lost, 0, "an acknowledged publish was lost")
        assert.strictEqual(twice, 0, "a message was stored or delivered twice")
        assert.strictEqual(foreign, 0)
        assert.strictEqual(distinct, TOTAL)
        assert.strictEqual(stored, TOTAL)
      }),
    { timeout: soak ? 600_000 : 90_000 },
  )
})
