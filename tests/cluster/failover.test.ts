/**
 * Two `chorus start` processes on one JetStream namespace and one PostgreSQL schema (SQLite is
 * single-process, so two nodes need PostgreSQL), with a 3-second lease. Customers' messages are
 * POSTed to BOTH nodes, each sender strictly in order (the next message only after the 202 of
 * the previous one, retried on the other node when one is down). Mid-stream the leader is killed
 * with SIGKILL: the follower must take the lease within the ttl and a few seconds, and afterwards
 * every message that got a 202 is stored exactly once, in its sender's conversation in the order
 * it was sent. Before the kill, only the leader runs the inbound consumer.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { makeDatabase } from "../../core/storage/Database.ts"
import {
  type ChorusProcess,
  killHard,
  runChorus,
  sleep,
  startChorus,
  waitFor,
} from "../support/ChorusProcess.ts"
import { freshNamespace } from "../support/NatsCleanup.ts"
import { POSTGRES_URL, scratchSchema, tempDir } from "../support/TestDatabase.ts"
import { testNatsUrl } from "../support/TestServices.ts"

const SENDERS = 16
const PER_SENDER = 30
const LEASE_SECONDS = 3
/** Kill the leader once this share of the messages got their 202. */
const KILL_AT = 0.4

const logged = (chorus: ChorusProcess, message: string) =>
  chorus.lines.some((line) => line.includes(`"message":"${message}"`))

/** A node, killed when the test's scope closes (whatever happened). */
const node = (env: Record<string, string>) =>
  Effect.acquireRelease(
    Effect.sync(() => startChorus(["start"], { env })),
    (chorus) => Effect.promise(() => killHard(chorus)),
  )

