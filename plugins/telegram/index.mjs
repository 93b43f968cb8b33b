/**
 * Telegram as a Chorus channel, on grammY's Bot API client.
 *
 * - One channel account per bot: setting `accounts` ("support,sales"), each with the secret
 *   `BOT_TOKEN_<NAME>` (env `CHORUS_PLUGIN_TELEGRAM_BOT_TOKEN_<NAME>`).
 * - Inbound, long polling (default) or webhook. An update is confirmed to Telegram only once
 *   Chorus holds it durably: in polling mode the offset (kept in the plugin's key-value store)
 *   moves past an update only after `chorus.channels.receive` resolved for it, so a crash means
 *   the update comes again and the bus recognises the repeat; in webhook mode the 200 is sent
 *   only after it. (grammY's runner confirms right after fetching, so it is not used.)
 * - Media are fetched with getFile and kept in the attachment store before the message is
 *   handed in; a file the store refuses is named in the message's text instead, never dropped.
 * - Outbound: text split at 4,096 characters, photos and documents, 429 retry_after and 403
 *   "blocked by the user" reported to the delivery policy; parts already sent are remembered,
 *   so a retried reply never repeats them.
 *
 * Every call to Telegram goes through `chorus.http` (grammY's `fetch` option), so the host
 * checks it against `permissions.net` in every isolation mode.
 */
import { Api, InputFile } from "grammy"
import { CAPTION_LIMIT, failureOf, splitText } from "./send.mjs"
import { toInbound } from "./updates.mjs"

const ALLOWED_UPDATES = ["message", "edited_message", "callback_query"]
const ACCOUNT = /^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$/
const PHOTO = /^image\/(jpeg|png|webp|gif)$/

/** Ends the polling loops of the running version (`deactivate`). */
let stop = async () => {}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/** Bytes of whatever grammY passes as a body (string, bytes, stream or async iterable). */
const bytesOf = async (body) => {
  if (
    body === undefined || body === null || typeof body === "string" || body instanceof Uint8Array
  ) return body ?? undefined
  if (typeof body[Symbol.asyncIterator] === "function") {
    const chunks = []
    for await (const chunk of body) {
      chunks.push(
        typeof chunk === "string" ? new TextEncoder().encode(chunk) : new Uint8Array(chunk),
      )
    }
    const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0))
    let at = 0
    for (const c of chunks) {
      out.set(c, at)
      at += c.length
    }
    return out
  }
  return new Uint8Array(await new Response(body).arrayBuffer())
}

/** grammY's `fetch`, through the host's checked HTTP client. */
const hostFetch = (chorus, timeoutMs) => async (url, init = {}) => {
  const headers = {}
  new Headers(init.headers ?? {}).forEach((value, key) => (headers[key] = value))
  const response = await chorus.http.fetch(String(url), {
    method: init.method ?? "GET",
    headers,
    body: await bytesOf(init.body),
    timeoutMs,
  })
  return new Response(response.body, { status: response.status, headers: response.headers })
}

/** The webhook's secret_token for a bot, derived from its token (no extra secret to manage). */
const webhookSecret = async (token) => {
  const digest = await crypto.subtle.digest(
    "SHA-256",
    new TextEncoder().encode(`chorus-telegram-webhook:${token}`),
  )
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("")
}

