/**
 * The VK channel plugin (plugins/vk) end to end, in a worker thread of a real Chorus server,
 * against the fake VK API (tests/support/fakes/VkFake.ts): Callback API events (the payloads
 * of tests/fixtures/providers/vk/) are checked by the secret, stored and only then answered
 * `ok`; a repeat is stored once; replies go out by messages.send with a deterministic
 * random_id, split at 4,096 characters, with inline keyboards and uploaded photos; VK's errors
 * are retried or fail the reply (901 and message_deny mark the person unreachable). Bots Long
 * Poll brings the same events in and survives `failed` answers.
 */
import { jpeg } from "../support/Files.ts"
import { readFileSync } from "node:fs"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { request } from "../api/ApiServer.ts"
import { eventually, startReplyServer } from "../api/ReplyServer.ts"
import { vkFake } from "../support/fakes/VkFake.ts"
import { installRepoPlugins } from "../support/PluginFixtures.ts"
import { tempDir } from "../support/TestDatabase.ts"

const TOKEN = "vk1.a.community-token"
const SECRET = "callback-secret-42"
const CONFIRMATION = "d8v2ve07"
const GROUP = 123456789
const USER = 2050001

const fixture = (name: string): Record<string, any> =>
  JSON.parse(
    readFileSync(new URL(`../fixtures/providers/vk/${name}.json`, import.meta.url), "utf8"),
  )

const pdf = new TextEncoder().encode("%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n")
const ogg = new Uint8Array([0x4f, 0x67, 0x67, 0x53, 0x00, 0x02, ...new Array(40).fill(0)])

const ENV = ["TOKEN", "SECRET", "CONFIRMATION"].map((k) => `CHORUS_PLUGIN_VK_${k}_MAIN`)

const setup = (settings: Record<string, string | number>) =>
  Effect.gen(function* () {
    const fake = yield* vkFake([{ token: TOKEN, groupId: GROUP }])
    const plugins = yield* tempDir("chorus-plugins-")
    installRepoPlugins(plugins, ["vk"], { net: { vk: [new URL(fake.apiRoot).host] } })
    process.env["CHORUS_PLUGIN_VK_TOKEN_MAIN"] = TOKEN
    process.env["CHORUS_PLUGIN_VK_SECRET_MAIN"] = SECRET
    process.env["CHORUS_PLUGIN_VK_CONFIRMATION_MAIN"] = CONFIRMATION
    yield* Effect.addFinalizer(() => Effect.sync(() => ENV.forEach((k) => delete process.env[k])))
    const server = yield* startReplyServer({
      dataDir: yield* tempDir(),
      pluginsDir: plugins,
      pluginSettings: {
        vk: { accounts: "main", apiRoot: fake.apiRoot, longPollWait: 1, ...settings },
      },
    })
    const api = (method: string, path: string, body?: unknown) =>
      request(`${server.url}/api/v1${path}`, {
        token: server.token,
        method,
        ...(body !== undefined ? { body } : {}),
      })
    const callback = `${server.url}/plugins/vk/callback/main`
    return { fake, server, api, callback }
  })

type Api = (method: string, path: string, body?: unknown) => ReturnType<typeof request>

