import * as IdentityGraph from "../../core/identity/IdentityGraph.ts"
import { HttpServer } from "@effect/platform"
import { ChannelAccounts } from "../../actors/channel/ChannelAccounts.ts"
import { Recovery } from "../../actors/channel/Recovery.ts"
import * as Policy from "../../core/delivery/Policy.ts"
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Layer, Queue, Redacted, Ref, Schedule, Schema } from "effect"
import * as ConversationActor from "../../actors/conversation/ConversationActor.ts"
import * as ConversationStore from "../../actors/conversation/ConversationStore.ts"
import * as OutboundWrites from "../../actors/conversation/OutboundWrites.ts"
import { Replies } from "../../actors/conversation/Replies.ts"
import { ApiTokens } from "../../core/auth/ApiTokens.ts"
import { Bus, type BusMessage, BusUnavailable } from "../../core/bus/Bus.ts"
import * as EmbeddedBus from "../../core/bus/EmbeddedBus.ts"
import * as Leadership from "../../core/cluster/mod.ts"
import {
  AttachmentsLive,
  InboxLive,
  PluginHostLive,
  RoutingLive,
  StorageLive,
} from "../../core/Chorus.ts"
import { Config } from "../../core/config/ChorusConfig.ts"
import { decodeConfig } from "../../core/config/loadConfig.ts"
import * as ChorusHttp from "../../core/http/HttpServer.ts"
import { InboundStream } from "../../core/pipeline/Streams.ts"
import { InboundMessage } from "../../schemas/Inbound.ts"
import { tempDir } from "../support/TestDatabase.ts"
import { request, startApiServer, startApiServerOn } from "./ApiServer.ts"

/** Every message published on `inbound.api`, as a test consumer of its own sees them. */
const collectInbound = (bus: Context.Tag.Service<typeof Bus>) =>
  Effect.gen(function* () {
    const queue = yield* Queue.unbounded<BusMessage>()
    yield* bus.consume(
      { stream: InboundStream.name, name: "api-test-reader", filter: "inbound.api" },
      (message) => Queue.offer(queue, message).pipe(Effect.asVoid),
    )
    return queue
  })

const takeWithin = (queue: Queue.Queue<BusMessage>) =>
  Queue.take(queue).pipe(
    Effect.timeoutFail({
      duration: "10 seconds",
      onTimeout: () => new Error("nothing on the bus"),
    }),
  )

const decodeMessage = (message: BusMessage) =>
  Schema.decodeUnknownSync(Schema.parseJson(InboundMessage))(new TextDecoder().decode(message.data))

const valid = {
  account: "shop",
  sender: { id: "customer-42", name: "Ann", email: "ann@example.com" } as Record<string, unknown>,
  externalId: "order-chat-1",
  text: "Where is my parcel?",
  sentAt: "2026-11-23T10:00:00Z",
}

