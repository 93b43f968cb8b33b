/**
 * Schema migrations with Kysely's Migrator. The core has its own migration table
 * (`chorus_migrations`); each plugin gets `chorus_plugin_<id>_migrations`, so plugins migrate
 * independently and can never run each other's steps. Migrations run at start and by
 * `chorus migrate`; Kysely's lock table keeps two nodes from migrating at once.
 */
import { Data, Effect } from "effect"
import { type Kysely, type Migration, Migrator, sql } from "kysely"
import type { DatabaseShape } from "./Database.ts"
import { coreMigrations } from "./migrations/mod.ts"

export interface MigrationSet {
  /** Migration table name; its lock table is `<table>_lock`. */
  readonly table: string
  /** Migrations by name; names sort in the order they run (date-prefixed). */
  readonly migrations: Readonly<Record<string, Migration>>
}

export interface MigrationReport {
  readonly table: string
  readonly applied: ReadonlyArray<string>
}

export class MigrationFailed extends Data.TaggedError("MigrationFailed")<{
  readonly table: string
  readonly migration: string | undefined
  readonly cause: unknown
}> {
  override get message() {
    const detail = this.cause instanceof Error ? this.cause.message : String(this.cause)
    return `migration ${this.migration ?? "(setup)"} in ${this.table} failed: ${detail}`
  }
}

export const coreMigrationSet: MigrationSet = {
  table: "chorus_migrations",
  migrations: coreMigrations,
}

export const pluginMigrationTable = (pluginId: string): string =>
  `chorus_plugin_${pluginId.replace(/[^A-Za-z0-9]/g, "_").toLowerCase()}_migrations`

/**
 * Run `f` on one PostgreSQL connection without the pool's statement limits (Database.ts): a
 * migration may rebuild a large table, and a node waits on Kysely's migration lock for as long
 * as another node migrates. The connection gets its defaults back before it returns to the pool.
 */
const withoutTimeouts = async <A>(
  connection: Kysely<any>,
  f: (connection: Kysely<any>) => Promise<A>,
): Promise<A> => {
  await sql`set statement_timeout = 0`.execute(connection)
  await sql`set idle_in_transaction_session_timeout = 0`.execute(connection)
  try {
    return await f(connection)
  } finally {
    await sql`reset statement_timeout`.execute(connection)
    await sql`reset idle_in_transaction_session_timeout`.execute(connection)
  }
}

export const migrate = Effect.fn("Migrations.migrate")(function* (
  database: DatabaseShape,
  set: MigrationSet,
) {
  const migrateOn = (db: Kysely<any>) =>
    new Migrator({
      db,
      provider: { getMigrations: () => Promise.resolve({ ...set.migrations }) },
      migrationTableName: set.table,
      migrationLockTableName: `${set.table}_lock`,
      ...(database.schema !== undefined ? { migrationTableSchema: database.schema } : {}),
    }).migrateToLatest()
  const result = yield* Effect.tryPromise({
    try: () =>
      database.dialect === "postgres"
        ? database.db.connection().execute((connection) => withoutTimeouts(connection, migrateOn))
        : migrateOn(database.db),
    catch: (cause) => new MigrationFailed({ table: set.table, migration: undefined, cause }),
  })
  const failed = result.results?.find((r) => r.status === "Error")
  if (result.error !== undefined || failed !== undefined) {
    return yield* new MigrationFailed({
      table: set.table,
      migration: failed?.migrationName,
      cause: result.error,
    })
  }
  const applied = (result.results ?? []).filter((r) => r.status === "Success").map((r) =>
    r.migrationName
  )
  if (applied.length > 0) {
    yield* Effect.logInfo("migrations applied").pipe(
      Effect.annotateLogs({ table: set.table, applied }),
    )
  }
  return { table: set.table, applied } satisfies MigrationReport
})
