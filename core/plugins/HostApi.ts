/**
 * Host API v1: the only thing a plugin receives from Chorus. Every capability in it is cut down
 * to what the plugin's manifest declares (see `Permissions.ts`); using anything else fails with
 * `PermissionDenied`, naming the manifest field to add.
 *
 * - `bus`: publish, consume and read only declared subjects; durable consumer names are
 *   prefixed `plugin-<id>-`; streams of its own only (`plugin-<id>…` over `plugins.<id>.…`).
 * - `http`: an @effect/platform `HttpClient` that reaches only declared hosts, also across
 *   redirects (each hop is checked).
 * - `secrets`: declared names only, read from `CHORUS_PLUGIN_<ID>_<NAME>`.
 * - `storage`: Kysely over the host database, refusing any table but the plugin's declared
 *   `plugin_<id>_…` ones; migrations in `chorus_plugin_<id>_migrations`.
 * - `log`: logs annotated with `plugin: <id>`.
 *
 * Activation (handing this to a plugin's entry module), routes, settings, metrics and the
 * channel-adapter registration come with the next steps of the plugin host.
 *
 * @example
 * ```ts
 * const host = yield* HostApi.make(manifest) // needs Bus, Database, HttpClient
 * yield* host.bus.publish("plugins.echo.said", bytes, { id: "said-1" })
 * const token = yield* host.secrets.get("BOT_TOKEN") // Redacted<string>
 * yield* host.log.info("ready")
 * ```
 */
import { FetchHttpClient, HttpClient, type HttpClientError } from "@effect/platform"
import { Data, Effect, Option, Redacted, type Scope, Stream } from "effect"
import { type Kysely, type KyselyPlugin, type Migration, type OperationNode } from "kysely"
import type { PluginManifest } from "../../schemas/PluginManifest.ts"
import {
  Bus,
  type BusError,
  type BusMessage,
  type ConsumerSpec,
  type Handler,
  type PublishAck,
  type PublishOptions,
  type ReadOptions,
  type StreamSpec,
} from "../bus/Bus.ts"
import { pipelineStreams } from "../pipeline/Streams.ts"
import { Database, DatabaseError } from "../storage/Database.ts"
import {
  migrate,
  type MigrationFailed,
  type MigrationReport,
  pluginMigrationTable,
} from "../storage/Migrations.ts"
import { HOST_API_VERSION } from "./HostApiVersion.ts"
import {
  checkPublish,
  checkSecret,
  checkStream,
  checkSubscribe,
  checkTable,
  checkUrl,
  consumerNameOf,
  type Grants,
  PermissionDenied,
  secretEnvName,
} from "./Permissions.ts"

export { HOST_API_VERSION }

/** The bus, as far as the manifest's `permissions.bus` reaches. */
export interface PluginBus {
  /**
   * Create or update one of the plugin's own streams: named `plugin-<id>` or `plugin-<id>-<x>`,
   * holding only `plugins.<id>.…` subjects. Core streams are the host's.
   */
  readonly ensureStream: (spec: StreamSpec) => Effect.Effect<void, BusError | PermissionDenied>
  /** Publish on a subject covered by `permissions.bus.publish`. */
  readonly publish: (
    subject: string,
    data: Uint8Array,
    options: PublishOptions,
  ) => Effect.Effect<PublishAck, BusError | PermissionDenied>
  /**
   * A durable consumer (see `Bus.consume`) whose filter is covered by
   * `permissions.bus.subscribe`. Without `filter` the stream's subjects are the filter. The
   * durable name is stored as `plugin-<id>-<name>`.
   */
  readonly consume: <E, R>(
    spec: ConsumerSpec,
    handler: Handler<E, R>,
  ) => Effect.Effect<void, BusError | PermissionDenied, Scope.Scope | R>
  /** `Bus.read` on a filter covered by `permissions.bus.subscribe`. */
  readonly read: (
    stream: string,
    options: ReadOptions,
  ) => Stream.Stream<BusMessage, BusError | PermissionDenied>
}

