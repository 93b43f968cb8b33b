/**
 * The message pipeline on a real bus and a real database: inbound messages published on the
 * `inbound` stream come out stored once, numbered in order per conversation, with their events.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Schedule, Schema, type Scope } from "effect"
import { Bus, type BusShape } from "../../core/bus/Bus.ts"
import * as EmbeddedBus from "../../core/bus/EmbeddedBus.ts"
import * as JetStreamBus from "../../core/bus/JetStreamBus.ts"
import * as Leadership from "../../core/cluster/mod.ts"
import { PipelineLive } from "../../core/Chorus.ts"
import * as IdentityGraph from "../../core/identity/IdentityGraph.ts"
import {
  EventsStream,
  inboundKey,
  InboundStream,
  inboundSubject,
} from "../../core/pipeline/Streams.ts"
import { Database, type DatabaseShape } from "../../core/storage/Database.ts"
import * as ConversationActor from "../../actors/conversation/ConversationActor.ts"
import * as OutboundWrites from "../../actors/conversation/OutboundWrites.ts"
import * as ConversationStore from "../../actors/conversation/ConversationStore.ts"
import * as InboundConsumer from "../../actors/conversation/InboundConsumer.ts"
import { ChorusEvent } from "../../schemas/Events.ts"
import { InboundMessage, inboundMessageId } from "../../schemas/Inbound.ts"
import { freshNamespace } from "../support/NatsCleanup.ts"
import { sqliteDatabase } from "../support/TestDatabase.ts"
import { testNatsUrl } from "../support/TestServices.ts"
import { sql } from "kysely"
import { corePrometheus } from "../../core/metrics/CoreMetrics.ts"
import { metricValue } from "../support/Metrics.ts"

/** Resolves once `check` holds (polled every 10 ms for up to 5 s). */
const until = async (check: () => boolean) => {
  for (let i = 0; i < 500 && !check(); i++) await new Promise((r) => setTimeout(r, 10))
}

const encodeInbound = Schema.encodeSync(Schema.parseJson(InboundMessage))
const decodeEvent = Schema.decodeUnknownSync(Schema.parseJson(ChorusEvent))

const message = (sender: string, n: number) =>
  Schema.decodeUnknownSync(InboundMessage)({
    channel: "api",
    account: "acme",
    sender: { externalId: sender, name: `Customer ${sender}` },
    externalId: `${sender}-m${n}`,
    text: `${sender} says ${n}`,
    sentAt: "2026-11-23T10:00:00Z",
    receivedAt: "2026-11-23T10:00:01Z",
  })

const publishInbound = (bus: BusShape, m: InboundMessage, id = inboundMessageId(m)) =>
  bus.publish(inboundSubject(m.channel), new TextEncoder().encode(encodeInbound(m)), {
    id,
    key: inboundKey(m.channel, m.account, m.sender.externalId),
  })

/** Collect every event on the events stream until `until` holds (60 s at most). */
const collectEvents = (bus: BusShape, until: (events: ReadonlyArray<ChorusEvent>) => boolean) =>
  Effect.scoped(Effect.gen(function* () {
    const events: Array<ChorusEvent> = []
    yield* bus.consume(
      { stream: EventsStream.name, name: "test-events", concurrency: 1 },
      (m) =>
        Effect.sync(() => {
          events.push(decodeEvent(new TextDecoder().decode(m.data)))
        }),
    )
    yield* Effect.suspend(() => (until(events) ? Effect.void : Effect.fail("not yet"))).pipe(
      Effect.retry(Schedule.spaced("50 millis").pipe(Schedule.upTo("60 seconds"))),
      Effect.orElse(() => Effect.dieMessage(`events never arrived; got ${events.length}`)),
    )
    return [...events]
  }))

