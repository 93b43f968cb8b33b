/**
 * The WhatsApp plugin's pure parts against Meta's webhook payloads (tests/fixtures/providers/
 * whatsapp): signatures, messages of every kind to inbound messages and media to fetch,
 * statuses to delivery states, text splitting, buttons within WhatsApp's limits, the 24-hour
 * window, and Graph API errors classified for the delivery policy.
 */
import { createHmac } from "node:crypto"
import * as NodeFs from "node:fs"
import * as NodePath from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { Schema } from "effect"
import { DeliverySettings } from "../../core/delivery/Policy.ts"
import {
  DELIVERY,
  failureOf,
  interactiveOf,
  mediaKindOf,
  multipartBody,
  splitText,
  TEXT_LIMIT,
  WINDOW_MS,
  windowClosed,
} from "./send.mjs"
import { e164, parseWebhook, signatureValid } from "./webhook.mjs"

const fixtures = NodePath.resolve(__dirname, "../../tests/fixtures/providers/whatsapp")
const raw = (name: string) => NodeFs.readFileSync(NodePath.join(fixtures, `${name}.json`))
const fixture = (name: string) => JSON.parse(raw(name).toString("utf8"))
const only = (name: string) => {
  const parsed = parseWebhook(fixture(name))
  assert.lengthOf(parsed.messages, 1)
  return parsed.messages[0]!
}
const SENDER = {
  externalId: "16505551234",
  name: "Sheena Nelson",
  phone: "+16505551234",
  verified: true,
}

describe("webhook signature", () => {
  const body = raw("text_message")
  const good = `sha256=${createHmac("sha256", "app-secret").update(body).digest("hex")}`

  it("accepts Meta's HMAC-SHA256 of the raw body", async () => {
    assert.isTrue(await signatureValid("app-secret", body, good))
  })

  it("refuses another secret, a changed body, a missing or malformed header", async () => {
    assert.isFalse(await signatureValid("other-secret", body, good))
    const changed = Buffer.from(body.toString("utf8").replace("color", "colour"))
    assert.isFalse(await signatureValid("app-secret", changed, good))
    assert.isFalse(await signatureValid("app-secret", body, undefined))
    assert.isFalse(await signatureValid("app-secret", body, good.slice("sha256=".length)))
    assert.isFalse(await signatureValid("app-secret", body, "sha256=00"))
  })
})

