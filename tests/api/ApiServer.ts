/**
 * A Chorus server in this process for the API tests: a fresh SQLite database and the embedded
 * bus (or PostgreSQL and JetStream), an API token, and the services behind the server (bus,
 * store, database) for seeding and checking.
 */
import { HttpServer } from "@effect/platform"
import { Context, Effect, Layer, Redacted } from "effect"
import { ConversationStore } from "../../actors/conversation/ConversationStore.ts"
import { ApiTokens } from "../../core/auth/ApiTokens.ts"
import { Bus } from "../../core/bus/Bus.ts"
import { ServerLive } from "../../core/Chorus.ts"
import type { ChorusConfig } from "../../core/config/ChorusConfig.ts"
import { decodeConfig } from "../../core/config/loadConfig.ts"
import { Database } from "../../core/storage/Database.ts"
import { freshNamespace } from "../support/NatsCleanup.ts"
import { POSTGRES_URL, scratchSchema, tempDir } from "../support/TestDatabase.ts"
import { testNatsUrl } from "../support/TestServices.ts"

/**
 * `shared`: PostgreSQL (a schema of its own, dropped afterwards) and JetStream (a namespace of its
 * own, deleted afterwards) instead of SQLite and the embedded bus.
 */
export const startApiServerOn = (backends: "embedded" | "shared") =>
  Effect.gen(function* () {
    const dir = yield* tempDir()
    const shared = backends === "shared"
      ? {
        database: { url: POSTGRES_URL, schema: yield* scratchSchema("t_api") },
        bus: { natsUrl: testNatsUrl, namespace: yield* freshNamespace("api") },
      }
      : {}
    const config = yield* decodeConfig({
      dataDir: dir,
      http: { port: 0 },
      log: { level: "error" },
      ...shared,
    })
    return yield* serve(config)
  })

const serve = (config: ChorusConfig) =>
  Effect.gen(function* () {
    const context = yield* Layer.build(ServerLive(config))
    const server = Context.get(context, HttpServer.HttpServer)
    if (server.address._tag !== "TcpAddress") throw new Error("expected a TCP address")
    const tokens = yield* ApiTokens.pipe(Effect.provide(ApiTokens.Default), Effect.provide(context))
    const { token } = yield* tokens.create("api tests")
    return {
      url: `http://127.0.0.1:${server.address.port}`,
      token: Redacted.value(token),
      bus: Context.get(context, Bus),
      store: Context.get(context, ConversationStore),
      database: Context.get(context, Database),
    }
  })

export const startApiServer = startApiServerOn("embedded")

export interface Answer {
  readonly status: number
  readonly headers: Headers
  readonly text: string
  // deno-lint-ignore no-explicit-any -- a JSON body, inspected by the test
  readonly body: any
}

/** One request; `token: null` sends none. */
export const request = (
  url: string,
  options: {
    readonly token: string | null
    readonly method?: string
    readonly body?: unknown
    readonly rawBody?: string
    /**
     * Send the body chunked (no Content-Length): the ingest endpoint's front route leaves such a
     * request to the HttpApi app (see core/http/InboundRoute.ts).
     */
    readonly chunked?: boolean
  },
) =>
  Effect.promise(async (): Promise<Answer> => {
    const headers: Record<string, string> = {}
    if (options.token !== null) headers["authorization"] = `Bearer ${options.token}`
    const body = options.rawBody ??
      (options.body !== undefined ? JSON.stringify(options.body) : undefined)
    if (body !== undefined) headers["content-type"] = "application/json"
    const response = await fetch(url, {
      method: options.method ?? (body !== undefined ? "POST" : "GET"),
      headers,
      ...(body !== undefined
        ? options.chunked ? { body: new Blob([body]).stream(), duplex: "half" as const } : { body }
        : {}),
    })
    const text = await response.text()
    let parsed: unknown = undefined
    try {
      parsed = text.length > 0 ? JSON.parse(text) : undefined
    } catch {
      parsed = undefined
    }
    return { status: response.status, headers: response.headers, text, body: parsed }
  })
