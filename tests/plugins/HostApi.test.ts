/**
 * Host API v1 against real parts: the embedded bus on a SQLite file, a loopback HTTP server, the
 * plugin's own migrations. Every capability works for what the manifest declares and fails with
 * `PermissionDenied` (naming the field to add) for anything else.
 */
import * as NodeHttp from "node:http"
import type { AddressInfo } from "node:net"
import { FetchHttpClient } from "@effect/platform"
import { assert, describe, it } from "@effect/vitest"
import {
  Chunk,
  Effect,
  Either,
  Logger,
  LogLevel,
  Queue,
  Redacted,
  type Scope,
  Stream,
} from "effect"
import { type Kysely, type Migration, sql } from "kysely"
import { Bus, type BusMessage } from "../../core/bus/Bus.ts"
import * as EmbeddedBus from "../../core/bus/EmbeddedBus.ts"
import { unknownEnvVariables } from "../../core/config/loadConfig.ts"
import * as HostApi from "../../core/plugins/HostApi.ts"
import { decodeManifest } from "../../core/plugins/Manifest.ts"
import { PermissionDenied } from "../../core/plugins/Permissions.ts"
import { outboundSubject, pipelineStreams } from "../../core/pipeline/Streams.ts"
import { Database, type DatabaseShape } from "../../core/storage/Database.ts"
import { postgresDatabase, sqliteDatabase } from "../support/TestDatabase.ts"
import { uniqueNamespace } from "../support/TestNamespace.ts"

const text = (s: string) => new TextEncoder().encode(s)

const manifestOf = (permissions: Record<string, unknown>) =>
  Either.getOrThrow(
    decodeManifest({
      id: "echo",
      version: "1.2.0",
      engines: { chorus: "^1.0.0" },
      entry: "index.js",
      kind: "bot",
      permissions,
    }, { file: "chorus.plugin.json" }),
  )

const defaultPermissions = {
  bus: {
    publish: ["inbound.echo", "plugins.echo.>"],
    subscribe: ["outbound.echo", "events.message.*", "plugins.echo.>"],
  },
  secrets: ["API_KEY", "UNSET_KEY"],
  storage: { tables: ["plugin_echo_notes"] },
}

/** A SQLite file with core migrations, the embedded bus on it with the pipeline's streams, and the host API. */
const setup = (
  permissions: Record<string, unknown> = defaultPermissions,
  env: Record<string, string> = {},
  database: Effect.Effect<DatabaseShape, unknown, Scope.Scope> = sqliteDatabase(),
) =>
  Effect.gen(function* () {
    const db = yield* database
    const bus = yield* EmbeddedBus.make({ namespace: uniqueNamespace() }).pipe(
      Effect.provideService(Database, db),
    )
    for (const stream of pipelineStreams) yield* bus.ensureStream(stream)
    const host = yield* HostApi.make(manifestOf(permissions), { env }).pipe(
      Effect.provideService(Bus, bus),
      Effect.provideService(Database, db),
      Effect.provide(FetchHttpClient.layer),
    )
    return { host, bus, db }
  })

/** The refusal, asserting it names `field` and tells to add `requested` there. */
const assertDenied = (error: unknown, field: string, requested: string) => {
  assert.instanceOf(error, PermissionDenied)
  const denied = error as PermissionDenied
  assert.strictEqual(denied.field, field)
  assert.strictEqual(denied.requested, requested)
  assert.strictEqual(denied.plugin, "echo")
  return denied
}

const firstMessage = (bus: Stream.Stream<BusMessage, unknown>) =>
  bus.pipe(Stream.take(1), Stream.runCollect, Effect.map((c) => Chunk.unsafeGet(c, 0)))