describe("two nodes, one leader", () => {
  it.scopedLive(
    "the follower takes over within the lease after the leader is killed; every accepted message is stored once, in order",
    () =>
      Effect.gen(function* () {
        const namespace = yield* freshNamespace("fo")
        const schema = yield* scratchSchema("fo")
        const shared = {
          CHORUS_NATS_URL: testNatsUrl,
          CHORUS_BUS_NAMESPACE: namespace,
          CHORUS_DATABASE_URL: POSTGRES_URL,
          CHORUS_DATABASE_SCHEMA: schema,
          CHORUS_CLUSTER_LEASE_SECONDS: String(LEASE_SECONDS),
          CHORUS_HTTP_PORT: "0",
          CHORUS_LOG_LEVEL: "info",
        }
        const envOf = (id: string, dataDir: string) => ({
          ...shared,
          CHORUS_CLUSTER_NODE_ID: id,
          CHORUS_DATA_DIR: dataDir,
          CHORUS_PLUGINS_DIRS: `${dataDir}/no-plugins`,
        })
        const env1 = envOf("n1", yield* tempDir())
        const env2 = envOf("n2", yield* tempDir())
        const created = yield* Effect.promise(() =>
          runChorus(["token", "create", "--name", "failover"], { env: env1 })
        )
        assert.strictEqual(created.code, 0, created.stderr)
        const token = created.stdout[0]!

        const n1 = yield* node(env1)
        const url1 = yield* Effect.promise(() => n1.ready)
        assert.isTrue(
          yield* Effect.promise(() => waitFor(() => logged(n1, "became leader"), 10_000)),
          "n1 never led",
        )
        const n2 = yield* node(env2)
        const url2 = yield* Effect.promise(() => n2.ready)
        const urls = [url1, url2]
        const down = new Set<string>()

        const leaderGauge = (url: string) =>
          Effect.promise(async () => {
            const response = await fetch(`${url}/metrics`, {
              headers: { authorization: `Bearer ${token}` },
            })
            const text = await response.text()
            return /^chorus_cluster_leader\{node="([^"]+)"\} ([01])$/m.exec(text)?.slice(1)
          })
        assert.deepStrictEqual(yield* leaderGauge(url1), ["n1", "1"])
        assert.deepStrictEqual(yield* leaderGauge(url2), ["n2", "0"])

        const accepted = new Map<string, number>() // externalId → n
        let killedAt: number | undefined
        const post = async (k: number, n: number) => {
          const externalId = `s${k}-${n}`
          const body = JSON.stringify({
            account: "failover",
            sender: { id: `s${k}`, name: `Sender ${k}` },
            externalId,
            text: `message ${n} of s${k}`,
          })
          // Alternate nodes per message; a node that is down sends the client to the other.
          for (let attempt = 0;; attempt++) {
            const url = urls[(k + n + attempt) % 2]!
            if (down.has(url)) continue
            try {
              const response = await fetch(`${url}/api/v1/inbound`, {
                method: "POST",
                headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
                body,
                signal: AbortSignal.timeout(10_000),
              })
              const text = await response.text()
              if (response.status === 202) {
                accepted.set(externalId, n)
                return
              }
              if (response.status < 500) {
                throw new Error(`${externalId}: ${response.status} ${text}`)
              }
            } catch (e) {
              if (e instanceof Error && e.message.startsWith(externalId)) throw e
              // connection refused or reset: that node is down; try the other
            }
            if (attempt > 200) throw new Error(`${externalId}: no node accepted it`)
            await sleep(20)
          }
        }
        const total = SENDERS * PER_SENDER
        const senders = Array.from({ length: SENDERS }, (_, k) =>
          (async () => {
            for (let n = 0; n < PER_SENDER; n++) await post(k, n)
          })())
        const killer = (async () => {
          await waitFor(() => accepted.size >= Math.floor(total * KILL_AT), 30_000, 2)
          // Until now only the leader ran the inbound consumer.
          assert.isFalse(logged(n2, "inbound consumer started"), "the follower consumed")
          down.add(url1)
          killedAt = Date.now()
          await killHard(n1)
        })()
        yield* Effect.promise(() => Promise.all([...senders, killer]))
        assert.strictEqual(accepted.size, total)

        const tookOver = yield* Effect.promise(() =>
          waitFor(() => logged(n2, "became leader"), (LEASE_SECONDS + 5) * 1000)
        )
        assert.isTrue(tookOver, "n2 did not take over within the lease and 5 s")
        const leaderLine = n2.lines.find((l) => l.includes(`"message":"became leader"`))!
        const takeoverMs = Date.parse(JSON.parse(leaderLine).timestamp) - killedAt!
        assert.isBelow(takeoverMs, (LEASE_SECONDS + 5) * 1000)
        assert.deepStrictEqual(yield* leaderGauge(url2), ["n2", "1"])

        // Everything accepted is stored once, each sender's messages in the order sent.
        const db = yield* makeDatabase({ url: POSTGRES_URL, schema, sqliteFile: "" })
        const stored = () =>
          db.query("stored", (k) =>
            k.selectFrom("messages").select(["external_id", "conversation_id", "seq"])
              .where("direction", "=", "in").where("account", "=", "failover").execute())
        let rows = yield* stored()
        const deadline = Date.now() + 20_000
        while (rows.length < total && Date.now() < deadline) {
          yield* Effect.sleep("250 millis")
          rows = yield* stored()
        }
        const ids = rows.map((r) =>
          r.external_id!
        )
        assert.strictEqual(new Set(ids).size, ids.length, "a message was stored twice")
        assert.sameMembers(ids, [...accepted.keys()])
        for (let k = 0; k < SENDERS; k++) {
          const mine = rows.filter((r) => r.external_id!.startsWith(`s${k}-`))
          assert.strictEqual(new Set(mine.map((r) => r.conversation_id)).size, 1)
          const bySeq = [...mine].sort((a, b) => Number(a.seq) - Number(b.seq))
          assert.deepStrictEqual(
            bySeq.map((r) => r.external_id),
            Array.from({ length: PER_SENDER }, (_, n) => `s${k}-${n}`),
            `s${k} stored out of order`,
          )
        }
        console.log(JSON.stringify({ accepted: accepted.size, stored: rows.length, takeoverMs }))
      }),
    60_000,
  )
})
