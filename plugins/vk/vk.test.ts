/**
 * The VK plugin's pure part (plugins/vk/wire.mjs) on the payloads of
 * tests/fixtures/providers/vk/: events → inbound messages, random_id, keyboards, VK errors.
 */
import { readFileSync } from "node:fs"
import { assert, describe, it } from "vitest"
import {
  eventOf,
  failureOf,
  keyboardOf,
  pacer,
  randomIdOf,
  splitText,
  TEXT_LIMIT,
} from "./wire.mjs"

const fixture = (name: string) =>
  JSON.parse(
    readFileSync(
      new URL(`../../tests/fixtures/providers/vk/${name}.json`, import.meta.url),
      "utf8",
    ),
  )

describe("vk events", () => {
  it("message_new: sender, id, date, text", () => {
    const got = eventOf("main", fixture("message_new"))
    assert.deepStrictEqual(got.inbound, {
      account: "main",
      sender: { externalId: "2050001" },
      externalId: "1517",
      text: "Hello! Where is my order?",
      sentAt: 1732430000 * 1000,
    })
    assert.deepStrictEqual(got.files, [])
  })

  it("attachments: the largest photo, the document, the voice message; a sticker named; the reply threaded", () => {
    const got = eventOf("main", fixture("message_new_attachments"))
    assert.deepStrictEqual(got.files.map((f: { url: string }) => f.url), [
      "https://sun9-1.userapi.com/impg/w.jpg",
      "https://vk.com/doc2050001_671234567?hash=abc&dl=def&api=1",
      "https://psv4.userapi.com/c1234/u2050001/audiomsg/d1/a.ogg",
    ])
    assert.deepStrictEqual(got.files.map((f: { name: string }) => f.name), [
      "photo-1518-1.jpg",
      "invoice.pdf",
      "voice-1518-3.ogg",
    ])
    assert.strictEqual(got.inbound.text, "the parcel arrived broken\n[sticker 9015]")
    assert.deepStrictEqual(got.inbound.inReplyTo, ["1516"])
  })

  it("group chat messages and other communities' messages are not a channel's", () => {
    const chat = fixture("message_new")
    chat.object.message.peer_id = 2000000001
    assert.isString(eventOf("main", chat).skip)
    const community = fixture("message_new")
    community.object.message.from_id = -5
    assert.isString(eventOf("main", community).skip)
  })

  it("forwarded messages are quoted in the text", () => {
    const event = fixture("message_new")
    event.object.message.fwd_messages = [{ text: "line one\nline two", from_id: 7, date: 1 }]
    assert.strictEqual(
      eventOf("main", event).inbound.text,
      "Hello! Where is my order?\n> line one\n> line two",
    )
  })

  it("message_event: a press with its payload; deny, allow; our own replies skipped", () => {
    const press = eventOf("main", fixture("message_event"))
    assert.deepStrictEqual(press.press, {
      account: "main",
      sender: { externalId: "2050001" },
      externalId: "event:3a9f1c2b4d5e",
      payload: "track",
    })
    assert.strictEqual(press.eventId, "3a9f1c2b4d5e")
    assert.deepStrictEqual(eventOf("main", fixture("message_deny")), { deny: "2050001" })
    assert.deepStrictEqual(eventOf("main", fixture("message_allow")), { allow: "2050001" })
    assert.isString(eventOf("main", fixture("message_reply")).skip)
    assert.deepStrictEqual(eventOf("main", fixture("message_typing_state")), { typing: "2050001" })
    assert.isString(eventOf("main", { type: "wall_post_new", object: {} }).skip)
    // An object payload (a button made elsewhere) comes in as its JSON.
    const other = fixture("message_event")
    other.object.payload = { command: "start" }
    assert.strictEqual(eventOf("main", other).press.payload, '{"command":"start"}')
  })
})

describe("vk sending", () => {
  it("random_id: the same for the same message part, different across parts and messages", () => {
    assert.strictEqual(randomIdOf("01M8A", 0), randomIdOf("01M8A", 0))
    assert.notStrictEqual(randomIdOf("01M8A", 0), randomIdOf("01M8A", 1))
    assert.notStrictEqual(randomIdOf("01M8A", 0), randomIdOf("01M8B", 0))
    for (const id of ["a", "b", "01M8638FXR2BGG7HZKHAD5E9YY"]) {
      const r = randomIdOf(id, 3)
      assert.isTrue(Number.isInteger(r) && r > 0 && r <= 0x7fffffff)
    }
  })

  it("pacing: at most 20 calls in any second, in order", async () => {
    let clock = 0
    const slept: Array<number> = []
    const go = pacer(20, 1000, () => clock, (ms) => {
      slept.push(ms)
      clock += ms
      return Promise.resolve()
    })
    const at: Array<number> = []
    await Promise.all(Array.from({ length: 45 }, () => go().then(() => at.push(clock))))
    assert.deepStrictEqual([at.slice(0, 20).every((t) => t === 0), at[20], at[40]], [
      true,
      1000,
      2000,
    ])
    for (let i = 20; i < at.length; i++) assert.isAtLeast(at[i]! - at[i - 20]!, 1000)
    assert.deepStrictEqual(slept, [1000, 1000])
  })

  it("splits at 4,096 characters", () => {
    const parts = splitText("x".repeat(TEXT_LIMIT + 10))
    assert.deepStrictEqual(parts.map((p) => p.length), [TEXT_LIMIT, 10])
    assert.deepStrictEqual(splitText("short"), ["short"])
  })

  it("keyboards: callback and link buttons; too many refused", () => {
    assert.deepStrictEqual(
      keyboardOf([[{ text: "Yes", payload: "y" }, { text: "Site", url: "https://x.example/" }]]),
      {
        keyboard: {
          inline: true,
          buttons: [[
            { action: { type: "callback", label: "Yes", payload: '"y"' } },
            { action: { type: "open_link", link: "https://x.example/", label: "Site" } },
          ]],
        },
      },
    )
    const many = Array.from({ length: 11 }, (_, i) => [{ text: `b${i}`, payload: `${i}` }])
    assert.isString(keyboardOf(many).refused)
    assert.isString(keyboardOf([[{ text: "long", payload: "p".repeat(300) }]]).refused)
    assert.deepStrictEqual(keyboardOf(undefined), { keyboard: undefined })
  })

  it("errors: 1, 6, 9, 10 retryable; 901/902 unreachable; others permanent; network retryable", () => {
    for (const code of [1, 6, 9, 10]) {
      assert.isTrue(failureOf({ error_code: code, error_msg: "x" }).retryable, String(code))
    }
    assert.strictEqual(failureOf({ error_code: 6, error_msg: "x" }).retryAfterMs, 1000)
    for (const code of [901, 902]) {
      const f = failureOf({ error_code: code, error_msg: "Can't send" })
      assert.deepStrictEqual([f.retryable, f.unreachable], [false, true])
    }
    for (const code of [5, 7, 15, 100, 914]) {
      const f = failureOf({ error_code: code, error_msg: "no" })
      assert.deepStrictEqual([f.retryable, f.unreachable, f.code], [false, undefined, String(code)])
    }
    assert.deepStrictEqual(
      [failureOf(new Error("socket hang up")).retryable, failureOf(new Error("x")).code],
      [true, "network"],
    )
  })
})
