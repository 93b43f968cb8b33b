/**
 * The `Database` service: one Kysely instance over SQLite (embedded default) or PostgreSQL.
 *
 * SQLite runs in WAL mode, and a write is answered only once it is on disk: a committed
 * transaction survives a power loss. SQLite itself runs with `synchronous=NORMAL` and the WAL is
 * synced off the event loop before the write's promise resolves (WalSync.node.ts); that costs one
 * fsync per commit, so writers that care about speed batch many rows per transaction (group
 * commit) instead of relaxing durability.
 *
 * Every query goes through `Database.query`, which wraps the Promise once and maps failures to
 * a tagged `DatabaseError` that says whether a retry can help.
 */
import { Context, Data, Effect, Layer, Runtime, type Scope } from "effect"
import { Kysely, PostgresDialect, sql, SqliteDialect } from "kysely"
import type { CoreTables } from "./tables.ts"
import { openSqlite, withStatementCache } from "./sqlite.node.ts"
import { DurableSqliteDialect, makeWalSync } from "./WalSync.node.ts"

export type Dialect = "sqlite" | "postgres"

export interface DatabaseOptions {
  /** `postgres://…` selects PostgreSQL; otherwise SQLite at `sqliteFile`. */
  readonly url?: string | undefined
  /** PostgreSQL schema to use (created if absent). Default `public`. */
  readonly schema?: string | undefined
  /** SQLite file; `:memory:` for a throwaway database. */
  readonly sqliteFile: string
  /** PostgreSQL pool size. Default 10. */
  readonly poolSize?: number | undefined
  /**
   * PostgreSQL's `statement_timeout` and `idle_in_transaction_session_timeout` for every pooled
   * connection, in seconds; 0 for none. Default 30. Migrations lift it (Migrations.ts).
   */
  readonly statementTimeoutSeconds?: number | undefined
}

export interface DatabaseShape {
  readonly dialect: Dialect
  /** Where the data lives, safe to log (no password). */
  readonly location: string
  /** PostgreSQL schema, or undefined on SQLite. */
  readonly schema: string | undefined
  readonly db: Kysely<CoreTables>
  /** Run a Kysely query; failures become `DatabaseError`. */
  readonly query: <A>(
    operation: string,
    run: (db: Kysely<CoreTables>) => Promise<A>,
  ) => Effect.Effect<A, DatabaseError>
  /** Run `run` in one transaction. */
  readonly transaction: <A>(
    operation: string,
    run: (trx: Kysely<CoreTables>) => Promise<A>,
  ) => Effect.Effect<A, DatabaseError>
  readonly ping: Effect.Effect<void, DatabaseError>
}

export class Database extends Context.Tag("chorus/core/Database")<Database, DatabaseShape>() {}

export class DatabaseError extends Data.TaggedError("DatabaseError")<{
  readonly operation: string
  readonly cause: unknown
  /** True for connection loss, lock timeouts and serialization failures. */
  readonly retryable: boolean
}> {
  override get message() {
    const detail = this.cause instanceof Error ? this.cause.message : String(this.cause)
    return `database ${this.operation} failed: ${detail}`
  }
}

const RETRYABLE_CODES = new Set([
  "SQLITE_BUSY",
  "SQLITE_BUSY_SNAPSHOT",
  "SQLITE_BUSY_RECOVERY",
  "SQLITE_LOCKED",
  "40001", // serialization_failure
  "40P01", // deadlock_detected
  "57P01", // admin_shutdown
  "08000",
  "08003",
  "08006", // connection exceptions
  "ECONNREFUSED",
  "ECONNRESET",
])

// node-postgres reports a dropped connection without a code.
const RETRYABLE_MESSAGES =
  /Connection terminated|connection timeout|timeout exceeded when trying to connect|Client has encountered a connection error/i

const isRetryable = (cause: unknown): boolean => {
  const code = (cause as { code?: unknown } | null)?.code
  if (typeof code === "string") return RETRYABLE_CODES.has(code)
  return cause instanceof Error && RETRYABLE_MESSAGES.test(cause.message)
}

/**
 * The write broke the unique index `index` on `table` (`columns`): another writer stored that key
 * first. PostgreSQL names the index (`23505` with `constraint`); SQLite names the columns.
 */
export const violatesUnique = (
  error: DatabaseError,
  index: { readonly name: string; readonly table: string; readonly columns: ReadonlyArray<string> },
): boolean => {
  const cause = error.cause as { code?: unknown; constraint?: unknown; message?: unknown } | null
  if (cause === null || typeof cause !== "object") return false
  if (cause.code === "23505") return cause.constraint === index.name
  return typeof cause.code === "string" && cause.code.startsWith("SQLITE_CONSTRAINT") &&
    typeof cause.message === "string" &&
    cause.message.includes(index.columns.map((c) => `${index.table}.${c}`).join(", "))
}

/** PostgreSQL cancelled the statement: it ran (or waited for a lock) past the statement limit. */
export const isStatementTimeout = (error: DatabaseError): boolean =>
  (error.cause as { code?: unknown } | null)?.code === "57014"

/** A driver's error as a `DatabaseError` of `operation` (retryable when the driver says so). */
export const toError = (operation: string) => (cause: unknown) =>
  new DatabaseError({ operation, cause, retryable: isRetryable(cause) })

export const redactUrl = (url: string): string => url.replace(/\/\/([^:/@]+):[^@]*@/, "//$1:***@")

/** An in-memory or temporary SQLite database: no file of its own to sync. */
const isTransient = (file: string) => {
  const name = file.trim()
  return name === "" || name === ":memory:" || name.startsWith("file:")
}

const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/

