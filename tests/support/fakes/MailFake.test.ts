/**
 * The SMTP fake driven by nodemailer, as the e-mail channel drives it: a mail with its
 * envelope and headers kept, a wrong password refused, armed failures answered at RCPT TO and at
 * the end of DATA with the codes nodemailer reports.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import nodemailer from "nodemailer"
import { mailFake } from "./MailFake.ts"

const USER = "support@example.com"

const transportFor = (port: number, pass = "secret") =>
  nodemailer.createTransport({
    host: "127.0.0.1",
    port,
    secure: false,
    ignoreTLS: true,
    auth: { user: USER, pass },
  })

const send = (transport: ReturnType<typeof transportFor>, messageId: string) =>
  Effect.promise(() =>
    transport.sendMail({
      from: USER,
      to: "anna@customer.example",
      subject: "Re: hello",
      messageId,
      inReplyTo: "<a@customer.example>",
      text: "hi",
    }).then(
      (info) => ({ ok: true as const, response: info.response }),
      (error: { code?: string; responseCode?: number }) => ({
        ok: false as const,
        code: error.code,
        responseCode: error.responseCode,
      }),
    )
  )

describe("MailFake", () => {
  it.scopedLive("keeps an accepted mail with its envelope, headers and raw bytes", () =>
    Effect.gen(function* () {
      const fake = yield* mailFake({ user: USER, password: "secret" })
      const result = yield* send(transportFor(fake.port), "<m1@example.com>")
      assert.deepStrictEqual(result, { ok: true, response: "250 2.0.0 Ok: queued" })
      assert.lengthOf(fake.received, 1)
      const mail = fake.received[0]!
      assert.deepStrictEqual(mail.envelope, { from: USER, to: ["anna@customer.example"] })
      assert.strictEqual(mail.parsed.messageId, "<m1@example.com>")
      assert.strictEqual(mail.parsed.inReplyTo, "<a@customer.example>")
      assert.match(mail.raw.toString(), /^Subject: Re: hello\r$/m)
      assert.deepStrictEqual(fake.attempts.map((a) => [a.stage, a.code, a.messageId]), [
        ["rcpt", 250, undefined],
        ["data", 250, "<m1@example.com>"],
      ])
    }))

  it.scopedLive("refuses a wrong password with 535", () =>
    Effect.gen(function* () {
      const fake = yield* mailFake({ user: USER, password: "secret" })
      const result = yield* send(transportFor(fake.port, "wrong"), "<m2@example.com>")
      assert.deepStrictEqual(result, { ok: false, code: "EAUTH", responseCode: 535 })
      assert.lengthOf(fake.received, 0)
    }))

  it.scopedLive("answers armed failures once each, at RCPT TO and at the end of DATA", () =>
    Effect.gen(function* () {
      const fake = yield* mailFake({ user: USER, password: "secret" })
      const transport = transportFor(fake.port)
      fake.failNext({ stage: "rcpt", code: 550, message: "5.1.1 User unknown" })
      fake.failNext({ stage: "data", code: 451, message: "4.3.0 Try again later" })
      const refused = yield* send(transport, "<m3@example.com>")
      assert.deepStrictEqual(refused, { ok: false, code: "EENVELOPE", responseCode: 550 })
      const deferred = yield* send(transport, "<m3@example.com>")
      assert.deepStrictEqual(deferred, { ok: false, code: "EMESSAGE", responseCode: 451 })
      const accepted = yield* send(transport, "<m3@example.com>")
      assert.isTrue(accepted.ok)
      assert.lengthOf(fake.received, 1)
      assert.deepStrictEqual(fake.attempts.map((a) => [a.stage, a.code]), [
        ["rcpt", 550],
        ["rcpt", 250],
        ["data", 451],
        ["rcpt", 250],
        ["data", 250],
      ])
    }))
})