export default {
  async activate(chorus) {
    const settings = chorus.settings
    const apiRoot = String(settings.apiRoot).replace(/\/+$/, "")
    const pollTimeout = Number(settings.pollTimeout)
    const names = String(settings.accounts ?? "").split(",").map((a) => a.trim()).filter((a) =>
      a !== ""
    )
    const received = chorus.metrics.counter("updates_received", "Telegram updates handed to Chorus")
    const sentParts = chorus.metrics.counter(
      "messages_sent",
      "Telegram messages sent (parts and media)",
    )

    /** @type {Map<string, { name: string, token: string, api: Api, secret: string }>} */
    const accounts = new Map()
    for (const name of names) {
      if (!ACCOUNT.test(name)) {
        throw new Error(`account name ${JSON.stringify(name)}: letters, digits, '_' or '-' only`)
      }
      const token = await chorus.secrets.get(`BOT_TOKEN_${name.toUpperCase().replace(/-/g, "_")}`)
      const api = new Api(token, {
        apiRoot,
        fetch: hostFetch(chorus, (pollTimeout + 15) * 1000),
      })
      accounts.set(name, { name, token, api, secret: await webhookSecret(token) })
    }
    if (accounts.size === 0) chorus.log.warn("no Telegram accounts configured (setting accounts)")

    /** A stored attachment for a file of a message, or the words saying why there is none. */
    const fetchFile = async (account, file) => {
      try {
        const info = await account.api.getFile(file.fileId)
        if (!info.file_path) return { note: `[${file.name}: Telegram gave no file path]` }
        const response = await chorus.http.fetch(
          `${apiRoot}/file/bot${account.token}/${info.file_path}`,
          { timeoutMs: 60_000 },
        )
        if (response.status !== 200) throw new Error(`download answered ${response.status}`)
        const stored = await chorus.attachments.put(response.body, {
          name: file.name,
          mimeType: file.mimeType,
        })
        return { attachment: stored }
      } catch (error) {
        if (error.name === "AttachmentRefused") {
          return { note: `[${file.name} not accepted: ${error.message}]` }
        }
        if (error.error_code === 400) {
          return { note: `[${file.name} could not be fetched from Telegram: ${error.description}]` }
        }
        throw error // network or Telegram down: the update is tried again
      }
    }

    /** Hand one update to Chorus; resolves once it is durable. */
    const handle = async (account, update) => {
      const converted = toInbound(account.name, update)
      if (converted.skip !== undefined) {
        chorus.log.debug("telegram update skipped", {
          account: account.name,
          reason: converted.skip,
        })
        return
      }
      const attachments = []
      const notes = []
      for (const file of converted.files) {
        const got = await fetchFile(account, file)
        if (got.attachment) attachments.push(got.attachment)
        else notes.push(got.note)
      }
      const text = [converted.inbound.text, ...notes].filter((t) => t !== "").join("\n")
      await chorus.channels.receive("telegram", { ...converted.inbound, text, attachments })
      received.inc(1, { account: account.name })
      // The button's spinner stops once Chorus holds the press (best effort: it expires anyway).
      if (converted.callbackQueryId !== undefined) {
        await account.api.answerCallbackQuery(converted.callbackQueryId).catch(() => {})
      }
    }

    // -- inbound: long polling -----------------------------------------------------------------
    let stopped = false
    const polls = []
    const poll = async (account) => {
      const offsetKey = `offset:${account.name}`
      let offset = (await chorus.storage.kv.get(offsetKey)) ?? undefined
      let failures = 0
      while (!stopped) {
        try {
          const updates = await account.api.getUpdates({
            offset,
            timeout: pollTimeout,
            allowed_updates: ALLOWED_UPDATES,
          })
          for (const update of updates) {
            if (stopped) return
            await handle(account, update)
            offset = update.update_id + 1
            await chorus.storage.kv.set(offsetKey, offset)
          }
          failures = 0
        } catch (error) {
          if (stopped) return
          failures++
          const retryAfter = error?.parameters?.retry_after
          const wait = retryAfter !== undefined
            ? retryAfter * 1000
            : Math.min(30_000, 500 * 2 ** Math.min(failures, 6))
          chorus.log.warn("telegram polling failed; retrying", {
            account: account.name,
            error: String(error?.description ?? error?.message ?? error),
            retryInMs: wait,
          })
          await sleep(wait)
        }
      }
    }

    if (settings.mode === "webhook") {
      const base = String(settings.webhookBaseUrl ?? "").replace(/\/+$/, "")
      if (!/^https?:\/\//.test(base)) {
        throw new Error(
          "webhook mode needs the setting webhookBaseUrl (e.g. https://chat.example.com)",
        )
      }
      for (const account of accounts.values()) {
        await account.api.setWebhook(`${base}/plugins/telegram/webhook/${account.name}`, {
          secret_token: account.secret,
          allowed_updates: ALLOWED_UPDATES,
        })
      }
    } else {
      for (const account of accounts.values()) {
        // A webhook left from another setup would make getUpdates fail (409).
        await account.api.deleteWebhook()
        polls.push(poll(account))
      }
    }

    // -- inbound: webhook ------------------------------------------------------------------------
    await chorus.routes.handle("POST", "/plugins/telegram/webhook/{account}", async (request) => {
      const account = accounts.get(request.params.account)
      if (account === undefined || settings.mode !== "webhook") {
        return { status: 404, body: { error: "no such account" } }
      }
      if (request.headers["x-telegram-bot-api-secret-token"] !== account.secret) {
        return { status: 401, body: { error: "wrong secret token" } }
      }
      let update
      try {
        update = request.json()
      } catch {
        return { status: 400, body: { error: "not JSON" } }
      }
      // Only a 2xx tells Telegram it may forget the update: answer once it is durable.
      await handle(account, update)
      return { status: 200, body: { ok: true } }
    })

    // -- outbound ----------------------------------------------------------------------------------
    await chorus.channels.register("telegram", {
      /** An operator is typing: Telegram shows "typing…" in the chat for about five seconds. */
      async typing(to) {
        const account = accounts.get(to.account)
        if (account === undefined) return
        await account.api.sendChatAction(to.externalId, "typing")
      },
      async send(message) {
        const account = accounts.get(message.account)
        if (account === undefined) {
          return {
            ok: false,
            retryable: false,
            code: "no_account",
            reason: `no Telegram account ${message.account} is configured (setting accounts)`,
          }
        }
        const chatId = message.recipient.externalId
        const text = message.text ?? ""
        const files = message.attachments.filter((a) => typeof a.storageKey === "string")
        const captioned = files.length === 1 && text.length > 0 && text.length <= CAPTION_LIMIT
        // Buttons go under the last part, as an inline keyboard: a pressed one comes back as a
        // callback query (its payload), a link one opens its URL.
        const markup = message.buttons === undefined ? undefined : {
          inline_keyboard: message.buttons.map((row) =>
            row.map((b) =>
              b.url !== undefined ? { text: b.text, url: b.url } : {
                text: b.text,
                callback_data: b.payload,
              }
            )
          ),
        }
        /** @type {Array<(extra: object) => Promise<{ message_id: number }>>} */
        const steps = []
        for (const file of files) {
          steps.push(async (extra) => {
            const stored = await chorus.attachments.get(file.storageKey)
            const input = new InputFile(stored.bytes, file.name)
            const options = captioned ? { caption: text, ...extra } : extra
            return PHOTO.test(stored.mimeType)
              ? account.api.sendPhoto(chatId, input, options)
              : account.api.sendDocument(chatId, input, options)
          })
        }
        if (!captioned && text.length > 0) {
          for (const part of splitText(text)) {
            steps.push((extra) => account.api.sendMessage(chatId, part, extra))
          }
        }
        // Parts already sent (a retry after a partial failure) are not sent again.
        const progressKey = `sent:${message.id}`
        const progress = (await chorus.storage.kv.get(progressKey)) ?? { parts: 0, ids: [] }
        for (let i = progress.parts; i < steps.length; i++) {
          try {
            const last = i === steps.length - 1 && markup !== undefined
            const sent = await steps[i](last ? { reply_markup: markup } : {})
            progress.parts = i + 1
            progress.ids.push(sent.message_id)
            await chorus.storage.kv.set(progressKey, progress)
            sentParts.inc(1, { account: account.name })
          } catch (error) {
            return failureOf(error)
          }
        }
        const last = progress.ids.at(-1)
        if (last === undefined) {
          return { ok: false, retryable: false, code: "empty", reason: "nothing to send" }
        }
        return { ok: true, externalId: `${chatId}:${last}` }
      },
    })

    stop = async () => {
      stopped = true
      await Promise.race([Promise.allSettled(polls), sleep(2_000)])
    }
  },
  async deactivate() {
    await stop()
  },
}
