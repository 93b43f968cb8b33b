/**
 * What an isolated plugin cannot do (issue #4). In `deno` mode the runtime itself refuses what
 * the manifest does not declare: `fetch` to a host outside `permissions.net`, reading a file
 * outside the plugin's directory, reading the environment (while a declared host answers). In
 * `worker` mode the host's environment is not visible (`process.env` is empty), and every host
 * API refusal reaches the plugin as an error named `PermissionDenied` with the manifest `field`
 * to add: an undeclared subject, secret, table, route, channel or host.
 *
 * The plugins report what they saw through a route of their own.
 */
import * as NodeFs from "node:fs"
import * as NodeHttp from "node:http"
import type { AddressInfo } from "node:net"
import * as NodePath from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Option } from "effect"
import { DummyDriver, Kysely, SqliteAdapter, SqliteIntrospector, SqliteQueryCompiler } from "kysely"
import type { PluginHostShape } from "../../core/plugins/PluginHost.ts"
import { pluginsRoot, startHost, writePlugin } from "../support/PluginFixtures.ts"
import { tempDir } from "../support/TestDatabase.ts"

/** A loopback HTTP server answering `hello from <name>`, closed with the scope. */
const loopbackServer = (name: string) =>
  Effect.acquireRelease(
    Effect.async<NodeHttp.Server>((resume) => {
      const server = NodeHttp.createServer((_req, res) => res.end(`hello from ${name}`))
      server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
    }),
    (server) =>
      Effect.async<void>((resume) => {
        server.closeAllConnections()
        server.close(() => resume(Effect.void))
      }),
  ).pipe(Effect.map((server) => (server.address() as AddressInfo).port))

/** GET the plugin's report route and parse its JSON body. */
const report = (host: PluginHostShape, id: string) =>
  host.handleRequest({
    method: "GET",
    path: `/plugins/${id}/report`,
    query: {},
    headers: {},
    body: new Uint8Array(0),
  }).pipe(
    Effect.map((response) => {
      const r = Option.getOrThrow(response)
      const text = new TextDecoder().decode(r.body)
      assert.strictEqual(r.status, 200, text)
      // deno-lint-ignore no-explicit-any -- the plugin's JSON report, inspected below
      return JSON.parse(text) as Record<string, any>
    }),
  )

/** What a plugin caught: `{ ok: true, value }` or `{ ok: false, name, message, field }`. */
const attempt = `
const attempt = async (run) => {
  try {
    return { ok: true, value: await run() }
  } catch (error) {
    return { ok: false, name: error?.name, message: String(error?.message), field: error?.field, requested: error?.requested }
  }
}
`

const reportRoute = (id: string) => ({
  contributes: { routes: [{ method: "GET", path: `/plugins/${id}/report` }] },
})

