/**
 * The seeds' scenario end to end, through the bus and the API: a customer writes on WhatsApp
 * (verified number), then on Telegram (and shares the same number with the contact button),
 * gives an e-mail address (claimed) and finally writes from it (verified). One contact, one
 * timeline, the right flags, and a reply that goes out where the customer wrote last.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { tempDir } from "../support/TestDatabase.ts"
import { eventually, recordEvents, startReplyServer } from "../api/ReplyServer.ts"
import { api, deliver, ofType } from "./IdentityServer.ts"

const PHONE = "+79161234567"

describe("Identity: one customer across channels", () => {
  it.scopedLive("WhatsApp, Telegram (same phone shared), then e-mail: one contact, one timeline, a reply on the last channel", () =>
    Effect.gen(function* () {
      const server = yield* startReplyServer({ dataDir: yield* tempDir() })
      const events = yield* recordEvents(server.bus)

      // 1. WhatsApp: the provider vouches for the number (wa_id).
      const wa = yield* deliver(server.bus, events, {
        channel: "whatsapp",
        account: "biz-1",
        sender: { externalId: "79161234567", name: "Anna Petrova", phone: PHONE, verified: true },
        externalId: "wamid.1",
        text: "Hello, my order 1042 has not arrived",
      })
      const anna = yield* api(server, `/contacts?phone=${encodeURIComponent("8 916 123-45-67")}`)
      // A national format is not E.164 without a country: search takes E.164 or +… forms.
      assert.deepStrictEqual(anna.contacts, [])
      const byPhone = yield* api(
        server,
        `/contacts?phone=${encodeURIComponent("+7 916 123 45 67")}`,
      )
      assert.strictEqual(byPhone.contacts.length, 1)
      const annaId = byPhone.contacts[0].id

      // 2. Telegram: a new identity, not yet known to be Anna: its own contact.
      const tg1 = yield* deliver(server.bus, events, {
        channel: "telegram",
        account: "bot-1",
        sender: { externalId: "5551", name: "Anna" },
        externalId: "tg.1",
        text: "Writing here instead",
      })
      const tgContact = (yield* api(server, `/contacts?externalId=5551`)).contacts[0]
      assert.notStrictEqual(tgContact.id, annaId)
      assert.notStrictEqual(tg1.conversationId, wa.conversationId)

      // ... then shares their phone with the contact button: verified = verified → one contact.
      const tg2 = yield* deliver(server.bus, events, {
        channel: "telegram",
        account: "bot-1",
        sender: { externalId: "5551", name: "Anna", phone: PHONE, verified: true },
        externalId: "tg.2",
        text: "(contact shared)",
      })
      yield* eventually("automatic merge", () => ofType(events, "contact.merged").length === 1)
      const automatic = ofType(events, "contact.merged")[0]!.merge
      assert.strictEqual(automatic.kind, "automatic")
      assert.strictEqual(automatic.targetId, annaId, "the older contact keeps its id")
      assert.strictEqual(automatic.sourceId, tgContact.id)
      assert.strictEqual(automatic.mergedBy, "system")
      assert.strictEqual(automatic.evidence[0]!.rule, "same_verified_phone")
      // Messages after the merge land with Anna: her newest open conversation.
      assert.strictEqual(
        (yield* api(server, `/conversations/${tg2.conversationId}`)).contactId,
        annaId,
      )

      // 3. Anna types her e-mail address to the operator: claimed, nothing more.
      yield* api(server, `/contacts/${annaId}/signals`, {
        body: { signals: [{ kind: "email", value: " Anna.P@Example.com " }] },
      })
      let profile = yield* api(server, `/contacts/${annaId}/profile`)
      assert.deepStrictEqual(profile.emails, [
        { value: "anna.p@example.com", verification: "claimed", sources: ["api"] },
      ])

      // 4. She writes from it: a verified e-mail equal to a claimed one is a suggestion.
      yield* deliver(server.bus, events, {
        channel: "email",
        account: "support@shop.example",
        sender: {
          externalId: "anna.p@example.com",
          name: "Anna Petrova",
          email: "anna.p@example.com",
          verified: true,
        },
        externalId: "<m1@example.com>",
        text: "Following up by mail",
      })
      assert.strictEqual(ofType(events, "contact.merged").length, 1, "no automatic merge")
      yield* eventually(
        "suggestion",
        () => ofType(events, "contact.suggestion_created").length === 1,
      )
      const suggestions = (yield* api(server, `/contacts/suggestions?contactId=${annaId}`))
        .suggestions
      assert.strictEqual(suggestions.length, 1)
      assert.deepStrictEqual(suggestions[0].evidence.map((e: any) => [e.rule, e.value]), [[
        "same_email",
        "anna.p@example.com",
      ]])
      // The operator accepts it, keeping Anna.
      const accepted = yield* api(server, `/contacts/suggestions/${suggestions[0].id}/accept`, {
        body: { targetId: annaId },
      })
      assert.strictEqual(accepted.merge.kind, "suggestion")
      assert.strictEqual(accepted.suggestion.status, "accepted")

      // One contact with three identities, the right flags, one timeline.
      profile = yield* api(server, `/contacts/${annaId}/profile`)
      assert.deepStrictEqual(
        profile.identities.map((i: any) => [i.channel, i.verification]).sort(),
        [["email", "verified"], ["telegram", "verified"], ["whatsapp", "verified"]],
      )
      assert.deepStrictEqual(profile.phones, [
        { value: PHONE, verification: "verified", sources: ["telegram:sender", "whatsapp:sender"] },
      ])
      assert.deepStrictEqual(profile.emails, [
        { value: "anna.p@example.com", verification: "verified", sources: ["api", "email:sender"] },
      ])
      for (
        const query of [
          "phone=%2B79161234567",
          "email=ANNA.P%40example.com",
          "externalId=5551",
          "name=anna%20p",
        ]
      ) {
        const found = (yield* api(server, `/contacts?${query}`)).contacts
        assert.deepStrictEqual(found.map((c: any) => c.id), [annaId], query)
      }
      const timeline = yield* api(server, `/contacts/${annaId}/timeline?limit=3`)
      assert.deepStrictEqual(
        timeline.messages.map((m: any) => [m.channel, m.text]),
        [
          ["email", "Following up by mail"],
          ["telegram", "(contact shared)"],
          ["telegram", "Writing here instead"],
        ],
      )
      const older = yield* api(
        server,
        `/contacts/${annaId}/timeline?limit=3&cursor=${timeline.nextCursor}`,
      )
      assert.deepStrictEqual(older.messages.map((m: any) => m.channel), ["whatsapp"])
      assert.strictEqual(older.nextCursor, null)

      // The operator answers in the WhatsApp conversation: it goes out by e-mail, where Anna
      // wrote last, and says why; picking WhatsApp is recorded as the operator's choice.
      const reply = yield* api(server, `/conversations/${wa.conversationId}/messages`, {
        body: { text: "Your parcel left the warehouse today" },
        status: 202,
      })
      assert.strictEqual(reply.channel, "email")
      assert.strictEqual(reply.channelReason, "last_used")
      const waIdentity = profile.identities.find((i: any) => i.channel === "whatsapp")
      const chosen = yield* api(server, `/conversations/${wa.conversationId}/messages`, {
        body: { text: "Also here on WhatsApp", identityId: waIdentity.id },
        status: 202,
      })
      assert.strictEqual(chosen.channel, "whatsapp")
      assert.strictEqual(chosen.channelReason, "operator_choice")
      // The mailbox bounces: the default becomes the most recent channel that still reaches her.
      yield* server.database.query(
        "bounce",
        (db) =>
          db.updateTable("channel_identities").set({ reachable: 0 }).where("channel", "=", "email")
            .execute(),
      )
      const fallback = yield* api(server, `/conversations/${wa.conversationId}/messages`, {
        body: { text: "Trying another channel" },
        status: 202,
      })
      assert.strictEqual(fallback.channel, "telegram")
      assert.strictEqual(fallback.channelReason, "last_reachable")

      // Every merge is on record, and on the bus for CRMs.
      const merges = (yield* api(server, `/contacts/${annaId}/merges`)).merges
      assert.deepStrictEqual(merges.map((m: any) => m.kind), ["suggestion", "automatic"])
      // Profile changes are events too: the phone WhatsApp proved, the e-mail Anna gave.
      const updates = ofType(events, "contact.updated").filter((e) => e.contact.id === annaId)
      assert.isTrue(updates.some((e) => e.contact.phones[0]?.verification === "verified"))
      assert.isTrue(
        updates.some((e) =>
          e.changed.includes("signals") &&
          e.contact.emails.some((m) => m.value === "anna.p@example.com")
        ),
      )
    }))

  it.scopedLive("an answer to an earlier message stays in that message's conversation", () =>
    Effect.gen(function* () {
      const server = yield* startReplyServer({ dataDir: yield* tempDir() })
      const events = yield* recordEvents(server.bus)
      const sender = { externalId: "bob@example.com", email: "bob@example.com", verified: true }
      const first = yield* deliver(server.bus, events, {
        channel: "email",
        account: "support",
        sender,
        externalId: "<a@example.com>",
        text: "Question one",
      })
      // Bob has a second open conversation, newer (per-channel inboxes, an operator's): new
      // messages go there, unless they answer a message of the first.
      const contactId = (yield* api(server, `/contacts?email=bob@example.com`)).contacts[0].id
      const newer = "01KAW0000000000000000NEWER"
      yield* server.database.query(
        "second conversation",
        (db) =>
          db.insertInto("conversations").values({
            id: newer,
            contact_id: contactId,
            status: "open",
            assignee_id: null,
            last_channel: "email",
            last_account: "support",
            last_identity_id: first.identityId,
            last_seq: 0,
            created_at: Date.now() + 1000,
            updated_at: Date.now() + 1000,
            last_message_at: null,
            resolved_at: null,
          }).execute(),
      )
      yield* server.store.forgetContacts([contactId])
      const plain = yield* deliver(server.bus, events, {
        channel: "email",
        account: "support",
        sender,
        externalId: "<b@example.com>",
        text: "Another question",
      })
      assert.strictEqual(plain.conversationId, newer)
      const answer = yield* deliver(server.bus, events, {
        channel: "email",
        account: "support",
        sender,
        externalId: "<c@example.com>",
        text: "Re: Question one",
        inReplyTo: ["<unknown@example.com>", "<a@example.com>"],
      })
      assert.strictEqual(answer.conversationId, first.conversationId)
    }))

  it.scopedLive("one open conversation per contact across channels by default; per channel where the inbox says so", () =>
    Effect.gen(function* () {
      const server = yield* startReplyServer({ dataDir: yield* tempDir() })
      const events = yield* recordEvents(server.bus)
      const write = (channel: string, id: string, phone: string, externalId: string) =>
        deliver(server.bus, events, {
          channel,
          account: "acc-1",
          sender: { externalId: id, phone, verified: true },
          externalId,
          text: externalId,
        })
      // The same verified phone on WhatsApp then Telegram: merged, and one conversation.
      const wa = yield* write("whatsapp", "79165550001", "+79165550001", "wa-1")
      const tg = yield* write("telegram", "t1", "+79165550001", "tg-1")
      assert.strictEqual(tg.conversationId, wa.conversationId)
      assert.strictEqual(tg.channel, "telegram", "each message keeps its channel")

      // Telegram inboxes keep their own conversations from now on.
      yield* api(server, `/inboxes/telegram/*/conversation-mode`, {
        method: "PUT",
        body: { mode: "per_channel" },
      })
      const wa2 = yield* write("whatsapp", "79165550002", "+79165550002", "wa-2")
      const tg2 = yield* write("telegram", "t2", "+79165550002", "tg-2")
      const tg3 = yield* write("telegram", "t2", "+79165550002", "tg-3")
      assert.notStrictEqual(tg2.conversationId, wa2.conversationId)
      assert.strictEqual(tg3.conversationId, tg2.conversationId)
      const contact = (yield* api(server, `/conversations/${wa2.conversationId}`)).contactId
      assert.strictEqual(
        (yield* api(server, `/conversations/${tg2.conversationId}`)).contactId,
        contact,
      )
      // The WhatsApp side still gathers by contact.
      const wa3 = yield* write("whatsapp", "79165550002", "+79165550002", "wa-3")
      assert.strictEqual(wa3.conversationId, wa2.conversationId)
    }))
})

describe("Identity: the Profile API in the OpenAPI document", () => {
  it.scopedLive("documents search, profile, timeline, merge, split, suggestions and import", () =>
    Effect.gen(function* () {
      const server = yield* startReplyServer({ dataDir: yield* tempDir() })
      const doc = yield* Effect.promise(() =>
        fetch(`${server.url}/api/openapi.json`).then((r) => r.json() as Promise<any>)
      )
      for (
        const [path, method] of [
          ["/api/v1/contacts", "get"],
          ["/api/v1/contacts/{id}/profile", "get"],
          ["/api/v1/contacts/{id}", "patch"],
          ["/api/v1/contacts/{id}/signals", "post"],
          ["/api/v1/contacts/{id}/timeline", "get"],
          ["/api/v1/contacts/merge", "post"],
          ["/api/v1/contacts/merges/{id}/split", "post"],
          ["/api/v1/contacts/suggestions", "get"],
          ["/api/v1/contacts/suggestions/{id}/accept", "post"],
          ["/api/v1/contacts/import", "post"],
        ] as const
      ) {
        assert.isDefined(doc.paths[path]?.[method], `${method} ${path}`)
      }
      assert.isDefined(doc.paths["/api/v1/contacts/merge"].post.responses["409"])
    }))
})
