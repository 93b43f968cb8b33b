/**
 * The Telegram fake driven by the real grammY client (`client: { apiRoot }`), so what passes here
 * is what the Telegram channel will see: the Bot API wire format, its errors, long polling and
 * webhook delivery.
 */
import * as NodeHttp from "node:http"
import type { AddressInfo } from "node:net"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, Option } from "effect"
import { Bot, GrammyError, InputFile, webhookCallback } from "grammy"
import type { Update } from "grammy/types"
import { webhookReceiver } from "../WebhookReceiver.ts"
import { startTelegramFake, type TelegramFake, telegramFake } from "./TelegramFake.ts"

const TOKEN = "111111:AAFakeTokenForTheChorusTests_one"
const OTHER = "222222:AAFakeTokenForTheChorusTests_two"
/** The customer in the fixtures message.json (chat and user 12345678). */
const CUSTOMER = 12345678

/** A 1×1 PNG: a real image, so sendPhoto's image check passes. */
const PNG = Buffer.from(
  "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==",
  "base64",
)

const botFor = (fake: TelegramFake, token = TOKEN) =>
  new Bot(token, { client: { apiRoot: fake.apiRoot } })

const call = <A>(f: () => Promise<A>) => Effect.tryPromise({ try: f, catch: (e) => e })

/**
 * The GrammyError a call fails with; the test fails if it succeeds. The message stays short: a
 * whole `Message` in an assertion (a 4,097-character text) makes vitest's diff crawl.
 */
const grammyError = <A>(f: () => Promise<A>) =>
  call(f).pipe(
    Effect.either,
    Effect.flatMap((outcome) => {
      if (outcome._tag === "Right") {
        return Effect.die(new Error("expected the call to fail with a GrammyError; it succeeded"))
      }
      const e = outcome.left
      return e instanceof GrammyError
        ? Effect.succeed(e)
        : Effect.die(new Error(`expected a GrammyError, got ${String(e)}`))
    }),
  )

const eventually = (check: () => boolean, timeoutMs = 5_000) =>
  Effect.gen(function* () {
    const end = Date.now() + timeoutMs
    while (!check()) {
      if (Date.now() > end) return yield* Effect.die(new Error("condition not met in time"))
      yield* Effect.sleep("20 millis")
    }
  })

const text = (n: number, chatId = CUSTOMER) => ({
  message: {
    message_id: n,
    date: Math.floor(Date.now() / 1000),
    chat: { id: chatId, type: "private" as const, first_name: "Ada" },
    from: { id: chatId, is_bot: false, first_name: "Ada" },
    text: `message ${n}`,
  },
})

/** Bytes compared without a diff of thousands of numbers when they differ. */
const assertSameBytes = (actual: Uint8Array, expected: Uint8Array, what: string) =>
  assert.isTrue(
    Buffer.from(actual).equals(Buffer.from(expected)),
    `${what}: ${actual.byteLength} bytes, expected the ${expected.byteLength} given`,
  )

const ids = (updates: ReadonlyArray<Update>) => updates.map((u) => u.update_id)

