/**
 * The WhatsApp fake spoken to over plain HTTP as the plugin does, so what passes here is what the
 * WhatsApp channel sees: tokens per number, the messages endpoint's answers and limits, media
 * uploaded then fetched back by id with its hash, Graph error objects for armed failures, and
 * webhooks signed as Meta signs them (checked with the plugin's own verifier).
 */
import { createHash } from "node:crypto"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { signatureValid } from "../../../plugins/whatsapp/webhook.mjs"
import { hubSignature, whatsAppFake } from "./WhatsAppFake.ts"

const PHONE = "106540352242922"
const TOKEN = "token-one"

const graph = (
  root: string,
  path: string,
  init: { method?: string; token?: string; json?: unknown; body?: BodyInit; type?: string } = {},
) =>
  Effect.promise(async () => {
    const headers: Record<string, string> = {}
    if (init.token !== undefined) headers["authorization"] = `Bearer ${init.token}`
    if (init.json !== undefined) headers["content-type"] = "application/json"
    if (init.type !== undefined) headers["content-type"] = init.type
    const response = await fetch(`${root}${path}`, {
      method: init.method ?? (init.json !== undefined || init.body ? "POST" : "GET"),
      headers,
      ...(init.json !== undefined ? { body: JSON.stringify(init.json) } : {}),
      ...(init.body !== undefined ? { body: init.body } : {}),
    })
    const bytes = new Uint8Array(await response.arrayBuffer())
    let json: any
    try {
      json = JSON.parse(new TextDecoder().decode(bytes))
    } catch {
      json = undefined
    }
    return { status: response.status, json, bytes }
  })

const text = (to: string, body: string) => ({
  messaging_product: "whatsapp",
  to,
  type: "text",
  text: { body },
})