describe("plugin isolation", () => {
  it.scopedLive(
    "deno: the runtime refuses undeclared hosts, files outside the plugin's directory and the environment",
    () =>
      Effect.gen(function* () {
        const declared = yield* loopbackServer("declared")
        const undeclared = yield* loopbackServer("undeclared")
        const outside = NodePath.join(yield* tempDir(), "outside.txt")
        NodeFs.writeFileSync(outside, "not yours")
        const root = yield* pluginsRoot()
        writePlugin(root, {
          id: "iso",
          manifest: {
            ...reportRoute("iso"),
            permissions: { net: [`127.0.0.1:${declared}`] },
          },
          extra: { "own.txt": "mine" },
          source: `${attempt}
export default {
  async activate(chorus) {
    await chorus.routes.handle("GET", "/plugins/iso/report", async () => ({
      body: {
        mode: chorus.mode,
        declared: await attempt(async () => (await fetch("http://127.0.0.1:${declared}/")).text()),
        undeclared: await attempt(async () => (await fetch("http://127.0.0.1:${undeclared}/")).text()),
        own: await attempt(() => Deno.readTextFile(chorus.plugin.dir + "/own.txt")),
        outside: await attempt(() => Deno.readTextFile(${JSON.stringify(outside)})),
        env: await attempt(() => Deno.env.get("HOME") ?? null),
        envAll: await attempt(() => Object.keys(Deno.env.toObject())),
        write: await attempt(() => Deno.writeTextFile(chorus.plugin.dir + "/new.txt", "x")),
        run: await attempt(() => new Deno.Command("true").output()),
      },
    }))
  },
}
`,
        })
        const { host } = yield* startHost(root, { mode: "deno" })
        const status = yield* host.status("iso")
        assert.strictEqual(status.state, "active", JSON.stringify(status.lastError))
        const seen = yield* report(host, "iso")
        assert.strictEqual(seen["mode"], "deno")
        assert.deepStrictEqual(seen["declared"], { ok: true, value: "hello from declared" })
        assert.deepStrictEqual(seen["own"], { ok: true, value: "mine" })
        // Deno 2 names a refused permission NotCapable (PermissionDenied before 2.0).
        const refused = /^(NotCapable|PermissionDenied)$/
        for (const what of ["undeclared", "outside", "env", "envAll", "write", "run"]) {
          const r = seen[what]
          assert.isFalse(r.ok, `${what}: ${JSON.stringify(r)}`)
          assert.match(r.name, refused, `${what}: ${JSON.stringify(r)}`)
        }
        assert.include(seen["undeclared"].message, `127.0.0.1:${undeclared}`)
        assert.include(seen["outside"].message, outside)
        assert.include(seen["env"].message, "HOME")
        assert.isFalse(NodeFs.existsSync(NodePath.join(root, "iso", "new.txt")))
      }),
    60_000,
  )

  it.scopedLive("worker: the host's environment is not visible", () =>
    Effect.gen(function* () {
      const root = yield* pluginsRoot()
      writePlugin(root, {
        id: "env",
        manifest: reportRoute("env"),
        source: `
export default {
  async activate(chorus) {
    await chorus.routes.handle("GET", "/plugins/env/report", () => ({
      body: { mode: chorus.mode, keys: Object.keys(process.env), secret: process.env.CHORUS_ISOLATION_PROBE ?? null },
    }))
  },
}
`,
      })
      yield* Effect.acquireRelease(
        Effect.sync(() => (process.env["CHORUS_ISOLATION_PROBE"] = "host-only")),
        () => Effect.sync(() => delete process.env["CHORUS_ISOLATION_PROBE"]),
      )
      const { host } = yield* startHost(root, { mode: "worker" })
      const seen = yield* report(host, "env")
      assert.strictEqual(seen["mode"], "worker")
      assert.deepStrictEqual(seen["keys"], [])
      assert.isNull(seen["secret"])
    }))

  it.scopedLive(
    "worker: every host API refusal crosses the wire as PermissionDenied naming the field to add",
    () =>
      Effect.gen(function* () {
        // A query's operation tree, as a plugin bundling Kysely would send it.
        const kysely = new Kysely<any>({
          dialect: {
            createAdapter: () => new SqliteAdapter(),
            createDriver: () => new DummyDriver(),
            createIntrospector: (db) => new SqliteIntrospector(db),
            createQueryCompiler: () => new SqliteQueryCompiler(),
          },
        })
        const select = (table: string) =>
          JSON.stringify(kysely.selectFrom(table).selectAll().compile())
        const declared = yield* loopbackServer("declared")
        const undeclared = yield* loopbackServer("undeclared")
        const root = yield* pluginsRoot()
        writePlugin(root, {
          id: "perms",
          manifest: {
            contributes: {
              routes: [{ method: "GET", path: "/plugins/perms/report" }],
              channels: [{
                name: "pigeon",
                capabilities: { maxTextLength: 100, attachments: false },
              }],
            },
            permissions: {
              bus: { publish: ["plugins.perms.>"], subscribe: ["plugins.perms.>"] },
              secrets: ["DECLARED"],
              storage: { tables: ["plugin_perms_notes"] },
              net: [`127.0.0.1:${declared}`],
            },
          },
          source: `${attempt}
export default {
  async activate(chorus) {
    const denied = {
      publish: await attempt(() => chorus.bus.publish("plugins.other.x", "hi", { id: "p1" })),
      consume: await attempt(() => chorus.bus.consume({ stream: "events", name: "spy" }, () => {})),
      secret: await attempt(() => chorus.secrets.get("UNDECLARED")),
      table: await attempt(() => chorus.storage.execute(${select("plugin_perms_other")})),
      coreTable: await attempt(() => chorus.storage.execute(${select("api_tokens")})),
      route: await attempt(() => chorus.routes.handle("GET", "/plugins/perms/secret", () => ({}))),
      channel: await attempt(() => chorus.channels.register("sms", { send: async () => ({ ok: true, externalId: "x" }) })),
      net: await attempt(() => chorus.http.fetch("http://127.0.0.1:${undeclared}/")),
    }
    await chorus.bus.ensureStream({ name: "plugin-perms", subjects: ["plugins.perms.>"] })
    const allowed = {
      publish: await attempt(() => chorus.bus.publish("plugins.perms.x", "hi", { id: "p2" })),
      channel: await attempt(() => chorus.channels.register("pigeon", { send: async () => ({ ok: true, externalId: "x" }) })),
      net: await attempt(async () => (await chorus.http.fetch("http://127.0.0.1:${declared}/")).text()),
    }
    await chorus.routes.handle("GET", "/plugins/perms/report", () => ({ body: { denied, allowed } }))
  },
}
`,
        })
        const { host } = yield* startHost(root, { mode: "worker" })
        const status = yield* host.status("perms")
        assert.strictEqual(status.state, "active", JSON.stringify(status.lastError))
        const seen = yield* report(host, "perms")
        const expected: Record<string, [field: string, requested: string]> = {
          publish: ["permissions.bus.publish", "plugins.other.x"],
          consume: ["permissions.bus.subscribe", "events"],
          secret: ["permissions.secrets", "UNDECLARED"],
          table: ["permissions.storage.tables", "plugin_perms_other"],
          coreTable: ["permissions.storage.tables", "api_tokens"],
          route: ["contributes.routes", "GET /plugins/perms/secret"],
          channel: ["contributes.channels", "sms"],
          net: ["permissions.net", `127.0.0.1:${undeclared}`],
        }
        for (const [what, [field, requested]] of Object.entries(expected)) {
          const r = seen["denied"][what]
          assert.isFalse(r.ok, `${what}: ${JSON.stringify(r)}`)
          assert.strictEqual(r.name, "PermissionDenied", `${what}: ${JSON.stringify(r)}`)
          assert.strictEqual(r.field, field, `${what}: ${JSON.stringify(r)}`)
          assert.include(r.requested, requested, `${what}: ${JSON.stringify(r)}`)
        }
        assert.isTrue(seen["allowed"]["publish"].ok, JSON.stringify(seen["allowed"]["publish"]))
        assert.isTrue(seen["allowed"]["channel"].ok, JSON.stringify(seen["allowed"]["channel"]))
        assert.deepStrictEqual(seen["allowed"]["net"], { ok: true, value: "hello from declared" })
        // Only the declared route was registered.
        assert.deepStrictEqual(
          (yield* host.status("perms")).routes.map((r) => r.path),
          ["/plugins/perms/report"],
        )
      }),
    60_000,
  )
})