/** A declared secret that has no value in the environment: the operator must set it. */
export class SecretMissing extends Data.TaggedError("SecretMissing")<{
  readonly plugin: string
  readonly name: string
  readonly env: string
}> {
  override get message() {
    return `secret ${this.name} of plugin ${this.plugin} is not set; set ${this.env}`
  }
}

export interface PluginSecrets {
  /** The value of a secret declared in `permissions.secrets`. */
  readonly get: (
    name: string,
  ) => Effect.Effect<Redacted.Redacted<string>, PermissionDenied | SecretMissing>
}

export interface PluginStorage {
  /** The tables the plugin may use (`permissions.storage.tables`). */
  readonly tables: ReadonlyArray<string>
  /**
   * Run a Kysely query. Every table the query names is checked before it is sent; an
   * undeclared one fails the query with `PermissionDenied`. Whole raw-SQL queries
   * (`sql\`…\`.execute(db)`) are refused: their tables cannot be checked.
   * A guardrail against mistakes, not a sandbox: `db.withoutPlugins()` skips it (docs/plugins.md).
   */
  readonly query: <A>(
    operation: string,
    run: (db: Kysely<any>) => Promise<A>,
  ) => Effect.Effect<A, DatabaseError | PermissionDenied>
  /** `query` in one transaction. */
  readonly transaction: <A>(
    operation: string,
    run: (trx: Kysely<any>) => Promise<A>,
  ) => Effect.Effect<A, DatabaseError | PermissionDenied>
  /**
   * Run the plugin's migrations (Kysely migrations by name, in name order) in its own table
   * `chorus_plugin_<id>_migrations`. They may create only declared tables.
   */
  readonly migrate: (
    migrations: Readonly<Record<string, Migration>>,
  ) => Effect.Effect<MigrationReport, MigrationFailed | PermissionDenied>
  /**
   * Run a query sent as Kysely's operation tree (a guest's `query.compile().query`): its
   * tables are checked as for `query` (the plugin's migration table is allowed too, for
   * migrations run from the guest), then it is compiled with the host's dialect and run.
   */
  readonly execute: (
    node: unknown,
  ) => Effect.Effect<ExecuteResult, DatabaseError | PermissionDenied>
}

export interface ExecuteResult {
  readonly rows: ReadonlyArray<Record<string, unknown>>
  readonly numAffectedRows?: number
}

/** Root operation nodes a guest may send. */
const executableKinds = new Set([
  "SelectQueryNode",
  "InsertQueryNode",
  "UpdateQueryNode",
  "DeleteQueryNode",
  "MergeQueryNode",
  "CreateTableNode",
  "CreateIndexNode",
  "AlterTableNode",
  "DropTableNode",
  "DropIndexNode",
])

export interface PluginLogger {
  readonly debug: (message: string, annotations?: Record<string, unknown>) => Effect.Effect<void>
  readonly info: (message: string, annotations?: Record<string, unknown>) => Effect.Effect<void>
  readonly warning: (message: string, annotations?: Record<string, unknown>) => Effect.Effect<void>
  readonly error: (message: string, annotations?: Record<string, unknown>) => Effect.Effect<void>
}

export interface HostApi {
  readonly version: typeof HOST_API_VERSION
  readonly plugin: { readonly id: string; readonly version: string }
  readonly bus: PluginBus
  /** Reaches only `permissions.net`; each redirect hop is checked too (at most 10). */
  readonly http: HttpClient.HttpClient.With<HttpClientError.HttpClientError | PermissionDenied>
  readonly secrets: PluginSecrets
  readonly storage: PluginStorage
  readonly log: PluginLogger
}

