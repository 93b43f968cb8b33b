/**
 * Viber bots ↔ Chorus, the pure part (no I/O but WebCrypto): the webhook's signature, callbacks
 * → inbound messages and delivery statuses, replies → `send_message` bodies (text split at
 * 7,000 characters, pictures and files by URL, keyboards), Viber's status codes classified.
 *
 * Wire format: Viber REST Bot API (developers.viber.com/docs/api/rest-bot-api/,
 * creators.viber.com/docs/bots-api/). `message_token` is a 64-bit integer in Viber's JSON, more
 * than a JavaScript number holds: it is read from the raw text as a string, never as a number.
 */

export const TEXT_LIMIT = 7000
/** Pictures: JPEG or PNG, at most 1 MB (the smaller, iOS, limit of Viber's docs). */
export const PICTURE_MAX_BYTES = 1024 * 1024
export const TRACKING_LIMIT = 4000
/** send_message: at most 100 messages to a user within an hour without a reply (status 12). */
export const UNANSWERED_LIMIT = 100
export const UNANSWERED_WINDOW_MS = 60 * 60 * 1000

/**
 * Viber's limit on messages to a person who has not replied: the counter of the current hour
 * (started again after an hour, and by their next message), and whether one more may go.
 */
export const unansweredNext = (counter, now) => {
  const current = counter == null || now - counter.since > UNANSWERED_WINDOW_MS
    ? { since: now, count: 0 }
    : counter
  return {
    allowed: current.count < UNANSWERED_LIMIT,
    counter: { ...current, count: current.count + 1 },
  }
}

const hex = (bytes) =>
  [...new Uint8Array(bytes)].map((b) => b.toString(16).padStart(2, "0")).join("")

/** HMAC-SHA256 of `body` with the bot's token, lower-case hex (X-Viber-Content-Signature). */
export const signatureOf = async (body, token) => {
  const key = await crypto.subtle.importKey(
    "raw",
    new TextEncoder().encode(token),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  )
  const data = typeof body === "string" ? new TextEncoder().encode(body) : body
  return hex(await crypto.subtle.sign("HMAC", key, data))
}

/** Whether `signature` is the body's, compared in constant time. */
export const signatureValid = async (body, signature, token) => {
  if (typeof signature !== "string" || signature === "") return false
  const expected = await signatureOf(body, token)
  const given = signature.trim().toLowerCase()
  if (given.length !== expected.length) return false
  let diff = 0
  for (let i = 0; i < expected.length; i++) diff |= expected.charCodeAt(i) ^ given.charCodeAt(i)
  return diff === 0
}

/** Viber JSON with every `message_token` kept exactly, as a string. */
export const parseViber = (text) =>
  JSON.parse(text.replace(/"message_token"\s*:\s*(-?\d+)/g, '"message_token":"$1"'))

/** Split `text` into parts of at most `limit` characters, at a line or word when there is one. */
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
 * Chorus's button rows as a Viber keyboard (a 6-column grid: each button of a row gets an equal
 * share), and the `tracking_data` that lets a press be told from typed text: a `reply` button
 * sends its ActionBody as the user's text, and Viber hands our tracking_data back with it.
 */
export const keyboardOf = (rows) => {
  if (rows === undefined || rows.length === 0) return { keyboard: undefined }
  if (rows.some((r) => r.length > 6)) {
    return { refused: "Viber keyboards hold at most 6 buttons a row" }
  }
  const Buttons = []
  const labels = {}
  for (const row of rows) {
    const Columns = Math.max(1, Math.floor(6 / row.length))
    for (const b of row) {
      if (b.url !== undefined) {
        Buttons.push({ Columns, Rows: 1, ActionType: "open-url", ActionBody: b.url, Text: b.text })
      } else {
        const payload = b.payload ?? b.text
        Buttons.push({ Columns, Rows: 1, ActionType: "reply", ActionBody: payload, Text: b.text })
        labels[payload] = b.text
      }
    }
  }
  if (Buttons.length > 24) return { refused: "Viber keyboards hold at most 24 buttons" }
  const tracking = JSON.stringify({ chorus: { buttons: labels } })
  return {
    keyboard: { Type: "keyboard", DefaultHeight: false, Buttons },
    ...(tracking.length <= TRACKING_LIMIT ? { tracking } : {}),
  }
}

/** The press a text answers, if it is a payload of the keyboard we sent (our tracking_data). */
export const pressOf = (text, trackingData) => {
  if (typeof trackingData !== "string" || typeof text !== "string") return undefined
  try {
    const labels = JSON.parse(trackingData)?.chorus?.buttons
    if (labels && Object.hasOwn(labels, text)) return { payload: text, label: String(labels[text]) }
  } catch {
    // Not ours.
  }
  return undefined
}

/**
 * A `send_message` answer (`{ status, status_message }`) or a network error → Chorus's result.
 * Codes: developers.viber.com/docs/api/rest-bot-api/#error-codes.
 */
