/**
 * The Viber channel plugin (plugins/viber) end to end, in a worker thread of a real Chorus
 * server, against the fake Viber REST Bot API (tests/support/fakes/ViberFake.ts): the webhook is
 * set on start; callbacks (the payloads of tests/fixtures/providers/viber/) are checked by
 * signature, stored, and answered only then; a repeat is stored once; replies go out by
 * send_message (split at 7,000 characters, keyboards, pictures and files Viber fetches from
 * Chorus); Viber's statuses are retried or fail the reply; `unsubscribed` marks the person
 * unreachable; receipts (`delivered`, `seen`, `failed`) become the reply's delivery state.
 */
import { jpeg } from "../support/Files.ts"
import { readFileSync } from "node:fs"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { request } from "../api/ApiServer.ts"
import { eventually, startReplyServer } from "../api/ReplyServer.ts"
import { viberFake } from "../support/fakes/ViberFake.ts"
import { installRepoPlugins } from "../support/PluginFixtures.ts"
import { tempDir } from "../support/TestDatabase.ts"

const TOKEN = "445da6az1s345z78-dazcczb2542zv51a-e0vc5fva17480im9"
const USER = "01234567890A="

const fixture = (name: string) =>
  readFileSync(new URL(`../fixtures/providers/viber/${name}.json`, import.meta.url), "utf8")

const pdf = new TextEncoder().encode("%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n")

const setup = (settings: Record<string, string | number> = {}) =>
  Effect.gen(function* () {
    const fake = yield* viberFake([TOKEN])
    const plugins = yield* tempDir("chorus-plugins-")
    installRepoPlugins(plugins, ["viber"], { net: { viber: [new URL(fake.apiRoot).host] } })
    process.env["CHORUS_PLUGIN_VIBER_TOKEN_MAIN"] = TOKEN
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => delete process.env["CHORUS_PLUGIN_VIBER_TOKEN_MAIN"])
    )
    const server = yield* startReplyServer({
      dataDir: yield* tempDir(),
      pluginsDir: plugins,
      pluginSettings: { viber: { apiRoot: fake.apiRoot } },
    })
    const api = (method: string, path: string, body?: unknown) =>
      request(`${server.url}/api/v1${path}`, {
        token: server.token,
        method,
        ...(body !== undefined ? { body } : {}),
      })
    // The server's address is known only now: the bot is configured as an operator would.
    const configured = yield* api("PUT", "/plugins/viber/settings", {
      accounts: "main",
      webhookBaseUrl: server.url,
      senderName: "Support",
      ...settings,
    })
    assert.strictEqual(configured.status, 200, JSON.stringify(configured.body))
    yield* eventually("the webhook set", () => fake.webhook(TOKEN) !== undefined)
    return { fake, server, api }
  })

type Api = (method: string, path: string, body?: unknown) => ReturnType<typeof request>

const viberConversation = (api: Api) =>
  Effect.gen(function* () {
    let id = ""
    yield* eventually("a viber conversation", () =>
      api("GET", "/conversations?channel=viber").pipe(Effect.map((r) => {
        const list = (r.body as { conversations?: Array<{ id: string }> }).conversations ?? []
        id = list[0]?.id ?? ""
        return list.length === 1
      })))
    return id
  })

const messagesOf = (api: Api, conversation: string) =>
  api("GET", `/conversations/${conversation}/messages`).pipe(
    Effect.map((r) => (r.body as { messages: Array<any> }).messages),
  )

const replies = (api: Api, conversation: string) => {
  const reply = (body: Record<string, unknown>) =>
    api("POST", `/conversations/${conversation}/messages`, body).pipe(
      Effect.map((r) => {
        assert.strictEqual(r.status, 202, JSON.stringify(r.body))
        return (r.body as { id: string }).id
      }),
    )
  const deliveryOf = (id: string) =>
    messagesOf(api, conversation).pipe(Effect.map((m) => m.find((x) => x.id === id)))
  const settled = (id: string, state: string) =>
    eventually(
      `${state} ${id}`,
      () => deliveryOf(id).pipe(Effect.map((m) => m?.delivery.state === state)),
    ).pipe(Effect.zipRight(deliveryOf(id)), Effect.map((m) => m!))
  return { reply, deliveryOf, settled }
}

