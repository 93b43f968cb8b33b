import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { type Answer, request, startApiServer } from "./ApiServer.ts"
import { listOrder, OPERATOR_B, seedConversation, type Seeded, seedMany } from "./Seed.ts"

const UNKNOWN = "01JD0000000000000000000000"

describe("read API", () => {
  it.scopedLive("GET /api/v1/conversations pages with an opaque cursor: every conversation once, newest update first", () =>
    Effect.gen(function* () {
      const server = yield* startApiServer
      const seeded = yield* seedMany(server.store, server.database, 60)
      const get = (query: string) =>
        request(`${server.url}/api/v1/conversations${query}`, { token: server.token })

      // Default page size 50.
      const first = yield* get("")
      assert.strictEqual(first.status, 200, first.text)
      assert.lengthOf(first.body.conversations, 50)
      assert.isString(first.body.nextCursor)

      const ids: Array<string> = []
      let cursor: string | null = null as string | null
      let pages = 0
      do {
        const page: Answer = yield* get(
          `?limit=8${cursor === null ? "" : `&cursor=${encodeURIComponent(cursor)}`}`,
        )
        assert.strictEqual(page.status, 200, page.text)
        assert.isAtMost(page.body.conversations.length, 8)
        ids.push(...page.body.conversations.map((c: { id: string }) => c.id))
        cursor = page.body.nextCursor
        pages++
      } while (cursor !== null)
      assert.strictEqual(pages, 8)
      assert.strictEqual(new Set(ids).size, 60)
      assert.deepStrictEqual(ids, listOrder(seeded).map((s) => s.id))

      // The wire format is the Conversation schema's encoding.
      const one = first.body.conversations[0]
      assert.match(one.updatedAt, /^\d{4}-\d{2}-\d{2}T.*Z$/)
      assert.includeMembers(Object.keys(one), ["id", "contactId", "status", "lastChannel"])
    }))

  it.scopedLive("filters by status, assignee (an operator or none) and last channel", () =>
    Effect.gen(function* () {
      const server = yield* startApiServer
      const seeded = yield* seedMany(server.store, server.database, 40)
      const ids = (query: string) =>
        request(`${server.url}/api/v1/conversations?limit=200&${query}`, {
          token: server.token,
        }).pipe(Effect.map((r) => {
          assert.strictEqual(r.status, 200, r.text)
          return r.body.conversations.map((c: { id: string }) => c.id)
        }))
      const expect = (keep: (s: Seeded) => boolean) =>
        listOrder(seeded.filter(keep)).map((s) => s.id)
      assert.deepStrictEqual(yield* ids("status=resolved"), expect((s) => s.status === "resolved"))
      assert.deepStrictEqual(yield* ids("assignee=none"), expect((s) => s.assignee === null))
      assert.deepStrictEqual(
        yield* ids(`assignee=${OPERATOR_B}`),
        expect((s) => s.assignee === OPERATOR_B),
      )
      assert.deepStrictEqual(
        yield* ids("channel=telegram"),
        expect((s) => s.channel === "telegram"),
      )
      assert.deepStrictEqual(
        yield* ids("status=open&assignee=none&channel=api"),
        expect((s) => s.status === "open" && s.assignee === null && s.channel === "api"),
      )
    }))

  it.scopedLive("bad list parameters get 400 naming the parameter", () =>
    Effect.gen(function* () {
      const server = yield* startApiServer
      const get = (query: string) =>
        request(`${server.url}/api/v1/conversations?${query}`, { token: server.token })
      for (
        const [query, part] of [
          ["limit=201", "limit: expected an integer from 1 to 200"],
          ["limit=0", "limit: expected an integer from 1 to 200"],
          ["status=closed", "status: expected one of open, pending, resolved"],
          ["assignee=bob", "assignee: expected an operator id (a ULID) or none"],
          ["cursor=not-a-cursor", "cursor: expected a cursor as returned in nextCursor"],
        ] as const
      ) {
        const answer = yield* get(query)
        assert.strictEqual(answer.status, 400, query)
        assert.include(answer.body.message, part)
      }
    }))

  it.scopedLive("GET /api/v1/conversations/{id} answers the conversation with its contact, 404 if unknown", () =>
    Effect.gen(function* () {
      const server = yield* startApiServer
      const { contact, conversation } = yield* seedConversation(server.store, "api", "c1", 2)
      const found = yield* request(`${server.url}/api/v1/conversations/${conversation.id}`, {
        token: server.token,
      })
      assert.strictEqual(found.status, 200, found.text)
      assert.strictEqual(found.body.id, conversation.id)
      assert.strictEqual(found.body.lastSeq, 2)
      assert.strictEqual(found.body.status, "open")
      assert.strictEqual(found.body.contact.id, contact.id)
      assert.strictEqual(found.body.contact.name, "Customer c1")

      const missing = yield* request(`${server.url}/api/v1/conversations/${UNKNOWN}`, {
        token: server.token,
      })
      assert.strictEqual(missing.status, 404)
      assert.strictEqual(missing.body._tag, "ConversationNotFound")
      const malformed = yield* request(`${server.url}/api/v1/conversations/nope`, {
        token: server.token,
      })
      assert.strictEqual(malformed.status, 400)
      assert.include(malformed.body.message, "id: expected a ULID")
    }))

  it.scopedLive("GET /api/v1/conversations/{id}/messages pages newest first with before=", () =>
    Effect.gen(function* () {
      const server = yield* startApiServer
      const { conversation, identity } = yield* seedConversation(server.store, "api", "m1", 25)
      const page = (query: string) =>
        request(`${server.url}/api/v1/conversations/${conversation.id}/messages${query}`, {
          token: server.token,
        })
      const first = yield* page("?limit=10")
      assert.strictEqual(first.status, 200, first.text)
      const seqs = (r: { body: { messages: Array<{ seq: number }> } }) =>
        r.body.messages.map((m) => m.seq)
      assert.deepStrictEqual(seqs(first), [25, 24, 23, 22, 21, 20, 19, 18, 17, 16])
      assert.strictEqual(first.body.nextBefore, 16)
      const newest = first.body.messages[0]
      assert.deepInclude(newest, {
        direction: "in",
        text: "#25",
        channel: "api",
        account: "main",
        identityId: identity.id,
        externalId: "m1-25",
        conversationId: conversation.id,
        attachments: [],
      })
      const second = yield* page(`?limit=10&before=${first.body.nextBefore}`)
      assert.deepStrictEqual(seqs(second), [15, 14, 13, 12, 11, 10, 9, 8, 7, 6])
      const third = yield* page(`?limit=10&before=${second.body.nextBefore}`)
      assert.deepStrictEqual(seqs(third), [5, 4, 3, 2, 1])
      assert.isNull(third.body.nextBefore)
      // Default page size 50: all 25 at once.
      const all = yield* page("")
      assert.lengthOf(all.body.messages, 25)
      assert.isNull(all.body.nextBefore)

      const missing = yield* request(`${server.url}/api/v1/conversations/${UNKNOWN}/messages`, {
        token: server.token,
      })
      assert.strictEqual(missing.status, 404)
      assert.strictEqual(missing.body._tag, "ConversationNotFound")
    }))

  it.scopedLive("GET /api/v1/contacts/{id} answers the contact with its channel identities, 404 if unknown", () =>
    Effect.gen(function* () {
      const server = yield* startApiServer
      const { contact, identity } = yield* seedConversation(server.store, "telegram", "p1", 1)
      const found = yield* request(`${server.url}/api/v1/contacts/${contact.id}`, {
        token: server.token,
      })
      assert.strictEqual(found.status, 200, found.text)
      assert.strictEqual(found.body.id, contact.id)
      assert.lengthOf(found.body.identities, 1)
      assert.deepInclude(found.body.identities[0], {
        id: identity.id,
        contactId: contact.id,
        channel: "telegram",
        account: "main",
        externalId: "p1",
        email: "p1@example.com",
        verification: "claimed",
        reachable: true,
      })
      const missing = yield* request(`${server.url}/api/v1/contacts/${UNKNOWN}`, {
        token: server.token,
      })
      assert.strictEqual(missing.status, 404)
      assert.strictEqual(missing.body._tag, "ContactNotFound")
    }))

  it.scopedLive("every read endpoint needs a token: 401 without one", () =>
    Effect.gen(function* () {
      const server = yield* startApiServer
      const { contact, conversation } = yield* seedConversation(server.store, "api", "t1", 1)
      for (
        const path of [
          "/api/v1/conversations",
          `/api/v1/conversations/${conversation.id}`,
          `/api/v1/conversations/${conversation.id}/messages`,
          `/api/v1/contacts/${contact.id}`,
        ]
      ) {
        const none = yield* request(`${server.url}${path}`, { token: null })
        const wrong = yield* request(`${server.url}${path}`, { token: "chorus_nope" })
        assert.strictEqual(none.status, 401, path)
        assert.strictEqual(wrong.status, 401, path)
        assert.strictEqual(none.text, "")
      }
    }))

  it.scopedLive("the OpenAPI document describes the new endpoints with bearer security", () =>
    Effect.gen(function* () {
      const server = yield* startApiServer
      const doc = (yield* request(`${server.url}/api/openapi.json`, { token: null })).body
      for (
        const [path, method] of [
          ["/api/v1/inbound", "post"],
          ["/api/v1/conversations", "get"],
          ["/api/v1/conversations/{id}", "get"],
          ["/api/v1/conversations/{id}/messages", "get"],
          ["/api/v1/contacts/{id}", "get"],
        ] as const
      ) {
        const operation = doc.paths[path]?.[method]
        assert.isDefined(operation, `${method} ${path}`)
        assert.deepStrictEqual(operation.security, [{ bearer: [] }, { session: [] }])
        assert.property(operation.responses, "401")
      }
      assert.property(doc.paths["/api/v1/inbound"].post.responses, "202")
      assert.property(doc.paths["/api/v1/inbound"].post.responses, "503")
      assert.property(doc.paths["/api/v1/conversations/{id}"].get.responses, "404")
      for (const schema of ["ApiInboundRequest", "Conversation", "Message", "ChannelIdentity"]) {
        assert.property(doc.components.schemas, schema)
      }
    }))
})
