/**
 * Discovery over real directories: good plugins found, bad ones reported with their problems
 * and skipped, duplicate ids refused, the `plugins.dirs` setting, and `chorus start` carrying on
 * past a bad plugin.
 */
import * as NodeFs from "node:fs"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Logger, LogLevel } from "effect"
import { loadConfig } from "../../core/config/loadConfig.ts"
import { discover } from "../../core/plugins/Discovery.ts"
import { startChorus } from "../support/ChorusProcess.ts"
import { tempDir } from "../support/TempDir.ts"

const manifest = (id: string, extra: Record<string, unknown> = {}) => ({
  id,
  version: "1.0.0",
  engines: { chorus: "^1.0.0" },
  entry: "index.js",
  kind: "bot",
  ...extra,
})

/** `<root>/<name>/chorus.plugin.json` (raw text or JSON) and an `index.js`. */
const writePlugin = (root: string, name: string, content: unknown) => {
  const dir = NodePath.join(root, name)
  NodeFs.mkdirSync(dir, { recursive: true })
  NodeFs.writeFileSync(
    NodePath.join(dir, "chorus.plugin.json"),
    typeof content === "string" ? content : JSON.stringify(content),
  )
  NodeFs.writeFileSync(NodePath.join(dir, "index.js"), "export default {}\n")
  return dir
}

/** Run `effect` collecting the messages it logs. */
const withLogs = <A, E>(effect: Effect.Effect<A, E>) =>
  Effect.gen(function* () {
    const logs: Array<{ message: unknown; annotations: Record<string, unknown> }> = []
    const logger = Logger.make(({ message, annotations }) => {
      logs.push({ message, annotations: Object.fromEntries(annotations) })
    })
    const result = yield* effect.pipe(
      Effect.provide(Logger.replace(Logger.defaultLogger, logger)),
      Logger.withMinimumLogLevel(LogLevel.Debug),
    )
    return { result, logs }
  })