describe("viber channel", () => {
  it.scopedLive(
    "webhook: signature checked, stored once, answered once stored; replies, media, keyboards, errors, unsubscribed",
    () =>
      Effect.gen(function* () {
        const { fake, server, api } = yield* setup({ welcomeText: "Hi! Write us anything." })
        assert.deepStrictEqual(fake.webhook(TOKEN)!.url, `${server.url}/plugins/viber/webhook/main`)
        assert.includeMembers(fake.webhook(TOKEN)!.event_types, ["delivered", "seen", "failed"])

        // A bad or missing signature: 401, nothing stored.
        const post = (event: string | Record<string, unknown>, options = {}) =>
          Effect.promise(() => fake.post(TOKEN, event, options))
        assert.strictEqual(
          (yield* post(fixture("message_text"), { signature: "00ff" })).status,
          401,
        )
        assert.strictEqual((yield* post(fixture("message_text"), { signature: "" })).status, 401)
        const none = (yield* api("GET", "/conversations")).body as { conversations: Array<unknown> }
        assert.lengthOf(none.conversations, 0)

        // conversation_started: the welcome message in the answer; not stored.
        const started = yield* post(fixture("conversation_started"))
        assert.strictEqual(started.status, 200)
        assert.deepInclude(JSON.parse(started.body), {
          type: "text",
          text: "Hi! Write us anything.",
        })

        // The message, twice (Viber retries a callback it got no 200 for): stored once, its
        // 64-bit message_token kept exactly.
        assert.strictEqual((yield* post(fixture("message_text"))).status, 200)
        assert.strictEqual((yield* post(fixture("message_text"))).status, 200)
        const conversation = yield* viberConversation(api)
        const first = yield* messagesOf(api, conversation)
        assert.deepStrictEqual(first.map((m) => m.text), ["Hello! Where is my order?"])
        assert.strictEqual(first[0].externalId, "5741311803571721087")

        // A picture and a file: downloaded into the attachment store; contact, location,
        // sticker as words.
        const picture = JSON.parse(
          fixture("message_picture").replace(/"message_token": (\d+)/, '"message_token": "$1"'),
        )
        picture.message.media = fake.addFile("IMG_0042.jpg", jpeg)
        assert.strictEqual(
          (yield* post(picture, { messageToken: "5741311803571721088" })).status,
          200,
        )
        const file = JSON.parse(
          fixture("message_file").replace(/"message_token": (\d+)/, '"message_token": "$1"'),
        )
        file.message.media = fake.addFile("invoice.pdf", pdf)
        assert.strictEqual((yield* post(file, { messageToken: "5741311803571721089" })).status, 200)
        for (const name of ["message_contact", "message_location", "message_sticker"]) {
          assert.strictEqual((yield* post(fixture(name))).status, 200)
        }
        yield* eventually(
          "six messages",
          () => messagesOf(api, conversation).pipe(Effect.map((m) => m.length === 6)),
        )
        const all = [...(yield* messagesOf(api, conversation))].reverse()
        assert.deepStrictEqual(all.map((m) => m.text), [
          "Hello! Where is my order?",
          "the parcel arrived broken",
          "",
          "[contact: Holly Gennero +15551234567]",
          "[location: 50.76891, 6.11499]",
          "[sticker 46105]",
        ])
        assert.strictEqual(all[1].attachments[0].mimeType, "image/jpeg")
        assert.strictEqual(all[2].attachments[0].mimeType, "application/pdf")
        // The contact's phone is not the sender's: the identity has none.
        const contactId =
          ((yield* api("GET", `/conversations/${conversation}`)).body as { contactId: string })
            .contactId
        const contact = (yield* api("GET", `/contacts/${contactId}`)).body as Record<string, any>
        assert.notInclude(JSON.stringify(contact), "+15551234567")

        const { reply, settled } = replies(api, conversation)

        // A reply: send_message with receiver, sender name, text; Viber's token kept.
        const short = yield* reply({ text: "We are on it." })
        const sentShort = yield* settled(short, "sent")
        const onWire = fake.sent().find((s) => s.body["text"] === "We are on it.")!
        assert.deepStrictEqual(
          [onWire.receiver, onWire.body["type"], onWire.body["sender"]],
          [USER, "text", { name: "Support" }],
        )
        assert.strictEqual(sentShort.externalId, onWire.message_token)
        assert.match(onWire.message_token, /^\d{19}$/)

        // Longer than 7,000 characters: two messages.
        const long = yield* reply({ text: "A".repeat(5000) + "\n" + "B".repeat(5000) })
        yield* settled(long, "sent")
        const parts = fake.sent().filter((s) => /^[AB]+$/.test(s.body["text"] ?? ""))
        assert.deepStrictEqual(parts.map((p) => p.body["text"].length), [5000, 5000])

        // A keyboard; a press comes back as the button's text with its payload.
        const buttons = yield* reply({
          text: "What next?",
          buttons: [[{ text: "Track my parcel", payload: "track" }, {
            text: "Our site",
            url: "https://shop.example.com/",
          }]],
        })
        yield* settled(buttons, "sent")
        const withKeyboard = fake.sent().find((s) => s.body["text"] === "What next?")!
        assert.deepStrictEqual(withKeyboard.body["keyboard"], {
          Type: "keyboard",
          DefaultHeight: false,
          Buttons: [
            {
              Columns: 3,
              Rows: 1,
              ActionType: "reply",
              ActionBody: "track",
              Text: "Track my parcel",
            },
            {
              Columns: 3,
              Rows: 1,
              ActionType: "open-url",
              ActionBody: "https://shop.example.com/",
              Text: "Our site",
            },
          ],
        })
        const press = JSON.parse(
          fixture("message_text").replace(/"message_token": (\d+)/, '"message_token": "$1"'),
        )
        press.message.text = "track"
        press.message.tracking_data = withKeyboard.body["tracking_data"]
        assert.strictEqual(
          (yield* post(press, { messageToken: "5741311803571721100" })).status,
          200,
        )
        yield* eventually(
          "the press stored",
          () =>
            messagesOf(api, conversation).pipe(
              Effect.map((m) => m.some((x) => x.payload === "track")),
            ),
        )
        const pressed = (yield* messagesOf(api, conversation)).find((m) => m.payload === "track")
        assert.strictEqual(pressed.text, "Track my parcel")

        // A picture and a PDF in a reply: Viber fetches both from Chorus by signed URLs (the
        // picture's ends in .jpg, as Viber requires).
        const media = yield* reply({
          text: "",
          attachments: [
            {
              name: "parcel.jpg",
              mimeType: "image/jpeg",
              size: jpeg.length,
              storageKey: all[1].attachments[0].storageKey,
            },
            {
              name: "label.pdf",
              mimeType: "application/pdf",
              size: pdf.length,
              storageKey: all[2].attachments[0].storageKey,
            },
          ],
        })
        yield* settled(media, "sent")
        const sentPicture = fake.sent().find((s) => s.body["type"] === "picture")!
        assert.match(new URL(sentPicture.body["media"]).pathname, /\/picture\.jpg$/)
        assert.deepStrictEqual([...sentPicture.media!], [...jpeg])
        const sentFile = fake.sent().find((s) => s.body["type"] === "file")!
        assert.deepStrictEqual([sentFile.body["file_name"], sentFile.body["size"]], [
          "label.pdf",
          pdf.length,
        ])
        assert.deepStrictEqual([...sentFile.media!], [...pdf])

        // Viber's 12 (too many requests) and a 502: retried, then sent once.
        fake.failNext("send_message", 12)
        fake.failHttpNext("send_message", 502)
        const paced = yield* reply({ text: "after the pause" })
        yield* settled(paced, "sent")
        assert.lengthOf(fake.sent().filter((s) => s.body["text"] === "after the pause"), 1)

        // A permanent status (3 badData): failed at once.
        fake.failNext("send_message", 3)
        const bad = yield* reply({ text: "bad data" })
        assert.strictEqual((yield* settled(bad, "failed")).delivery.error.code, "3")

        const reachable = () =>
          api("GET", `/contacts/${contactId}`).pipe(
            Effect.map((r) =>
              (r.body as { identities: Array<{ reachable: boolean }> }).identities[0]?.reachable
            ),
          )
        assert.strictEqual(yield* reachable(), true)

        // Not subscribed at Viber (6): failed, unreachable.
        fake.unsubscribe(USER)
        const lost = yield* reply({ text: "hello?" })
        assert.strictEqual((yield* settled(lost, "failed")).delivery.error.code, "6")
        yield* eventually("unreachable", () => reachable().pipe(Effect.map((r) => r === false)))

        // They write again (and so subscribe): reachable. Then `unsubscribed`: the next reply
        // fails without asking Viber.
        assert.strictEqual(
          (yield* post(fixture("message_text"), { messageToken: "5741311803571721200" })).status,
          200,
        )
        yield* eventually("reachable again", () => reachable().pipe(Effect.map((r) => r === true)))
        assert.strictEqual((yield* post(fixture("unsubscribed"))).status, 200)
        const callsBefore = fake.calls("send_message").length
        const gone = yield* reply({ text: "still there?" })
        assert.strictEqual((yield* settled(gone, "failed")).delivery.error.code, "unsubscribed")
        assert.strictEqual(fake.calls("send_message").length, callsBefore)
      }),
    90_000,
  )

  it.scopedLive(
    "receipts: delivered and seen move the reply's state by message_token; failed fails it",
    () =>
      Effect.gen(function* () {
        const { fake, api } = yield* setup()
        const post = (event: string, options = {}) =>
          Effect.promise(() => fake.post(TOKEN, event, options))
        assert.strictEqual((yield* post(fixture("message_text"))).status, 200)
        const conversation = yield* viberConversation(api)
        const { reply, settled, deliveryOf } = replies(api, conversation)

        const one = yield* reply({ text: "first" })
        const sentOne = yield* settled(one, "sent")
        assert.strictEqual(
          (yield* post(fixture("delivered"), { messageToken: sentOne.externalId })).status,
          200,
        )
        yield* settled(one, "delivered")
        assert.strictEqual(
          (yield* post(fixture("seen"), { messageToken: sentOne.externalId })).status,
          200,
        )
        yield* settled(one, "read")
        // A late delivered after seen changes nothing; a repeat is harmless.
        assert.strictEqual(
          (yield* post(fixture("delivered"), { messageToken: sentOne.externalId })).status,
          200,
        )
        assert.strictEqual((yield* deliveryOf(one))!.delivery.state, "read")

        const two = yield* reply({ text: "second" })
        const sentTwo = yield* settled(two, "sent")
        assert.strictEqual(
          (yield* post(fixture("failed"), { messageToken: sentTwo.externalId })).status,
          200,
        )
        const failed = yield* settled(two, "failed")
        assert.strictEqual(failed.delivery.error.code, "failed")

        // A receipt for a message Chorus never sent: taken (200), nothing changes.
        assert.strictEqual((yield* post(fixture("seen"))).status, 200)
      }),
    60_000,
  )

  it.scopedLive(
    "limit: the 101st message an hour to a person who has not replied is refused before Viber; their reply lifts it",
    () =>
      Effect.gen(function* () {
        const { fake, api } = yield* setup()
        const post = (event: string, options = {}) =>
          Effect.promise(() => fake.post(TOKEN, event, options))
        assert.strictEqual((yield* post(fixture("message_text"))).status, 200)
        const conversation = yield* viberConversation(api)
        const { reply, settled } = replies(api, conversation)
        const ids: Array<string> = []
        for (let i = 0; i < 100; i++) ids.push(yield* reply({ text: `note ${i}` }))
        yield* settled(ids.at(-1)!, "sent")
        const over = yield* reply({ text: "one too many" })
        const refused = yield* settled(over, "failed")
        assert.strictEqual(refused.delivery.error.code, "unanswered_limit")
        assert.lengthOf(fake.sent(), 100)
        assert.isFalse(fake.calls("send_message").some((c) => c.body["text"] === "one too many"))

        assert.strictEqual(
          (yield* post(fixture("message_text"), { messageToken: "5741311803571729999" })).status,
          200,
        )
        const after = yield* reply({ text: "thanks for answering" })
        yield* settled(after, "sent")
      }),
    90_000,
  )
})