const pipelineBehaviour = (
  name: string,
  open: Effect.Effect<{ bus: BusShape; db: DatabaseShape }, unknown, Scope.Scope>,
) =>
  describe(name, () => {
    const run = <A, E>(
      body: (
        bus: BusShape,
        db: DatabaseShape,
      ) => Effect.Effect<A, E, ConversationStore.ConversationStore>,
    ) =>
      Effect.gen(function* () {
        const { bus, db } = yield* open
        const layer = PipelineLive.pipe(
          Layer.provide(
            Layer.mergeAll(
              Layer.succeed(Bus, bus),
              Layer.succeed(Database, db),
              Leadership.single(),
            ),
          ),
        )
        return yield* body(bus, db).pipe(Effect.provide(layer))
      })

    it.scopedLive("stores every message once, numbered in publish order per conversation, with its events", () =>
      run((bus, db) =>
        Effect.gen(function* () {
          const senders = Array.from({ length: 30 }, (_, i) => `s${i}`)
          const perSender = 12
          // Interleaved: round after round, every sender writes its next message.
          for (let n = 1; n <= perSender; n++) {
            yield* Effect.forEach(senders, (s) => publishInbound(bus, message(s, n)), {
              concurrency: 16,
            })
          }
          const total = senders.length * perSender
          const events = yield* collectEvents(
            bus,
            (es) => es.filter((e) => e.type === "message.received").length >= total,
          )
          const rows = yield* db.query("all messages", (k) =>
            sql<{ conversation_id: string; seq: number; external_id: string }>`
              select conversation_id, seq, external_id from messages order by conversation_id, seq`
              .execute(k))
          assert.strictEqual(rows.rows.length, total)
          const byConversation = new Map<string, Array<string>>()
          for (const r of rows.rows) {
            const list = byConversation.get(r.conversation_id) ?? []
            list.push(r.external_id)
            byConversation.set(r.conversation_id, list)
          }
          assert.strictEqual(byConversation.size, senders.length)
          for (const list of byConversation.values()) {
            const sender = list[0]!.split("-")[0]!
            assert.deepStrictEqual(
              list,
              Array.from({ length: perSender }, (_, n) => `${sender}-m${n + 1}`),
            )
          }
          const received = events.filter((e) =>
            e.type === "message.received"
          )
          assert.strictEqual(
            new Set(received.map((e) => e.type === "message.received" && e.message.id)).size,
            total,
          )
          assert.strictEqual(
            events.filter((e) => e.type === "conversation.opened").length,
            senders.length,
          )
          assert.strictEqual(
            events.filter((e) => e.type === "contact.created").length,
            senders.length,
          )
        })
      ))

    it.scopedLive("a message delivered again under another bus id is still stored once", () =>
      run((bus, db) =>
        Effect.gen(function* () {
          const m = message("dup", 1)
          yield* publishInbound(bus, m)
          // Past the bus's duplicate window, a provider redelivery would arrive as a new bus message.
          yield* publishInbound(bus, m, `${inboundMessageId(m)}:redelivered`)
          yield* publishInbound(bus, message("dup", 2))
          yield* collectEvents(bus, (es) =>
            es.some((e) => e.type === "message.received" && e.message.seq === 2))
          const rows = yield* db.query("dup rows", (k) =>
            sql<
              { seq: number; external_id: string }
            >`select seq, external_id from messages order by seq`.execute(k))
          assert.deepStrictEqual(rows.rows.map((r) => [Number(r.seq), r.external_id]), [[
            1,
            "dup-m1",
          ], [2, "dup-m2"]])
        })
      ))

    it.scopedLive("a payload that is not an InboundMessage is dead-lettered with the reason, the rest flows on", () =>
      run((bus) =>
        Effect.gen(function* () {
          // The metrics are the process's (earlier tests of this file count too): compare.
          const before = corePrometheus()
          const delta = (name: string, labels: Record<string, string>) =>
            metricValue(corePrometheus(), name, labels) - metricValue(before, name, labels)
          yield* bus.publish(
            inboundSubject("api"),
            new TextEncoder().encode(`{"channel":"api","text":1}`),
            {
              id: "garbage-1",
            },
          )
          yield* publishInbound(bus, message("after", 1))
          yield* collectEvents(bus, (es) => es.some((e) => e.type === "message.received"))
          const letters = yield* bus.deadLetters.list({ consumer: "conversations" })
          assert.lengthOf(letters, 1)
          assert.include(letters[0]!.reason, "not a valid InboundMessage")
          assert.strictEqual(letters[0]!.messageId, "garbage-1")
          // GET /metrics says so: one dead letter and one message handled on the inbound stream.
          const consumer = { stream: "inbound", consumer: "conversations" }
          yield* Effect.promise(() =>
            until(() => delta("chorus_bus_consumer_acknowledged_total", consumer) === 1)
          )
          assert.strictEqual(delta("chorus_bus_consumer_dead_lettered_total", consumer), 1)
          assert.strictEqual(delta("chorus_bus_consumer_delivered_total", consumer), 2)
          assert.strictEqual(delta("chorus_bus_consumer_retried_total", consumer), 0)
          assert.strictEqual(delta("chorus_actors_handled_total", { actor: "conversation" }), 1)
          assert.isAtLeast(delta("chorus_store_writes_total", { writer: "store" }), 1)
          // The stored one's wait, from the bus to its event, is in the latency histogram.
          const latency = { channel: "api" }
          assert.strictEqual(delta("chorus_inbound_latency_seconds_count", latency), 1)
          assert.strictEqual(
            delta("chorus_inbound_latency_seconds_bucket", { ...latency, le: "+Inf" }),
            1,
          )
          assert.isAbove(delta("chorus_inbound_latency_seconds_sum", latency), 0)
          assert.isBelow(delta("chorus_inbound_latency_seconds_sum", latency), 10)
        })
      ))

    it.scopedLive("a message after its conversation was resolved opens the contact's next conversation", () =>
      Effect.gen(function* () {
        const { bus, db } = yield* open
        // Actors passivate quickly here, so the next message reloads the status from storage.
        const layer = InboundConsumer.layer().pipe(
          Layer.provideMerge(IdentityGraph.layer()),
          Layer.provideMerge(ConversationActor.layer({ idleTimeout: "100 millis" })),
          Layer.provideMerge(Layer.merge(ConversationStore.layer(), OutboundWrites.layer())),
          Layer.provide(
            Layer.mergeAll(
              Layer.succeed(Bus, bus),
              Layer.succeed(Database, db),
              Leadership.single(),
            ),
          ),
        )
        yield* Effect.gen(function* () {
          const received = (es: ReadonlyArray<ChorusEvent>, externalId: string) =>
            es.find((e) => e.type === "message.received" && e.message.externalId === externalId)
          yield* publishInbound(bus, message("back", 1))
          const first = received(
            yield* collectEvents(bus, (es) => received(es, "back-m1") !== undefined),
            "back-m1",
          )
          const resolved = first?.type === "message.received" ? first.message.conversationId : ""
          yield* db.query("resolve", (k) =>
            k.updateTable("conversations").set({ status: "resolved", resolved_at: Date.now() })
              .where("id", "=", resolved).execute())
          yield* Effect.sleep("400 millis")
          yield* publishInbound(bus, message("back", 2))
          const events = yield* collectEvents(bus, (es) =>
            received(es, "back-m2") !== undefined)
          const second = received(events, "back-m2")
          assert.isTrue(second?.type === "message.received")
          if (second?.type !== "message.received") {
            return
          }
          assert.notStrictEqual(second.message.conversationId, resolved)
          assert.strictEqual(second.message.seq, 1)
          assert.isTrue(
            events.some((e) =>
              e.type === "conversation.opened" &&
              e.conversation.id === second.message.conversationId
            ),
          )
          const rows = yield* db.query("per conversation", (k) =>
            sql<{ conversation_id: string; status: string; n: number }>`
              select c.id as conversation_id, c.status, count(m.id) as n from conversations c
              join messages m on m.conversation_id = c.id group by c.id, c.status order by c.id`
              .execute(k))
          assert.deepStrictEqual(
            rows.rows.map((r) => [r.conversation_id, r.status, Number(r.n)]),
            [[resolved, "resolved", 1], [second.message.conversationId, "open", 1]],
          )
        }).pipe(Effect.provide(layer))
      }))

    it.scopedLive("a contact created just before a crash still gets its contact.created", () =>
      run((bus) =>
        Effect.gen(function* () {
          const store = yield* ConversationStore.ConversationStore
          // What a process that died right after creating the sender left behind.
          const early = yield* store.resolveSender(message("early", 1))
          yield* publishInbound(bus, message("early", 1))
          yield* publishInbound(bus, message("early", 2))
          const events = yield* collectEvents(bus, (es) =>
            es.some((e) =>
              e.type === "message.received" && e.message.externalId === "early-m2"
            ))
          const created = events.filter((e) =>
            e.type === "contact.created"
          )
          assert.strictEqual(created.length, 1)
          assert.strictEqual(
            created[0]?.type === "contact.created" && created[0].contact.id,
            early.contact.id,
          )
          // Before the conversation and its first message, as for any new contact.
          const order = events.map((e) =>
            e.type
          )
          assert.isBelow(order.indexOf("contact.created"), order.indexOf("conversation.opened"))
        })
      ))

    it.scopedLive("the conversation API reads what the pipeline stored", () =>
      run((bus) =>
        Effect.gen(function* () {
          for (let n = 1; n <= 3; n++) {
            yield* publishInbound(bus, message("reader", n))
          }
          const events = yield* collectEvents(
            bus,
            (es) =>
              es.filter((e) => e.type === "message.received").length >= 3,
          )
          const opened = events.find((e) => e.type === "conversation.opened")
          assert.isDefined(opened)
          const store = yield* ConversationStore.ConversationStore
          const id = opened!.type === "conversation.opened" ? opened!.conversation.id : undefined
          const page = yield* store.messages(id!)
          assert.deepStrictEqual(page.messages.map((m) => m.text), [
            "reader says 3",
            "reader says 2",
            "reader says 1",
          ])
        })
      ))
  })

pipelineBehaviour(
  "Inbound pipeline on the embedded bus (SQLite)",
  Effect.gen(function* () {
    const db = yield* sqliteDatabase()
    const bus = yield* EmbeddedBus.make({ namespace: "pipeline" }).pipe(
      Effect.provideService(Database, db),
    )
    for (const s of [InboundStream, EventsStream]) yield* bus.ensureStream(s)
    return { bus, db }
  }),
)

pipelineBehaviour(
  "Inbound pipeline on JetStream (SQLite store)",
  Effect.gen(function* () {
    const db = yield* sqliteDatabase()
    const namespace = yield* freshNamespace("pipe")
    const bus = yield* JetStreamBus.make({ servers: testNatsUrl, namespace })
    for (const s of [InboundStream, EventsStream]) yield* bus.ensureStream(s)
    return { bus, db }
  }),
)
