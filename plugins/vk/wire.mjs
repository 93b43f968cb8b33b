/**
 * VK community messages ↔ Chorus, the pure part (no I/O): Callback API / Bots Long Poll events
 * → inbound messages, replies → `messages.send` parameters (text parts, deterministic
 * `random_id`, inline keyboard), and VK API errors classified for Chorus's delivery policy.
 *
 * Wire format: API version 5.199 (https://dev.vk.com/ru/api/callback/getting-started,
 * https://dev.vk.com/ru/reference/objects/message, https://dev.vk.com/ru/api/bots/development/keyboard).
 *
 * External ids: a community dialog's message is `<id>` (VK's message id within the community,
 * what `messages.send` answers); a callback-button press is `event:<event_id>`.
 */

export const TEXT_LIMIT = 4096
export const API_VERSION = "5.199"

/** Inline keyboards (dev.vk.com "Клавиатура для ботов"): 6 rows, 5 buttons a row, 10 in all. */
export const KEYBOARD = { rows: 6, perRow: 5, total: 10, label: 40, payload: 255 }

/**
 * A sliding-window pacer: the returned function resolves once a call may go, at most `limit`
 * in any `intervalMs`. `now` and `sleep` are given by tests.
 */
export const pacer = (
  limit,
  intervalMs,
  now = () => Date.now(),
  sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
) => {
  const recent = []
  let queue = Promise.resolve()
  const take = async () => {
    for (;;) {
      const t = now()
      while (recent.length > 0 && t - recent[0] >= intervalMs) recent.shift()
      if (recent.length < limit) {
        recent.push(t)
        return
      }
      await sleep(intervalMs - (t - recent[0]))
    }
  }
  // One at a time, in order of asking.
  return () => (queue = queue.then(take))
}

/** Split `text` into parts of at most `limit` characters, at a paragraph, line or word if any. */
export const splitText = (text, limit = TEXT_LIMIT) => {
  const parts = []
  let rest = text
  while (rest.length > limit) {
    const window = rest.slice(0, limit)
    let cut = window.lastIndexOf("\n")
    if (cut < limit / 2) cut = window.lastIndexOf(" ")
    if (cut < limit / 2) cut = limit
    if (cut === limit && /[\uD800-\uDBFF]/.test(rest[cut - 1])) cut -= 1
    parts.push(rest.slice(0, cut).trimEnd())
    rest = rest.slice(cut).replace(/^\s+/, "")
  }
  if (rest.length > 0 || parts.length === 0) parts.push(rest)
  return parts
}

/**
 * `random_id` for part `part` of Chorus message `id`: VK refuses a second message with the same
 * `random_id` to the same peer, so a retried send cannot repeat a part. FNV-1a, 31 bits, not 0.
 */
export const randomIdOf = (id, part) => {
  let hash = 0x811c9dc5
  for (const byte of new TextEncoder().encode(`${id}#${part}`)) {
    hash ^= byte
    hash = Math.imul(hash, 0x01000193) >>> 0
  }
  return (hash & 0x7fffffff) || 1
}

/** The inline keyboard for Chorus's button rows, or a refusal when VK could not show it. */
export const keyboardOf = (rows) => {
  if (rows === undefined || rows.length === 0) return { keyboard: undefined }
  const count = rows.reduce((n, r) => n + r.length, 0)
  if (
    rows.length > KEYBOARD.rows || rows.some((r) => r.length > KEYBOARD.perRow) ||
    count > KEYBOARD.total
  ) {
    return {
      refused:
        `VK inline keyboards hold at most ${KEYBOARD.rows} rows of ${KEYBOARD.perRow} and ${KEYBOARD.total} buttons in all`,
    }
  }
  const buttons = []
  for (const row of rows) {
    const out = []
    for (const b of row) {
      const label = b.text.length > KEYBOARD.label
        ? `${b.text.slice(0, KEYBOARD.label - 1)}…`
        : b.text
      if (b.url !== undefined) {
        out.push({ action: { type: "open_link", link: b.url, label } })
        continue
      }
      // VK wants the payload as JSON: a JSON string carries ours unchanged.
      const payload = JSON.stringify(b.payload ?? "")
      if (payload.length > KEYBOARD.payload) {
        return { refused: `a button payload is longer than VK's ${KEYBOARD.payload} characters` }
      }
      out.push({ action: { type: "callback", label, payload } })
    }
    buttons.push(out)
  }
  return { keyboard: { inline: true, buttons } }
}

