/** `npm run bench [-- <section> …]`: run the benchmark sections and print the report. */
import { NodeRuntime } from "@effect/platform-node"
import { Effect } from "effect"
import { defaultOptions, runBench } from "./Runner.ts"
import { sections } from "./sections/mod.ts"

NodeRuntime.runMain(
  runBench(sections, { ...defaultOptions, only: process.argv.slice(2) }).pipe(Effect.asVoid),
  // Exit even if a section left something open (see Runner.ts).
  { teardown: (exit) => process.exit(exit._tag === "Success" ? 0 : 1) },
)
