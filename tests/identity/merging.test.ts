/**
 * Merging safely: two people sharing a claimed e-mail are never merged automatically; a merge
 * followed by a split puts everything back exactly; two operators merging the same contacts at
 * once leave them consistent (one wins, the other gets 409); an operator reaches only the
 * contacts of their teams.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import type { DatabaseShape } from "../../core/storage/Database.ts"
import { freshNamespace } from "../support/NatsCleanup.ts"
import { POSTGRES_URL, scratchSchema, tempDir } from "../support/TestDatabase.ts"
import { testNatsUrl } from "../support/TestServices.ts"
import { addOperator, signIn } from "../inbox/InboxClient.ts"
import { request } from "../api/ApiServer.ts"
import { eventually, recordEvents, startReplyServer } from "../api/ReplyServer.ts"
import { api, deliver, ofType, publish } from "./IdentityServer.ts"

const customer = (
  channel: string,
  id: string,
  extra: { readonly phone?: string; readonly email?: string; readonly verified?: boolean } = {},
) => ({
  channel,
  account: "acc-1",
  sender: { externalId: id, name: `Customer ${id}`, ...extra },
})

/** Everything that belongs to a contact, as stored (times that record "last changed" aside). */
const snapshot = (database: DatabaseShape, contactId: string) =>
  database.query("snapshot", async (db) => {
    const contact = await db.selectFrom("contacts").selectAll().where("id", "=", contactId)
      .executeTakeFirstOrThrow()
    const { version: _v, updated_at: _u, ...kept } = contact
    const identities = await db.selectFrom("channel_identities").selectAll()
      .where("contact_id", "=", contactId).orderBy("id").execute()
    const signals = await db.selectFrom("identity_signals").selectAll()
      .where("contact_id", "=", contactId).orderBy("id").execute()
    const conversations = (await db.selectFrom("conversations").selectAll()
      .where("contact_id", "=", contactId).orderBy("id").execute())
      .map(({ updated_at: _, ...rest }) => rest)
    const messages = conversations.length === 0 ? [] : await db.selectFrom("messages").selectAll()
      .where("conversation_id", "in", conversations.map((c) => c.id))
      .orderBy("conversation_id").orderBy("seq").execute()
    return { contact: kept, identities, signals, conversations, messages }
  })