export interface HostApiOptions {
  /** Where secrets are read. Default: `process.env`. */
  readonly env?: Readonly<Record<string, string | undefined>>
  /** Streams whose subjects are known (for `consume`/`read` without a filter). Default: the pipeline's. */
  readonly streams?: ReadonlyArray<StreamSpec>
}

// ---------------------------------------------------------------------------------------------
// Bus

const makeBus = (grants: Grants, streams: ReadonlyArray<StreamSpec>) =>
  Effect.gen(function* () {
    const bus = yield* Bus
    const known = new Map(streams.map((s) => [s.name, s.subjects]))
    /** The subjects a consumer or reader of `stream` gets, each checked against the grants. */
    const checkRead = (stream: string, filter: string | undefined) => {
      const subjects = filter !== undefined ? [filter] : known.get(stream)
      if (subjects === undefined) {
        return new PermissionDenied({
          plugin: grants.plugin,
          capability: "bus.subscribe",
          requested: stream,
          field: "permissions.bus.subscribe",
          hint: `the subjects of stream ${stream} are not known to the host; pass a filter ` +
            `declared in permissions.bus.subscribe`,
        })
      }
      for (const subject of subjects) {
        const problem = checkSubscribe(grants, subject)
        if (problem !== undefined) return problem
      }
      return undefined
    }
    const plugin: PluginBus = {
      ensureStream: Effect.fn("PluginBus.ensureStream")(function* (spec) {
        const problem = checkStream(grants, spec.name, spec.subjects)
        if (problem !== undefined) return yield* problem
        yield* bus.ensureStream(spec)
        known.set(spec.name, spec.subjects)
      }),
      publish: Effect.fn("PluginBus.publish")(function* (subject, data, options) {
        const problem = checkPublish(grants, subject)
        if (problem !== undefined) return yield* problem
        return yield* bus.publish(subject, data, options)
      }),
      consume: <E, R>(spec: ConsumerSpec, handler: Handler<E, R>) => {
        const problem = checkRead(spec.stream, spec.filter)
        return problem !== undefined
          ? Effect.fail(problem)
          : bus.consume({ ...spec, name: consumerNameOf(grants.plugin, spec.name) }, handler).pipe(
            Effect.withSpan("PluginBus.consume"),
          )
      },
      read: (stream, options) => {
        const problem = checkRead(stream, options.filter)
        return problem !== undefined ? Stream.fail(problem) : bus.read(stream, options)
      },
    }
    return plugin
  })

// ---------------------------------------------------------------------------------------------
// HTTP

const makeHttp = (grants: Grants) =>
  Effect.gen(function* () {
    const base = yield* HttpClient.HttpClient
    const guarded = HttpClient.transform(base, (response, request) =>
      Effect.gen(function* () {
        const url = yield* Effect.try(() => new URL(request.url)).pipe(
          Effect.orElseSucceed(() => undefined),
        )
        const problem = url === undefined
          ? new PermissionDenied({
            plugin: grants.plugin,
            capability: "net",
            requested: request.url,
            field: "permissions.net",
            hint: "not an absolute http(s) URL",
          })
          : checkUrl(grants, url)
        if (problem !== undefined) return yield* problem
        // Redirects are followed below, hop by hop through this check, never by fetch itself.
        const init = yield* Effect.serviceOption(FetchHttpClient.RequestInit)
        return yield* response.pipe(
          Effect.provideService(FetchHttpClient.RequestInit, {
            ...Option.getOrElse(init, () => ({})),
            redirect: "manual",
          }),
        )
      }))
    return HttpClient.followRedirects(guarded, 10)
  })

// ---------------------------------------------------------------------------------------------
// Storage

/** Thrown inside Kysely's query compilation; turned back into `PermissionDenied` at the boundary. */
class TableRefused extends Error {
  constructor(readonly denied: PermissionDenied) {
    super(denied.message)
  }
}

interface Named {
  readonly tables: Set<string>
  readonly schemas: Set<string>
  /** Names of common table expressions (`with x as (…)`): not tables. */
  readonly ctes: Set<string>
}

