import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Option, Schema, type Scope } from "effect"
import { sql } from "kysely"
import {
  ConversationStore,
  type ConversationStoreShape,
  layer as storeLayer,
} from "../../actors/conversation/ConversationStore.ts"
import { Database, type DatabaseShape } from "../../core/storage/Database.ts"
import type { ConversationStatus } from "../../schemas/Conversation.ts"
import { InboundMessage } from "../../schemas/Inbound.ts"
import { newId } from "../../core/ids.ts"
import { postgresDatabase, sqliteDatabase } from "../support/TestDatabase.ts"

let counter = 0
const inbound = (
  over: { sender?: Record<string, unknown>; externalId?: string; text?: string } = {},
) =>
  Schema.decodeUnknownSync(InboundMessage)({
    channel: "api",
    account: "acme",
    sender: { externalId: "customer-1", name: "Ann", ...over.sender },
    externalId: over.externalId ?? `m-${++counter}`,
    text: over.text ?? "hello",
    sentAt: "2026-11-23T10:00:00Z",
    receivedAt: "2026-11-23T10:00:01Z",
  })

/**
 * `m`'s sender, their open conversation, and `append(seq, status)`: `m` appended to it as the
 * conversation's actor would.
 */
const openFor = (store: ConversationStoreShape, m: InboundMessage) =>
  Effect.gen(function* () {
    const sender = yield* store.resolveSender(m)
    const { conversation } = yield* store.openConversation(sender.contact.id, sender.identity)
    const append = (seq: number, status: ConversationStatus = "open") =>
      store.appendInbound({
        conversationId: conversation.id,
        seq,
        status,
        identityId: sender.identity.id,
        inbound: m,
      })
    return { sender, conversation, append }
  })

