/**
 * WhatsApp Cloud API (Meta's Graph API) as a Chorus channel.
 *
 * - One channel account per business phone number: setting `accounts`
 *   ("support=106540352242922,sales=…", name = phone number id), each with the secret
 *   `ACCESS_TOKEN_<NAME>`; the Meta app's `APP_SECRET` (webhook signatures) and `VERIFY_TOKEN`
 *   (the subscription handshake) are shared by all numbers of the app.
 * - Inbound by webhook (`/plugins/whatsapp/webhook`): every POST is checked against
 *   `X-Hub-Signature-256` before anything is read; media are fetched through the Graph API
 *   media endpoint and kept in the attachment store; the 200 goes back only once every message
 *   is durable, so Meta delivers again after a crash and the wamid de-duplicates it. Statuses
 *   (delivered, read, failed) go to `chorus.channels.status`.
 * - The customer service window: the time of each customer's last message is kept per number
 *   (key-value store, survives restarts); a free-form reply outside 24 hours is refused with
 *   `reply_window_closed` without calling Meta. Templates go out through
 *   `POST /plugins/whatsapp/templates/send` (README).
 * - Outbound: text split at 4,096 characters, media uploaded to `/{phone-number-id}/media` and
 *   sent by id (no public URL of this server needed), buttons as reply buttons or a list,
 *   Graph API errors classified (send.mjs); parts already sent are not repeated on a retry.
 *   An operator typing marks the customer's latest message read with WhatsApp's typing
 *   indicator. A customer behind a username is known and answered by their business-scoped
 *   user id.
 *
 * Every call to Meta goes through `chorus.http`, checked against `permissions.net`.
 */
import {
  BUTTON_BODY_LIMIT,
  CAPTION_LIMIT,
  captionable,
  failureOf,
  interactiveOf,
  mediaKindOf,
  multipartBody,
  splitText,
  windowClosed,
} from "./send.mjs"
import { BSUID, e164, parseWebhook, signatureValid } from "./webhook.mjs"

const ACCOUNT = /^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$/
const PHONE_NUMBER_ID = /^\d{1,30}$/
const TEMPLATE_NAME = /^[a-z0-9_]{1,512}$/
const LANGUAGE = /^[a-z]{2,3}(_[A-Za-z]{2,4})?$/

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
const decoder = new TextDecoder()

/** Parse `accounts`: "name=phoneNumberId, …". */
const accountsOf = (setting) =>
  String(setting ?? "").split(",").map((a) => a.trim()).filter((a) => a !== "").map((entry) => {
    const [name, phoneNumberId, extra] = entry.split("=").map((p) => p.trim())
    if (
      extra !== undefined || !ACCOUNT.test(name ?? "") || !PHONE_NUMBER_ID.test(phoneNumberId ?? "")
    ) {
      throw new Error(
        `account ${JSON.stringify(entry)}: expected name=phoneNumberId, e.g. ` +
          `"support=106540352242922" (name: letters, digits, '_' or '-'; the id: Meta's phone ` +
          "number id, digits)",
      )
    }
    return { name, phoneNumberId }
  })

const secretName = (prefix, name) => `${prefix}${name.toUpperCase().replace(/-/g, "_")}`

/** SHA-256 of bytes, hex and base64 (Meta's media `sha256` has been seen in both). */
const digestForms = async (bytes) => {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes))
  const hex = [...digest].map((b) => b.toString(16).padStart(2, "0")).join("")
  const base64 = btoa(String.fromCharCode(...digest))
  return [hex, base64]
}

/** Spaces a number's requests to its messages-per-second limit (parts count one each). */
const pacer = (perSecond) => {
  const gap = 1000 / perSecond
  let next = 0
  return async () => {
    const now = Date.now()
    const at = Math.max(now, next)
    next = at + gap
    if (at > now) await sleep(at - now)
  }
}

