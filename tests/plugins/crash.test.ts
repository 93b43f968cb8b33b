/**
 * Nothing a plugin does stops the host (issue #4): a handler that throws is retried by the bus
 * and counted; a plugin that blocks its event loop is killed by the heartbeat, restarted under
 * the schedule and marked `failed` when the schedule ends; a worker that dies (an exit, an
 * uncaught exception in a timer) is restarted and its consumer handed to the next version, the
 * message it died on included, while another plugin in the same host keeps working. After a
 * crash, delivery is at least once: what the dead version had in hand (and may have done) is
 * delivered again; only a reload, which lets the work in hand finish first, is exactly once. Last, the
 * same through the HTTP API of a real server: `GET /api/v1/plugins/{id}` and `/health`.
 */
import * as NodePath from "node:path"
import { HttpServer } from "@effect/platform"
import { assert, describe, it } from "@effect/vitest"
import { Chunk, Context, Effect, Layer, Option, Redacted, Schedule, Stream } from "effect"
import { ApiTokens } from "../../core/auth/ApiTokens.ts"
import type { BusShape } from "../../core/bus/Bus.ts"
import { ServerLive } from "../../core/Chorus.ts"
import { decodeConfig } from "../../core/config/loadConfig.ts"
import type { PluginHostShape } from "../../core/plugins/PluginHost.ts"
import { request } from "../api/ApiServer.ts"
import { eventually, pluginsRoot, startHost, writePlugin } from "../support/PluginFixtures.ts"
import { tempDir } from "../support/TestDatabase.ts"

const utf8 = new TextEncoder()
const fromUtf8 = new TextDecoder()

/**
 * A plugin `id` consuming `plugins.<id>.in` whose handler runs `body` (with `message`, `chorus`
 * and `n`, the message's number) and then records the message as handled on `plugins.<id>.done`
 * under a random de-duplication id, so a second handling shows as a second record.
 */
const consumerPlugin = (id: string, body: string, extra = "") => ({
  id,
  manifest: {
    permissions: { bus: { publish: [`plugins.${id}.>`], subscribe: [`plugins.${id}.>`] } },
  },
  source: `
${extra}
export default {
  async activate(chorus) {
    await chorus.bus.ensureStream({ name: "plugin-${id}", subjects: ["plugins.${id}.>"] })
    await chorus.bus.consume(
      { stream: "plugin-${id}", name: "main", filter: "plugins.${id}.in" },
      async (message) => {
        const n = Number(message.text())
        ${body}
        await chorus.bus.publish("plugins.${id}.done", { in: n }, { id: crypto.randomUUID() })
      },
    )
  },
}
`,
})

const publishAll = (bus: BusShape, id: string, from: number, count: number) =>
  Effect.forEach(
    Array.from({ length: count }, (_, i) => from + i),
    (n) => bus.publish(`plugins.${id}.in`, utf8.encode(String(n)), { id: `${id}-in-${n}` }),
    { discard: true },
  )

/** How many times each message number was recorded as handled, once `expected` are in. */
const handled = (bus: BusShape, id: string, expected: number) =>
  bus.read(`plugin-${id}`, { fromSeq: 1, filter: `plugins.${id}.done` }).pipe(
    Stream.take(expected),
    Stream.runCollect,
    Effect.timeout("30 seconds"),
    Effect.map((done) => {
      const counts = new Map<number, number>()
      for (const m of Chunk.toArray(done)) {
        const n = (JSON.parse(fromUtf8.decode(m.data)) as { in: number }).in
        counts.set(n, (counts.get(n) ?? 0) + 1)
      }
      return counts
    }),
  )

/**
 * Every message of `from … from+count-1` recorded at least once; a message in the plugin's hands
 * when its worker died may have done its work without the host hearing so, and is delivered to
 * the next version again (at least once): at most `concurrency` of them.
 */
const assertAtLeastOnce = (bus: BusShape, id: string, from: number, count: number) =>
  bus.read(`plugin-${id}`, { fromSeq: 1, filter: `plugins.${id}.done` }).pipe(
    Stream.mapAccum(new Map<number, number>(), (counts, m) => {
      const n = (JSON.parse(fromUtf8.decode(m.data)) as { in: number }).in
      counts.set(n, (counts.get(n) ?? 0) + 1)
      return [counts, counts]
    }),
    Stream.takeUntil((counts) => {
      for (let n = from; n < from + count; n++) if (!counts.has(n)) return false
      return true
    }),
    Stream.runLast,
    Effect.timeout("30 seconds"),
    Effect.map((last) => {
      const counts = Option.getOrThrow(last)
      const again = [...counts.values()].filter((c) => c > 1).length
      assert.isAtMost(again, CONCURRENCY, `${again} messages handled more than once`)
      return again
    }),
  )

