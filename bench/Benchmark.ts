/**
 * The bench's vocabulary: a benchmark section is a named group of measurements that runs in its
 * own scope; a measurement is a count of operations over wall-clock seconds, optionally compared
 * with named raw limits measured in the same run (`jetstream.raw.publish`, `sqlite.raw.insert.batched`).
 *
 * Sections register in `sections/mod.ts`; later issues add theirs (HTTP ingest, …) there.
 */
import type { Duration, Effect, Scope } from "effect"

export interface BenchContext {
  /** NATS server for the JetStream sections (loopback). */
  readonly natsUrl: string
  /** A scratch directory removed after the run (SQLite files live here). */
  readonly workDir: string
  /** Prefix for every stream, consumer and namespace this run creates. */
  readonly runId: string
  /** The message body every messaging benchmark sends. */
  readonly payload: Uint8Array
  /** Operations kept in flight at once by publishers (raw and bus alike). */
  readonly window: number
  /** Most operations one measurement performs. */
  readonly count: number
  /** Longest one measurement runs; it reports what it finished by then. */
  readonly budget: Duration.Duration
}

export interface Measurement {
  /** Unique in the run, dotted: `<system>.<raw|bus>.<operation>`. */
  readonly name: string
  /** What was measured, for the table. */
  readonly label: string
  readonly ops: number
  readonly seconds: number
  /** Names of raw measurements this one is compared with (ratio = rate / their rate). */
  readonly limits?: ReadonlyArray<string>
}

export interface BenchSection {
  /** Short id, selectable on the command line: `npm run bench -- jetstream-raw`. */
  readonly name: string
  readonly title: string
  readonly run: (
    context: BenchContext,
  ) => Effect.Effect<ReadonlyArray<Measurement>, unknown, Scope.Scope>
}

export const rate = (m: Pick<Measurement, "ops" | "seconds">): number =>
  m.seconds > 0 ? m.ops / m.seconds : 0
