/**
 * Viber bots as a Chorus channel (Viber REST Bot API).
 *
 * - One channel account per bot: setting `accounts` ("support"), each with the secret
 *   `TOKEN_<NAME>` (the bot's authentication token). Replies are signed `senderName`.
 * - Inbound by webhook only (Viber has no polling): on start each bot's webhook is set to
 *   `<webhookBaseUrl>/plugins/viber/webhook/<account>`. Every callback's
 *   `X-Viber-Content-Signature` (HMAC-SHA256 of the raw body with the token) is checked; a bad
 *   one is answered 401 and nothing is stored. A message is answered 200 only once
 *   `chorus.channels.receive` resolved, a receipt once `chorus.channels.status` did.
 * - Pictures, videos and files are downloaded into the attachment store; stickers, contacts,
 *   locations become words. `delivered`, `seen` and `failed` become delivery states of the reply
 *   with that `message_token`; `unsubscribed` is remembered (a reply fails at once, unreachable).
 * - Outbound `send_message`: text split at 7,000 characters, pictures (JPEG/PNG up to 1 MB) and
 *   files by URL, keyboards (reply and open-url buttons); parts already sent are remembered so a
 *   retry never repeats them; Viber's limit of 100 messages an hour to a person who has not
 *   replied is kept before Viber has to refuse.
 */
import {
  eventOf,
  failureOf,
  keyboardOf,
  parseViber,
  PICTURE_MAX_BYTES,
  signatureOf,
  signatureValid,
  splitText,
  UNANSWERED_LIMIT,
  unansweredNext,
} from "./wire.mjs"

const ACCOUNT = /^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$/
const PICTURE = /^image\/(jpeg|png)$/
const EVENT_TYPES = [
  "delivered",
  "seen",
  "failed",
  "subscribed",
  "unsubscribed",
  "conversation_started",
]
const MEDIA_TTL_SECONDS = 7 * 24 * 3600

/** The URL of an attachment Chorus only links to (a string, or a URL object in-process). */
const linkOf = (a) =>
  typeof a?.url === "string" ? a.url : typeof a?.url?.href === "string" ? a.url.href : undefined

let stop = async () => {}
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

