/**
 * History page latency: one conversation with 10,000 messages (appended through the store, group
 * committed), then the newest page of 50, read 500 times one after another, from the store
 * (`ConversationStore.messages`) and over HTTP (`GET /api/v1/conversations/{id}/messages?limit=50`,
 * keep-alive, client in the same process). SQLite, embedded bus.
 */
import { Agent, request } from "node:http"
import { Effect, Schema } from "effect"
import { InboundMessage } from "../../schemas/Inbound.ts"
import type { BenchSection, Measurement } from "../Benchmark.ts"
import { ms, percentile, startServer, verdict } from "../Server.ts"

const MESSAGES = 10_000
const READS = 500
const TARGET_MS = 20

const inbound = (externalId: string) =>
  Schema.decodeUnknownSync(InboundMessage)({
    channel: "api",
    account: "bench",
    sender: { externalId: "history-sender", name: "Bench" },
    externalId,
    text: "x".repeat(200),
    sentAt: "2026-11-23T10:00:00Z",
    receivedAt: "2026-11-23T10:00:01Z",
  })

const get = (url: string, token: string, agent: Agent) =>
  new Promise<number>((resolve, reject) => {
    const req = request(url, { agent, headers: { authorization: `Bearer ${token}` } }, (res) => {
      res.resume()
      res.on("end", () => resolve(res.statusCode ?? 0))
    })
    req.on("error", reject)
    req.end()
  })

const timed = async (times: number, op: () => Promise<unknown>) => {
  const samples: Array<number> = []
  const started = performance.now()
  for (let i = 0; i < times; i++) {
    const t0 = performance.now()
    await op()
    samples.push(performance.now() - t0)
  }
  return { samples: samples.sort((a, b) => a - b), seconds: (performance.now() - started) / 1_000 }
}

export const history: BenchSection = {
  name: "history",
  title: "History page: newest 50 of a 10,000-message conversation (SQLite)",
  run: (ctx) =>
    Effect.gen(function* () {
      const server = yield* startServer(ctx, "embedded", "h")
      const store = server.store
      const first = inbound("h-0")
      const sender = yield* store.resolveSender(first)
      const { conversation } = yield* store.openConversation(sender.contact.id, sender.identity)
      for (let batch = 0; batch < MESSAGES; batch += 500) {
        yield* Effect.forEach(
          Array.from({ length: 500 }, (_, i) => batch + i + 1),
          (seq) =>
            store.appendInbound({
              conversationId: conversation.id,
              seq,
              status: "open",
              identityId: sender.identity.id,
              inbound: inbound(`h-${seq}`),
            }),
          { concurrency: "unbounded", discard: true },
        )
      }
      const check = yield* store.messages(conversation.id, { limit: 50 })
      if (check.messages.length !== 50 || check.messages[0]!.seq !== MESSAGES) {
        return yield* Effect.fail(
          new Error(`unexpected page: newest seq ${check.messages[0]?.seq}`),
        )
      }
      const agent = new Agent({ keepAlive: true, maxSockets: 1 })
      const url = `${server.url}/api/v1/conversations/${conversation.id}/messages?limit=50`
      const status = yield* Effect.promise(() => get(url, server.token, agent))
      if (status !== 200) return yield* Effect.fail(new Error(`GET messages: HTTP ${status}`))
      const readStore = () => Effect.runPromise(store.messages(conversation.id, { limit: 50 }))
      const { direct, http } = yield* Effect.promise(async () => {
        await timed(50, readStore)
        const direct = await timed(READS, readStore)
        await timed(50, () => get(url, server.token, agent))
        const http = await timed(READS, () => get(url, server.token, agent))
        agent.destroy()
        return { direct, http }
      })
      const p = (s: ReadonlyArray<number>) => ({ p50: percentile(s, 50), p99: percentile(s, 99) })
      const d = p(direct.samples)
      const h = p(http.samples)
      yield* Effect.sync(() =>
        process.stdout.write(
          `\nhistory (newest 50 of ${MESSAGES.toLocaleString("en-US")}, ${READS} reads each):\n` +
            `  store: p50 ${ms(d.p50)}, p99 ${ms(d.p99)}; target p99 ≤ ${TARGET_MS} ms: ` +
            `${verdict(d.p99 <= TARGET_MS)}\n` +
            `  HTTP:  p50 ${ms(h.p50)}, p99 ${ms(h.p99)}; target p99 ≤ ${TARGET_MS} ms: ` +
            `${verdict(h.p99 <= TARGET_MS)}\n`,
        )
      )
      const out: Array<Measurement> = [
        {
          name: "history.store.page",
          label: `ConversationStore.messages limit 50: p50 ${ms(d.p50)}, p99 ${ms(d.p99)} ` +
            `(≤ ${TARGET_MS} ms ${verdict(d.p99 <= TARGET_MS)})`,
          ops: READS,
          seconds: direct.seconds,
        },
        {
          name: "history.http.page",
          label: `GET …/messages?limit=50: p50 ${ms(h.p50)}, p99 ${ms(h.p99)} ` +
            `(≤ ${TARGET_MS} ms ${verdict(h.p99 <= TARGET_MS)})`,
          ops: READS,
          seconds: http.seconds,
        },
      ]
      return out
    }),
}
