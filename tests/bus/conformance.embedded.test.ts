/**
 * The bus conformance suite against `EmbeddedBus`, on both databases it supports:
 * - SQLite: a real database file in a temporary directory (WAL, every commit synced before it is answered);
 * - PostgreSQL: the shared test server, in a fresh schema dropped when the test ends.
 *
 * Each test migrates fresh storage; opening the bus again opens a new database connection over
 * the same file or schema, as a restarted process would.
 */
import { join } from "node:path"
import { describe } from "@effect/vitest"
import { Effect } from "effect"
import { sql } from "kysely"
import { type DatabaseOptions, makeDatabase } from "../../core/storage/Database.ts"
import { coreMigrationSet, migrate } from "../../core/storage/Migrations.ts"
import { type BusBackend, openBus } from "../support/BusBackend.ts"
import { tempDir } from "../support/TempDir.ts"
import { uniqueNamespace } from "../support/TestNamespace.ts"
import { testPostgresUrl } from "../support/TestServices.ts"
import { busConformance, type BusSetup } from "./conformance.ts"

/** Migrate the storage once; every `open` then connects to it anew. */
const embeddedOn = (database: DatabaseOptions) =>
  Effect.gen(function* () {
    yield* Effect.scoped(
      Effect.flatMap(makeDatabase(database), (db) => migrate(db, coreMigrationSet)),
    )
    const backend: BusBackend = { kind: "embedded", namespace: uniqueNamespace(), database }
    return { backend, open: openBus(backend) }
  })

const onSqlite: BusSetup = Effect.gen(function* () {
  const dir = yield* tempDir("chorus-bus-conformance-")
  return yield* embeddedOn({ sqliteFile: join(dir, "chorus.sqlite") })
})

const onPostgres: BusSetup = Effect.gen(function* () {
  const schema = uniqueNamespace("conformance_")
  const database: DatabaseOptions = { url: testPostgresUrl, schema, sqliteFile: "", poolSize: 4 }
  // Registered first, so it runs last: after every bus and connection of the test has closed.
  yield* Effect.addFinalizer(() =>
    Effect.scoped(
      Effect.flatMap(
        makeDatabase({ ...database, poolSize: 1 }),
        (db) =>
          db.query("drop schema", (k) => sql`drop schema ${sql.id(schema)} cascade`.execute(k)),
      ),
    ).pipe(Effect.catchAll((e) => Effect.logWarning(`could not drop schema ${schema}`, e)))
  )
  return yield* embeddedOn(database)
})

describe("EmbeddedBus conformance on SQLite", () => {
  busConformance(onSqlite)
})

describe("EmbeddedBus conformance on PostgreSQL", () => {
  busConformance(onPostgres)
})
