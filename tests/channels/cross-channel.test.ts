/**
 * One person, four channels, one Chorus server (issue #9's "Shown by"): Anna writes on WhatsApp,
 * VK, Viber and e-mail, each through its real channel plugin (in worker threads of one server)
 * against its provider fake: the fake Graph API (WhatsAppFake), the fake VK API in callback mode
 * (VkFake), the fake Viber REST Bot API (ViberFake), a real IMAP server (Dovecot) and an SMTP
 * server that keeps what it receives (MailFake).
 *
 * Every provider delivers its inbound twice, as each does when unsure (Meta, VK and Viber
 * redeliver a webhook; a mail is delivered into the mailbox again): every message is stored once,
 * with its channel. An operator answers in each conversation through the API; each provider gets
 * exactly one outbound request of its own shape; the delivery states come back from each provider:
 * WhatsApp status webhooks (delivered, read), Viber receipts (delivered, seen → read), VK stays
 * `sent` (the plugin reads no receipts), e-mail `sent`, and a second e-mail reply bounced by the
 * customer's mail server (a DSN in the mailbox) `failed`.
 */
import { readFileSync } from "node:fs"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import MailComposer from "nodemailer/lib/mail-composer/index.js"
import { request } from "../api/ApiServer.ts"
import { eventually, startReplyServer } from "../api/ReplyServer.ts"
import { dovecot, dovecotPath } from "../support/Dovecot.ts"
import { mailFake, postfixBounce } from "../support/fakes/MailFake.ts"
import { viberFake } from "../support/fakes/ViberFake.ts"
import { vkFake } from "../support/fakes/VkFake.ts"
import { postWebhook, statusWebhook, whatsAppFake } from "../support/fakes/WhatsAppFake.ts"
import { installRepoPlugins } from "../support/PluginFixtures.ts"
import { tempDir } from "../support/TestDatabase.ts"

// WhatsApp (as tests/channels/whatsapp.test.ts): the business number and Anna's wa_id.
const WA_PHONE = "106540352242922"
const WA_TOKEN = "EAAG-test-access-token"
const WA_APP_SECRET = "test-app-secret"
const WA_CUSTOMER = "16505551234"
// VK (as tests/channels/vk.test.ts): the community and Anna's VK user id.
const VK_TOKEN = "vk1.a.community-token"
const VK_SECRET = "callback-secret-42"
const VK_GROUP = 123456789
const VK_USER = 2050001
// Viber (as tests/channels/viber.test.ts): the bot's token and Anna's Viber user id.
const VIBER_TOKEN = "445da6az1s345z78-dazcczb2542zv51a-e0vc5fva17480im9"
const VIBER_USER = "01234567890A="
// E-mail (as tests/channels/email.test.ts): the support mailbox and Anna's address.
const MAILBOX = "support@example.com"
const IMAP_PASSWORD = "imap-secret"
const SMTP_PASSWORD = "smtp-secret"
const ANNA_MAIL = "anna.kowalska@customer.example"

const SECRETS: Record<string, string> = {
  CHORUS_PLUGIN_WHATSAPP_ACCESS_TOKEN_MAIN: WA_TOKEN,
  CHORUS_PLUGIN_WHATSAPP_APP_SECRET: WA_APP_SECRET,
  CHORUS_PLUGIN_WHATSAPP_VERIFY_TOKEN: "test-verify-token",
  CHORUS_PLUGIN_WHATSAPP_TEMPLATES_TOKEN: "test-templates-token",
  CHORUS_PLUGIN_VK_TOKEN_MAIN: VK_TOKEN,
  CHORUS_PLUGIN_VK_SECRET_MAIN: VK_SECRET,
  CHORUS_PLUGIN_VK_CONFIRMATION_MAIN: "d8v2ve07",
  CHORUS_PLUGIN_VIBER_TOKEN_MAIN: VIBER_TOKEN,
  CHORUS_PLUGIN_EMAIL_IMAP_PASSWORD_SUPPORT: IMAP_PASSWORD,
  CHORUS_PLUGIN_EMAIL_SMTP_PASSWORD_SUPPORT: SMTP_PASSWORD,
}

const CHANNELS = ["email", "viber", "vk", "whatsapp"] as const
type Channel = typeof CHANNELS[number]

