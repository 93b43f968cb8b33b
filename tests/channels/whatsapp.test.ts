/**
 * The WhatsApp channel plugin (plugins/whatsapp) end to end, in a worker thread of a real Chorus
 * server, against the fake Graph API (tests/support/fakes/WhatsAppFake.ts): Meta's subscription
 * handshake; signed webhooks (a bad or missing signature is refused and nothing is stored; a
 * redelivered webhook is stored once); a text and a photo in (the photo fetched by media id and
 * kept in the attachment store); replies out as Graph API JSON (text, split text, reply buttons,
 * an uploaded photo with its caption); a 500 retried until it goes; 131047 and the plugin's own
 * 24-hour window failing the reply with `reply_window_closed`; templates through the plugin's
 * route; status webhooks moving a reply to delivered and read.
 */
import { jpeg } from "../support/Files.ts"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { request } from "../api/ApiServer.ts"
import { eventually, startReplyServer } from "../api/ReplyServer.ts"
import { postWebhook, statusWebhook, whatsAppFake } from "../support/fakes/WhatsAppFake.ts"
import { installRepoPlugins } from "../support/PluginFixtures.ts"
import { tempDir } from "../support/TestDatabase.ts"

const PHONE = "106540352242922"
const TOKEN = "EAAG-test-access-token"
const APP_SECRET = "test-app-secret"
const VERIFY = "test-verify-token"
const TEMPLATES = "test-templates-token"
const CUSTOMER = "16505551234"

const SECRETS = {
  CHORUS_PLUGIN_WHATSAPP_ACCESS_TOKEN_MAIN: TOKEN,
  CHORUS_PLUGIN_WHATSAPP_APP_SECRET: APP_SECRET,
  CHORUS_PLUGIN_WHATSAPP_VERIFY_TOKEN: VERIFY,
  CHORUS_PLUGIN_WHATSAPP_TEMPLATES_TOKEN: TEMPLATES,
}

const setup = Effect.gen(function* () {
  const fake = yield* whatsAppFake({ numbers: [{ phoneNumberId: PHONE, token: TOKEN }] })
  const plugins = yield* tempDir("chorus-plugins-")
  installRepoPlugins(plugins, ["whatsapp"], { net: { whatsapp: [new URL(fake.apiRoot).host] } })
  Object.assign(process.env, SECRETS)
  yield* Effect.addFinalizer(() =>
    Effect.sync(() => {
      for (const name of Object.keys(SECRETS)) delete process.env[name]
    })
  )
  const server = yield* startReplyServer({
    dataDir: yield* tempDir(),
    pluginsDir: plugins,
    pluginSettings: { whatsapp: { accounts: `main=${PHONE}`, apiRoot: fake.apiRoot } },
  })
  const api = (method: string, path: string, body?: unknown) =>
    request(`${server.url}/api/v1${path}`, {
      token: server.token,
      method,
      ...(body !== undefined ? { body } : {}),
    })
  const webhook = (payload: unknown, signature?: string | null) =>
    Effect.promise(() =>
      postWebhook(`${server.url}/plugins/whatsapp/webhook`, payload, {
        appSecret: APP_SECRET,
        ...(signature !== undefined ? { signature } : {}),
      })
    )
  yield* eventually(
    "the plugin active",
    () =>
      api("GET", "/plugins").pipe(
        Effect.map((r) =>
          ((r.body as { plugins?: Array<{ id: string; state: string }> }).plugins ?? []).some((p) =>
            p.id === "whatsapp" && p.state === "active"
          )
        ),
      ),
  )
  return { fake, server, api, webhook }
})

type Api = (method: string, path: string, body?: unknown) => ReturnType<typeof request>

const conversations = (api: Api) =>
  api("GET", "/conversations?channel=whatsapp").pipe(
    Effect.map((r) => (r.body as { conversations?: Array<{ id: string }> }).conversations ?? []),
  )

const conversationOf = (api: Api) =>
  Effect.gen(function* () {
    yield* eventually(
      "a whatsapp conversation",
      () => conversations(api).pipe(Effect.map((l) => l.length === 1)),
    )
    return (yield* conversations(api))[0]!.id
  })

const messagesOf = (api: Api, conversation: string) =>
  api("GET", `/conversations/${conversation}/messages`).pipe(
    Effect.map((r) => (r.body as { messages: Array<any> }).messages),
  )

const replyIn = (api: Api, conversation: string) => (body: Record<string, unknown>) =>
  api("POST", `/conversations/${conversation}/messages`, body).pipe(
    Effect.map((r) => {
      assert.strictEqual(r.status, 202, JSON.stringify(r.body))
      return (r.body as { id: string }).id
    }),
  )

