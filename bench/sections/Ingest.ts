/**
 * End to end ingest through a real server in this process: `POST /api/v1/inbound` (202 once on
 * the bus) → inbound consumer → conversation actor → stored → `message.received` on
 * `GET /api/v1/events`. Latency is per message, from the start of its POST to its event arriving
 * on an SSE connection (matched by `externalId`). The load is open-loop: sends are started on a
 * fixed schedule over a pool of keep-alive connections, whether earlier ones have answered or not,
 * from 1,000 senders (so 1,000 conversations).
 *
 * First a fixed 1,000 msg/s for 10 s (the issue's latency target), then rising rates for 3 s each;
 * the highest sustained rate is the last step whose events all arrived within 1 s of the last send
 * and whose p99 stayed ≤ 250 ms. The load generator and the SSE client run in a child process
 * (bench/IngestLoad.ts), so the server's event loop is its own; they still share the machine's 2
 * cores with the server and nats-server, so the figures are a floor.
 */
import { spawn } from "node:child_process"
import { fileURLToPath } from "node:url"
import { Effect } from "effect"
import type { BenchContext, BenchSection, Measurement } from "../Benchmark.ts"
import { DRAIN_MS, type LoadPlan, type Step, SUSTAINED_P99_MS } from "../IngestLoad.ts"
import { ms, startServer, verdict } from "../Server.ts"

const FIXED_RATE = 1_000
const FIXED_SECONDS = 10
const STEPS = [2_000, 3_000, 4_000, 6_000, 8_000]

/** Run the load generator in a child process; its steps come back as JSON on stdout. */
const runLoad = (plan: LoadPlan) =>
  new Promise<Array<Step>>((resolve, reject) => {
    const child = spawn(process.execPath, [
      "--max-semi-space-size=64",
      "--import",
      // Absolute, like tests/support/ChorusProcess.ts: independent of the working directory.
      new URL("../../node_modules/tsx/dist/loader.mjs", import.meta.url).href,
      fileURLToPath(new URL("../IngestLoad.ts", import.meta.url)),
      JSON.stringify(plan),
    ], { stdio: ["ignore", "pipe", "inherit"] })
    let out = ""
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (out += chunk))
    child.on("error", reject)
    child.on("exit", (code) =>
      code === 0
        ? resolve(JSON.parse(out.trim().split("\n").pop() ?? "[]") as Array<Step>)
        : reject(new Error(`the load generator exited with ${code}`)))
  })

const describeStep = (s: Step) =>
  `${s.offered.toLocaleString("en-US")}/s offered: ${s.delivered}/${s.sent} delivered` +
  `${s.failed > 0 ? `, ${s.failed} refused` : ""}, p50 ${ms(s.p50)}, p99 ${ms(s.p99)} ` +
  `(202 p99 ${ms(s.accept99)})${s.sustained ? "" : " — not sustained"}`

const run = (ctx: BenchContext, bus: "jetstream" | "embedded") =>
  Effect.gen(function* () {
    const server = yield* startServer(ctx, bus, bus === "jetstream" ? "ij" : "ie")
    const steps = yield* Effect.tryPromise(() =>
      runLoad({
        url: server.url,
        token: server.token,
        tag: bus,
        rates: {
          fixed: FIXED_RATE,
          fixedSeconds: bus === "jetstream" ? FIXED_SECONDS : 3,
          steps: bus === "jetstream" ? STEPS : [],
        },
      })
    )
    const fixed = steps[0]!
    const best = steps.filter((s) => s.sustained).reduce<Step | undefined>(
      (a, s) => (a === undefined || s.offered > a.offered ? s : a),
      undefined,
    )
    const lines = [
      `ingest (${bus}), load generator and SSE client in a child process, on the same 2 cores:`,
      ...steps.map((s) => `  ${describeStep(s)}`),
      `  target p99 ≤ 50 ms at 1,000 msg/s: ${ms(fixed.p99)}, ${
        verdict(fixed.p99 <= 50 && fixed.sustained)
      }`,
      ...(bus === "jetstream"
        ? [
          `  highest sustained rate (events within ${DRAIN_MS} ms of the last send, p99 ≤ ` +
          `${SUSTAINED_P99_MS} ms): ${
            best ? `${best.offered.toLocaleString("en-US")} msg/s` : "none"
          }` +
          `; target ≥ 2,000 msg/s: ${verdict((best?.offered ?? 0) >= 2_000)}`,
        ]
        : []),
    ]
    yield* Effect.sync(() => process.stdout.write(`\n${lines.join("\n")}\n`))
    const limits = bus === "jetstream"
      ? ["jetstream.raw.publish"]
      : ["sqlite.raw.insert.row-per-tx"]
    const out: Array<Measurement> = [{
      name: `ingest.${bus}.fixed`,
      label: `HTTP→stored→SSE at ${FIXED_RATE.toLocaleString("en-US")}/s offered: p50 ` +
        `${ms(fixed.p50)}, p99 ${ms(fixed.p99)} (≤ 50 ms ${verdict(fixed.p99 <= 50)})`,
      ops: fixed.delivered,
      seconds: fixed.seconds,
      limits,
    }]
    if (bus === "jetstream") {
      out.push({
        name: `ingest.${bus}.sustained`,
        label: best
          ? `highest sustained step, p99 ${ms(best.p99)} (≥ 2,000/s ${
            verdict(best.offered >= 2_000)
          })`
          : "no step sustained (≥ 2,000/s NOT met)",
        ops: best?.delivered ?? 0,
        seconds: best?.seconds ?? 1,
        limits,
      })
    }
    return out
  })

export const ingest: BenchSection = {
  name: "ingest",
  title: "Ingest end to end: HTTP 202 → stored → SSE event (SQLite store)",
  run: (ctx) =>
    Effect.gen(function* () {
      const js = yield* Effect.scoped(run(ctx, "jetstream"))
      const embedded = yield* Effect.scoped(run(ctx, "embedded"))
      return [...js, ...embedded]
    }),
}