const vkConversation = (api: Api) =>
  Effect.gen(function* () {
    let id = ""
    yield* eventually("a vk conversation", () =>
      api("GET", "/conversations?channel=vk").pipe(Effect.map((r) => {
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

/** Post an event and wait for VK's answer (the route answers only once it is durable). */
const post = (
  fake: { postCallback: (u: string, e: any, o?: any) => Promise<{ status: number; text: string }> },
  url: string,
  event: Record<string, any>,
  secret: string | null = SECRET,
) => Effect.promise(() => fake.postCallback(url, event, secret === null ? {} : { secret }))

describe("vk channel", () => {
  it.scopedLive(
    "callback: confirmed, secret checked, stored once, answered ok; replies, errors, deny",
    () =>
      Effect.gen(function* () {
        const { fake, server, api, callback } = yield* setup({})

        // The server confirmation: the community's string, as plain text.
        const confirm = yield* post(fake, callback, fixture("confirmation"), null)
        assert.deepStrictEqual(confirm, { status: 200, text: CONFIRMATION })

        // A wrong or missing secret: refused, nothing stored.
        const { secret: _, ...unsigned } = fixture("message_new")
        const forged = yield* post(fake, callback, unsigned, "guess")
        assert.strictEqual(forged.status, 403)
        assert.notStrictEqual(forged.text, "ok")
        assert.strictEqual((yield* post(fake, callback, unsigned, null)).status, 403)
        const none = (yield* api("GET", "/conversations")).body as { conversations: Array<unknown> }
        assert.lengthOf(none.conversations, 0)

        // The real one, twice (VK repeats an event it did not get `ok` for): stored once.
        assert.deepStrictEqual(yield* post(fake, callback, unsigned), { status: 200, text: "ok" })
        assert.deepStrictEqual(yield* post(fake, callback, unsigned), { status: 200, text: "ok" })
        const conversation = yield* vkConversation(api)
        const first = yield* messagesOf(api, conversation)
        assert.deepStrictEqual(first.map((m) => m.text), ["Hello! Where is my order?"])
        assert.strictEqual(first[0].externalId, "1517")
        // The person's name from users.get, on the conversation's contact.
        const contactOf = (yield* api("GET", `/conversations/${conversation}`)).body as {
          contactId: string
        }
        const named = (yield* api("GET", `/contacts/${contactOf.contactId}`)).body
        assert.include(JSON.stringify(named), "Ivan Petrov01")

        // Photo (largest size), document, voice message and a sticker: files kept, sticker named.
        const media = fixture("message_new_attachments")
        const atts = media.object.message.attachments
        atts[0].photo.sizes[1].url = fake.addFile("w.jpg", jpeg)
        atts[0].photo.sizes[0].url = fake.addFile("s.jpg", new Uint8Array([1, 2, 3]))
        atts[0].photo.sizes[2].url = fake.addFile("x.jpg", new Uint8Array([4, 5, 6]))
        atts[1].doc.url = fake.addFile("invoice.pdf", pdf)
        atts[2].audio_message.link_ogg = fake.addFile("a.ogg", ogg)
        assert.deepStrictEqual(yield* post(fake, callback, media), { status: 200, text: "ok" })
        yield* eventually(
          "two messages",
          () => messagesOf(api, conversation).pipe(Effect.map((m) => m.length === 2)),
        )
        const withMedia = (yield* messagesOf(api, conversation)).find((m) =>
          m.externalId === "1518"
        )!
        assert.strictEqual(withMedia.text, "the parcel arrived broken\n[sticker 9015]")
        assert.deepStrictEqual(
          withMedia.attachments.map((a: any) => a.mimeType),
          ["image/jpeg", "application/pdf", "audio/ogg"],
        )
        const photo = yield* Effect.promise(() =>
          fetch(`${server.url}/api/v1/attachments/${withMedia.attachments[0].storageKey}`, {
            headers: { authorization: `Bearer ${server.token}` },
          }).then(async (r) => new Uint8Array(await r.arrayBuffer()))
        )
        assert.deepStrictEqual([...photo], [...jpeg])

        // Our own reply echoed back (message_reply) is not a customer's message.
        assert.strictEqual((yield* post(fake, callback, fixture("message_reply"))).text, "ok")

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
          ).pipe(
            Effect.zipRight(deliveryOf(id)),
            Effect.map((m) => m!),
          )

        // A reply: messages.send to the peer, random_id set, VK's message id kept.
        const short = yield* reply({ text: "We are on it." })
        const sentShort = yield* settled(short, "sent")
        const onWire = fake.sent().find((s) => s.message === "We are on it.")!
        assert.strictEqual(onWire.peer_id, USER)
        assert.isAbove(onWire.random_id, 0)
        assert.strictEqual(sentShort.externalId, String(onWire.id))

        // A long one: two parts, two random_ids.
        const long = yield* reply({ text: "A".repeat(3000) + "\n" + "B".repeat(3000) })
        yield* settled(long, "sent")
        const parts = fake.sent().filter((s) => /^[AB]+$/.test(s.message))
        assert.deepStrictEqual(parts.map((p) => p.message.length), [3000, 3000])
        assert.notStrictEqual(parts[0]!.random_id, parts[1]!.random_id)

        // Buttons: an inline keyboard; a press (message_event) comes back as the customer's
        // message with the button's text and payload, and is answered.
        const buttons = yield* reply({
          text: "What next?",
          buttons: [[{ text: "Track my parcel", payload: "track" }, {
            text: "Our site",
            url: "https://shop.example.com/",
          }]],
        })
        yield* settled(buttons, "sent")
        assert.deepStrictEqual(fake.sent().find((s) => s.message === "What next?")!.keyboard, {
          inline: true,
          buttons: [[
            { action: { type: "callback", label: "Track my parcel", payload: '"track"' } },
            { action: { type: "open_link", link: "https://shop.example.com/", label: "Our site" } },
          ]],
        })
        assert.strictEqual((yield* post(fake, callback, fixture("message_event"))).text, "ok")
        // "ok" means durable on the bus; the store and the answer follow.
        const pressedOf = messagesOf(api, conversation).pipe(
          Effect.map((all) => all.find((m) => m.externalId === "event:3a9f1c2b4d5e")),
        )
        yield* eventually(
          "the press stored",
          () => pressedOf.pipe(Effect.map((m) => m !== undefined)),
        )
        const pressed = yield* pressedOf
        assert.strictEqual(pressed?.text, "Track my parcel")
        assert.strictEqual(pressed?.payload, "track")
        yield* eventually(
          "the press answered",
          () => fake.calls("messages.sendMessageEventAnswer").length > 0,
        )
        const answered = fake.calls("messages.sendMessageEventAnswer")
        assert.strictEqual(answered[0]?.params["event_id"], "3a9f1c2b4d5e")

        // Typing both ways: the person's (message_typing_state) is taken; an operator's goes out
        // as messages.setActivity.
        assert.strictEqual(
          (yield* post(fake, callback, fixture("message_typing_state"))).text,
          "ok",
        )
        assert.strictEqual(
          (yield* api("POST", `/conversations/${conversation}/typing`)).status,
          204,
        )
        yield* eventually(
          "setActivity",
          () =>
            fake.calls("messages.setActivity").some((c) =>
              c.params["peer_id"] === String(USER) && c.params["type"] === "typing"
            ),
        )

        // A photo in a reply: uploaded to VK's upload server, saved, attached.
        const withPhoto = yield* reply({
          text: "Is this it?",
          attachments: [{
            name: "parcel.jpg",
            mimeType: "image/jpeg",
            size: jpeg.length,
            storageKey: withMedia.attachments[0].storageKey,
          }],
        })
        yield* settled(withPhoto, "sent")
        // A PDF: docs.getMessagesUploadServer → upload → docs.save; a linked file as its URL.
        const withDoc = yield* reply({
          text: "Your invoice",
          attachments: [{
            name: "invoice.pdf",
            mimeType: "application/pdf",
            size: pdf.length,
            storageKey: withMedia.attachments[1].storageKey,
          }, {
            name: "terms.pdf",
            mimeType: "application/pdf",
            size: 1000,
            url: "https://files.example.com/terms.pdf",
          }],
        })
        yield* settled(withDoc, "sent")
        const docUpload = fake.uploads().find((u) => u.kind === "doc")!
        assert.deepStrictEqual([docUpload.filename, [...docUpload.bytes]], ["invoice.pdf", [
          ...pdf,
        ]])
        const sentDoc = fake.sent().find((s) => s.message.startsWith("Your invoice"))!
        assert.strictEqual(sentDoc.message, "Your invoice\nhttps://files.example.com/terms.pdf")
        assert.match(sentDoc.attachment!, /^doc-123456789_\d+$/)
        assert.deepStrictEqual([...fake.uploads()[0]!.bytes], [...jpeg])
        assert.match(
          fake.sent().find((s) => s.message === "Is this it?")!.attachment!,
          /^photo-123456789_\d+_ak\d+$/,
        )

        // Too many requests per second (6): retried, then sent; one message on the wire.
        fake.failNext("messages.send", 6)
        const paced = yield* reply({ text: "after the pause" })
        yield* settled(paced, "sent")
        const pacedCalls = fake.calls("messages.send").filter((c) =>
          c.params["message"] === "after the pause"
        )
        assert.deepStrictEqual(pacedCalls.map((c) => c.error?.error_code), [6, undefined])
        assert.lengthOf(fake.sent().filter((s) => s.message === "after the pause"), 1)

        // A permanent error (100): failed at once, with VK's words.
        fake.failNext("messages.send", 100)
        const bad = yield* reply({ text: "bad parameters" })
        const failedBad = yield* settled(bad, "failed")
        assert.strictEqual(failedBad.delivery.error.code, "100")
        assert.lengthOf(
          fake.calls("messages.send").filter((c) => c.params["message"] === "bad parameters"),
          1,
        )
        const contactId =
          ((yield* api("GET", `/conversations/${conversation}`)).body as { contactId: string })
            .contactId
        const reachable = () =>
          api("GET", `/contacts/${contactId}`).pipe(
            Effect.map((r) =>
              (r.body as { identities: Array<{ reachable: boolean }> }).identities[0]?.reachable
            ),
          )
        assert.strictEqual(yield* reachable(), true)

        // 901 (the person does not allow messages): failed, unreachable.
        fake.deny(USER)
        const blocked = yield* reply({ text: "are you there?" })
        const failedBlocked = yield* settled(blocked, "failed")
        assert.strictEqual(failedBlocked.delivery.error.code, "901")
        yield* eventually("unreachable", () => reachable().pipe(Effect.map((r) => r === false)))

        // They write again: reachable. Then message_deny: the next reply fails without asking VK.
        fake.allow(USER)
        const again = fixture("message_new")
        again.object.message.id = 1600
        again.object.message.text = "I am back"
        assert.strictEqual((yield* post(fake, callback, again)).text, "ok")
        yield* eventually("reachable again", () => reachable().pipe(Effect.map((r) => r === true)))
        assert.strictEqual((yield* post(fake, callback, fixture("message_deny"))).text, "ok")
        const callsBefore = fake.calls("messages.send").length
        const denied = yield* reply({ text: "hello?" })
        const failedDenied = yield* settled(denied, "failed")
        assert.strictEqual(failedDenied.delivery.error.code, "messages_denied")
        assert.strictEqual(fake.calls("messages.send").length, callsBefore)
        yield* eventually(
          "unreachable after deny",
          () => reachable().pipe(Effect.map((r) => r === false)),
        )
      }),
    90_000,
  )

  it.scopedLive(
    "long poll: events in, ts moved only once stored; failed 1/2/3 recovered",
    () =>
      Effect.gen(function* () {
        const { fake, api } = yield* setup({ mode: "longpoll" })
        // VK hands a new poller the current ts: an event from before it asked is not its to get.
        yield* eventually(
          "the plugin polls",
          () => fake.calls("groups.getLongPollServer").length > 0,
        )
        const event = fixture("message_new")
        delete event["secret"]
        fake.pushEvent(TOKEN, { type: event.type, object: event.object })
        const conversation = yield* vkConversation(api)
        yield* eventually(
          "stored",
          () => messagesOf(api, conversation).pipe(Effect.map((m) => m.length === 1)),
        )
        yield* eventually("ts moved past it", () => fake.pendingEvents(TOKEN) === 0)

        // The key expires (2), then history is lost (3), then ts is too old (1): each recovered.
        fake.failLongPoll(TOKEN, 2)
        fake.failLongPoll(TOKEN, 3)
        fake.failLongPoll(TOKEN, 1)
        // Wake the poll in hand so the failures are met now; getLongPollServer asked again.
        fake.pushEvent(TOKEN, { type: "group_join", object: { user_id: 1, join_type: "join" } })
        yield* eventually("the failures met", () => fake.longPollFailuresLeft(TOKEN) === 0)
        // 2 and 3 each made the plugin ask for a new key (3: and a new ts).
        assert.isAtLeast(fake.calls("groups.getLongPollServer").length, 3)
        for (const [i, text] of ["second", "third"].entries()) {
          const next = fixture("message_new")
          next.object.message.id = 2000 + i
          next.object.message.text = text
          fake.pushEvent(TOKEN, { type: next.type, object: next.object })
        }
        yield* eventually(
          "all three stored",
          () => messagesOf(api, conversation).pipe(Effect.map((m) => m.length === 3)),
        )
        // The same event again (a repeat after a crash) is stored once.
        fake.pushEvent(TOKEN, { type: event.type, object: event.object })
        yield* eventually("repeat consumed", () => fake.pendingEvents(TOKEN) === 0)
        yield* Effect.sleep("300 millis")
        assert.lengthOf(yield* messagesOf(api, conversation), 3)
      }),
    60_000,
  )
})