describe("whatsapp messages → inbound", () => {
  it("a text: wa_id as a verified E.164 phone, the profile name, the wamid", () => {
    const item = only("text_message")
    assert.strictEqual(item.phoneNumberId, "106540352242922")
    assert.deepStrictEqual(item.inbound, {
      sender: SENDER,
      externalId: "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=",
      text: "Does it come in another color?",
      sentAt: 1749416383000,
    })
    assert.deepStrictEqual(item.files, [])
  })

  it("a quoted message: context.id is inReplyTo", () => {
    const item = only("text_reply_with_context")
    assert.strictEqual(item.inbound.text, "Yes, that one")
    assert.deepStrictEqual(item.inbound.inReplyTo, [
      "wamid.HBgLMTY1MDUwNzY1MjAVAgARGBI2QjAzRjRDQjEwMDY2QTVFNjMA",
    ])
  })

  it("an image: the caption as text, the media id to fetch", () => {
    const item = only("image_message")
    assert.strictEqual(item.inbound.text, "Here is the broken part")
    assert.deepStrictEqual(item.files, [{
      mediaId: "1003383421387256",
      name: "image-1003383421387256.jpg",
      mimeType: "image/jpeg",
      sha256: "MEDIA_SHA256",
    }])
  })

  it("a document keeps its file name; a voice note its bare type", () => {
    const doc = only("document_message")
    assert.strictEqual(doc.inbound.text, "My invoice")
    assert.strictEqual(doc.files[0]!.name, "invoice-4471.pdf")
    assert.strictEqual(doc.files[0]!.mimeType, "application/pdf")
    const voice = only("audio_voice_message")
    assert.strictEqual(voice.inbound.text, "")
    assert.deepStrictEqual(
      [voice.files[0]!.name, voice.files[0]!.mimeType],
      ["voice-1003383421387258.ogg", "audio/ogg"],
    )
    const sticker = only("sticker_message")
    assert.strictEqual(sticker.files[0]!.mimeType, "image/webp")
  })

  it("a location: words and a geo: URI payload", () => {
    const item = only("location_message")
    assert.strictEqual(
      item.inbound.text,
      "[location] Meta Headquarters, 1 Hacker Way, Menlo Park, CA 94025 (37.483307, -122.148981)",
    )
    assert.strictEqual(item.inbound.payload, "geo:37.483307,-122.148981")
  })

  it("a shared contact card: name, company, phone, e-mail", () => {
    assert.strictEqual(
      only("contacts_message").inbound.text,
      "[contact] Barbara J. Johnson, Social Tsunami, +1 (940) 555-1234, bjohnson@example.com",
    )
  })

  it("reply buttons, list rows and template quick replies: the title and the payload", () => {
    const button = only("interactive_button_reply").inbound
    assert.deepStrictEqual([button.text, button.payload], ["Track my parcel", "track"])
    assert.deepStrictEqual(button.inReplyTo, [
      "wamid.HBgLMTY1MDUwNzY1MjAVAgARGBI3NzRGQzNFN0QxNjgyMzgxOTUA",
    ])
    const list = only("interactive_list_reply").inbound
    assert.deepStrictEqual([list.text, list.payload], ["Express shipping", "priority_express"])
    const quick = only("button_message").inbound
    assert.deepStrictEqual([quick.text, quick.payload], ["Stop promotions", "STOP_PROMOTIONS"])
  })

  it("an unsupported message is kept with Meta's words, never dropped", () => {
    const body = fixture("text_message")
    body.entry[0]!.changes[0]!.value.messages[0] = {
      from: "16505551234",
      id: "wamid.unsupported",
      timestamp: "1749416383",
      type: "unsupported",
      errors: [{
        code: 131051,
        title: "Message type unknown",
        error_data: { details: "Message type is currently not supported." },
      }],
    }
    assert.strictEqual(
      parseWebhook(body).messages[0]!.inbound.text,
      "[unsupported message: Message type is currently not supported.]",
    )
  })

  it("a customer behind a username: the business-scoped user id, no phone", () => {
    // Meta's business-scoped user IDs page: contacts[].user_id, profile.username, no wa_id/from.
    const body = fixture("text_message")
    const value = body.entry[0].changes[0].value
    value.contacts = [{
      profile: { name: "Sheena", username: "sheena.n" },
      user_id: "US.13491208655302741918",
    }]
    delete value.messages[0].from
    value.messages[0].from_user_id = "US.13491208655302741918"
    assert.deepStrictEqual(parseWebhook(body).messages[0]!.inbound.sender, {
      externalId: "US.13491208655302741918",
      name: "Sheena",
    })
    delete value.messages[0].from_user_id
    value.contacts = []
    const parsed = parseWebhook(body)
    assert.lengthOf(parsed.messages, 0)
    assert.match(parsed.skipped[0]!, /names no sender/)
  })

  it("refuses a body that is not a WhatsApp Business webhook", () => {
    assert.throws(() => parseWebhook({ object: "page", entry: [] }), /not a WhatsApp/)
  })

  it("e164 takes digits only, of a plausible length", () => {
    assert.strictEqual(e164("16505551234"), "+16505551234")
    assert.strictEqual(e164("123"), undefined)
    assert.strictEqual(e164(undefined), undefined)
  })
})

