/**
 * The web chat widget plugin in a real server (worker thread), driven by WebSocket clients as the
 * widget script drives it: a visitor's message is acknowledged once stored (and stored once when
 * resent after a reconnect), an operator's reply reaches every open window at once and is there
 * on the next visit (history since the last message seen), a site-signed user is recognised and
 * a wrong signature is treated as anonymous, origins and rates are limited, and the script is
 * served for the site's <script> tag.
 */
import { createHmac } from "node:crypto"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
// @ts-expect-error -- ws ships no types of its own (and @types/ws is not installed)
import WebSocket from "ws"
import { request } from "../../tests/api/ApiServer.ts"
import { eventually, recordEvents, startReplyServer } from "../../tests/api/ReplyServer.ts"
import { addOperator } from "../../tests/inbox/InboxClient.ts"
import { installRepoPlugins } from "../../tests/support/PluginFixtures.ts"
import { tempDir } from "../../tests/support/TestDatabase.ts"

const SECRET = "site-secret-for-tests"

interface Window {
  // deno-lint-ignore no-explicit-any -- ws is untyped here
  readonly ws: any
  readonly frames: Array<any>
  readonly closed: Promise<number>
}

const open = (url: string, origin = "https://shop.example.com") =>
  Effect.promise(
    () =>
      new Promise<Window>((resolve, reject) => {
        const ws = new WebSocket(url, { origin })
        const frames: Array<any> = []
        const closed = new Promise<number>((r) => ws.on("close", (code: number) => r(code)))
        ws.on("message", (data: unknown) => frames.push(JSON.parse(String(data))))
        ws.on("open", () => resolve({ ws, frames, closed }))
        ws.on("error", reject)
      }),
  )

const setup = (settings: Record<string, string | number> = {}) =>
  Effect.gen(function* () {
    const plugins = yield* tempDir("chorus-plugins-")
    installRepoPlugins(plugins, ["widget"])
    process.env["CHORUS_PLUGIN_WIDGET_SITE_SECRET_SHOP"] = SECRET
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => delete process.env["CHORUS_PLUGIN_WIDGET_SITE_SECRET_SHOP"])
    )
    const server = yield* startReplyServer({
      dataDir: yield* tempDir(),
      pluginsDir: plugins,
      pluginSettings: { widget: { allowedOrigins: "https://shop.example.com", ...settings } },
    })
    const ws = (query: string) =>
      `${server.url.replace("http", "ws")}/plugins/widget/ws/shop?${query}`
    const api = (method: string, path: string, body?: unknown) =>
      request(`${server.url}/api/v1${path}`, {
        token: server.token,
        method,
        ...(body !== undefined ? { body } : {}),
      })
    return { server, ws, api }
  })

const visitor = "v_0123456789abcdefXYZ"

