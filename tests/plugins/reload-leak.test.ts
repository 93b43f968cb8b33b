/**
 * Reloads do not leak (issue #4): 300 reloads of a worker-mode plugin that imports a sizeable
 * module (a 20,000-entry table, about 1.5 MB of source) and holds some state (about 200 KB per
 * version), each followed by a message it handles, leave the host's heap and the process's
 * resident memory where they were after a warm-up of 20 reloads.
 *
 * The measurement runs in a child process (`node --expose-gc --import tsx`,
 * `tests/support/ReloadLeak.main.ts`) so that it collects garbage before each measure and shares
 * its heap with no test runner.
 *
 * Bounds, over 300 reloads:
 * - host heap (`heapUsed`, after GC) grows by less than 10 MB. Measured: +1.2 to +1.9 MB, the
 *   host's own bookkeeping settling. A leak of one version's module graph per reload would be
 *   300 × ≥ 1.5 MB; keeping one version's consumer, route and RPC closures would show as well.
 * - process RSS grows by less than 60 MB. Measured: −28 to −29 MB (RSS moves as V8 and malloc
 *   keep or return pages; a worker's isolate goes with its thread). A worker heap never freed
 *   would add ≥ 5 MB per reload, over 1.5 GB in all.
 * Time: 300 reloads took 63 s on the 2-core machine under a load average of 7 (other work
 * running), about 0.2 s a reload, most of it a worker thread starting and compiling the module.
 *
 * For the record, the same 300 reloads in-process (not asserted; run with `CHORUS_SOAK=1`):
 * heap +4.6 to +4.8 MB, RSS +3.6 to +6 MB, 3 to 5 s. Node keeps every imported version of the
 * entry module (about 16 KB each here: the big module is imported under the same URL and
 * shared, and the plugin drops its state in `deactivate`; state a plugin keeps would stay with
 * every version).
 */
import { spawn } from "node:child_process"
import { fileURLToPath } from "node:url"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import type { LeakReport } from "../support/ReloadLeak.main.ts"

const MB = 1024 * 1024
const RELOADS = 300
const WARMUP = 20
const HEAP_BOUND_MB = 10
const RSS_BOUND_MB = 60

const script = fileURLToPath(new URL("../support/ReloadLeak.main.ts", import.meta.url))

/** Run the measurement in a child process and parse its one JSON line. */
const measure = (mode: "worker" | "inprocess") =>
  Effect.async<LeakReport, Error>((resume) => {
    const child = spawn(
      process.execPath,
      ["--expose-gc", "--import", "tsx", script, mode, String(RELOADS), String(WARMUP)],
      { stdio: ["ignore", "pipe", "pipe"] },
    )
    let out = ""
    let err = ""
    child.stdout.on("data", (chunk) => (out += String(chunk)))
    child.stderr.on("data", (chunk) => (err = (err + String(chunk)).slice(-4000)))
    child.on("exit", (code) => {
      const line = out.split("\n").find((l) => l.startsWith("{"))
      if (code !== 0 || line === undefined) {
        resume(Effect.fail(new Error(`leak measurement exited with ${code}: ${err}${out}`)))
      } else resume(Effect.succeed(JSON.parse(line) as LeakReport))
    })
    return Effect.sync(() => child.kill("SIGKILL"))
  })

const growth = (report: LeakReport) => ({
  heapMb: (report.after.heapUsed - report.before.heapUsed) / MB,
  externalMb: (report.after.external - report.before.external) / MB,
  rssMb: (report.after.rss - report.before.rss) / MB,
  msPerReload: report.reloadMs / report.reloads,
})

describe("reload leak", () => {
  it.live(
    `${RELOADS} worker reloads grow the host heap < ${HEAP_BOUND_MB} MB and RSS < ${RSS_BOUND_MB} MB`,
    () =>
      Effect.gen(function* () {
        const report = yield* measure("worker")
        const g = growth(report)
        yield* Effect.logInfo("reload leak, worker").pipe(Effect.annotateLogs({ ...report, ...g }))
        assert.isTrue(report.gc, "the child runs with --expose-gc")
        assert.strictEqual(report.generation, RELOADS + WARMUP + 1)
        assert.strictEqual(report.handled, RELOADS + WARMUP)
        assert.isBelow(g.heapMb, HEAP_BOUND_MB, JSON.stringify(g))
        assert.isBelow(g.rssMb, RSS_BOUND_MB, JSON.stringify(g))
      }),
    120_000,
  )

  // Only measured (CHORUS_SOAK=1): in-process reloads keep every module version by design.
  it.live.skipIf(process.env["CHORUS_SOAK"] !== "1")(
    `${RELOADS} in-process reloads, measured for the record`,
    () =>
      Effect.gen(function* () {
        const report = yield* measure("inprocess")
        yield* Effect.logInfo("reload leak, in-process").pipe(
          Effect.annotateLogs({ ...report, ...growth(report) }),
        )
        assert.strictEqual(report.handled, RELOADS + WARMUP)
      }),
    120_000,
  )
})
