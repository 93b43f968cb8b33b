/**
 * What the plugin host costs per message: a backlog on JetStream consumed through a plugin's
 * durable consumer (each delivery crosses to the plugin's handler and back before it is
 * acknowledged), in-process and in a worker thread, against `jetstream.bus.consume` (the same
 * backlog drained by a plain Bus consumer, measured in the same run by the jetstream-bus section).
 */
import * as NodeFs from "node:fs"
import { join } from "node:path"
import { FetchHttpClient } from "@effect/platform"
import { Duration, Effect } from "effect"
import { Bus } from "../../core/bus/Bus.ts"
import * as JetStreamBus from "../../core/bus/JetStreamBus.ts"
import { discover } from "../../core/plugins/Discovery.ts"
import type { PluginMode } from "../../core/plugins/guest/Api.ts"
import * as PluginHost from "../../core/plugins/PluginHost.ts"
import { Database, makeDatabase } from "../../core/storage/Database.ts"
import { coreMigrationSet, migrate } from "../../core/storage/Migrations.ts"
import { deleteStreams } from "../../tests/support/NatsCleanup.ts"
import type { BenchContext, BenchSection, Measurement } from "../Benchmark.ts"
import { windowed } from "../Load.ts"

const source = `export async function activate(chorus) {
  await chorus.bus.consume({ stream: "plugin-bench", name: "drain", filter: "plugins.bench.in", concurrency: 64 }, () => {})
}`

const measure = (ctx: BenchContext, mode: PluginMode) =>
  Effect.scoped(
    Effect.gen(function* () {
      const namespace = `${ctx.runId}p${mode[0]}`
      yield* Effect.addFinalizer(() => deleteStreams(ctx.natsUrl, `${namespace}_`))
      const database = yield* makeDatabase({
        sqliteFile: join(ctx.workDir, `plugins-${mode}.sqlite`),
      })
      yield* migrate(database, coreMigrationSet)
      const bus = yield* JetStreamBus.make({ servers: ctx.natsUrl, namespace })
      yield* bus.ensureStream({ name: "plugin-bench", subjects: ["plugins.bench.>"] })
      const published = yield* windowed(
        { count: ctx.count, window: ctx.window, budget: ctx.budget },
        (i) => bus.publish("plugins.bench.in", ctx.payload, { id: `in-${i}` }),
      )
      const root = join(ctx.workDir, `plugins-${mode}`)
      NodeFs.mkdirSync(join(root, "bench"), { recursive: true })
      NodeFs.writeFileSync(
        join(root, "bench", "chorus.plugin.json"),
        JSON.stringify({
          id: "bench",
          version: "1.0.0",
          engines: { chorus: "^1.0.0" },
          entry: "index.mjs",
          kind: "bot",
          permissions: { bus: { subscribe: ["plugins.bench.>"] } },
        }),
      )
      NodeFs.writeFileSync(join(root, "bench", "index.mjs"), source)
      const started = performance.now()
      const host = yield* PluginHost.make(yield* discover([root]), { mode }).pipe(
        Effect.provideService(Bus, bus),
        Effect.provideService(Database, database),
        Effect.provide(FetchHttpClient.layer),
      )
      // The host counts each delivery its plugin handled; poll it until the backlog is through.
      const deadline = performance.now() + 2 * Duration.toMillis(ctx.budget)
      let delivered = 0
      while (delivered < published.ops && performance.now() < deadline) {
        yield* Effect.sleep("10 millis")
        delivered = (yield* host.status("bench").pipe(Effect.orDie)).counters.delivered
      }
      return {
        name: `plugins.${mode}.consume`,
        label: `consume ${published.ops} through a ${mode} plugin (handler round trip, then ack)`,
        ops: Math.min(delivered, published.ops),
        seconds: (performance.now() - started) / 1_000,
        limits: ["jetstream.bus.consume"],
      } satisfies Measurement
    }),
  )

export const plugins: BenchSection = {
  name: "plugins",
  title: "Plugin host: a plugin's consumer over a JetStream backlog",
  run: (ctx) => Effect.all([measure(ctx, "inprocess"), measure(ctx, "worker")]),
}