describe("host API: bus", () => {
  it.scopedLive("publishes on a declared subject; an undeclared one names the field to add", () =>
    Effect.gen(function* () {
      const { host, bus } = yield* setup()
      const ack = yield* host.bus.publish("inbound.echo", text("hi"), { id: "m1" })
      assert.strictEqual(ack.stream, "inbound")
      const stored = yield* firstMessage(bus.read("inbound", { fromSeq: 1 }))
      assert.strictEqual(stored.subject, "inbound.echo")

      const error = yield* host.bus.publish("orders.created", text("x"), { id: "m2" }).pipe(
        Effect.flip,
      )
      const denied = assertDenied(error, "permissions.bus.publish", "orders.created")
      assert.include(
        denied.message,
        'add "orders.created" to permissions.bus.publish in chorus.plugin.json',
      )
      // A core stream the plugin did not declare: refused before the bus sees it.
      const core = yield* host.bus.publish("events.message.received", text("{}"), { id: "m3" })
        .pipe(Effect.flip)
      assertDenied(core, "permissions.bus.publish", "events.message.received")
      assert.strictEqual(yield* bus.lastSeq("events"), 0)
    }))

  it.scopedLive("consumes a declared subject under a prefixed durable name", () =>
    Effect.gen(function* () {
      const { host, bus } = yield* setup()
      const got = yield* Queue.unbounded<BusMessage>()
      yield* host.bus.consume(
        { stream: "outbound", name: "sender", filter: outboundSubject("echo") },
        (m) => Queue.offer(got, m).pipe(Effect.asVoid),
      )
      yield* bus.publish(outboundSubject("echo"), text("reply"), { id: "r1" })
      const message = yield* Queue.take(got)
      assert.strictEqual(message.id, "r1")
      // A core consumer of the same name is a different consumer: the plugin cannot join it.
      const core = yield* Queue.unbounded<BusMessage>()
      yield* bus.consume(
        { stream: "outbound", name: "sender" },
        (m) => Queue.offer(core, m).pipe(Effect.asVoid),
      )
      assert.strictEqual((yield* Queue.take(core)).id, "r1")
    }))

  it.scopedLive("refuses to consume undeclared subjects and core streams it did not declare", () =>
    Effect.gen(function* () {
      const { host } = yield* setup()
      const handler = () => Effect.void
      const other = yield* host.bus.consume(
        { stream: "outbound", name: "x", filter: "outbound.telegram" },
        handler,
      ).pipe(Effect.flip)
      assertDenied(other, "permissions.bus.subscribe", "outbound.telegram")
      // Broader than declared.
      const wider = yield* host.bus.consume(
        { stream: "outbound", name: "x", filter: "outbound.>" },
        handler,
      ).pipe(Effect.flip)
      assertDenied(wider, "permissions.bus.subscribe", "outbound.>")
      // No filter: the whole core stream, which was not declared.
      const whole = yield* host.bus.consume({ stream: "inbound", name: "x" }, handler).pipe(
        Effect.flip,
      )
      const denied = assertDenied(whole, "permissions.bus.subscribe", "inbound.>")
      assert.include(denied.message, 'add "inbound.>" to permissions.bus.subscribe')
      // A stream whose subjects the host does not know needs a declared filter.
      const unknown = yield* host.bus.consume({ stream: "plugin-crm", name: "x" }, handler).pipe(
        Effect.flip,
      )
      assert.instanceOf(unknown, PermissionDenied)
      assert.include((unknown as PermissionDenied).hint, "pass a filter")
    }))

  it.scopedLive("reads a declared subject and refuses to read an undeclared one", () =>
    Effect.gen(function* () {
      const { host, bus } = yield* setup()
      yield* bus.publish("events.message.received", text("{}"), { id: "e1" })
      yield* bus.publish("events.conversation.closed", text("{}"), { id: "e2" })
      const read = yield* firstMessage(
        host.bus.read("events", { fromSeq: 1, filter: "events.message.received" }),
      )
      assert.strictEqual(read.id, "e1")
      const error = yield* host.bus.read("events", { fromSeq: 1 }).pipe(
        Stream.runDrain,
        Effect.flip,
      )
      assertDenied(error, "permissions.bus.subscribe", "events.>")
    }))

  it.scopedLive("creates its own stream over its own subjects, never a core one", () =>
    Effect.gen(function* () {
      const { host } = yield* setup()
      yield* host.bus.ensureStream({ name: "plugin-echo", subjects: ["plugins.echo.>"] })
      const got = yield* Queue.unbounded<BusMessage>()
      // Its own stream's subjects are known: no filter needed.
      yield* host.bus.consume(
        { stream: "plugin-echo", name: "self" },
        (m) => Queue.offer(got, m).pipe(Effect.asVoid),
      )
      yield* host.bus.publish("plugins.echo.said", text("hello"), { id: "s1" })
      assert.strictEqual((yield* Queue.take(got)).subject, "plugins.echo.said")

      const core = yield* host.bus.ensureStream({ name: "inbound", subjects: ["inbound.>"] }).pipe(
        Effect.flip,
      )
      assert.instanceOf(core, PermissionDenied)
      assert.strictEqual((core as PermissionDenied).capability, "bus.streams")
      const sneaky = yield* host.bus.ensureStream({
        name: "plugin-echo-2",
        subjects: ["events.>"],
      }).pipe(Effect.flip)
      assert.include((sneaky as PermissionDenied).hint, 'not "events.>"')
    }))
})