const fixtureText = (provider: string, name: string) =>
  readFileSync(new URL(`../fixtures/providers/${provider}/${name}.json`, import.meta.url), "utf8")

const setup = Effect.gen(function* () {
  const whatsapp = yield* whatsAppFake({ numbers: [{ phoneNumberId: WA_PHONE, token: WA_TOKEN }] })
  const vk = yield* vkFake([{ token: VK_TOKEN, groupId: VK_GROUP }])
  const viber = yield* viberFake([VIBER_TOKEN])
  const imap = yield* dovecot({ users: [{ user: MAILBOX, password: IMAP_PASSWORD }] })
  const smtp = yield* mailFake({ user: MAILBOX, password: SMTP_PASSWORD })

  const plugins = yield* tempDir("chorus-plugins-")
  installRepoPlugins(plugins, ["whatsapp", "vk", "viber", "email"], {
    net: {
      whatsapp: [new URL(whatsapp.apiRoot).host],
      vk: [new URL(vk.apiRoot).host],
      viber: [new URL(viber.apiRoot).host],
      email: ["127.0.0.1"],
    },
  })
  Object.assign(process.env, SECRETS)
  yield* Effect.addFinalizer(() =>
    Effect.sync(() => Object.keys(SECRETS).forEach((k) => delete process.env[k]))
  )
  const mailAccounts = [{
    name: "support",
    address: MAILBOX,
    displayName: "Example Support",
    imap: { host: imap.host, port: imap.port, security: "none" },
    smtp: { host: smtp.host, port: smtp.port, security: "none" },
  }]
  const server = yield* startReplyServer({
    dataDir: yield* tempDir(),
    pluginsDir: plugins,
    pluginSettings: {
      whatsapp: { accounts: `main=${WA_PHONE}`, apiRoot: whatsapp.apiRoot },
      vk: { accounts: "main", apiRoot: vk.apiRoot, longPollWait: 1 },
      viber: { apiRoot: viber.apiRoot },
      // Polling only every five minutes: the mails are seen through IMAP IDLE.
      email: { accounts: JSON.stringify(mailAccounts), pollSeconds: 300 },
    },
  })
  const api = (method: string, path: string, body?: unknown) =>
    request(`${server.url}/api/v1${path}`, {
      token: server.token,
      method,
      ...(body !== undefined ? { body } : {}),
    })
  // Viber's webhook needs the server's address, known only now: configured as an operator would.
  const configured = yield* api("PUT", "/plugins/viber/settings", {
    accounts: "main",
    webhookBaseUrl: server.url,
    senderName: "Support",
  })
  assert.strictEqual(configured.status, 200, JSON.stringify(configured.body))
  yield* eventually("the viber webhook set", () => viber.webhook(VIBER_TOKEN) !== undefined)
  yield* eventually(
    "all four plugins active",
    () =>
      api("GET", "/plugins").pipe(
        Effect.map((r) => {
          const list = (r.body as { plugins?: Array<{ id: string; state: string }> }).plugins ?? []
          return CHANNELS.every((id) => list.some((p) => p.id === id && p.state === "active"))
        }),
      ),
  )
  return { whatsapp, vk, viber, imap, smtp, server, api }
})

type Api = (method: string, path: string, body?: unknown) => ReturnType<typeof request>

const allConversations = (api: Api) =>
  api("GET", "/conversations").pipe(
    Effect.map((r) =>
      (r.body as { conversations?: Array<{ id: string; contactId: string }> }).conversations ?? []
    ),
  )

const messagesOf = (api: Api, conversation: string) =>
  api("GET", `/conversations/${conversation}/messages`).pipe(
    Effect.map((r) => (r.body as { messages: Array<any> }).messages),
  )

/** Every message of every conversation, with its conversation. */
const allMessages = (api: Api) =>
  Effect.gen(function* () {
    const out: Array<{ conversation: string; contactId: string; message: any }> = []
    for (const c of yield* allConversations(api)) {
      for (const message of yield* messagesOf(api, c.id)) {
        out.push({ conversation: c.id, contactId: c.contactId, message })
      }
    }
    return out
  })

