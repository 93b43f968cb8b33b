/**
 * Fault injection for delivery (issue #8): a backlog of outbound replies builds while the
 * provider (the `api` channel's webhook, a receiver in this process that counts what it accepts)
 * is down; then it comes back and, while Chorus (a child process on its own nats-server) works
 * through the backlog, Chorus is killed with SIGKILL and restarted, and the nats-server is
 * restarted. Afterwards every reply is `sent` in the store and the receiver accepted each one.
 *
 * "Sent twice": a reply the provider accepted but whose outcome Chorus had not committed when it
 * was killed is sent again after the restart, with the same `X-Chorus-Delivery` id (the
 * idempotency key a receiver de-duplicates by, as providers do with theirs). The test counts
 * those repeats and holds them to the replies in flight at the kill (the bulkhead's size); every
 * reply is accepted at least once and, by its key, once.
 *
 * CI: 2,000 replies; `CHORUS_SOAK=1`: the 10,000.
 */
import Sqlite from "better-sqlite3"
import * as NodeFs from "node:fs"
import * as NodeHttp from "node:http"
import { tmpdir } from "node:os"
import * as NodePath from "node:path"
import { Effect, Exit, Scope } from "effect"
import { afterEach, assert, describe, it } from "vitest"
import {
  type ChorusProcess,
  killHard,
  runChorus,
  sleep,
  startChorus,
  waitFor,
} from "../support/ChorusProcess.ts"
import * as NatsServer from "../support/NatsServer.ts"

const soak = process.env["CHORUS_SOAK"] === "1"
const CONVERSATIONS = soak ? 500 : 100
const PER_CONVERSATION = 20
const TOTAL = CONVERSATIONS * PER_CONVERSATION
const CONCURRENCY = 16

const children = new Set<ChorusProcess>()
const cleanups: Array<() => Promise<void> | void> = []
afterEach(async () => {
  for (const c of children) await killHard(c)
  children.clear()
  for (const f of cleanups.splice(0).reverse()) await f()
})

/** The provider: down (503) until `up`; then accepts, counting deliveries by their key. */
const startReceiver = async () => {
  const accepted = new Map<string, number>()
  const state = { up: false, requests: 0 }
  const server = NodeHttp.createServer((req, res) => {
    req.resume()
    req.on("end", () => {
      state.requests++
      if (!state.up) {
        res.writeHead(503).end("maintenance")
        return
      }
      const id = String(req.headers["x-chorus-delivery"])
      accepted.set(id, (accepted.get(id) ?? 0) + 1)
      res.writeHead(200, { "content-type": "application/json" }).end(
        JSON.stringify({ id: `ext-${id}` }),
      )
    })
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const { port } = server.address() as { port: number }
  cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())))
  return { url: `http://127.0.0.1:${port}/hook`, accepted, state }
}

const counts = (file: string) => {
  const db = new Sqlite(file, { readonly: true, fileMustExist: true })
  try {
    const rows = db.prepare(
      "select delivery_state as state, count(*) as n from messages where direction = 'out' group by delivery_state",
    ).all() as Array<{ state: string; n: number }>
    return Object.fromEntries(rows.map((r) => [r.state, r.n])) as Record<string, number>
  } catch {
    return {}
  } finally {
    db.close()
  }
}

