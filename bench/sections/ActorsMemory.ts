/**
 * Heap per resident conversation actor: 10,000 conversations in a SQLite store, the real
 * `ConversationActors` layer, each actor asked once (one message appended) and left resident.
 * Runs in a child process with `--expose-gc` (see `bench/ActorsMemoryChild.ts`) so the heap is
 * measured after full collections and no other section's garbage is counted.
 */
import { execFile } from "node:child_process"
import { mkdtempSync } from "node:fs"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { Effect } from "effect"
import type { BenchSection } from "../Benchmark.ts"
import { verdict } from "../Server.ts"

const ACTORS = 10_000
const TARGET_BYTES = 10 * 1024

interface ChildResult {
  readonly actors: number
  readonly resident: number
  readonly heapBefore: number
  readonly heapAfter: number
  readonly bytesPerActor: number
}

export const actorsMemory: BenchSection = {
  name: "actors-memory",
  title: "Resident conversation actors (heap, child process with --expose-gc)",
  run: (ctx) =>
    Effect.gen(function* () {
      const child = fileURLToPath(new URL("../ActorsMemoryChild.ts", import.meta.url))
      const dir = mkdtempSync(join(ctx.workDir, "actors-"))
      const started = performance.now()
      const stdout = yield* Effect.async<string, Error>((resume) => {
        const proc = execFile(
          process.execPath,
          ["--expose-gc", "--import", "tsx", child, dir, String(ACTORS)],
          { timeout: 120_000, maxBuffer: 16 * 2 ** 20 },
          (error, out, err) =>
            resume(
              error ? Effect.fail(new Error(`${error.message}\n${err}`)) : Effect.succeed(out),
            ),
        )
        return Effect.sync(() => proc.kill())
      })
      const seconds = (performance.now() - started) / 1_000
      const line = stdout.split("\n").find((l) => l.startsWith('{"actors"'))
      if (line === undefined) return yield* Effect.fail(new Error("no result from the child"))
      const r = JSON.parse(line) as ChildResult
      const ok = r.bytesPerActor <= TARGET_BYTES
      yield* Effect.sync(() =>
        process.stdout.write(
          `\nactors-memory: ${r.resident.toLocaleString("en-US")} resident, heap ` +
            `${(r.heapBefore / 2 ** 20).toFixed(1)} → ${(r.heapAfter / 2 ** 20).toFixed(1)} MiB, ` +
            `${r.bytesPerActor.toLocaleString("en-US")} B per actor; target ≤ 10 KB: ${
              verdict(ok)
            }\n`,
        )
      )
      return [{
        name: "actors.memory.resident",
        label: `${r.bytesPerActor.toLocaleString("en-US")} B heap per resident actor ` +
          `(≤ 10 KB ${verdict(ok)}); rate: whole child run`,
        ops: r.actors,
        seconds,
      }]
    }),
}