describe("whatsapp statuses → delivery states", () => {
  it("delivered and read, at Meta's time; sent is skipped", () => {
    const delivered = parseWebhook(fixture("status_delivered"))
    assert.deepStrictEqual(delivered.statuses, [{
      phoneNumberId: "106540352242922",
      recipient: "16505551234",
      status: {
        externalId: "wamid.HBgLMTY1MDUwNzY1MjAVAgARGBI3NzRGQzNFN0QxNjgyMzgxOTUA",
        state: "delivered",
        at: 1750263773000,
      },
    }])
    assert.strictEqual(parseWebhook(fixture("status_read")).statuses[0]!.status.state, "read")
    const sent = fixture("status_read")
    sent.entry[0]!.changes[0]!.value.statuses[0]!.status = "sent"
    const parsed = parseWebhook(sent)
    assert.lengthOf(parsed.statuses, 0)
    assert.lengthOf(parsed.skipped, 1)
  })

  it("failed carries the code and words; 131026 marks the number unreachable", () => {
    assert.deepStrictEqual(parseWebhook(fixture("status_failed")).statuses[0]!.status, {
      externalId: "wamid.HBgLMTY1MDUwNzY1MjAVAgARGBI3NzRGQzNFN0QxNjgyMzgxOTUA",
      state: "failed",
      at: 1750263800000,
      error: { code: "131026", reason: "Message undeliverable: Message Undeliverable." },
      unreachable: true,
    })
    const windowed = fixture("status_failed")
    windowed.entry[0]!.changes[0]!.value.statuses[0]!.errors[0]!.code = 131047
    const status = parseWebhook(windowed).statuses[0]!.status
    assert.strictEqual(status.error?.code, "131047")
    assert.isUndefined(status.unreachable)
  })
})

describe("replies → WhatsApp", () => {
  it("splits text at 4,096 characters at a line or word", () => {
    const parts = splitText("a".repeat(3000) + "\n" + "b".repeat(3000))
    assert.deepStrictEqual(parts.map((p) => p.length), [3000, 3000])
    assert.isTrue(splitText("x".repeat(10_000)).every((p) => p.length <= TEXT_LIMIT))
  })

  it("media kinds by type and WhatsApp's size limits", () => {
    assert.strictEqual(mediaKindOf("image/jpeg", 1000), "image")
    assert.strictEqual(mediaKindOf("image/jpeg", 6 * 1024 * 1024), "document")
    assert.strictEqual(mediaKindOf("image/gif", 1000), "document")
    assert.strictEqual(mediaKindOf("audio/ogg", 1000), "audio")
    assert.strictEqual(mediaKindOf("image/webp", 1000), "sticker")
    assert.strictEqual(mediaKindOf("application/zip", 101 * 1024 * 1024), undefined)
  })

  it("up to 3 short buttons are reply buttons", () => {
    const built = interactiveOf("Pick one", [[{ text: "Yes", payload: "y" }], [{
      text: "No",
      payload: "n",
    }]])
    assert.deepStrictEqual(built.interactive, {
      type: "button",
      body: { text: "Pick one" },
      action: {
        buttons: [
          { type: "reply", reply: { id: "y", title: "Yes" } },
          { type: "reply", reply: { id: "n", title: "No" } },
        ],
      },
    })
  })

  it("4 to 10 buttons, or titles of 21 to 24 characters, become a list", () => {
    const five = [[1, 2, 3, 4, 5].map((n) => ({ text: `Option ${n}`, payload: `o${n}` }))]
    const list = interactiveOf("Pick one", five, "Options")
    assert.strictEqual(list.interactive?.type, "list")
    assert.strictEqual(list.interactive?.action.button, "Options")
    assert.lengthOf(list.interactive?.action.sections[0].rows, 5)
    const long = interactiveOf("Pick", [[{ text: "A title of 22 letters!", payload: "a" }]])
    assert.strictEqual(long.interactive?.type, "list")
  })

  it("refuses what WhatsApp cannot show, saying why", () => {
    const eleven = [Array.from({ length: 11 }, (_, n) => ({ text: `O${n}`, payload: `${n}` }))]
    const refused = interactiveOf("Pick", eleven).refusal
    assert.strictEqual(refused?.code, "buttons_unsupported")
    assert.isFalse(refused?.retryable)
    assert.match(refused!.reason, /at most 3 reply buttons .* this reply has 11/)
    assert.match(
      interactiveOf("Go", [[{ text: "Site", url: "https://x.example" }, {
        text: "A",
        payload: "a",
      }]])
        .refusal!.reason,
      /one link button/,
    )
    assert.match(interactiveOf("", [[{ text: "A", payload: "a" }]]).refusal!.reason, /text/)
  })

  it("a single link button is a call-to-action URL", () => {
    assert.deepStrictEqual(
      interactiveOf("Our shop", [[{ text: "Open", url: "https://shop.example/" }]]).interactive,
      {
        type: "cta_url",
        body: { text: "Our shop" },
        action: {
          name: "cta_url",
          parameters: { display_text: "Open", url: "https://shop.example/" },
        },
      },
    )
  })

  it("the 24-hour window: open within, closed after or when the customer never wrote", () => {
    const now = Date.UTC(2026, 10, 24, 12)
    assert.isUndefined(windowClosed(now - WINDOW_MS + 60_000, now))
    const closed = windowClosed(now - WINDOW_MS - 1, now)
    assert.strictEqual(closed?.code, "reply_window_closed")
    assert.isFalse(closed?.retryable)
    assert.match(closed!.reason, /template/)
    assert.match(windowClosed(undefined, now)!.reason, /has not written/)
  })

  it("the media upload is a multipart form with the file last", () => {
    const { contentType, body } = multipartBody(
      { messaging_product: "whatsapp", type: "image/png" },
      { name: "a.png", mimeType: "image/png", bytes: new Uint8Array([1, 2, 3]) },
    )
    const text = Buffer.from(body).toString("latin1")
    const boundary = /boundary=(.+)$/.exec(contentType)![1]
    assert.include(
      text,
      `--${boundary}\r\nContent-Disposition: form-data; name="messaging_product"`,
    )
    assert.include(
      text,
      'name="file"; filename="a.png"\r\nContent-Type: image/png\r\n\r\n\x01\x02\x03',
    )
    assert.isTrue(text.endsWith(`--${boundary}--\r\n`))
  })
})

