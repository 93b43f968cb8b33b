/**
 * Fresh databases for tests: a SQLite file in its own temp directory, or a PostgreSQL schema of
 * its own on the shared server (dropped when the scope closes), both with core migrations run.
 */
import * as NodeFs from "node:fs"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import { Effect, Layer, type Scope } from "effect"
import { sql } from "kysely"
import { Database, type DatabaseShape, makeDatabase } from "../../core/storage/Database.ts"
import { coreMigrationSet, migrate } from "../../core/storage/Migrations.ts"

export const POSTGRES_URL = process.env["CHORUS_TEST_POSTGRES_URL"] ??
  "postgres://postgres@127.0.0.1:5432/test"

export const uniqueName = (prefix: string) =>
  `${prefix}_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 8)}`

export const tempDir = (prefix = "chorus-test-") =>
  Effect.acquireRelease(
    Effect.sync(() => NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), prefix))),
    (dir) => Effect.sync(() => NodeFs.rmSync(dir, { recursive: true, force: true })),
  )

/** A SQLite database in a fresh temp dir (or at `file` when given, to reopen it). */
export const sqliteDatabase = (file?: string) =>
  Effect.gen(function* () {
    const path = file ?? NodePath.join(yield* tempDir(), "chorus.sqlite")
    const db = yield* makeDatabase({ sqliteFile: path })
    yield* migrate(db, coreMigrationSet)
    return db
  })

/** A fresh PostgreSQL schema name, dropped (with everything in it) when the scope closes. */
export const scratchSchema = (prefix = "t") =>
  Effect.gen(function* () {
    const schema = uniqueName(prefix)
    yield* Effect.addFinalizer(() =>
      Effect.scoped(
        makeDatabase({ url: POSTGRES_URL, schema: "public", sqliteFile: "" }).pipe(
          Effect.flatMap((admin) =>
            admin.query(
              "drop schema",
              (db) => sql.raw(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).execute(db),
            )
          ),
        ),
      ).pipe(Effect.ignore)
    )
    return schema
  })

/** A PostgreSQL schema of its own, migrated, dropped afterwards. */
export const postgresDatabase = (prefix = "t") =>
  Effect.gen(function* () {
    const schema = yield* scratchSchema(prefix)
    const db = yield* makeDatabase({ url: POSTGRES_URL, schema, sqliteFile: "" })
    yield* migrate(db, coreMigrationSet)
    return db
  })

export const databaseLayer = (make: Effect.Effect<DatabaseShape, unknown, Scope.Scope>) =>
  Layer.scoped(Database, make)

/**
 * The names of this database's own tables (its PostgreSQL schema, or the SQLite file), sorted.
 * Kysely's introspection reads every schema of the server, which both sees other tests' tables
 * and races them dropping their schemas ("relation does not exist").
 */
export const tableNames = (db: DatabaseShape) =>
  db.query(
    "table names",
    (k) =>
      (db.schema === undefined
        ? sql<{ name: string }>`select name from sqlite_master where type = 'table'`
        : sql<{ name: string }>`select table_name as name from information_schema.tables
          where table_schema = ${db.schema}`).execute(k),
  ).pipe(
    Effect.map((r) => r.rows.map((t) => t.name).sort()),
  )
