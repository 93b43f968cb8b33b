/**
 * Replies end to end: `POST /api/v1/conversations/{id}/messages` (32 in flight, 64 conversations
 * on 8 accounts of the `api` channel) until the api channel's webhook, a bare node:http receiver on
 * loopback, has received every reply. Compared with the raw limit under it: the same receiver
 * POSTed directly with fetch (the client the adapter uses), 32 in flight. SQLite, embedded bus.
 */
import * as NodeHttp from "node:http"
import type { AddressInfo } from "node:net"
import { Effect } from "effect"
import type { BenchSection, Measurement } from "../Benchmark.ts"
import { seedConversations, startServer } from "../Server.ts"

const REPLIES = 1_000
const IN_FLIGHT = 32
const CONVERSATIONS = 64
const ACCOUNTS = 8

const receiver = Effect.acquireRelease(
  Effect.async<{ server: NodeHttp.Server; url: string; count: () => number }>((resume) => {
    let received = 0
    const server = NodeHttp.createServer((req, res) => {
      req.resume()
      req.on("end", () => {
        received++
        res.writeHead(200, { "content-type": "application/json" }).end(`{"id":"r-${received}"}`)
      })
    })
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as AddressInfo
      resume(
        Effect.succeed({ server, url: `http://127.0.0.1:${port}/hook`, count: () => received }),
      )
    })
  }),
  ({ server }) =>
    Effect.async<void>((resume) => {
      server.closeAllConnections()
      server.close(() => resume(Effect.void))
    }),
)

/** Run `op(i)` for i < n with `inFlight` at once; seconds taken. */
const pool = async (n: number, inFlight: number, op: (i: number) => Promise<unknown>) => {
  const started = performance.now()
  let next = 0
  await Promise.all(Array.from({ length: inFlight }, async () => {
    while (next < n) await op(next++)
  }))
  return (performance.now() - started) / 1_000
}

const waitUntil = async (check: () => boolean, timeoutMs: number) => {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error("replies did not all arrive in time")
    await new Promise((r) => setTimeout(r, 5))
  }
}

export const replies: BenchSection = {
  name: "replies",
  title: "Replies: HTTP reply → conversation actor → outbound → api webhook (SQLite, embedded bus)",
  run: (ctx) =>
    Effect.gen(function* () {
      const hook = yield* receiver
      const body = JSON.stringify({ type: "message.outbound", text: "x".repeat(200) })
      yield* Effect.promise(() =>
        pool(100, IN_FLIGHT, () => fetch(hook.url, { method: "POST", body }).then((r) => r.text()))
      )
      const rawBefore = hook.count()
      const rawSeconds = yield* Effect.promise(() =>
        pool(REPLIES, IN_FLIGHT, () =>
          fetch(hook.url, { method: "POST", body }).then((r) =>
            r.text()
          ))
      )
      if (hook.count() - rawBefore !== REPLIES) {
        return yield* Effect.fail(new Error("raw webhook POSTs went missing"))
      }

      const server = yield* startServer(ctx, "embedded", "r", {
        channels: { api: { webhookUrl: hook.url, webhookSecret: "bench" } },
      })
      const conversations = yield* seedConversations(server.store, {
        count: CONVERSATIONS,
        accounts: ACCOUNTS,
        prefix: "bench",
      })
      const post = (i: number) =>
        fetch(`${server.url}/api/v1/conversations/${conversations[i % CONVERSATIONS]}/messages`, {
          method: "POST",
          headers: { authorization: `Bearer ${server.token}`, "content-type": "application/json" },
          body: JSON.stringify({ text: "x".repeat(200) }),
        }).then(async (r) => {
          if (r.status !== 202) throw new Error(`reply: HTTP ${r.status} ${await r.text()}`)
        })
      const before = hook.count()
      const { accepted, delivered } = yield* Effect.promise(async () => {
        const started = performance.now()
        const accepted = await pool(REPLIES, IN_FLIGHT, post)
        await waitUntil(() => hook.count() - before >= REPLIES, 300_000)
        return { accepted, delivered: (performance.now() - started) / 1_000 }
      })
      const out: Array<Measurement> = [
        {
          name: "replies.raw.webhook",
          label: `Raw webhook POST (fetch to a loopback node:http server, ${IN_FLIGHT} in flight)`,
          ops: REPLIES,
          seconds: rawSeconds,
        },
        {
          name: "replies.accepted",
          label: "Replies accepted (202: stored, message.sent, on the outbound stream)",
          ops: REPLIES,
          seconds: accepted,
          limits: ["replies.raw.webhook"],
        },
        {
          name: "replies.delivered",
          label: "Replies delivered (from the first POST to the last webhook POST received)",
          ops: REPLIES,
          seconds: delivered,
          limits: ["replies.raw.webhook"],
        },
      ]
      return out
    }),
}