describe("TelegramFake", () => {
  it.scopedLive("answers getMe per token, 401 for an unknown token, 404 for an unknown method", () =>
    Effect.gen(function* () {
      const fake = yield* telegramFake({
        bots: [{ token: TOKEN, username: "chorus_test_bot" }, OTHER],
      })
      const me = yield* call(() => botFor(fake).api.getMe())
      assert.strictEqual(me.id, 111111)
      assert.strictEqual(me.is_bot, true)
      assert.strictEqual(me.username, "chorus_test_bot")
      assert.strictEqual((yield* call(() => botFor(fake, OTHER).api.getMe())).id, 222222)

      const unauthorized = yield* grammyError(() => botFor(fake, "333:nope").api.getMe())
      assert.strictEqual(unauthorized.error_code, 401)
      assert.strictEqual(unauthorized.description, "Unauthorized")

      const notFound = yield* grammyError(() => botFor(fake).api.getChat(CUSTOMER))
      assert.strictEqual(notFound.error_code, 404)
      assert.strictEqual(notFound.description, "Not Found: method not found")
    }))

  it.scopedLive("holds a long poll until an update arrives; an offset confirms it", () =>
    Effect.gen(function* () {
      const fake = yield* telegramFake({ bots: [TOKEN] })
      const bot = botFor(fake)
      const started = Date.now()
      const poll = yield* Effect.fork(call(() => bot.api.getUpdates({ timeout: 20 })))
      yield* Effect.sleep("300 millis")
      assert.isTrue(Option.isNone(yield* Fiber.poll(poll)), "the poll waits for an update")
      const pushed = fake.pushUpdate(TOKEN, text(1))
      const updates = yield* Fiber.join(poll)
      const waited = Date.now() - started
      assert.isAtLeast(waited, 300)
      assert.isBelow(waited, 5_000)
      assert.deepStrictEqual(ids(updates), [pushed.update_id])
      assert.strictEqual(updates[0]?.message?.text, "message 1")

      // returned but not confirmed: still pending, and returned again
      assert.deepStrictEqual(ids(fake.pending(TOKEN)), [pushed.update_id])
      assert.deepStrictEqual(ids(yield* call(() => bot.api.getUpdates())), [pushed.update_id])

      const after = yield* call(() => bot.api.getUpdates({ offset: pushed.update_id + 1 }))
      assert.deepStrictEqual(after, [])
      assert.deepStrictEqual(fake.pending(TOKEN), [])

      // a long poll with nothing to give ends empty when its timeout does
      const quiet = Date.now()
      assert.deepStrictEqual(yield* call(() => bot.api.getUpdates({ timeout: 1 })), [])
      assert.isAtLeast(Date.now() - quiet, 900)
    }))

  it.scopedLive("getUpdates keeps update_id order, honours limit, offset and allowed_updates", () =>
    Effect.gen(function* () {
      const fake = yield* telegramFake({ bots: [TOKEN, OTHER] })
      const bot = botFor(fake)
      const [a, b, c] = [1, 2, 3].map((n) => fake.pushUpdate(TOKEN, text(n)))
      fake.pushUpdate(OTHER, text(9))
      assert.deepStrictEqual(ids(yield* call(() => bot.api.getUpdates({ limit: 2 }))), [
        a!.update_id,
        b!.update_id,
      ])
      assert.deepStrictEqual(
        ids(yield* call(() => bot.api.getUpdates({ offset: b!.update_id + 1 }))),
        [c!.update_id],
      )
      assert.deepStrictEqual(ids(fake.pending(TOKEN)), [c!.update_id])
      assert.strictEqual(fake.pending(OTHER).length, 1, "another bot's queue is its own")

      // a bot that asks only for callback queries is not given messages created afterwards
      yield* call(() =>
        bot.api.getUpdates({ offset: c!.update_id + 1, allowed_updates: ["callback_query"] })
      )
      fake.pushUpdate(TOKEN, text(4))
      assert.deepStrictEqual(fake.pending(TOKEN), [])
    }))

  it.scopedLive("a newer getUpdates ends the one still waiting with 409", () =>
    Effect.gen(function* () {
      const fake = yield* telegramFake({ bots: [TOKEN] })
      const bot = botFor(fake)
      const first = yield* Effect.fork(grammyError(() => bot.api.getUpdates({ timeout: 20 })))
      yield* Effect.sleep("200 millis")
      assert.deepStrictEqual(yield* call(() => bot.api.getUpdates({ timeout: 0 })), [])
      const conflict = yield* Fiber.join(first)
      assert.strictEqual(conflict.error_code, 409)
      assert.match(conflict.description, /^Conflict: terminated by other getUpdates request/)
    }))

  it.scopedLive("the real fixtures come through grammY as its types, with fresh ids and dates", () =>
    Effect.gen(function* () {
      const fake = yield* telegramFake({ bots: [TOKEN] })
      const bot = botFor(fake)
      const seen: Array<string> = []
      bot.on("message:text", (ctx) => void seen.push(`text:${ctx.message.text}`))
      bot.on("message:photo", (ctx) => {
        const largest = ctx.message.photo.at(-1)!
        seen.push(`photo:${ctx.message.photo.length}:${largest.width}x${largest.height}`)
      })
      bot.on(
        "message:document",
        (ctx) => void seen.push(`document:${ctx.message.document.file_name}`),
      )
      bot.on("edited_message:text", (ctx) => void seen.push(`edited:${ctx.editedMessage.text}`))
      yield* call(() => bot.init()) // getMe against the fake

      const pushed = ["message", "message_with_photo", "message_with_document", "edited_message"]
        .map((name) => fake.pushFixture(TOKEN, name))
      const updates = yield* call(() => bot.api.getUpdates())
      assert.deepStrictEqual(ids(updates), ids(pushed))
      for (const update of updates) yield* call(() => bot.handleUpdate(update))
      assert.deepStrictEqual(seen, [
        "text:Hi, world!",
        "photo:4:950x320",
        "document:test.docx",
        "edited:hi there (edited)",
      ])

      const nowSeconds = Date.now() / 1000
      const [message, photo, document, edited] = updates
      assert.isAtMost(Math.abs(message!.message!.date - nowSeconds), 5)
      assert.strictEqual(edited!.edited_message!.edit_date! - edited!.edited_message!.date, 7)
      assert.notStrictEqual(photo!.message!.message_id, 22980)
      assert.notStrictEqual(
        photo!.message!.photo![0]!.file_id,
        "AgADAgADOagxG8vyeUvsltCem_XPv5A6Sw0ABGb0LxO1Uivf5lkRAAEC",
      )
      // fixture files are known to the fake with bytes of their declared size
      const doc = document!.message!.document!
      assert.strictEqual(fake.file(doc.file_id)?.bytes.byteLength, 21331)
      // message ids count up per chat
      assert.isAbove(document!.message!.message_id, message!.message!.message_id)
    }))

  it.scopedLive("records what the bot sends: text with markup, uploaded photo and document bytes", () =>
    Effect.gen(function* () {
      const fake = yield* telegramFake({ bots: [TOKEN] })
      const bot = botFor(fake)
      fake.pushFixture(TOKEN, "message")
      const keyboard = { inline_keyboard: [[{ text: "Yes", callback_data: "yes" }]] }

      const sent = yield* call(() =>
        bot.api.sendMessage(CUSTOMER, "Hello from Chorus", { reply_markup: keyboard })
      )
      assert.strictEqual(sent.text, "Hello from Chorus")
      assert.strictEqual(sent.chat.id, CUSTOMER)
      assert.strictEqual(sent.from?.id, 111111)
      assert.deepStrictEqual(sent.reply_markup, keyboard)

      const photo = yield* call(() =>
        bot.api.sendPhoto(CUSTOMER, new InputFile(PNG), { caption: "your label" })
      )
      assert.strictEqual(photo.photo.length, 1)
      assert.strictEqual(photo.photo[0]!.width, 1)
      assert.strictEqual(photo.caption, "your label")
      assert.isAbove(photo.message_id, sent.message_id)

      const pdf = Buffer.from("%PDF-1.4 invoice 42\n")
      const doc = yield* call(() =>
        bot.api.sendDocument(CUSTOMER, new InputFile(pdf, "invoice.pdf"))
      )
      assert.strictEqual(doc.document.file_name, "invoice.pdf")
      assert.strictEqual(doc.document.mime_type, "application/pdf")
      assert.strictEqual(doc.document.file_size, pdf.length)

      // the same document again, by the file_id Telegram gave
      yield* call(() => bot.api.sendDocument(CUSTOMER, doc.document.file_id))

      const record = fake.sent(TOKEN)
      assert.deepStrictEqual(record.map((s) => s.method), [
        "sendMessage",
        "sendPhoto",
        "sendDocument",
        "sendDocument",
      ])
      assert.strictEqual(record[0]!.chat_id, CUSTOMER)
      assert.strictEqual(record[0]!.text, "Hello from Chorus")
      assert.deepStrictEqual(record[0]!.reply_markup, keyboard)
      assert.strictEqual(record[1]!.chat_id, CUSTOMER, "a multipart chat_id is read as a number")
      assert.strictEqual(record[1]!.caption, "your label")
      assertSameBytes(record[1]!.files[0]!.bytes, PNG, "uploaded photo")
      assert.strictEqual(record[1]!.files[0]!.source, "upload")
      assert.strictEqual(record[2]!.files[0]!.filename, "invoice.pdf")
      assertSameBytes(record[2]!.files[0]!.bytes, pdf, "uploaded document")
      assert.strictEqual(record[3]!.files[0]!.source, "file_id")
      assertSameBytes(record[3]!.files[0]!.bytes, pdf, "document by file_id")
    }))

  it.scopedLive("refuses what Telegram refuses: unknown chat, non-image photo, unknown file_id", () =>
    Effect.gen(function* () {
      const fake = yield* telegramFake({ bots: [TOKEN] })
      const bot = botFor(fake)
      const unknownChat = yield* grammyError(() => bot.api.sendMessage(999, "hi"))
      assert.strictEqual(unknownChat.description, "Bad Request: chat not found")
      fake.pushFixture(TOKEN, "message")
      const notImage = yield* grammyError(() =>
        bot.api.sendPhoto(CUSTOMER, new InputFile(Buffer.from("not a picture")))
      )
      assert.strictEqual(notImage.description, "Bad Request: IMAGE_PROCESS_FAILED")
      const badId = yield* grammyError(() => bot.api.sendDocument(CUSTOMER, "no-such-file"))
      assert.strictEqual(badId.description, "Bad Request: wrong file identifier/HTTP URL specified")
      assert.deepStrictEqual(fake.sent(TOKEN), [])
    }))

  it.scopedLive("a 429 surfaces as GrammyError with retry_after, and only for the armed calls", () =>
    Effect.gen(function* () {
      const fake = yield* telegramFake({ bots: [TOKEN] })
      const bot = botFor(fake)
      fake.pushFixture(TOKEN, "message")
      fake.failNext(TOKEN, "sendMessage", { kind: "tooManyRequests", retryAfter: 7 })
      const error = yield* grammyError(() => bot.api.sendMessage(CUSTOMER, "hi"))
      assert.strictEqual(error.error_code, 429)
      assert.strictEqual(error.description, "Too Many Requests: retry after 7")
      assert.strictEqual(error.parameters.retry_after, 7)
      assert.strictEqual((yield* call(() => bot.api.sendMessage(CUSTOMER, "hi"))).text, "hi")
      assert.strictEqual(fake.sent(TOKEN).length, 1, "the refused call sent nothing")
      assert.deepStrictEqual(fake.calls(TOKEN).map((c) => c.status), [429, 200])

      fake.failNext(TOKEN, "sendMessage", { kind: "badRequest", description: "TOPIC_CLOSED" }, {
        times: 2,
      })
      for (let i = 0; i < 2; i++) {
        const bad = yield* grammyError(() => bot.api.sendMessage(CUSTOMER, "hi"))
        assert.strictEqual(bad.error_code, 400)
        assert.strictEqual(bad.description, "Bad Request: TOPIC_CLOSED")
      }
      yield* call(() => bot.api.sendMessage(CUSTOMER, "hi"))
    }))

  it.scopedLive("a chat that blocked the bot answers 403; other chats still work", () =>
    Effect.gen(function* () {
      const fake = yield* telegramFake({ bots: [TOKEN] })
      const bot = botFor(fake)
      fake.pushUpdate(TOKEN, text(1, 100))
      fake.pushUpdate(TOKEN, text(1, 200))
      fake.blockChat(TOKEN, 100)
      const blocked = yield* grammyError(() => bot.api.sendMessage(100, "hi"))
      assert.strictEqual(blocked.error_code, 403)
      assert.strictEqual(blocked.description, "Forbidden: bot was blocked by the user")
      const typing = yield* grammyError(() => bot.api.sendChatAction(100, "typing"))
      assert.strictEqual(typing.error_code, 403)
      assert.strictEqual(yield* call(() => bot.api.sendChatAction(200, "typing")), true)
      const blockedPhoto = yield* grammyError(() => bot.api.sendPhoto(100, new InputFile(PNG)))
      assert.strictEqual(blockedPhoto.error_code, 403)
      yield* call(() => bot.api.sendMessage(200, "hi"))
      fake.unblockChat(TOKEN, 100)
      yield* call(() => bot.api.sendMessage(100, "welcome back"))
      assert.deepStrictEqual(fake.sent(TOKEN).map((s) => s.chat_id), [200, 100])
    }))

  it.scopedLive("a text over 4,096 characters is refused with 400; 4,096 is fine", () =>
    Effect.gen(function* () {
      const fake = yield* telegramFake({ bots: [TOKEN] })
      const bot = botFor(fake)
      fake.pushFixture(TOKEN, "message")
      const tooLong = yield* grammyError(() => bot.api.sendMessage(CUSTOMER, "x".repeat(4097)))
      assert.strictEqual(tooLong.error_code, 400)
      assert.strictEqual(tooLong.description, "Bad Request: message is too long")
      const longest = yield* call(() => bot.api.sendMessage(CUSTOMER, "x".repeat(4096)))
      assert.strictEqual(longest.text?.length, 4096)
    }))

  it.scopedLive("webhook: updates are POSTed with the secret, redelivered after a 500, in order", () =>
    Effect.gen(function* () {
      const fake = yield* telegramFake({ bots: [TOKEN], webhookRetryDelayMs: 50 })
      const receiver = yield* webhookReceiver
      receiver.answer = (_request, n) => ({ status: n === 0 ? 500 : 200 })
      const bot = botFor(fake)
      const first = fake.pushUpdate(TOKEN, text(1))
      yield* call(() => bot.api.setWebhook(receiver.url, { secret_token: "s3cret_T0ken" }))
      const second = fake.pushUpdate(TOKEN, text(2))

      yield* eventually(() => fake.pending(TOKEN).length === 0)
      assert.deepStrictEqual(
        receiver.received.map((r) => r.json.update_id),
        [first.update_id, first.update_id, second.update_id],
      )
      for (const request of receiver.received) {
        assert.strictEqual(request.headers["x-telegram-bot-api-secret-token"], "s3cret_T0ken")
        assert.strictEqual(request.headers["content-type"], "application/json")
      }
      assert.strictEqual(receiver.received[2]!.json.message.text, "message 2")

      const info = yield* call(() => bot.api.getWebhookInfo())
      assert.strictEqual(info.url, receiver.url)
      assert.strictEqual(info.pending_update_count, 0)
      assert.match(info.last_error_message ?? "", /^Wrong response from the webhook: 500/)

      const conflict = yield* grammyError(() => bot.api.getUpdates())
      assert.strictEqual(conflict.error_code, 409)
      assert.match(conflict.description, /webhook is active/)

      // back to polling: nothing is lost while no one listens
      yield* call(() => bot.api.deleteWebhook())
      const third = fake.pushUpdate(TOKEN, text(3))
      assert.deepStrictEqual(ids(yield* call(() => bot.api.getUpdates())), [third.update_id])
      assert.strictEqual(receiver.received.length, 3)
      assert.strictEqual((yield* call(() => bot.api.getWebhookInfo())).url, "")
    }))

  it.scopedLive("webhook: an unreachable url keeps the update queued until it answers", () =>
    Effect.gen(function* () {
      const fake = yield* telegramFake({ bots: [TOKEN], webhookRetryDelayMs: 50 })
      const bot = botFor(fake)
      const receiver = yield* webhookReceiver
      // a port nobody listens on: take one, close it
      const deadUrl = yield* Effect.scoped(
        Effect.map(webhookReceiver, (r) => r.url),
      )
      const update = fake.pushUpdate(TOKEN, text(1))
      yield* call(() => bot.api.setWebhook(deadUrl))
      yield* eventually(() => fake.pending(TOKEN).length === 1 && receiver.received.length === 0)
      yield* Effect.sleep("200 millis")
      const info = yield* call(() => bot.api.getWebhookInfo())
      assert.strictEqual(info.pending_update_count, 1)
      assert.isString(info.last_error_message)
      yield* call(() => bot.api.setWebhook(receiver.url))
      yield* eventually(() => receiver.received.length === 1)
      assert.strictEqual(receiver.received[0]!.json.update_id, update.update_id)
      assert.strictEqual(
        receiver.received[0]!.headers["x-telegram-bot-api-secret-token"],
        undefined,
      )
      yield* eventually(() => fake.pending(TOKEN).length === 0)
    }))

  it.scopedLive("setWebhook ends a waiting long poll with 409; drop_pending_updates forgets", () =>
    Effect.gen(function* () {
      const fake = yield* telegramFake({ bots: [TOKEN] })
      const receiver = yield* webhookReceiver
      receiver.answer = () => ({ status: 500 })
      const bot = botFor(fake)
      const poll = yield* Effect.fork(grammyError(() => bot.api.getUpdates({ timeout: 20 })))
      yield* Effect.sleep("200 millis")
      yield* call(() => bot.api.setWebhook(receiver.url))
      const conflict = yield* Fiber.join(poll)
      assert.strictEqual(conflict.description, "Conflict: terminated by setWebhook request")
      fake.pushUpdate(TOKEN, text(1))
      yield* eventually(() => receiver.received.length >= 1)
      yield* call(() => bot.api.deleteWebhook({ drop_pending_updates: true }))
      assert.deepStrictEqual(fake.pending(TOKEN), [])
    }))

  it.scopedLive("getFile and the download endpoint serve the file's bytes", () =>
    Effect.gen(function* () {
      const fake = yield* telegramFake({ bots: [TOKEN] })
      const bot = botFor(fake)
      const download = (path: string) =>
        call(async () => {
          const response = await fetch(`${fake.apiRoot}/file/bot${TOKEN}/${path}`)
          return { status: response.status, bytes: Buffer.from(await response.arrayBuffer()) }
        })

      // a file the test registers
      const bytes = Buffer.from("voice note bytes")
      fake.addFile("registered-file", bytes, { path: "voice/file_7.oga" })
      const registered = yield* call(() => bot.api.getFile("registered-file"))
      assert.strictEqual(registered.file_path, "voice/file_7.oga")
      assert.strictEqual(registered.file_size, bytes.length)
      assertSameBytes((yield* download(registered.file_path!)).bytes, bytes, "registered file")

      // a file from a pushed fixture
      const update = fake.pushFixture(TOKEN, "message_with_document")
      const fileId = update.message!.document!.file_id
      const file = yield* call(() => bot.api.getFile(fileId))
      assert.strictEqual(file.file_size, 21331)
      const fetched = yield* download(file.file_path!)
      assert.strictEqual(fetched.status, 200)
      assertSameBytes(fetched.bytes, fake.file(fileId)!.bytes, "fixture file")

      // a photo the bot uploaded
      const sent = yield* call(() => bot.api.sendPhoto(CUSTOMER, new InputFile(PNG)))
      const photoFile = yield* call(() => bot.api.getFile(sent.photo[0]!.file_id))
      assertSameBytes((yield* download(photoFile.file_path!)).bytes, PNG, "sent photo")

      const unknown = yield* grammyError(() => bot.api.getFile("nope"))
      assert.strictEqual(unknown.description, "Bad Request: invalid file_id")
      assert.strictEqual((yield* download("documents/nothing-here")).status, 404)
    }))

  it.scopedLive("reads a curl-style multipart upload and a url-encoded form too", () =>
    Effect.gen(function* () {
      const fake = yield* telegramFake({ bots: [TOKEN] })
      fake.pushFixture(TOKEN, "message")
      const form = new FormData()
      form.set("chat_id", String(CUSTOMER))
      form.set("document", new Blob([new Uint8Array([1, 2, 3])]), "raw.bin")
      const multipart = yield* call(() =>
        fetch(`${fake.apiRoot}/bot${TOKEN}/sendDocument`, { method: "POST", body: form })
          .then((r) => r.json())
      )
      assert.strictEqual(multipart.ok, true)
      assert.strictEqual(multipart.result.document.file_name, "raw.bin")
      const urlencoded = yield* call(() =>
        fetch(`${fake.apiRoot}/bot${TOKEN}/SENDMESSAGE`, {
          method: "POST",
          body: new URLSearchParams({ chat_id: String(CUSTOMER), text: "plain form" }),
        }).then((r) => r.json())
      )
      assert.strictEqual(urlencoded.result.text, "plain form")
      assert.deepStrictEqual(
        fake.sent(TOKEN).map((s) => [s.method, Array.from(s.files[0]?.bytes ?? [])]),
        [["sendDocument", [1, 2, 3]], ["sendMessage", []]],
      )
    }))

  it.scopedLive("grammY's own long-polling loop (bot.start/stop) gets pushed updates and confirms them", () =>
    Effect.gen(function* () {
      const fake = yield* telegramFake({ bots: [TOKEN] })
      const bot = botFor(fake)
      const handled: Array<string> = []
      bot.on("message:text", async (ctx) => {
        handled.push(ctx.message.text)
        await ctx.reply(`echo: ${ctx.message.text}`)
      })
      const before = fake.pushFixture(TOKEN, "message")
      const running = bot.start({ drop_pending_updates: false })
      yield* Effect.addFinalizer(() =>
        Effect.promise(() => bot.isRunning() ? bot.stop() : Promise.resolve())
      )
      yield* eventually(() => handled.length === 1)
      // pushed while grammY's getUpdates is waiting
      yield* Effect.sleep("100 millis")
      fake.pushUpdate(TOKEN, text(2))
      yield* eventually(() => handled.length === 2)
      yield* call(() => bot.stop())
      yield* call(() => running)
      assert.deepStrictEqual(handled, ["Hi, world!", "message 2"])
      assert.deepStrictEqual(fake.pending(TOKEN), [], "bot.stop() confirmed what it handled")
      assert.deepStrictEqual(fake.sent(TOKEN).map((m) => m.text), [
        "echo: Hi, world!",
        "echo: message 2",
      ])
      assert.strictEqual(fake.sent(TOKEN)[0]!.message.chat.id, before.message!.chat.id)
    }))

  it.scopedLive("grammY's webhookCallback behind setWebhook: secret checked, update handled", () =>
    Effect.gen(function* () {
      const fake = yield* telegramFake({ bots: [TOKEN] })
      const bot = botFor(fake)
      const handled: Array<string> = []
      bot.on("message:text", (ctx) => void handled.push(ctx.message.text))
      yield* call(() => bot.init())
      const server = yield* Effect.acquireRelease(
        Effect.async<NodeHttp.Server>((resume) => {
          const s = NodeHttp.createServer(
            webhookCallback(bot, "http", { secretToken: "right-secret" }),
          )
          s.listen(0, "127.0.0.1", () => resume(Effect.succeed(s)))
        }),
        (s) =>
          Effect.async<void>((resume) => {
            s.closeAllConnections()
            s.close(() => resume(Effect.void))
          }),
      )
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/telegram`
      // a wrong secret: grammY answers 401, so the fake keeps the update and retries
      yield* call(() => bot.api.setWebhook(url, { secret_token: "wrong-secret" }))
      fake.pushUpdate(TOKEN, text(1))
      yield* eventually(() => fake.calls(TOKEN).length > 0)
      yield* Effect.sleep("300 millis")
      assert.deepStrictEqual(handled, [])
      assert.strictEqual(fake.pending(TOKEN).length, 1)
      assert.match(
        (yield* call(() => bot.api.getWebhookInfo())).last_error_message ?? "",
        /401/,
      )
      yield* call(() => bot.api.setWebhook(url, { secret_token: "right-secret" }))
      yield* eventually(() => handled.length === 1)
      assert.deepStrictEqual(handled, ["message 1"])
      yield* eventually(() => fake.pending(TOKEN).length === 0)
    }))

  it.scopedLive("the scope closes the server", () =>
    Effect.gen(function* () {
      const apiRoot = yield* Effect.scoped(
        Effect.map(telegramFake({ bots: [TOKEN] }), (fake) => fake.apiRoot),
      )
      const after = yield* call(() => fetch(`${apiRoot}/bot${TOKEN}/getMe`)).pipe(Effect.flip)
      assert.instanceOf(after, Error)
    }))

  it.live("startTelegramFake serves callers outside Effect until close()", () =>
    Effect.promise(async () => {
      const fake = await startTelegramFake({ bots: [TOKEN] })
      try {
        const me = await botFor(fake).api.getMe()
        assert.strictEqual(me.id, 111111)
      } finally {
        await fake.close()
      }
      const refused = await fetch(`${fake.apiRoot}/bot${TOKEN}/getMe`).then(() => false, () => true)
      assert.isTrue(refused, "no server after close()")
    }))

  it.scopedLive("a reply carries the message it answers; a reply to an unknown message is refused", () =>
    Effect.gen(function* () {
      const fake = yield* telegramFake({ bots: [TOKEN] })
      const bot = botFor(fake)
      const incoming = fake.pushFixture(TOKEN, "message").message!
      const answer = yield* call(() =>
        bot.api.sendMessage(CUSTOMER, "Hello!", {
          reply_parameters: { message_id: incoming.message_id },
        })
      )
      assert.strictEqual(answer.reply_to_message?.message_id, incoming.message_id)
      assert.strictEqual(answer.reply_to_message?.text, "Hi, world!")
      // the bot's own message can be answered too
      const followUp = yield* call(() =>
        bot.api.sendMessage(CUSTOMER, "And also…", {
          reply_parameters: { message_id: answer.message_id },
        })
      )
      assert.strictEqual(followUp.reply_to_message?.text, "Hello!")
      assert.isUndefined(followUp.reply_to_message?.reply_to_message)

      const missing = yield* grammyError(() =>
        bot.api.sendMessage(CUSTOMER, "?", { reply_parameters: { message_id: 999_999 } })
      )
      assert.strictEqual(missing.description, "Bad Request: message to be replied not found")
      const without = yield* call(() =>
        bot.api.sendMessage(CUSTOMER, "anyway", {
          reply_parameters: { message_id: 999_999, allow_sending_without_reply: true },
        })
      )
      assert.isUndefined(without.reply_to_message)
    }))

  it.scopedLive("a webhook's 2xx answer may carry a Bot API call, which the fake runs", () =>
    Effect.gen(function* () {
      const fake = yield* telegramFake({ bots: [TOKEN] })
      const receiver = yield* webhookReceiver
      receiver.answer = (request) => ({
        status: 200,
        body: JSON.stringify({
          method: "sendMessage",
          chat_id: request.json.message.chat.id,
          text: `got ${request.json.message.text}`,
        }),
      })
      yield* call(() => botFor(fake).api.setWebhook(receiver.url))
      fake.pushUpdate(TOKEN, text(1))
      yield* eventually(() => fake.sent(TOKEN).length === 1)
      assert.strictEqual(fake.sent(TOKEN)[0]!.text, "got message 1")
      assert.strictEqual(fake.sent(TOKEN)[0]!.chat_id, CUSTOMER)
    }))

  it.scopedLive("a photo or document given by URL is fetched by the fake; a dead URL is refused", () =>
    Effect.gen(function* () {
      const fake = yield* telegramFake({ bots: [TOKEN] })
      const bot = botFor(fake)
      fake.pushFixture(TOKEN, "message")
      const files = yield* Effect.acquireRelease(
        Effect.async<NodeHttp.Server>((resume) => {
          const s = NodeHttp.createServer((req, res) => {
            if (req.url === "/label.png") {
              res.writeHead(200, { "content-type": "image/png" }).end(PNG)
            } else res.writeHead(404).end()
          })
          s.listen(0, "127.0.0.1", () => resume(Effect.succeed(s)))
        }),
        (s) =>
          Effect.async<void>((resume) => {
            s.closeAllConnections()
            s.close(() => resume(Effect.void))
          }),
      )
      const base = `http://127.0.0.1:${(files.address() as AddressInfo).port}`
      const photo = yield* call(() => bot.api.sendPhoto(CUSTOMER, `${base}/label.png`))
      assert.strictEqual(photo.photo[0]!.width, 1)
      const record = fake.sent(TOKEN)[0]!.files[0]!
      assert.strictEqual(record.source, "url")
      assert.strictEqual(record.url, `${base}/label.png`)
      assertSameBytes(record.bytes, PNG, "fetched photo")
      const dead = yield* grammyError(() => bot.api.sendDocument(CUSTOMER, `${base}/gone.pdf`))
      assert.strictEqual(dead.description, "Bad Request: failed to get HTTP URL content")
    }))

  it.scopedLive("a failure armed for one chat leaves the other chats alone", () =>
    Effect.gen(function* () {
      const fake = yield* telegramFake({ bots: [TOKEN] })
      const bot = botFor(fake)
      fake.pushUpdate(TOKEN, text(1, 100))
      fake.pushUpdate(TOKEN, text(1, 200))
      fake.failNext(TOKEN, "sendMessage", { kind: "forbidden" }, { chatId: 100 })
      yield* call(() => bot.api.sendMessage(200, "first"))
      const refused = yield* grammyError(() => bot.api.sendMessage(100, "second"))
      assert.strictEqual(refused.error_code, 403)
      assert.strictEqual(refused.description, "Forbidden: bot was blocked by the user")
      yield* call(() => bot.api.sendMessage(100, "third"))
      assert.deepStrictEqual(fake.sent(TOKEN).map((m) => m.text), ["first", "third"])
    }))
})