describe("delivery under kill -9 and a nats-server restart", () => {
  it(
    `${TOTAL} replies backed up behind a provider outage: none lost, each accepted once by its key`,
    async () => {
      const natsScope = await Effect.runPromise(Scope.make())
      cleanups.push(() => Effect.runPromise(Scope.close(natsScope, Exit.void)))
      const nats = await Effect.runPromise(Scope.extend(NatsServer.start(), natsScope))
      const receiver = await startReceiver()
      const dir = NodeFs.mkdtempSync(NodePath.join(tmpdir(), "chorus-outbound-kill-"))
      cleanups.push(() => NodeFs.rmSync(dir, { recursive: true, force: true }))
      const config = NodePath.join(dir, "chorus.config.json")
      NodeFs.writeFileSync(
        config,
        JSON.stringify({
          dataDir: NodePath.join(dir, "data"),
          http: { port: 0 },
          log: { level: "info" },
          bus: { natsUrl: nats.url, namespace: "okill" },
          channels: { api: { webhookUrl: receiver.url } },
          delivery: {
            channels: {
              api: {
                retry: { baseDelay: "100 millis", maxDelay: "1 second", maxAttempts: 1000 },
                breaker: { consecutiveFailures: 5, openFor: "500 millis", maxOpenFor: "1 second" },
                bulkhead: { concurrency: CONCURRENCY, queue: 200 },
              },
            },
          },
        }),
      )
      const database = NodePath.join(dir, "data", "chorus.sqlite")
      const created = await runChorus(["token", "create", "--name", "okill", "--config", config])
      assert.strictEqual(created.code, 0, created.stderr)
      const token = created.stdout[0]!
      const start = () => {
        const chorus = startChorus(["start", "--config", config])
        children.add(chorus)
        return chorus
      }
      let chorus = start()
      let url = await chorus.ready
      const call = async (path: string, body: unknown) => {
        for (;;) {
          try {
            const response = await fetch(`${url}/api/v1${path}`, {
              method: "POST",
              headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
              body: JSON.stringify(body),
              signal: AbortSignal.timeout(15_000),
            })
            const text = await response.text()
            if (response.status === 202) return JSON.parse(text)
            if (response.status < 500) throw new Error(`${path}: ${response.status} ${text}`)
          } catch (error) {
            if (error instanceof Error && error.message.startsWith(path)) throw error
          }
          await sleep(100)
        }
      }

      // One customer message per conversation, then the replies, while the provider is down.
      for (let c = 0; c < CONVERSATIONS; c++) {
        await call("/inbound", {
          account: "shop",
          sender: { id: `c${c}` },
          externalId: `c${c}-1`,
          text: "hello",
        })
      }
      const conversationIds: Array<string> = []
      assert.isTrue(
        await waitFor(
          () => {
            const db = new Sqlite(database, { readonly: true })
            try {
              conversationIds.splice(
                0,
                conversationIds.length,
                ...(db.prepare("select id from conversations order by id").all() as Array<
                  { id: string }
                >).map((r) => r.id),
              )
            } finally {
              db.close()
            }
            return conversationIds.length === CONVERSATIONS
          },
          60_000,
          200,
        ),
        "conversations stored",
      )
      const replyIds: Array<string> = []
      let next = 0
      await Promise.all(Array.from({ length: 32 }, async () => {
        for (;;) {
          const k = next++
          if (k >= TOTAL) return
          const conversationId = conversationIds[k % CONVERSATIONS]!
          const reply = await call(`/conversations/${conversationId}/messages`, {
            text: `reply ${Math.floor(k / CONVERSATIONS)}`,
            clientId: `r-${k}`,
          })
          replyIds.push(reply.id)
        }
      }))
      assert.strictEqual(new Set(replyIds).size, TOTAL)
      const backlog = counts(database)["queued"] ?? 0

      // The provider comes back; kill -9 Chorus a third of the way, restart the nats-server at
      // two thirds.
      receiver.state.up = true
      const sentCount = () => counts(database)["sent"] ?? 0
      assert.isTrue(await waitFor(() => sentCount() >= TOTAL / 3, 180_000, 100), "a third sent")
      const inFlightAtKill = receiver.accepted.size - sentCount()
      await killHard(chorus)
      children.delete(chorus)
      chorus = start()
      url = await chorus.ready
      assert.isTrue(
        await waitFor(() => sentCount() >= (2 * TOTAL) / 3, 180_000, 100),
        "two thirds sent",
      )
      await Effect.runPromise(nats.restart)
      assert.isTrue(
        await waitFor(() => sentCount() >= TOTAL, 240_000, 200),
        `all sent: ${JSON.stringify(counts(database))}\n${chorus.lines.slice(-10).join("\n")}`,
      )
      chorus.child.kill("SIGTERM")
      await chorus.exited
      children.delete(chorus)

      const states = counts(database)
      let repeats = 0
      for (const n of receiver.accepted.values()) repeats += n - 1
      console.log(JSON.stringify({
        replies: TOTAL,
        backlogWhenProviderCameBack: backlog,
        acceptedDistinct: receiver.accepted.size,
        repeatsAfterKill: repeats,
        inFlightAtKill,
        providerRequests: receiver.state.requests,
        states,
      }))
      assert.strictEqual(states["sent"], TOTAL, "every reply sent")
      assert.strictEqual(receiver.accepted.size, TOTAL, "every reply accepted by the provider")
      for (const id of replyIds) assert.isAtLeast(receiver.accepted.get(id) ?? 0, 1, id)
      // A repeat can only be a reply in flight at the kill (accepted, outcome not committed).
      assert.isAtMost(repeats, CONCURRENCY, "repeats beyond the replies in flight at the kill")
    },
    soak ? 900_000 : 300_000,
  )
})
