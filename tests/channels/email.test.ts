/**
 * The e-mail channel plugin (plugins/email) end to end, in a worker thread of a real Chorus
 * server, against a real IMAP server (Dovecot, tests/support/Dovecot.ts) and a real SMTP server
 * that keeps what it receives (smtp-server, tests/support/fakes/MailFake.ts).
 *
 * Customers' mails are put into the mailbox by IMAP APPEND, as a delivery would, built by
 * nodemailer's MailComposer as a mail client builds them. The plugin reads them over IMAP (IDLE),
 * stores them (the sender verified, the attachment, the full text), marks them \Seen only then;
 * replies go out over SMTP threaded (Re:, In-Reply-To, References) and the customer's answer to
 * one lands in the same conversation. A 451 is retried and delivered once, a 550 fails the reply
 * and marks the address unreachable, a bounce fails the reply it names.
 *
 * The SMTP receiver mode is tested with nodemailer as the delivering MTA (no Dovecot needed).
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as NodeNet from "node:net"
import nodemailer from "nodemailer"
import MailComposer from "nodemailer/lib/mail-composer/index.js"
import { request } from "../api/ApiServer.ts"
import { eventually, startReplyServer } from "../api/ReplyServer.ts"
import { dovecot, dovecotPath } from "../support/Dovecot.ts"
import { mailFake, postfixBounce } from "../support/fakes/MailFake.ts"
import { installRepoPlugins } from "../support/PluginFixtures.ts"
import { tempDir } from "../support/TestDatabase.ts"

const MAILBOX = "support@example.com"
const PASSWORD = "imap-secret"
const CUSTOMER = "Anna.Kowalska@Customer.example"

/** A 1×1 PNG (the attachment store checks the content). */
const PNG = Buffer.from(
  "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==",
  "base64",
)

const compose = (mail: ConstructorParameters<typeof MailComposer>[0]) =>
  Effect.promise(() => new MailComposer(mail).compile().build())

const env = {
  CHORUS_PLUGIN_EMAIL_IMAP_PASSWORD_SUPPORT: PASSWORD,
  CHORUS_PLUGIN_EMAIL_SMTP_PASSWORD_SUPPORT: "smtp-secret",
}

const setup = (
  overrides: { imapHost?: string; processed?: string; settings?: Record<string, number> } = {},
) =>
  Effect.gen(function* () {
    const imap = yield* dovecot({ users: [{ user: MAILBOX, password: PASSWORD }] })
    const smtp = yield* mailFake({ user: MAILBOX, password: "smtp-secret" })
    const plugins = yield* tempDir("chorus-plugins-")
    installRepoPlugins(plugins, ["email"], { net: { email: ["127.0.0.1"] } })
    for (const [k, v] of Object.entries(env)) process.env[k] = v
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => Object.keys(env).forEach((k) => delete process.env[k]))
    )
    const accounts = [{
      name: "support",
      address: MAILBOX,
      displayName: "Example Support",
      imap: {
        host: overrides.imapHost ?? imap.host,
        port: imap.port,
        security: "none",
        ...(overrides.processed !== undefined ? { processed: overrides.processed } : {}),
      },
      smtp: { host: smtp.host, port: smtp.port, security: "none" },
    }]
    const server = yield* startReplyServer({
      dataDir: yield* tempDir(),
      pluginsDir: plugins,
      // Polling only every five minutes: every mail in these tests is seen through IMAP IDLE.
      pluginSettings: {
        email: { accounts: JSON.stringify(accounts), pollSeconds: 300, ...overrides.settings },
      },
    })
    const api = (method: string, path: string, body?: unknown) =>
      request(`${server.url}/api/v1${path}`, {
        token: server.token,
        method,
        ...(body !== undefined ? { body } : {}),
      })
    return { imap, smtp, server, api }
  })

type Api = (method: string, path: string, body?: unknown) => ReturnType<typeof request>

const conversations = (api: Api) =>
  api("GET", "/conversations?channel=email").pipe(
    Effect.map((r) => (r.body as { conversations?: Array<{ id: string }> }).conversations ?? []),
  )

const messagesOf = (api: Api, conversation: string) =>
  api("GET", `/conversations/${conversation}/messages`).pipe(
    Effect.map((r) => (r.body as { messages: Array<any> }).messages),
  )

