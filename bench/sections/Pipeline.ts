/**
 * The message pipeline alone, without HTTP: 20,000 inbound messages from 1,000 senders wait on
 * the JetStream `inbound` stream, then a server starts and drains them (consume in order per
 * sender → conversation actor → stored in SQLite → `message.received` published → acknowledged).
 * Reported: messages per second and the server process's CPU per message, both over the window
 * from the first stored message to the last (so the server's start-up is left out), compared with
 * raw JetStream consumption.
 *
 * The end-to-end ingest section measures latency under an offered load; this one measures what a
 * message costs the pipeline, which varies less from run to run on a shared machine.
 */
import Database from "better-sqlite3"
import { performance } from "node:perf_hooks"
import { join } from "node:path"
import { Effect, Schema } from "effect"
import * as JetStreamBus from "../../core/bus/JetStreamBus.ts"
import { inboundKey, InboundStream, inboundSubject } from "../../core/pipeline/Streams.ts"
import { InboundMessage, inboundMessageId } from "../../schemas/Inbound.ts"
import type { BenchSection } from "../Benchmark.ts"
import { startServer } from "../Server.ts"

const MESSAGES = 20_000
const SENDERS = 1_000
const TAG = "pd"

const encode = Schema.encodeSync(InboundMessage)

export const pipeline: BenchSection = {
  name: "pipeline",
  title: "Pipeline alone: an inbound backlog on JetStream drained (stored, event published, acked)",
  run: (ctx) =>
    Effect.gen(function* () {
      // The namespace startServer gives tag TAG: the backlog goes where the server will read.
      const namespace = `${ctx.runId}${TAG}`
      yield* Effect.scoped(Effect.gen(function* () {
        const bus = yield* JetStreamBus.make({ servers: ctx.natsUrl, namespace })
        yield* bus.ensureStream(InboundStream)
        const at = new Date().toISOString()
        yield* Effect.forEach(
          Array.from({ length: MESSAGES }, (_, i) => i),
          (i) => {
            const sender = `sender-${i % SENDERS}`
            const inbound = Schema.decodeUnknownSync(InboundMessage)({
              channel: "api",
              account: "bench",
              sender: { externalId: sender, name: "Bench" },
              externalId: `m-${i}`,
              text: "x".repeat(200),
              sentAt: at,
              receivedAt: at,
            })
            return bus.publish(
              inboundSubject("api"),
              new TextEncoder().encode(JSON.stringify(encode(inbound))),
              { id: inboundMessageId(inbound), key: inboundKey("api", "bench", sender) },
            )
          },
          { concurrency: ctx.window, discard: true },
        )
      }))
      const server = yield* startServer(ctx, "jetstream", TAG)
      const db = yield* Effect.acquireRelease(
        Effect.sync(() => new Database(join(server.dataDir, "chorus.sqlite"), { readonly: true })),
        (db) => Effect.sync(() => db.close()),
      )
      const count = () =>
        (db.prepare("select count(*) as n from messages").get() as { n: number }).n
      let first: { at: number; cpu: NodeJS.CpuUsage; stored: number } | undefined
      let stored = 0
      const deadline = performance.now() + 120_000
      while (stored < MESSAGES && performance.now() < deadline) {
        yield* Effect.sleep("20 millis")
        stored = count()
        if (first === undefined && stored > 0) {
          first = { at: performance.now(), cpu: process.cpuUsage(), stored }
        }
      }
      if (first === undefined) return yield* Effect.fail(new Error("nothing was stored"))
      const seconds = (performance.now() - first.at) / 1_000
      const cpu = process.cpuUsage(first.cpu)
      const drained = stored - first.stored
      const cpuPerMessage = (cpu.user + cpu.system) / Math.max(1, drained)
      return [{
        name: "pipeline.jetstream.drain",
        label:
          `backlog of ${MESSAGES.toLocaleString("en-US")} from ${
            SENDERS.toLocaleString("en-US")
          } senders drained: ${Math.round(cpuPerMessage)} µs server CPU per message` +
          (stored < MESSAGES ? ` (only ${stored} stored in 120 s)` : ""),
        ops: drained,
        seconds,
        limits: ["jetstream.raw.consume"],
      }]
    }),
}