/** The bus's default handlers at once per consumer: what a plugin can have in hand. */
const CONCURRENCY = 16

const assertEachOnce = (counts: Map<number, number>, from: number, count: number) => {
  for (let n = from; n < from + count; n++) {
    assert.strictEqual(counts.get(n), 1, `message ${n} handled ${counts.get(n) ?? 0} times`)
  }
}

const stateOf = (host: PluginHostShape, id: string, state: string) =>
  eventually(
    `${id} ${state}`,
    host.status(id).pipe(Effect.map((s) => (s.state === state ? s : undefined))),
  )

describe("plugin crashes", () => {
  it.scopedLive(
    "a handler that throws on every third message: retried, counted, host healthy",
    () =>
      Effect.gen(function* () {
        const root = yield* pluginsRoot()
        writePlugin(
          root,
          consumerPlugin(
            "flaky",
            `if (n % 3 === 0 && message.deliveryCount === 1) throw new Error("flaky: message " + n)`,
          ),
        )
        const { host, bus } = yield* startHost(root, { mode: "worker" })
        yield* publishAll(bus, "flaky", 0, 30)
        const counts = yield* handled(bus, "flaky", 30)
        assertEachOnce(counts, 0, 30)

        // The record is published inside the handler; the host counts once the handler returns.
        const status = yield* eventually(
          "30 delivered",
          host.status("flaky").pipe(
            Effect.map((s) => (s.counters.delivered === 30 ? s : undefined)),
          ),
        )
        assert.strictEqual(status.state, "active")
        assert.strictEqual(status.restarts, 0)
        assert.strictEqual(status.counters.deliveryErrors, 10)
        assert.strictEqual(status.counters.delivered, 30)
        assert.match(status.lastError?.message ?? "", /^Error: flaky: message \d+$/)
        assert.isNotNull(status.lastError?.at)
        assert.lengthOf(yield* bus.deadLetters.list({}), 0)
      }),
    60_000,
  )

  it.scopedLive(
    "a plugin that blocks its event loop is killed by the heartbeat, restarted, then marked failed",
    () =>
      Effect.gen(function* () {
        const root = yield* pluginsRoot()
        writePlugin(root, consumerPlugin("hang", `if (n === 99) while (true) {}`))
        const { host, bus } = yield* startHost(root, {
          mode: "worker",
          heartbeat: { interval: "200 millis", timeout: "500 millis" },
          restartSchedule: Schedule.spaced("100 millis").pipe(
            Schedule.intersect(Schedule.recurs(2)),
          ),
        })
        yield* publishAll(bus, "hang", 0, 5)
        assertEachOnce(yield* handled(bus, "hang", 5), 0, 5)

        yield* bus.publish("plugins.hang.in", utf8.encode("99"), { id: "hang-in-99" })
        const restarting = yield* eventually(
          "a restart",
          host.status("hang").pipe(Effect.map((s) => (s.restarts >= 1 ? s : undefined))),
        )
        assert.match(restarting.lastError?.message ?? "", /not answering: no reply to a ping/)

        // Every version gets message 99 again and blocks on it: two restarts, then failed.
        const failed = yield* stateOf(host, "hang", "failed")
        assert.strictEqual(failed.restarts, 2)
        assert.strictEqual(failed.generation, 3)
        assert.match(failed.lastError?.message ?? "", /not answering/)
        assert.deepStrictEqual(failed.consumers, [])
        // The host still answers.
        assert.lengthOf(yield* host.list, 1)
      }),
    60_000,
  )

  for (
    const [how, body] of [
      [
        "exits (process.exit)",
        `if (n === 7 && !(await chorus.storage.kv.get("died"))) {
          await chorus.storage.kv.set("died", true)
          process.exit(3)
        }`,
      ],
      [
        "throws in a timer",
        `if (n === 7 && !(await chorus.storage.kv.get("died"))) {
          await chorus.storage.kv.set("died", true)
          setTimeout(() => { throw new Error("boom in a timer") }, 0)
          await new Promise(() => {})
        }`,
      ],
    ] as const
  ) {
    it.scopedLive(
      `a worker that ${how} is restarted and continues with its consumer; another plugin keeps working`,
      () =>
        Effect.gen(function* () {
          const root = yield* pluginsRoot()
          writePlugin(root, consumerPlugin("crashy", body))
          writePlugin(root, consumerPlugin("steady", ""))
          const { host, bus } = yield* startHost(root, {
            mode: "worker",
            restartSchedule: Schedule.spaced("200 millis").pipe(
              Schedule.intersect(Schedule.recurs(3)),
            ),
          })
          yield* publishAll(bus, "crashy", 0, 20)
          yield* publishAll(bus, "steady", 0, 20)
          const restarted = yield* eventually(
            "a restart",
            host.status("crashy").pipe(Effect.map((s) => (s.restarts >= 1 ? s : undefined))),
          )
          // The other plugin and the host go on meanwhile.
          yield* publishAll(bus, "steady", 20, 20)
          assertEachOnce(yield* handled(bus, "steady", 40), 0, 40)
          assert.lengthOf(yield* host.list, 2)

          // The message it died on went to the next version, as did every other.
          const again = yield* assertAtLeastOnce(bus, "crashy", 0, 20)
          yield* publishAll(bus, "crashy", 20, 10)
          yield* assertAtLeastOnce(bus, "crashy", 0, 30)
          yield* Effect.logInfo("handled again after the crash").pipe(
            Effect.annotateLogs({ again }),
          )

          const crashy = yield* host.status("crashy")
          assert.strictEqual(crashy.state, "active")
          assert.strictEqual(crashy.restarts, 1)
          assert.strictEqual(crashy.generation, 2)
          assert.match(
            restarted.lastError?.message ?? "",
            how === "exits (process.exit)"
              ? /crashed: worker exited with code 3/
              : /boom in a timer/,
          )
          assert.deepStrictEqual(crashy.consumers.map((c) => c.name), ["main"])
          const steady = yield* host.status("steady")
          assert.strictEqual(steady.state, "active")
          assert.strictEqual(steady.restarts, 0)
          assert.strictEqual(steady.generation, 1)
        }),
      60_000,
    )
  }

  it.scopedLive(
    "through the HTTP API: GET /api/v1/plugins/{id} shows the state, restarts and last error; /health answers",
    () =>
      Effect.gen(function* () {
        const root = yield* pluginsRoot()
        writePlugin(root, {
          id: "crasher",
          source: `
export default {
  activate() {
    setTimeout(() => { throw new Error("crasher: boom") }, 50)
  },
}
`,
        })
        writePlugin(root, {
          id: "steady",
          manifest: { contributes: { routes: [{ method: "GET", path: "/plugins/steady/ping" }] } },
          source: `
export default {
  async activate(chorus) {
    await chorus.routes.handle("GET", "/plugins/steady/ping", () => ({ body: { pong: true } }))
  },
}
`,
        })
        const dataDir = yield* tempDir()
        const config = yield* decodeConfig({
          dataDir,
          http: { port: 0 },
          log: { level: "error" },
          plugins: { dirs: [root], mode: "worker" },
        })
        const context = yield* Layer.build(ServerLive(config, {
          plugins: {
            host: {
              runtimeDir: NodePath.join(dataDir, "plugins-runtime"),
              restartSchedule: Schedule.spaced("100 millis").pipe(
                Schedule.intersect(Schedule.recurs(3)),
              ),
            },
          },
        }))
        const server = Context.get(context, HttpServer.HttpServer)
        if (server.address._tag !== "TcpAddress") throw new Error("expected a TCP address")
        const url = `http://127.0.0.1:${server.address.port}`
        const tokens = yield* ApiTokens.pipe(
          Effect.provide(ApiTokens.Default),
          Effect.provide(context),
        )
        const token = Redacted.value((yield* tokens.create("crash tests")).token)

        const failed = yield* eventually(
          "crasher failed",
          request(`${url}/api/v1/plugins/crasher`, { token }).pipe(
            Effect.map((r) => (r.status === 200 && r.body.state === "failed" ? r.body : undefined)),
          ),
        )
        assert.strictEqual(failed.id, "crasher")
        assert.strictEqual(failed.restarts, 3)
        assert.match(failed.lastError.message, /crashed: Error: crasher: boom/)
        assert.match(failed.lastError.at, /^\d{4}-\d{2}-\d{2}T/)

        const health = yield* request(`${url}/health`, { token: null })
        assert.strictEqual(health.status, 200, health.text)
        const steady = yield* request(`${url}/api/v1/plugins/steady`, { token })
        assert.strictEqual(steady.body.state, "active")
        const ping = yield* request(`${url}/plugins/steady/ping`, { token: null })
        assert.strictEqual(ping.status, 200, ping.text)
        assert.deepStrictEqual(ping.body, { pong: true })
        const list = yield* request(`${url}/api/v1/plugins`, { token })
        assert.strictEqual(list.status, 200, list.text)
        const missing = yield* request(`${url}/api/v1/plugins/nosuch`, { token })
        assert.strictEqual(missing.status, 404)
      }),
    60_000,
  )
})