const describeImap = dovecotPath() !== undefined ? describe : describe.skip
if (dovecotPath() === undefined) {
  console.warn(
    "tests/channels/email.test.ts: skipped, Dovecot is not installed " +
      "(apt-get install -y dovecot-imapd; CI installs it)",
  )
}

describeImap("e-mail channel (Dovecot IMAP + SMTP)", () => {
  it.scopedLive(
    "a customer's mail in, stored and marked seen; a threaded reply out; their answer in the same conversation; a repeat stored once; 451 retried, 550 unreachable",
    () =>
      Effect.gen(function* () {
        const { imap, smtp, server, api } = yield* setup()

        // 1. A customer writes, with a screenshot and a signature.
        const first = yield* compose({
          from: { name: "Anna Kowalska", address: CUSTOMER },
          to: MAILBOX,
          subject: "Parcel 4711 arrived broken",
          messageId: "<first-4711@customer.example>",
          date: new Date("2026-11-24T08:00:00Z"),
          text: "Hello,\nthe parcel arrived broken, see the photo.\n\n-- \nAnna Kowalska\n+48 600",
          attachments: [{ filename: "photo.png", content: PNG, contentType: "image/png" }],
        })
        yield* imap.append(MAILBOX, first)
        let conversation = ""
        yield* eventually("an e-mail conversation", () =>
          conversations(api).pipe(Effect.map((list) => {
            conversation = list[0]?.id ?? ""
            return list.length === 1
          })))
        yield* eventually(
          "the first mail stored",
          () =>
            messagesOf(api, conversation).pipe(Effect.map((m) =>
              m.length === 1
            )),
        )
        const [stored] = yield* messagesOf(api, conversation)
        assert.strictEqual(stored.text, "Hello,\nthe parcel arrived broken, see the photo.")
        assert.strictEqual(stored.externalId, "<first-4711@customer.example>")
        const files = stored.attachments as Array<
          { name: string; mimeType: string; storageKey: string }
        >
        assert.deepStrictEqual(files.map((f) => [f.name, f.mimeType]), [
          ["photo.png", "image/png"],
          ["original.txt", "text/plain"],
        ])
        const download = (key: string) =>
          Effect.promise(() =>
            fetch(`${server.url}/api/v1/attachments/${key}`, {
              headers: { authorization: `Bearer ${server.token}` },
            }).then(async (r) => Buffer.from(await r.arrayBuffer()))
          )
        assert.deepStrictEqual(yield* download(files[0]!.storageKey), PNG)
        assert.match(
          (yield* download(files[1]!.storageKey)).toString("utf8"),
          /-- \nAnna Kowalska\n\+48 600/,
        )
        const contactId =
          ((yield* api("GET", `/conversations/${conversation}`)).body as { contactId: string })
            .contactId
        const identityOf = () =>
          api("GET", `/contacts/${contactId}`).pipe(
            Effect.map((r) => (r.body as { identities: Array<any> }).identities[0]),
          )
        const identity = yield* identityOf()
        assert.strictEqual(identity.externalId, CUSTOMER.toLowerCase())
        assert.strictEqual(identity.email, CUSTOMER.toLowerCase())
        assert.strictEqual(identity.verification, "verified")
        assert.strictEqual(identity.name, "Anna Kowalska")
        // \Seen only once stored.
        yield* eventually("the mail marked seen", () =>
          imap.flags(MAILBOX).pipe(Effect.map((f) => f.get(1)?.has("\\Seen") === true)))

        // 2. The same mail again (a second delivery): stored once.
        yield* imap.append(MAILBOX, first)
        yield* eventually("the repeat handled", () =>
          imap.flags(MAILBOX).pipe(Effect.map((f) =>
            f.get(2)?.has("\\Seen") === true
          )))
        assert.lengthOf(yield* messagesOf(api, conversation), 1)

        // 3. The operator answers, with the photo back: a threaded mail from the mailbox.
        const reply = (body: Record<string, unknown>) =>
          api("POST", `/conversations/${conversation}/messages`, body).pipe(
            Effect.map((r) => {
              assert.strictEqual(r.status, 202, JSON.stringify(r.body))
              return (r.body as { id: string }).id
            }),
          )
        const deliveryOf = (id: string) =>
          messagesOf(api, conversation).pipe(Effect.map((m) =>
            m.find((x) => x.id === id)
          ))
        const answered = yield* reply({
          text: "We are sorry!\n\nA new parcel is on its way: https://shop.example/t/1",
          attachments: [{
            name: "photo.png",
            mimeType: "image/png",
            size: PNG.length,
            storageKey: files[0]!.storageKey,
          }],
        })
        yield* eventually(
          "the reply sent",
          () => deliveryOf(answered).pipe(Effect.map((m) => m?.delivery.state === "sent")),
        )
        assert.lengthOf(smtp.received, 1)
        const out = smtp.received[0]!
        assert.deepStrictEqual(out.envelope, { from: MAILBOX, to: [CUSTOMER.toLowerCase()] })
        assert.strictEqual(out.parsed.from?.text, '"Example Support" <support@example.com>')
        assert.strictEqual(
          out.parsed.to && !Array.isArray(out.parsed.to) && out.parsed.to.value[0]?.address,
          CUSTOMER.toLowerCase(),
        )
        assert.strictEqual(out.parsed.subject, "Re: Parcel 4711 arrived broken")
        assert.strictEqual(out.parsed.inReplyTo, "<first-4711@customer.example>")
        assert.deepStrictEqual(
          [out.parsed.references].flat(),
          ["<first-4711@customer.example>"],
        )
        const ourId = (yield* deliveryOf(answered))!.externalId as string
        assert.strictEqual(out.parsed.messageId, ourId)
        assert.match(ourId, /^<chorus\..+@example\.com>$/)
        assert.match(out.parsed.text ?? "", /A new parcel is on its way/)
        assert.match(
          String(out.parsed.html),
          /<a href="https:\/\/shop\.example\/t\/1">/,
        )
        assert.deepStrictEqual(
          out.parsed.attachments.map((a) => [a.filename, a.contentType, a.content.equals(PNG)]),
          [["photo.png", "image/png", true]],
        )

        // 4. The customer answers our reply (quoting it): the same conversation.
        const answer = yield* compose({
          from: { name: "Anna Kowalska", address: CUSTOMER },
          to: MAILBOX,
          subject: "Re: Parcel 4711 arrived broken",
          messageId: "<second-4711@customer.example>",
          inReplyTo: ourId,
          references: ["<first-4711@customer.example>", ourId],
          text:
            `Thank you!\n\nOn Tue, 24 Nov 2026 at 09:00, Example Support <${MAILBOX}> wrote:\n> We are sorry!`,
        })
        yield* imap.append(MAILBOX, answer)
        yield* eventually(
          "the answer stored",
          () =>
            messagesOf(api, conversation).pipe(
              Effect.map((m) => m.some((x) => x.text === "Thank you!")),
            ),
        )
        assert.lengthOf(yield* conversations(api), 1)

        // The next reply threads on the answer.
        const second = yield* reply({ text: "Glad to help." })
        yield* eventually(
          "the second reply sent",
          () => deliveryOf(second).pipe(Effect.map((m) => m?.delivery.state === "sent")),
        )
        const out2 = smtp.received[1]!
        assert.strictEqual(out2.parsed.subject, "Re: Parcel 4711 arrived broken")
        assert.strictEqual(out2.parsed.inReplyTo, "<second-4711@customer.example>")
        assert.deepStrictEqual([out2.parsed.references].flat(), [
          "<first-4711@customer.example>",
          ourId,
          "<second-4711@customer.example>",
        ])

        // 5. 451 at the end of DATA (the server took the bytes, then refused): retried, the
        // same mail (same Message-ID) sent again, delivered once.
        smtp.failNext({ stage: "data", code: 451, message: "4.3.0 Try again later" })
        const retried = yield* reply({ text: "After a pause." })
        yield* eventually(
          "the retried reply sent",
          () => deliveryOf(retried).pipe(Effect.map((m) => m?.delivery.state === "sent")),
        )
        const retriedId = (yield* deliveryOf(retried))!.externalId
        assert.lengthOf(smtp.received.filter((m) => m.parsed.messageId === retriedId), 1)
        assert.deepStrictEqual(
          smtp.attempts.filter((a) => a.stage === "data").slice(-2).map((a) => [
            a.code,
            a.messageId,
          ]),
          [[451, retriedId], [250, retriedId]],
        )

        // 6. 550: failed, the address unreachable.
        smtp.failNext({
          stage: "rcpt",
          code: 550,
          message: "5.1.1 <anna.kowalska@customer.example>: Recipient address rejected",
        })
        const refused = yield* reply({ text: "Are you there?" })
        yield* eventually(
          "the refused reply failed",
          () => deliveryOf(refused).pipe(Effect.map((m) => m?.delivery.state === "failed")),
        )
        const failed = (yield* deliveryOf(refused))!
        assert.strictEqual(failed.delivery.error.code, "5.1.1")
        assert.match(failed.delivery.error.message, /Recipient address rejected/)
        assert.isFalse((yield* identityOf()).reachable)
        assert.lengthOf(smtp.received, 3)
      }),
    120_000,
  )

  it.scopedLive(
    "a bounce fails the reply it names (a hard one: the address unreachable) and is no customer message; an automatic reply opens no conversation; a mail over maxMailMb is left unseen; a reload reads nothing twice and still hears new mail",
    () =>
      Effect.gen(function* () {
        const { imap, smtp, server, api } = yield* setup({ settings: { maxMailMb: 1 } })
        // A mail over maxMailMb: not read, left unseen for a person; the mailbox goes on.
        yield* imap.append(
          MAILBOX,
          yield* compose({
            from: "big@customer.example",
            to: MAILBOX,
            subject: "Huge",
            text: "x".repeat(1_200_000),
          }),
        )
        // An out-of-office answering nothing of ours: skipped, marked seen, no conversation.
        yield* imap.append(
          MAILBOX,
          yield* compose({
            from: "robot@customer.example",
            to: MAILBOX,
            subject: "Out of office",
            messageId: "<ooo-1@customer.example>",
            headers: { "Auto-Submitted": "auto-replied" },
            text: "I am away until Monday.",
          }),
        )
        yield* eventually("the auto-reply handled", () =>
          imap.flags(MAILBOX).pipe(Effect.map((f) => f.get(2)?.has("\\Seen") === true)))
        assert.lengthOf(yield* conversations(api), 0)
        assert.isFalse((yield* imap.flags(MAILBOX)).get(1)!.has("\\Seen"))

        yield* imap.append(
          MAILBOX,
          yield* compose({
            from: "bob@customer.example",
            to: MAILBOX,
            subject: "Hello",
            messageId: "<bob-1@customer.example>",
            text: "Is anyone there?",
          }),
        )
        let conversation = ""
        yield* eventually("Bob's conversation", () =>
          conversations(api).pipe(Effect.map((list) => {
            conversation = list[0]?.id ?? ""
            return list.length === 1
          })))
        const posted = yield* api("POST", `/conversations/${conversation}/messages`, {
          text: "Yes, how can we help?",
        })
        const id = (posted.body as { id: string }).id
        const deliveryOf = () =>
          messagesOf(api, conversation).pipe(Effect.map((m) =>
            m.find((x) => x.id === id)
          ))
        yield* eventually(
          "the reply sent",
          () => deliveryOf().pipe(Effect.map((m) => m?.delivery.state === "sent")),
        )
        const sentId = smtp.received[0]!.parsed.messageId!
        assert.strictEqual((yield* deliveryOf())!.externalId, sentId)

        // Bob's server refuses it later: a DSN as Postfix writes it comes back to the mailbox.
        yield* imap.append(MAILBOX, postfixBounce(MAILBOX, "bob@customer.example", sentId))
        yield* eventually(
          "the reply failed",
          () => deliveryOf().pipe(Effect.map((m) => m?.delivery.state === "failed")),
        )
        const failed = (yield* deliveryOf())!
        assert.strictEqual(failed.delivery.error.code, "5.1.1")
        assert.match(failed.delivery.error.message, /User unknown/)
        const contactId =
          ((yield* api("GET", `/conversations/${conversation}`)).body as { contactId: string })
            .contactId
        const contact = (yield* api("GET", `/contacts/${contactId}`)).body as {
          identities: Array<{ reachable: boolean }>
        }
        assert.deepStrictEqual(contact.identities.map((i) => i.reachable), [false])
        // The bounce is not a message of Bob's, nor a conversation of the mailer daemon's.
        assert.lengthOf(yield* conversations(api), 1)
        assert.deepStrictEqual(
          (yield* messagesOf(api, conversation)).map((m) => m.direction),
          ["out", "in"],
        )
        yield* eventually("the bounce marked seen", () =>
          imap.flags(MAILBOX).pipe(Effect.map((f) => f.get(4)?.has("\\Seen") === true)))

        // A reload: the new version takes the mailbox over after the last UID handled (the
        // host's counters, kept across versions, show nothing read twice) and hears new mail.
        const reloaded = yield* api("POST", "/plugins/email/reload")
        assert.strictEqual(reloaded.status, 200, JSON.stringify(reloaded.body))
        yield* imap.append(
          MAILBOX,
          yield* compose({
            from: "bob@customer.example",
            to: MAILBOX,
            subject: "Re: Hello",
            messageId: "<bob-2@customer.example>",
            text: "My address is right, try again?",
          }),
        )
        yield* eventually("Bob's mail after the reload", () =>
          messagesOf(api, conversation).pipe(Effect.map((m) =>
            m.length === 3
          )))
        assert.deepStrictEqual(
          (yield* messagesOf(api, conversation)).map((m) =>
            m.direction
          ),
          ["in", "out", "in"],
        )
        assert.lengthOf(yield* conversations(api), 1)
        assert.isFalse((yield* imap.flags(MAILBOX)).get(1)!.has("\\Seen"))
        const metrics = yield* Effect.promise(() =>
          fetch(`${server.url}/api/v1/metrics`, {
            headers: { authorization: `Bearer ${server.token}` },
          }).then((r) => r.text())
        )
        const count = (name: string) =>
          Number(
            new RegExp(`^chorus_plugin_email_${name}\\{account="support"\\} (\\d+)$`, "m")
              .exec(metrics)?.[1],
          )
        assert.deepStrictEqual(
          [count("mails_received"), count("mails_skipped"), count("bounces")],
          [2, 2, 1],
          metrics,
        )
      }),
    90_000,
  )

  it.scopedLive(
    "processed move:<folder>: a handled mail leaves the inbox for that folder",
    () =>
      Effect.gen(function* () {
        const { imap, api } = yield* setup({ processed: "move:Chorus" })
        yield* imap.append(
          MAILBOX,
          yield* compose({
            from: "dora@customer.example",
            to: MAILBOX,
            subject: "Moved",
            messageId: "<dora-1@customer.example>",
            text: "Hello",
          }),
        )
        yield* eventually("the mail moved", () =>
          Effect.all([imap.flags(MAILBOX), imap.flags(MAILBOX, "Chorus")]).pipe(
            Effect.map(([inbox, moved]) =>
              inbox.size === 0 && moved.size === 1
            ),
          ))
        assert.lengthOf(yield* conversations(api), 1)
      }),
    60_000,
  )

  it.scopedLive(
    "a mail server not in permissions.net: the plugin refuses to start and says which",
    () =>
      Effect.gen(function* () {
        const { api } = yield* setup({ imapHost: "imap.undeclared.example" })
        yield* eventually("the plugin refused", () =>
          api("GET", "/plugins/email").pipe(Effect.map((r) =>
            /imap\.undeclared\.example:\d+ \(support IMAP\).*permissions\.net|permissions\.net.*imap\.undeclared\.example/
              .test(
                String((r.body as { lastError?: { message: string } }).lastError?.message ?? ""),
              )
          )))
        const status = (yield* api("GET", "/plugins/email")).body as { state: string }
        assert.notStrictEqual(status.state, "active")
      }),
    60_000,
  )
})

