/**
 * The three measurements every bus backend gets, through the `Bus` contract only:
 * - publish: `bus.publish` with the run's in-flight window;
 * - consume: a new durable consumer (default options) working off that backlog;
 * - publish-consume: a running consumer while the same load is published, until all arrived.
 */
import { Duration, Effect, Exit, Scope } from "effect"
import type { BusShape } from "../../core/bus/Bus.ts"
import type { BenchContext, Measurement } from "../Benchmark.ts"
import { until, windowed } from "../Load.ts"

export interface BusLimits {
  readonly publish: ReadonlyArray<string>
  readonly consume: ReadonlyArray<string>
  readonly publishConsume: ReadonlyArray<string>
}

/** Run `consume` until `target` messages were handled or the budget is spent; then stop it. */
const consumeUntil = (
  bus: BusShape,
  name: string,
  filter: string,
  target: () => number,
  deadline: () => number,
  load?: Effect.Effect<unknown, unknown>,
) =>
  Effect.gen(function* () {
    let handled = 0
    const scope = yield* Scope.make()
    const started = performance.now()
    yield* bus.consume({ stream: "bench", name, filter }, () => Effect.sync(() => void handled++))
      .pipe(Scope.extend(scope))
    if (load) yield* load
    yield* until(() => handled, target(), deadline())
    const seconds = (performance.now() - started) / 1_000
    yield* Scope.close(scope, Exit.void)
    return { ops: Math.min(handled, target()), seconds }
  })

export const busThroughput = (
  system: string,
  bus: BusShape,
  ctx: BenchContext,
  limits: BusLimits,
): Effect.Effect<Array<Measurement>, unknown> =>
  Effect.gen(function* () {
    yield* bus.ensureStream({ name: "bench", subjects: ["bench.>"] })
    const load = { count: ctx.count, window: ctx.window, budget: ctx.budget }
    const budgetMs = Duration.toMillis(ctx.budget)

    const published = yield* windowed(load, (i) =>
      bus.publish("bench.pub", ctx.payload, { id: `pub-${i}` }))

    const drained = yield* consumeUntil(
      bus,
      "drain",
      "bench.pub",
      () =>
        published.ops,
      () => performance.now() + budgetMs,
    )

    let pipeTarget = ctx.count
    let pipeDeadline = Number.POSITIVE_INFINITY
    const piped = yield* consumeUntil(
      bus,
      "pipe",
      "bench.pipe",
      () => pipeTarget,
      () => pipeDeadline,
      Effect.gen(function* () {
        pipeDeadline = performance.now() + budgetMs * 1.5
        const sent = yield* windowed(load, (i) =>
          bus.publish("bench.pipe", ctx.payload, { id: `pipe-${i}` }))
        pipeTarget = sent.ops
      }),
    )

    return [
      {
        name: `${system}.bus.publish`,
        label: `bus.publish, ${ctx.window} in flight`,
        limits: limits.publish,
        ...published,
      },
      {
        name: `${system}.bus.consume`,
        label: "bus.consume (defaults), backlog",
        limits: limits.consume,
        ...drained,
      },
      {
        name: `${system}.bus.publish-consume`,
        label: "bus.publish and bus.consume at once",
        limits: limits.publishConsume,
        ...piped,
      },
    ]
  })