describe("POST /api/v1/inbound", () => {
  it.scopedLive("answers 202 once the message is on the bus, as an InboundMessage of channel api", () =>
    Effect.gen(function* () {
      const server = yield* startApiServer
      const inbound = yield* collectInbound(server.bus)
      const answer = yield* request(`${server.url}/api/v1/inbound`, {
        token: server.token,
        body: valid,
      })
      assert.strictEqual(answer.status, 202, answer.text)
      assert.deepStrictEqual(answer.body, { id: "api:shop:order-chat-1", duplicate: false })

      const message = yield* takeWithin(inbound)
      assert.strictEqual(message.subject, "inbound.api")
      assert.strictEqual(message.id, "api:shop:order-chat-1")
      assert.strictEqual(message.key, "api:shop:customer-42")
      const decoded = decodeMessage(message)
      assert.strictEqual(decoded.channel, "api")
      assert.strictEqual(decoded.account, "shop")
      assert.deepStrictEqual<object>(decoded.sender, {
        externalId: "customer-42",
        name: "Ann",
        email: "ann@example.com",
        verified: false,
      })
      assert.strictEqual(decoded.text, "Where is my parcel?")
      assert.strictEqual(decoded.sentAt.toISOString(), "2026-11-23T10:00:00.000Z")
      assert.isBelow(Math.abs(decoded.receivedAt.getTime() - Date.now()), 60_000)
      assert.deepStrictEqual(decoded.attachments, [])
    }))

  it.scopedLive("without sentAt the message is dated when it was received", () =>
    Effect.gen(function* () {
      const server = yield* startApiServer
      const inbound = yield* collectInbound(server.bus)
      const { sentAt: _, ...undated } = valid
      const answer = yield* request(`${server.url}/api/v1/inbound`, {
        token: server.token,
        body: {
          ...undated,
          attachments: [{
            name: "label.pdf",
            mimeType: "application/pdf",
            size: 1234,
            url: "https://files.example.com/label.pdf",
          }],
        },
      })
      assert.strictEqual(answer.status, 202, answer.text)
      const decoded = decodeMessage(yield* takeWithin(inbound))
      assert.strictEqual(decoded.sentAt.getTime(), decoded.receivedAt.getTime())
      assert.strictEqual(
        decoded.attachments[0]?.url?.toString(),
        "https://files.example.com/label.pdf",
      )
    }))

  it.scopedLive("the same externalId again answers duplicate: true and stays one message on the bus", () =>
    Effect.gen(function* () {
      const server = yield* startApiServer
      const inbound = yield* collectInbound(server.bus)
      const post = (body: object) =>
        request(`${server.url}/api/v1/inbound`, { token: server.token, body })
      const first = yield* post(valid)
      const again = yield* post({ ...valid, text: "a retry, maybe with other text" })
      const other = yield* post({ ...valid, externalId: "order-chat-2" })
      assert.deepStrictEqual([first.status, again.status, other.status], [202, 202, 202])
      assert.isFalse(first.body.duplicate)
      assert.deepStrictEqual(again.body, { id: first.body.id, duplicate: true })
      assert.isFalse(other.body.duplicate)

      const seen = [yield* takeWithin(inbound), yield* takeWithin(inbound)].map((m) => m.id)
      yield* Effect.sleep("500 millis")
      assert.sameMembers(seen, ["api:shop:order-chat-1", "api:shop:order-chat-2"])
      assert.strictEqual(yield* Queue.size(inbound), 0)
    }))

  it.scopedLive("a malformed body gets 400 naming each wrong field", () =>
    Effect.gen(function* () {
      const server = yield* startApiServer
      const post = (body: unknown) =>
        request(`${server.url}/api/v1/inbound`, { token: server.token, body })
      const cases: ReadonlyArray<readonly [unknown, ReadonlyArray<string>]> = [
        [{ ...valid, sender: { name: "Ann" } }, ["sender.id: is missing"]],
        [{ ...valid, sender: { id: "" } }, ["sender.id: expected a non-empty string"]],
        [{ ...valid, text: 42 }, ["text: Expected string, actual 42"]],
        [{ ...valid, sender: { id: "c-1", email: "not-an-address" } }, [
          "sender.email: expected an e-mail address",
        ]],
        [{ ...valid, sentAt: "yesterday" }, [
          "sentAt: expected an ISO 8601 date-time with a time zone, e.g. 2026-11-23T20:15:00Z",
        ]],
        // Every problem at once, not only the first.
        [{ ...valid, sender: { id: 7 }, externalId: "", sentAt: "2026-11-23 10:00" }, [
          "sender.id: Expected string, actual 7",
          "externalId: expected a non-empty string",
          "sentAt: expected an ISO 8601",
        ]],
        // A misspelt optional field is an error, not silently dropped.
        [{ ...valid, sentat: "2026-11-23T10:00:00Z" }, ["sentat: is unexpected"]],
        [{ ...valid, attachments: [{ name: "a.png", mimeType: "image/png", size: -1 }] }, [
          "attachments[0].size",
        ]],
        [[1, 2], ["body: Expected"]],
      ]
      for (const [body, expected] of cases) {
        const answer = yield* post(body)
        assert.strictEqual(answer.status, 400, JSON.stringify(body))
        assert.strictEqual(answer.body._tag, "HttpApiDecodeError")
        for (const part of expected) assert.include(answer.body.message, part)
        assert.isAbove(answer.body.issues.length, 0)
      }
      const missing = yield* post({ ...valid, sender: { name: "Ann" } })
      assert.deepStrictEqual(missing.body.issues[0].path, ["sender", "id"])

      const notJson = yield* request(`${server.url}/api/v1/inbound`, {
        token: server.token,
        rawBody: "{ not json",
      })
      assert.strictEqual(notJson.status, 400)
      assert.strictEqual(notJson.body.message, "body: expected a JSON object (at most 1 MiB)")
    }))

  it.scopedLive("the ingest hot path (a front route) answers exactly as the HttpApi app does", () =>
    Effect.gen(function* () {
      const server = yield* startApiServer
      const inbound = yield* collectInbound(server.bus)
      // A declared Content-Length takes the front route; a chunked body goes to the app.
      const both = (options: { readonly body?: unknown; readonly rawBody?: string }) =>
        Effect.all([
          request(`${server.url}/api/v1/inbound`, { token: server.token, ...options }),
          request(`${server.url}/api/v1/inbound`, {
            token: server.token,
            chunked: true,
            ...options,
          }),
        ])
      type Answer = { status: number; body: unknown; headers: Headers }
      const same = (label: string, [front, app]: readonly [Answer, Answer]) => {
        assert.strictEqual(front.status, app.status, label)
        // The same JSON (keys may come in another order).
        assert.deepStrictEqual(front.body, app.body, label)
        assert.strictEqual(
          front.headers.get("content-type"),
          app.headers.get("content-type"),
          label,
        )
      }
      for (
        const body of [
          { ...valid, sender: { name: "Ann" } },
          { ...valid, sender: { id: 7 }, externalId: "", sentAt: "2026-11-23 10:00" },
          { ...valid, sentat: "2026-11-23T10:00:00Z" },
          { ...valid, text: "x".repeat(100_001) },
          [1, 2],
          "a string",
          null,
        ]
      ) same(JSON.stringify(body).slice(0, 60), yield* both({ body }))
      same("not JSON", yield* both({ rawBody: "{ not json" }))
      same("empty", yield* both({ rawBody: "" }))

      // The same message through both: one is the first, the other its duplicate, with one id.
      const [front, app] = yield* both({ body: { ...valid, externalId: "via-both" } })
      assert.deepStrictEqual([front.status, app.status], [202, 202])
      assert.strictEqual(front.body.id, app.body.id)
      assert.sameMembers([front.body.duplicate, app.body.duplicate], [true, false])
      assert.strictEqual(decodeMessage(yield* takeWithin(inbound)).externalId, "via-both")

      // A refused token is the app's 401, with its challenge, whichever way the body comes.
      for (const chunked of [false, true]) {
        const refused = yield* request(`${server.url}/api/v1/inbound`, {
          token: "chorus_wrong",
          body: valid,
          chunked,
        })
        assert.strictEqual(refused.status, 401)
        assert.strictEqual(refused.headers.get("www-authenticate"), 'Bearer realm="chorus"')
      }
      yield* Effect.sleep("300 millis")
      assert.strictEqual(yield* Queue.size(inbound), 0)
    }))

  it.scopedLive("a text over 100,000 characters gets 400, a body over 1 MiB 413; nothing is published", () =>
    Effect.gen(function* () {
      const server = yield* startApiServer
      const inbound = yield* collectInbound(server.bus)
      const long = yield* request(`${server.url}/api/v1/inbound`, {
        token: server.token,
        body: { ...valid, text: "x".repeat(100_001) },
      })
      assert.strictEqual(long.status, 400)
      assert.include(long.body.message, "text: expected at most 100,000 characters")
      const huge = yield* request(`${server.url}/api/v1/inbound`, {
        token: server.token,
        body: { ...valid, attachments: [], text: "y", padding: "z".repeat(1_100_000) },
      })
      assert.strictEqual(huge.status, 413)
      assert.strictEqual(huge.body._tag, "InboundTooLarge")
      const fits = yield* request(`${server.url}/api/v1/inbound`, {
        token: server.token,
        body: { ...valid, externalId: "long-but-fine", text: "x".repeat(100_000) },
      })
      assert.strictEqual(fits.status, 202)
      const first = yield* takeWithin(inbound)
      assert.strictEqual(decodeMessage(first).externalId, "long-but-fine")
      yield* Effect.sleep("300 millis")
      assert.strictEqual(yield* Queue.size(inbound), 0)
    }))

  it.scopedLive("without a valid token: 401, and nothing is published", () =>
    Effect.gen(function* () {
      const server = yield* startApiServer
      const inbound = yield* collectInbound(server.bus)
      const none = yield* request(`${server.url}/api/v1/inbound`, { token: null, body: valid })
      const wrong = yield* request(`${server.url}/api/v1/inbound`, {
        token: "chorus_wrong",
        body: valid,
      })
      // Authentication comes before the body: a bad body without a token is a 401 too.
      const badBody = yield* request(`${server.url}/api/v1/inbound`, { token: null, body: {} })
      assert.deepStrictEqual([none.status, wrong.status, badBody.status], [401, 401, 401])
      yield* Effect.sleep("300 millis")
      assert.strictEqual(yield* Queue.size(inbound), 0)
    }))

  it.scopedLive("the bus unavailable: 503 with Retry-After, never 202; the retry succeeds once it is back", () =>
    Effect.gen(function* () {
      const down = yield* Ref.make(true)
      const dir = yield* tempDir()
      const config = yield* decodeConfig({ dataDir: dir, log: { level: "error" } })
      // The real embedded bus, whose publish fails while `down` is set.
      const FlakyBus = Layer.effect(
        Bus,
        Effect.gen(function* () {
          const bus = yield* Bus
          return {
            ...bus,
            publish: (subject, data, options) =>
              Effect.flatMap(
                Ref.get(down),
                (isDown) =>
                  isDown
                    ? Effect.fail(new BusUnavailable({ operation: "publish", cause: "test: down" }))
                    : bus.publish(subject, data, options),
              ),
          } satisfies Context.Tag.Service<typeof Bus>
        }),
      ).pipe(Layer.provide(EmbeddedBus.layer({ namespace: "chorus" })))
      const context = yield* Layer.build(
        ChorusHttp.layer({ host: "127.0.0.1", port: 0 }).pipe(
          Layer.provide(
            RoutingLive(config).pipe(
              Layer.provideMerge(InboxLive(config)),
              Layer.provideMerge(IdentityGraph.layer()),
              Layer.provideMerge(ConversationActor.layer()),
              Layer.provideMerge(Layer.merge(ConversationStore.layer(), OutboundWrites.layer())),
              Layer.provideMerge(Layer.succeed(Config, config)),
              // Only the inbound endpoint is exercised here.
              Layer.provideMerge(Layer.succeed(Replies, {
                send: () => Effect.dieMessage("not used by this test"),
                relayOutbox: () => Effect.succeed(0),
                relayOutboxCounted: () => Effect.succeed({ queued: 0, published: 0 }),
              })),
              Layer.provideMerge(Layer.succeed(Recovery, {
                retry: () => Effect.dieMessage("not used by this test"),
                discard: () => Effect.dieMessage("not used by this test"),
              })),
              Layer.provideMerge(Layer.succeed(ChannelAccounts, {
                get: () => Effect.dieMessage("not used by this test"),
                health: Effect.succeed([]),
                policyOf: () => Policy.defaults,
              })),
            ),
          ),
          Layer.provide([PluginHostLive(config), AttachmentsLive(config)]),
          Layer.provideMerge(FlakyBus),
          Layer.provideMerge(Leadership.single()),
          Layer.provideMerge(StorageLive(config)),
        ),
      )
      const server = Context.get(context, HttpServer.HttpServer)
      if (server.address._tag !== "TcpAddress") throw new Error("expected a TCP address")
      const url = `http://127.0.0.1:${server.address.port}/api/v1/inbound`
      const tokens = yield* ApiTokens.pipe(
        Effect.provide(ApiTokens.Default),
        Effect.provide(context),
      )
      const token = Redacted.value((yield* tokens.create("flaky")).token)

      const refused = yield* request(url, { token, body: valid })
      assert.strictEqual(refused.status, 503)
      assert.strictEqual(refused.headers.get("retry-after"), "5")
      assert.strictEqual(refused.body._tag, "InboundUnavailable")
      assert.strictEqual(refused.body.retryAfterSeconds, 5)

      yield* Ref.set(down, false)
      const retried = yield* request(url, { token, body: valid })
      assert.strictEqual(retried.status, 202)
      assert.deepStrictEqual(retried.body, { id: "api:shop:order-chat-1", duplicate: false })
    }))

  it.scopedLive("the pipeline stores what was accepted: it shows up in the read API", () =>
    Effect.gen(function* () {
      const server = yield* startApiServer
      const answer = yield* request(`${server.url}/api/v1/inbound`, {
        token: server.token,
        body: valid,
      })
      assert.strictEqual(answer.status, 202)
      const list = yield* request(`${server.url}/api/v1/conversations?channel=api`, {
        token: server.token,
      }).pipe(
        Effect.filterOrFail((r) => r.body?.conversations?.length === 1, () => "not yet stored"),
        Effect.retry({ times: 100, schedule: Schedule.spaced("100 millis") }),
      )
      const conversation = list.body.conversations[0]
      const messages = yield* request(
        `${server.url}/api/v1/conversations/${conversation.id}/messages`,
        { token: server.token },
      )
      assert.strictEqual(messages.status, 200)
      assert.strictEqual(messages.body.messages[0].text, "Where is my parcel?")
      assert.strictEqual(messages.body.messages[0].externalId, "order-chat-1")
      const contact = yield* request(`${server.url}/api/v1/contacts/${conversation.contactId}`, {
        token: server.token,
      })
      assert.strictEqual(contact.body.name, "Ann")
      assert.strictEqual(contact.body.identities[0].verification, "claimed")
      assert.strictEqual(contact.body.identities[0].email, "ann@example.com")
    }))

  it.scopedLive("on PostgreSQL and JetStream too: 202 once durable, a repeat is a duplicate", () =>
    Effect.gen(function* () {
      const server = yield* startApiServerOn("shared")
      assert.strictEqual(server.bus.backend, "jetstream")
      const inbound = yield* collectInbound(server.bus)
      const post = () =>
        request(`${server.url}/api/v1/inbound`, { token: server.token, body: valid })
      const first = yield* post()
      assert.strictEqual(first.status, 202, first.text)
      assert.deepStrictEqual(first.body, { id: "api:shop:order-chat-1", duplicate: false })
      const again = yield* post()
      assert.deepStrictEqual(again.body, { id: "api:shop:order-chat-1", duplicate: true })
      const message = yield* takeWithin(inbound)
      assert.strictEqual(decodeMessage(message).externalId, "order-chat-1")
      yield* Effect.sleep("500 millis")
      assert.strictEqual(yield* Queue.size(inbound), 0)
    }))
})
