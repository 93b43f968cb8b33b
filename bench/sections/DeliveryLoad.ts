/**
 * Delivery at 10x the normal rate (issue #8): replies offered at a fixed rate — 10 a second is
 * the "normal" day of a 100-seat contact centre (a reply per operator every 10 s); 10x is 100 a
 * second — for 60 s (`CHORUS_BENCH_LOAD_SECONDS` to change), over 400 conversations on 8
 * accounts of the `api` channel, to a provider (a loopback node:http receiver) answering each
 * call after 20 ms. Every reply must be accepted (202) and delivered; reported: the backlog peak
 * (replies stored, not yet sent, sampled every 250 ms), how long after the last offer the backlog
 * drained, and the delivery latency (202 → the provider has it) p50/p99. The raw limit beside it:
 * the same receiver POSTed directly, 32 in flight. SQLite, embedded bus.
 */
import * as NodeHttp from "node:http"
import type { AddressInfo } from "node:net"
import { Effect } from "effect"
import type { BenchSection, Measurement } from "../Benchmark.ts"
import { ms, percentile, seedConversations, startServer } from "../Server.ts"

const NORMAL_PER_SECOND = 10
const RATE = NORMAL_PER_SECOND * 10
const SECONDS = Number(process.env["CHORUS_BENCH_LOAD_SECONDS"] ?? 60)
const CONVERSATIONS = 400
const ACCOUNTS = 8
const PROVIDER_MS = 20

const receiver = Effect.acquireRelease(
  Effect.async<{ server: NodeHttp.Server; url: string; arrived: Map<string, number> }>(
    (resume) => {
      const arrived = new Map<string, number>()
      const server = NodeHttp.createServer((req, res) => {
        req.resume()
        req.on("end", () => {
          const id = req.headers["x-chorus-delivery"]
          setTimeout(() => {
            if (typeof id === "string" && !arrived.has(id)) arrived.set(id, performance.now())
            res.writeHead(200, { "content-type": "application/json" }).end(`{"id":"p-${id}"}`)
          }, PROVIDER_MS)
        })
      })
      server.listen(0, "127.0.0.1", () => {
        const { port } = server.address() as AddressInfo
        resume(Effect.succeed({ server, url: `http://127.0.0.1:${port}/hook`, arrived }))
      })
    },
  ),
  ({ server }) =>
    Effect.async<void>((resume) => {
      server.closeAllConnections()
      server.close(() => resume(Effect.void))
    }),
)

export const deliveryLoad: BenchSection = {
  name: "delivery-load",
  title: `Delivery at 10x: ${RATE} replies/s for ${SECONDS} s to a provider answering in ` +
    `${PROVIDER_MS} ms (SQLite, embedded bus)`,
  run: (ctx) =>
    Effect.gen(function* () {
      const hook = yield* receiver
      const body = JSON.stringify({ type: "message.outbound", text: "x".repeat(200) })
      const rawCount = 2_000
      const rawSeconds = yield* Effect.promise(async () => {
        const started = performance.now()
        let next = 0
        await Promise.all(Array.from({ length: 32 }, async () => {
          while (next++ < rawCount) {
            await fetch(hook.url, { method: "POST", body }).then((r) => r.text())
          }
        }))
        return (performance.now() - started) / 1_000
      })

      const server = yield* startServer(ctx, "embedded", "dl", {
        channels: { api: { webhookUrl: hook.url } },
      })
      const conversations = yield* seedConversations(server.store, {
        count: CONVERSATIONS,
        accounts: ACCOUNTS,
        prefix: "load",
      })
      const backlog = () =>
        Effect.runPromise(
          server.outbound.backlog.pipe(
            Effect.map((rows) => rows.reduce((n, r) => n + r.queued, 0)),
            Effect.orElseSucceed(() => 0),
          ),
        )

      const result = yield* Effect.promise(async () => {
        const acceptedAt = new Map<string, number>()
        let refused = 0
        let peak = 0
        let sampling = true
        const sampler = (async () => {
          while (sampling) {
            peak = Math.max(peak, await backlog())
            await new Promise((r) => setTimeout(r, 250))
          }
        })()
        const total = RATE * SECONDS
        const started = performance.now()
        const posts: Array<Promise<void>> = []
        // Open loop: offers go out on the clock, whatever the answers are doing.
        for (let i = 0; i < total; i++) {
          const due = started + (i * 1_000) / RATE
          const wait = due - performance.now()
          if (wait > 1) await new Promise((r) => setTimeout(r, wait))
          posts.push(
            fetch(
              `${server.url}/api/v1/conversations/${conversations[i % CONVERSATIONS]}/messages`,
              {
                method: "POST",
                headers: {
                  authorization: `Bearer ${server.token}`,
                  "content-type": "application/json",
                },
                body: JSON.stringify({ text: `load ${i}` }),
              },
            ).then(async (r) => {
              const text = await r.text()
              if (r.status !== 202) {
                refused++
                return
              }
              acceptedAt.set(JSON.parse(text).id, performance.now())
            }),
          )
        }
        const offeredEnd = performance.now()
        await Promise.all(posts)
        const deadline = Date.now() + 600_000
        while (hook.arrived.size < acceptedAt.size && Date.now() < deadline) {
          await new Promise((r) => setTimeout(r, 20))
        }
        const drainedAt = Math.max(...hook.arrived.values())
        sampling = false
        await sampler
        const latencies = [...acceptedAt].map(([id, at]) => (hook.arrived.get(id) ?? NaN) - at)
          .filter((x) => Number.isFinite(x)).sort((a, b) => a - b)
        return {
          total,
          accepted: acceptedAt.size,
          delivered: [...acceptedAt.keys()].filter((id) => hook.arrived.has(id)).length,
          refused,
          peak,
          offerSeconds: (offeredEnd - started) / 1_000,
          drainSeconds: Math.max(0, (drainedAt - offeredEnd) / 1_000),
          totalSeconds: (drainedAt - started) / 1_000,
          p50: percentile(latencies, 50),
          p99: percentile(latencies, 99),
        }
      })
      if (result.accepted !== result.total || result.delivered !== result.accepted) {
        return yield* Effect.fail(
          new Error(
            `not every reply accepted and delivered: ${JSON.stringify(result)}`,
          ),
        )
      }
      const out: Array<Measurement> = [
        {
          name: "delivery.raw.webhook",
          label: `Raw webhook POST (fetch to the ${PROVIDER_MS} ms receiver, 32 in flight)`,
          ops: rawCount,
          seconds: rawSeconds,
        },
        {
          name: "delivery.load.10x",
          label: `${result.total} replies offered at ${RATE}/s: all accepted and delivered; ` +
            `backlog peak ${result.peak}, drained ${result.drainSeconds.toFixed(1)} s after the ` +
            `last offer; delivery latency p50 ${ms(result.p50)}, p99 ${ms(result.p99)}`,
          ops: result.total,
          seconds: result.totalSeconds,
          limits: ["delivery.raw.webhook"],
        },
      ]
      return out
    }),
}
