/**
 * The leader's outbox sweep: a reply committed `queued` whose publish never happened (its node
 * died between the commit and the publish, after the relay at start had run) is published by the
 * next sweep once it is older than the grace period, and sent exactly once however many sweeps
 * follow. A server as `chorus start` builds it (embedded bus, SQLite, always the leader).
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Option } from "effect"
import { tempDir } from "../support/TestDatabase.ts"
import { webhookReceiver } from "../support/WebhookReceiver.ts"
import { eventually, seedConversation, startReplyServer } from "../api/ReplyServer.ts"

describe("the outbox sweep", () => {
  it.scopedLive("publishes a queued reply that never reached the bus, after its grace, once", () =>
    Effect.gen(function* () {
      const receiver = yield* webhookReceiver
      const server = yield* startReplyServer({
        dataDir: yield* tempDir(),
        webhookUrl: receiver.url,
        outbox: { interval: "300 millis", grace: "1500 millis" },
      })
      const { conversation, identity } = yield* seedConversation(server.store, {
        account: "shop",
        sender: "stranded",
      })
      // The relay at start is long done; now a reply is committed as a node that dies before
      // its publish leaves it: in the store, `queued`, and nowhere on the bus.
      yield* Effect.sleep("500 millis")
      const committedAt = Date.now()
      const stored = yield* server.outbound.appendOutbound({
        conversationId: conversation.id,
        seq: 2,
        recipient: identity,
        text: "stranded between commit and publish",
        attachments: [],
        clientId: undefined,
        authorId: null,
      })
      assert.strictEqual(stored._tag, "Stored")
      const id = stored.message.id

      yield* eventually("the webhook POST", () => receiver.received.length >= 1, "5 seconds")
      const tookMs = receiver.received[0]!.at - committedAt
      assert.isAtLeast(tookMs, 1_500, "sent before its grace: not by the sweep")
      assert.strictEqual(receiver.received[0]!.headers["x-chorus-delivery"], id)
      yield* eventually(
        "the reply is sent",
        () =>
          server.outbound.reply(id).pipe(
            Effect.map((r) => Option.isSome(r) && r.value.message.delivery.state === "sent"),
          ),
        "3 seconds",
      )
      // Several more sweeps: nothing is queued any more, nothing is sent again.
      yield* Effect.sleep("1500 millis")
      assert.lengthOf(receiver.received, 1)
      const metrics = yield* Effect.promise(() =>
        fetch(`${server.url}/metrics`, { headers: { authorization: `Bearer ${server.token}` } })
          .then((r) => r.text())
      )
      assert.match(metrics, /^chorus_outbox_republished_total 1$/m)
    }))
})