const deliveryState = (api: Api, conversation: string, id: string, state: string) =>
  eventually(`reply ${id} ${state}`, () =>
    messagesOf(api, conversation).pipe(
      Effect.map((m) => m.find((x) => x.id === id)?.delivery?.state === state),
    ))

const messageById = (api: Api, conversation: string, id: string) =>
  messagesOf(api, conversation).pipe(Effect.map((m) => m.find((x) => x.id === id)))

describe("whatsapp channel", () => {
  it.scopedLive(
    "handshake; signed webhooks only; text and photo in, once; replies out as Graph API JSON",
    () =>
      Effect.gen(function* () {
        const { fake, server, api, webhook } = yield* setup

        // Meta's subscription handshake.
        const verify = (token: string) =>
          Effect.promise(() =>
            fetch(
              `${server.url}/plugins/whatsapp/webhook?hub.mode=subscribe&hub.challenge=1158201444` +
                `&hub.verify_token=${token}`,
            ).then(async (r) => ({ status: r.status, text: await r.text() }))
          )
        assert.deepStrictEqual(yield* verify(VERIFY), { status: 200, text: "1158201444" })
        assert.strictEqual((yield* verify("guess")).status, 403)

        // Forged and unsigned deliveries: 401, nothing stored.
        const text = fake.fixture("text_message")
        const forged = yield* webhook(
          text,
          "sha256=" + "0".repeat(64),
        )
        assert.strictEqual(forged.status, 401)
        assert.strictEqual((yield* webhook(text, null)).status, 401)
        // A number no account names (another system's, on the same Meta app): answered, not
        // stored (and logged).
        const stranger = fake.fixture("text_message", {
          edit: (b) => (b.entry[0].changes[0].value.metadata.phone_number_id = "999000111"),
        })
        assert.strictEqual((yield* webhook(stranger)).status, 200)
        assert.lengthOf(yield* conversations(api), 0)

        // The real delivery, twice (Meta redelivers when unsure): stored once.
        assert.strictEqual((yield* webhook(text)).status, 200)
        assert.strictEqual((yield* webhook(text)).status, 200)
        fake.addMedia(jpeg, "image/jpeg", "1003383421387256")
        assert.strictEqual((yield* webhook(fake.fixture("image_message"))).status, 200)

        const conversation = yield* conversationOf(api)
        yield* eventually(
          "two messages stored",
          () => messagesOf(api, conversation).pipe(Effect.map((m) => m.length === 2)),
        )
        const [first, second] = [...(yield* messagesOf(api, conversation))].reverse()
        assert.strictEqual(first.text, "Does it come in another color?")
        assert.strictEqual(first.externalId, text.entry[0].changes[0].value.messages[0].id)
        assert.strictEqual(second.text, "Here is the broken part")
        assert.lengthOf(second.attachments, 1)
        const file = yield* Effect.promise(() =>
          fetch(`${server.url}/api/v1/attachments/${second.attachments[0].storageKey}`, {
            headers: { authorization: `Bearer ${server.token}` },
          }).then(async (r) => new Uint8Array(await r.arrayBuffer()))
        )
        assert.deepStrictEqual([...file], [...jpeg])
        // The sender: the verified phone and the profile name.
        const contactId =
          ((yield* api("GET", `/conversations/${conversation}`)).body as { contactId: string })
            .contactId
        const contact = JSON.stringify((yield* api("GET", `/contacts/${contactId}`)).body)
        assert.include(contact, "+16505551234")
        assert.include(contact, "Sheena Nelson")
        // Only the media endpoint and the download were asked of Meta so far.
        assert.deepStrictEqual(
          fake.calls().map((c) => `${c.method} ${c.path.replace(/^\/v[\d.]+/, "")} ${c.status}`),
          ["GET /1003383421387256 200", "GET /whatsapp_business/attachments/ 200"],
        )

        // An operator typing: the latest message marked read, WhatsApp's "typing…" shown.
        assert.strictEqual(
          (yield* api("POST", `/conversations/${conversation}/typing`)).status,
          204,
        )
        yield* eventually("the typing indicator", () =>
          fake.reads(PHONE).some((r) => r.messageId === second.externalId && r.typing))

        const reply = replyIn(api, conversation)
        const short = yield* reply({ text: "We are on it." })
        yield* deliveryState(api, conversation, short, "sent")
        const sentShort = fake.sent(PHONE).at(-1)!
        assert.deepStrictEqual(sentShort.body, {
          messaging_product: "whatsapp",
          recipient_type: "individual",
          to: CUSTOMER,
          type: "text",
          text: { body: "We are on it." },
        })
        assert.strictEqual(
          (yield* messageById(api, conversation, short))!.externalId,
          sentShort.wamid,
        )

        // Over 4,096 characters: two messages.
        const long = yield* reply({ text: "A".repeat(3000) + "\n" + "B".repeat(3000) })
        yield* deliveryState(api, conversation, long, "sent")
        assert.deepStrictEqual(
          fake.sent(PHONE).filter((s) =>
            /^[AB]+$/.test(s.body.text?.body ?? "")
          ).map((s) => s.body.text.body.length),
          [3000, 3000],
        )

        // Buttons: reply buttons; a press comes back with its payload, answering the message.
        const buttons = yield* reply({
          text: "What next?",
          buttons: [[{ text: "Track my parcel", payload: "track" }, {
            text: "Talk to a human",
            payload: "human",
          }]],
        })
        yield* deliveryState(api, conversation, buttons, "sent")
        const sentButtons = fake.sent(PHONE).at(-1)!
        assert.deepStrictEqual(sentButtons.body.interactive, {
          type: "button",
          body: { text: "What next?" },
          action: {
            buttons: [
              { type: "reply", reply: { id: "track", title: "Track my parcel" } },
              { type: "reply", reply: { id: "human", title: "Talk to a human" } },
            ],
          },
        })
        assert.strictEqual(
          (yield* webhook(fake.fixture("interactive_button_reply", {
            edit: (b) => (b.entry[0].changes[0].value.messages[0].context.id = sentButtons.wamid),
          }))).status,
          200,
        )
        yield* eventually("the press stored", () =>
          messagesOf(api, conversation).pipe(
            Effect.map((m) =>
              m.some((x) => x.text === "Track my parcel")
            ),
          ))
        const press = (yield* messagesOf(api, conversation)).find((x) =>
          x.text === "Track my parcel"
        )
        assert.strictEqual(press.payload, "track")

        // Eleven buttons: more than a WhatsApp list holds; refused, with the reason.
        const tooMany = yield* reply({
          text: "Pick",
          buttons: [0, 6].map((from) =>
            Array.from({ length: from === 0 ? 6 : 5 }, (_, n) => ({
              text: `Option ${from + n}`,
              payload: `${from + n}`,
            }))
          ),
        })
        yield* deliveryState(api, conversation, tooMany, "failed")
        const refused = (yield* messageById(api, conversation, tooMany))!
        assert.strictEqual(refused.delivery.error.code, "buttons_unsupported")

        // A photo with its caption: uploaded to the number's media, then sent by id.
        const upload = yield* Effect.promise(() =>
          fetch(`${server.url}/api/v1/attachments?name=label.jpg`, {
            method: "POST",
            headers: { authorization: `Bearer ${server.token}`, "content-type": "image/jpeg" },
            body: jpeg,
          }).then(async (r) => ({ status: r.status, body: await r.json() }))
        )
        assert.strictEqual(upload.status, 201, JSON.stringify(upload.body))
        const photo = yield* reply({ text: "Your label", attachments: [upload.body] })
        yield* deliveryState(api, conversation, photo, "sent")
        const [uploaded] = fake.uploads(PHONE)
        assert.deepStrictEqual([...uploaded!.bytes], [...jpeg])
        assert.strictEqual(uploaded!.type, "image/jpeg")
        assert.deepStrictEqual(fake.sent(PHONE).at(-1)!.body, {
          messaging_product: "whatsapp",
          recipient_type: "individual",
          to: CUSTOMER,
          type: "image",
          image: { id: uploaded!.id, caption: "Your label" },
        })

        // By now everything handed in is stored: the forged, unsigned and stranger's deliveries
        // made no conversation of their own.
        assert.lengthOf(yield* conversations(api), 1)
        const texts = (yield* messagesOf(api, conversation)).map((m) => m.text)
        assert.lengthOf(texts.filter((t) => t === "Does it come in another color?"), 1)
      }),
    120_000,
  )

  it.scopedLive(
    "provider errors: 500 retried until sent; 131047 and a 24-hour-old customer fail the reply",
    () =>
      Effect.gen(function* () {
        const { fake, api, webhook } = yield* setup
        assert.strictEqual((yield* webhook(fake.fixture("text_message"))).status, 200)
        const conversation = yield* conversationOf(api)
        const reply = replyIn(api, conversation)

        // The window is remembered across a restart of the plugin (its key-value store).
        const reloaded = yield* api("POST", "/plugins/whatsapp/reload")
        assert.strictEqual(reloaded.status, 200, JSON.stringify(reloaded.body))

        // A 500, then Meta is back: retried, sent once.
        fake.failNext(PHONE, { code: 500 })
        const recovered = yield* reply({ text: "after the outage" })
        yield* deliveryState(api, conversation, recovered, "sent")
        const posts = fake.calls().filter((c) => c.path.endsWith("/messages"))
        assert.deepStrictEqual(posts.map((c) => c.status), [500, 200])
        assert.lengthOf(fake.sent(PHONE).filter((s) => s.body.text?.body === "after the outage"), 1)

        // Throughput (130429): retried after a pause, sent.
        fake.failNext(PHONE, { code: 130429 })
        const paced = yield* reply({ text: "after the pause" })
        yield* deliveryState(api, conversation, paced, "sent")

        // Pair rate limit (131056): retried after Meta's pause, sent once.
        fake.failNext(PHONE, { code: 131056 })
        const pair = yield* reply({ text: "after the pair limit" })
        yield* deliveryState(api, conversation, pair, "sent")
        assert.deepStrictEqual(
          fake.calls().filter((c) => c.code === 131056 || c.code === 130429).map((c) => c.code),
          [130429, 131056],
        )

        // Meta says the window is closed (131047): failed, not retried, with the reason.
        fake.failNext(PHONE, { code: 131047, times: 5 })
        const late = yield* reply({ text: "are you there?" })
        yield* deliveryState(api, conversation, late, "failed")
        const failed = (yield* messageById(api, conversation, late))!
        assert.strictEqual(failed.delivery.error.code, "reply_window_closed")
        assert.match(failed.delivery.error.message, /template/)
        assert.match(failed.delivery.error.message, /more than 24 hours/)
        assert.strictEqual(
          fake.calls().filter((c) => c.code === 131047).length,
          1,
          "not retried",
        )

        // Our own window: a customer whose last message is 25 hours old gets no free-form
        // reply, and Meta is not asked.
        const old = Math.floor(Date.now() / 1000) - 25 * 3600
        assert.strictEqual(
          (yield* webhook(fake.fixture("text_message", {
            timestamp: old,
            edit: (b) => {
              const value = b.entry[0].changes[0].value
              value.contacts[0].wa_id = "4915123456789"
              value.contacts[0].profile.name = "Old Customer"
              value.messages[0].from = "4915123456789"
            },
          }))).status,
          200,
        )
        let oldConversation = ""
        yield* eventually("the old customer's conversation", () =>
          conversations(api).pipe(Effect.map((l) => {
            oldConversation = l.find((c) =>
              c.id !== conversation
            )?.id ?? ""
            return oldConversation !== ""
          })))
        const before = fake.calls().length
        const closed = yield* replyIn(api, oldConversation)({ text: "hello again" })
        yield* deliveryState(api, oldConversation, closed, "failed")
        const closedReply = (yield* messageById(api, oldConversation, closed))!
        assert.strictEqual(closedReply.delivery.error.code, "reply_window_closed")
        assert.match(closedReply.delivery.error.message, /templates\/send/)
        assert.strictEqual(fake.calls().length, before, "Meta was not asked")
      }),
    120_000,
  )

  it.scopedLive(
    "media endpoint down: the webhook answered 500 and nothing stored; Meta's redelivery stored once",
    () =>
      Effect.gen(function* () {
        const { fake, api, webhook } = yield* setup
        fake.addMedia(jpeg, "image/jpeg", "1003383421387256")
        fake.failNext(PHONE, { code: 500, endpoint: "mediaInfo", times: 2 })
        const image = fake.fixture("image_message")
        assert.strictEqual((yield* webhook(image)).status, 500)
        assert.strictEqual((yield* webhook(image)).status, 500)
        assert.lengthOf(yield* conversations(api), 0)
        assert.strictEqual((yield* webhook(image)).status, 200)
        assert.strictEqual((yield* webhook(image)).status, 200)
        const conversation = yield* conversationOf(api)
        const messages = yield* messagesOf(api, conversation)
        assert.lengthOf(messages, 1)
        assert.lengthOf(messages[0].attachments, 1)
      }),
    60_000,
  )

  it.scopedLive(
    "a customer behind a WhatsApp username: known by the business-scoped user id, answered by it",
    () =>
      Effect.gen(function* () {
        const { fake, api, webhook } = yield* setup
        const bsuid = "US.13491208655302741918"
        const hidden = fake.fixture("text_message", {
          edit: (b) => {
            const value = b.entry[0].changes[0].value
            value.contacts = [{ profile: { name: "Sheena", username: "sheena.n" }, user_id: bsuid }]
            delete value.messages[0].from
            value.messages[0].from_user_id = bsuid
          },
        })
        assert.strictEqual((yield* webhook(hidden)).status, 200)
        const conversation = yield* conversationOf(api)
        const id = yield* replyIn(api, conversation)({ text: "Hello Sheena" })
        yield* deliveryState(api, conversation, id, "sent")
        assert.deepStrictEqual(fake.sent(PHONE).at(-1)!.body, {
          messaging_product: "whatsapp",
          recipient_type: "individual",
          recipient: bsuid,
          type: "text",
          text: { body: "Hello Sheena" },
        })
      }),
    60_000,
  )

  it.scopedLive(
    "templates: sent through the plugin's route with its token",
    () =>
      Effect.gen(function* () {
        const { fake, server } = yield* setup
        const send = (body: unknown, token?: string) =>
          Effect.promise(() =>
            fetch(`${server.url}/plugins/whatsapp/templates/send`, {
              method: "POST",
              headers: {
                "content-type": "application/json",
                ...(token !== undefined ? { authorization: `Bearer ${token}` } : {}),
              },
              body: JSON.stringify(body),
            }).then(async (r) => ({ status: r.status, body: await r.json() }))
          )
        const template = {
          account: "main",
          to: "+16505551234",
          template: {
            name: "order_update",
            language: "en_US",
            components: [{ type: "body", parameters: [{ type: "text", text: "4471" }] }],
          },
        }
        assert.strictEqual((yield* send(template)).status, 401)
        assert.strictEqual((yield* send(template, "guess")).status, 401)
        const bad = yield* send({ ...template, template: { name: "Bad Name" } }, TEMPLATES)
        assert.strictEqual(bad.status, 400)
        assert.lengthOf(fake.sent(PHONE), 0)

        const ok = yield* send(template, TEMPLATES)
        assert.strictEqual(ok.status, 200, JSON.stringify(ok.body))
        const [sent] = fake.sent(PHONE)
        assert.strictEqual(ok.body.externalId, sent!.wamid)
        assert.deepStrictEqual(sent!.body, {
          messaging_product: "whatsapp",
          recipient_type: "individual",
          to: CUSTOMER,
          type: "template",
          template: {
            name: "order_update",
            language: { code: "en_US" },
            components: [{ type: "body", parameters: [{ type: "text", text: "4471" }] }],
          },
        })
      }),
    60_000,
  )

  it.scopedLive(
    "status webhooks: a reply delivered, then read; a failed one with its code",
    () =>
      Effect.gen(function* () {
        const { fake, api, webhook } = yield* setup
        assert.strictEqual((yield* webhook(fake.fixture("text_message"))).status, 200)
        const conversation = yield* conversationOf(api)
        const reply = replyIn(api, conversation)
        const id = yield* reply({ text: "Your parcel left" })
        yield* deliveryState(api, conversation, id, "sent")
        const wamid = fake.sent(PHONE).at(-1)!.wamid

        const status = (s: Parameters<typeof statusWebhook>[1]) =>
          webhook(statusWebhook(PHONE, s)).pipe(Effect.map((r) => r.status))
        assert.strictEqual(yield* status({ wamid, status: "sent", recipient: CUSTOMER }), 200)
        assert.strictEqual(yield* status({ wamid, status: "delivered", recipient: CUSTOMER }), 200)
        yield* deliveryState(api, conversation, id, "delivered")
        assert.strictEqual(yield* status({ wamid, status: "read", recipient: CUSTOMER }), 200)
        yield* deliveryState(api, conversation, id, "read")
        // A status for a message Chorus never sent: answered, changes nothing.
        assert.strictEqual(
          yield* status({ wamid: "wamid.unknown", status: "read", recipient: CUSTOMER }),
          200,
        )

        const second = yield* reply({ text: "Second try" })
        yield* deliveryState(api, conversation, second, "sent")
        const failedWamid = fake.sent(PHONE).at(-1)!.wamid
        assert.strictEqual(
          yield* status({
            wamid: failedWamid,
            status: "failed",
            recipient: CUSTOMER,
            error: { code: 131026, title: "Message undeliverable" },
          }),
          200,
        )
        yield* deliveryState(api, conversation, second, "failed")
        const failed = (yield* messageById(api, conversation, second))!
        assert.strictEqual(failed.delivery.error.code, "131026")
      }),
    60_000,
  )
})
