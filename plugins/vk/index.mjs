/**
 * VK community messages as a Chorus channel.
 *
 * - One channel account per community: setting `accounts` ("support"), each with the secrets
 *   `TOKEN_<NAME>` (the community's access token, messages permission), and in callback mode
 *   `SECRET_<NAME>` (the Callback API secret key) and `CONFIRMATION_<NAME>` (the string VK asks
 *   the server to answer when it is added).
 * - Inbound, Callback API (default: VK posts to `/plugins/vk/callback/<account>`) or Bots Long
 *   Poll. An event is confirmed only once Chorus holds it durably: the callback answers `ok`
 *   after `chorus.channels.receive` resolved (anything else makes VK send it again), and long
 *   polling moves its `ts` (kept in the key-value store) past a batch only then.
 * - Photos (largest size), documents and voice messages are downloaded and kept in the
 *   attachment store; what is no file (a sticker, a video) is named in the text.
 * - Callback-button presses (`message_event`) come in as messages with the button's payload and
 *   are answered with `messages.sendMessageEventAnswer` once stored.
 * - `message_deny` is remembered: a reply to that person fails at once as unreachable, without
 *   asking VK (`message_allow` or a new message from them clears it).
 * - Outbound: `messages.send` (text split at 4,096 characters, `random_id` derived from the
 *   Chorus message id and the part, so a retry never repeats a part), inline keyboards, photos
 *   and documents uploaded through VK's upload servers; VK errors classified.
 */
import {
  API_VERSION,
  eventOf,
  failureOf,
  keyboardOf,
  pacer,
  randomIdOf,
  splitText,
} from "./wire.mjs"

const ACCOUNT = /^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$/
const PHOTO = /^image\/(jpeg|png|gif)$/
/** dev.vk.com/ru/api/api-requests: 20 requests a second with a community token. */
const REQUESTS_PER_SECOND = 20

let stop = async () => {}
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/** A VK API answer with `error`: kept whole so `failureOf` can classify it. */
class VkError extends Error {
  constructor(error, method = "") {
    super(`VK error ${error.error_code}${method ? ` in ${method}` : ""}: ${error.error_msg}`)
    this.name = "VkError"
    this.error_code = error.error_code
    this.error_msg = error.error_msg
  }
}

/** The URL of an attachment Chorus only links to (a string, or a URL object in-process). */
const linkOf = (a) =>
  typeof a?.url === "string" ? a.url : typeof a?.url?.href === "string" ? a.url.href : undefined

/** Whether `given` is the expected secret, compared in constant time. */
const sameSecret = (given, expected) => {
  if (typeof given !== "string" || given.length !== expected.length) return false
  let diff = 0
  for (let i = 0; i < expected.length; i++) diff |= given.charCodeAt(i) ^ expected.charCodeAt(i)
  return diff === 0
}

/** Bytes and content type of a multipart/form-data body with one file. */
const multipart = async (field, bytes, name, mimeType) => {
  const form = new FormData()
  form.append(field, new Blob([bytes], { type: mimeType }), name)
  const encoded = new Response(form)
  return {
    body: new Uint8Array(await encoded.arrayBuffer()),
    contentType: encoded.headers.get("content-type"),
  }
}