/** The tables a query names (aliases and column qualifiers are not tables). */
const tablesOf = (node: unknown, named: Named): void => {
  if (typeof node !== "object" || node === null) return
  if (Array.isArray(node)) {
    for (const n of node) tablesOf(n, named)
    return
  }
  const record = node as Record<string, unknown> & { kind?: string }
  if (record.kind === "CommonTableExpressionNameNode") {
    const table = record["table"] as { table: { identifier: { name: string } } }
    named.ctes.add(table.table.identifier.name)
    return
  }
  if (record.kind === "TableNode") {
    const table = record["table"] as {
      schema?: { name: string }
      identifier: { name: string }
    }
    named.tables.add(table.identifier.name)
    if (table.schema !== undefined) named.schemas.add(table.schema.name)
    return
  }
  for (const [key, value] of Object.entries(record)) {
    if (record.kind === "ReferenceNode" && key === "table") continue
    tablesOf(value, named)
  }
}

/** A Kysely plugin that refuses queries naming a table the plugin may not use. */
const tableGuard = (
  grants: Grants,
  options: { readonly allowed: ReadonlySet<string>; readonly rawQueries: boolean },
): KyselyPlugin => ({
  transformQuery: ({ node }) => {
    const root = node as OperationNode
    if (root.kind === "RawNode" && !options.rawQueries) {
      throw new TableRefused(
        new PermissionDenied({
          plugin: grants.plugin,
          capability: "storage.tables",
          requested: "(raw SQL)",
          field: "permissions.storage.tables",
          hint: "whole raw-SQL queries cannot be checked against the declared tables; use the " +
            "query builder",
        }),
      )
    }
    const named: Named = { tables: new Set(), schemas: new Set(), ctes: new Set() }
    tablesOf(root, named)
    for (const schema of named.schemas) {
      throw new TableRefused(
        new PermissionDenied({
          plugin: grants.plugin,
          capability: "storage.tables",
          requested: `${schema}.*`,
          field: "permissions.storage.tables",
          hint: "a plugin's tables are in the host's schema; do not qualify table names",
        }),
      )
    }
    for (const table of named.tables) {
      if (options.allowed.has(table) || named.ctes.has(table)) continue
      const problem = checkTable(grants, table)
      if (problem !== undefined) throw new TableRefused(problem)
    }
    return node
  },
  transformResult: ({ result }) => Promise.resolve(result),
})

const refusal = (cause: unknown): PermissionDenied | undefined => {
  for (let c: unknown = cause, depth = 0; c !== undefined && depth < 5; depth++) {
    if (c instanceof TableRefused) return c.denied
    c = (c as { cause?: unknown } | null)?.cause
  }
  return undefined
}