const describeImap = dovecotPath() !== undefined ? describe : describe.skip
if (dovecotPath() === undefined) {
  console.warn(
    "tests/channels/cross-channel.test.ts: skipped, Dovecot is not installed " +
      "(apt-get install -y dovecot-imapd; CI installs it)",
  )
}

describeImap("cross-channel: one person on WhatsApp, VK, Viber and e-mail", () => {
  it.scopedLive(
    "every message stored once with its channel; one reply out per provider; delivery states back from each",
    () =>
      Effect.gen(function* () {
        const { whatsapp, vk, viber, imap, smtp, api, server } = yield* setup

        // 1. Anna writes on each channel; each provider delivers twice.
        // WhatsApp: the same signed webhook twice (Meta redelivers when unsure).
        const waInbound = whatsapp.fixture("text_message", {
          edit: (b) => {
            const value = b.entry[0].changes[0].value
            value.contacts[0].profile.name = "Anna Kowalska"
            value.messages[0].text.body = "Hi, Anna here, on WhatsApp"
          },
        })
        for (let i = 0; i < 2; i++) {
          const posted = yield* Effect.promise(() =>
            postWebhook(`${server.url}/plugins/whatsapp/webhook`, waInbound, {
              appSecret: WA_APP_SECRET,
            })
          )
          assert.strictEqual(posted.status, 200, posted.text)
        }
        // VK: the same Callback API event twice (VK repeats an event it got no `ok` for).
        const vkInbound = JSON.parse(fixtureText("vk", "message_new"))
        delete vkInbound.secret
        vkInbound.object.message.text = "Hi, Anna here, on VK"
        for (let i = 0; i < 2; i++) {
          assert.deepStrictEqual(
            yield* Effect.promise(() =>
              vk.postCallback(`${server.url}/plugins/vk/callback/main`, vkInbound, {
                secret: VK_SECRET,
              })
            ),
            { status: 200, text: "ok" },
          )
        }
        // Viber: the same signed callback twice (Viber retries one it got no 200 for).
        const viberInbound = fixtureText("viber", "message_text")
          .replace("John McClane", "Anna Kowalska")
          .replace("Hello! Where is my order?", "Hi, Anna here, on Viber")
        for (let i = 0; i < 2; i++) {
          assert.strictEqual(
            (yield* Effect.promise(() => viber.post(VIBER_TOKEN, viberInbound))).status,
            200,
          )
        }
        // E-mail: the same mail delivered into the mailbox twice (UIDs 1 and 2).
        const mail = yield* Effect.promise(() =>
          new MailComposer({
            from: { name: "Anna Kowalska", address: ANNA_MAIL },
            to: MAILBOX,
            subject: "My order",
            messageId: "<anna-1@customer.example>",
            text: "Hi, Anna here, by e-mail",
          }).compile().build()
        )
        yield* imap.append(MAILBOX, mail)
        yield* imap.append(MAILBOX, mail)
        // The plugin marks a mail \Seen only once it is handled (stored, or known as a repeat).
        yield* eventually("both mails handled", () =>
          imap.flags(MAILBOX).pipe(Effect.map((f) =>
            f.get(1)?.has("\\Seen") === true && f.get(2)?.has("\\Seen") === true
          )))

        // 2. Exactly four messages stored, one per channel, each in its own conversation.
        //
        // Four contacts, not one: Chorus merges contacts by itself only when a new *verified*
        // signal equals a verified signal of another contact (docs/identity.md). Anna's verified
        // signals here are her WhatsApp number (+16505551234) and her e-mail address; VK and
        // Viber give only their own user ids. No signal is shared, so each channel's identity is
        // a contact of its own (and gets its own conversation); nothing is merged, and there is
        // no same-phone/same-e-mail evidence for a suggestion either.
        yield* eventually("four conversations, one message each", () =>
          allMessages(api).pipe(Effect.map((all) =>
            all.length === 4 && new Set(all.map((m) =>
                m.conversation
              )).size === 4
          )))
        // The redeliveries were all answered by now (VK and Viber answer only once durable, the
        // repeat mail is \Seen): give any straggler a moment, then count again.
        yield* Effect.sleep("500 millis")
        const inbound = yield* allMessages(api)
        assert.lengthOf(inbound, 4)
        assert.isTrue(inbound.every((m) =>
          m.message.direction === "in"
        ))
        assert.lengthOf(
          new Set(inbound.map((m) =>
            m.contactId
          )),
          4,
          "four separate contacts",
        )
        const byChannel = new Map(inbound.map((m) => [m.message.channel as Channel, m]))
        assert.deepStrictEqual([...byChannel.keys()].sort(), [...CHANNELS])
        assert.deepStrictEqual(
          Object.fromEntries(CHANNELS.map((c) => [c, byChannel.get(c)!.message.text])),
          {
            email: "Hi, Anna here, by e-mail",
            viber: "Hi, Anna here, on Viber",
            vk: "Hi, Anna here, on VK",
            whatsapp: "Hi, Anna here, on WhatsApp",
          },
        )
        assert.strictEqual(
          byChannel.get("whatsapp")!.message.externalId,
          waInbound.entry[0].changes[0].value.messages[0].id,
        )
        assert.strictEqual(byChannel.get("vk")!.message.externalId, "1517")
        assert.strictEqual(byChannel.get("viber")!.message.externalId, "5741311803571721087")
        assert.strictEqual(byChannel.get("email")!.message.externalId, "<anna-1@customer.example>")
        // The conversation filter by channel agrees.
        for (const channel of CHANNELS) {
          const list = (yield* api("GET", `/conversations?channel=${channel}`)).body as {
            conversations: Array<{ id: string }>
          }
          assert.deepStrictEqual(list.conversations.map((c) => c.id), [
            byChannel.get(channel)!.conversation,
          ])
        }

        // 3. The operator answers in each conversation.
        const conversationOf = (channel: Channel) => byChannel.get(channel)!.conversation
        const reply = (channel: Channel, text: string) =>
          api("POST", `/conversations/${conversationOf(channel)}/messages`, { text }).pipe(
            Effect.map((r) => {
              assert.strictEqual(r.status, 202, JSON.stringify(r.body))
              return (r.body as { id: string }).id
            }),
          )
        const replyOf = (channel: Channel, id: string) =>
          messagesOf(api, conversationOf(channel)).pipe(
            Effect.map((m) => m.find((x) => x.id === id)),
          )
        const settled = (channel: Channel, id: string, state: string) =>
          eventually(
            `the ${channel} reply ${state}`,
            () => replyOf(channel, id).pipe(Effect.map((m) => m?.delivery.state === state)),
          ).pipe(Effect.zipRight(replyOf(channel, id)), Effect.map((m) => m!))

        const replies = {} as Record<Channel, string>
        for (const channel of CHANNELS) {
          replies[channel] = yield* reply(channel, `Hello Anna (${channel})`)
        }
        const sent = {} as Record<Channel, any>
        for (const channel of CHANNELS) {
          sent[channel] = yield* settled(channel, replies[channel], "sent")
          // Out on the channel she wrote from (her only identity in that contact).
          assert.strictEqual(sent[channel].channel, channel)
          assert.strictEqual(sent[channel].channelReason, "last_used")
          assert.strictEqual(sent[channel].identityId, byChannel.get(channel)!.message.identityId)
        }

        // Each provider got exactly one outbound request, of its own shape.
        const waPosts = whatsapp.calls().filter((c) =>
          c.method === "POST" && c.path.endsWith("/messages")
        )
        assert.lengthOf(waPosts, 1)
        assert.lengthOf(whatsapp.sent(WA_PHONE), 1)
        const waSent = whatsapp.sent(WA_PHONE)[0]!
        assert.deepStrictEqual(waSent.body, {
          messaging_product: "whatsapp",
          recipient_type: "individual",
          to: WA_CUSTOMER,
          type: "text",
          text: { body: "Hello Anna (whatsapp)" },
        })
        assert.strictEqual(sent.whatsapp.externalId, waSent.wamid)

        assert.lengthOf(vk.calls("messages.send"), 1)
        const [vkSent] = vk.sent()
        assert.lengthOf(vk.sent(), 1)
        assert.strictEqual(vkSent!.peer_id, VK_USER)
        assert.strictEqual(vkSent!.message, "Hello Anna (vk)")
        assert.isAbove(vkSent!.random_id, 0)
        assert.strictEqual(sent.vk.externalId, String(vkSent!.id))

        assert.lengthOf(viber.calls("send_message"), 1)
        const [viberSent] = viber.sent()
        assert.lengthOf(viber.sent(), 1)
        assert.deepStrictEqual(
          [
            viberSent!.receiver,
            viberSent!.body["type"],
            viberSent!.body["text"],
            viberSent!.body["sender"],
          ],
          [VIBER_USER, "text", "Hello Anna (viber)", { name: "Support" }],
        )
        assert.strictEqual(sent.viber.externalId, viberSent!.message_token)

        assert.lengthOf(smtp.attempts.filter((a) => a.stage === "data"), 1)
        assert.lengthOf(smtp.received, 1)
        const mailSent = smtp.received[0]!
        assert.deepStrictEqual(mailSent.envelope, { from: MAILBOX, to: [ANNA_MAIL] })
        assert.strictEqual(mailSent.parsed.subject, "Re: My order")
        assert.strictEqual(mailSent.parsed.inReplyTo, "<anna-1@customer.example>")
        assert.match(mailSent.parsed.text ?? "", /Hello Anna \(email\)/)
        assert.strictEqual(sent.email.externalId, mailSent.parsed.messageId)

        // 4. Delivery states come back from each provider.
        // WhatsApp: status webhooks, delivered then read.
        const waStatus = (status: "delivered" | "read") =>
          Effect.promise(() =>
            postWebhook(
              `${server.url}/plugins/whatsapp/webhook`,
              statusWebhook(WA_PHONE, { wamid: waSent.wamid, status, recipient: WA_CUSTOMER }),
              { appSecret: WA_APP_SECRET },
            )
          )
        assert.strictEqual((yield* waStatus("delivered")).status, 200)
        yield* settled("whatsapp", replies.whatsapp, "delivered")
        assert.strictEqual((yield* waStatus("read")).status, 200)
        yield* settled("whatsapp", replies.whatsapp, "read")

        // Viber: the `delivered` and `seen` callbacks for the reply's message_token.
        const viberReceipt = (event: "delivered" | "seen") =>
          Effect.promise(() =>
            viber.post(VIBER_TOKEN, fixtureText("viber", event), {
              messageToken: viberSent!.message_token,
            })
          )
        assert.strictEqual((yield* viberReceipt("delivered")).status, 200)
        yield* settled("viber", replies.viber, "delivered")
        assert.strictEqual((yield* viberReceipt("seen")).status, 200)
        yield* settled("viber", replies.viber, "read")

        // E-mail: a second reply, bounced by Anna's mail server (a DSN in the mailbox): failed.
        const bounced = yield* reply("email", "One more thing, Anna")
        const bouncedSent = yield* settled("email", bounced, "sent")
        assert.lengthOf(smtp.received, 2)
        yield* imap.append(
          MAILBOX,
          postfixBounce(MAILBOX, ANNA_MAIL, bouncedSent.externalId, "Re: My order"),
        )
        const failed = yield* settled("email", bounced, "failed")
        assert.strictEqual(failed.delivery.error.code, "5.1.1")

        // 5. The final states, read back through the messages API; still the four inbound
        // messages (the bounce is no message of Anna's), one outbound request per provider
        // for the first replies.
        const final = yield* allMessages(api)
        const state = (id: string) => final.find((m) => m.message.id === id)!.message.delivery.state
        assert.deepStrictEqual(
          {
            whatsapp: state(replies.whatsapp),
            viber: state(replies.viber),
            vk: state(replies.vk),
            email: state(replies.email),
            emailBounced: state(bounced),
          },
          { whatsapp: "read", viber: "read", vk: "sent", email: "sent", emailBounced: "failed" },
        )
        const incoming = final.filter((m) => m.message.direction === "in")
        assert.lengthOf(incoming, 4)
        assert.deepStrictEqual(incoming.map((m) => m.message.channel).sort(), [...CHANNELS])
        assert.lengthOf(yield* allConversations(api), 4)
        assert.lengthOf(whatsapp.sent(WA_PHONE), 1)
        assert.lengthOf(vk.sent(), 1)
        assert.lengthOf(viber.sent(), 1)
      }),
    120_000,
  )
})
