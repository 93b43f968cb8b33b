/**
 * What only the JetStream backend does (the shared behaviour is in conformance.ts): how it lays
 * out streams and consumers on the server, the MAX_DELIVERIES advisory backstop, the rewind of
 * ordered consumers after a crash, and how server trouble surfaces as errors.
 *
 * Runs against the shared nats-server (`CHORUS_TEST_NATS_URL`); each test has its own namespace
 * and deletes its streams at the end. The kill test starts a private server.
 */
import { assert, describe, it } from "@effect/vitest"
import { AckPolicy, jetstream, type JetStreamManager, jetstreamManager } from "@nats-io/jetstream"
import { connect, type NatsConnection } from "@nats-io/transport-node"
import { Duration, Effect, Schedule, type Scope, Stream } from "effect"
import type { BusMessage, ConsumerSpec, StreamSpec } from "../../core/bus/Bus.ts"
import * as JetStreamBus from "../../core/bus/JetStreamBus.ts"
import * as NatsServer from "../support/NatsServer.ts"
import { freshNamespace as freshTestNamespace } from "../support/NatsCleanup.ts"
import { uniqueNamespace } from "../support/TestNamespace.ts"
import { testNatsUrl } from "../support/TestServices.ts"

const orders: StreamSpec = { name: "orders", subjects: ["orders.>"] }
const bytes = (text: string) => new TextEncoder().encode(text)
const text = (data: Uint8Array) => new TextDecoder().decode(data)

/** A plain nats.js connection, to look at (and tamper with) what the bus left on the server. */
const natsClient = (
  servers: string,
): Effect.Effect<{ nc: NatsConnection; jsm: JetStreamManager }, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.promise(async () => {
      const nc = await connect({ servers })
      return { nc, jsm: await jetstreamManager(nc) }
    }),
    ({ nc }) => Effect.promise(() => nc.close()),
  )

/** A fresh namespace whose streams (`${ns}_*`) are deleted when the test's scope closes. */
const freshNamespace = freshTestNamespace("jsb")

const openBus = (namespace: string, servers = testNatsUrl) =>
  JetStreamBus.make({ servers, namespace })

/** Poll `check` until it holds, failing the test after `within`. */
const eventually = <A>(
  label: string,
  check: Effect.Effect<A | undefined, unknown>,
  within: Duration.DurationInput = "10 seconds",
): Effect.Effect<A, unknown> =>
  check.pipe(
    Effect.flatMap((a) => (a === undefined ? Effect.fail("not yet" as const) : Effect.succeed(a))),
    Effect.retry(Schedule.spaced("100 millis")),
    Effect.timeoutFail({ duration: within, onTimeout: () => new Error(`timed out: ${label}`) }),
  )

/** Fail with `step` when `self` takes longer than `seconds`. */
const within = (step: string, seconds: number) => <A, E, R>(self: Effect.Effect<A, E, R>) =>
  Effect.timeoutFail(self, {
    duration: Duration.seconds(seconds),
    onTimeout: () => new Error(`${step} took over ${seconds} s`),
  })

const sleep = (ms: number) => Effect.promise(() => new Promise((r) => setTimeout(r, ms)))