describe("delivery defaults", () => {
  it("Meta's limits are a valid delivery policy: 80/s per number, 10/min per customer", () => {
    const settings = Schema.decodeUnknownSync(DeliverySettings)(DELIVERY)
    assert.deepStrictEqual(settings.pacing?.account, { limit: 80, interval: "1 second" })
    assert.deepStrictEqual(settings.pacing?.recipient, { limit: 10, interval: "1 minute" })
    // …and what the manifest declares to the core.
    const manifest = JSON.parse(
      NodeFs.readFileSync(NodePath.join(__dirname, "chorus.plugin.json"), "utf8"),
    )
    assert.deepStrictEqual(manifest.contributes.channels[0].delivery, DELIVERY)
  })
})

describe("Graph API errors → delivery results", () => {
  const graphError = (code: number, message = "x") => ({
    error: { message, type: "OAuthException", code, error_data: { details: "d" } },
  })

  it("throughput and pair rate limits are retryable after a pause", () => {
    assert.deepInclude(failureOf(400, graphError(130429)), {
      retryable: true,
      code: "130429",
      retryAfterMs: 1000,
    })
    assert.deepInclude(failureOf(400, graphError(131056)), {
      retryable: true,
      code: "131056",
      retryAfterMs: 6000,
    })
  })

  it("131047 is the closed reply window, not retryable", () => {
    const result = failureOf(400, graphError(131047, "(#131047) Re-engagement message"))
    assert.deepInclude(result, { retryable: false, code: "reply_window_closed" })
    assert.match(result.reason, /template/)
  })

  it("5xx and network failures are retryable; other 4xx permanent", () => {
    assert.deepInclude(failureOf(500, graphError(131000)), { retryable: true })
    assert.deepInclude(failureOf(502, undefined), { retryable: true, code: "502" })
    assert.deepInclude(failureOf(undefined, undefined, new Error("ECONNRESET")), {
      retryable: true,
      code: "network",
      reason: "ECONNRESET",
    })
    assert.deepInclude(failureOf(400, graphError(100, "(#100) Invalid parameter")), {
      retryable: false,
      code: "100",
      reason: "(#100) Invalid parameter: d",
    })
    assert.deepInclude(failureOf(400, graphError(131026)), { retryable: false, unreachable: true })
  })
})
