/**
 * Replies end to end: `POST /api/v1/conversations/{id}/messages` → conversation actor → outbox →
 * outbound stream → channel actor → the `api` channel's webhook, a real HTTP receiver on
 * loopback, on a real SQLite file and the embedded bus (and PostgreSQL + JetStream).
 */
import { createHmac } from "node:crypto"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Option } from "effect"
import { publishOutbound } from "../../actors/conversation/Replies.ts"
import { outboundKey, outboundSubject } from "../../core/pipeline/Streams.ts"
import type { ChorusEvent } from "../../schemas/Events.ts"
import { freshNamespace } from "../support/NatsCleanup.ts"
import { POSTGRES_URL, scratchSchema, tempDir } from "../support/TestDatabase.ts"
import { testNatsUrl } from "../support/TestServices.ts"
import { webhookReceiver } from "../support/WebhookReceiver.ts"
import { request } from "./ApiServer.ts"
import { eventually, recordEvents, seedConversation, startReplyServer } from "./ReplyServer.ts"

const SECRET = "whsec_test_8f2c"

const verify = (secret: string, headers: Record<string, unknown>, body: string): boolean => {
  const timestamp = String(headers["x-chorus-timestamp"])
  const expected = `sha256=${
    createHmac("sha256", secret).update(`${timestamp}.${body}`).digest("hex")
  }`
  return headers["x-chorus-signature"] === expected
}

const eventsOf = (events: ReadonlyArray<ChorusEvent>, type: string, messageId: string) =>
  events.filter((e) =>
    e.type === type &&
    ((e.type === "message.sent" && e.message.id === messageId) ||
      (e.type === "message.delivery_changed" && e.messageId === messageId))
  )

/** A PostgreSQL schema and a JetStream namespace of the test's own. */
const sharedBackends = Effect.gen(function* () {
  return {
    databaseUrl: POSTGRES_URL,
    schema: yield* scratchSchema("t_reply"),
    natsUrl: testNatsUrl,
    namespace: yield* freshNamespace("reply"),
  }
})

const happyPath = (backends: "embedded" | "shared") =>
  Effect.gen(function* () {
    const receiver = yield* webhookReceiver
    const shared = backends === "shared" ? yield* sharedBackends : undefined
    const server = yield* startReplyServer({
      dataDir: yield* tempDir(),
      webhookUrl: receiver.url,
      webhookSecret: SECRET,
      ...(shared ? { shared } : {}),
    })
    const events = yield* recordEvents(server.bus)
    const { conversation, identity } = yield* seedConversation(server.store, {
      account: "shop",
      sender: "customer-42",
    })

    const answer = yield* request(
      `${server.url}/api/v1/conversations/${conversation.id}/messages`,
      {
        token: server.token,
        body: { text: "It left the warehouse today." },
      },
    )
    assert.strictEqual(answer.status, 202, answer.text)
    const reply = answer.body
    assert.deepInclude(reply, {
      direction: "out",
      conversationId: conversation.id,
      seq: 2,
      channel: "api",
      account: "shop",
      identityId: identity.id,
      text: "It left the warehouse today.",
      externalId: null,
      authorId: null,
    })
    assert.strictEqual(reply.delivery.state, "queued")

    // Exactly one signed POST, in the documented format.
    yield* eventually("the webhook POST", () => receiver.received.length >= 1)
    const [post] = receiver.received
    assert.isTrue(verify(SECRET, post!.headers, post!.body), "signature verifies")
    assert.isFalse(verify("another secret", post!.headers, post!.body))
    assert.strictEqual(post!.headers["x-chorus-delivery"], reply.id)
    assert.strictEqual(post!.headers["content-type"], "application/json")
    assert.deepStrictEqual(post!.json, {
      type: "message.outbound",
      id: reply.id,
      conversationId: conversation.id,
      account: "shop",
      recipient: { id: "customer-42" },
      text: "It left the warehouse today.",
      attachments: [],
      createdAt: reply.createdAt,
    })

    // queued → sent, with the id the receiver answered.
    yield* eventually("state sent", () =>
      request(`${server.url}/api/v1/conversations/${conversation.id}/messages`, {
        token: server.token,
      }).pipe(Effect.map((r) =>
        r.body.messages[0]?.delivery?.state === "sent"
      )))
    const history = yield* request(
      `${server.url}/api/v1/conversations/${conversation.id}/messages`,
      { token: server.token },
    )
    assert.deepStrictEqual(history.body.messages.map((m: { seq: number }) => m.seq), [2, 1])
    assert.strictEqual(history.body.messages[0].externalId, "ext-0")

    // Both events on the events stream.
    yield* eventually("message.sent and message.delivery_changed", () =>
      eventsOf(events, "message.sent", reply.id).length === 1 &&
      eventsOf(events, "message.delivery_changed", reply.id).length === 1)
    const changed = eventsOf(events, "message.delivery_changed", reply.id)[0]!
    assert.strictEqual(changed.type, "message.delivery_changed")
    if (changed.type === "message.delivery_changed") {
      assert.strictEqual(changed.delivery.state, "sent")
      assert.strictEqual(changed.externalId, "ext-0")
      assert.strictEqual(changed.attempts, 1)
      assert.strictEqual(changed.seq, 2)
    }
    const sent = eventsOf(events, "message.sent", reply.id)[0]!
    const sentAt = events.indexOf(sent)
    assert.isBelow(sentAt, events.indexOf(changed), "message.sent comes first")

    // And still one POST a while later.
    yield* Effect.sleep("300 millis")
    assert.lengthOf(receiver.received, 1)
  })