const storeBehaviour = (name: string, open: Effect.Effect<DatabaseShape, unknown, Scope.Scope>) =>
  describe(name, () => {
    const withStore = <A, E>(
      body: Effect.Effect<A, E, ConversationStore | Database>,
    ) =>
      Effect.gen(function* () {
        const db = yield* open
        const layer = storeLayer().pipe(Layer.provideMerge(Layer.succeed(Database, db)))
        return yield* body.pipe(Effect.provide(layer))
      })

    it.scoped("resolves a sender once: the first message creates contact and identity, later ones find them", () =>
      withStore(Effect.gen(function* () {
        const store = yield* ConversationStore
        const first = yield* store.resolveSender(inbound({ sender: { externalId: "u-1" } }))
        assert.isTrue(first.contactCreated)
        assert.strictEqual(first.identity.verification, "unverified")
        assert.strictEqual(first.contact.name, "Ann")
        const again = yield* store.resolveSender(inbound({ sender: { externalId: "u-1" } }))
        assert.isFalse(again.contactCreated)
        assert.strictEqual(again.identity.id, first.identity.id)
        assert.strictEqual(again.contact.id, first.contact.id)
      })))

    it.scoped("records whether the sender's phone or e-mail is verified or only claimed", () =>
      withStore(Effect.gen(function* () {
        const store = yield* ConversationStore
        const claimed = yield* store.resolveSender(
          inbound({ sender: { externalId: "u-2", email: "ann@example.com" } }),
        )
        assert.strictEqual(claimed.identity.verification, "claimed")
        const verified = yield* store.resolveSender(
          inbound({ sender: { externalId: "u-3", phone: "+79161234567", verified: true } }),
        )
        assert.strictEqual(verified.identity.verification, "verified")
        assert.strictEqual(verified.identity.phone, "+79161234567")
      })))

    it.scoped("keeps one open conversation per contact, and opens a new one after it is resolved", () =>
      withStore(Effect.gen(function* () {
        const store = yield* ConversationStore
        const db = yield* Database
        const sender = yield* store.resolveSender(inbound({ sender: { externalId: "u-4" } }))
        const a = yield* store.openConversation(sender.contact.id, sender.identity)
        assert.isTrue(a.opened)
        assert.deepStrictEqual(a.conversation.lastChannel, {
          channel: sender.identity.channel,
          account: sender.identity.account,
          identityId: sender.identity.id,
        })
        const b = yield* store.openConversation(sender.contact.id, sender.identity)
        assert.isFalse(b.opened)
        assert.strictEqual(b.conversation.id, a.conversation.id)
        yield* db.query(
          "resolve",
          (k) =>
            k.updateTable("conversations").set({ status: "resolved" }).where(
              "id",
              "=",
              a.conversation.id,
            ).execute(),
        )
        // Still cached: only the conversation's actor knows it was resolved, and tells the store.
        const cached = yield* store.openConversation(sender.contact.id, sender.identity)
        assert.strictEqual(cached.conversation.id, a.conversation.id)
        yield* store.forgetOpenConversation(sender.contact.id, a.conversation.id)
        const c = yield* store.openConversation(sender.contact.id, sender.identity)
        assert.isTrue(c.opened)
        assert.notStrictEqual(c.conversation.id, a.conversation.id)
      })))

    it.scoped("appends with the given sequence number; the same external id again is a duplicate, stored once", () =>
      withStore(Effect.gen(function* () {
        const store = yield* ConversationStore
        const m = inbound({ sender: { externalId: "u-5" }, externalId: "dup-1", text: "first" })
        const { conversation, append } = yield* openFor(store, m)
        const stored = yield* append(1)
        assert.strictEqual(stored._tag, "Stored")
        assert.strictEqual(stored.message.seq, 1)
        assert.strictEqual(stored.message.text, "first")
        // A redelivery (even with a seq the actor would have used next) stores nothing.
        const again = yield* append(2)
        assert.strictEqual(again._tag, "Duplicate")
        assert.strictEqual(again.message.id, stored.message.id)
        assert.strictEqual(again.message.seq, 1)
        const page = yield* store.messages(conversation.id)
        assert.lengthOf(page.messages, 1)
        const after = yield* store.conversation(conversation.id)
        assert.strictEqual(Option.getOrThrow(after).lastSeq, 1)
      })))

    it.scoped("the stored message it answers is the message as read back from storage", () =>
      withStore(Effect.gen(function* () {
        const store = yield* ConversationStore
        const m = Schema.decodeUnknownSync(InboundMessage)({
          channel: "api",
          account: "acme",
          sender: { externalId: "u-files" },
          externalId: "with-files",
          text: "see attached",
          attachments: [
            { name: "a.jpg", mimeType: "image/jpeg", size: 10, url: "https://x.test/a.jpg" },
            { name: "b.pdf", mimeType: "application/pdf", size: 20, storageKey: "k/b" },
          ],
          payload: "button-1",
          sentAt: "2026-11-23T10:00:00.123Z",
          receivedAt: "2026-11-23T10:00:01Z",
        })
        const { conversation, append } = yield* openFor(store, m)
        const stored = yield* append(1)
        assert.strictEqual(stored._tag, "Stored")
        const page = yield* store.messages(conversation.id)
        assert.deepStrictEqual(stored.message, page.messages[0])
        assert.lengthOf(stored.message.attachments, 2)
        assert.strictEqual(stored.message.attachments[0]!.url?.href, "https://x.test/a.jpg")
      })))

    it.scoped("a per-channel inbox keeps a contact's conversation to its account; other inboxes never reuse it", () =>
      withStore(Effect.gen(function* () {
        const store = yield* ConversationStore
        const sender = yield* store.resolveSender(
          inbound({ sender: { externalId: "u-modes" } }),
        )
        yield* store.setConversationMode("api", "acme", "per_channel")
        const onAcme = sender.identity
        // The same contact on another account of the channel (per contact, the default).
        const onOther = {
          ...onAcme,
          id: newId.channelIdentity(),
          account: "other",
        } as typeof onAcme
        const first = yield* store.openConversation(sender.contact.id, onAcme)
        assert.isTrue(first.opened)
        const elsewhere = yield* store.openConversation(sender.contact.id, onOther)
        assert.isTrue(elsewhere.opened)
        assert.notStrictEqual(elsewhere.conversation.id, first.conversation.id)
        // From the database, not the caches: each account finds its own conversation again.
        yield* store.forgetContacts([sender.contact.id])
        const again = yield* store.openConversation(sender.contact.id, onAcme)
        assert.isFalse(again.opened)
        assert.strictEqual(again.conversation.id, first.conversation.id)
        yield* store.forgetContacts([sender.contact.id])
        const otherAgain = yield* store.openConversation(sender.contact.id, onOther)
        assert.isFalse(otherAgain.opened)
        assert.strictEqual(otherAgain.conversation.id, elsewhere.conversation.id)
      })))

    it.scoped("a customer's answer reopens a pending conversation", () =>
      withStore(Effect.gen(function* () {
        const store = yield* ConversationStore
        const db = yield* Database
        const m = inbound({ sender: { externalId: "u-6" } })
        const { conversation, append } = yield* openFor(store, m)
        yield* db.query(
          "pend",
          (k) =>
            k.updateTable("conversations").set({ status: "pending" }).where(
              "id",
              "=",
              conversation.id,
            ).execute(),
        )
        const stored = yield* append(1, "pending")
        assert.strictEqual(stored._tag === "Stored" && stored.previousStatus, "pending")
        assert.strictEqual(
          Option.getOrThrow(yield* store.conversation(conversation.id)).status,
          "open",
        )
      })))

    it.scoped("appends from many conversations at once are group-committed, each conversation gap-free", () =>
      withStore(Effect.gen(function* () {
        const store = yield* ConversationStore
        const conversations = yield* Effect.forEach(
          Array.from({ length: 40 }, (_, i) => i),
          (i) =>
            Effect.gen(function* () {
              const sender = yield* store.resolveSender(
                inbound({ sender: { externalId: `g-${i}` } }),
              )
              const { conversation } = yield* store.openConversation(
                sender.contact.id,
                sender.identity,
              )
              return { conversation, sender }
            }),
        )
        const before = store.stats().transactions
        // 40 "actors", each appending its 15 messages one after another, all at once.
        yield* Effect.forEach(
          conversations,
          ({ conversation, sender }, i) =>
            Effect.forEach(
              Array.from({ length: 15 }, (_, n) => n + 1),
              (seq) =>
                store.appendInbound({
                  conversationId: conversation.id,
                  seq,
                  status: "open",
                  identityId: sender.identity.id,
                  inbound: inbound({
                    sender: { externalId: `g-${i}` },
                    externalId: `g-${i}-${seq}`,
                  }),
                }),
              { discard: true },
            ),
          { concurrency: "unbounded", discard: true },
        )
        const transactions = store.stats().transactions - before
        assert.isBelow(transactions, 600 / 4, `600 appends took ${transactions} transactions`)
        for (const { conversation } of conversations) {
          const page = yield* store.messages(conversation.id, { limit: 100 })
          assert.deepStrictEqual(
            page.messages.map((m) => m.seq),
            Array.from({ length: 15 }, (_, n) => 15 - n),
          )
        }
      })))

    it.scoped("history pages run newest first by sequence, keyset-paginated with before=", () =>
      withStore(Effect.gen(function* () {
        const store = yield* ConversationStore
        const sender = yield* store.resolveSender(inbound({ sender: { externalId: "u-7" } }))
        const { conversation } = yield* store.openConversation(sender.contact.id, sender.identity)
        yield* Effect.forEach(
          Array.from({ length: 120 }, (_, n) => n + 1),
          (seq) =>
            store.appendInbound({
              conversationId: conversation.id,
              seq,
              status: "open",
              identityId: sender.identity.id,
              inbound: inbound({
                sender: { externalId: "u-7" },
                externalId: `h-${seq}`,
                text: `#${seq}`,
              }),
            }),
          { discard: true },
        )
        const first = yield* store.messages(conversation.id, { limit: 50 })
        assert.strictEqual(first.messages[0]?.seq, 120)
        assert.strictEqual(first.messages[49]?.seq, 71)
        assert.strictEqual(first.nextBefore, 71)
        const second = yield* store.messages(conversation.id, {
          limit: 50,
          before: first.nextBefore!,
        })
        assert.strictEqual(second.messages[0]?.seq, 70)
        const third = yield* store.messages(conversation.id, {
          limit: 50,
          before: second.nextBefore!,
        })
        assert.deepStrictEqual(
          third.messages.map((m) => m.seq),
          Array.from({ length: 20 }, (_, n) => 20 - n),
        )
        assert.isNull(third.nextBefore)
        assert.strictEqual(third.messages[19]?.text, "#1")
      })))

    it.scoped("two different messages can never share a sequence number in a conversation", () =>
      withStore(Effect.gen(function* () {
        const store = yield* ConversationStore
        const sender = yield* store.resolveSender(inbound({ sender: { externalId: "u-8" } }))
        const { conversation } = yield* store.openConversation(sender.contact.id, sender.identity)
        const base = {
          conversationId: conversation.id,
          seq: 1,
          status: "open" as const,
          identityId: sender.identity.id,
        }
        yield* store.appendInbound({ ...base, inbound: inbound({ sender: { externalId: "u-8" } }) })
        const error = yield* store.appendInbound({
          ...base,
          inbound: inbound({ sender: { externalId: "u-8" } }),
        })
          .pipe(Effect.flip)
        assert.strictEqual(error._tag, "DatabaseError")
        const count = yield* (yield* Database).query(
          "count",
          (k) =>
            sql<
              { n: number }
            >`select count(*) as n from messages where conversation_id = ${conversation.id}`
              .execute(k),
        )
        assert.strictEqual(Number(count.rows[0]?.n), 1)
      })))
  })

storeBehaviour("ConversationStore on SQLite", sqliteDatabase())
storeBehaviour("ConversationStore on PostgreSQL", postgresDatabase())
