/**
 * Runs benchmark sections one after another, each in its own scope, and prints the report.
 * A failing section is reported and the run goes on; a section whose resources will not close
 * in time is left behind (the process exits at the end regardless).
 */
import { cpus } from "node:os"
import { randomBytes } from "node:crypto"
import { Cause, Duration, Effect, Exit, Fiber, Scope } from "effect"
import { tempDir } from "../tests/support/TempDir.ts"
import type { BenchContext, BenchSection, Measurement } from "./Benchmark.ts"
import { jsonLine, type SectionResult, table } from "./Report.ts"

export interface BenchOptions {
  /** Section names to run; empty: all of them. */
  readonly only: ReadonlyArray<string>
  readonly natsUrl: string
  readonly count: number
  readonly window: number
  readonly budget: Duration.DurationInput
  readonly payloadBytes: number
}

export const defaultOptions: BenchOptions = {
  only: [],
  natsUrl: process.env["CHORUS_NATS_URL"] ?? "nats://127.0.0.1:4222",
  count: Number(process.env["CHORUS_BENCH_COUNT"] ?? 20_000),
  window: 256,
  budget: Duration.seconds(Number(process.env["CHORUS_BENCH_SECONDS"] ?? 5)),
  payloadBytes: 256,
}

const describe = (e: unknown): string =>
  e instanceof Error
    ? e.message
    : typeof e === "object" && e !== null && "_tag" in e
    ? `${String(e._tag)}: ${String((e as { message?: unknown }).message ?? "")}`
    : String(e)

const CLOSE_TIMEOUT = Duration.seconds(15)

const runSection = (section: BenchSection, ctx: BenchContext) =>
  Effect.gen(function* () {
    yield* Effect.logInfo(`running ${section.name}`)
    const scope = yield* Scope.make()
    const exit = yield* section.run(ctx).pipe(Scope.extend(scope), Effect.exit)
    // Closing runs in its own fiber so one that hangs cannot hold up the other sections.
    const closing = yield* Effect.forkDaemon(Scope.close(scope, exit))
    const closed = yield* Fiber.join(closing).pipe(Effect.timeout(CLOSE_TIMEOUT), Effect.option)
    const late = closed._tag === "None"
      ? `resources did not close within ${Duration.format(CLOSE_TIMEOUT)}`
      : undefined
    const measurements: ReadonlyArray<Measurement> = Exit.isSuccess(exit) ? exit.value : []
    const failure = Exit.isFailure(exit) ? describe(Cause.squash(exit.cause)) : undefined
    const error = [failure, late].filter((x) => x !== undefined).join("; ")
    const result: SectionResult = {
      section: section.name,
      title: section.title,
      measurements,
      ...(error ? { error } : {}),
    }
    return result
  })

export const runBench = (sections: ReadonlyArray<BenchSection>, options: BenchOptions) =>
  Effect.scoped(
    Effect.gen(function* () {
      const chosen = options.only.length === 0
        ? sections
        : sections.filter((s) => options.only.includes(s.name))
      const ctx: BenchContext = {
        natsUrl: options.natsUrl,
        workDir: yield* tempDir("chorus-bench-"),
        runId: `bench${randomBytes(3).toString("hex")}`,
        payload: new Uint8Array(randomBytes(options.payloadBytes)),
        window: options.window,
        count: options.count,
        budget: Duration.decode(options.budget),
      }
      const started = Date.now()
      const results: Array<SectionResult> = []
      for (const section of chosen) results.push(yield* runSection(section, ctx))
      const environment = {
        at: new Date(started).toISOString(),
        node: process.version,
        cpus: cpus().length,
        payloadBytes: options.payloadBytes,
        window: options.window,
        count: options.count,
        budgetSeconds: Duration.toSeconds(ctx.budget),
        wallSeconds: Number(((Date.now() - started) / 1_000).toFixed(1)),
      }
      yield* Effect.sync(() => {
        process.stdout.write(
          `\nChorus bench: ${chosen.length} sections, ${options.payloadBytes} B messages, ` +
            `${options.window} in flight, ≤${options.count.toLocaleString("en-US")} ops or ` +
            `${Duration.format(ctx.budget)} per measurement, loopback\n\n`,
        )
        process.stdout.write(`${table(results)}\n\n`)
        process.stdout.write(`${jsonLine(results, environment)}\n`)
      })
      return results
    }),
  )
