/**
 * Child process of `HoldingConsumer.ts`: opens the bus described on the command line, consumes,
 * prints the first message it gets as a JSON line and holds it (never acknowledges) until killed.
 */
import { Effect } from "effect"
import { openBus } from "./BusBackend.ts"
import type { HoldingConsumerRequest } from "./HoldingConsumer.ts"

const request = JSON.parse(process.argv[2] ?? "{}") as HoldingConsumerRequest

const program = Effect.gen(function* () {
  const bus = yield* openBus(request.backend)
  yield* bus.consume(
    {
      stream: request.stream,
      name: request.consumer,
      ackWait: `${request.ackWaitMillis} millis`,
      concurrency: 1,
      maxAckPending: 1,
      handlerTimeout: "1 hour",
    },
    (m) =>
      Effect.sync(() => {
        process.stdout.write(
          `${JSON.stringify({ id: m.id, seq: m.seq, deliveryCount: m.deliveryCount })}\n`,
        )
      }).pipe(Effect.zipRight(Effect.never)),
  )
  return yield* Effect.never
})

Effect.runPromise(Effect.scoped(program)).catch((e) => {
  process.stderr.write(`holding consumer failed: ${String(e)}\n`)
  process.exit(1)
})
