/**
 * The Telegram channel plugin (plugins/telegram) end to end, in a worker thread of a real Chorus
 * server, against the fake Bot API server (tests/support/fakes/TelegramFake.ts) that grammY talks
 * to unchanged: a customer's text and photo come in by long polling, are stored (the photo in the
 * attachment store) and confirmed to Telegram only then; replies go out split at 4,096
 * characters, wait out a 429's retry_after, and a 403 "blocked" fails the reply and marks the
 * identity unreachable. In webhook mode the secret token is checked and the update is answered
 * only once stored.
 */
import { jpeg } from "../support/Files.ts"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { request } from "../api/ApiServer.ts"
import { eventually, startReplyServer } from "../api/ReplyServer.ts"
import { telegramFake } from "../support/fakes/TelegramFake.ts"
import { installRepoPlugins } from "../support/PluginFixtures.ts"
import { tempDir } from "../support/TestDatabase.ts"

const TOKEN = "7001:test-secret-token"
const CHAT = 12345678

const setup = (settings: Record<string, string | number>) =>
  Effect.gen(function* () {
    const fake = yield* telegramFake({ bots: [TOKEN] })
    const plugins = yield* tempDir("chorus-plugins-")
    installRepoPlugins(plugins, ["telegram"], { net: { telegram: [new URL(fake.apiRoot).host] } })
    process.env["CHORUS_PLUGIN_TELEGRAM_BOT_TOKEN_MAIN"] = TOKEN
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => delete process.env["CHORUS_PLUGIN_TELEGRAM_BOT_TOKEN_MAIN"])
    )
    const server = yield* startReplyServer({
      dataDir: yield* tempDir(),
      pluginsDir: plugins,
      pluginSettings: {
        telegram: { accounts: "main", apiRoot: fake.apiRoot, pollTimeout: 1, ...settings },
      },
    })
    const api = (method: string, path: string, body?: unknown) =>
      request(`${server.url}/api/v1${path}`, {
        token: server.token,
        method,
        ...(body !== undefined ? { body } : {}),
      })
    return { fake, server, api }
  })

type Api = (method: string, path: string, body?: unknown) => ReturnType<typeof request>