describe("JetStreamBus", () => {
  it.scopedLive("creates streams and consumers idempotently and applies changed settings", () =>
    Effect.gen(function* () {
      const ns = yield* freshNamespace
      const { jsm } = yield* natsClient(testNatsUrl)
      const first = yield* openBus(ns)
      const second = yield* openBus(ns)
      assert.strictEqual(first.backend, "jetstream")

      yield* first.ensureStream(orders)
      yield* first.ensureStream(orders)
      yield* second.ensureStream(orders)
      let info = yield* Effect.promise(() => jsm.streams.info(`${ns}_orders`))
      assert.deepStrictEqual(info.config.subjects, [`${ns}.orders.>`])
      assert.strictEqual(info.config.max_age, 7 * 24 * 3600 * 1e9)
      assert.strictEqual(info.config.duplicate_window, 10 * 60 * 1e9)
      assert.strictEqual(info.config.storage, "file")

      yield* second.ensureStream({ ...orders, maxAge: "1 hour", duplicateWindow: "1 minute" })
      info = yield* Effect.promise(() => jsm.streams.info(`${ns}_orders`))
      assert.strictEqual(info.config.max_age, 3600 * 1e9)
      assert.strictEqual(info.config.duplicate_window, 60 * 1e9)

      const dlq = yield* Effect.promise(() => jsm.streams.info(`${ns}__dlq`))
      assert.deepStrictEqual(dlq.config.subjects, [`${ns}._dlq.>`])
      const advisories = yield* Effect.promise(() => jsm.streams.info(`${ns}__advisories`))
      assert.include(
        advisories.config.subjects,
        `$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.${ns}_orders.*`,
      )

      const spec: ConsumerSpec = {
        stream: "orders",
        name: "billing",
        filter: "orders.created",
        maxDeliver: 3,
        ackWait: "2 seconds",
        maxAckPending: 10,
      }
      yield* Effect.scoped(first.consume(spec, () => Effect.void))
      yield* Effect.scoped(second.consume(spec, () => Effect.void))
      let consumer = yield* Effect.promise(() => jsm.consumers.info(`${ns}_orders`, "billing"))
      assert.strictEqual(consumer.config.max_deliver, 4, "maxDeliver + 1 on the server")
      assert.strictEqual(consumer.config.ack_wait, 2e9)
      assert.strictEqual(consumer.config.max_ack_pending, 10)
      assert.strictEqual(consumer.config.filter_subject, `${ns}.orders.created`)
      assert.strictEqual(consumer.config.ack_policy, AckPolicy.Explicit)

      yield* Effect.scoped(first.consume({ ...spec, ackWait: "5 seconds" }, () => Effect.void))
      consumer = yield* Effect.promise(() => jsm.consumers.info(`${ns}_orders`, "billing"))
      assert.strictEqual(consumer.config.ack_wait, 5e9)
    }))

  it.scopedLive(
    "dead-letters from the MAX_DELIVERIES advisory a message whose holder died on its final delivery",
    () =>
      Effect.gen(function* () {
        const ns = yield* freshNamespace
        const { nc, jsm } = yield* natsClient(testNatsUrl)
        const spec: ConsumerSpec = {
          stream: "orders",
          name: "billing",
          maxDeliver: 1,
          ackWait: "1 second",
        }
        // A bus sets up the stream and the durable consumer, publishes, and goes away.
        yield* Effect.scoped(Effect.gen(function* () {
          const bus = yield* openBus(ns)
          yield* bus.ensureStream(orders)
          yield* Effect.scoped(bus.consume(spec, () => Effect.void))
          yield* bus.publish("orders.created", bytes("order 1"), {
            id: "o-1",
            key: "customer-7",
            headers: { "x-trace": "t-1" },
          })
        }))

        // With no bus connected, holders take the message and die without a word: first on the
        // last delivery the runner allows (1), then on the extra one the server allows (2).
        const consumer = yield* Effect.promise(() =>
          jetstream(nc).consumers.get(`${ns}_orders`, "billing")
        )
        for (const delivery of [1, 2]) {
          const m = yield* Effect.promise(() => consumer.next({ expires: 3_000 }))
          assert.strictEqual(m?.info.deliveryCount, delivery)
          yield* sleep(1_200)
        }
        // The server gives up on the next pull and says so in an advisory, stored for us.
        const none = yield* Effect.promise(() => consumer.next({ expires: 1_500 }))
        assert.isNull(none)
        const stored = yield* eventually(
          "advisory stored",
          Effect.promise(async () => {
            const si = await jsm.streams.info(`${ns}__advisories`)
            return si.state.messages > 0 ? si.state.messages : undefined
          }),
        )
        assert.strictEqual(stored, 1)

        // The next bus to start moves it into the dead letters.
        const bus = yield* openBus(ns)
        const [dead] = yield* eventually(
          "dead letter",
          bus.deadLetters.list({ consumer: "billing" }).pipe(
            Effect.map((list) => (list.length > 0 ? list : undefined)),
          ),
        )
        assert.isDefined(dead)
        if (!dead) return
        assert.strictEqual(dead.reason, "max deliveries exceeded")
        assert.strictEqual(dead.deliveries, 2)
        assert.strictEqual(dead.stream, "orders")
        assert.strictEqual(dead.consumer, "billing")
        assert.strictEqual(dead.subject, "orders.created")
        assert.strictEqual(dead.messageId, "o-1")
        assert.strictEqual(dead.seq, 1)
        assert.strictEqual(dead.key, "customer-7")
        assert.deepStrictEqual(dead.headers, { "x-trace": "t-1" })
        assert.strictEqual(text(dead.data), "order 1")
        assert.deepStrictEqual(yield* bus.deadLetters.get(dead.id), dead)

        // The advisory is consumed (work queue), and the message is delivered nowhere else.
        yield* eventually(
          "advisory consumed",
          Effect.promise(async () => {
            const si = await jsm.streams.info(`${ns}__advisories`)
            return si.state.messages === 0 ? true : undefined
          }),
        )
        // Replaying it goes to billing only, once.
        const seen: Array<BusMessage> = []
        yield* bus.consume({ ...spec, maxDeliver: 3 }, (m) => Effect.sync(() => void seen.push(m)))
        yield* bus.deadLetters.replay(dead.id)
        yield* eventually("replayed", Effect.sync(() => (seen.length > 0 ? true : undefined)))
        assert.strictEqual(seen[0]?.headers["Chorus-Replay-For"], "billing")
        assert.strictEqual(seen[0]?.headers["Chorus-Replay-Of"], "o-1")
        assert.strictEqual(seen[0]?.key, "customer-7")
        assert.deepStrictEqual(yield* bus.deadLetters.list(), [])
      }),
  )

  it.scopedLive(
    "an ordered consumer handles what a crashed incarnation held before newer messages of that key",
    () =>
      Effect.gen(function* () {
        const ns = yield* freshNamespace
        const { nc, jsm } = yield* natsClient(testNatsUrl)
        const spec: ConsumerSpec = {
          stream: "orders",
          name: "ledger",
          ordering: "key",
          ackWait: "30 seconds",
          concurrency: 4,
        }
        const bus = yield* openBus(ns)
        yield* bus.ensureStream(orders)
        yield* Effect.scoped(bus.consume(spec, () => Effect.void))
        for (const i of [1, 2]) {
          yield* bus.publish("orders.updated", bytes(`v${i}`), { id: `u-${i}`, key: "order-9" })
        }

        // The crashed incarnation: it had started (the bus marks a running consumer) and held
        // u-1 when it died, so u-1 would only come back after ack_wait (30 s).
        yield* Effect.promise(() =>
          jsm.consumers.update(`${ns}_orders`, "ledger", { description: "chorus: running" })
        )
        const held = yield* Effect.promise(async () => {
          const c = await jetstream(nc).consumers.get(`${ns}_orders`, "ledger")
          return c.next({ expires: 3_000 })
        })
        assert.strictEqual(held?.seq, 1)
        yield* bus.publish("orders.updated", bytes("v3"), { id: "u-3", key: "order-9" })

        const handled: Array<string> = []
        const started = Date.now()
        yield* bus.consume(spec, (m) => Effect.sync(() => void handled.push(m.id)))
        yield* eventually(
          "all handled",
          Effect.sync(() => (handled.length >= 3 ? true : undefined)),
        )
        assert.deepStrictEqual(handled, ["u-1", "u-2", "u-3"])
        assert.isBelow(Date.now() - started, 10_000, "well before ack_wait")
      }),
  )

  it.scopedLive("an ordered consumer that stopped cleanly resumes without handling anything twice", () =>
    Effect.gen(function* () {
      const ns = yield* freshNamespace
      const spec: ConsumerSpec = {
        stream: "orders",
        name: "ledger",
        ordering: "key",
        concurrency: 4,
      }
      const bus = yield* openBus(ns)
      yield* bus.ensureStream(orders)
      const total = 60
      for (let i = 0; i < total; i++) {
        yield* bus.publish("orders.updated", bytes(String(i)), { id: `u-${i}`, key: `k-${i % 6}` })
      }
      const handled = new Map<string, number>()
      const handler = (m: BusMessage) =>
        Effect.sync(() => handled.set(m.id, (handled.get(m.id) ?? 0) + 1)).pipe(
          Effect.zipRight(Effect.sleep("10 millis")),
        )
      yield* Effect.scoped(Effect.gen(function* () {
        yield* bus.consume(spec, handler)
        yield* eventually(
          "some handled",
          Effect.sync(() => (handled.size >= 15 ? true : undefined)),
        )
      }))
      assert.isBelow(handled.size, total, "stopped midway")
      const { jsm } = yield* natsClient(testNatsUrl)
      const ci0 = yield* Effect.promise(() => jsm.consumers.info(`${ns}_orders`, "ledger"))
      console.log(
        "after stop",
        handled.size,
        ci0.num_ack_pending,
        ci0.ack_floor,
        ci0.delivered,
        ci0.config.description,
        ci0.num_pending,
      )
      yield* bus.consume(spec, handler)
      yield* eventually(
        "all handled",
        Effect.sync(() => (handled.size === total ? true : undefined)),
      ).pipe(Effect.tapError(() =>
        Effect.promise(async () => {
          const ci = await jsm.consumers.info(`${ns}_orders`, "ledger")
          console.log(
            "stuck",
            handled.size,
            ci.num_ack_pending,
            ci.ack_floor,
            ci.delivered,
            ci.num_pending,
            ci.num_redelivered,
            ci.num_waiting,
            [...Array(60).keys()].filter((i) => !handled.has(`u-${i}`)),
          )
        })
      ))
      yield* sleep(500)
      const twice = [...handled].filter(([, n]) => n > 1).map(([id]) => id)
      assert.deepStrictEqual(twice, [])
    }))

  it.scopedLive("rejects a subject no stream stores, and finds streams another node created", () =>
    Effect.gen(function* () {
      const ns = yield* freshNamespace
      const bus = yield* openBus(ns)
      const unknown = yield* bus.publish("nowhere.at.all", bytes("x"), { id: "n-1" }).pipe(
        Effect.flip,
      )
      assert.strictEqual(unknown._tag, "BusRejected")
      const wildcard = yield* bus.publish("orders.*", bytes("x"), { id: "n-2" }).pipe(Effect.flip)
      assert.strictEqual(wildcard._tag, "BusRejected")
      const reserved = yield* bus.publish("orders.created", bytes("x"), {
        id: "n-3",
        headers: { "Chorus-Key": "sneaky" },
      }).pipe(Effect.flip)
      assert.strictEqual(reserved._tag, "BusRejected")
      const badName = yield* bus.ensureStream({ name: "no.dots", subjects: ["x"] }).pipe(
        Effect.flip,
      )
      assert.strictEqual(badName._tag, "BusRejected")

      // Another node ensured the stream; this one learns of it from the server.
      const other = yield* openBus(ns)
      yield* other.ensureStream(orders)
      const ack = yield* bus.publish("orders.created", bytes("x"), { id: "n-4" })
      assert.deepStrictEqual(ack, { stream: "orders", seq: 1, duplicate: false })
      const again = yield* bus.publish("orders.created", bytes("x"), { id: "n-4" })
      assert.deepStrictEqual(again, { stream: "orders", seq: 1, duplicate: true })

      const noStream = yield* bus.consume({ stream: "missing", name: "c" }, () => Effect.void).pipe(
        Effect.scoped,
        Effect.flip,
      )
      assert.strictEqual(noStream._tag, "BusRejected")
    }))

  it.scopedLive(
    "reports an unreachable or dead server as BusUnavailable and recovers",
    () =>
      Effect.gen(function* () {
        const refused = yield* JetStreamBus.make({
          servers: "nats://127.0.0.1:1",
          namespace: "nobody",
        }).pipe(Effect.scoped, Effect.flip)
        assert.strictEqual(refused._tag, "BusUnavailable")

        const server = yield* NatsServer.start()
        const bus = yield* openBus(uniqueNamespace("jsb"), server.url)
        yield* bus.ensureStream(orders)
        yield* bus.publish("orders.created", bytes("before"), { id: "b-1" })
        yield* bus.ping

        yield* server.kill9
        const publishing = yield* bus.publish("orders.created", bytes("during"), { id: "d-1" })
          .pipe(
            Effect.flip,
          )
        assert.strictEqual(publishing._tag, "BusUnavailable")
        const pinging = yield* bus.ping.pipe(Effect.flip)
        assert.strictEqual(pinging._tag, "BusUnavailable")
        // An SSE client without Last-Event-ID asks for it first: it must fail, not hang.
        const [took, asking] = yield* bus.lastSeq("orders").pipe(Effect.flip, Effect.timed)
        assert.strictEqual(asking._tag, "BusUnavailable")
        assert.isAtMost(Duration.toMillis(took), 10_000)

        yield* server.restart
        const ack = yield* bus.publish("orders.created", bytes("during"), { id: "d-1" }).pipe(
          Effect.retry({
            while: (e) => e._tag === "BusUnavailable",
            schedule: Schedule.spaced("200 millis"),
          }),
          Effect.timeout("20 seconds"),
        )
        assert.deepStrictEqual(ack, { stream: "orders", seq: 2, duplicate: false })
        yield* bus.ping
      }),
    { timeout: 60_000 },
  )
  it.scopedLive(
    "a publish in flight when the connection drops fails at once, it does not wait out its timeout",
    () =>
      Effect.gen(function* () {
        // Each step is bounded and named, so a slow machine fails with where it was stuck.
        const server = yield* NatsServer.start().pipe(within("start nats-server", 30))
        const bus = yield* openBus(uniqueNamespace("jsb"), server.url).pipe(within("connect", 15))
        yield* bus.ensureStream(orders).pipe(within("ensure the stream", 15))
        yield* bus.publish("orders.created", bytes("before"), { id: "before" }).pipe(
          within("the first publish", 15),
        )
        // The server hangs with 32 publishes in flight, then dies: their answers can never come,
        // so the callers must hear at once that the connection is gone (they retry with the same
        // id, and the duplicate window decides), not after the 5 s request timeout.
        yield* server.freeze
        const outcomes: Array<{ readonly tag: string; readonly at: number }> = []
        yield* Effect.forEach(
          Array.from({ length: 32 }, (_, i) => `m-${i}`),
          (id) =>
            bus.publish("orders.created", bytes(id), { id }).pipe(
              Effect.either,
              Effect.tap((r) =>
                Effect.sync(() =>
                  outcomes.push({ tag: r._tag === "Right" ? "ok" : r.left._tag, at: Date.now() })
                )
              ),
              Effect.forkScoped,
            ),
          { discard: true },
        )
        yield* sleep(300)
        assert.strictEqual(outcomes.length, 0, "a frozen server answers nothing")
        yield* server.kill9.pipe(within("kill -9 nats-server", 10))
        const killedAt = Date.now()
        yield* eventually(
          "every publish answered",
          Effect.sync(() => (outcomes.length === 32 ? true : undefined)),
        )
        assert.deepStrictEqual([...new Set(outcomes.map((o) => o.tag))], ["BusUnavailable"])
        const slowest = Math.max(...outcomes.map((o) => o.at - killedAt))
        assert.isBelow(slowest, 2_000, "the last publish failed this long after the kill")
      }),
    { timeout: 60_000 },
  )
  it.scopedLive(
    "a reader survives a nats-server restart without a gap or a repeat",
    () =>
      Effect.gen(function* () {
        const server = yield* NatsServer.start()
        const bus = yield* openBus(uniqueNamespace("jsb"), server.url)
        yield* bus.ensureStream(orders)
        const publish = (id: string) =>
          bus.publish("orders.created", bytes(id), { id }).pipe(
            Effect.retry({
              while: (e) => e._tag === "BusUnavailable",
              schedule: Schedule.spaced("200 millis"),
            }),
            Effect.timeout("30 seconds"),
          )
        for (let i = 0; i < 20; i++) yield* publish(`before-${i}`)
        const seen: Array<BusMessage> = []
        yield* bus.read("orders", { fromSeq: 1 }).pipe(
          Stream.runForEach((m) => Effect.sync(() => seen.push(m))),
          Effect.forkScoped,
        )
        yield* eventually("the first 20", Effect.sync(() => (seen.length >= 20 ? true : undefined)))

        yield* server.kill9
        yield* server.restart
        for (let i = 0; i < 20; i++) yield* publish(`after-${i}`)
        yield* eventually(
          "all 40",
          Effect.sync(() => (seen.length >= 40 ? true : undefined)),
          "30 seconds",
        )
        yield* sleep(500)
        assert.deepStrictEqual(seen.map((m) => m.seq), Array.from({ length: 40 }, (_, i) => i + 1))
        assert.deepStrictEqual(seen.map((m) => text(m.data)).slice(18, 22), [
          "before-18",
          "before-19",
          "after-0",
          "after-1",
        ])
      }),
    { timeout: 60_000 },
  )
  it.scopedLive(
    "a reader whose consumer the server dropped goes on after its last message",
    () =>
      Effect.gen(function* () {
        const namespace = yield* freshNamespace
        const bus = yield* openBus(namespace)
        const { jsm } = yield* natsClient(testNatsUrl)
        yield* bus.ensureStream(orders)
        const publish = (from: number, n: number) =>
          Effect.forEach(
            Array.from({ length: n }, (_, i) => `m-${from + i}`),
            (id) => bus.publish("orders.created", bytes(id), { id }),
            { discard: true },
          )
        yield* publish(0, 10)
        const seen: Array<BusMessage> = []
        yield* bus.read("orders", { fromSeq: 1 }).pipe(
          Stream.runForEach((m) => Effect.sync(() => seen.push(m))),
          Effect.forkScoped,
        )
        yield* eventually("the first 10", Effect.sync(() => (seen.length >= 10 ? true : undefined)))
        const readers = yield* Effect.promise(async () => {
          const names: Array<string> = []
          for await (const c of jsm.consumers.list(`${namespace}_orders`)) names.push(c.name)
          return names
        })
        assert.strictEqual(readers.length, 1)
        yield* Effect.promise(() => jsm.consumers.delete(`${namespace}_orders`, readers[0]!))
        yield* publish(10, 10)
        yield* eventually(
          "all 20",
          Effect.sync(() => (seen.length >= 20 ? true : undefined)),
          "20 seconds",
        )
        yield* sleep(300)
        assert.deepStrictEqual(
          seen.map((m) => text(m.data)),
          Array.from({ length: 20 }, (_, i) => `m-${i}`),
        )
      }),
    { timeout: 60_000 },
  )
})