/** An embedded server whose api webhook is `receiver` (none: no webhook configured). */
const setup = (options: { readonly webhook: boolean }) =>
  Effect.gen(function* () {
    const receiver = yield* webhookReceiver
    const server = yield* startReplyServer({
      dataDir: yield* tempDir(),
      ...(options.webhook ? { webhookUrl: receiver.url, webhookSecret: SECRET } : {}),
    })
    const events = yield* recordEvents(server.bus)
    return { receiver, server, events }
  })

type Server = Effect.Effect.Success<ReturnType<typeof startReplyServer>>

const postReply = (
  server: Server,
  conversationId: string,
  body: unknown,
  idempotencyKey?: string,
) =>
  Effect.promise(async () => {
    const response = await fetch(`${server.url}/api/v1/conversations/${conversationId}/messages`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${server.token}`,
        "content-type": "application/json",
        ...(idempotencyKey !== undefined ? { "idempotency-key": idempotencyKey } : {}),
      },
      body: JSON.stringify(body),
    })
    const text = await response.text()
    return {
      status: response.status,
      headers: response.headers,
      text,
      body: text.length > 0 ? JSON.parse(text) : undefined,
    }
  })

// deno-lint-ignore no-explicit-any -- JSON bodies, inspected by the tests
const history = (server: Server, conversationId: string): Effect.Effect<Array<any>> =>
  request(`${server.url}/api/v1/conversations/${conversationId}/messages`, {
    token: server.token,
  }).pipe(Effect.map((r) => r.body.messages))

/** The reply's delivery once it is no longer queued. */
const settled = (server: Server, conversationId: string, messageId: string) =>
  Effect.gen(function* () {
    yield* eventually(
      `delivery of ${messageId} settled`,
      () =>
        history(server, conversationId).pipe(
          Effect.map((ms) => ms.find((m) => m.id === messageId)?.delivery?.state !== "queued"),
        ),
    )
    return (yield* history(server, conversationId)).find((m) => m.id === messageId)
  })

const outboxAfterRestart = (backends: "embedded" | "shared") =>
  Effect.gen(function* () {
    const receiver = yield* webhookReceiver
    const shared = backends === "shared" ? yield* sharedBackends : undefined
    const options = {
      dataDir: yield* tempDir(),
      webhookUrl: receiver.url,
      webhookSecret: SECRET,
      ...(shared ? { shared } : {}),
    }
    const first = yield* Effect.scoped(Effect.gen(function* () {
      const server = yield* startReplyServer(options)
      const { conversation, identity } = yield* seedConversation(server.store, {
        account: "shop",
        sender: "o",
      })
      // What the conversation actor commits for a reply, without the publish that follows.
      const stored = yield* server.outbound.appendOutbound({
        conversationId: conversation.id,
        seq: 2,
        recipient: identity,
        text: "from the outbox",
        attachments: [],
        clientId: undefined,
        authorId: null,
      })
      yield* Effect.sleep("300 millis")
      assert.lengthOf(receiver.received, 0, "nothing sends an unpublished reply")
      return { conversationId: conversation.id, messageId: stored.message.id }
    }))

    const server = yield* startReplyServer(options)
    const events = yield* recordEvents(server.bus)
    const message = yield* settled(server, first.conversationId, first.messageId)
    assert.strictEqual(message.delivery.state, "sent")
    assert.lengthOf(receiver.received, 1)
    assert.strictEqual(receiver.received[0]!.headers["x-chorus-delivery"], first.messageId)
    assert.strictEqual(receiver.received[0]!.json.text, "from the outbox")
    yield* eventually(
      "message.sent relayed with the reply",
      () => eventsOf(events, "message.sent", first.messageId).length === 1,
    )
    // The conversation's actor numbers the next reply after it.
    const next = yield* postReply(server, first.conversationId, { text: "and one more" })
    assert.strictEqual(next.body.seq, 3)
  })

describe("replies", () => {
  it.scopedLive("a reply is POSTed once, signed, to the api webhook; queued → sent, with message.sent and message.delivery_changed", () =>
    happyPath("embedded"))

  it.scopedLive("the same on PostgreSQL and JetStream", () => happyPath("shared"))

  it.scopedLive("503 twice then 200: sent once, on the third attempt, with the same delivery id each time", () =>
    Effect.gen(function* () {
      const { receiver, server, events } = yield* setup({ webhook: true })
      receiver.answer = (_r, n) =>
        n < 2 ? { status: 503, body: "overloaded" } : { status: 200, body: '{"id":"ext-ok"}' }
      const { conversation } = yield* seedConversation(server.store, {
        account: "shop",
        sender: "a",
      })
      const reply = (yield* postReply(server, conversation.id, { text: "retry me" })).body
      const message = yield* settled(server, conversation.id, reply.id)
      assert.strictEqual(message.delivery.state, "sent")
      assert.strictEqual(message.externalId, "ext-ok")
      assert.lengthOf(receiver.received, 3)
      assert.deepStrictEqual(
        receiver.received.map((r) => r.headers["x-chorus-delivery"]),
        [reply.id, reply.id, reply.id],
      )
      const stored = yield* server.outbound.reply(reply.id)
      assert.strictEqual(Option.getOrThrow(stored).attempts, 3)
      yield* eventually(
        "delivery_changed with attempts",
        () => eventsOf(events, "message.delivery_changed", reply.id).length === 1,
      )
      const changed = eventsOf(events, "message.delivery_changed", reply.id)[0]
      assert.strictEqual(changed?.type === "message.delivery_changed" && changed.attempts, 3)
      yield* Effect.sleep("200 millis")
      assert.lengthOf(receiver.received, 3)
    }))

  it.scopedLive("429 with Retry-After: the next attempt waits as long as the receiver asked", () =>
    Effect.gen(function* () {
      const { receiver, server } = yield* setup({ webhook: true })
      receiver.answer = (_r, n) =>
        n === 0 ? { status: 429, headers: { "retry-after": "1" } } : { status: 200 }
      const { conversation } = yield* seedConversation(server.store, {
        account: "shop",
        sender: "b",
      })
      const reply = (yield* postReply(server, conversation.id, { text: "slow down" })).body
      const message = yield* settled(server, conversation.id, reply.id)
      assert.strictEqual(message.delivery.state, "sent")
      // No id in the answer: the provider id is the message id.
      assert.strictEqual(message.externalId, reply.id)
      assert.lengthOf(receiver.received, 2)
      const waited = receiver.received[1]!.at - receiver.received[0]!.at
      // The policy's own first delay is 20 ms; Retry-After asked for 1 s.
      assert.isAtLeast(waited, 950, `waited ${waited} ms`)
    }))

  it.scopedLive("400 from the receiver: failed at once with the provider's error, visible in the history", () =>
    Effect.gen(function* () {
      const { receiver, server, events } = yield* setup({ webhook: true })
      receiver.answer = () => ({ status: 400, body: '{"error":"unknown recipient"}' })
      const { conversation } = yield* seedConversation(server.store, {
        account: "shop",
        sender: "c",
      })
      const reply = (yield* postReply(server, conversation.id, { text: "hello?" })).body
      const message = yield* settled(server, conversation.id, reply.id)
      assert.strictEqual(message.delivery.state, "failed")
      assert.strictEqual(message.delivery.error.code, "400")
      assert.isFalse(message.delivery.error.retryable)
      assert.include(message.delivery.error.message, "unknown recipient")
      assert.isNull(message.externalId)
      assert.lengthOf(receiver.received, 1)
      yield* eventually(
        "delivery_changed failed",
        () =>
          eventsOf(events, "message.delivery_changed", reply.id).some((e) =>
            e.type === "message.delivery_changed" && e.delivery.state === "failed"
          ),
      )
    }))

  it.scopedLive("no webhook configured: failed, not retried, and the reason names the setting", () =>
    Effect.gen(function* () {
      const { receiver, server } = yield* setup({ webhook: false })
      const { conversation } = yield* seedConversation(server.store, {
        account: "shop",
        sender: "d",
      })
      const reply = (yield* postReply(server, conversation.id, { text: "anyone?" })).body
      const message = yield* settled(server, conversation.id, reply.id)
      assert.strictEqual(message.delivery.state, "failed")
      assert.strictEqual(message.delivery.error.code, "not_configured")
      assert.include(message.delivery.error.message, "channels.api.webhookUrl")
      assert.include(message.delivery.error.message, "CHORUS_API_WEBHOOK_URL")
      assert.lengthOf(receiver.received, 0)
    }))

  it.scopedLive("a channel with no adapter on this node: failed with that reason, never dropped", () =>
    Effect.gen(function* () {
      const { receiver, server } = yield* setup({ webhook: true })
      const { conversation } = yield* seedConversation(server.store, {
        channel: "telegram",
        account: "bot1",
        sender: "e",
      })
      const reply = (yield* postReply(server, conversation.id, { text: "hi on telegram" })).body
      assert.strictEqual(reply.channel, "telegram")
      const message = yield* settled(server, conversation.id, reply.id)
      assert.strictEqual(message.delivery.state, "failed")
      assert.strictEqual(message.delivery.error.code, "no_adapter")
      assert.include(message.delivery.error.message, "telegram")
      assert.lengthOf(receiver.received, 0)
    }))

  it.scopedLive("one account's hanging receiver does not delay another account's replies", () =>
    Effect.gen(function* () {
      const { receiver, server } = yield* setup({ webhook: true })
      receiver.answer = (r) => (r.json?.account === "slow" ? "hang" : { status: 200 })
      // Before the server stops (finalizers run last-in first-out), let the hanging POST end.
      yield* Effect.addFinalizer(() => Effect.sync(() => receiver.release()))
      const slow = yield* seedConversation(server.store, { account: "slow", sender: "s" })
      const fast = yield* seedConversation(server.store, { account: "fast", sender: "f" })
      const stuck = (yield* postReply(server, slow.conversation.id, { text: "1" })).body
      yield* eventually("the slow POST arrived", () => receiver.received.length === 1)
      const started = Date.now()
      const replies = []
      for (let i = 0; i < 3; i++) {
        replies.push((yield* postReply(server, fast.conversation.id, { text: `fast ${i}` })).body)
      }
      for (const reply of replies) {
        const message = yield* settled(server, fast.conversation.id, reply.id)
        assert.strictEqual(message.delivery.state, "sent")
      }
      const took = Date.now() - started
      // All done while the slow account's first attempt still hangs (it times out after 3 s):
      // had they waited behind it, they could not have finished before its retries.
      assert.lengthOf(receiver.received.filter((r) => r.json?.account === "slow"), 1)
      assert.isBelow(took, 3_000, `fast account took ${took} ms`)
      const slowMessage = (yield* history(server, slow.conversation.id)).find((m) =>
        m.id === stuck.id
      )
      assert.strictEqual(slowMessage.delivery.state, "queued")
      assert.deepStrictEqual(
        receiver.received.filter((r) => r.json?.account === "fast").map((r) => r.json.text),
        ["fast 0", "fast 1", "fast 2"],
      )
    }))

  it.scopedLive("outbox: a reply stored but never published (the process died) is published and delivered by the next start", () =>
    outboxAfterRestart("embedded"))

  it.scopedLive("the outbox after a restart, on PostgreSQL and JetStream", () =>
    outboxAfterRestart("shared"))

  it.scopedLive("a duplicate outbound message for a reply already sent is skipped: no second POST", () =>
    Effect.gen(function* () {
      const { receiver, server } = yield* setup({ webhook: true })
      const { conversation } = yield* seedConversation(server.store, {
        account: "shop",
        sender: "g",
      })
      const reply = (yield* postReply(server, conversation.id, { text: "once" })).body
      const sent = yield* settled(server, conversation.id, reply.id)
      assert.strictEqual(sent.delivery.state, "sent")

      // The same reply on the outbound stream again, under a bus id the bus has not seen (as a
      // relay after the duplicate window would publish it).
      const again = yield* server.bus.publish(
        outboundSubject("api"),
        new TextEncoder().encode(JSON.stringify({ message: reply })),
        { id: `${reply.id}:again`, key: outboundKey(reply.conversationId) },
      )
      assert.isFalse(again.duplicate)
      // A later reply on the same account is handled after it (same ordering key).
      const next = (yield* postReply(server, conversation.id, { text: "twice?" })).body
      assert.strictEqual((yield* settled(server, conversation.id, next.id)).delivery.state, "sent")
      assert.deepStrictEqual(
        receiver.received.map((r) => r.headers["x-chorus-delivery"]),
        [reply.id, next.id],
      )
      // The outbox relay (run at every start) skips it the same way.
      assert.strictEqual(yield* server.relayOutbox, 0)
    }))

  it.scopedLive("the same Idempotency-Key (or clientId) again stores nothing new and answers the stored reply", () =>
    Effect.gen(function* () {
      const { receiver, server } = yield* setup({ webhook: true })
      const { conversation } = yield* seedConversation(server.store, {
        account: "shop",
        sender: "h",
      })
      const first = yield* postReply(server, conversation.id, { text: "only once" }, "key-1")
      const retry = yield* postReply(server, conversation.id, { text: "only once" }, "key-1")
      assert.strictEqual(first.status, 202, first.text)
      assert.strictEqual(retry.status, 202, retry.text)
      assert.isNull(first.headers.get("idempotent-replayed"))
      assert.strictEqual(retry.headers.get("idempotent-replayed"), "true")
      assert.strictEqual(retry.body.id, first.body.id)
      assert.strictEqual(retry.body.seq, 2)

      const byBody = yield* postReply(server, conversation.id, { text: "b", clientId: "key-2" })
      const byBodyAgain = yield* postReply(server, conversation.id, {
        text: "b",
        clientId: "key-2",
      })
      // The header and the field are the same key.
      const byHeader = yield* postReply(server, conversation.id, { text: "b" }, "key-2")
      assert.strictEqual(byBody.body.seq, 3)
      assert.strictEqual(byBodyAgain.body.id, byBody.body.id)
      assert.strictEqual(byHeader.body.id, byBody.body.id)
      const conflict = yield* postReply(server, conversation.id, { text: "c", clientId: "x" }, "y")
      assert.strictEqual(conflict.status, 400)
      assert.include(conflict.body.message, "clientId: differs from the Idempotency-Key header")

      yield* settled(server, conversation.id, byBody.body.id)
      yield* settled(server, conversation.id, first.body.id)
      const messages = yield* history(server, conversation.id)
      assert.deepStrictEqual(messages.map((m) => m.seq), [3, 2, 1])
      yield* Effect.sleep("200 millis")
      assert.lengthOf(receiver.received, 2)
    }))

  it.scopedLive("refusals: 404 unknown conversation, 400 naming the field, 401 without a token, 422 for an identity not the contact's, 409 for a resolved conversation", () =>
    Effect.gen(function* () {
      const { receiver, server } = yield* setup({ webhook: true })
      const { conversation } = yield* seedConversation(server.store, {
        account: "shop",
        sender: "i",
      })
      const other = yield* seedConversation(server.store, { account: "shop", sender: "j" })

      const unknown = yield* postReply(server, "01JD0000000000000000000000", { text: "hi" })
      assert.strictEqual(unknown.status, 404)
      assert.strictEqual(unknown.body._tag, "ConversationNotFound")
      const malformedId = yield* postReply(server, "nope", { text: "hi" })
      assert.strictEqual(malformedId.status, 400)
      assert.include(malformedId.body.message, "id: expected a ULID")

      for (
        const [body, part] of [
          [{}, "text: is missing"],
          [{ text: 42 }, "text: Expected string, actual 42"],
          [{ text: "   " }, "text: expected a non-empty text (or at least one attachment)"],
          [{ text: "hi", identityId: "x" }, "identityId: expected a ULID"],
          [{ text: "hi", attachments: [{ name: "a.pdf" }] }, "attachments[0].mimeType: is missing"],
          [{ text: "hi", txet: "typo" }, "txet: is unexpected"],
        ] as const
      ) {
        const answer = yield* postReply(server, conversation.id, body)
        assert.strictEqual(answer.status, 400, JSON.stringify(body))
        assert.include(answer.body.message, part, JSON.stringify(body))
      }
      const notJson = yield* request(
        `${server.url}/api/v1/conversations/${conversation.id}/messages`,
        {
          token: server.token,
          rawBody: "{ not json",
        },
      )
      assert.strictEqual(notJson.status, 400)
      assert.strictEqual(notJson.body.message, "body: expected a JSON object")

      const noToken = yield* request(
        `${server.url}/api/v1/conversations/${conversation.id}/messages`,
        {
          token: null,
          body: { text: "hi" },
        },
      )
      assert.strictEqual(noToken.status, 401)

      const foreign = yield* postReply(server, conversation.id, {
        text: "hi",
        identityId: other.identity.id,
      })
      assert.strictEqual(foreign.status, 422)
      assert.strictEqual(foreign.body._tag, "ReplyRejected")
      assert.strictEqual(foreign.body.field, "identityId")

      // A resolved conversation takes no more messages (its actor owns the status).
      const resolved = yield* seedConversation(server.store, { account: "shop", sender: "k" })
      yield* server.database.query(
        "resolve",
        (db) =>
          db.updateTable("conversations").set({ status: "resolved" })
            .where("id", "=", resolved.conversation.id).execute(),
      )
      const closed = yield* postReply(server, resolved.conversation.id, { text: "too late" })
      assert.strictEqual(closed.status, 409, closed.text)
      assert.strictEqual(closed.body._tag, "ConversationClosed")
      assert.deepStrictEqual(
        (yield* history(server, resolved.conversation.id)).map((m) => m.seq),
        [1],
      )

      // Nothing of this was stored or sent.
      assert.deepStrictEqual((yield* history(server, conversation.id)).map((m) => m.seq), [1])
      yield* Effect.sleep("200 millis")
      assert.lengthOf(receiver.received, 0)
    }))

  it.scopedLive("the reply endpoint is in the OpenAPI document behind the bearer scheme", () =>
    Effect.gen(function* () {
      const { server } = yield* setup({ webhook: false })
      const doc = (yield* request(`${server.url}/api/openapi.json`, { token: null })).body
      const operation = doc.paths["/api/v1/conversations/{id}/messages"].post
      assert.isDefined(operation)
      assert.deepStrictEqual(operation.security, [{ bearer: [] }, { session: [] }])
      assert.includeMembers(Object.keys(operation.responses), ["202", "400", "404", "409", "422"])
    }))

  it.scopedLive("replies and customer messages arriving at once in one conversation are numbered gap-free by its actor", () =>
    Effect.gen(function* () {
      const { server } = yield* setup({ webhook: true })
      const { conversation } = yield* seedConversation(server.store, {
        account: "shop",
        sender: "customer-7",
      })
      const replies = Array.from({ length: 20 }, (_, i) => i)
      const inbound = Array.from({ length: 20 }, (_, i) => i)
      yield* Effect.all([
        Effect.forEach(
          replies,
          (i) =>
            postReply(server, conversation.id, { text: `reply ${i}` }).pipe(
              Effect.tap((r) => assert.strictEqual(r.status, 202, r.text)),
            ),
          { concurrency: "unbounded" },
        ),
        Effect.forEach(
          inbound,
          (i) =>
            request(`${server.url}/api/v1/inbound`, {
              token: server.token,
              body: {
                account: "shop",
                sender: { id: "customer-7" },
                externalId: `customer-7-m${i}`,
                text: `question ${i}`,
              },
            }).pipe(Effect.tap((r) => assert.strictEqual(r.status, 202, r.text))),
          { concurrency: "unbounded" },
        ),
      ], { concurrency: "unbounded" })
      yield* eventually(
        "all 41 messages stored",
        () =>
          request(`${server.url}/api/v1/conversations/${conversation.id}/messages?limit=100`, {
            token: server.token,
          }).pipe(Effect.map((r) => r.body.messages.length === 41)),
      )
      const messages = (yield* request(
        `${server.url}/api/v1/conversations/${conversation.id}/messages?limit=100`,
        { token: server.token },
      )).body.messages as Array<{ seq: number; direction: string }>
      assert.deepStrictEqual(
        messages.map((m) => m.seq),
        Array.from({ length: 41 }, (_, i) => 41 - i),
      )
      assert.strictEqual(messages.filter((m) => m.direction === "out").length, 20)
      const conversationNow = yield* request(
        `${server.url}/api/v1/conversations/${conversation.id}`,
        { token: server.token },
      )
      assert.strictEqual(conversationNow.body.lastSeq, 41)
    }))

  it.scopedLive("a reply recorded as sent whose event was lost (crash after the commit) gets its message.delivery_changed on redelivery, without a second POST", () =>
    Effect.gen(function* () {
      const { receiver, server, events } = yield* setup({ webhook: true })
      const { conversation, identity } = yield* seedConversation(server.store, {
        account: "shop",
        sender: "l",
      })
      // What a channel actor committed before the process died: the reply is sent.
      const stored = yield* server.outbound.appendOutbound({
        conversationId: conversation.id,
        seq: 2,
        recipient: identity,
        text: "sent before the crash",
        attachments: [],
        clientId: undefined,
        authorId: null,
      })
      yield* server.outbound.recordDelivery({
        messageId: stored.message.id,
        outcome: { state: "sent", externalId: "prov-1" },
        attempts: 1,
      })
      // The bus redelivers the reply (it was never acknowledged).
      yield* publishOutbound(server.bus, stored.message)
      yield* eventually(
        "message.delivery_changed for the recorded state",
        () => eventsOf(events, "message.delivery_changed", stored.message.id).length === 1,
      )
      const changed = eventsOf(events, "message.delivery_changed", stored.message.id)[0]!
      assert.isTrue(
        changed.type === "message.delivery_changed" && changed.delivery.state === "sent" &&
          changed.externalId === "prov-1",
      )
      yield* Effect.sleep("200 millis")
      assert.lengthOf(receiver.received, 0)
    }))
})