/** A loopback server answering 200 "ok" on `/`, and a redirect to `location` on `/redirect`. */
const loopback = (location?: (port: number) => string) =>
  Effect.acquireRelease(
    Effect.async<NodeHttp.Server>((resume) => {
      const server = NodeHttp.createServer((req, res) => {
        const port = (server.address() as AddressInfo).port
        if (req.url === "/redirect" && location !== undefined) {
          res.writeHead(302, { location: location(port) }).end()
        } else res.writeHead(200, { "content-type": "text/plain" }).end("ok")
      })
      server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
    }),
    (server) =>
      Effect.async<void>((resume) => {
        server.close(() => resume(Effect.void))
      }),
  ).pipe(Effect.map((server) => (server.address() as AddressInfo).port))

describe("host API: HTTP", () => {
  it.scopedLive("reaches a declared host and port, and only that", () =>
    Effect.gen(function* () {
      const port = yield* loopback((p) => `http://localhost:${p}/`)
      const other = yield* loopback()
      const { host } = yield* setup({ net: [`127.0.0.1:${port}`] })
      const response = yield* host.http.get(`http://127.0.0.1:${port}/`)
      assert.strictEqual(yield* response.text, "ok")

      const byName = yield* host.http.get(`http://localhost:${port}/`).pipe(Effect.flip)
      const denied = assertDenied(byName, "permissions.net", `localhost:${port}`)
      assert.include(denied.message, `add "localhost:${port}" to permissions.net`)

      const otherPort = yield* host.http.get(`http://127.0.0.1:${other}/`).pipe(Effect.flip)
      assertDenied(otherPort, "permissions.net", `127.0.0.1:${other}`)
    }))

  it.scopedLive("checks every redirect hop against the declared hosts", () =>
    Effect.gen(function* () {
      const port = yield* loopback((p) => `http://localhost:${p}/`)
      const { host } = yield* setup({ net: [`127.0.0.1:${port}`] })
      const error = yield* host.http.get(`http://127.0.0.1:${port}/redirect`).pipe(Effect.flip)
      assertDenied(error, "permissions.net", `localhost:${port}`)

      const both = yield* setup({ net: [`127.0.0.1:${port}`, `localhost:${port}`] })
      const followed = yield* both.host.http.get(`http://127.0.0.1:${port}/redirect`)
      assert.strictEqual(followed.status, 200)
    }))

  it.scopedLive("nothing declared, nothing reached", () =>
    Effect.gen(function* () {
      const port = yield* loopback()
      const { host } = yield* setup({})
      const error = yield* host.http.get(`http://127.0.0.1:${port}/`).pipe(Effect.flip)
      assertDenied(error, "permissions.net", `127.0.0.1:${port}`)
      // Wildcards cover sub-domains only.
      const wild = yield* setup({ net: ["*.example.com"] })
      const apex = yield* wild.host.http.get("https://example.com/").pipe(Effect.flip)
      assertDenied(apex, "permissions.net", "example.com:443")
      assert.include((apex as PermissionDenied).hint, 'add "example.com" to permissions.net')
    }))
})

describe("host API: secrets", () => {
  it.scopedLive("reads declared secrets from CHORUS_PLUGIN_<ID>_<NAME> only", () =>
    Effect.gen(function* () {
      const env = { CHORUS_PLUGIN_ECHO_API_KEY: "s3cret", CHORUS_PLUGIN_ECHO_OTHER: "nope" }
      const { host } = yield* setup(defaultPermissions, env)
      const secret = yield* host.secrets.get("API_KEY")
      assert.strictEqual(Redacted.value(secret), "s3cret")
      assert.notInclude(String(secret), "s3cret")

      const undeclared = yield* host.secrets.get("OTHER").pipe(Effect.flip)
      const denied = assertDenied(undeclared, "permissions.secrets", "OTHER")
      assert.include(denied.message, 'add "OTHER" to permissions.secrets')

      const unset = yield* host.secrets.get("UNSET_KEY").pipe(Effect.flip)
      assert.strictEqual(unset._tag, "SecretMissing")
      assert.include(unset.message, "set CHORUS_PLUGIN_ECHO_UNSET_KEY")
      // Plugin secrets are not mistaken for misspelt settings at start.
      assert.deepStrictEqual(unknownEnvVariables(env), [])
    }))
})

const notes: Record<string, Migration> = {
  "2026_11_23_0001_notes": {
    up: (db: Kysely<any>) =>
      db.schema.createTable("plugin_echo_notes")
        .addColumn("id", "integer", (c) => c.primaryKey())
        .addColumn("body", "text", (c) => c.notNull())
        .execute(),
  },
}