export const failureOf = (answer) => {
  const status = Number(answer?.status)
  const reason = String(answer?.status_message ?? answer?.message ?? answer)
  if (!Number.isInteger(status)) return { ok: false, retryable: true, code: "network", reason }
  const code = String(status)
  // 5 receiverNotRegistered, 6 receiverNotSubscribed: nothing this bot sends reaches them.
  if (status === 5 || status === 6) {
    return { ok: false, retryable: false, code, reason, unreachable: true }
  }
  // 12 tooManyRequests: a rate limit, or the 100-unanswered-messages limit (tracked ourselves).
  if (status === 12) return { ok: false, retryable: true, code, reason, retryAfterMs: 60_000 }
  // 1 invalidUrl, 2 invalidAuthToken, 3 badData, 4 missingData, 7 blocked, 8 not found,
  // 9 suspended, 10 webhookNotSet, 11 receiverNoSuitableDevice, 13 apiVersionNotSupported,
  // 14 incompatibleWithVersion, 15 notAuthorized, 16–22 (inline/broadcast/payment/country),
  // 23 freeMessagesExceeded, 24 noBalance: the same request would fail again.
  if (status >= 1 && status <= 24) return { ok: false, retryable: false, code, reason }
  // "other: General error": Viber's side.
  return { ok: false, retryable: true, code, reason }
}

const nameOf = (
  user,
) => (typeof user?.name === "string" && user.name !== "" ? user.name : undefined)

/**
 * One callback → what to do with it: `{ inbound, files }` a user's message, `{ status }` a
 * delivery receipt, `{ unsubscribed }` / `{ subscribed }`, `{ started }` a conversation opened
 * (not a message), `{ skip }` nothing to store (with why).
 */
export const eventOf = (account, event) => {
  const token = event?.message_token
  switch (event?.event) {
    case "message": {
      const m = event.message
      const sender = event.sender
      if (
        typeof token !== "string" || typeof sender?.id !== "string" || typeof m?.type !== "string"
      ) {
        return { skip: "message without message_token, sender or type" }
      }
      const files = []
      const words = []
      const caption = typeof m.text === "string" ? m.text : ""
      const media = typeof m.media === "string" ? m.media : undefined
      switch (m.type) {
        case "text":
          words.push(caption)
          break
        case "picture":
          words.push(caption)
          if (media) {
            files.push({
              url: media,
              name: m.file_name ?? `picture-${token}.jpg`,
              mimeType: "image/jpeg",
            })
          }
          break
        case "video":
          words.push(caption)
          if (media) {
            files.push({
              url: media,
              name: m.file_name ?? `video-${token}.mp4`,
              mimeType: "video/mp4",
            })
          }
          break
        case "file":
          if (media) {
            files.push({
              url: media,
              name: m.file_name ?? `file-${token}`,
              mimeType: "application/octet-stream",
            })
          }
          break
        case "sticker":
          words.push(`[sticker ${m.sticker_id ?? ""}]`.replace(" ]", "]"))
          break
        case "contact":
          // A contact card the person chose to share: maybe their own, maybe someone else's.
          // It is kept as words, never as the sender's phone (see README: "Contacts").
          words.push(
            `[contact: ${[m.contact?.name, m.contact?.phone_number].filter(Boolean).join(" ")}]`,
          )
          break
        case "location":
          words.push(`[location: ${m.location?.lat}, ${m.location?.lon}]`)
          break
        case "url":
          words.push(media ?? caption)
          break
        default:
          words.push(caption !== "" ? caption : `[${m.type}]`)
      }
      const press = m.type === "text" ? pressOf(caption, m.tracking_data) : undefined
      const name = nameOf(sender)
      return {
        inbound: {
          account,
          sender: { externalId: sender.id, ...(name !== undefined ? { name } : {}) },
          externalId: token,
          text: press?.label ?? words.filter((w) => w !== "").join("\n"),
          ...(typeof event.timestamp === "number" ? { sentAt: event.timestamp } : {}),
          ...(press !== undefined ? { payload: press.payload } : {}),
        },
        files,
      }
    }
    case "delivered":
    case "seen":
    case "failed": {
      if (typeof token !== "string") return { skip: `${event.event} without message_token` }
      return {
        status: {
          account,
          externalId: token,
          state: event.event === "seen" ? "read" : event.event,
          ...(event.event === "failed"
            ? {
              error: { code: "failed", reason: String(event.desc ?? "Viber could not deliver it") },
            }
            : {}),
          ...(typeof event.timestamp === "number" ? { at: event.timestamp } : {}),
        },
      }
    }
    case "unsubscribed":
      return typeof event.user_id === "string"
        ? { unsubscribed: event.user_id }
        : { skip: "unsubscribed without user_id" }
    case "subscribed":
      return typeof event.user?.id === "string"
        ? { subscribed: event.user.id }
        : { skip: "subscribed without user" }
    case "conversation_started":
      return { started: { user: event.user, subscribed: event.subscribed === true } }
    case "webhook":
      return { skip: "webhook check" }
    default:
      return { skip: `event ${event?.event}` }
  }
}