const telegramConversation = (api: Api) =>
  Effect.gen(function* () {
    let id = ""
    yield* eventually("a telegram conversation", () =>
      api("GET", "/conversations?channel=telegram").pipe(Effect.map((r) => {
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

describe("telegram channel", () => {
  it.scopedLive(
    "polling: text and photo in, stored, confirmed; replies out, split, paced, blocked",
    () =>
      Effect.gen(function* () {
        const { fake, server, api } = yield* setup({})
        fake.pushFixture(TOKEN, "message")
        fake.addFile("photo-big", jpeg, { path: "photos/file_1.jpg", kind: "photo" })
        fake.pushUpdate(TOKEN, {
          message: {
            message_id: 501,
            date: Math.floor(Date.now() / 1000),
            chat: { id: CHAT, type: "private", first_name: "FirstName" },
            from: { id: CHAT, is_bot: false, first_name: "FirstName", last_name: "LastName" },
            photo: [
              { file_id: "photo-small", file_unique_id: "s", width: 1, height: 1, file_size: 10 },
              {
                file_id: "photo-big",
                file_unique_id: "b",
                width: 1,
                height: 1,
                file_size: jpeg.length,
              },
            ],
            caption: "my broken parcel",
          },
        } as never)

        // A "document" that is a program: refused by the attachment store, named in the text.
        fake.addFile("doc-elf", new Uint8Array([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0, 0, 0]), {
          path: "documents/tool.pdf",
        })
        fake.pushUpdate(TOKEN, {
          message: {
            message_id: 502,
            date: Math.floor(Date.now() / 1000),
            chat: { id: CHAT, type: "private", first_name: "FirstName" },
            from: { id: CHAT, is_bot: false, first_name: "FirstName", last_name: "LastName" },
            document: {
              file_id: "doc-elf",
              file_unique_id: "e",
              file_name: "invoice.pdf",
              mime_type: "application/pdf",
              file_size: 10,
            },
          },
        } as never)

        // Over the Bot API's 20 MB download limit: Telegram refuses getFile; named in the text.
        const big = 21 * 1024 * 1024
        fake.addFile("doc-big", new Uint8Array(big), { path: "documents/big.zip" })
        fake.pushUpdate(TOKEN, {
          message: {
            message_id: 503,
            date: Math.floor(Date.now() / 1000),
            chat: { id: CHAT, type: "private", first_name: "FirstName" },
            from: { id: CHAT, is_bot: false, first_name: "FirstName", last_name: "LastName" },
            document: {
              file_id: "doc-big",
              file_unique_id: "g",
              file_name: "backup.zip",
              mime_type: "application/zip",
              file_size: big,
            },
          },
        } as never)

        const conversation = yield* telegramConversation(api)
        yield* eventually(
          "the four messages stored",
          () => messagesOf(api, conversation).pipe(Effect.map((m) => m.length === 4)),
        )
        const [first, second, third, fourth] = [...(yield* messagesOf(api, conversation))]
          .reverse()
        assert.lengthOf(third.attachments, 0)
        assert.match(third.text, /^\[invoice\.pdf not accepted: .*program/)
        assert.lengthOf(fourth.attachments, 0)
        assert.match(fourth.text, /^\[backup\.zip could not be fetched from Telegram: .*too big/)
        assert.strictEqual(first.text, "Hi, world!")
        assert.strictEqual(second.text, "my broken parcel")
        assert.lengthOf(second.attachments, 1)
        const attachment = second.attachments[0]
        assert.strictEqual(attachment.mimeType, "image/jpeg")
        const file = yield* Effect.promise(() =>
          fetch(`${server.url}/api/v1/attachments/${attachment.storageKey}`, {
            headers: { authorization: `Bearer ${server.token}` },
          }).then(async (r) => new Uint8Array(await r.arrayBuffer()))
        )
        assert.deepStrictEqual([...file], [...jpeg])
        // Confirmed to Telegram only once stored: nothing pending.
        yield* eventually("updates confirmed", () => fake.pending(TOKEN).length === 0)

        // A reply, and a long one (two parts).
        const reply = (text: string) =>
          api("POST", `/conversations/${conversation}/messages`, { text }).pipe(
            Effect.map((r) => (r.body as { id: string }).id),
          )
        const deliveryOf = (id: string) =>
          messagesOf(api, conversation).pipe(Effect.map((m) => m.find((x) => x.id === id)))
        const short = yield* reply("We are on it.")
        yield* eventually(
          "sent",
          () => deliveryOf(short).pipe(Effect.map((m) => m?.delivery.state === "sent")),
        )
        const sentShort = fake.sent(TOKEN).find((s) => s.text === "We are on it.")!
        assert.strictEqual(String(sentShort.chat_id), String(CHAT))
        assert.strictEqual(
          (yield* deliveryOf(short))!.externalId,
          `${CHAT}:${sentShort.message.message_id}`,
        )

        const long = yield* reply("A".repeat(3000) + "\n\n" + "B".repeat(3000))
        yield* eventually(
          "long sent",
          () => deliveryOf(long).pipe(Effect.map((m) => m?.delivery.state === "sent")),
        )
        const parts = fake.sent(TOKEN).filter((s) => /^[AB]+$/.test(s.text ?? ""))
        assert.deepStrictEqual(parts.map((p) => p.text!.length), [3000, 3000])

        // Buttons: an inline keyboard under the reply; a press comes back as the customer's
        // message with the button's text and its payload, and the press is answered.
        const keyboard = [[{ text: "Track my parcel", payload: "track" }, {
          text: "Our site",
          url: "https://shop.example.com/",
        }]]
        const withButtons = yield* api("POST", `/conversations/${conversation}/messages`, {
          text: "What next?",
          buttons: keyboard,
        })
        assert.strictEqual(withButtons.status, 202, JSON.stringify(withButtons.body))
        yield* eventually("the keyboard sent", () =>
          fake.sent(TOKEN).some((m) => m.text === "What next?"))
        const sentKeyboard = fake.sent(TOKEN).find((m) =>
          m.text === "What next?"
        )!
        assert.deepStrictEqual(sentKeyboard.reply_markup, {
          inline_keyboard: [[{ text: "Track my parcel", callback_data: "track" }, {
            text: "Our site",
            url: "https://shop.example.com/",
          }]],
        })
        fake.pushUpdate(TOKEN, {
          callback_query: {
            id: "4382bfdwdsb323b2d9",
            from: { id: CHAT, is_bot: false, first_name: "FirstName", last_name: "LastName" },
            chat_instance: "-1234",
            data: "track",
            message: {
              message_id: sentKeyboard.message.message_id,
              date: Math.floor(Date.now() / 1000),
              chat: { id: CHAT, type: "private", first_name: "FirstName" },
              text: "What next?",
              reply_markup: sentKeyboard.reply_markup,
            },
          },
        } as never)
        // A deep link's parameter: t.me/<bot>?start=order-42.
        fake.pushUpdate(TOKEN, {
          message: {
            message_id: 601,
            date: Math.floor(Date.now() / 1000),
            chat: { id: CHAT, type: "private", first_name: "FirstName" },
            from: { id: CHAT, is_bot: false, first_name: "FirstName", last_name: "LastName" },
            text: "/start order-42",
          },
        } as never)
        yield* eventually("the press and the deep link stored", () =>
          messagesOf(api, conversation).pipe(
            Effect.map((m) =>
              m.some((x) => x.text === "/start order-42")
            ),
          ))
        const latest = (yield* messagesOf(api, conversation)) as unknown as ReadonlyArray<
          { text: string; payload?: string }
        >
        assert.strictEqual(latest.find((m) => m.text === "Track my parcel")?.payload, "track")
        assert.strictEqual(latest.find((m) => m.text === "/start order-42")!.payload, "order-42")
        yield* eventually("the press answered", () =>
          fake.calls(TOKEN).some((c) =>
            c.method === "answerCallbackQuery" &&
            c.params["callback_query_id"] === "4382bfdwdsb323b2d9"
          ))

        // An operator typing: Telegram's "typing…" in the customer's chat.
        assert.strictEqual(
          (yield* api("POST", `/conversations/${conversation}/typing`)).status,
          204,
        )
        yield* eventually("sendChatAction", () =>
          fake.calls(TOKEN).some((c) =>
            c.method === "sendChatAction" && c.params["action"] === "typing" &&
            String(c.params["chat_id"]) === String(CHAT)
          ))

        // 429 with retry_after: waited, then sent.
        fake.failNext(TOKEN, "sendMessage", { kind: "tooManyRequests", retryAfter: 1 })
        const paced = yield* reply("after the pause")
        yield* eventually(
          "paced sent",
          () =>
            deliveryOf(paced).pipe(Effect.map((m) =>
              m?.delivery.state === "sent"
            )),
        )
        const calls = fake.calls(TOKEN).filter((c) =>
          c.method === "sendMessage" && c.params["text"] === "after the pause"
        )
        assert.deepStrictEqual(
          calls.map((c) =>
            c.status
          ),
          [429, 200],
        )

        // Blocked: failed with Telegram's reason, the identity unreachable.
        fake.blockChat(TOKEN, CHAT)
        const blocked = yield* reply("are you there?")
        yield* eventually(
          "blocked failed",
          () =>
            deliveryOf(blocked).pipe(Effect.map((m) => m?.delivery.state === "failed")),
        )
        const failed = (yield* deliveryOf(blocked))!
        assert.strictEqual(failed.delivery.error.code, "blocked")
        assert.match(failed.delivery.error.message, /blocked by the user/)
        const contactId =
          ((yield* api("GET", `/conversations/${conversation}`)).body as { contactId: string })
            .contactId
        const contact = (yield* api("GET", `/contacts/${contactId}`)).body as {
          identities: Array<{ reachable: boolean }>
        }
        assert.deepStrictEqual(contact.identities.map((i) => i.reachable), [false])

        // The customer unblocks the bot and writes again: reachable again.
        fake.pushUpdate(TOKEN, {
          message: {
            message_id: 504,
            date: Math.floor(Date.now() / 1000),
            chat: { id: CHAT, type: "private", first_name: "FirstName" },
            from: { id: CHAT, is_bot: false, first_name: "FirstName", last_name: "LastName" },
            text: "sorry, I am back",
          },
        } as never)
        yield* eventually("reachable again", () =>
          api("GET", `/contacts/${contactId}`).pipe(
            Effect.map((r) =>
              (r.body as { identities: Array<{ reachable: boolean }> }).identities[0]?.reachable ===
                true
            ),
          ))
      }),
    90_000,
  )

  it.scopedLive(
    "webhook: secret token checked; an update answered only once stored",
    () =>
      Effect.gen(function* () {
        const { fake, server, api } = yield* setup({})
        const switched = yield* api("PUT", "/plugins/telegram/settings", {
          mode: "webhook",
          webhookBaseUrl: server.url,
        })
        assert.strictEqual(switched.status, 200, JSON.stringify(switched.body))
        assert.strictEqual(
          (switched.body as { state: string }).state,
          "active",
          JSON.stringify(switched.body),
        )

        const wrong = yield* Effect.promise(() =>
          fetch(`${server.url}/plugins/telegram/webhook/main`, {
            method: "POST",
            headers: {
              "content-type": "application/json",
              "x-telegram-bot-api-secret-token": "guess",
            },
            body: JSON.stringify({
              update_id: 1,
              message: {
                message_id: 1,
                date: 1,
                chat: { id: 5, type: "private" },
                from: { id: 5, is_bot: false, first_name: "Eve" },
                text: "forged",
              },
            }),
          }).then((r) => r.status)
        )
        assert.strictEqual(wrong, 401)

        fake.pushFixture(TOKEN, "message")
        const conversation = yield* telegramConversation(api)
        const messages = yield* messagesOf(api, conversation)
        assert.deepStrictEqual(messages.map((m) => m.text), ["Hi, world!"])
        yield* eventually("the webhook delivery confirmed", () => fake.pending(TOKEN).length === 0)
        // The forged update was not stored: one conversation, one message.
        const all = (yield* api("GET", "/conversations")).body as { conversations: Array<unknown> }
        assert.lengthOf(all.conversations, 1)
      }),
    60_000,
  )
})
