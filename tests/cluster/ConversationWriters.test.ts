/**
 * Two nodes' conversation actors writing one conversation (the API runs on every node: replies,
 * notes and status changes go through the local actor). Each "node" here is its own actor
 * supervisor and stores over one database. An actor whose `lastSeq` is stale collides on the
 * unique (conversation, seq) index, reloads and takes the next free number: every write is
 * stored once, the numbering stays gap-free and single.
 */
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Layer, Schema } from "effect"
import * as ConversationActor from "../../actors/conversation/ConversationActor.ts"
import * as ConversationStore from "../../actors/conversation/ConversationStore.ts"
import * as OutboundWrites from "../../actors/conversation/OutboundWrites.ts"
import { Database, type DatabaseShape } from "../../core/storage/Database.ts"
import type { ConversationId } from "../../schemas/Ids.ts"
import { InboundMessage } from "../../schemas/Inbound.ts"
import { postgresDatabase, sqliteDatabase } from "../support/TestDatabase.ts"

/** One node's actors and stores over the shared database. */
const node = (db: DatabaseShape) =>
  Layer.build(
    ConversationActor.layer().pipe(
      Layer.provideMerge(Layer.merge(ConversationStore.layer(), OutboundWrites.layer())),
      Layer.provide(Layer.succeed(Database, db)),
    ),
  ).pipe(Effect.map((context) => ({
    actors: Context.get(context, ConversationActor.ConversationActors),
    store: Context.get(context, ConversationStore.ConversationStore),
  })))

/** A conversation with the customer's first message (seq 1). */
const seed = (store: Context.Tag.Service<typeof ConversationStore.ConversationStore>) =>
  Effect.gen(function* () {
    const inbound = Schema.decodeUnknownSync(InboundMessage)({
      channel: "api",
      account: "shop",
      sender: { externalId: "c1", name: "Customer" },
      externalId: "c1-1",
      text: "hello",
      sentAt: "2026-11-24T10:00:00Z",
      receivedAt: "2026-11-24T10:00:01Z",
    })
    const sender = yield* store.resolveSender(inbound)
    const { conversation } = yield* store.openConversation(sender.contact.id, sender.identity)
    yield* store.appendInbound({
      conversationId: conversation.id,
      seq: 1,
      status: "open",
      identityId: sender.identity.id,
      inbound,
    })
    return { id: conversation.id, identity: sender.identity }
  })

const inboundOf = (externalId: string) =>
  Schema.decodeUnknownSync(InboundMessage)({
    channel: "api",
    account: "shop",
    sender: { externalId: "c1", name: "Customer" },
    externalId,
    text: `text of ${externalId}`,
    sentAt: "2026-11-24T10:01:00Z",
    receivedAt: "2026-11-24T10:01:01Z",
  })

const note = (
  actors: ConversationActor.ConversationActorsShape,
  id: ConversationId,
  text: string,
) =>
  actors.ask(id, {
    _tag: "AppendNote",
    note: { authorId: null, text, mentions: [], clientId: undefined },
  }).pipe(Effect.map((r) => (r._tag === "Closed" ? assert.fail("closed") : r.message.seq)))

const storedSeqs = (db: DatabaseShape, id: ConversationId) =>
  db.query(
    "seqs",
    (k) =>
      k.selectFrom("messages").select(["seq", "text"]).where("conversation_id", "=", id)
        .orderBy("seq").execute(),
  )

const backends = [
  ["PostgreSQL", postgresDatabase("writers")],
  ["SQLite", sqliteDatabase()],
] as const