describe("Identity: merging safely", () => {
  it.scopedLive("two people sharing a claimed e-mail are never merged automatically: suggestions instead", () =>
    Effect.gen(function* () {
      const server = yield* startReplyServer({ dataDir: yield* tempDir() })
      const events = yield* recordEvents(server.bus)
      const mum = yield* deliver(server.bus, events, {
        ...customer("whatsapp", "79160000001", { phone: "+79160000001", verified: true }),
        externalId: "w1",
        text: "Hi from mum",
      })
      const son = yield* deliver(server.bus, events, {
        ...customer("telegram", "777", { phone: "+79160000002", verified: true }),
        externalId: "t1",
        text: "Hi from son",
      })
      const mumId = (yield* api(server, `/conversations/${mum.conversationId}`)).contactId
      const sonId = (yield* api(server, `/conversations/${son.conversationId}`)).contactId
      // Both give the family address (typed in: claimed; one through the channel, unverified).
      yield* api(server, `/contacts/${mumId}/signals`, {
        body: { signals: [{ kind: "email", value: "family@example.com" }] },
      })
      yield* deliver(server.bus, events, {
        ...customer("telegram", "777", { email: "Family@Example.com", verified: false }),
        externalId: "t2",
        text: "my e-mail is Family@Example.com",
      })
      // Then mail arrives from that address (verified): a third contact, suggested twice.
      yield* deliver(server.bus, events, {
        ...customer("email", "family@example.com", { email: "family@example.com", verified: true }),
        externalId: "<e1@example.com>",
        text: "Hello from the family mailbox",
      })
      assert.strictEqual(ofType(events, "contact.merged").length, 0)
      const live = yield* server.database.query(
        "live contacts",
        (db) => db.selectFrom("contacts").select("id").where("merged_into", "is", null).execute(),
      )
      assert.strictEqual(live.length, 3)
      const suggestions = (yield* api(server, `/contacts/suggestions`)).suggestions
      assert.strictEqual(suggestions.length, 3, "each pair once")
      for (const s of suggestions) {
        assert.deepStrictEqual(s.evidence.map((e: any) => [e.rule, e.value]), [[
          "same_email",
          "family@example.com",
        ]])
      }
      const pairOf = (s: any) => [s.contactA, s.contactB].sort().join(",")
      assert.include(suggestions.map(pairOf), [mumId, sonId].sort().join(","))
      // Rejected: the pair is not suggested again when the son writes once more.
      const mumAndSon = suggestions.find((s: any) => pairOf(s) === [mumId, sonId].sort().join(","))
      yield* api(server, `/contacts/suggestions/${mumAndSon.id}/reject`, { method: "POST" })
      yield* api(server, `/contacts/${sonId}/signals`, {
        body: { signals: [{ kind: "email", value: "family@example.com" }] },
      })
      const open = (yield* api(server, `/contacts/suggestions`)).suggestions
      assert.strictEqual(open.length, 2)
      const rejected = (yield* api(server, `/contacts/suggestions?status=rejected`)).suggestions
      assert.deepStrictEqual(rejected.map((s: any) => s.id), [mumAndSon.id])
      // Accepting a rejected one is a conflict, not a merge.
      const late = yield* request(
        `${server.url}/api/v1/contacts/suggestions/${mumAndSon.id}/accept`,
        { token: server.token, body: {} },
      )
      assert.strictEqual(late.status, 409)
    }))

  it.scopedLive("a merge followed by a split restores both contacts exactly", () =>
    Effect.gen(function* () {
      const server = yield* startReplyServer({ dataDir: yield* tempDir() })
      const events = yield* recordEvents(server.bus)
      const a1 = yield* deliver(server.bus, events, {
        ...customer("whatsapp", "79161110000", { phone: "+79161110000", verified: true }),
        externalId: "a1",
        text: "A first",
      })
      yield* deliver(server.bus, events, {
        ...customer("whatsapp", "79161110000", { phone: "+79161110000", verified: true }),
        externalId: "a2",
        text: "A second",
      })
      const b1 = yield* deliver(server.bus, events, {
        ...customer("telegram", "42", { phone: "+79162220000", verified: true }),
        externalId: "b1",
        text: "B first",
      })
      const aId = (yield* api(server, `/conversations/${a1.conversationId}`)).contactId
      const bId = (yield* api(server, `/conversations/${b1.conversationId}`)).contactId
      yield* api(server, `/contacts/${aId}`, {
        method: "PATCH",
        body: { custom: { plan: "gold" } },
      })
      yield* api(server, `/contacts/${bId}`, {
        method: "PATCH",
        body: { name: null, custom: { plan: "free", city: "Kazan" } },
      })
      yield* api(server, `/contacts/${bId}/signals`, {
        body: { signals: [{ kind: "email", value: "b@example.com" }] },
      })
      const beforeA = yield* snapshot(server.database, aId)
      const beforeB = yield* snapshot(server.database, bId)

      const merge = yield* api(server, `/contacts/merge`, {
        body: { targetId: aId, sourceId: bId, reason: "same person, said on the phone" },
      })
      assert.deepStrictEqual(merge.moved, { identities: 1, signals: 2, conversations: 1 })
      assert.match(merge.mergedBy, /^token:/)
      const merged = yield* api(server, `/contacts/${aId}/profile`)
      assert.strictEqual(merged.identities.length, 2)
      assert.deepStrictEqual(merged.custom, { plan: "gold", city: "Kazan" })
      const gone = yield* api(server, `/contacts/${bId}/profile`)
      assert.strictEqual(gone.mergedInto, aId)
      // While merged, B's next message goes to A.
      const b2 = yield* deliver(server.bus, events, {
        ...customer("telegram", "42", { phone: "+79162220000", verified: true }),
        externalId: "b2",
        text: "B after the merge",
      })
      assert.strictEqual((yield* api(server, `/conversations/${b2.conversationId}`)).contactId, aId)
      assert.strictEqual(b2.conversationId, b1.conversationId)

      const split = yield* api(server, `/contacts/merges/${merge.id}/split`, {
        body: { reason: "two people after all" },
      })
      assert.isNotNull(split.splitAt)
      const afterA = yield* snapshot(server.database, aId)
      const afterB = yield* snapshot(server.database, bId)
      assert.deepStrictEqual(afterA, beforeA)
      // B's conversation came back with the message it received meanwhile.
      assert.deepStrictEqual(
        { ...afterB, messages: afterB.messages.filter((m) => m.external_id !== "b2") },
        { ...beforeB, conversations: afterB.conversations },
      )
      assert.deepStrictEqual(
        afterB.conversations.map((
          { last_seq: _, last_message_at: __, unread_count: ___, waiting_since: ____, ...c },
        ) => c),
        beforeB.conversations.map((
          { last_seq: _, last_message_at: __, unread_count: ___, waiting_since: ____, ...c },
        ) => c),
      )
      // B writes again: B's, not A's.
      const b3 = yield* deliver(server.bus, events, {
        ...customer("telegram", "42", { phone: "+79162220000", verified: true }),
        externalId: "b3",
        text: "B after the split",
      })
      assert.strictEqual((yield* api(server, `/conversations/${b3.conversationId}`)).contactId, bId)
      // A second split of the same merge is a conflict; the record tells the story.
      const again = yield* request(`${server.url}/api/v1/contacts/merges/${merge.id}/split`, {
        token: server.token,
        body: { reason: "again" },
      })
      assert.strictEqual(again.status, 409)
      assert.deepStrictEqual(ofType(events, "contact.split").map((e) => e.merge.id), [merge.id])
      const history = (yield* api(server, `/contacts/${bId}/merges`)).merges
      assert.strictEqual(history[0].splitReason, "two people after all")
    }))

  const concurrent = (backends: "embedded" | "shared") =>
    Effect.gen(function* () {
      const shared = backends === "shared"
        ? {
          databaseUrl: POSTGRES_URL,
          schema: yield* scratchSchema("t_ident"),
          natsUrl: testNatsUrl,
          namespace: yield* freshNamespace("ident"),
        }
        : undefined
      const server = yield* startReplyServer({
        dataDir: yield* tempDir(),
        ...(shared !== undefined ? { shared } : {}),
      })
      const events = yield* recordEvents(server.bus)
      const ids: Array<string> = []
      for (const n of [1, 2, 3]) {
        const m = yield* deliver(server.bus, events, {
          ...customer("telegram", `c${n}`),
          externalId: `c${n}-1`,
          text: `contact ${n}`,
        })
        ids.push((yield* api(server, `/conversations/${m.conversationId}`)).contactId)
      }
      const [a, b, c] = ids as [string, string, string]
      const merge = (targetId: string, sourceId: string, versions?: object) =>
        request(`${server.url}/api/v1/contacts/merge`, {
          token: server.token,
          body: {
            targetId,
            sourceId,
            reason: "race",
            ...(versions !== undefined ? { expectedVersions: versions } : {}),
          },
        })
      // Two operators on the same pair (having both seen version 1), one the other way round,
      // and a third contact pulled in meanwhile.
      const answers = yield* Effect.all([
        merge(a, b, { target: 1, source: 1 }),
        merge(a, b, { target: 1, source: 1 }),
        merge(b, a),
        merge(c, a),
        merge(b, c),
      ], { concurrency: "unbounded" })
      const statuses = answers.map((r) => r.status)
      for (const s of statuses) {
        assert.include(
          [200, 409],
          s,
          JSON.stringify(answers.map((r) => r.text)),
        )
      }
      const pair = statuses.slice(0, 3).filter((s) => s === 200).length
      assert.isAtMost(pair, 1, "the same pair merged once at most")
      assert.isAtMost(statuses.filter((s) => s === 200).length, 2, "three contacts, two merges")
      for (const answer of answers.filter((r) => r.status === 409)) {
        assert.strictEqual((answer.body as any)._tag, "ContactConflict")
      }
      // Consistent: every identity and conversation belongs to a live contact, and the live
      // contacts are three minus the merges that won.
      const state = yield* server.database.query("state", async (db) => ({
        contacts: await db.selectFrom("contacts").select(["id", "merged_into"]).execute(),
        identities: await db.selectFrom("channel_identities").select("contact_id").execute(),
        conversations: await db.selectFrom("conversations").select("contact_id").execute(),
        merges: await db.selectFrom("contact_merges").select(["target_id", "source_id"]).execute(),
      }))
      const live = new Set(state.contacts.filter((x) => x.merged_into === null).map((x) => x.id))
      const won = statuses.filter((s) => s === 200).length
      assert.isAtLeast(won, 1, "some merge wins")
      assert.strictEqual(live.size, 3 - won)
      assert.strictEqual(state.merges.length, won)
      for (const i of state.identities) assert.isTrue(live.has(i.contact_id))
      for (const x of state.conversations) assert.isTrue(live.has(x.contact_id))
      // And a message from each customer still lands with their (live) contact.
      for (const n of [1, 2, 3]) {
        const m = yield* deliver(server.bus, events, {
          ...customer("telegram", `c${n}`),
          externalId: `c${n}-2`,
          text: `again ${n}`,
        })
        assert.isTrue(
          live.has((yield* api(server, `/conversations/${m.conversationId}`)).contactId),
        )
      }
    })

  it.scopedLive("concurrent merges of the same contacts end consistent (SQLite)", () =>
    concurrent("embedded"))
  it.scopedLive(
    "concurrent merges of the same contacts end consistent (PostgreSQL)",
    () => concurrent("shared"),
    60_000,
  )

  it.scopedLive(
    "first messages of one person on two channels at once still end as one contact (PostgreSQL, JetStream)",
    () =>
      Effect.gen(function* () {
        const server = yield* startReplyServer({
          dataDir: yield* tempDir(),
          shared: {
            databaseUrl: POSTGRES_URL,
            schema: yield* scratchSchema("t_ident"),
            natsUrl: testNatsUrl,
            namespace: yield* freshNamespace("ident"),
          },
        })
        const events = yield* recordEvents(server.bus)
        for (let n = 0; n < 5; n++) {
          const phone = `+7916444000${n}`
          yield* Effect.all([
            publish(server.bus, {
              ...customer("whatsapp", phone.slice(1), { phone, verified: true }),
              externalId: `race-w${n}`,
              text: "hi",
            }),
            publish(server.bus, {
              ...customer("telegram", `race-${n}`, { phone, verified: true }),
              externalId: `race-t${n}`,
              text: "hi",
            }),
          ], { concurrency: 2 })
        }
        yield* eventually(
          "ten messages stored",
          () => ofType(events, "message.received").length === 10,
          "10 seconds",
        )
        yield* eventually("five merges", () => ofType(events, "contact.merged").length === 5)
        const live = yield* server.database.query("live", (db) =>
          db.selectFrom("contacts").select("id").where("merged_into", "is", null).execute())
        assert.strictEqual(live.length, 5)
      }),
    60_000,
  )

  it.scopedLive("an operator reaches only the contacts of their teams' conversations", () =>
    Effect.gen(function* () {
      const server = yield* startReplyServer({ dataDir: yield* tempDir() })
      const events = yield* recordEvents(server.bus)
      const team = yield* server.teams.add("Sales").pipe(Effect.orDie)
      yield* server.teams.claimInbox(team.id, { channel: "whatsapp", account: "acc-1" })
        .pipe(Effect.orDie)
      yield* addOperator(server, { email: "olga@example.com", teamIds: [team.id] })
      const mine = yield* deliver(server.bus, events, {
        ...customer("whatsapp", "79163330000", { phone: "+79163330000", verified: true }),
        externalId: "v1",
        text: "visible",
      })
      const other = yield* deliver(server.bus, events, {
        ...customer("telegram", "99"),
        externalId: "h1",
        text: "hidden",
      })
      const mineId = (yield* api(server, `/conversations/${mine.conversationId}`)).contactId
      const otherId = (yield* api(server, `/conversations/${other.conversationId}`)).contactId
      const olga = yield* signIn(server.url, "olga@example.com")
      assert.strictEqual((yield* olga.api("GET", `/contacts/${mineId}/profile`)).status, 200)
      assert.strictEqual((yield* olga.api("GET", `/contacts/${otherId}/profile`)).status, 404)
      assert.strictEqual((yield* olga.api("GET", `/contacts/${otherId}/timeline`)).status, 404)
      const found = yield* olga.api("GET", `/contacts?name=customer`)
      assert.deepStrictEqual(found.body.contacts.map((c: any) => c.id), [mineId])
      const merge = yield* olga.api("POST", `/contacts/merge`, {
        targetId: mineId,
        sourceId: otherId,
        reason: "guess",
      })
      assert.strictEqual(merge.status, 404)
      const imported = yield* olga.api("POST", `/contacts/import`, { format: "json", contacts: [] })
      assert.strictEqual(imported.status, 403)
      // The token sees both.
      const all = (yield* api(server, `/contacts?name=customer`)).contacts
      assert.strictEqual(all.length, 2)
    }))
})