describe("plugin discovery", () => {
  it.scoped("built-in plugins fill in ids the plugin directories do not have", () =>
    Effect.gen(function* () {
      const mine = yield* tempDir("chorus-plugins-mine-")
      const builtin = yield* tempDir("chorus-plugins-builtin-")
      writePlugin(mine, "telegram", manifest("telegram", { version: "9.0.0" }))
      writePlugin(builtin, "telegram", manifest("telegram", { version: "1.0.0" }))
      writePlugin(builtin, "widget", manifest("widget"))
      const found = yield* discover([mine], { builtinDirs: [builtin] })
      assert.deepStrictEqual(
        found.plugins.map((p) => `${p.manifest.id}@${p.manifest.version}`),
        ["telegram@9.0.0", "widget@1.0.0"],
      )
      assert.deepStrictEqual(found.refused, [])
    }))

  it.scoped("finds good plugins, reports and skips bad ones, refuses duplicate ids", () =>
    Effect.gen(function* () {
      const one = yield* tempDir("chorus-plugins-a-")
      const two = yield* tempDir("chorus-plugins-b-")
      writePlugin(one, "echo", manifest("echo"))
      writePlugin(one, "crm", manifest("crmsync", { kind: "integration" }))
      writePlugin(one, "broken-json", "{ nope")
      writePlugin(
        one,
        "bad",
        manifest("bad", { version: "x", permissions: { net: ["no spaces"] } }),
      )
      writePlugin(one, "future", manifest("future", { engines: { chorus: "^2.0.0" } }))
      writePlugin(one, "twin-a", manifest("twin"))
      writePlugin(two, "twin-b", manifest("twin"))
      // Not plugins: a directory without a manifest, and a file.
      NodeFs.mkdirSync(NodePath.join(one, "not-a-plugin"))
      NodeFs.writeFileSync(NodePath.join(one, "README.md"), "hi")

      const missing = NodePath.join(one, "does-not-exist")
      const { result, logs } = yield* withLogs(discover([one, two, missing]))

      assert.deepStrictEqual(result.plugins.map((p) => p.manifest.id), ["crmsync", "echo"])
      assert.strictEqual(result.plugins[1]!.dir, NodePath.join(one, "echo"))
      const refused = new Map(result.refused.map((r) => [NodePath.basename(r.dir), r]))
      assert.sameMembers([...refused.keys()], ["bad", "broken-json", "future", "twin-a", "twin-b"])
      assert.include(refused.get("broken-json")!.error.message, "not valid JSON")
      assert.deepStrictEqual(refused.get("bad")!.error.problems.map((p) => p.path), [
        "version",
        "permissions.net[0]",
      ])
      assert.strictEqual(refused.get("bad")!.id, "bad")
      assert.include(refused.get("future")!.error.message, "provides host API 1.0.0")
      assert.include(refused.get("twin-a")!.error.message, 'duplicate plugin id "twin"')
      assert.include(refused.get("twin-a")!.error.message, NodePath.join(two, "twin-b"))
      assert.include(refused.get("twin-b")!.error.message, NodePath.join(one, "twin-a"))

      // Each refusal is logged, with its problems.
      const warnings = logs.filter((l) =>
        l.message === "plugin refused" || (
          Array.isArray(l.message) && l.message[0] === "plugin refused"
        )
      )
      assert.lengthOf(warnings, 5)
    }))

  it.effect("a missing plugins directory means no plugins, not a failure", () =>
    Effect.gen(function* () {
      const result = yield* discover(["/nonexistent/chorus/plugins"])
      assert.deepStrictEqual(result, { plugins: [], refused: [] })
    }))

  it.scoped("plugins.dirs defaults to ./plugins and takes a comma-separated list from the env", () =>
    Effect.gen(function* () {
      const cwd = yield* tempDir("chorus-config-plugins-")
      const defaults = yield* loadConfig({ env: {}, cwd })
      assert.deepStrictEqual(defaults.plugins.dirs, [NodePath.join(cwd, "plugins")])
      const fromEnv = yield* loadConfig({
        env: { CHORUS_PLUGINS_DIRS: "./plugins, /opt/chorus/plugins,," },
        cwd,
      })
      assert.deepStrictEqual(fromEnv.plugins.dirs, [
        NodePath.join(cwd, "plugins"),
        "/opt/chorus/plugins",
      ])
      NodeFs.writeFileSync(
        NodePath.join(cwd, "chorus.config.json"),
        JSON.stringify({ plugins: { dirs: ["extra"] } }),
      )
      const fromFile = yield* loadConfig({ env: {}, cwd })
      assert.deepStrictEqual(fromFile.plugins.dirs, [NodePath.join(cwd, "extra")])
      NodeFs.writeFileSync(
        NodePath.join(cwd, "chorus.config.json"),
        JSON.stringify({ plugins: { dirs: "extra" } }),
      )
      const bad = yield* loadConfig({ env: {}, cwd }).pipe(Effect.flip)
      assert.include(bad.message, "plugins.dirs in chorus.config.json")
      assert.include(bad.message, "directory paths, comma-separated")
    }))
})

describe("plugin discovery at start", () => {
  it("chorus start logs a refused plugin with its problems and keeps serving", async () => {
    const cwd = NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), "chorus-start-plugins-"))
    const plugins = NodePath.join(cwd, "my-plugins")
    writePlugin(plugins, "echo", manifest("echo"))
    writePlugin(plugins, "bad", manifest("bad", { permissions: { net: ["https://x.com"] } }))
    const chorus = startChorus(["start"], {
      cwd,
      env: { CHORUS_HTTP_PORT: "0", CHORUS_PLUGINS_DIRS: "my-plugins" },
    })
    try {
      const url = await chorus.ready
      assert.strictEqual((await fetch(`${url}/health`)).status, 200)
      const entries = chorus.lines.map((l) => JSON.parse(l))
      const refused = entries.find((e) => e.message === "plugin refused")
      assert.isDefined(refused, chorus.lines.join("\n"))
      assert.strictEqual(refused.annotations.plugin, "bad")
      assert.strictEqual(refused.annotations.problems[0].path, "permissions.net[0]")
      const found = entries.find((e) => e.message === "plugins discovered")
      assert.deepStrictEqual(found?.annotations.plugins, ["echo@1.0.0"])
    } finally {
      chorus.child.kill("SIGTERM")
      await chorus.exited
      NodeFs.rmSync(cwd, { recursive: true, force: true })
    }
  })
})
