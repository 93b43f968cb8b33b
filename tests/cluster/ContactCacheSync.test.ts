/**
 * Two nodes' conversation stores on one PostgreSQL schema and one JetStream namespace: a merge
 * made on one node reaches the other's cached senders through the `contact.merged` event, so the
 * leader's inbound path files the merged identity's next message under the surviving contact.
 */
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Layer, Schema } from "effect"
import * as ContactCacheSync from "../../actors/conversation/ContactCacheSync.ts"
import * as ConversationStore from "../../actors/conversation/ConversationStore.ts"
import { Bus } from "../../core/bus/Bus.ts"
import * as JetStreamBus from "../../core/bus/JetStreamBus.ts"
import * as IdentityGraph from "../../core/identity/IdentityGraph.ts"
import { Database, type DatabaseShape } from "../../core/storage/Database.ts"
import { InboundMessage } from "../../schemas/Inbound.ts"
import { freshNamespace } from "../support/NatsCleanup.ts"
import { postgresDatabase } from "../support/TestDatabase.ts"
import { testNatsUrl } from "../support/TestServices.ts"

const inbound = (sender: string, n: number) =>
  Schema.decodeUnknownSync(InboundMessage)({
    channel: "api",
    account: "shop",
    sender: { externalId: sender, name: `Customer ${sender}` },
    externalId: `${sender}-${n}`,
    text: "hi",
    sentAt: "2026-11-24T10:00:00Z",
    receivedAt: "2026-11-24T10:00:01Z",
  })

/** One node: its own bus connection, store (with its caches) and identity graph. */
const node = (db: DatabaseShape, namespace: string, sync: boolean) =>
  Layer.build(
    Layer.mergeAll(
      IdentityGraph.layer(),
      sync ? ContactCacheSync.layer : Layer.empty,
    ).pipe(
      Layer.provideMerge(ConversationStore.layer()),
      Layer.provideMerge(JetStreamBus.layer({ servers: testNatsUrl, namespace })),
      Layer.provide(Layer.succeed(Database, db)),
    ),
  ).pipe(Effect.map((context) => ({
    store: Context.get(context, ConversationStore.ConversationStore),
    graph: Context.get(context, IdentityGraph.IdentityGraph),
    bus: Context.get(context, Bus),
  })))

describe("contact caches across nodes", () => {
  for (const sync of [true, false]) {
    it.scopedLive(
      sync
        ? "a merge on one node makes the other forget the merged sender at once"
        : "without the sync, the other node keeps filing the merged sender under the old contact",
      () =>
        Effect.gen(function* () {
          const db = yield* postgresDatabase("ccs")
          const namespace = yield* freshNamespace("ccs")
          const leader = yield* node(db, namespace, sync)
          const follower = yield* node(db, namespace, false)
          const alice = yield* leader.store.resolveSender(inbound("alice", 1))
          const bob = yield* leader.store.resolveSender(inbound("bob", 1)) // cached on the leader
          yield* follower.graph.merge({
            targetId: alice.contact.id,
            sourceId: bob.contact.id,
            kind: "manual",
            reason: "same person",
            by: "system",
          })
          // The leader's next message from bob: under alice's contact (once the event arrived).
          const deadline = Date.now() + 3_000
          let seen = (yield* leader.store.resolveSender(inbound("bob", 2))).contact.id
          while (sync && seen !== alice.contact.id && Date.now() < deadline) {
            yield* Effect.sleep("20 millis")
            seen = (yield* leader.store.resolveSender(inbound("bob", 2))).contact.id
          }
          if (sync) {
            assert.strictEqual(seen, alice.contact.id)
          } else {
            yield* Effect.sleep("500 millis")
            seen = (yield* leader.store.resolveSender(inbound("bob", 2))).contact.id
            assert.strictEqual(seen, bob.contact.id, "the stale cache the sync exists for")
          }
        }),
    )
  }
})
