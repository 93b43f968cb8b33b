/**
 * The Telegram plugin's pure parts against real Bot API payloads (../shared/fixtures/providers/
 * telegram): updates to inbound messages and the files to fetch, text splitting at Telegram's
 * limit, and Bot API errors classified for the delivery policy.
 */
import * as NodeFs from "node:fs"
import * as NodePath from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { failureOf, splitText, TEXT_LIMIT } from "./send.mjs"
import { e164, toInbound } from "./updates.mjs"

const fixtures = NodePath.resolve(__dirname, "../../tests/fixtures/providers/telegram")
const fixture = (name: string) =>
  JSON.parse(NodeFs.readFileSync(NodePath.join(fixtures, `${name}.json`), "utf8"))

describe("telegram updates → inbound", () => {
  it("a text message", () => {
    assert.deepStrictEqual(toInbound("support", fixture("message")), {
      inbound: {
        account: "support",
        sender: { externalId: "12345678", name: "FirstName LastName" },
        externalId: "12345678:11223",
        text: "Hi, world!",
        sentAt: 1508709711000,
      },
      files: [],
    })
  })

  it("a photo: the largest size only, the caption as text", () => {
    const { inbound, files } = toInbound("support", fixture("message_with_photo"))
    assert.strictEqual(inbound.text, "description")
    assert.deepStrictEqual(files, [{
      fileId: "AgADAgADOagxG8vyeUvsltCem_XPv5A6Sw0ABNXULc5u7jny5VkRAAEC",
      name: "photo-22980.jpg",
      mimeType: "image/jpeg",
      size: 47844,
    }])
  })

  it("a document keeps its name and type; an edit is a message of its own", () => {
    const doc = toInbound("a", fixture("message_with_document"))
    assert.deepStrictEqual(
      doc.files.map((f: { name: string; mimeType: string }) => [f.name, f.mimeType]),
      [[
        "test.docx",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
      ]],
    )
    assert.strictEqual(doc.inbound.text, "doc description")
    const edit = toInbound("a", fixture("edited_message"))
    assert.strictEqual(edit.inbound.externalId, "12345678:12345:edit:1508825379")
    assert.strictEqual(edit.inbound.sentAt, 1508825379000)
    assert.strictEqual(edit.inbound.text, "hi there (edited)")
  })

  it("the user's own shared contact is a verified phone; someone else's is text only", () => {
    const base = fixture("message")
    const own = {
      ...base,
      message: {
        ...base.message,
        text: undefined,
        contact: { phone_number: "79161234567", first_name: "F", user_id: 12345678 },
      },
    }
    const mine = toInbound("a", own).inbound
    assert.deepStrictEqual(mine.sender, {
      externalId: "12345678",
      name: "FirstName LastName",
      phone: "+79161234567",
      verified: true,
    })
    const other = toInbound("a", {
      ...own,
      message: { ...own.message, contact: { ...own.message.contact, user_id: 1 } },
    })
    assert.isUndefined(other.inbound.sender.phone)
    assert.match(other.inbound.text, /^\[contact\] F \+?79161234567$/)
    assert.strictEqual(e164("+7 (916) 123-45-67"), "+79161234567")
    assert.isUndefined(e164("12"))
  })

  it("group chats, bots and non-message updates are skipped with a reason", () => {
    const base = fixture("message")
    assert.match(
      toInbound("a", { ...base, message: { ...base.message, chat: { id: -1, type: "group" } } })
        .skip,
      /group/,
    )
    assert.match(
      toInbound("a", { ...base, message: { ...base.message, from: { id: 9, is_bot: true } } }).skip,
      /bot/,
    )
    assert.match(toInbound("a", { update_id: 5, my_chat_member: {} }).skip, /my_chat_member/)
    // A game button (no data) is not a message.
    assert.match(
      toInbound("a", { update_id: 6, callback_query: { id: "q", from: { id: 9 } } }).skip,
      /no data/,
    )
  })
})

describe("telegram sending", () => {
  it("splits long text at paragraph, line or word boundaries, never over the limit", () => {
    const paragraph = "word ".repeat(300).trim() // 1,499 characters
    const text = Array.from({ length: 6 }, () => paragraph).join("\n\n")
    const parts = splitText(text)
    assert.isAbove(parts.length, 1)
    for (const p of parts) assert.isAtMost(p.length, TEXT_LIMIT)
    assert.strictEqual(parts.join(" ").replace(/\s+/g, " "), text.replace(/\s+/g, " "))
    assert.deepStrictEqual(splitText("short"), ["short"])
    const unbroken = "x".repeat(TEXT_LIMIT * 2 + 5)
    assert.deepStrictEqual(splitText(unbroken).map((p: string) => p.length), [
      TEXT_LIMIT,
      TEXT_LIMIT,
      5,
    ])
    const emoji = "😀".repeat(TEXT_LIMIT) // surrogate pairs: 2 code units each
    for (const p of splitText(emoji)) assert.notMatch(p, /^[\uDC00-\uDFFF]|[\uD800-\uDBFF]$/)
  })

  it("classifies Bot API errors: 429 waits retry_after, 403 blocked is final, 5xx and network retry", () => {
    assert.deepStrictEqual(
      failureOf({
        error_code: 429,
        description: "Too Many Requests: retry after 3",
        parameters: { retry_after: 3 },
      }),
      {
        ok: false,
        retryable: true,
        code: "429",
        reason: "Too Many Requests: retry after 3",
        retryAfterMs: 3000,
      },
    )
    assert.deepStrictEqual(
      failureOf({ error_code: 403, description: "Forbidden: bot was blocked by the user" }),
      {
        ok: false,
        retryable: false,
        code: "blocked",
        reason: "Forbidden: bot was blocked by the user",
        unreachable: true,
      },
    )
    assert.isFalse(
      failureOf({ error_code: 400, description: "Bad Request: chat not found" }).retryable,
    )
    assert.isTrue(failureOf({ error_code: 502, description: "Bad Gateway" }).retryable)
    assert.strictEqual(failureOf(new Error("socket hang up")).code, "network")
  })
})