/** A VK API error (`{ error: { error_code, error_msg } }`) as Chorus's send result. */
export const failureOf = (error) => {
  const code = Number(error?.error_code)
  const reason = String(error?.error_msg ?? error?.message ?? error)
  // 1 unknown, 6 too many requests per second, 9 flood control, 10 internal server error.
  if (code === 6) return { ok: false, retryable: true, code: "6", reason, retryAfterMs: 1_000 }
  if (code === 9) return { ok: false, retryable: true, code: "9", reason, retryAfterMs: 60_000 }
  if (code === 1 || code === 10) return { ok: false, retryable: true, code: String(code), reason }
  // 900 blacklisted, 901 no permission (the person never allowed messages or denied them), 902
  // privacy settings: nothing this community sends can reach them.
  if (code === 900 || code === 901 || code === 902) {
    return { ok: false, retryable: false, code: String(code), reason, unreachable: true }
  }
  if (Number.isInteger(code) && code > 0) {
    // 5 auth, 7 permission, 15 access denied, 100 bad parameter, 914 too long, …
    return { ok: false, retryable: false, code: String(code), reason }
  }
  // No VK error object: network, timeout, 5xx of the front.
  return { ok: false, retryable: true, code: "network", reason }
}

/** The largest size of a VK photo object (by pixels; `orig_photo` when VK gives it). */
export const largestPhoto = (photo) => {
  const sizes = [...(photo?.sizes ?? [])]
  if (photo?.orig_photo?.url) sizes.push(photo.orig_photo)
  return sizes.filter((s) => typeof s?.url === "string")
    .sort((a, b) => (a.width ?? 0) * (a.height ?? 0) - (b.width ?? 0) * (b.height ?? 0))
    .at(-1)
}

const idOf = (message) =>
  Number(message?.id) > 0
    ? String(message.id)
    : message?.conversation_message_id !== undefined
    ? `${message.peer_id}:c${message.conversation_message_id}`
    : undefined

/**
 * The files of a message to download (largest photo, documents, voice messages) and the
 * words standing for what is no file (a sticker, a video, a wall post…), in order.
 * @returns {{ files: Array<{ url: string, name: string, mimeType: string }>, notes: string[] }}
 */
export const attachmentsOf = (message) => {
  const files = []
  const notes = []
  for (const [i, a] of (message.attachments ?? []).entries()) {
    const n = `${message.id ?? message.conversation_message_id}-${i + 1}`
    if (a.type === "photo") {
      const size = largestPhoto(a.photo)
      if (size) files.push({ url: size.url, name: `photo-${n}.jpg`, mimeType: "image/jpeg" })
      else notes.push("[photo]")
    } else if (a.type === "doc" && typeof a.doc?.url === "string") {
      const ext = typeof a.doc.ext === "string" ? a.doc.ext : "bin"
      const title = typeof a.doc.title === "string" && a.doc.title !== ""
        ? a.doc.title
        : `doc-${n}.${ext}`
      files.push({ url: a.doc.url, name: title, mimeType: "application/octet-stream" })
    } else if (
      a.type === "audio_message" && (a.audio_message?.link_ogg || a.audio_message?.link_mp3)
    ) {
      const ogg = a.audio_message.link_ogg
      files.push(
        ogg
          ? { url: ogg, name: `voice-${n}.ogg`, mimeType: "audio/ogg" }
          : { url: a.audio_message.link_mp3, name: `voice-${n}.mp3`, mimeType: "audio/mpeg" },
      )
    } else if (a.type === "sticker") {
      notes.push(`[sticker ${a.sticker?.sticker_id ?? ""}]`.replace(" ]", "]"))
    } else if (a.type === "link" && typeof a.link?.url === "string") {
      notes.push(`[link: ${a.link.url}]`)
    } else {
      notes.push(`[${a.type ?? "attachment"}]`)
    }
  }
  return { files, notes }
}

