import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Option, type Scope } from "effect"
import {
  type ConversationFilter,
  type ConversationListPage,
  ConversationQueries,
  layer as queriesLayer,
} from "../../actors/conversation/ConversationQueries.ts"
import {
  ConversationStore,
  layer as storeLayer,
} from "../../actors/conversation/ConversationStore.ts"
import { Database, type DatabaseShape } from "../../core/storage/Database.ts"
import type { ContactId, ConversationId, OperatorId } from "../../schemas/Ids.ts"
import type { ConversationPosition } from "../../schemas/ReadApi.ts"
import { postgresDatabase, sqliteDatabase } from "../support/TestDatabase.ts"
import { listOrder, OPERATOR_A, seedConversation, type Seeded, seedMany } from "./Seed.ts"

const queriesBehaviour = (
  name: string,
  open: Effect.Effect<DatabaseShape, unknown, Scope.Scope>,
) =>
  describe(name, () => {
    const withQueries = <A, E>(
      body: Effect.Effect<A, E, ConversationQueries | ConversationStore | Database>,
    ) =>
      Effect.gen(function* () {
        const db = yield* open
        const layer = Layer.mergeAll(storeLayer(), queriesLayer).pipe(
          Layer.provideMerge(Layer.succeed(Database, db)),
        )
        return yield* body.pipe(Effect.provide(layer))
      })

    /** Every page of a filtered list, `limit` at a time. */
    const allPages = (
      filter: ConversationFilter,
      limit: number,
    ) =>
      Effect.gen(function* () {
        const queries = yield* ConversationQueries
        const ids: Array<ConversationId> = []
        let after: ConversationPosition | undefined = undefined
        let pages = 0
        for (;;) {
          const page: ConversationListPage = yield* queries.list(filter, { after, limit })
          pages++
          ids.push(...page.conversations.map((c) => c.id))
          assert.isAtMost(page.conversations.length, limit)
          if (page.next === null) break
          after = page.next
        }
        return { ids, pages }
      })

    it.scoped("pages through every conversation once, most recently updated first, ties by id", () =>
      withQueries(Effect.gen(function* () {
        const seeded = yield* seedMany(yield* ConversationStore, yield* Database, 45)
        const { ids, pages } = yield* allPages({}, 7)
        assert.strictEqual(pages, 7)
        assert.deepStrictEqual(ids, listOrder(seeded).map((s) => s.id))
      })))

    it.scoped("filters by status, assignee (or none) and last channel, alone and together", () =>
      withQueries(Effect.gen(function* () {
        const seeded = yield* seedMany(yield* ConversationStore, yield* Database, 45)
        const expect = (keep: (s: Seeded) => boolean) =>
          listOrder(seeded.filter(keep)).map((s) => s.id)
        assert.deepStrictEqual(
          (yield* allPages({ status: "pending" }, 4)).ids,
          expect((s) => s.status === "pending"),
        )
        assert.deepStrictEqual(
          (yield* allPages({ assignee: "none" }, 4)).ids,
          expect((s) => s.assignee === null),
        )
        assert.deepStrictEqual(
          (yield* allPages({ assignee: OPERATOR_A as OperatorId }, 4)).ids,
          expect((s) => s.assignee === OPERATOR_A),
        )
        const combined = yield* allPages({
          status: "open",
          assignee: "none",
          channel: "telegram" as never,
        }, 2)
        const expected = expect((s) =>
          s.status === "open" && s.assignee === null && s.channel === "telegram"
        )
        assert.isAbove(expected.length, 2)
        assert.deepStrictEqual(combined.ids, expected)
      })))

    it.scoped("an empty list is one page with no next position", () =>
      withQueries(Effect.gen(function* () {
        const queries = yield* ConversationQueries
        const page = yield* queries.list({ status: "resolved" }, { limit: 10 })
        assert.deepStrictEqual(page, { conversations: [], next: null })
      })))

    it.scoped("a conversation with its contact; a contact with its identities; none for unknown ids", () =>
      withQueries(Effect.gen(function* () {
        const store = yield* ConversationStore
        const queries = yield* ConversationQueries
        const { contact, conversation, identity } = yield* seedConversation(store, "api", "q1", 3)
        const found = Option.getOrThrow(yield* queries.conversationWithContact(conversation.id))
        assert.strictEqual(found.conversation.id, conversation.id)
        assert.strictEqual(found.conversation.lastSeq, 3)
        assert.deepStrictEqual(found.contact, contact)
        const withIdentities = Option.getOrThrow(yield* queries.contactWithIdentities(contact.id))
        assert.deepStrictEqual(withIdentities.contact, contact)
        assert.lengthOf(withIdentities.identities, 1)
        assert.strictEqual(withIdentities.identities[0]?.id, identity.id)
        assert.strictEqual(withIdentities.identities[0]?.verification, "claimed")
        assert.isTrue(withIdentities.identities[0]?.reachable)
        assert.isTrue(Option.isNone(
          yield* queries.conversationWithContact("01JD0000000000000000000000" as ConversationId),
        ))
        assert.isTrue(Option.isNone(
          yield* queries.contactWithIdentities("01JD0000000000000000000000" as ContactId),
        ))
      })))
  })

queriesBehaviour("ConversationQueries on SQLite", sqliteDatabase())
queriesBehaviour("ConversationQueries on PostgreSQL", postgresDatabase())
