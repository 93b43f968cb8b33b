/**
 * The plugin test kit: a real plugin host around one plugin directory, for the plugin's own
 * tests. The host is the server's (`PluginHost.make`), on the embedded bus over a SQLite file in a
 * temporary directory with the core migrations run and the pipeline's streams (`inbound`,
 * `events`, `outbound`) created; the plugin runs in the mode asked for, with the permissions its
 * manifest declares, exactly as in `chorus start`. Nothing else of the server runs: no
 * conversation pipeline, no HTTP server. A test publishes what the pipeline would, reads what the
 * plugin publishes, calls its routes and its channel.
 *
 * Two spellings: `startTestHost` (Promises, for a plain JavaScript test) and `testHost` (an
 * Effect that needs a `Scope`, for `@effect/vitest`).
 *
 * @example
 * ```js
 * // plugins/echo/index.test.mjs
 * import { afterAll, assert, beforeAll, test } from "vitest"
 * import { startTestHost } from "../../core/plugins/sdk/TestKit.ts"
 *
 * let kit
 * beforeAll(async () => { kit = await startTestHost({ plugin: new URL(".", import.meta.url) }) })
 * afterAll(() => kit?.stop())
 *
 * test("echoes", async () => {
 *   await kit.publish("events.message.received", { type: "message.received", … }, { id: "e1" })
 *   const [echoed] = await kit.read("plugin-echo", { filter: "plugins.echo.echoed", count: 1 })
 *   assert.strictEqual(echoed.json().text, "echo: hello")
 * })
 * ```
 */
import { randomBytes } from "node:crypto"
import * as NodeFs from "node:fs"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import { fileURLToPath } from "node:url"
import { FetchHttpClient } from "@effect/platform"
import { Cause, Duration, Effect, Exit, Logger, LogLevel, Option, Scope, Stream } from "effect"
import { Bus, type BusShape, type PublishAck } from "../../bus/Bus.ts"
import * as EmbeddedBus from "../../bus/EmbeddedBus.ts"
import { pipelineStreams } from "../../pipeline/Streams.ts"
import { Database, type DatabaseShape, makeDatabase } from "../../storage/Database.ts"
import { coreMigrationSet, migrate } from "../../storage/Migrations.ts"
import type { DiscoveryResult } from "../Discovery.ts"
import type { PluginMode } from "../guest/Api.ts"
import { loadManifest } from "../Manifest.ts"
import * as PluginHost from "../PluginHost.ts"

// ---------------------------------------------------------------------------------------------
// The host and its world (shared with the core's own tests: tests/support/PluginFixtures.ts)

/** A directory under the OS temp dir, removed with its contents when the scope closes. */
export const temporaryDirectory = (prefix = "chorus-test-") =>
  Effect.acquireRelease(
    Effect.sync(() => NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), prefix))),
    (dir) => Effect.sync(() => NodeFs.rmSync(dir, { recursive: true, force: true })),
  )

/** A SQLite database in a fresh temporary directory (or at `file`), core migrations run. */
export const temporaryDatabase = (file?: string) =>
  Effect.gen(function* () {
    const path = file ?? NodePath.join(yield* temporaryDirectory(), "chorus.sqlite")
    const db = yield* makeDatabase({ sqliteFile: path })
    yield* migrate(db, coreMigrationSet)
    return db
  })

/** A bus namespace nobody else uses, e.g. `t5kq2x9a7f3c1a0`. */
export const freshNamespace = (prefix = "t"): string =>
  `${prefix}${Date.now().toString(36)}${randomBytes(4).toString("hex")}`

export interface HostWorld {
  readonly host: PluginHost.PluginHostShape
  readonly bus: BusShape
  readonly db: DatabaseShape
}

/**
 * A plugin host over `discovered`, on `db` and `bus` when given, else on a temporary SQLite file
 * and the embedded bus over it; the pipeline's streams exist before any plugin starts.
 */
export const hostAround = (
  discovered: DiscoveryResult,
  options: PluginHost.PluginHostOptions & {
    readonly db?: DatabaseShape
    readonly bus?: BusShape
  } = {},
): Effect.Effect<HostWorld, unknown, Scope.Scope> =>
  Effect.gen(function* () {
    const { db: givenDb, bus: givenBus, ...hostOptions } = options
    const db = givenDb ?? (yield* temporaryDatabase())
    const bus = givenBus ??
      (yield* EmbeddedBus.make({ namespace: freshNamespace() }).pipe(
        Effect.provideService(Database, db),
      ))
    for (const stream of pipelineStreams) yield* bus.ensureStream(stream)
    const host = yield* PluginHost.make(discovered, hostOptions).pipe(
      Effect.provideService(Bus, bus),
      Effect.provideService(Database, db),
      Effect.provide(FetchHttpClient.layer),
    )
    return { host, bus, db }
  })