/**
 * Settings every pooled PostgreSQL connection starts with: the schema, and limits on a statement
 * (a lock wait included) and on a session idle inside a transaction. Without them one stuck
 * query — a lock held by another node, a plan gone bad — holds its pooled connection for good,
 * and a few of them stall every writer. They are the session's defaults, so `RESET` restores them
 * after Migrations.ts lifts them.
 */
const connectionOptions = (schema: string, timeoutSeconds: number) => {
  const ms = Math.max(0, Math.round(timeoutSeconds * 1_000))
  return `-c search_path=${schema} -c statement_timeout=${ms} ` +
    `-c idle_in_transaction_session_timeout=${ms}`
}

const makeKysely = (
  options: DatabaseOptions,
): Effect.Effect<
  { dialect: Dialect; db: Kysely<CoreTables>; location: string; schema: string | undefined },
  DatabaseError,
  Scope.Scope
> => {
  const url = options.url
  if (url && /^postgres(ql)?:\/\//.test(url)) {
    const schema = options.schema ?? "public"
    if (!SCHEMA_NAME.test(schema)) {
      return Effect.fail(
        new DatabaseError({
          operation: "connect",
          cause: new Error(`invalid schema name ${JSON.stringify(schema)}`),
          retryable: false,
        }),
      )
    }
    return Effect.acquireRelease(
      Effect.runtime<never>().pipe(Effect.flatMap((runtime) =>
        Effect.tryPromise({
          try: async () => {
            const pg = await import("pg")
            const Pool = pg.default?.Pool ?? pg.Pool
            const pool = new Pool({
              connectionString: url,
              max: options.poolSize ?? 10,
              options: connectionOptions(schema, options.statementTimeoutSeconds ?? 30),
            })
            // A pooled connection that breaks between queries (the server restarted or ended
            // the session, the network dropped) emits `error`; unheard, that would end the
            // process. It is logged here, whether the connection was idle or checked out; the
            // pool drops it (at once, or when it is released) and opens another when needed, and
            // a query that was to run on it fails with a retryable DatabaseError.
            const closed = (error: Error & { code?: string }) =>
              Runtime.runFork(runtime)(
                Effect.logWarning("PostgreSQL closed a pooled connection").pipe(
                  Effect.annotateLogs({ error: error.message, code: error.code ?? "" }),
                ),
              )
            pool.on("connect", (client) => client.on("error", closed))
            // The same error again, for an idle connection: already logged above.
            pool.on("error", () => undefined)
            const client = await pool.connect()
            try {
              await client.query(`CREATE SCHEMA IF NOT EXISTS "${schema}"`)
            } finally {
              client.release()
            }
            return new Kysely<CoreTables>({ dialect: new PostgresDialect({ pool }) })
          },
          catch: toError("connect"),
        })
      )),
      (db) => Effect.promise(() => db.destroy()),
    ).pipe(
      Effect.map((db) => ({ dialect: "postgres" as const, db, location: redactUrl(url), schema })),
    )
  }
  return Effect.acquireRelease(
    Effect.try({
      try: () => {
        const sqlite = openSqlite(options.sqliteFile)
        sqlite.pragma("busy_timeout = 5000")
        sqlite.pragma("foreign_keys = ON")
        const walMode = sqlite.pragma("journal_mode = WAL", { simple: true }) === "wal"
        if (!walMode || isTransient(options.sqliteFile)) {
          // In memory: nothing to make durable.
          sqlite.pragma("synchronous = FULL")
          return new Kysely<CoreTables>({
            dialect: new SqliteDialect({ database: withStatementCache(sqlite) }),
          })
        }
        // Durable as with FULL, the fsync off the event loop: see WalSync.node.ts.
        sqlite.pragma("synchronous = NORMAL")
        const wal = makeWalSync(options.sqliteFile)
        const database = withStatementCache(sqlite, { onWrite: wal.wrote })
        return new Kysely<CoreTables>({
          dialect: new DurableSqliteDialect(
            {
              database: {
                prepare: database.prepare,
                close: () => {
                  wal.close()
                  database.close()
                },
              },
            },
            wal,
            () => sqlite.inTransaction,
          ),
        })
      },
      catch: toError("open"),
    }),
    (db) => Effect.promise(() => db.destroy()),
  ).pipe(
    Effect.map((db) => ({
      dialect: "sqlite" as const,
      db,
      location: options.sqliteFile,
      schema: undefined,
    })),
  )
}

export const makeDatabase = (
  options: DatabaseOptions,
): Effect.Effect<DatabaseShape, DatabaseError, Scope.Scope> =>
  Effect.gen(function* () {
    const { dialect, db, location, schema } = yield* makeKysely(options)
    // No span per query or transaction: they run thousands of times a second on the message
    // path (a group commit is a transaction per event-loop turn), and a span costs a stack
    // capture and a dozen Effect operations each; `DatabaseError` names the operation instead.
    const query = <A>(operation: string, run: (db: Kysely<CoreTables>) => Promise<A>) =>
      Effect.tryPromise({ try: () => run(db), catch: toError(operation) })
    const transaction = <A>(operation: string, run: (trx: Kysely<CoreTables>) => Promise<A>) =>
      Effect.tryPromise({
        try: () => db.transaction().execute((trx) => run(trx)),
        catch: toError(operation),
      })
    const ping = query("ping", (db) => sql`select 1`.execute(db)).pipe(Effect.asVoid)
    return { dialect, location, schema, db, query, transaction, ping } satisfies DatabaseShape
  })

export const layer = (options: DatabaseOptions): Layer.Layer<Database, DatabaseError> =>
  Layer.scoped(Database, makeDatabase(options))
