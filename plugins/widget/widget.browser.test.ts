/**
 * The web chat widget in a real browser (Debian's Chromium, driven by playwright-core): a page on
 * another origin embeds the widget with one <script> tag; the visitor opens it and writes; Chorus
 * stores the message in a conversation; an operator's reply through the API appears in the page
 * at once; after a reload the conversation is restored, each message once, for the same visitor.
 */
import * as NodeFs from "node:fs"
import * as NodeHttp from "node:http"
import type { AddressInfo } from "node:net"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { chromium } from "playwright-core"
import { request } from "../../tests/api/ApiServer.ts"
import { eventually, startReplyServer } from "../../tests/api/ReplyServer.ts"
import { installRepoPlugins } from "../../tests/support/PluginFixtures.ts"
import { tempDir } from "../../tests/support/TestDatabase.ts"

const CHROMIUM = "/usr/bin/chromium"

/** A shop's page on its own origin, embedding the widget from the Chorus server. */
const shopPage = (chorusUrl: string) =>
  Effect.acquireRelease(
    Effect.async<{ url: string; server: NodeHttp.Server }>((resume) => {
      const server = NodeHttp.createServer((_req, res) => {
        res.writeHead(200, { "content-type": "text/html; charset=utf-8" })
        res.end(`<!doctype html><html><body><h1>Shop</h1>
<script src="${chorusUrl}/plugins/widget/widget.js" data-site="shop" data-name="Ann" async></script>
</body></html>`)
      })
      server.listen(0, "127.0.0.1", () =>
        resume(
          Effect.succeed({
            url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`,
            server,
          }),
        ))
    }),
    ({ server }) => Effect.promise(() => new Promise<void>((r) => server.close(() => r()))),
  )

describe.skipIf(!NodeFs.existsSync(CHROMIUM))("widget in Chromium", () => {
  it.scopedLive(
    "write, get the operator's reply live, reload and find the conversation",
    () =>
      Effect.gen(function* () {
        const plugins = yield* tempDir("chorus-plugins-")
        installRepoPlugins(plugins, ["widget"])
        // The shop's origin is only known once its server listens: allow loopback pages.
        const server = yield* startReplyServer({ dataDir: yield* tempDir(), pluginsDir: plugins })
        const shop = yield* shopPage(server.url)
        const api = (method: string, path: string, body?: unknown) =>
          request(`${server.url}/api/v1${path}`, {
            token: server.token,
            method,
            ...(body !== undefined ? { body } : {}),
          })

        const browser = yield* Effect.acquireRelease(
          Effect.promise(() =>
            chromium.launch({
              executablePath: CHROMIUM,
              args: [
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
              ],
            })
          ),
          (b) => Effect.promise(() => b.close()),
        )
        const context = yield* Effect.promise(() => browser.newContext())
        const page = yield* Effect.promise(() => context.newPage())

        yield* Effect.promise(() => page.goto(shop.url))
        yield* Effect.promise(() => page.click("[data-chorus-widget] [data-open]"))
        // Nobody is online (no operator at all here): the offline form asks for an address.
        yield* Effect.promise(() =>
          page.waitForSelector("[data-chorus-widget] [data-offline]:not([hidden])", {
            timeout: 10_000,
          })
        )
        yield* Effect.promise(() =>
          page.fill("[data-chorus-widget] [data-email]", "Visitor@Example.com")
        )
        yield* Effect.promise(() =>
          page.fill("[data-chorus-widget] [data-input]", "Do you ship to Lisbon?")
        )
        yield* Effect.promise(() => page.press("[data-chorus-widget] [data-input]", "Enter"))

        let conversation = ""
        yield* eventually("the visitor's conversation", () =>
          api("GET", "/conversations?channel=widget").pipe(Effect.map((r) => {
            const list = (r.body as { conversations?: Array<{ id: string }> }).conversations ?? []
            conversation = list[0]?.id ?? ""
            return list.length === 1
          })))
        const stored = (yield* api("GET", `/conversations/${conversation}/messages`)).body as {
          messages: Array<{ text: string }>
        }
        assert.deepStrictEqual(
          stored.messages.map((m) =>
            m.text
          ),
          ["Do you ship to Lisbon?"],
        )
        // The address left in the offline form is the visitor's claim on their identity.
        const withContact = (yield* api("GET", `/conversations/${conversation}`)).body as {
          contactId: string
        }
        const contact = (yield* api("GET", `/contacts/${withContact.contactId}`)).body as {
          identities: Array<{ email: string | null; verification: string }>
        }
        assert.deepStrictEqual(
          contact.identities.map((i) => [i.email, i.verification]),
          [["visitor@example.com", "claimed"]],
        )

        const reply = yield* api("POST", `/conversations/${conversation}/messages`, {
          text: "We do, in 2 days.",
        })
        assert.strictEqual(reply.status, 202)
        yield* Effect.promise(() =>
          page.waitForSelector(
            '[data-chorus-widget] [data-message="operator"] >> text=We do, in 2 days.',
            {
              timeout: 10_000,
            },
          )
        )

        // A file through the paperclip: stored with the message, checked by the attachment store.
        const png = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13])
        yield* Effect.promise(() =>
          page.setInputFiles("[data-chorus-widget] [data-file]", {
            name: "route.png",
            mimeType: "image/png",
            buffer: png,
          })
        )
        yield* eventually("the file stored", () =>
          api("GET", `/conversations/${conversation}/messages`).pipe(Effect.map((r) =>
            (r.body as {
              messages: Array<{ attachments: Array<{ name: string; mimeType: string }> }>
            })
              .messages.some((m) =>
                m.attachments.some((a) =>
                  a.name === "route.png" && a.mimeType === "image/png"
                )
              )
          )))

        yield* Effect.promise(() =>
          page.reload()
        )
        yield* Effect.promise(() => page.click("[data-chorus-widget] [data-open]"))
        yield* Effect.promise(() =>
          page.waitForFunction(
            () => document.querySelectorAll("[data-chorus-widget] [data-message]").length >= 3,
            undefined,
            { timeout: 10_000 },
          )
        )
        const shown = yield* Effect.promise(() =>
          page.$$eval(
            "[data-chorus-widget] [data-message]",
            (rows) => rows.map((r) => [r.getAttribute("data-message"), r.textContent]),
          )
        )
        assert.deepStrictEqual(shown, [
          ["visitor", "Do you ship to Lisbon?"],
          ["operator", "We do, in 2 days."],
          ["visitor", "\u{1F4CE} route.png"],
        ])
        // Still one visitor, one conversation.
        const all = (yield* api("GET", "/conversations?channel=widget")).body as {
          conversations: Array<unknown>
        }
        assert.lengthOf(all.conversations, 1)
      }),
    90_000,
  )
})