describe("two nodes' actors writing one conversation", () => {
  for (const [backend, open] of backends) {
    it.scopedLive(`${backend}: a stale actor collides on the sequence, reloads and stores next`, () =>
      Effect.gen(function* () {
        const db = yield* open
        const a = yield* node(db)
        const b = yield* node(db)
        const { id } = yield* seed(a.store)
        assert.strictEqual(yield* note(a.actors, id, "a1"), 2) // a's actor now holds lastSeq 2
        assert.strictEqual(yield* note(b.actors, id, "b1"), 3) // b's loads 2, stores 3
        // a still believes lastSeq is 2: its append at 3 collides; it reloads and stores 4.
        assert.strictEqual(yield* note(a.actors, id, "a2"), 4)
        assert.strictEqual(yield* note(b.actors, id, "b2"), 5)
        const rows = yield* storedSeqs(db, id)
        assert.deepStrictEqual(rows.map((r) => [Number(r.seq), r.text]), [
          [1, "hello"],
          [2, "a1"],
          [3, "b1"],
          [4, "a2"],
          [5, "b2"],
        ])
        const conversation = yield* a.store.conversation(id)
        assert.strictEqual(conversation._tag === "Some" && conversation.value.lastSeq, 5)
      }))
  }

  it.scopedLive("PostgreSQL: a conversation resolved on one node takes no more messages through the other's actor", () =>
    Effect.gen(function* () {
      const db = yield* postgresDatabase("writers")
      const a = yield* node(db)
      const b = yield* node(db)
      const { id, identity } = yield* seed(a.store)
      assert.strictEqual(yield* note(a.actors, id, "a1"), 2) // a's actor: open, lastSeq 2
      const resolved = yield* b.actors.ask(id, {
        _tag: "Change",
        change: { status: "resolved" },
      })
      assert.strictEqual(resolved._tag, "Changed")
      // a's actor still believes it open: each append is refused by the store, a reloads and
      // answers Closed, as one node would (the inbound consumer then opens the next conversation).
      const inbound = yield* a.actors.ask(id, {
        _tag: "AppendInbound",
        identityId: identity.id,
        inbound: inboundOf("c1-2"),
      })
      assert.strictEqual(inbound._tag, "Closed")
      const noteAfter = yield* a.actors.ask(id, {
        _tag: "AppendNote",
        note: { authorId: null, text: "late", mentions: [], clientId: undefined },
      })
      assert.strictEqual(noteAfter._tag, "Closed")
      const reply = yield* a.actors.ask(id, {
        _tag: "AppendOutbound",
        reply: {
          recipient: identity,
          text: "late reply",
          attachments: [],
          clientId: undefined,
          authorId: null,
        },
      })
      assert.strictEqual(reply._tag, "Closed")
      const rows = yield* storedSeqs(db, id)
      assert.deepStrictEqual(rows.map((r) => Number(r.seq)), [1, 2])
      const conversation = yield* a.store.conversation(id)
      assert.strictEqual(conversation._tag === "Some" && conversation.value.status, "resolved")
    }))

  it.scopedLive("PostgreSQL: the same customer message through both nodes' actors at once is stored once", () =>
    Effect.gen(function* () {
      const db = yield* postgresDatabase("writers")
      const a = yield* node(db)
      const b = yield* node(db)
      const { id, identity } = yield* seed(a.store)
      // Both actors loaded (lastSeq 1) before the race, as two leaders overlapping briefly would.
      assert.strictEqual(yield* note(a.actors, id, "a1"), 2)
      assert.strictEqual(yield* note(b.actors, id, "b1"), 3)
      const appendVia = (actors: ConversationActor.ConversationActorsShape) =>
        actors.ask(id, {
          _tag: "AppendInbound",
          identityId: identity.id,
          inbound: inboundOf("c1-2"),
        })
      const [ra, rb] = yield* Effect.all([appendVia(a.actors), appendVia(b.actors)], {
        concurrency: "unbounded",
      })
      assert.sameMembers([ra._tag, rb._tag], ["Stored", "Duplicate"])
      const rows = yield* storedSeqs(db, id)
      assert.deepStrictEqual(rows.map((r) => Number(r.seq)), [1, 2, 3, 4])
      assert.strictEqual(rows.filter((r) => r.text === "text of c1-2").length, 1)
    }))

  it.scopedLive("PostgreSQL: both nodes writing at once store every note once, gap-free", () =>
    Effect.gen(function* () {
      const db = yield* postgresDatabase("writers")
      const a = yield* node(db)
      const b = yield* node(db)
      const { id } = yield* seed(a.store)
      const texts = Array.from({ length: 12 }, (_, i) => `n${i}`)
      const seqs = yield* Effect.forEach(
        texts,
        (text, i) => note(i % 2 === 0 ? a.actors : b.actors, id, text),
        { concurrency: "unbounded" },
      )
      assert.deepStrictEqual([...seqs].sort((x, y) => x - y), texts.map((_, i) => i + 2))
      const rows = yield* storedSeqs(db, id)
      assert.deepStrictEqual(rows.map((r) => Number(r.seq)), [1, ...texts.map((_, i) => i + 2)])
      assert.sameMembers(rows.slice(1).map((r) => r.text), texts)
    }))
})
