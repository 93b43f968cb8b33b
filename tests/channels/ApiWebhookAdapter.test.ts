/**
 * The `api` channel's webhook adapter against a real HTTP receiver on loopback: how each answer
 * is classified (sent, retryable, permanent) and what is signed.
 */
import { createHmac } from "node:crypto"
import * as NodeNet from "node:net"
import { FetchHttpClient } from "@effect/platform"
import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Redacted, Schema } from "effect"
import * as ApiWebhookAdapter from "../../core/channels/ApiWebhookAdapter.ts"
import { ChannelIdentity } from "../../schemas/Contact.ts"
import { OutgoingMessage } from "../../schemas/Message.ts"
import { webhookReceiver } from "../support/WebhookReceiver.ts"

const message = Schema.decodeUnknownSync(OutgoingMessage)({
  id: "01JD00000000000000000000M1",
  conversationId: "01JD00000000000000000000C1",
  seq: 2,
  text: "Your parcel left today.",
  attachments: [{
    id: "01JD00000000000000000000A1",
    name: "label.pdf",
    mimeType: "application/pdf",
    size: 1234,
    url: "https://files.example.com/label.pdf",
  }],
  createdAt: "2026-11-23T10:00:00.000Z",
  direction: "out",
  channel: "api",
  account: "shop",
  identityId: "01JD00000000000000000000D1",
  externalId: null,
  authorId: null,
  delivery: { state: "queued", at: "2026-11-23T10:00:00.000Z" },
})

const recipient = Schema.decodeUnknownSync(ChannelIdentity)({
  id: "01JD00000000000000000000D1",
  contactId: "01JD00000000000000000000K1",
  channel: "api",
  account: "shop",
  externalId: "customer-42",
  name: null,
  phone: null,
  email: null,
  verification: "unverified",
  reachable: true,
  createdAt: "2026-11-23T10:00:00.000Z",
  lastSeenAt: null,
})

const adapter = (options: ApiWebhookAdapter.ApiWebhookOptions) =>
  ApiWebhookAdapter.make(options).pipe(Effect.provide(FetchHttpClient.layer))

const sendTo = (options: ApiWebhookAdapter.ApiWebhookOptions) =>
  adapter(options).pipe(
    Effect.flatMap((a) => a.send(message, recipient)),
    Effect.either,
  )

/** A port nothing listens on. */
const closedPort = Effect.async<number>((resume) => {
  const server = NodeNet.createServer()
  server.listen(0, "127.0.0.1", () => {
    const { port } = server.address() as NodeNet.AddressInfo
    server.close(() => resume(Effect.succeed(port)))
  })
})

describe("api channel webhook adapter", () => {
  it.scopedLive("2xx is sent, with the receiver's id if it answers one; the body is signed with the secret", () =>
    Effect.gen(function* () {
      const receiver = yield* webhookReceiver
      receiver.answer = () => ({ status: 201, body: '{"id":"crm-77"}' })
      const result = yield* sendTo({
        webhookUrl: receiver.url,
        webhookSecret: Redacted.make("s3cret"),
      })
      assert.deepStrictEqual(
        result._tag === "Right" ? { ...result.right } : result,
        { externalId: "crm-77" } as object,
      )
      const [post] = receiver.received
      const timestamp = post!.headers["x-chorus-timestamp"] as string
      assert.match(timestamp, /^\d{10}$/)
      assert.strictEqual(
        post!.headers["x-chorus-signature"],
        `sha256=${
          createHmac("sha256", "s3cret").update(`${timestamp}.${post!.body}`).digest("hex")
        }`,
      )
      assert.strictEqual(post!.json.attachments[0].url, "https://files.example.com/label.pdf")
      assert.strictEqual(post!.json.recipient.id, "customer-42")

      // No secret: unsigned (and a warning at start), still delivered.
      const unsigned = yield* sendTo({ webhookUrl: receiver.url })
      assert.isTrue(unsigned._tag === "Right")
      assert.isUndefined(receiver.received[1]!.headers["x-chorus-signature"])
    }))

  it.scopedLive("408, 429 and 5xx are retryable, other 4xx permanent, a refused connection retryable", () =>
    Effect.gen(function* () {
      const receiver = yield* webhookReceiver
      const outcomes: Array<string> = []
      for (const status of [408, 429, 500, 503, 400, 401, 404, 410, 422]) {
        receiver.answer = () => ({ status, body: "nope" })
        const result = yield* sendTo({ webhookUrl: receiver.url })
        outcomes.push(result._tag === "Left" ? `${status}:${result.left._tag}` : `${status}:sent`)
      }
      assert.deepStrictEqual(outcomes, [
        "408:ProviderUnavailable",
        "429:ProviderUnavailable",
        "500:ProviderUnavailable",
        "503:ProviderUnavailable",
        "400:ProviderRejected",
        "401:ProviderRejected",
        "404:ProviderRejected",
        "410:ProviderRejected",
        "422:ProviderRejected",
      ])
      const port = yield* closedPort
      const refused = yield* sendTo({ webhookUrl: `http://127.0.0.1:${port}/hook` })
      assert.isTrue(refused._tag === "Left" && refused.left._tag === "ProviderUnavailable")
      assert.isTrue(refused._tag === "Left" && refused.left.code === "network")
    }))

  it("Retry-After is read as seconds or as an HTTP date", () => {
    const now = Date.parse("2026-11-23T10:00:00Z")
    assert.strictEqual(
      Duration.toMillis(ApiWebhookAdapter.parseRetryAfter("120", now)!),
      120_000,
    )
    assert.strictEqual(
      Duration.toMillis(ApiWebhookAdapter.parseRetryAfter("Mon, 23 Nov 2026 10:00:30 GMT", now)!),
      30_000,
    )
    assert.isUndefined(ApiWebhookAdapter.parseRetryAfter("soon", now))
    assert.isUndefined(ApiWebhookAdapter.parseRetryAfter(undefined, now))
  })
})
