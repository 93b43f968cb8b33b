/**
 * The web chat widget as a Chorus channel: one `<script>` tag on a site opens a chat window that
 * talks to this plugin over a WebSocket (`/plugins/widget/ws/<site>`).
 *
 * - A visitor is anonymous (a random id the browser keeps) unless the site signs who they are:
 *   `userId` with `userHash` = hex HMAC-SHA256(site secret, userId), or of `<userId>:<email>`,
 *   or of `<userId>:<email or nothing>:<phone>` when a phone (E.164) is given
 *   when it also passes the e-mail (then a verified address), the secret in
 *   `SITE_SECRET_<SITE>` (env `CHORUS_PLUGIN_WIDGET_SITE_SECRET_<SITE>`). A wrong or missing hash
 *   means anonymous, never the claimed user.
 * - A message is acknowledged to the browser only once Chorus holds it (`channels.receive`), with
 *   the browser's `clientId` as the de-duplicating id: a browser that resends after a reconnect
 *   stores nothing twice.
 * - Operator replies (`send`) reach every open window of the visitor at once and are kept for the
 *   next visit; on connect the browser gets the conversation since the last message it saw.
 * - `allowedOrigins` and `maxMessagesPerMinute` are settings.
 *
 * The history shown in the window is the widget's own copy (the plugin's key-value store), keyed
 * so that it lists in time order.
 */
import * as NodeFs from "node:fs"
import * as NodePath from "node:path"

const VISITOR = /^[A-Za-z0-9_-]{16,64}$/
const SITE = /^[a-z0-9][a-z0-9_-]{0,31}$/
const E164 = /^\+[1-9]\d{6,14}$/
const EMAIL = /^[^\s@]{1,64}@[^\s@]{1,255}\.[^\s@]{1,63}$/
const CLIENT_ID = /^[A-Za-z0-9_-]{1,64}$/

const hex = (bytes) =>
  [...new Uint8Array(bytes)].map((b) => b.toString(16).padStart(2, "0")).join("")

const hmac = async (secret, text) => {
  const key = await crypto.subtle.importKey(
    "raw",
    new TextEncoder().encode(secret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  )
  return hex(await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(text)))
}

/** Constant-time comparison of two hex strings. */
const sameHex = (a, b) => {
  if (typeof a !== "string" || typeof b !== "string" || a.length !== b.length) return false
  let diff = 0
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i)
  return diff === 0
}

/** History keys sort by time: `h:<site>:<sender>:<ms base36, padded>:<id>`. */
const historyPrefix = (site, sender) => `h:${site}:${sender}:`
const historyKey = (site, sender, at, id) =>
  `${historyPrefix(site, sender)}${at.toString(36).padStart(10, "0")}:${id}`