export default {
  async activate(chorus) {
    const settings = chorus.settings
    const apiRoot = String(settings.apiRoot).replace(/\/+$/, "")
    const base = String(settings.webhookBaseUrl ?? "").replace(/\/+$/, "")
    const sender = {
      name: String(settings.senderName ?? "").slice(0, 28) || "Chorus",
      ...(settings.senderAvatar ? { avatar: String(settings.senderAvatar) } : {}),
    }
    const names = String(settings.accounts ?? "").split(",").map((a) => a.trim()).filter((a) =>
      a !== ""
    )
    const received = chorus.metrics.counter("callbacks_received", "Viber callbacks taken")
    const sentParts = chorus.metrics.counter("messages_sent", "Viber messages sent (parts)")

    /** @type {Map<string, { name: string, token: string }>} */
    const accounts = new Map()
    for (const name of names) {
      if (!ACCOUNT.test(name)) {
        throw new Error(`account name ${JSON.stringify(name)}: letters, digits, '_' or '-' only`)
      }
      const token = await chorus.secrets.get(`TOKEN_${name.toUpperCase().replace(/-/g, "_")}`)
      accounts.set(name, { name, token })
    }
    if (accounts.size === 0) chorus.log.warn("no Viber bots configured (setting accounts)")
    if (accounts.size > 0 && !/^https?:\/\//.test(base)) {
      throw new Error("Viber needs the setting webhookBaseUrl (e.g. https://chat.example.com)")
    }

    /** POST a Viber API method; resolves the parsed answer (any status), rejects on network/5xx. */
    const call = async (account, method, body) => {
      const response = await chorus.http.fetch(`${apiRoot}/pa/${method}`, {
        method: "POST",
        headers: { "content-type": "application/json", "x-viber-auth-token": account.token },
        body: new TextEncoder().encode(JSON.stringify(body)),
        timeoutMs: 20_000,
      })
      if (response.status !== 200) throw new Error(`Viber answered HTTP ${response.status}`)
      return parseViber(response.text())
    }

    const unsubscribedKey = (account, user) => `unsubscribed:${account}:${user}`
    const unansweredKey = (account, user) => `unanswered:${account}:${user}`

    /** A stored attachment for a file of a message, or the words saying why there is none. */
    const download = async (file) => {
      let response
      try {
        response = await chorus.http.fetch(file.url, { timeoutMs: 60_000 })
      } catch (error) {
        if (error?.name === "PermissionDenied") {
          return { note: `[${file.name}: its host is not in permissions.net]` }
        }
        throw error
      }
      if (response.status >= 500) throw new Error(`download answered ${response.status}`)
      if (response.status !== 200) {
        return { note: `[${file.name} could not be fetched from Viber: HTTP ${response.status}]` }
      }
      try {
        return { attachment: await chorus.attachments.put(response.body, file) }
      } catch (error) {
        if (error?.name === "AttachmentRefused") {
          return { note: `[${file.name} not accepted: ${error.message}]` }
        }
        throw error
      }
    }

    // -- inbound: the webhook --------------------------------------------------------------------
    await chorus.routes.handle("POST", "/plugins/viber/webhook/{account}", async (request) => {
      const account = accounts.get(request.params.account)
      if (account === undefined) return { status: 404, body: { error: "no such account" } }
      const signature = request.headers["x-viber-content-signature"] ?? request.query["sig"]
      if (!(await signatureValid(request.body, signature, account.token))) {
        return { status: 401, body: { error: "bad signature" } }
      }
      let event
      try {
        event = parseViber(request.text())
      } catch {
        return { status: 400, body: { error: "not JSON" } }
      }
      const got = eventOf(account.name, event)
      received.inc(1, { account: account.name, event: String(event?.event) })
      if (got.inbound !== undefined) {
        const attachments = []
        const notes = []
        for (const file of got.files) {
          const one = await download(file)
          if (one.attachment) attachments.push(one.attachment)
          else notes.push(one.note)
        }
        const text = [got.inbound.text, ...notes].filter((t) => t !== "").join("\n")
        await chorus.channels.receive("viber", { ...got.inbound, text, attachments })
        const user = got.inbound.sender.externalId
        // A message subscribes the person and answers us: both limits start again.
        await chorus.storage.kv.delete(unsubscribedKey(account.name, user))
        await chorus.storage.kv.delete(unansweredKey(account.name, user))
      } else if (got.status !== undefined) {
        await chorus.channels.status("viber", got.status)
      } else if (got.unsubscribed !== undefined) {
        await chorus.storage.kv.set(unsubscribedKey(account.name, got.unsubscribed), Date.now())
      } else if (got.subscribed !== undefined) {
        await chorus.storage.kv.delete(unsubscribedKey(account.name, got.subscribed))
      } else if (got.started !== undefined) {
        // Not a message (the person only opened the chat): nothing is stored. Viber shows the
        // answer's message, if any, as the one welcome message a bot may send before a
        // subscription.
        const welcome = String(settings.welcomeText ?? "")
        if (welcome !== "") {
          return { status: 200, body: { sender, type: "text", text: welcome.slice(0, 7000) } }
        }
      }
      return { status: 200, body: { status: 0 } }
    })

    // -- pictures for Viber: a signed path ending in the file's extension ------------------------
    // Viber takes a picture by URL only when its last path segment ends in .jpg/.jpeg/.png; the
    // attachment store's signed links end in the storage key, so pictures are served here.
    const mediaSignature = (account, key, expires) =>
      signatureOf(`chorus-viber-media:${key}:${expires}`, account.token)
    await chorus.routes.handle(
      "GET",
      "/plugins/viber/media/{account}/{key}/{expires}/{signature}/{name}",
      async (request) => {
        const { account: name, key, expires, signature } = request.params
        const account = accounts.get(name)
        if (
          account === undefined || !(Number(expires) * 1000 > Date.now()) ||
          signature !== (await mediaSignature(account, key, expires))
        ) {
          return { status: 403, body: "expired or not signed" }
        }
        const file = await chorus.attachments.get(key).catch(() => undefined)
        if (file === undefined) return { status: 404, body: "no such file" }
        return { status: 200, headers: { "content-type": file.mimeType }, body: file.bytes }
      },
    )
    const pictureUrl = async (account, file) => {
      const expires = String(Math.floor(Date.now() / 1000) + MEDIA_TTL_SECONDS)
      const ext = file.mimeType === "image/png" ? "png" : "jpg"
      const signature = await mediaSignature(account, file.storageKey, expires)
      return `${base}/plugins/viber/media/${account.name}/${
        encodeURIComponent(file.storageKey)
      }/${expires}/${signature}/picture.${ext}`
    }

    // -- the webhook, set once this version serves the route -------------------------------------
    let stopped = false
    const setWebhook = async (account) => {
      for (let attempt = 1; !stopped; attempt++) {
        try {
          const answer = await call(account, "set_webhook", {
            url: `${base}/plugins/viber/webhook/${account.name}`,
            event_types: EVENT_TYPES,
            send_name: true,
            send_photo: true,
          })
          if (answer.status === 0) {
            chorus.log.info("viber webhook set", { account: account.name })
            return
          }
          chorus.log.error("viber refused set_webhook", {
            account: account.name,
            status: answer.status,
            message: answer.status_message,
          })
          if (failureOf(answer).retryable === false) return
        } catch (error) {
          chorus.log.warn("viber set_webhook failed; retrying", {
            account: account.name,
            error: String(error?.message ?? error),
          })
        }
        await sleep(Math.min(60_000, 500 * 2 ** Math.min(attempt, 7)))
      }
    }
    // Viber calls the webhook while set_webhook is in progress, and the route is served only
    // once activate has resolved: so it is set right after.
    const setting = []
    setTimeout(() => {
      for (const account of accounts.values()) setting.push(setWebhook(account))
    }, 0)

    // -- outbound --------------------------------------------------------------------------------
    await chorus.channels.register("viber", {
      async send(message) {
        const account = accounts.get(message.account)
        if (account === undefined) {
          return {
            ok: false,
            retryable: false,
            code: "no_account",
            reason: `no Viber bot ${message.account} is configured (setting accounts)`,
          }
        }
        const receiver = message.recipient.externalId
        if ((await chorus.storage.kv.get(unsubscribedKey(account.name, receiver))) != null) {
          return {
            ok: false,
            retryable: false,
            code: "unsubscribed",
            reason: "the person unsubscribed from this bot",
            unreachable: true,
          }
        }
        const keyboard = keyboardOf(message.buttons)
        if (keyboard.refused !== undefined) {
          return {
            ok: false,
            retryable: false,
            code: "keyboard_too_large",
            reason: keyboard.refused,
          }
        }
        /** @type {Array<() => Promise<object>>} */
        const steps = []
        /** Files with neither a stored copy nor a usable link: named in the text. */
        const unlinked = []
        for (const file of message.attachments) {
          if (typeof file?.storageKey === "string") {
            steps.push(async () => {
              const size = Number(file.size ?? (await chorus.attachments.get(file.storageKey)).size)
              if (PICTURE.test(String(file.mimeType)) && size <= PICTURE_MAX_BYTES) {
                return { type: "picture", text: "", media: await pictureUrl(account, file) }
              }
              const path = await chorus.attachments.link(file.storageKey, MEDIA_TTL_SECONDS)
              return {
                type: "file",
                media: `${base}${path}`,
                size,
                file_name: String(file.name ?? "file").slice(0, 255),
              }
            })
          } else if (linkOf(file) !== undefined) {
            steps.push(() =>
              Promise.resolve({
                type: "file",
                media: linkOf(file),
                size: Number(file.size ?? 0),
                file_name: String(file.name ?? "file"),
              })
            )
          } else {
            unlinked.push(`[${file?.name ?? "file"}]`)
          }
        }
        const text = [message.text ?? "", ...unlinked].filter((t) => t !== "").join("\n")
        if (text !== "") {
          for (const part of splitText(text)) {
            steps.push(() => Promise.resolve({ type: "text", text: part }))
          }
        }
        if (steps.length === 0) {
          return { ok: false, retryable: false, code: "empty", reason: "nothing to send" }
        }

        // Parts already sent (a retry after a partial failure) are not sent again.
        const progressKey = `sent:${message.id}`
        const progress = (await chorus.storage.kv.get(progressKey)) ?? { parts: 0, tokens: [] }
        for (let i = progress.parts; i < steps.length; i++) {
          // Viber: at most 100 messages an hour to a person who has not replied.
          const limit = unansweredNext(
            await chorus.storage.kv.get(unansweredKey(account.name, receiver)),
            Date.now(),
          )
          if (!limit.allowed) {
            return {
              ok: false,
              retryable: false,
              code: "unanswered_limit",
              reason:
                `Viber allows ${UNANSWERED_LIMIT} messages an hour to a person who has not replied; wait for their answer`,
            }
          }
          let answer
          try {
            const body = await steps[i]()
            const last = i === steps.length - 1
            answer = await call(account, "send_message", {
              receiver,
              sender,
              ...(last && keyboard.tracking !== undefined
                ? { tracking_data: keyboard.tracking }
                : {}),
              ...body,
              ...(last && keyboard.keyboard !== undefined ? { keyboard: keyboard.keyboard } : {}),
            })
          } catch (error) {
            if (error?.name === "AttachmentMissing") {
              return { ok: false, retryable: false, code: error.name, reason: error.message }
            }
            return failureOf(error)
          }
          if (answer.status !== 0) return failureOf(answer)
          await chorus.storage.kv.set(unansweredKey(account.name, receiver), limit.counter)
          progress.parts = i + 1
          progress.tokens.push(String(answer.message_token))
          await chorus.storage.kv.set(progressKey, progress)
          sentParts.inc(1, { account: account.name })
        }
        return { ok: true, externalId: progress.tokens.at(-1) }
      },
    })

    stop = async () => {
      stopped = true
      await Promise.race([Promise.allSettled(setting), sleep(1_000)])
    }
  },
  async deactivate() {
    await stop()
  },
}
