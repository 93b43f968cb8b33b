/**
 * The raw limits of NATS JetStream on this machine, measured with nats.js and nothing else:
 * `js.publish` with the bus's in-flight window and a message id (so the server does the same
 * de-duplication work as for the bus), pull `fetch` + `ack` of a backlog, and both at once.
 */
import {
  AckPolicy,
  DeliverPolicy,
  jetstream,
  type JetStreamClient,
  type JetStreamManager,
  jetstreamManager,
  StorageType,
} from "@nats-io/jetstream"
import { connect, type NatsConnection } from "@nats-io/transport-node"
import { Duration, Effect } from "effect"
import type { BenchContext, BenchSection, Measurement } from "../Benchmark.ts"
import { type Run, windowedAsync } from "../Load.ts"
import { deleteStreams } from "../../tests/support/NatsCleanup.ts"

/** The bus fetches at most this many per pull (ConsumerRunner / JetStreamBus). */
const FETCH_BATCH = 256

/** Pull `target` messages from a durable consumer, acknowledging each; stop at `deadline`. */
const drain = async (
  js: JetStreamClient,
  stream: string,
  durable: string,
  target: number,
  deadline: number,
): Promise<number> => {
  const consumer = await js.consumers.get(stream, durable)
  let done = 0
  while (done < target && performance.now() < deadline) {
    const batch = await consumer.fetch({
      max_messages: Math.min(FETCH_BATCH, target - done),
      expires: 1_000,
    })
    for await (const m of batch) {
      m.ack()
      done++
    }
  }
  return done
}

const addConsumer = (jsm: JetStreamManager, stream: string, durable: string, filter: string) =>
  jsm.consumers.add(stream, {
    durable_name: durable,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    filter_subject: filter,
    max_ack_pending: FETCH_BATCH,
    ack_wait: 30_000_000_000,
  })

const measure = async (nc: NatsConnection, ctx: BenchContext): Promise<Array<Measurement>> => {
  const jsm = await jetstreamManager(nc)
  const js = jetstream(nc)
  const stream = `${ctx.runId}_raw`
  const subject = (s: string) => `${ctx.runId}.raw.${s}`
  await jsm.streams.add({ name: stream, subjects: [subject(">")], storage: StorageType.File })
  const load = { count: ctx.count, window: ctx.window, budget: ctx.budget }
  const budgetMs = Duration.toMillis(ctx.budget)

  const published: Run = await windowedAsync(
    load,
    (i) => js.publish(subject("pub"), ctx.payload, { msgID: `pub-${i}` }),
  )

  await addConsumer(jsm, stream, "drain", subject("pub"))
  const drainStart = performance.now()
  const drained = await drain(js, stream, "drain", published.ops, drainStart + budgetMs)
  const drainSeconds = (performance.now() - drainStart) / 1_000

  await addConsumer(jsm, stream, "pipe", subject("pipe"))
  const pipeStart = performance.now()
  const [piped, consumed] = await Promise.all([
    windowedAsync(load, (i) => js.publish(subject("pipe"), ctx.payload, { msgID: `pipe-${i}` })),
    drain(js, stream, "pipe", ctx.count, pipeStart + budgetMs),
  ])
  const pipeSeconds = (performance.now() - pipeStart) / 1_000

  return [
    {
      name: "jetstream.raw.publish",
      label: `js.publish, ${ctx.window} in flight`,
      ...published,
    },
    {
      name: "jetstream.raw.consume",
      label: `fetch ${FETCH_BATCH} + ack, backlog`,
      ops: drained,
      seconds: drainSeconds,
    },
    {
      name: "jetstream.raw.publish-consume",
      label: "publish and fetch + ack at once",
      ops: Math.min(piped.ops, consumed),
      seconds: pipeSeconds,
    },
  ]
}

export const jetStreamRaw: BenchSection = {
  name: "jetstream-raw",
  title: "NATS JetStream, raw nats.js",
  run: (ctx) =>
    Effect.addFinalizer(() => deleteStreams(ctx.natsUrl, `${ctx.runId}_raw`)).pipe(
      Effect.zipRight(
        Effect.acquireRelease(
          Effect.tryPromise(() => connect({ servers: ctx.natsUrl })),
          (nc) => Effect.promise(() => nc.close()),
        ),
      ),
      Effect.flatMap((nc) => Effect.tryPromise(() => measure(nc, ctx))),
    ),
}
