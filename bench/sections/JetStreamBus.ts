/** `JetStreamBus` through the Bus contract, against the raw JetStream limits of the same run. */
import { Effect } from "effect"
import * as JetStreamBus from "../../core/bus/JetStreamBus.ts"
import type { BenchSection } from "../Benchmark.ts"
import { busThroughput } from "./BusThroughput.ts"
import { deleteStreams } from "../../tests/support/NatsCleanup.ts"

export const jetStreamBus: BenchSection = {
  name: "jetstream-bus",
  title: "JetStreamBus (the Bus contract on NATS JetStream)",
  run: (ctx) =>
    Effect.gen(function* () {
      const namespace = `${ctx.runId}b`
      // Registered first, so it runs after the bus closed.
      yield* Effect.addFinalizer(() => deleteStreams(ctx.natsUrl, `${namespace}_`))
      const bus = yield* JetStreamBus.make({ servers: ctx.natsUrl, namespace })
      return yield* busThroughput("jetstream", bus, ctx, {
        publish: ["jetstream.raw.publish"],
        consume: ["jetstream.raw.consume"],
        publishConsume: ["jetstream.raw.publish-consume"],
      })
    }),
}
