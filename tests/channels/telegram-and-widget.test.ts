/**
 * Issue #5's end-to-end path in one server: a customer writes text and a photo to the Telegram bot
 * (the fake Bot API, grammY unchanged) and then through the web chat widget (real Chromium); an
 * operator's replies through the API reach the Telegram chat and the widget respectively, each
 * recorded `sent` with the provider's id. Both channel plugins run in worker threads.
 */
import { jpeg } from "../support/Files.ts"
import * as NodeFs from "node:fs"
import * as NodeHttp from "node:http"
import type { AddressInfo } from "node:net"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { chromium } from "playwright-core"
import { request } from "../api/ApiServer.ts"
import { eventually, startReplyServer } from "../api/ReplyServer.ts"
import { telegramFake } from "../support/fakes/TelegramFake.ts"
import { installRepoPlugins } from "../support/PluginFixtures.ts"
import { tempDir } from "../support/TestDatabase.ts"

const CHROMIUM = "/usr/bin/chromium"
const TOKEN = "7003:both-channels-token"
const CHAT = 4242

describe.skipIf(!NodeFs.existsSync(CHROMIUM))("Telegram and the widget, one operator", () => {
  it.scopedLive(
    "text and photo by Telegram, then the widget; replies reach each, recorded sent",
    () =>
      Effect.gen(function* () {
        const fake = yield* telegramFake({ bots: [TOKEN] })
        const plugins = yield* tempDir("chorus-plugins-")
        installRepoPlugins(plugins, ["telegram", "widget"], {
          net: { telegram: [new URL(fake.apiRoot).host] },
        })
        process.env["CHORUS_PLUGIN_TELEGRAM_BOT_TOKEN_MAIN"] = TOKEN
        yield* Effect.addFinalizer(() =>
          Effect.sync(() => delete process.env["CHORUS_PLUGIN_TELEGRAM_BOT_TOKEN_MAIN"])
        )
        const server = yield* startReplyServer({
          dataDir: yield* tempDir(),
          pluginsDir: plugins,
          pluginSettings: { telegram: { accounts: "main", apiRoot: fake.apiRoot, pollTimeout: 1 } },
        })
        const api = (method: string, path: string, body?: unknown) =>
          request(`${server.url}/api/v1${path}`, {
            token: server.token,
            method,
            ...(body !== undefined ? { body } : {}),
          })
        const conversationOn = (channel: string) =>
          Effect.gen(function* () {
            let id = ""
            yield* eventually(`a ${channel} conversation`, () =>
              api("GET", `/conversations?channel=${channel}`).pipe(Effect.map((r) => {
                id = (r.body as { conversations?: Array<{ id: string }> }).conversations?.[0]?.id ??
                  ""
                return id !== ""
              })))
            return id
          })
        const messages = (conversation: string) =>
          api("GET", `/conversations/${conversation}/messages`).pipe(
            Effect.map((r) => (r.body as { messages: Array<any> }).messages),
          )

        // Telegram: text, then a photo.
        const from = { id: CHAT, is_bot: false, first_name: "Maria" }
        const chat = { id: CHAT, type: "private", first_name: "Maria" }
        const date = Math.floor(Date.now() / 1000)
        fake.addFile("ph", jpeg, { path: "photos/p.jpg", kind: "photo" })
        fake.pushUpdate(
          TOKEN,
          { message: { message_id: 1, date, chat, from, text: "Hello from Telegram" } } as never,
        )
        fake.pushUpdate(TOKEN, {
          message: {
            message_id: 2,
            date,
            chat,
            from,
            photo: [{
              file_id: "ph",
              file_unique_id: "p",
              width: 1,
              height: 1,
              file_size: jpeg.length,
            }],
            caption: "the label",
          },
        } as never)
        const telegram = yield* conversationOn("telegram")
        yield* eventually(
          "both Telegram messages",
          () => messages(telegram).pipe(Effect.map((m) => m.length === 2)),
        )
        const photo = (yield* messages(telegram)).find((m) => m.text === "the label")
        assert.strictEqual(photo.attachments[0].mimeType, "image/jpeg")

        // The widget, in Chromium, on a shop page.
        const shop = yield* Effect.acquireRelease(
          Effect.async<NodeHttp.Server>((resume) => {
            const s = NodeHttp.createServer((_q, res) => {
              res.writeHead(200, { "content-type": "text/html" })
              res.end(
                `<!doctype html><body><script src="${server.url}/plugins/widget/widget.js" data-site="shop" async></script></body>`,
              )
            })
            s.listen(0, "127.0.0.1", () => resume(Effect.succeed(s)))
          }),
          (s) => Effect.promise(() => new Promise<void>((r) => s.close(() => r()))),
        )
        const browser = yield* Effect.acquireRelease(
          Effect.promise(() =>
            chromium.launch({
              executablePath: CHROMIUM,
              args: [
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-sync",
              ],
            })
          ),
          (b) => Effect.promise(() => b.close()),
        )
        const page = yield* Effect.promise(() => browser.newPage())
        yield* Effect.promise(() =>
          page.goto(`http://127.0.0.1:${(shop.address() as AddressInfo).port}/`)
        )
        yield* Effect.promise(() => page.click("[data-chorus-widget] [data-open]"))
        yield* Effect.promise(() =>
          page.fill("[data-chorus-widget] [data-input]", "And now from the website")
        )
        yield* Effect.promise(() => page.press("[data-chorus-widget] [data-input]", "Enter"))
        const widget = yield* conversationOn("widget")

        // One operator answers both.
        const answer = (conversation: string, text: string) =>
          api("POST", `/conversations/${conversation}/messages`, { text }).pipe(
            Effect.map((r) => (r.body as { id: string }).id),
          )
        const toTelegram = yield* answer(telegram, "Got your photo, Maria.")
        const toWidget = yield* answer(widget, "And your website message.")
        yield* eventually(
          "Telegram got it",
          () => fake.sent(TOKEN).some((s) => s.text === "Got your photo, Maria."),
        )
        yield* Effect.promise(() =>
          page.waitForSelector(
            '[data-chorus-widget] [data-message="operator"] >> text=And your website message.',
            {
              timeout: 10_000,
            },
          )
        )
        const sentOf = (conversation: string, id: string) =>
          messages(conversation).pipe(Effect.map((m) => m.find((x) => x.id === id)))
        yield* eventually("both recorded sent", () =>
          Effect.all([sentOf(telegram, toTelegram), sentOf(widget, toWidget)]).pipe(
            Effect.map(([t, w]) =>
              t?.delivery.state === "sent" && w?.delivery.state === "sent"
            ),
          ))
        const [t, w] = yield* Effect.all([sentOf(telegram, toTelegram), sentOf(widget, toWidget)])
        const telegramMessage = fake.sent(TOKEN).find((s) => s.text === "Got your photo, Maria.")!
        assert.strictEqual(t.externalId, `${CHAT}:${telegramMessage.message.message_id}`)
        assert.strictEqual(w.externalId, toWidget)
      }),
    90_000,
  )
})