/** Forwarded messages as quoted lines, so their words are not lost. */
const forwardedText = (message) =>
  (message.fwd_messages ?? []).filter((m) => typeof m?.text === "string" && m.text !== "")
    .map((m) => m.text.split("\n").map((l) => `> ${l}`).join("\n"))

/**
 * One Callback API / Long Poll event → what to do with it:
 * `{ inbound, files }` a customer's message, `{ press }` a callback button,
 * `{ deny }` / `{ allow }` message permission, `{ typing }` the person is typing, `{ skip }` nothing to store (with why).
 */
export const eventOf = (account, event) => {
  const type = event?.type
  const object = event?.object
  if (type === "message_new") {
    // API ≥ 5.103 wraps the message: { message, client_info }.
    const message = object?.message
    if (typeof message !== "object" || message === null) {
      return { skip: "message_new without message" }
    }
    if (message.out === 1) return { skip: "outgoing" }
    const externalId = idOf(message)
    if (externalId === undefined || typeof message.from_id !== "number") {
      return { skip: "message_new without id or sender" }
    }
    if (message.from_id < 0) return { skip: "from another community" }
    // A group chat the community is in (peer ids from 2e9): a reply would go to the person's
    // own dialog instead, so only direct messages are a channel.
    if (message.peer_id >= 2_000_000_000) return { skip: "a group chat message" }
    const { files, notes } = attachmentsOf(message)
    const text = [message.text ?? "", ...forwardedText(message), ...notes].filter((t) => t !== "")
      .join("\n")
    const replied = message.reply_message !== undefined ? idOf(message.reply_message) : undefined
    const payload = payloadText(message.payload)
    return {
      inbound: {
        account,
        sender: { externalId: String(message.from_id) },
        externalId,
        text,
        ...(typeof message.date === "number" ? { sentAt: message.date * 1000 } : {}),
        ...(replied !== undefined ? { inReplyTo: [replied] } : {}),
        ...(payload !== undefined ? { payload } : {}),
      },
      peerId: message.peer_id,
      files,
    }
  }
  if (type === "message_event") {
    if (typeof object?.user_id !== "number" || typeof object?.event_id !== "string") {
      return { skip: "message_event without user_id or event_id" }
    }
    return {
      press: {
        account,
        sender: { externalId: String(object.user_id) },
        externalId: `event:${object.event_id}`,
        payload: payloadText(object.payload) ?? "",
      },
      eventId: object.event_id,
      userId: object.user_id,
      peerId: object.peer_id ?? object.user_id,
    }
  }
  if (type === "message_typing_state") {
    return object?.state === "typing" && typeof object?.from_id === "number" && object.from_id > 0
      ? { typing: String(object.from_id) }
      : { skip: "message_typing_state not typing" }
  }
  if (type === "message_deny" && typeof object?.user_id === "number") {
    return { deny: String(object.user_id) }
  }
  if (type === "message_allow" && typeof object?.user_id === "number") {
    return { allow: String(object.user_id) }
  }
  if (type === "message_reply" || type === "message_edit") return { skip: `${type}: our own` }
  return { skip: `event ${type}` }
}

/** A button payload as VK gives it back (a JSON value, or the JSON text) → our string. */
export const payloadText = (payload) => {
  if (payload === undefined || payload === null) return undefined
  let value = payload
  if (typeof payload === "string") {
    try {
      value = JSON.parse(payload)
    } catch {
      return payload.slice(0, 1024)
    }
  }
  return (typeof value === "string" ? value : JSON.stringify(value)).slice(0, 1024)
}
