/**
 * The plugin host runs real plugins (ES modules written to a temp dir) in each mode, in-process,
 * in a worker thread and in a Deno subprocess, against the embedded bus on a SQLite file: it
 * activates them, hands them the host API (bus, routes, key-value store, settings), and
 * disables, enables and reloads them.
 */
import * as NodeFs from "node:fs"
import * as NodePath from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { Chunk, Effect, Option, Stream } from "effect"
import type { PluginMode } from "../../core/plugins/guest/Api.ts"
import type { PluginHostShape } from "../../core/plugins/PluginHost.ts"
import { eventually, pluginsRoot, startHost, writePlugin } from "../support/PluginFixtures.ts"
import { sqliteDatabase } from "../support/TestDatabase.ts"

const echoSource = `
export default {
  async activate(chorus) {
    await chorus.bus.ensureStream({ name: "plugin-echo", subjects: ["plugins.echo.>"] })
    await chorus.bus.consume(
      { stream: "plugin-echo", name: "main", filter: "plugins.echo.in" },
      async (message) => {
        const count = ((await chorus.storage.kv.get("count")) ?? 0) + 1
        await chorus.storage.kv.set("count", count)
        await chorus.bus.publish("plugins.echo.out", { said: message.text(), by: chorus.mode, version: chorus.plugin.version }, { id: "out-" + message.id })
      },
    )
    await chorus.routes.handle("GET", "/plugins/echo/hello/{name}", (request) => ({
      body: { hello: request.params.name, greeting: chorus.settings.greeting, query: request.query },
    }))
    chorus.metrics.counter("activations", "times activated").inc()
    chorus.log.info("echo ready")
  },
}
`

const echoManifest = {
  contributes: {
    routes: [{ method: "GET", path: "/plugins/echo/hello/{name}" }],
    settings: [{ key: "greeting", type: "string", default: "hi" }],
  },
  permissions: { bus: { publish: ["plugins.echo.>"], subscribe: ["plugins.echo.>"] } },
}

const modes: ReadonlyArray<PluginMode> = ["inprocess", "worker", "deno"]

describe("PluginHost", () => {
  for (const mode of modes) {
    it.scopedLive(
      `runs a plugin ${mode}: bus, routes, key-value store, settings, metrics`,
      () =>
        Effect.gen(function* () {
          const root = yield* pluginsRoot()
          writePlugin(root, { id: "echo", manifest: echoManifest, source: echoSource })
          const { host, bus } = yield* startHost(root, { mode })
          const status = yield* host.status("echo")
          assert.strictEqual(status.state, "active", JSON.stringify(status.lastError))
          assert.strictEqual(status.mode, mode)
          assert.deepStrictEqual(status.routes, [{
            method: "GET",
            path: "/plugins/echo/hello/{name}",
          }])
          assert.deepStrictEqual(status.consumers.map((c) => c.name), ["main"])

          for (let i = 0; i < 3; i++) {
            yield* bus.publish("plugins.echo.in", new TextEncoder().encode(`m${i}`), {
              id: `in-${i}`,
            })
          }
          const out = yield* bus.read("plugin-echo", { fromSeq: 1, filter: "plugins.echo.out" })
            .pipe(
              Stream.take(3),
              Stream.runCollect,
              Effect.timeout("20 seconds"),
            )
          const said = Chunk.toArray(out).map((m) => JSON.parse(new TextDecoder().decode(m.data)))
          assert.deepStrictEqual(said.map((s) => s.said), ["m0", "m1", "m2"])
          assert.strictEqual(said[0].by, mode)

          const response = yield* host.handleRequest({
            method: "GET",
            path: "/plugins/echo/hello/ana%20maria",
            query: { x: "1" },
            headers: {},
            body: new Uint8Array(0),
          })
          assert.isTrue(Option.isSome(response))
          const r = Option.getOrThrow(response)
          assert.strictEqual(r.status, 200)
          assert.strictEqual(r.headers["content-type"], "application/json")
          assert.deepStrictEqual(JSON.parse(new TextDecoder().decode(r.body)), {
            hello: "ana maria",
            greeting: "hi",
            query: { x: "1" },
          })
          const undeclared = yield* host.handleRequest({
            method: "POST",
            path: "/plugins/echo/hello/x",
            query: {},
            headers: {},
            body: new Uint8Array(0),
          })
          assert.isTrue(Option.isNone(undeclared))

          const after = yield* eventually(
            "metrics",
            host.status("echo").pipe(
              Effect.map((
                s,
              ) => (s.counters.delivered === 3 && s.metrics["activations"] ? s : undefined)),
            ),
          )
          assert.deepStrictEqual(after.metrics["activations"]!.series[0]!.value, 1)
          assert.match(host.prometheus(), /chorus_plugin_echo_activations 1/)
        }),
      60_000,
    )
  }

  const versionSource = (v: string) =>
    `export async function activate(chorus) {
      await chorus.routes.handle("GET", "/plugins/ver/which", () => ({ body: ${
      JSON.stringify(v)
    } }))
    }`
  const versionManifest = {
    contributes: { routes: [{ method: "GET", path: "/plugins/ver/which" }] },
  }
  const which = (host: PluginHostShape) =>
    host.handleRequest({
      method: "GET",
      path: "/plugins/ver/which",
      query: {},
      headers: {},
      body: new Uint8Array(0),
    })
      .pipe(Effect.map((r) => new TextDecoder().decode(Option.getOrThrow(r).body)))

  it.scopedLive("--dev: a plugin whose files change is reloaded", () =>
    Effect.gen(function* () {
      const root = yield* pluginsRoot()
      const dir = writePlugin(root, {
        id: "ver",
        manifest: versionManifest,
        source: versionSource("one"),
      })
      const { host } = yield* startHost(root, { watch: true })
      assert.strictEqual(yield* which(host), "one")
      NodeFs.writeFileSync(NodePath.join(dir, "index.mjs"), versionSource("two"))
      yield* eventually(
        "the new version",
        which(host).pipe(Effect.map((v) => v === "two" || undefined)),
      )
      assert.strictEqual((yield* host.status("ver")).generation, 2)
    }), 30_000)

  it.scopedLive(
    "disabled stays disabled when the host restarts; enabled again, it runs",
    () =>
      Effect.gen(function* () {
        const root = yield* pluginsRoot()
        writePlugin(root, { id: "ver", manifest: versionManifest, source: versionSource("one") })
        const db = yield* sqliteDatabase()
        yield* Effect.scoped(
          Effect.gen(function* () {
            const { host } = yield* startHost(root, { db })
            assert.strictEqual((yield* host.disable("ver")).state, "disabled")
          }),
        )
        const { host } = yield* startHost(root, { db })
        const status = yield* host.status("ver")
        assert.deepStrictEqual([status.state, status.enabled, status.generation], [
          "disabled",
          false,
          0,
        ])
        assert.strictEqual((yield* host.enable("ver")).state, "active")
        assert.strictEqual(yield* which(host), "one")
      }),
    30_000,
  )
})
