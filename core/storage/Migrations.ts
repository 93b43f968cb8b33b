/**
 * Schema migrations with Kysely's Migrator. The core has its own migration table
 * (`chorus_migrations`); each plugin gets `chorus_plugin_<id>_migrations`, so plugins migrate
 * independently and can never run each other's steps. Migrations run at start and by
 * `chorus migrate`; Kysely's lock table keeps two nodes from migrating at once.
 */
import { Data, Effect } from "effect"
import { type Migration, Migrator } from "kysely"
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

export const migrate = Effect.fn("Migrations.migrate")(function* (
  database: DatabaseShape,
  set: MigrationSet,
) {
  const migrator = new Migrator({
    db: database.db,
    provider: { getMigrations: () => Promise.resolve({ ...set.migrations }) },
    migrationTableName: set.table,
    migrationLockTableName: `${set.table}_lock`,
    ...(database.schema !== undefined ? { migrationTableSchema: database.schema } : {}),
  })
  const result = yield* Effect.promise(() => migrator.migrateToLatest())
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