export default {
  async activate(chorus) {
    const settings = chorus.settings
    const apiRoot = String(settings.apiRoot).replace(/\/+$/, "")
    const version = String(settings.apiVersion || API_VERSION)
    const wait = Number(settings.longPollWait)
    const mode = settings.mode === "longpoll" ? "longpoll" : "callback"
    const names = String(settings.accounts ?? "").split(",").map((a) => a.trim()).filter((a) =>
      a !== ""
    )
    const received = chorus.metrics.counter("events_received", "VK events handed to Chorus")
    const sent = chorus.metrics.counter("messages_sent", "VK messages sent (parts)")

    const secret = (kind, name) =>
      chorus.secrets.get(`${kind}_${name.toUpperCase().replace(/-/g, "_")}`)
    /** @type {Map<string, { name: string, token: string, secret?: string, confirmation?: string }>} */
    const accounts = new Map()
    for (const name of names) {
      if (!ACCOUNT.test(name)) {
        throw new Error(`account name ${JSON.stringify(name)}: letters, digits, '_' or '-' only`)
      }
      const account = { name, token: await secret("TOKEN", name) }
      if (mode === "callback") {
        account.secret = await secret("SECRET", name)
        account.confirmation = await secret("CONFIRMATION", name)
      }
      accounts.set(name, account)
    }
    if (accounts.size === 0) chorus.log.warn("no VK communities configured (setting accounts)")

    // VK allows a community token 20 API requests a second. The core paces replies, but one
    // reply may take several requests (parts, uploads), so each call waits its turn here too.
    const pacers = new Map()
    const turn = (account) => {
      if (!pacers.has(account.name)) pacers.set(account.name, pacer(REQUESTS_PER_SECOND, 1000))
      return pacers.get(account.name)()
    }

    /** Call a VK API method; resolves `response`, rejects with VkError or a network error. */
    const call = async (account, method, params = {}) => {
      await turn(account)
      const form = new URLSearchParams()
      for (const [k, v] of Object.entries(params)) {
        if (v !== undefined) form.set(k, typeof v === "object" ? JSON.stringify(v) : String(v))
      }
      form.set("v", version)
      const response = await chorus.http.fetch(`${apiRoot}/method/${method}`, {
        method: "POST",
        headers: {
          "content-type": "application/x-www-form-urlencoded",
          authorization: `Bearer ${account.token}`,
        },
        body: form.toString(),
        timeoutMs: 20_000,
      })
      if (response.status >= 500) throw new Error(`VK answered HTTP ${response.status}`)
      const body = response.json()
      if (body?.error) throw new VkError(body.error, method)
      if (!("response" in (body ?? {}))) {
        throw new Error(`VK answered no response: ${response.text()}`)
      }
      return body.response
    }

    /** The person's name for the inbox (users.get, kept a day); best effort. */
    const nameOf = async (account, user) => {
      const key = `name:${account.name}:${user}`
      const kept = await chorus.storage.kv.get(key)
      if (kept != null && Date.now() - kept.at < 86_400_000) return kept.name
      try {
        const [person] = await call(account, "users.get", { user_ids: user })
        const name = [person?.first_name, person?.last_name].filter(Boolean).join(" ")
        if (name === "") return undefined
        await chorus.storage.kv.set(key, { name, at: Date.now() })
        return name
      } catch (error) {
        chorus.log.debug("vk users.get failed", { error: String(error?.message ?? error) })
        return undefined
      }
    }
    const withName = async (account, inbound) => {
      const name = await nameOf(account, inbound.sender.externalId)
      return name === undefined ? inbound : { ...inbound, sender: { ...inbound.sender, name } }
    }

    const deniedKey = (account, user) => `denied:${account}:${user}`
    const labelKey = (account, payload) => `label:${account}:${payload}`

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
        return { note: `[${file.name} could not be fetched from VK: HTTP ${response.status}]` }
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

    /** Handle one event; resolves once whatever it carries is durable. */
    const handle = async (account, event) => {
      const got = eventOf(account.name, event)
      if (got.skip !== undefined) {
        // A customer's words not taken (a group chat) are logged where operators see them.
        const log = event?.type === "message_new" ? chorus.log.info : chorus.log.debug
        log("vk event skipped", { account: account.name, reason: got.skip })
        return
      }
      if (got.deny !== undefined) {
        await chorus.storage.kv.set(deniedKey(account.name, got.deny), Date.now())
        chorus.log.info("vk: a person denied messages from the community", {
          account: account.name,
          user: got.deny,
        })
        return
      }
      if (got.typing !== undefined) {
        await chorus.channels.typing("vk", { account: account.name, externalId: got.typing })
        return
      }
      if (got.allow !== undefined) {
        await chorus.storage.kv.delete(deniedKey(account.name, got.allow))
        return
      }
      if (got.press !== undefined) {
        const label = await chorus.storage.kv.get(labelKey(account.name, got.press.payload))
        await chorus.channels.receive("vk", {
          ...(await withName(account, got.press)),
          text: typeof label === "string" ? label : got.press.payload || "[button]",
        })
        received.inc(1, { account: account.name, type: "message_event" })
        // Stops the button's spinner (best effort: it stops by itself after a while).
        await call(account, "messages.sendMessageEventAnswer", {
          event_id: got.eventId,
          user_id: got.userId,
          peer_id: got.peerId,
        }).catch((error) =>
          chorus.log.warn("vk: sendMessageEventAnswer failed", { error: String(error) })
        )
        return
      }
      const attachments = []
      const notes = []
      for (const file of got.files) {
        const one = await download(file)
        if (one.attachment) attachments.push(one.attachment)
        else notes.push(one.note)
      }
      const text = [got.inbound.text, ...notes].filter((t) => t !== "").join("\n")
      await chorus.channels.receive("vk", {
        ...(await withName(account, got.inbound)),
        text,
        attachments,
      })
      // Writing to the community means messages are allowed again.
      await chorus.storage.kv.delete(deniedKey(account.name, got.inbound.sender.externalId))
      received.inc(1, { account: account.name, type: "message_new" })
    }

    // -- inbound: Callback API ---------------------------------------------------------------
    await chorus.routes.handle("POST", "/plugins/vk/callback/{account}", async (request) => {
      const account = accounts.get(request.params.account)
      if (account === undefined || mode !== "callback") {
        return { status: 404, body: "no such account" }
      }
      let event
      try {
        event = request.json()
      } catch {
        return { status: 400, body: "not JSON" }
      }
      if (event?.type === "confirmation") {
        return {
          status: 200,
          headers: { "content-type": "text/plain" },
          body: account.confirmation,
        }
      }
      // Only `ok` tells VK the event is taken; a wrong secret is refused and nothing is stored.
      if (!sameSecret(event?.secret, account.secret)) {
        return { status: 403, headers: { "content-type": "text/plain" }, body: "bad secret" }
      }
      await handle(account, event)
      return { status: 200, headers: { "content-type": "text/plain" }, body: "ok" }
    })

    // -- inbound: Bots Long Poll -----------------------------------------------------------------
    let stopped = false
    const loops = []
    const longPoll = async (account) => {
      const tsKey = `ts:${account.name}`
      let server
      let failures = 0
      while (!stopped) {
        try {
          if (server === undefined) {
            const groups = await call(account, "groups.getById", {})
            const group = Array.isArray(groups) ? groups[0] : groups?.groups?.[0]
            if (typeof group?.id !== "number") throw new Error("groups.getById gave no community")
            const got = await call(account, "groups.getLongPollServer", { group_id: group.id })
            const kept = await chorus.storage.kv.get(tsKey)
            server = { ...got, ts: kept ?? got.ts, groupId: group.id }
          }
          const url = `${server.server}?act=a_check&key=${encodeURIComponent(server.key)}&ts=${
            encodeURIComponent(server.ts)
          }&wait=${wait}`
          const response = await chorus.http.fetch(url, { timeoutMs: (wait + 15) * 1000 })
          if (response.status !== 200) throw new Error(`long poll answered ${response.status}`)
          const body = response.json()
          if (body.failed === 1) {
            // History lost or too old: go on from VK's new ts.
            server.ts = body.ts
            await chorus.storage.kv.set(tsKey, server.ts)
            continue
          }
          if (body.failed === 2 || body.failed === 3) {
            // 2: the key expired (keep our ts); 3: key and ts both lost.
            const got = await call(account, "groups.getLongPollServer", {
              group_id: server.groupId,
            })
            server = { ...got, ts: body.failed === 2 ? server.ts : got.ts, groupId: server.groupId }
            continue
          }
          if (body.failed !== undefined) throw new Error(`long poll failed: ${body.failed}`)
          for (const event of body.updates ?? []) {
            if (stopped) return
            await handle(account, event)
          }
          server.ts = body.ts
          await chorus.storage.kv.set(tsKey, server.ts)
          failures = 0
        } catch (error) {
          if (stopped) return
          failures++
          const delay = Math.min(30_000, 500 * 2 ** Math.min(failures, 6))
          chorus.log.warn("vk long poll failed; retrying", {
            account: account.name,
            error: String(error?.message ?? error),
            retryInMs: delay,
          })
          if (error instanceof VkError) server = undefined
          await sleep(delay)
        }
      }
    }
    if (mode === "longpoll") {
      for (const account of accounts.values()) loops.push(longPoll(account))
    }

    // -- outbound --------------------------------------------------------------------------------
    /** Upload one stored file for `peer`; resolves the `attachment` string of messages.send. */
    const upload = async (account, peer, file) => {
      const stored = await chorus.attachments.get(file.storageKey)
      const name = String(file.name ?? "file")
      const photo = PHOTO.test(stored.mimeType)
      const server = photo
        ? await call(account, "photos.getMessagesUploadServer", { peer_id: peer })
        : await call(account, "docs.getMessagesUploadServer", { type: "doc", peer_id: peer })
      const form = await multipart(photo ? "photo" : "file", stored.bytes, name, stored.mimeType)
      const response = await chorus.http.fetch(server.upload_url, {
        method: "POST",
        headers: { "content-type": form.contentType },
        body: form.body,
        timeoutMs: 40_000,
      })
      if (response.status !== 200) throw new Error(`VK upload answered ${response.status}`)
      const uploaded = response.json()
      if (uploaded?.error) {
        throw new VkError({
          error_code: 100,
          error_msg: `upload: ${JSON.stringify(uploaded.error)}`,
        })
      }
      if (photo) {
        const [saved] = await call(account, "photos.saveMessagesPhoto", {
          server: uploaded.server,
          photo: uploaded.photo,
          hash: uploaded.hash,
        })
        return `photo${saved.owner_id}_${saved.id}${saved.access_key ? `_${saved.access_key}` : ""}`
      }
      const saved = await call(account, "docs.save", { file: uploaded.file, title: name })
      const doc = saved?.doc ?? saved?.[0]
      return `doc${doc.owner_id}_${doc.id}`
    }

    await chorus.channels.register("vk", {
      /** An operator is typing: VK shows "typing…" in the person's dialog for a few seconds. */
      async typing(to) {
        const account = accounts.get(to.account)
        if (account === undefined) return
        await call(account, "messages.setActivity", { peer_id: to.externalId, type: "typing" })
      },
      async send(message) {
        const account = accounts.get(message.account)
        if (account === undefined) {
          return {
            ok: false,
            retryable: false,
            code: "no_account",
            reason: `no VK community ${message.account} is configured (setting accounts)`,
          }
        }
        const peer = message.recipient.externalId
        if ((await chorus.storage.kv.get(deniedKey(account.name, peer))) != null) {
          return {
            ok: false,
            retryable: false,
            code: "messages_denied",
            reason: "the person denied messages from this community (message_deny)",
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
        try {
          const attachment = []
          for (const file of message.attachments.filter((a) => typeof a?.storageKey === "string")) {
            attachment.push(await upload(account, peer, file))
          }
          // A file Chorus only links to (no stored copy) goes as its link, or at least its name.
          const links = message.attachments.filter((a) => typeof a?.storageKey !== "string")
            .map((a) => linkOf(a) ?? `[${a?.name ?? "file"}]`)
          const text = [message.text ?? "", ...links].filter((t) => t !== "").join("\n")
          if (text === "" && attachment.length === 0) {
            return { ok: false, retryable: false, code: "empty", reason: "nothing to send" }
          }
          const parts = splitText(text)
          let last
          for (const [i, part] of parts.entries()) {
            const final = i === parts.length - 1
            last = await call(account, "messages.send", {
              peer_id: peer,
              random_id: randomIdOf(message.id, i),
              message: part,
              attachment: final && attachment.length > 0 ? attachment.join(",") : undefined,
              keyboard: final ? keyboard.keyboard : undefined,
            })
            sent.inc(1, { account: account.name })
          }
          for (const row of message.buttons ?? []) {
            for (const b of row) {
              if (b.payload !== undefined) {
                await chorus.storage.kv.set(labelKey(account.name, b.payload), b.text)
              }
            }
          }
          return { ok: true, externalId: String(last) }
        } catch (error) {
          if (error?.name === "AttachmentMissing" || error?.name === "PermissionDenied") {
            return { ok: false, retryable: false, code: error.name, reason: error.message }
          }
          return failureOf(error)
        }
      },
    })

    stop = async () => {
      stopped = true
      await Promise.race([Promise.allSettled(loops), sleep(2_000)])
    }
  },
  async deactivate() {
    await stop()
  },
}
