import * as NodeFs from "node:fs"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { settings } from "../../core/config/ChorusConfig.ts"
import { type ConfigError, loadConfig } from "../../core/config/loadConfig.ts"
import { VERSION } from "../../core/version.ts"

const tmp = () => NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), "chorus-config-"))

const failure = (env: Record<string, string>, fileContent?: string) =>
  Effect.gen(function* () {
    const cwd = tmp()
    if (fileContent !== undefined) {
      NodeFs.writeFileSync(NodePath.join(cwd, "chorus.config.json"), fileContent)
    }
    const result = yield* loadConfig({ env, cwd }).pipe(Effect.flip)
    return result as ConfigError
  })

describe("configuration", () => {
  it.effect("needs nothing: data in ./data, SQLite, embedded bus, HTTP on 127.0.0.1:8080", () =>
    Effect.gen(function* () {
      const cwd = tmp()
      const config = yield* loadConfig({ env: {}, cwd })
      assert.strictEqual(config.dataDir, NodePath.join(cwd, "data"))
      assert.strictEqual(config.http.host, "127.0.0.1")
      assert.strictEqual(config.http.port, 8080)
      assert.isUndefined(config.database.url)
      assert.isUndefined(config.bus.natsUrl)
      assert.strictEqual(config.bus.namespace, "chorus")
      assert.strictEqual(config.log.format, "json")
    }))

  it.effect("environment overrides the file, the file overrides defaults", () =>
    Effect.gen(function* () {
      const cwd = tmp()
      NodeFs.writeFileSync(
        NodePath.join(cwd, "chorus.config.json"),
        JSON.stringify({ http: { port: 9000, host: "0.0.0.0" }, log: { level: "debug" } }),
      )
      const config = yield* loadConfig({
        env: { CHORUS_HTTP_PORT: "9100", CHORUS_NATS_URL: "nats://127.0.0.1:4222" },
        cwd,
      })
      assert.strictEqual(config.http.port, 9100)
      assert.strictEqual(config.http.host, "0.0.0.0")
      assert.strictEqual(config.log.level, "debug")
      assert.strictEqual(config.bus.natsUrl, "nats://127.0.0.1:4222")
    }))

  it.effect("a non-number port names the variable, the value and what was expected", () =>
    Effect.gen(function* () {
      const error = yield* failure({ CHORUS_HTTP_PORT: "eighty" })
      assert.lengthOf(error.problems, 1)
      assert.include(error.message, "CHORUS_HTTP_PORT (http.port)")
      assert.include(error.message, '"eighty"')
      assert.include(error.message, "an integer from 0 to 65535")
    }))

  it.effect("an out-of-range number is refused", () =>
    Effect.gen(function* () {
      const error = yield* failure({ CHORUS_HTTP_PORT: "70000" })
      assert.include(error.message, "got 70000")
    }))

  it.effect("a value outside an enumeration lists the allowed values", () =>
    Effect.gen(function* () {
      const error = yield* failure({ CHORUS_LOG_LEVEL: "loud" })
      assert.include(
        error.message,
        'CHORUS_LOG_LEVEL (log.level): got "loud", expected one of debug, info, warning, error',
      )
    }))

  it.effect("a URL of the wrong kind is refused", () =>
    Effect.gen(function* () {
      const db = yield* failure({ CHORUS_DATABASE_URL: "mysql://root@localhost/x" })
      assert.include(db.message, "expected a postgres:// or postgresql:// URL")
      const nats = yield* failure({ CHORUS_NATS_URL: "http://localhost:4222" })
      assert.include(nats.message, "CHORUS_NATS_URL (bus.natsUrl)")
    }))

  it.effect("a bad name pattern is refused", () =>
    Effect.gen(function* () {
      const error = yield* failure({
        CHORUS_BUS_NAMESPACE: "Has Spaces",
        CHORUS_DATABASE_SCHEMA: "1x",
      })
      assert.lengthOf(error.problems, 2)
      assert.include(error.message, "CHORUS_BUS_NAMESPACE")
      assert.include(error.message, "CHORUS_DATABASE_SCHEMA")
    }))

  it.effect("every problem is reported at once, not just the first", () =>
    Effect.gen(function* () {
      const error = yield* failure({
        CHORUS_HTTP_PORT: "x",
        CHORUS_LOG_FORMAT: "xml",
        CHORUS_NATS_REPLICAS: "9",
        CHORUS_DATABASE_POOL_SIZE: "0",
      })
      assert.deepStrictEqual(
        error.problems.map((p) => p.source).sort(),
        [
          "CHORUS_DATABASE_POOL_SIZE",
          "CHORUS_HTTP_PORT",
          "CHORUS_LOG_FORMAT",
          "CHORUS_NATS_REPLICAS",
        ],
      )
    }))

  it.effect("a wrong type in the file names the key and the file", () =>
    Effect.gen(function* () {
      const error = yield* failure({}, JSON.stringify({ http: { port: "8080" } }))
      assert.include(error.message, 'http.port in chorus.config.json: got "8080"')
    }))

  it.effect("an unknown key in the file (a typo) is refused with the known keys", () =>
    Effect.gen(function* () {
      const error = yield* failure({}, JSON.stringify({ htpp: { port: 1 } }))
      assert.include(error.message, "htpp in chorus.config.json")
      assert.include(error.message, "no such key")
      assert.include(error.message, "http.port")
    }))

  it.effect("a file that is not JSON, or not an object, is refused", () =>
    Effect.gen(function* () {
      const broken = yield* failure({}, "{ port: 1 ")
      assert.include(broken.message, "expected valid JSON")
      const array = yield* failure({}, "[1,2]")
      assert.include(array.message, "expected a JSON object")
    }))

  it.effect("an explicitly named config file must exist", () =>
    Effect.gen(function* () {
      const error = yield* loadConfig({
        env: { CHORUS_CONFIG: "/nonexistent/chorus.json" },
        cwd: tmp(),
      })
        .pipe(Effect.flip)
      assert.include(error.message, "/nonexistent/chorus.json")
      assert.include(error.message, "an existing JSON file")
    }))

  it("every setting is documented in the README's configuration reference", () => {
    const readme = NodeFs.readFileSync(NodePath.join(__dirname, "../../README.md"), "utf8")
    for (const s of settings) {
      assert.include(readme, `\`${s.env}\``, `README lacks ${s.env}`)
      assert.include(readme, `\`${s.key}\``, `README lacks ${s.key}`)
    }
  })

  it("the version constant matches package.json", () => {
    const pkg = JSON.parse(
      NodeFs.readFileSync(NodePath.join(__dirname, "../../package.json"), "utf8"),
    )
    assert.strictEqual(VERSION, pkg.version)
  })
})
