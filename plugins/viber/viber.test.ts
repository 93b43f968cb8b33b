/**
 * The Viber plugin's pure part (plugins/viber/wire.mjs) on the payloads of
 * tests/fixtures/providers/viber/: signatures, 64-bit tokens, callbacks → inbound messages and
 * receipts, keyboards and presses, status codes, the unanswered-messages limit.
 */
import { createHmac } from "node:crypto"
import { readFileSync } from "node:fs"
import { assert, describe, it } from "vitest"
import {
  eventOf,
  failureOf,
  keyboardOf,
  parseViber,
  pressOf,
  signatureValid,
  splitText,
  unansweredNext,
} from "./wire.mjs"

const raw = (name: string) =>
  readFileSync(
    new URL(`../../tests/fixtures/providers/viber/${name}.json`, import.meta.url),
    "utf8",
  )
const TOKEN = "445da6az1s345z78-dazcczb2542zv51a-e0vc5fva17480im9"

describe("viber callbacks", () => {
  it("signature: HMAC-SHA256 hex of the raw body with the token; anything else refused", async () => {
    const body = raw("message_text")
    const good = createHmac("sha256", TOKEN).update(body).digest("hex")
    assert.isTrue(await signatureValid(new TextEncoder().encode(body), good, TOKEN))
    assert.isTrue(await signatureValid(body, good.toUpperCase(), TOKEN))
    assert.isFalse(await signatureValid(body + " ", good, TOKEN))
    assert.isFalse(await signatureValid(body, good, "other-token"))
    assert.isFalse(await signatureValid(body, undefined, TOKEN))
    assert.isFalse(await signatureValid(body, good.slice(2), TOKEN))
  })

  it("message_token: 64 bits kept exactly (JSON.parse would round it)", () => {
    assert.strictEqual(parseViber(raw("message_text")).message_token, "5741311803571721087")
    assert.notStrictEqual(
      String(JSON.parse(raw("message_text")).message_token),
      "5741311803571721087",
    )
    // A text that merely mentions the field is left alone.
    const tricky = parseViber('{"message_token":1,"message":{"text":"\\"message_token\\":2"}}')
    assert.strictEqual(tricky.message.text, '"message_token":2')
  })

  it("a text message: sender, name, token, time", () => {
    assert.deepStrictEqual(eventOf("main", parseViber(raw("message_text"))), {
      inbound: {
        account: "main",
        sender: { externalId: "01234567890A=", name: "John McClane" },
        externalId: "5741311803571721087",
        text: "Hello! Where is my order?",
        sentAt: 1732430000123,
      },
      files: [],
    })
  })

  it("media to download; contact, location, sticker as words (the contact's phone is not the sender's)", () => {
    const picture = eventOf("main", parseViber(raw("message_picture")))
    assert.strictEqual(picture.inbound.text, "the parcel arrived broken")
    assert.deepStrictEqual(picture.files.map((f: { name: string }) => f.name), ["IMG_0042.jpg"])
    const file = eventOf("main", parseViber(raw("message_file")))
    assert.deepStrictEqual(file.files.map((f: { name: string }) => f.name), ["invoice.pdf"])
    const contact = eventOf("main", parseViber(raw("message_contact")))
    assert.strictEqual(contact.inbound.text, "[contact: Holly Gennero +15551234567]")
    assert.isUndefined(contact.inbound.sender.phone)
    assert.strictEqual(
      eventOf("main", parseViber(raw("message_location"))).inbound.text,
      "[location: 50.76891, 6.11499]",
    )
    assert.strictEqual(
      eventOf("main", parseViber(raw("message_sticker"))).inbound.text,
      "[sticker 46105]",
    )
  })

  it("receipts, subscriptions, conversation_started, webhook", () => {
    assert.deepStrictEqual(eventOf("main", parseViber(raw("delivered"))).status, {
      account: "main",
      externalId: "4912661846655238145",
      state: "delivered",
      at: 1732430100000,
    })
    assert.strictEqual(eventOf("main", parseViber(raw("seen"))).status.state, "read")
    assert.deepStrictEqual(eventOf("main", parseViber(raw("failed"))).status.error, {
      code: "failed",
      reason: "failure description",
    })
    assert.deepStrictEqual(eventOf("main", parseViber(raw("unsubscribed"))), {
      unsubscribed: "01234567890A=",
    })
    assert.deepStrictEqual(eventOf("main", parseViber(raw("subscribed"))), {
      subscribed: "01234567890A=",
    })
    assert.isFalse(eventOf("main", parseViber(raw("conversation_started"))).started.subscribed)
    assert.isString(eventOf("main", parseViber(raw("webhook"))).skip)
  })
})

