/**
 * `EmbeddedBus` on a SQLite file through the Bus contract. Every publish and every ack is a
 * durable write, so its limits are SQLite's durable write rates measured in the same run.
 */
import { join } from "node:path"
import { Effect } from "effect"
import * as EmbeddedBus from "../../core/bus/EmbeddedBus.ts"
import { Database, makeDatabase } from "../../core/storage/Database.ts"
import { coreMigrationSet, migrate } from "../../core/storage/Migrations.ts"
import type { BenchSection } from "../Benchmark.ts"
import { busThroughput } from "./BusThroughput.ts"

const sqliteLimits = ["sqlite.raw.insert.batched", "sqlite.raw.insert.row-per-tx"]

export const embeddedBus: BenchSection = {
  name: "embedded-bus",
  title: "EmbeddedBus on SQLite (WAL, each commit synced)",
  run: (ctx) =>
    Effect.gen(function* () {
      const database = yield* makeDatabase({ sqliteFile: join(ctx.workDir, "embedded.sqlite") })
      yield* migrate(database, coreMigrationSet)
      const bus = yield* EmbeddedBus.make({ namespace: `${ctx.runId}e` }).pipe(
        Effect.provideService(Database, database),
      )
      return yield* busThroughput("embedded", bus, ctx, {
        publish: sqliteLimits,
        consume: sqliteLimits,
        publishConsume: sqliteLimits,
      })
    }),
}
