import { HttpServer } from "@effect/platform"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Redacted } from "effect"
import { ApiTokens } from "../../core/auth/ApiTokens.ts"
import { ServerLive } from "../../core/Chorus.ts"
import { decodeConfig } from "../../core/config/loadConfig.ts"
import { tempDir } from "../support/TestDatabase.ts"

/** A server in this process on a fresh SQLite database, and the token service over it. */
const startServer = Effect.gen(function* () {
  const dir = yield* tempDir()
  const config = yield* decodeConfig({ dataDir: dir, http: { port: 0 }, log: { level: "error" } })
  const context = yield* Layer.build(ServerLive(config))
  const server = yield* HttpServer.HttpServer.pipe(Effect.provide(context))
  if (server.address._tag !== "TcpAddress") throw new Error("expected a TCP address")
  const tokens = yield* ApiTokens.pipe(Effect.provide(ApiTokens.Default), Effect.provide(context))
  return { url: `http://127.0.0.1:${server.address.port}`, tokens }
})

const call = (url: string, headers: Record<string, string> = {}) =>
  Effect.promise(async () => {
    const response = await fetch(url, { headers })
    return { status: response.status, text: await response.text(), headers: response.headers }
  })

describe("API bearer authentication", () => {
  it.scopedLive("GET /api/v1/tokens/me answers 200 with the token's name and prefix", () =>
    Effect.gen(function* () {
      const { tokens, url } = yield* startServer
      const { info, token } = yield* tokens.create("crm sync")
      const me = yield* call(`${url}/api/v1/tokens/me`, {
        authorization: `Bearer ${Redacted.value(token)}`,
      })
      assert.strictEqual(me.status, 200)
      const body = JSON.parse(me.text)
      assert.strictEqual(body.name, "crm sync")
      assert.strictEqual(body.id, info.id)
      assert.strictEqual(body.prefix, info.prefix)
      assert.notProperty(body, "hash")
      assert.notInclude(me.text, Redacted.value(token).slice(15))
    }))

  it.scopedLive("a missing, wrong, malformed or revoked token gets a bare 401, all alike", () =>
    Effect.gen(function* () {
      const { tokens, url } = yield* startServer
      const { token } = yield* tokens.create("soon revoked")
      const good = Redacted.value(token)
      const wrong = good.slice(0, -1) + (good.endsWith("A") ? "B" : "A")
      const endpoint = `${url}/api/v1/tokens/me`
      const refusals = [
        yield* call(endpoint),
        yield* call(endpoint, { authorization: `Bearer ${wrong}` }),
        yield* call(endpoint, { authorization: "Bearer nonsense" }),
        yield* call(endpoint, { authorization: "Bearer " }),
        // The right token under another scheme is not a bearer token.
        yield* call(endpoint, { authorization: `Basic ${good}` }),
        yield* call(endpoint, { authorization: good }),
      ]
      yield* tokens.revoke("soon revoked")
      refusals.push(yield* call(endpoint, { authorization: `Bearer ${good}` }))
      for (const refusal of refusals) {
        assert.strictEqual(refusal.status, 401)
        assert.strictEqual(refusal.headers.get("www-authenticate"), 'Bearer realm="chorus"')
      }
      // Identical bodies: nothing tells a revoked token from one that never existed.
      assert.deepStrictEqual(new Set(refusals.map((r) => r.text)).size, 1)
      assert.notInclude(refusals[1]!.text.toLowerCase(), "revoked")
    }))

  it.scopedLive("/health, /ready and the OpenAPI document stay public", () =>
    Effect.gen(function* () {
      const { url } = yield* startServer
      assert.strictEqual((yield* call(`${url}/health`)).status, 200)
      assert.strictEqual((yield* call(`${url}/ready`)).status, 200)
      assert.strictEqual((yield* call(`${url}/api/openapi.json`)).status, 200)
    }))

  it.scopedLive("the OpenAPI document declares the bearer scheme on /api/v1 only", () =>
    Effect.gen(function* () {
      const { url } = yield* startServer
      const doc = JSON.parse((yield* call(`${url}/api/openapi.json`)).text)
      assert.deepInclude(doc.components.securitySchemes.bearer, { type: "http", scheme: "bearer" })
      const me = doc.paths["/api/v1/tokens/me"].get
      assert.deepStrictEqual(me.security, [{ bearer: [] }, { session: [] }])
      assert.property(me.responses, "401")
      assert.deepStrictEqual(doc.paths["/health"].get.security, [])
      assert.notProperty(doc.paths["/health"].get.responses, "401")
    }))
})