// ---------------------------------------------------------------------------------------------
// One plugin under test

export interface TestHostOptions {
  /**
   * The plugin's directory (the one holding `chorus.plugin.json`): a path, or a `file:` URL such
   * as `new URL(".", import.meta.url)` (the directory of the test file).
   */
  readonly plugin: string | URL
  /** How the plugin runs. Default `worker`, as in `chorus start`. */
  readonly mode?: PluginMode
  /** Setting values, as an operator would set them (checked against the manifest). Default none. */
  readonly settings?: Readonly<Record<string, unknown>>
  /** Host log lines below this level are dropped (the plugin's `chorus.log` too). Default `warning`. */
  readonly logLevel?: "debug" | "info" | "warning" | "error" | "none"
  /** Further plugin host options (restart schedule, timeouts…). Default none. */
  readonly host?: PluginHost.PluginHostOptions
}

/** A bus message as a test sees it. */
export interface TestMessage {
  readonly stream: string
  readonly seq: number
  readonly subject: string
  readonly id: string
  readonly key: string | undefined
  readonly headers: Readonly<Record<string, string>>
  readonly data: Uint8Array
  readonly text: () => string
  readonly json: () => any
}

export interface TestResponse {
  readonly status: number
  readonly headers: Readonly<Record<string, string>>
  readonly body: Uint8Array
  readonly text: () => string
  readonly json: () => any
}

export interface TestReadOptions {
  /** A subject filter (`plugins.echo.echoed`, `inbound.>`). Default: the whole stream. */
  readonly filter?: string
  /** How many messages to wait for. Default 1. */
  readonly count?: number
  /** The first stream sequence read. Default 1 (from the start). */
  readonly fromSeq?: number
  /** Fail if `count` messages have not come by then. Default 10 s. */
  readonly timeoutMs?: number
}

export interface TestRequestOptions {
  /** A string, bytes, or any other value (sent as JSON with `content-type: application/json`). */
  readonly body?: unknown
  readonly headers?: Readonly<Record<string, string>>
  readonly query?: Readonly<Record<string, string>>
}

export interface TestHost {
  /** The plugin's id. */
  readonly id: string
  /** Publish on the bus as the core would; `data` as in `chorus.bus.publish` (bytes, text, JSON). */
  readonly publish: (
    subject: string,
    data: unknown,
    options: { readonly id: string; readonly key?: string },
  ) => Promise<PublishAck>
  /** The first `count` messages of `stream` (matching `filter`), waiting for them to come. */
  readonly read: (stream: string, options?: TestReadOptions) => Promise<Array<TestMessage>>
  /**
   * Call one of the plugin's routes, as `chorus start` does for `/plugins/<id>/…` (which go to the
   * plugin without an API token). A path no plugin serves answers 404.
   */
  readonly request: (
    method: string,
    path: string,
    options?: TestRequestOptions,
  ) => Promise<TestResponse>
  /** Send a reply through a channel the plugin registered, as the core's channel actors do. */
  readonly send: (
    channel: string,
    message: PluginHost.PluginOutgoing,
  ) => Promise<PluginHost.PluginSendResult>
  /** The plugin's status (`GET /api/v1/plugins/<id>`): state, counters, metrics, last error. */
  readonly status: () => Promise<PluginHost.PluginStatus>
  /** Reload the plugin from its files (a new version takes over its consumers). */
  readonly reload: () => Promise<PluginHost.PluginStatus>
  /** Prometheus text of the plugin's metrics (`GET /api/v1/metrics`). */
  readonly prometheus: () => string
  /**
   * Call `check` every 20 ms until it returns something other than `undefined`/`false`/`null`
   * (or throws no more), and return that; fail after `timeoutMs` (default 10 s).
   */
  readonly waitFor: <A>(
    check: () => A | undefined | null | false | Promise<A | undefined | null | false>,
    timeoutMs?: number,
  ) => Promise<A>
  /** Stop the plugin and the host, and remove the temporary database. */
  readonly stop: () => Promise<void>
}

const decoder = new TextDecoder()

const toBytes = (data: unknown): Uint8Array =>
  data instanceof Uint8Array
    ? data
    : new TextEncoder().encode(typeof data === "string" ? data : JSON.stringify(data))

const withBody = <T extends { readonly body: Uint8Array }>(value: T) => ({
  ...value,
  text: () => decoder.decode(value.body),
  json: () => JSON.parse(decoder.decode(value.body)),
})

