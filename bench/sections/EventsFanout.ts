/**
 * Fan-out of the event stream: `CLIENTS` open inboxes (SSE connections, in a child process) and
 * `EVENTS` events published at once on the JetStream bus; measured from the first publish until
 * every connection has every event. The rate is deliveries (events × connections) per second;
 * the server's CPU per delivery is printed beside it. Every connection follows the server's one
 * shared reader of the events stream (core/http/EventTail.ts).
 */
import { spawn } from "node:child_process"
import { fileURLToPath } from "node:url"
import { Effect } from "effect"
import type { BenchContext, BenchSection } from "../Benchmark.ts"
import { deliveryChanged } from "../../tests/support/Events.ts"
import { eventSubject } from "../../core/pipeline/Streams.ts"
import { startServer } from "../Server.ts"

const CLIENTS = 50
const EVENTS = 2_000

const run = (ctx: BenchContext) =>
  Effect.gen(function* () {
    const server = yield* startServer(ctx, "jetstream", "fo")
    const bus = server.bus
    const child = spawn(process.execPath, [
      "--import",
      new URL("../../node_modules/tsx/dist/loader.mjs", import.meta.url).href,
      fileURLToPath(new URL("../EventsClients.ts", import.meta.url)),
      JSON.stringify({ url: server.url, token: server.token, clients: CLIENTS, expected: EVENTS }),
    ], { stdio: ["pipe", "pipe", "inherit"] })
    yield* Effect.addFinalizer(() => Effect.sync(() => child.kill()))
    const lines: Array<string> = []
    const waitFor = (test: (line: string) => boolean) =>
      Effect.async<string, Error>((resume) => {
        const check = () => {
          const found = lines.find(test)
          if (found !== undefined) resume(Effect.succeed(found))
        }
        let rest = ""
        child.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
          rest += chunk
          const parts = rest.split("\n")
          rest = parts.pop() ?? ""
          lines.push(...parts)
          check()
        })
        child.on(
          "exit",
          (code) => resume(Effect.fail(new Error(`the clients exited with ${code}`))),
        )
        check()
      })
    yield* waitFor((l) => l === "ready")
    const cpu0 = process.cpuUsage()
    child.stdin!.write("go\n")
    const encoder = new TextEncoder()
    yield* Effect.forEach(
      Array.from({ length: EVENTS }, (_, n) => n),
      (n) =>
        bus.publish(
          eventSubject("message.delivery_changed"),
          encoder.encode(JSON.stringify(deliveryChanged(n, "bench"))),
          {
            id: `fanout:${n}`,
          },
        ),
      { concurrency: 64, discard: true },
    )
    const done = JSON.parse(yield* waitFor((l) => l.startsWith("{"))) as { ms: number }
    const cpu = process.cpuUsage(cpu0)
    const deliveries = EVENTS * CLIENTS
    const cpuUs = (cpu.user + cpu.system) / deliveries
    yield* Effect.sync(() =>
      process.stdout.write(
        `\nevents fan-out: ${
          EVENTS.toLocaleString("en-US")
        } events to ${CLIENTS} SSE connections ` +
          `in ${(done.ms / 1000).toFixed(2)} s; server CPU ${cpuUs.toFixed(1)} µs per delivery\n`,
      )
    )
    return [{
      name: "events.fanout.jetstream",
      label: `${CLIENTS} open event streams, ${cpuUs.toFixed(1)} µs server CPU per delivery`,
      ops: deliveries,
      seconds: done.ms / 1000,
      limits: ["jetstream.raw.consume"],
    }]
  })

export const eventsFanout: BenchSection = {
  name: "events-fanout",
  title: "Event stream fan-out: one event to every open inbox (JetStream)",
  run: (ctx) => Effect.scoped(run(ctx)),
}