describe("viber sending", () => {
  it("keyboards: reply and open-url buttons on a 6-column grid; a press is told from typed text", () => {
    const { keyboard, tracking } = keyboardOf([
      [{ text: "Yes", payload: "y" }, { text: "No", payload: "n" }, {
        text: "Site",
        url: "https://x.example/",
      }],
      [{ text: "Call me", payload: "call" }],
    ])
    assert.deepStrictEqual(
      keyboard.Buttons.map((b: any) => [b.Columns, b.ActionType, b.ActionBody]),
      [
        [2, "reply", "y"],
        [2, "reply", "n"],
        [2, "open-url", "https://x.example/"],
        [6, "reply", "call"],
      ],
    )
    assert.deepStrictEqual(pressOf("y", tracking), { payload: "y", label: "Yes" })
    assert.isUndefined(pressOf("yes please", tracking))
    assert.isUndefined(pressOf("y", "someone else's tracking"))
    const withPress = parseViber(raw("message_text"))
    withPress.message.text = "call"
    withPress.message.tracking_data = tracking
    const got = eventOf("main", withPress).inbound
    assert.deepStrictEqual([got.text, got.payload], ["Call me", "call"])
    assert.isString(
      keyboardOf([Array.from({ length: 7 }, (_, i) => ({ text: `${i}`, payload: `${i}` }))])
        .refused,
    )
  })

  it("splits at 7,000 characters", () => {
    assert.deepStrictEqual(splitText("x".repeat(7010)).map((p) => p.length), [7000, 10])
  })

  it("statuses: 5 and 6 unreachable; 12 retried later; other known codes permanent; unknown and network retried", () => {
    for (const status of [5, 6]) {
      const f = failureOf({ status, status_message: "receiverNotSubscribed" })
      assert.deepStrictEqual([f.retryable, f.unreachable], [false, true])
    }
    const rate = failureOf({ status: 12, status_message: "tooManyRequests" })
    assert.deepStrictEqual([rate.retryable, rate.retryAfterMs], [true, 60_000])
    for (const status of [1, 2, 3, 4, 7, 10, 11, 13, 23, 24]) {
      const f = failureOf({ status, status_message: "x" })
      assert.deepStrictEqual([f.retryable, f.unreachable, f.code], [
        false,
        undefined,
        String(status),
      ])
    }
    assert.isTrue(failureOf({ status: 99, status_message: "generalError" }).retryable)
    assert.deepStrictEqual(
      [failureOf(new Error("ECONNRESET")).retryable, failureOf(new Error("x")).code],
      [true, "network"],
    )
  })

  it("100 messages an hour to a person who has not replied; the hour starts again", () => {
    let counter: { since: number; count: number } | undefined
    const t0 = 1_000_000
    for (let i = 0; i < 100; i++) {
      const next = unansweredNext(counter, t0 + i)
      assert.isTrue(next.allowed)
      counter = next.counter
    }
    assert.isFalse(unansweredNext(counter, t0 + 1000).allowed)
    assert.isTrue(unansweredNext(counter, t0 + 3600_001).allowed)
    // Their reply deletes the counter: allowed again.
    assert.isTrue(unansweredNext(undefined, t0 + 2000).allowed)
  })
})