const freePort = () =>
  Effect.async<number>((resume) => {
    const probe = NodeNet.createServer()
    probe.listen(0, "127.0.0.1", () => {
      const port = (probe.address() as NodeNet.AddressInfo).port
      probe.close(() => resume(Effect.succeed(port)))
    })
  })

describe("e-mail channel (SMTP receiver)", () => {
  it.scopedLive(
    "mail delivered to the receiver: accepted only once stored, sender unverified by default, a repeat stored once, an unknown mailbox refused; the answer to our reply in the same conversation",
    () =>
      Effect.gen(function* () {
        const smtp = yield* mailFake({ user: MAILBOX, password: "smtp-secret" })
        const port = yield* freePort()
        const plugins = yield* tempDir("chorus-plugins-")
        installRepoPlugins(plugins, ["email"], { net: { email: ["127.0.0.1"] } })
        // No IMAP, so no IMAP password: only the SMTP one.
        const smtpOnly = "CHORUS_PLUGIN_EMAIL_SMTP_PASSWORD_SUPPORT"
        process.env[smtpOnly] = "smtp-secret"
        yield* Effect.addFinalizer(() => Effect.sync(() => delete process.env[smtpOnly]))
        const server = yield* startReplyServer({
          dataDir: yield* tempDir(),
          pluginsDir: plugins,
          pluginSettings: {
            email: {
              // No imap: this mailbox is fed by the receiver only.
              accounts: JSON.stringify([{
                name: "support",
                address: MAILBOX,
                smtp: { host: smtp.host, port: smtp.port, security: "none" },
              }]),
              receiver: `127.0.0.1:${port}`,
            },
          },
        })
        const api: Api = (method, path, body) =>
          request(`${server.url}/api/v1${path}`, {
            token: server.token,
            method,
            ...(body !== undefined ? { body } : {}),
          })
        // The sending side: an MTA delivering to us (no login, no TLS on loopback).
        const mta = nodemailer.createTransport({ host: "127.0.0.1", port, ignoreTLS: true })
        const deliver = (mail: Parameters<typeof mta.sendMail>[0]) =>
          Effect.promise(() =>
            mta.sendMail(mail).then(
              (info) => ({ ok: true as const, response: info.response }),
              (error: { responseCode?: number; response?: string }) => ({
                ok: false as const,
                code: error.responseCode,
                response: error.response,
              }),
            )
          )
        const mail = {
          from: { name: "Carla", address: "carla@customer.example" },
          to: MAILBOX,
          subject: "Invoice",
          messageId: "<carla-1@customer.example>",
          text: "Please send me the invoice.",
        }
        const accepted = yield* deliver(mail)
        assert.deepStrictEqual(accepted, { ok: true, response: "250 2.0.0 Ok: stored" })
        // Accepted means durable on the bus (`channels.receive`); the pipeline stores it next.
        yield* eventually("the conversation stored", () =>
          conversations(api).pipe(Effect.map((l) => l.length > 0)))
        const list = yield* conversations(api)
        assert.lengthOf(list, 1)
        const conversation = list[0]!.id
        assert.deepStrictEqual(
          (yield* messagesOf(api, conversation)).map((m) =>
            m.text
          ),
          ["Please send me the invoice."],
        )
        const contactId =
          ((yield* api("GET", `/conversations/${conversation}`)).body as { contactId: string })
            .contactId
        const identity = ((yield* api("GET", `/contacts/${contactId}`)).body as {
          identities: Array<{ email: string; verification: string }>
        }).identities[0]!
        assert.deepStrictEqual([identity.email, identity.verification], [
          "carla@customer.example",
          "claimed", // the core's word for an address recorded but not proven
        ])

        assert.isTrue((yield* deliver(mail)).ok)
        assert.lengthOf(yield* messagesOf(api, conversation), 1)

        const unknown = yield* deliver({ ...mail, to: "nobody@example.com" })
        assert.strictEqual(unknown.ok, false)
        assert.strictEqual((unknown as { code?: number }).code, 550)

        const posted = yield* api("POST", `/conversations/${conversation}/messages`, {
          text: "Here it is.",
        })
        const replyId = (posted.body as { id: string }).id
        yield* eventually("the reply sent", () => smtp.received.length === 1)
        const ours = smtp.received[0]!.parsed.messageId!
        assert.strictEqual(smtp.received[0]!.parsed.inReplyTo, "<carla-1@customer.example>")
        yield* eventually("the reply recorded as sent", () =>
          messagesOf(api, conversation).pipe(Effect.map((m) =>
            m.find((x) =>
              x.id === replyId
            )?.delivery.state === "sent"
          )))
        assert.isTrue(
          (yield* deliver({
            ...mail,
            subject: "Re: Invoice",
            messageId: "<carla-2@customer.example>",
            inReplyTo: ours,
            references: ["<carla-1@customer.example>", ours],
            text: "Thanks!",
          })).ok,
        )
        yield* eventually("the answer stored", () =>
          messagesOf(api, conversation).pipe(Effect.map((m) =>
            m.length === 3
          )))
        assert.lengthOf(yield* conversations(api), 1)
        assert.deepStrictEqual(
          (yield* messagesOf(api, conversation)).map((m) => m.text),
          ["Thanks!", "Here it is.", "Please send me the invoice."],
        )
      }),
    60_000,
  )
})