const storageOn = (
  name: string,
  database: () => Effect.Effect<DatabaseShape, unknown, Scope.Scope>,
) =>
  describe(`host API: storage on ${name}`, () => {
    it.scopedLive("migrates and queries its declared tables in its own migration table", () =>
      Effect.gen(function* () {
        const { host, db } = yield* setup(defaultPermissions, {}, database())
        const report = yield* host.storage.migrate(notes)
        assert.strictEqual(report.table, "chorus_plugin_echo_migrations")
        assert.deepStrictEqual(report.applied, ["2026_11_23_0001_notes"])
        assert.deepStrictEqual((yield* host.storage.migrate(notes)).applied, [])

        yield* host.storage.query(
          "insert note",
          (k) => k.insertInto("plugin_echo_notes").values({ id: 1, body: "hello" }).execute(),
        )
        const rows = yield* host.storage.transaction(
          "read notes",
          (k) => k.selectFrom("plugin_echo_notes as n").select(["n.id", "n.body"]).execute(),
        )
        assert.deepStrictEqual(rows, [{ id: 1, body: "hello" }])
        // A common table expression's name is not a table.
        const viaCte = yield* host.storage.query(
          "cte",
          (k) =>
            k.with("recent", (w) => w.selectFrom("plugin_echo_notes").selectAll())
              .selectFrom("recent").select("body").execute(),
        )
        assert.deepStrictEqual(viaCte, [{ body: "hello" }])
        const applied = yield* db.query(
          "applied",
          (k) => sql<{ name: string }>`select name from chorus_plugin_echo_migrations`.execute(k),
        )
        assert.deepStrictEqual(applied.rows.map((r) => r.name), ["2026_11_23_0001_notes"])
      }))

    it.scopedLive("refuses core tables, undeclared tables and raw SQL", () =>
      Effect.gen(function* () {
        const { host } = yield* setup(defaultPermissions, {}, database())
        yield* host.storage.migrate(notes)
        const core = yield* host.storage.query(
          "read tokens",
          (k) => k.selectFrom("api_tokens").selectAll().execute(),
        ).pipe(Effect.flip)
        const denied = assertDenied(core, "permissions.storage.tables", "api_tokens")
        assert.include(denied.hint, "start with plugin_echo_")

        const joined = yield* host.storage.query(
          "join contacts",
          (k) =>
            k.selectFrom("plugin_echo_notes").innerJoin(
              "contacts",
              "contacts.id",
              "plugin_echo_notes.body",
            )
              .selectAll().execute(),
        ).pipe(Effect.flip)
        assertDenied(joined, "permissions.storage.tables", "contacts")

        const undeclared = yield* host.storage.query(
          "other",
          (k) => k.selectFrom("plugin_echo_other").selectAll().execute(),
        ).pipe(Effect.flip)
        const notDeclared = assertDenied(
          undeclared,
          "permissions.storage.tables",
          "plugin_echo_other",
        )
        assert.include(notDeclared.message, 'add "plugin_echo_other" to permissions.storage.tables')

        const raw = yield* host.storage.query(
          "raw",
          (k) => sql`select * from api_tokens`.execute(k),
        )
          .pipe(Effect.flip)
        assertDenied(raw, "permissions.storage.tables", "(raw SQL)")

        const sneaky: Record<string, Migration> = {
          "2026_11_23_0002_sneaky": {
            up: (db: Kysely<any>) =>
              db.schema.createTable("plugin_echo_sneaky").addColumn("id", "integer").execute(),
          },
        }
        const migration = yield* host.storage.migrate({ ...notes, ...sneaky }).pipe(Effect.flip)
        assertDenied(migration, "permissions.storage.tables", "plugin_echo_sneaky")
      }))
  })

storageOn("SQLite", () => sqliteDatabase())
storageOn("PostgreSQL", () => postgresDatabase("plugin_storage_"))

describe("host API: logger", () => {
  it.scopedLive("annotates every log line with the plugin id", () =>
    Effect.gen(function* () {
      const { host } = yield* setup({})
      const lines: Array<Record<string, unknown>> = []
      const logger = Logger.make(({ annotations }) => {
        lines.push(Object.fromEntries(annotations))
      })
      yield* host.log.info("ready", { channel: "echo" }).pipe(
        Effect.provide(Logger.replace(Logger.defaultLogger, logger)),
        Logger.withMinimumLogLevel(LogLevel.Debug),
      )
      assert.deepStrictEqual(lines, [{ channel: "echo", plugin: "echo" }])
      assert.strictEqual(host.version, "1.0.0")
      assert.deepStrictEqual(host.plugin, { id: "echo", version: "1.2.0" })
    }))
})