/** The host around the plugin in `options.plugin`, as an Effect (closing the scope stops it). */
export const testHost = (options: TestHostOptions) =>
  Effect.gen(function* () {
    const loaded = yield* loadManifest(
      options.plugin instanceof URL ? fileURLToPath(options.plugin) : options.plugin,
    )
    const id = loaded.manifest.id
    const world = yield* hostAround({ plugins: [loaded], refused: [] }, {
      mode: options.mode ?? "worker",
      ...(options.settings !== undefined ? { settings: { [id]: options.settings } } : {}),
      ...options.host,
    })
    return { id, ...world }
  })

const levels = {
  debug: LogLevel.Debug,
  info: LogLevel.Info,
  warning: LogLevel.Warning,
  error: LogLevel.Error,
  none: LogLevel.None,
} as const

/**
 * Start a plugin host around the plugin in `options.plugin`; resolves once the plugin has
 * activated (or failed to: look at `status()`), rejects if its manifest is invalid.
 * Call `stop()` when done (`afterAll`).
 */
export const startTestHost = async (options: TestHostOptions): Promise<TestHost> => {
  const level = levels[options.logLevel ?? "warning"]
  // The original error (ManifestInvalid, PermissionDenied…), not a FiberFailure around it.
  const run = async <A, E>(effect: Effect.Effect<A, E>): Promise<A> => {
    const exit = await Effect.runPromiseExit(effect.pipe(Logger.withMinimumLogLevel(level)))
    if (Exit.isSuccess(exit)) return exit.value
    throw Cause.squash(exit.cause)
  }
  const scope = Effect.runSync(Scope.make())
  const stop = () => run(Scope.close(scope, Exit.void))
  const world = await run(Scope.extend(testHost(options), scope)).catch(async (error) => {
    await stop()
    throw error
  })
  const { id, host, bus } = world

  return {
    id,
    publish: (subject, data, publishOptions) =>
      run(bus.publish(subject, toBytes(data), publishOptions)),
    read: (stream, readOptions = {}) => {
      const count = readOptions.count ?? 1
      const timeoutMs = readOptions.timeoutMs ?? 10_000
      const got: Array<TestMessage> = []
      return run(
        bus.read(stream, {
          fromSeq: readOptions.fromSeq ?? 1,
          ...(readOptions.filter !== undefined ? { filter: readOptions.filter } : {}),
        }).pipe(
          Stream.take(count),
          Stream.runForEach((m) =>
            Effect.sync(() => {
              got.push({
                stream: m.stream,
                seq: m.seq,
                subject: m.subject,
                id: m.id,
                key: m.key,
                headers: m.headers,
                data: m.data,
                text: () => decoder.decode(m.data),
                json: () => JSON.parse(decoder.decode(m.data)),
              })
            })
          ),
          Effect.timeoutFail({
            duration: Duration.millis(timeoutMs),
            onTimeout: () =>
              new Error(
                `read ${stream}${
                  readOptions.filter !== undefined ? ` (${readOptions.filter})` : ""
                }: ${got.length} of ${count} messages within ${timeoutMs} ms`,
              ),
          }),
          Effect.as(got),
        ),
      )
    },
    request: (method, path, requestOptions = {}) => {
      const { body } = requestOptions
      const json = body !== undefined && typeof body !== "string" && !(body instanceof Uint8Array)
      const headers = Object.fromEntries(
        Object.entries({
          ...(json ? { "content-type": "application/json" } : {}),
          ...requestOptions.headers,
        }).map(([k, v]) => [k.toLowerCase(), v]),
      )
      return run(
        host.handleRequest({
          method: method.toUpperCase(),
          path,
          query: requestOptions.query ?? {},
          headers,
          body: body === undefined ? new Uint8Array(0) : toBytes(body),
        }),
      ).then((response) =>
        withBody(Option.getOrElse(response, () => ({
          status: 404,
          headers: { "content-type": "application/json" },
          body: toBytes({ error: "NotFound", message: `no plugin serves ${method} ${path}` }),
        })))
      )
    },
    send: (channel, message) => run(host.send(channel, message)),
    status: () => run(host.status(id)),
    reload: () => run(host.reload(id)),
    prometheus: () => host.prometheus(),
    waitFor: async (check, timeoutMs = 10_000) => {
      const deadline = Date.now() + timeoutMs
      let lastError: unknown
      while (true) {
        try {
          const value = await check()
          if (value !== undefined && value !== null && value !== false) return value
        } catch (error) {
          lastError = error
        }
        if (Date.now() > deadline) {
          throw new Error(
            `waitFor: the check did not hold within ${timeoutMs} ms` +
              (lastError === undefined ? "" : `; last error: ${String(lastError)}`),
          )
        }
        await new Promise((resolve) => setTimeout(resolve, 20))
      }
    },
    stop: () => stop(),
  }
}