describe("WhatsApp fake", () => {
  it.scoped("answers a text with a wamid; refuses other tokens with 190", () =>
    Effect.gen(function* () {
      const fake = yield* whatsAppFake({ numbers: [{ phoneNumberId: PHONE, token: TOKEN }] })
      const ok = yield* graph(fake.apiRoot, `/v21.0/${PHONE}/messages`, {
        token: TOKEN,
        json: text("16505551234", "hi"),
      })
      assert.strictEqual(ok.status, 200)
      assert.match(ok.json.messages[0].id, /^wamid\./)
      assert.deepStrictEqual(ok.json.contacts, [{ input: "16505551234", wa_id: "16505551234" }])
      assert.strictEqual(fake.sent(PHONE)[0]!.wamid, ok.json.messages[0].id)

      const wrong = yield* graph(fake.apiRoot, `/v21.0/${PHONE}/messages`, {
        token: "nope",
        json: text("16505551234", "hi"),
      })
      assert.strictEqual(wrong.status, 401)
      assert.strictEqual(wrong.json.error.code, 190)
      assert.lengthOf(fake.sent(PHONE), 1)
    }))

  it.scoped("enforces WhatsApp's limits: 4,096 characters, 3 buttons of 20, JSON bodies", () =>
    Effect.gen(function* () {
      const fake = yield* whatsAppFake({ numbers: [{ phoneNumberId: PHONE, token: TOKEN }] })
      const send = (json: unknown) =>
        graph(fake.apiRoot, `/v21.0/${PHONE}/messages`, { token: TOKEN, json })
      assert.strictEqual((yield* send(text("16505551234", "x".repeat(4097)))).json.error.code, 100)
      const buttons = (n: number, title = "ok") => ({
        messaging_product: "whatsapp",
        to: "16505551234",
        type: "interactive",
        interactive: {
          type: "button",
          body: { text: "Pick" },
          action: {
            buttons: Array.from({ length: n }, (_, i) => ({
              type: "reply",
              reply: { id: `b${i}`, title },
            })),
          },
        },
      })
      assert.strictEqual((yield* send(buttons(3))).status, 200)
      assert.strictEqual((yield* send(buttons(4))).status, 400)
      assert.strictEqual((yield* send(buttons(1, "x".repeat(21)))).status, 400)
      const octets = yield* graph(fake.apiRoot, `/v21.0/${PHONE}/messages`, {
        token: TOKEN,
        body: JSON.stringify(text("16505551234", "hi")),
        type: "application/octet-stream",
      })
      assert.strictEqual(octets.status, 400)
    }))

  it.scoped("armed failures answer Graph error objects; a closed window refuses all but templates", () =>
    Effect.gen(function* () {
      const fake = yield* whatsAppFake({ numbers: [{ phoneNumberId: PHONE, token: TOKEN }] })
      const send = (json: unknown) =>
        graph(fake.apiRoot, `/v21.0/${PHONE}/messages`, { token: TOKEN, json })
      fake.failNext(PHONE, { code: 130429 })
      fake.failNext(PHONE, { code: 500 })
      const limited = yield* send(text("16505551234", "a"))
      assert.strictEqual(limited.json.error.code, 130429)
      assert.strictEqual(limited.json.error.error_data.messaging_product, "whatsapp")
      const down = yield* send(text("16505551234", "a"))
      assert.deepStrictEqual([down.status, down.json.error.code], [500, 131000])
      assert.strictEqual((yield* send(text("16505551234", "a"))).status, 200)

      fake.closeWindow("16505551234")
      assert.strictEqual((yield* send(text("16505551234", "late"))).json.error.code, 131047)
      const template = yield* send({
        messaging_product: "whatsapp",
        to: "16505551234",
        type: "template",
        template: { name: "hello_world", language: { code: "en_US" } },
      })
      assert.strictEqual(template.json.messages[0].message_status, "accepted")
      assert.deepStrictEqual(
        fake.calls().map((c) => c.status),
        [400, 500, 200, 400, 200],
      )
    }))

  it.scoped("media: an upload is sent by id and fetched back with its SHA-256", () =>
    Effect.gen(function* () {
      const fake = yield* whatsAppFake({ numbers: [{ phoneNumberId: PHONE, token: TOKEN }] })
      const form = new FormData()
      form.set("messaging_product", "whatsapp")
      form.set("type", "application/pdf")
      const pdf = new TextEncoder().encode("%PDF-1.4\n%%EOF\n")
      form.set("file", new Blob([pdf], { type: "application/pdf" }), "a.pdf")
      const uploaded = yield* graph(fake.apiRoot, `/v21.0/${PHONE}/media`, {
        token: TOKEN,
        body: form,
      })
      assert.strictEqual(uploaded.status, 200)
      const id = uploaded.json.id as string
      assert.strictEqual(fake.uploads(PHONE)[0]!.filename, "a.pdf")
      const info = yield* graph(fake.apiRoot, `/v21.0/${id}`, { token: TOKEN })
      assert.strictEqual(info.json.sha256, createHash("sha256").update(pdf).digest("hex"))
      assert.strictEqual(info.json.file_size, pdf.length)
      const download = yield* Effect.promise(() =>
        fetch(info.json.url, { headers: { authorization: `Bearer ${TOKEN}` } }).then(async (r) => ({
          status: r.status,
          bytes: new Uint8Array(await r.arrayBuffer()),
        }))
      )
      assert.deepStrictEqual([...download.bytes], [...pdf])
      const anonymous = yield* Effect.promise(() => fetch(info.json.url).then((r) => r.status))
      assert.strictEqual(anonymous, 401)
      const sent = yield* graph(fake.apiRoot, `/v21.0/${PHONE}/messages`, {
        token: TOKEN,
        json: {
          messaging_product: "whatsapp",
          to: "16505551234",
          type: "document",
          document: { id, filename: "a.pdf" },
        },
      })
      assert.strictEqual(sent.status, 200)
      const unknown = yield* graph(fake.apiRoot, `/v21.0/${PHONE}/messages`, {
        token: TOKEN,
        json: {
          messaging_product: "whatsapp",
          to: "16505551234",
          type: "image",
          image: { id: "404" },
        },
      })
      assert.strictEqual(unknown.status, 400)
    }))

  it.scoped("fixtures get fresh wamids and the media's hash; signatures are Meta's", () =>
    Effect.gen(function* () {
      const fake = yield* whatsAppFake()
      const media = fake.addMedia(new Uint8Array([1, 2, 3]), "image/jpeg", "1003383421387256")
      const a = fake.fixture("image_message")
      const b = fake.fixture("image_message")
      const message = a.entry[0].changes[0].value.messages[0]
      assert.notStrictEqual(message.id, b.entry[0].changes[0].value.messages[0].id)
      assert.strictEqual(message.image.sha256, media.sha256)
      const body = new TextEncoder().encode(JSON.stringify(a))
      assert.isTrue(yield* Effect.promise(() => signatureValid("s", body, hubSignature("s", body))))
    }))
})