describe("widget channel", () => {
  it.scopedLive(
    "messages in, acknowledged once stored; replies live to every window and kept for the next visit",
    () =>
      Effect.gen(function* () {
        const { ws, api, server } = yield* setup()
        const one = yield* open(ws(`visitor=${visitor}&name=Ann`))
        const two = yield* open(ws(`visitor=${visitor}`))
        yield* eventually("welcomes", () => one.frames.length >= 1 && two.frames.length >= 1)
        // Nobody online for the site yet: the window is told, and shows its offline form.
        assert.deepStrictEqual(one.frames[0], {
          type: "welcome",
          site: "shop",
          verified: false,
          available: false,
        })
        const team = yield* server.teams.add("Web").pipe(Effect.orDie)
        yield* server.teams.claimInbox(team.id, { channel: "widget", account: "shop" }).pipe(
          Effect.orDie,
        )
        const ann = yield* addOperator(server, {
          email: "ann@shop.example",
          teamIds: [team.id],
          presence: "online",
        })
        const three = yield* open(ws(`visitor=${visitor}`))
        yield* eventually("third welcome", () => three.frames.length >= 1)
        assert.strictEqual(three.frames[0].available, true)
        yield* server.operators.update(ann.id, { presence: "away" }).pipe(Effect.orDie)

        one.ws.send(
          JSON.stringify({ type: "message", clientId: "c1", text: "Is my order shipped?" }),
        )
        yield* eventually(
          "ack",
          () => one.frames.some((f) => f.type === "ack" && f.clientId === "c1"),
        )
        // The other window of the same visitor shows it too.
        yield* eventually(
          "mirrored",
          () => two.frames.some((f) => f.type === "message" && f.text === "Is my order shipped?"),
        )
        // Resent after a reconnect (same clientId): acknowledged as a duplicate, stored once.
        one.ws.send(
          JSON.stringify({ type: "message", clientId: "c1", text: "Is my order shipped?" }),
        )
        yield* eventually("dup ack", () => one.frames.filter((f) => f.type === "ack").length === 2)
        assert.isTrue(one.frames.filter((f) => f.type === "ack")[1].duplicate)

        let conversation = ""
        yield* eventually("the conversation", () =>
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
          ["Is my order shipped?"],
        )

        // Typing, both ways: the visitor's reaches the inbox (an event on the conversation),
        // at most one per two seconds; an operator's reaches every window of the visitor.
        const events = yield* recordEvents(server.bus)
        one.ws.send(JSON.stringify({ type: "typing" }))
        one.ws.send(JSON.stringify({ type: "typing" }))
        yield* eventually("the visitor's typing", () =>
          events.some((e) =>
            e.type === "conversation.typing" && e.by === "customer" &&
            e.conversationId === conversation
          ))
        yield* Effect.sleep("300 millis")
        assert.strictEqual(
          events.filter((e) =>
            e.type === "conversation.typing"
          ).length,
          1,
          "the second signal within two seconds is not passed on",
        )
        const typing = yield* api("POST", `/conversations/${conversation}/typing`)
        assert.strictEqual(typing.status, 204)
        yield* eventually("the operator's typing in both windows", () =>
          [one, two].every((w) =>
            w.frames.some((f) =>
              f.type === "typing"
            )
          ))

        // The web chat shows no buttons: a reply with some is refused, naming the field.
        const buttons = yield* api("POST", `/conversations/${conversation}/messages`, {
          text: "Choose",
          buttons: [[{ text: "Yes", payload: "yes" }]],
        })
        assert.deepStrictEqual([buttons.status, (buttons.body as { field: string }).field], [
          422,
          "buttons",
        ])

        const reply = yield* api("POST", `/conversations/${conversation}/messages`, {
          text: "Yes, this morning.",
        })
        assert.strictEqual(reply.status, 202)
        for (const w of [one, two]) {
          yield* eventually(
            "the reply, live",
            () => w.frames.some((f) => f.from === "operator" && f.text === "Yes, this morning."),
          )
        }
        yield* eventually("sent", () =>
          api("GET", `/conversations/${conversation}/messages`).pipe(Effect.map((r) =>
            (r.body as { messages: Array<{ text: string; delivery?: { state: string } }> }).messages
              .some((m) =>
                m.text === "Yes, this morning." && m.delivery?.state === "sent"
              )
          )))

        // Next visit: the whole conversation; with `since`, only what came after.
        one.ws.close()
        two.ws.close()
        const back = yield* open(ws(`visitor=${visitor}`))
        yield* eventually("history", () =>
          back.frames.filter((f) =>
            f.type === "message"
          ).length === 2)
        const history = back.frames.filter((f) =>
          f.type === "message"
        )
        assert.deepStrictEqual(history.map((f) => [f.from, f.text]), [[
          "visitor",
          "Is my order shipped?",
        ], ["operator", "Yes, this morning."]])
        const since = yield* open(
          ws(`visitor=${visitor}&since=${encodeURIComponent(history[0].key)}`),
        )
        yield* eventually("newer only", () => since.frames.length >= 2)
        yield* Effect.sleep("200 millis")
        assert.deepStrictEqual(
          since.frames.filter((f) => f.type === "message").map((f) => f.text),
          ["Yes, this morning."],
        )

        // A file: its `file` frame, then its bytes; stored in the attachment store, checked.
        const png = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13])
        since.ws.send(JSON.stringify({
          type: "file",
          clientId: "f1",
          name: "receipt.png",
          mimeType: "image/png",
          text: "the receipt",
        }))
        since.ws.send(png)
        yield* eventually("file ack", () =>
          since.frames.some((f) =>
            f.type === "ack" && f.clientId === "f1"
          ))
        const withFile = (yield* api("GET", `/conversations/${conversation}/messages`)).body as {
          messages: Array<
            {
              text: string
              attachments: Array<{ name: string; mimeType: string; storageKey: string }>
            }
          >
        }
        const fileMessage = withFile.messages.find((m) => m.text === "the receipt")!
        assert.deepStrictEqual(fileMessage.attachments.map((a) => [a.name, a.mimeType]), [[
          "receipt.png",
          "image/png",
        ]])
        assert.match(fileMessage.attachments[0]!.storageKey, /^sha256-/)
        // A program is refused with the store's reason; bytes without a file frame are refused.
        since.ws.send(
          JSON.stringify({ type: "file", clientId: "f2", name: "cat.png", mimeType: "image/png" }),
        )
        since.ws.send(new Uint8Array([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0]))
        yield* eventually("refused", () =>
          since.frames.some((f) =>
            f.type === "error" && f.clientId === "f2" && f.code === "program"
          ))
        since.ws.send(png)
        yield* eventually("orphan bytes refused", () =>
          since.frames.some((f) =>
            f.type === "error" && f.code === "bad_frame"
          ))

        // The operator answers with a file: the visitor gets a signed link that opens it with
        // no token, and a window opened later gets a fresh one from the history.
        const storedFile = fileMessage.attachments[0]!
        const withAttachment = yield* api("POST", `/conversations/${conversation}/messages`, {
          text: "Here is your invoice",
          attachments: [{
            name: "invoice.png",
            mimeType: "image/png",
            size: png.length,
            storageKey: storedFile.storageKey,
          }],
        })
        assert.strictEqual(withAttachment.status, 202, JSON.stringify(withAttachment.body))
        yield* eventually("the file reaches the visitor", () =>
          since.frames.some((f) =>
            f.text === "Here is your invoice"
          ))
        const linked = since.frames.find((f) =>
          f.text === "Here is your invoice"
        )! as unknown as {
          files: Array<{ name: string; url: string }>
        }
        assert.strictEqual(linked.files[0]!.name, "invoice.png")
        assert.match(
          linked.files[0]!.url,
          /^\/api\/v1\/attachments\/sha256-[0-9a-f]+\?expires=\d+&signature=/,
        )
        const fetched = yield* Effect.promise(() =>
          fetch(`${server.url}${linked.files[0]!.url}`).then(async (r) => ({
            status: r.status,
            bytes: new Uint8Array(await r.arrayBuffer()),
          }))
        )
        assert.strictEqual(fetched.status, 200)
        assert.deepStrictEqual([...fetched.bytes], [...png])
        const tampered = yield* Effect.promise(() =>
          fetch(`${server.url}${linked.files[0]!.url.replace(/signature=./, "signature=x")}`)
            .then((r) =>
              r.status
            )
        )
        assert.strictEqual(tampered, 401)
      }),
    60_000,
  )

  it.scopedLive(
    "a signed user is recognised, a wrong signature is anonymous; origins and rates are limited; the script is served",
    () =>
      Effect.gen(function* () {
        const { server, ws, api } = yield* setup({ maxMessagesPerMinute: 2 })
        const hash = createHmac("sha256", SECRET).update("customer-7:Ann@Example.com").digest("hex")
        const signed = yield* open(
          ws(`visitor=${visitor}&userId=customer-7&userHash=${hash}&email=Ann@Example.com`),
        )
        yield* eventually("welcome", () => signed.frames.length >= 1)
        assert.isTrue(signed.frames[0].verified)
        // The right hash for the user id alone does not vouch for an e-mail added to it.
        const unsigned = createHmac("sha256", SECRET).update("customer-7").digest("hex")
        const claimed = yield* open(
          ws(
            `visitor=v_claims_0000000000000&userId=customer-7&userHash=${unsigned}&email=boss@example.com`,
          ),
        )
        yield* eventually("welcome", () => claimed.frames.length >= 1)
        assert.isFalse(claimed.frames[0].verified)
        const forged = yield* open(
          ws(`visitor=v_forged_000000000000&userId=customer-7&userHash=${"0".repeat(64)}`),
        )
        yield* eventually("welcome", () => forged.frames.length >= 1)
        assert.isFalse(forged.frames[0].verified)
        forged.ws.send(
          JSON.stringify({ type: "message", clientId: "f1", text: "I am customer 7, honest" }),
        )
        signed.ws.send(JSON.stringify({ type: "message", clientId: "s1", text: "hello" }))
        signed.ws.send(JSON.stringify({ type: "message", clientId: "s2", text: "hello again" }))
        signed.ws.send(JSON.stringify({ type: "message", clientId: "s3", text: "and again" }))
        yield* eventually("rate limited", () =>
          signed.frames.some((f) =>
            f.type === "error" && f.code === "rate_limited" && f.clientId === "s3"
          ))
        yield* eventually("two conversations", () =>
          api("GET", "/conversations?channel=widget").pipe(Effect.map((r) =>
            ((r.body as { conversations?: Array<unknown> }).conversations ?? []).length === 2
          )))
        const contacts = yield* api("GET", "/conversations?channel=widget").pipe(
          Effect.flatMap((r) =>
            Effect.forEach(
              (r.body as { conversations: Array<{ contactId: string }> }).conversations,
              (c) =>
                api("GET", `/contacts/${c.contactId}`).pipe(
                  Effect.map((x) =>
                    x.body as { identities: Array<any> }
                  ),
                ),
            )
          ),
        )
        const identities = contacts.flatMap((c) =>
          c.identities
        ).map((i) => [i.externalId, i.verification, i.email])
        assert.sameDeepMembers(identities, [
          ["user:customer-7", "verified", "ann@example.com"],
          ["visitor:v_forged_000000000000", "unverified", null],
        ])

        // A phone, signed with the user id (and no e-mail): a verified phone on the identity.
        const phoneHash = createHmac("sha256", SECRET).update("customer-9::+4915123456789")
          .digest("hex")
        const withPhone = yield* open(
          ws(
            `visitor=v_phone_0000000000000&userId=customer-9&userHash=${phoneHash}&phone=%2B4915123456789`,
          ),
        )
        yield* eventually("welcome", () =>
          withPhone.frames.length >= 1)
        assert.isTrue(withPhone.frames[0].verified)
        // A phone added to a signature that does not cover it is not vouched for.
        const unsignedPhone = yield* open(
          ws(
            `visitor=v_phone_1111111111111&userId=customer-9&userHash=${
              createHmac("sha256", SECRET).update("customer-9").digest("hex")
            }&phone=%2B4915100000000`,
          ),
        )
        yield* eventually("welcome", () =>
          unsignedPhone.frames.length >= 1)
        assert.isFalse(unsignedPhone.frames[0].verified)
        withPhone.ws.send(JSON.stringify({ type: "message", clientId: "p1", text: "hi" }))
        yield* eventually("the phone on the identity", () =>
          api("GET", "/conversations?channel=widget").pipe(
            Effect.flatMap((r) =>
              Effect.forEach(
                (r.body as { conversations: Array<{ contactId: string }> }).conversations,
                (c) =>
                  api("GET", `/contacts/${c.contactId}`),
              )
            ),
            Effect.map((all) =>
              all.some((x) =>
                (x.body as { identities: Array<{ phone: string | null; verification: string }> })
                  .identities.some((i) =>
                    i.phone === "+4915123456789" && i.verification === "verified"
                  )
              )
            ),
          ))

        const elsewhere = yield* open(ws(`visitor=${visitor}`), "https://evil.example.net")
        assert.strictEqual(
          yield* Effect.promise(() =>
            elsewhere.closed
          ),
          1008,
        )

        const js = yield* Effect.promise(() =>
          fetch(`${server.url}/plugins/widget/widget.js`)
        )
        assert.strictEqual(js.status, 200)
        assert.match(js.headers.get("content-type") ?? "", /javascript/)
        assert.include(yield* Effect.promise(() => js.text()), "/plugins/widget/ws/")
      }),
    60_000,
  )
})