export default {
  async activate(chorus) {
    const settings = chorus.settings
    const apiRoot = String(settings.apiRoot).replace(/\/+$/, "")
    const apiVersion = String(settings.apiVersion)
    const perSecond = Number(settings.messagesPerSecond)
    const received = chorus.metrics.counter("messages_received", "WhatsApp messages handed in")
    const sentParts = chorus.metrics.counter("messages_sent", "WhatsApp messages sent (parts)")
    const statuses = chorus.metrics.counter("statuses_received", "WhatsApp statuses handed in")
    const rejected = chorus.metrics.counter(
      "webhooks_rejected",
      "WhatsApp webhook POSTs refused (bad signature, not JSON)",
    )
    const unknownNumber = chorus.metrics.counter(
      "unknown_number",
      "Webhook items for a phone number id no account names",
    )

    /** @type {Map<string, { name: string, phoneNumberId: string, token: string, pace: () => Promise<void> }>} */
    const accounts = new Map()
    const byPhone = new Map()
    for (const { name, phoneNumberId } of accountsOf(settings.accounts)) {
      if (accounts.has(name) || byPhone.has(phoneNumberId)) {
        throw new Error(`account ${name}=${phoneNumberId} is listed twice`)
      }
      const token = await chorus.secrets.get(secretName("ACCESS_TOKEN_", name))
      const account = { name, phoneNumberId, token, pace: pacer(perSecond) }
      accounts.set(name, account)
      byPhone.set(phoneNumberId, account)
    }
    let appSecret
    let verifyToken
    if (accounts.size === 0) {
      chorus.log.warn("no WhatsApp accounts configured (setting accounts)")
    } else {
      appSecret = await chorus.secrets.get("APP_SECRET")
      verifyToken = await chorus.secrets.get("VERIFY_TOKEN")
    }
    const templatesToken = await chorus.secrets.get("TEMPLATES_TOKEN").catch(() => undefined)

    /** One Graph API request: `{ status, body }`, or `{ status: undefined, error }` if no answer. */
    const graph = async (account, method, path, init = {}) => {
      const headers = { authorization: `Bearer ${account.token}` }
      let body
      if (init.json !== undefined) {
        headers["content-type"] = "application/json"
        body = JSON.stringify(init.json)
      } else if (init.multipart !== undefined) {
        headers["content-type"] = init.multipart.contentType
        body = init.multipart.body
      }
      try {
        const response = await chorus.http.fetch(`${apiRoot}/${apiVersion}/${path}`, {
          method,
          headers,
          ...(body !== undefined ? { body } : {}),
          timeoutMs: init.timeoutMs ?? 15_000,
        })
        let parsed
        try {
          parsed = response.json()
        } catch {
          parsed = undefined
        }
        return { status: response.status, body: parsed }
      } catch (error) {
        return { status: undefined, error }
      }
    }

    const windowKey = (account, waId) => `window:${account}:${waId}`
    const latestKey = (account, waId) => `latest:${account}:${waId}`

    // -- inbound -----------------------------------------------------------------------------------

    /** A stored attachment for a message's media, or the words saying why there is none. */
    const fetchMedia = async (account, file) => {
      const info = await graph(account, "GET", encodeURIComponent(file.mediaId))
      if (info.status === undefined || info.status >= 500 || info.status === 429) {
        // Meta is down or slow: the webhook is answered 500 and Meta delivers it again.
        throw new Error(
          `media ${file.mediaId}: ${info.error?.message ?? `Graph API answered ${info.status}`}`,
        )
      }
      if (info.status !== 200 || typeof info.body?.url !== "string") {
        const why = info.body?.error?.message ?? `answered ${info.status}`
        return { note: `[${file.name} could not be fetched from WhatsApp: ${why}]` }
      }
      const response = await chorus.http.fetch(info.body.url, {
        headers: { authorization: `Bearer ${account.token}` },
        timeoutMs: 60_000,
      })
      if (response.status >= 500 || response.status === 429) {
        throw new Error(`media ${file.mediaId}: download answered ${response.status}`)
      }
      if (response.status !== 200) {
        return {
          note:
            `[${file.name} could not be fetched from WhatsApp: download answered ${response.status}]`,
        }
      }
      const expected = info.body.sha256 ?? file.sha256
      if (typeof expected === "string" && !(await digestForms(response.body)).includes(expected)) {
        throw new Error(`media ${file.mediaId}: the download does not match its sha256`)
      }
      try {
        const mimeType = String(info.body.mime_type ?? file.mimeType).split(";")[0].trim()
        return {
          attachment: await chorus.attachments.put(response.body, { name: file.name, mimeType }),
        }
      } catch (error) {
        if (error.name === "AttachmentRefused") {
          return { note: `[${file.name} not accepted: ${error.message}]` }
        }
        throw error
      }
    }

    /** Hand one customer message in; resolves once it is durable. */
    const receive = async (account, item) => {
      const attachments = []
      const notes = []
      for (const file of item.files) {
        const got = await fetchMedia(account, file)
        if (got.attachment) attachments.push(got.attachment)
        else notes.push(got.note)
      }
      const text = [item.inbound.text, ...notes].filter((t) => t !== "").join("\n")
      await chorus.channels.receive("whatsapp", {
        ...item.inbound,
        account: account.name,
        text,
        attachments,
      })
      received.inc(1, { account: account.name })
      // The reply window runs from the customer's latest message (by Meta's clock).
      const key = windowKey(account.name, item.inbound.sender.externalId)
      const at = Math.min(item.inbound.sentAt ?? Date.now(), Date.now())
      const before = await chorus.storage.kv.get(key)
      if (typeof before !== "number" || before <= at) {
        await chorus.storage.kv.set(key, at)
        // The message an operator's typing marks read (WhatsApp's typing indicator needs one).
        await chorus.storage.kv.set(
          latestKey(account.name, item.inbound.sender.externalId),
          item.inbound.externalId,
        )
      }
    }

    await chorus.routes.handle("GET", "/plugins/whatsapp/webhook", (request) => {
      // Meta's subscription handshake: echo the challenge if the verify token is ours.
      const { "hub.mode": mode, "hub.verify_token": token, "hub.challenge": challenge } =
        request.query
      if (verifyToken === undefined) {
        return { status: 503, body: { error: "no WhatsApp account is configured" } }
      }
      if (mode !== "subscribe" || token !== verifyToken || typeof challenge !== "string") {
        return { status: 403, body: { error: "wrong verify token" } }
      }
      return { status: 200, headers: { "content-type": "text/plain" }, body: challenge }
    })

    await chorus.routes.handle("POST", "/plugins/whatsapp/webhook", async (request) => {
      if (appSecret === undefined) {
        return { status: 503, body: { error: "no WhatsApp account is configured" } }
      }
      if (
        !(await signatureValid(appSecret, request.body, request.headers["x-hub-signature-256"]))
      ) {
        rejected.inc(1, { reason: "signature" })
        return { status: 401, body: { error: "bad or missing X-Hub-Signature-256" } }
      }
      let parsed
      try {
        parsed = parseWebhook(JSON.parse(decoder.decode(request.body)))
      } catch (error) {
        rejected.inc(1, { reason: "body" })
        return { status: 400, body: { error: String(error.message ?? error) } }
      }
      for (const reason of parsed.skipped) {
        // A message nobody can be named for is the only message skipped: say it loudly.
        if (reason.startsWith("message ")) {
          chorus.log.error("whatsapp message not stored", { reason })
        } else chorus.log.debug("whatsapp webhook item skipped", { reason })
      }
      for (const item of parsed.messages) {
        const account = byPhone.get(item.phoneNumberId)
        if (account === undefined) {
          // Another system's number on the same Meta app: answered 200 (Meta would retry for a
          // week), but said loudly.
          unknownNumber.inc(1, { phoneNumberId: item.phoneNumberId })
          chorus.log.error("whatsapp message for a number no account names; not stored", {
            phoneNumberId: item.phoneNumberId,
            wamid: item.inbound.externalId,
          })
          continue
        }
        await receive(account, item)
      }
      for (const item of parsed.statuses) {
        const account = byPhone.get(item.phoneNumberId)
        if (account === undefined) {
          unknownNumber.inc(1, { phoneNumberId: item.phoneNumberId })
          continue
        }
        const result = await chorus.channels.status("whatsapp", {
          account: account.name,
          ...item.status,
        })
        statuses.inc(1, { account: account.name, state: item.status.state })
        if (!result.found) {
          chorus.log.debug("whatsapp status for a message Chorus did not send", {
            wamid: item.status.externalId,
          })
        }
      }
      // Only a 200 tells Meta it may forget the delivery: everything above is durable.
      return { status: 200, body: { ok: true } }
    })

    // -- outbound ----------------------------------------------------------------------------------

    /** POST /{phone-number-id}/messages, paced; the wamid, or a failure result. */
    const post = async (account, to, content) => {
      await account.pace()
      // A customer known only by a business-scoped user id (a username) is sent to by it.
      const address = BSUID.test(to) ? { recipient: to } : { to }
      const answer = await graph(account, "POST", `${account.phoneNumberId}/messages`, {
        json: {
          messaging_product: "whatsapp",
          recipient_type: "individual",
          ...address,
          ...content,
        },
      })
      const wamid = answer.body?.messages?.[0]?.id
      if (answer.status === 200 && typeof wamid === "string") return { wamid }
      if (answer.status === 200) {
        return {
          failure: {
            ok: false,
            retryable: true,
            code: "no_message_id",
            reason: "the Graph API answered 200 without messages[0].id",
          },
        }
      }
      return { failure: failureOf(answer.status, answer.body, answer.error) }
    }

    /** Upload a stored file to the number's media; its media id, or a failure result. */
    const upload = async (account, file, stored) => {
      await account.pace()
      const answer = await graph(account, "POST", `${account.phoneNumberId}/media`, {
        multipart: multipartBody(
          { messaging_product: "whatsapp", type: stored.mimeType },
          { name: file.name, mimeType: stored.mimeType, bytes: stored.bytes },
        ),
        timeoutMs: 120_000,
      })
      if (answer.status === 200 && typeof answer.body?.id === "string") {
        return { id: answer.body.id }
      }
      return { failure: failureOf(answer.status, answer.body, answer.error) }
    }

    await chorus.channels.register("whatsapp", {
      /**
       * An operator is typing: the customer's latest message is marked read and WhatsApp shows
       * "typing…" for up to 25 seconds (or until the reply). Only within the reply window.
       */
      async typing(to) {
        const account = accounts.get(to.account)
        if (account === undefined) return
        const last = await chorus.storage.kv.get(windowKey(account.name, to.externalId))
        const wamid = await chorus.storage.kv.get(latestKey(account.name, to.externalId))
        if (typeof wamid !== "string" || windowClosed(last, Date.now()) !== undefined) return
        await account.pace()
        const answer = await graph(account, "POST", `${account.phoneNumberId}/messages`, {
          json: {
            messaging_product: "whatsapp",
            status: "read",
            message_id: wamid,
            typing_indicator: { type: "text" },
          },
        })
        if (answer.status !== 200) {
          chorus.log.debug("whatsapp typing indicator refused", {
            status: answer.status,
            error: answer.body?.error?.message ?? String(answer.error ?? ""),
          })
        }
      },
      async send(message) {
        const account = accounts.get(message.account)
        if (account === undefined) {
          return {
            ok: false,
            retryable: false,
            code: "no_account",
            reason: `no WhatsApp account ${message.account} is configured (setting accounts)`,
          }
        }
        const to = message.recipient.externalId
        const closed = windowClosed(
          await chorus.storage.kv.get(windowKey(account.name, to)),
          Date.now(),
        )
        if (closed !== undefined) return closed

        const text = message.text ?? ""
        const files = message.attachments.filter((a) => typeof a?.storageKey === "string")
        const buttons = message.buttons ?? []
        const kinds = files.map((f) => mediaKindOf(String(f.mimeType), Number(f.size)))
        const tooBig = files.find((_, i) => kinds[i] === undefined)
        if (tooBig !== undefined) {
          return {
            ok: false,
            retryable: false,
            code: "too_large",
            reason: `${tooBig.name} is larger than WhatsApp's 100 MB document limit`,
          }
        }
        const captioned = files.length === 1 && buttons.length === 0 && text.length > 0 &&
          text.length <= CAPTION_LIMIT && captionable(kinds[0])

        /** @type {Array<() => Promise<{ wamid?: string, failure?: object }>>} */
        const steps = []
        files.forEach((file, i) => {
          steps.push(async () => {
            const stored = await chorus.attachments.get(file.storageKey)
            const kind = kinds[i]
            const media = await upload(account, file, stored)
            if (media.failure) return media
            const content = { id: media.id }
            if (captioned) content.caption = text
            if (kind === "document") content.filename = file.name
            return post(account, to, { type: kind, [kind]: content })
          })
        })
        if (!captioned && text.length > 0) {
          const parts = splitText(text)
          let interactive
          if (buttons.length > 0) {
            // The buttons go with the last part, whose body has a smaller limit.
            const last = parts.pop()
            parts.push(...splitText(last, BUTTON_BODY_LIMIT))
            const built = interactiveOf(parts.at(-1), buttons, String(settings.listButtonText))
            if (built.refusal) return built.refusal
            interactive = built.interactive
            parts.pop()
          }
          for (const part of parts) {
            steps.push(() => post(account, to, { type: "text", text: { body: part } }))
          }
          if (interactive !== undefined) {
            steps.push(() => post(account, to, { type: "interactive", interactive }))
          }
        } else if (buttons.length > 0) {
          const built = interactiveOf(text, buttons, String(settings.listButtonText))
          if (built.refusal) return built.refusal
        }

        // Parts already sent (a retry after a partial failure) are not sent again.
        const progressKey = `sent:${message.id}`
        const progress = (await chorus.storage.kv.get(progressKey)) ?? { parts: 0, ids: [] }
        for (let i = progress.parts; i < steps.length; i++) {
          const result = await steps[i]()
          if (result.failure) return result.failure
          progress.parts = i + 1
          progress.ids.push(result.wamid)
          await chorus.storage.kv.set(progressKey, progress)
          sentParts.inc(1, { account: account.name })
        }
        const last = progress.ids.at(-1)
        if (last === undefined) {
          return { ok: false, retryable: false, code: "empty", reason: "nothing to send" }
        }
        return { ok: true, externalId: last }
      },
    })

    // -- templates -----------------------------------------------------------------------------------

    await chorus.routes.handle("POST", "/plugins/whatsapp/templates/send", async (request) => {
      if (templatesToken === undefined) {
        return {
          status: 503,
          body: {
            error: "set the secret CHORUS_PLUGIN_WHATSAPP_TEMPLATES_TOKEN to use this route",
          },
        }
      }
      const auth = String(request.headers["authorization"] ?? "")
      if (auth !== `Bearer ${templatesToken}`) {
        return { status: 401, body: { error: "wrong or missing bearer token" } }
      }
      let input
      try {
        input = request.json()
      } catch {
        return { status: 400, body: { error: "not JSON" } }
      }
      const problems = []
      const account = accounts.get(input?.account)
      if (account === undefined) {
        problems.push(`account: no WhatsApp account ${JSON.stringify(input?.account)}`)
      }
      const given = typeof input?.to === "string" ? input.to : ""
      const to = BSUID.test(given) ? given : e164(given)?.slice(1)
      if (to === undefined) {
        problems.push(
          "to: expected the customer's number (E.164 or wa_id) or business-scoped user id",
        )
      }
      const template = input?.template
      if (!TEMPLATE_NAME.test(String(template?.name ?? ""))) {
        problems.push("template.name: expected the approved template's name (a-z, 0-9, _)")
      }
      if (!LANGUAGE.test(String(template?.language ?? ""))) {
        problems.push('template.language: expected a language code such as "en_US"')
      }
      if (template?.components !== undefined && !Array.isArray(template.components)) {
        problems.push("template.components: expected a list (Meta's template components)")
      }
      if (problems.length > 0) return { status: 400, body: { error: "invalid request", problems } }
      const sent = await post(account, to, {
        type: "template",
        template: {
          name: template.name,
          language: { code: template.language },
          ...(template.components !== undefined ? { components: template.components } : {}),
        },
      })
      if (sent.failure) {
        const f = sent.failure
        return {
          status: f.retryable ? 503 : 422,
          body: {
            error: f.reason,
            code: f.code,
            retryable: f.retryable,
            retryAfterMs: f.retryAfterMs,
          },
        }
      }
      sentParts.inc(1, { account: account.name })
      return { status: 200, body: { externalId: sent.wamid } }
    })
  },
}