const makeStorage = (grants: Grants) =>
  Effect.gen(function* () {
    const database = yield* Database
    const none = new Set<string>()
    const guarded = database.db.withPlugin(tableGuard(grants, { allowed: none, rawQueries: false }))
    const migrationTable = pluginMigrationTable(grants.plugin)
    const forMigrations = database.db.withPlugin(
      tableGuard(grants, {
        // The migrator's own bookkeeping, in the plugin's migration table.
        allowed: new Set([migrationTable, `${migrationTable}_lock`]),
        rawQueries: true, // PostgreSQL's migration lock is a raw query
      }),
    )
    const forGuests = database.db.withPlugin(
      tableGuard(grants, {
        allowed: new Set([migrationTable, `${migrationTable}_lock`]),
        rawQueries: false,
      }),
    )
    const refuseOr = <A>(effect: Effect.Effect<A, DatabaseError>) =>
      effect.pipe(
        Effect.catchAll((error): Effect.Effect<never, DatabaseError | PermissionDenied> => {
          const denied = refusal(error.cause)
          return denied !== undefined ? Effect.fail(denied) : Effect.fail(error)
        }),
      )
    const storage: PluginStorage = {
      tables: grants.permissions.storage.tables,
      execute: (node) =>
        refuseOr(
          Effect.tryPromise({
            try: async () => {
              const kind = (node as { kind?: unknown } | null)?.kind
              if (typeof kind !== "string" || !executableKinds.has(kind)) {
                throw new TypeError(
                  `expected a Kysely query's operation tree (query.compile().query), got ${
                    typeof kind === "string" ? kind : typeof node
                  }`,
                )
              }
              const executor = forGuests.getExecutor()
              const queryId = { queryId: crypto.randomUUID() }
              const root = executor.transformQuery(node as never, queryId)
              const result = await executor.executeQuery<Record<string, unknown>>(
                executor.compileQuery(root, queryId),
              )
              return {
                rows: result.rows,
                ...(result.numAffectedRows !== undefined
                  ? { numAffectedRows: Number(result.numAffectedRows) }
                  : {}),
              } satisfies ExecuteResult
            },
            catch: (cause) =>
              new DatabaseError({ operation: "plugin execute", cause, retryable: false }),
          }),
        ),
      query: (operation, run) =>
        refuseOr(
          Effect.tryPromise({
            try: () => run(guarded),
            catch: (cause) => new DatabaseError({ operation, cause, retryable: false }),
          }),
        ).pipe(Effect.withSpan("PluginStorage.query")),
      transaction: (operation, run) =>
        refuseOr(
          Effect.tryPromise({
            try: () => guarded.transaction().execute((trx) => run(trx)),
            catch: (cause) => new DatabaseError({ operation, cause, retryable: false }),
          }),
        ).pipe(Effect.withSpan("PluginStorage.transaction")),
      migrate: (migrations) =>
        migrate({ ...database, db: forMigrations }, { table: migrationTable, migrations }).pipe(
          Effect.catchTag("MigrationFailed", (
            error,
          ): Effect.Effect<never, MigrationFailed | PermissionDenied> => {
            const denied = refusal(error.cause)
            return denied !== undefined ? Effect.fail(denied) : Effect.fail(error)
          }),
          Effect.withSpan("PluginStorage.migrate"),
        ),
    }
    return storage
  })

// ---------------------------------------------------------------------------------------------

const makeLogger = (id: string): PluginLogger => {
  const at =
    (log: (message: string) => Effect.Effect<void>) =>
    (message: string, annotations: Record<string, unknown> = {}) =>
      log(message).pipe(Effect.annotateLogs({ ...annotations, plugin: id }))
  return {
    debug: at(Effect.logDebug),
    info: at(Effect.logInfo),
    warning: at(Effect.logWarning),
    error: at(Effect.logError),
  }
}

const makeSecrets = (grants: Grants, env: Readonly<Record<string, string | undefined>>) =>
  ({
    get: Effect.fn("PluginSecrets.get")(function* (name: string) {
      const problem = checkSecret(grants, name)
      if (problem !== undefined) return yield* problem
      const variable = secretEnvName(grants.plugin, name)
      const value = env[variable]
      if (value === undefined || value === "") {
        return yield* new SecretMissing({ plugin: grants.plugin, name, env: variable })
      }
      return Redacted.make(value)
    }),
  }) satisfies PluginSecrets

/** The host API for the plugin described by `manifest`. */
export const make = Effect.fn("HostApi.make")(function* (
  manifest: PluginManifest,
  options: HostApiOptions = {},
) {
  const grants: Grants = { plugin: manifest.id, permissions: manifest.permissions }
  return {
    version: HOST_API_VERSION,
    plugin: { id: manifest.id, version: manifest.version },
    bus: yield* makeBus(grants, options.streams ?? pipelineStreams),
    http: yield* makeHttp(grants),
    secrets: makeSecrets(grants, options.env ?? process.env),
    storage: yield* makeStorage(grants),
    log: makeLogger(manifest.id),
  } satisfies HostApi
})
