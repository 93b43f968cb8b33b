/**
 * Replies end to end: `POST /api/v1/conversations/{id}/messages` → conversation actor → outbox →
 * outbound stream → channel actor → the `api` channel's webhook, a real HTTP receiver on
 * loopback, on a real SQLite file and the embedded bus (and PostgreSQL + JetStream).
 */
import { createHmac } from "node:crypto"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
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

const happyPath = (backends: "embedded" | "shared") =>
  Effect.gen(function* () {
    const receiver = yield* webhookReceiver
    const shared = backends === "shared"
      ? {
        databaseUrl: POSTGRES_URL,
        schema: yield* scratchSchema("t_reply"),
        natsUrl: testNatsUrl,
        namespace: yield* freshNamespace("reply"),
      }
      : undefined
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

describe("replies", () => {
  it.scopedLive("a reply is POSTed once, signed, to the api webhook; queued → sent, with message.sent and message.delivery_changed", () =>
    happyPath("embedded"))

  it.scopedLive("the same on PostgreSQL and JetStream", () => happyPath("shared"))
})
