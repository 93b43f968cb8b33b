/**
 * The reload leak measurement, run as its own process (`node --expose-gc --import tsx`) so that
 * it can collect garbage before measuring and its figures are not mixed with a test runner's:
 * a plugin host on a SQLite file and the embedded bus, one plugin that imports a sizeable module
 * and holds some state, `warmup` reloads, a measure, `reloads` reloads, a measure. A message is
 * published and handled after every reload, so each version takes the host-owned consumer.
 *
 * Usage: `ReloadLeak.main.ts <mode> <reloads> <warmup>`; prints one JSON line (`LeakReport`).
 */
import { Effect, Logger, LogLevel, Stream } from "effect"
import type { PluginMode } from "../../core/plugins/guest/Api.ts"
import { pluginsRoot, startHost, writePlugin } from "./PluginFixtures.ts"

export interface LeakReport {
  readonly mode: PluginMode
  readonly reloads: number
  readonly gc: boolean
  /** Bytes, after the warm-up and after the reloads. */
  readonly before: { readonly heapUsed: number; readonly external: number; readonly rss: number }
  readonly after: { readonly heapUsed: number; readonly external: number; readonly rss: number }
  /** Milliseconds of the measured reloads. */
  readonly reloadMs: number
  readonly generation: number
  readonly handled: number
}

const [mode = "worker", reloadsArg = "300", warmupArg = "20"] = process.argv.slice(2)
const reloads = Number(reloadsArg)
const warmup = Number(warmupArg)

/** A 20,000-entry table as module source (about 1.5 MB): what a bundled SDK weighs. */
const bigModule = () => {
  const rows: Array<string> = []
  for (let i = 0; i < 20_000; i++) {
    rows.push(
      `{ id: ${i}, name: "entry-${i}", tags: ["t${i % 7}", "u${i % 13}"], weight: ${i / 3} }`,
    )
  }
  return `export const table = [\n${rows.join(",\n")}\n]\n` +
    `export const lookup = (i) => table[i % table.length]\n`
}

const source = `
import { lookup, table } from "./big.mjs"

// State a plugin holds: about 200 KB per version.
const cache = new Map()

export default {
  async activate(chorus) {
    for (let i = 0; i < 2000; i++) cache.set(i, { row: lookup(i), note: "n".repeat(64) + i })
    await chorus.bus.ensureStream({ name: "plugin-heavy", subjects: ["plugins.heavy.>"] })
    await chorus.bus.consume(
      { stream: "plugin-heavy", name: "main", filter: "plugins.heavy.in" },
      async (message) => {
        await chorus.bus.publish(
          "plugins.heavy.done",
          { in: message.id, rows: table.length, cached: cache.size },
          { id: "done-" + message.id },
        )
      },
    )
    await chorus.routes.handle("GET", "/plugins/heavy/size", () => ({ body: { size: cache.size } }))
    chorus.metrics.counter("activations", "times activated").inc()
  },
  deactivate() {
    cache.clear()
  },
}
`

const gc = (globalThis as { gc?: () => void }).gc
const measure = () =>
  Effect.promise(async () => {
    for (let i = 0; i < 3; i++) {
      gc?.()
      await new Promise((r) => setTimeout(r, 50))
    }
    const m = process.memoryUsage()
    return { heapUsed: m.heapUsed, external: m.external, rss: m.rss }
  })

const program = Effect.gen(function* () {
  const root = yield* pluginsRoot()
  writePlugin(root, {
    id: "heavy",
    manifest: {
      contributes: { routes: [{ method: "GET", path: "/plugins/heavy/size" }] },
      permissions: { bus: { publish: ["plugins.heavy.>"], subscribe: ["plugins.heavy.>"] } },
    },
    source,
    extra: { "big.mjs": bigModule() },
  })
  const { host, bus } = yield* startHost(root, { mode: mode as PluginMode })
  let published = 0
  const cycle = Effect.gen(function* () {
    const status = yield* host.reload("heavy")
    if (status.state !== "active") {
      return yield* Effect.dieMessage(
        `reload left the plugin ${status.state}: ${JSON.stringify(status.lastError)}`,
      )
    }
    published++
    yield* bus.publish("plugins.heavy.in", new TextEncoder().encode("x"), {
      id: `in-${published}`,
    })
  })
  const done = bus.read("plugin-heavy", { fromSeq: 1, filter: "plugins.heavy.done" })
  const handledAll = (n: number) =>
    done.pipe(Stream.take(n), Stream.runDrain, Effect.timeout("60 seconds"))

  for (let i = 0; i < warmup; i++) yield* cycle
  yield* handledAll(published)
  const before = yield* measure()
  const started = Date.now()
  for (let i = 0; i < reloads; i++) yield* cycle
  yield* handledAll(published)
  const reloadMs = Date.now() - started
  const after = yield* measure()
  const status = yield* host.status("heavy")
  const report: LeakReport = {
    mode: mode as PluginMode,
    reloads,
    gc: gc !== undefined,
    before,
    after,
    reloadMs,
    generation: status.generation,
    handled: status.counters.delivered,
  }
  process.stdout.write(JSON.stringify(report) + "\n")
})

Effect.runPromise(
  program.pipe(Effect.scoped, Logger.withMinimumLogLevel(LogLevel.Warning)),
).then(
  () => process.exit(0),
  (error) => {
    console.error(error)
    process.exit(1)
  },
)
