import { HttpServer } from "@effect/platform"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { ServerLive } from "../../core/Chorus.ts"
import { decodeConfig } from "../../core/config/loadConfig.ts"
import { freshNamespace } from "../support/NatsCleanup.ts"
import { scratchSchema, tempDir } from "../support/TestDatabase.ts"

const baseUrl = Effect.gen(function* () {
  const server = yield* HttpServer.HttpServer
  const address = server.address
  if (address._tag !== "TcpAddress") throw new Error("expected a TCP address")
  return `http://127.0.0.1:${address.port}`
})

const startServer = (raw: object) =>
  Effect.gen(function* () {
    const config = yield* decodeConfig(raw)
    const context = yield* Layer.build(ServerLive(config))
    return yield* baseUrl.pipe(Effect.provide(context))
  })

const get = (url: string) =>
  Effect.promise(() => fetch(url).then(async (r) => ({ status: r.status, body: await r.json() })))

describe("HTTP system endpoints", () => {
  it.scoped("GET /health answers 200 with the version", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir()
      const url = yield* startServer({ dataDir: dir, http: { port: 0 }, log: { level: "error" } })
      const health = yield* get(`${url}/health`)
      assert.strictEqual(health.status, 200)
      assert.strictEqual(health.body.status, "ok")
      assert.strictEqual(health.body.version, "0.1.0")
    }))

  it.scoped("GET /ready names the backends: SQLite and the embedded bus by default", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir()
      const url = yield* startServer({ dataDir: dir, http: { port: 0 } })
      const ready = yield* get(`${url}/ready`)
      assert.strictEqual(ready.status, 200)
      assert.strictEqual(ready.body.status, "ready")
      assert.deepInclude(ready.body.store, { backend: "sqlite", ok: true })
      assert.deepInclude(ready.body.bus, { backend: "embedded", ok: true })
    }))

  it.scoped("GET /ready with PostgreSQL and JetStream names them", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir()
      const schema = yield* scratchSchema("t_http")
      const namespace = yield* freshNamespace("http")
      const url = yield* startServer({
        dataDir: dir,
        http: { port: 0 },
        database: { url: "postgres://postgres@127.0.0.1:5432/test", schema },
        bus: { natsUrl: "nats://127.0.0.1:4222", namespace },
      })
      const ready = yield* get(`${url}/ready`)
      assert.strictEqual(ready.status, 200)
      assert.deepInclude(ready.body.store, { backend: "postgres", ok: true })
      assert.deepInclude(ready.body.bus, { backend: "jetstream", ok: true })
    }))

  it.scoped("GET /api/openapi.json documents the API from the same schemas", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir()
      const url = yield* startServer({ dataDir: dir, http: { port: 0 } })
      const doc = yield* get(`${url}/api/openapi.json`)
      assert.strictEqual(doc.status, 200)
      assert.strictEqual(doc.body.info.title, "Chorus API")
      assert.property(doc.body.paths, "/health")
      assert.property(doc.body.paths, "/ready")
      assert.property(doc.body.paths["/ready"].get.responses, "503")
      assert.property(doc.body.components.schemas, "Readiness")
    }))
})