export default {
  async activate(chorus) {
    const script = NodeFs.readFileSync(NodePath.join(chorus.plugin.dir, "public/widget.js"), "utf8")
    const allowed = String(chorus.settings.allowedOrigins ?? "").split(",").map((o) => o.trim())
      .filter(Boolean)
    const perMinute = Number(chorus.settings.maxMessagesPerMinute)
    const historyLimit = Number(chorus.settings.historyLimit)
    const maxUpload = Number(chorus.settings.maxUploadBytes)
    const received = chorus.metrics.counter(
      "messages_received",
      "visitor messages handed to Chorus",
    )

    /** Open windows by `<site>|<sender>`. */
    const windows = new Map()
    const windowsOf = (site, sender) => windows.get(`${site}|${sender}`) ?? new Set()
    /**
     * A history entry as a frame: each kept file gets a fresh signed link (history keeps the
     * storage key, not the link, which expires).
     */
    const asFrame = async (key, entry) => {
      if (!Array.isArray(entry.files) || entry.files.length === 0) {
        return { type: "message", key, ...entry }
      }
      const files = []
      for (const f of entry.files) {
        const url = f.storageKey === undefined
          ? undefined
          : await chorus.attachments.link(f.storageKey).catch(() => undefined)
        files.push({
          name: f.name,
          mimeType: f.mimeType,
          size: f.size,
          ...(url !== undefined ? { url } : {}),
        })
      }
      return { type: "message", key, ...entry, files }
    }
    const push = async (site, sender, frame) => {
      for (const socket of windowsOf(site, sender)) {
        await socket.send(JSON.stringify(frame)).catch(() => {})
      }
    }
    /** Per connection: who it is and its recent message times (rate limit). */
    const connections = new Map()

    const secretOf = async (site) => {
      try {
        return await chorus.secrets.get(`SITE_SECRET_${site.toUpperCase().replace(/-/g, "_")}`)
      } catch {
        return undefined
      }
    }

    await chorus.routes.handle("GET", "/plugins/widget/widget.js", () => ({
      headers: {
        "content-type": "text/javascript; charset=utf-8",
        "cache-control": "public, max-age=300",
      },
      body: script,
    }))

    /** Hand a visitor's message to Chorus, keep it in the history, show it, acknowledge it. */
    const deliver = async (socket, connection, clientId, text, attachments) => {
      const { site, sender } = connection
      const now = Date.now()
      const { id, duplicate } = await chorus.channels.receive("widget", {
        account: site,
        sender,
        externalId: `${sender.externalId}:${clientId}`,
        text,
        attachments: attachments.map((a) => ({
          name: a.name,
          mimeType: a.mimeType,
          size: a.size,
          storageKey: a.storageKey,
        })),
      })
      if (!duplicate) {
        const files = attachments.map((a) => ({
          name: a.name,
          mimeType: a.mimeType,
          size: a.size,
          storageKey: a.storageKey,
        }))
        const entry = {
          id,
          from: "visitor",
          text,
          at: now,
          clientId,
          ...(files.length > 0 ? { files } : {}),
        }
        const key = historyKey(site, sender.externalId, now, clientId)
        await chorus.storage.kv.set(key, entry)
        received.inc(1, { site })
        await push(site, sender.externalId, await asFrame(key, entry))
      }
      await socket.send(JSON.stringify({ type: "ack", clientId, id, duplicate }))
    }

    await chorus.routes.websocket("/plugins/widget/ws/{site}", {
      async open(socket, request) {
        const site = request.params.site
        const origin = request.headers["origin"]
        if (allowed.length > 0 && !allowed.includes(origin)) {
          throw new Error(`origin ${origin} is not allowed`)
        }
        const q = request.query
        if (!SITE.test(site) || !VISITOR.test(q.visitor ?? "")) {
          throw new Error("bad site or visitor id")
        }
        // A signed user is recognised; anything else is the anonymous visitor, never the claim.
        let sender = { externalId: `visitor:${q.visitor}`, verified: false }
        if (q.userId && q.userHash) {
          // The hash covers the user id, and the e-mail when one is given: `<userId>` or
          // `<userId>:<email>`. An e-mail outside the signature would be the visitor's claim.
          // With a phone: `<userId>:<email or nothing>:<phone>`.
          const signed = q.phone
            ? `${q.userId}:${q.email ?? ""}:${q.phone}`
            : q.email
            ? `${q.userId}:${q.email}`
            : q.userId
          const secret = await secretOf(site)
          if (
            secret !== undefined &&
            sameHex(await hmac(secret, signed), String(q.userHash).toLowerCase())
          ) {
            sender = { externalId: `user:${q.userId}`, verified: true }
            if (q.email) sender.email = String(q.email).toLowerCase()
            // Your server vouches for it: a verified phone (E.164), the profile's strongest signal.
            if (q.phone && E164.test(String(q.phone))) sender.phone = String(q.phone)
          }
        }
        if (q.name) sender.name = String(q.name).slice(0, 100)
        connections.set(socket.id, { site, sender, sent: [] })
        const key = `${site}|${sender.externalId}`
        if (!windows.has(key)) windows.set(key, new Set())
        windows.get(key).add(socket)
        // Nobody online for this site: the window offers to leave a message and an address.
        const { available } = await chorus.channels.availability("widget", site)
          .catch(() => ({ available: true }))
        await socket.send(
          JSON.stringify({ type: "welcome", site, verified: sender.verified, available }),
        )
        // The conversation since the last message this browser saw.
        const keys = await chorus.storage.kv.list(historyPrefix(site, sender.externalId))
        const since = typeof q.since === "string" ? q.since : ""
        for (const k of keys.filter((k) => k > since).slice(-historyLimit)) {
          const entry = await chorus.storage.kv.get(k)
          if (entry !== null) await socket.send(JSON.stringify(await asFrame(k, entry)))
        }
      },
      async message(socket, data) {
        const connection = connections.get(socket.id)
        if (connection === undefined) return
        const fail = (code, message, clientId) =>
          socket.send(
            JSON.stringify({ type: "error", code, message, ...(clientId ? { clientId } : {}) }),
          )
        // A file's bytes come as the binary frame after its `file` frame.
        if (data instanceof Uint8Array) {
          const file = connection.awaitingBytes
          connection.awaitingBytes = undefined
          if (file === undefined) {
            return fail("bad_frame", "binary data without a file frame before it")
          }
          if (data.length > maxUpload) {
            return fail("too_large", `files are limited to ${maxUpload} bytes`, file.clientId)
          }
          let stored
          try {
            stored = await chorus.attachments.put(data, {
              name: file.name,
              mimeType: file.mimeType,
            })
          } catch (error) {
            return fail(error.reason ?? "refused", error.message, file.clientId)
          }
          return deliver(socket, connection, file.clientId, file.text, [stored])
        }
        let frame
        try {
          frame = JSON.parse(String(data))
        } catch {
          return fail("bad_frame", "not JSON")
        }
        if (frame.type === "typing") {
          // Passed on to the inbox (the host keeps one every two seconds per visitor).
          await chorus.channels.typing("widget", {
            account: connection.site,
            externalId: connection.sender.externalId,
          }).catch(() => false)
          return
        }
        if (frame.type !== "message" && frame.type !== "file") return
        const now = Date.now()
        connection.sent = connection.sent.filter((t) => now - t < 60_000)
        if (connection.sent.length >= perMinute) {
          return fail("rate_limited", `at most ${perMinute} messages a minute`, frame.clientId)
        }
        const text = typeof frame.text === "string" ? frame.text.trim() : ""
        if (!CLIENT_ID.test(frame.clientId ?? "") || text.length > 10_000) {
          return fail(
            "bad_message",
            "a message needs a clientId and at most 10,000 characters",
            frame.clientId,
          )
        }
        connection.sent.push(now)
        if (frame.type === "file") {
          const name = typeof frame.name === "string" && frame.name !== ""
            ? frame.name.slice(0, 255)
            : "file"
          const mimeType = typeof frame.mimeType === "string" && frame.mimeType !== ""
            ? frame.mimeType
            : "application/octet-stream"
          connection.awaitingBytes = { clientId: frame.clientId, name, mimeType, text }
          return
        }
        if (text === "") return fail("bad_message", "a message needs some text", frame.clientId)
        // The offline form's address: the visitor's claim (a signed user's own stays).
        if (typeof frame.email === "string" && !connection.sender.verified) {
          const email = frame.email.trim().toLowerCase()
          if (!EMAIL.test(email)) {
            return fail("bad_email", "that does not look like an e-mail address", frame.clientId)
          }
          connection.sender = { ...connection.sender, email }
        }
        return deliver(socket, connection, frame.clientId, text, [])
      },
      close(socket) {
        const connection = connections.get(socket.id)
        connections.delete(socket.id)
        if (connection !== undefined) {
          windowsOf(connection.site, connection.sender.externalId).delete(socket)
        }
      },
    })

    await chorus.channels.register("widget", {
      /** An operator is typing: every open window of the visitor shows it for a few seconds. */
      async typing(to) {
        await push(to.account, to.externalId, { type: "typing", from: "operator" })
      },
      async send(message) {
        const site = message.account
        const sender = message.recipient.externalId
        // A retried send of the same reply adds nothing.
        if ((await chorus.storage.kv.get(`sent:${message.id}`)) !== null) {
          return { ok: true, externalId: message.id }
        }
        const at = Date.now()
        // An operator's files: kept by their storage key; the visitor gets signed links.
        const files = message.attachments
          .filter((a) => typeof a?.storageKey === "string")
          .map((a) => ({
            name: a.name,
            mimeType: a.mimeType,
            size: a.size,
            storageKey: a.storageKey,
          }))
        const entry = {
          id: message.id,
          from: "operator",
          text: message.text ?? "",
          at,
          ...(files.length > 0 ? { files } : {}),
        }
        const key = historyKey(site, sender, at, message.id)
        // Kept first, then shown: a visitor who is away sees it on the next visit.
        await chorus.storage.kv.set(key, entry)
        await chorus.storage.kv.set(`sent:${message.id}`, key)
        await push(site, sender, await asFrame(key, entry))
        return { ok: true, externalId: message.id }
      },
    })
  },
}
