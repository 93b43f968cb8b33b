/**
 * WhatsApp Cloud API webhooks → Chorus (pure: no I/O but the signature's HMAC). A `messages`
 * change carries customers' messages (each becomes an inbound message, its media files to fetch
 * by media id) and statuses of what we sent (delivered, read, failed).
 *
 * The wire format is Meta's "messages webhook reference" (Graph API v21+); field names are
 * Meta's. External ids: a message's `wamid`, so a redelivered webhook is the same message.
 */

/** @typedef {{ mediaId: string, name: string, mimeType: string, sha256?: string }} MediaToFetch */

const encoder = new TextEncoder()

const hex = (bytes) =>
  [...new Uint8Array(bytes)].map((b) => b.toString(16).padStart(2, "0")).join("")

/** Compare two strings in time independent of where they differ. */
const sameText = (a, b) => {
  if (a.length !== b.length) return false
  let diff = 0
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i)
  return diff === 0
}

/**
 * Whether `header` (`X-Hub-Signature-256: sha256=<hex>`) is the HMAC-SHA256 of the raw `body`
 * keyed with the app secret. Meta signs the bytes it sent: check them before parsing.
 */
export const signatureValid = async (appSecret, body, header) => {
  if (typeof header !== "string" || !header.startsWith("sha256=")) return false
  const key = await crypto.subtle.importKey(
    "raw",
    encoder.encode(appSecret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  )
  const mac = hex(await crypto.subtle.sign("HMAC", key, body))
  return sameText(mac, header.slice("sha256=".length).toLowerCase())
}

/** The `X-Hub-Signature-256` value Meta would send for `body` (for tests and the fake). */
export const signatureOf = async (appSecret, body) => {
  const key = await crypto.subtle.importKey(
    "raw",
    encoder.encode(appSecret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  )
  return `sha256=${hex(await crypto.subtle.sign("HMAC", key, body))}`
}

/** A WhatsApp id (`wa_id`, digits with the country code) as E.164. */
export const e164 = (waId) => {
  if (typeof waId !== "string" && typeof waId !== "number") return undefined
  const digits = String(waId).replace(/[^\d]/g, "")
  return /^[1-9]\d{6,14}$/.test(digits) ? `+${digits}` : undefined
}

const EXTENSIONS = {
  "image/jpeg": "jpg",
  "image/png": "png",
  "image/webp": "webp",
  "video/mp4": "mp4",
  "video/3gpp": "3gp",
  "audio/ogg": "ogg",
  "audio/mpeg": "mp3",
  "audio/mp4": "m4a",
  "audio/aac": "aac",
  "audio/amr": "amr",
  "application/pdf": "pdf",
}

const MEDIA_TYPES = ["image", "video", "audio", "document", "sticker"]

/** The media file of a message (image, video, audio, voice note, document, sticker). */
export const mediaOf = (message) => {
  if (!MEDIA_TYPES.includes(message.type)) return []
  const media = message[message.type]
  if (typeof media?.id !== "string" || media.id === "") return []
  // Meta gives e.g. "audio/ogg; codecs=opus": the store wants the bare type.
  const mimeType = String(media.mime_type ?? "application/octet-stream").split(";")[0].trim()
  const extension = EXTENSIONS[mimeType]
  const kind = message.type === "audio" && media.voice === true ? "voice" : message.type
  const name = typeof media.filename === "string" && media.filename !== ""
    ? media.filename
    : `${kind}-${media.id}${extension ? `.${extension}` : ""}`
  return [{
    mediaId: media.id,
    name,
    mimeType,
    ...(typeof media.sha256 === "string" ? { sha256: media.sha256 } : {}),
  }]
}

/** A shared contact card in words: name, phones, e-mails, organisation. */
export const contactCardText = (card) => {
  const name = card?.name?.formatted_name ??
    [card?.name?.first_name, card?.name?.last_name].filter(Boolean).join(" ")
  const phones = (card?.phones ?? []).map((p) => p.phone ?? (p.wa_id ? `+${p.wa_id}` : undefined))
  const emails = (card?.emails ?? []).map((e) => e.email)
  const org = card?.org?.company
  return [name, org, ...phones, ...emails].filter((v) => typeof v === "string" && v !== "").join(
    ", ",
  )
}

/** A location in words, and as a `geo:` URI (RFC 5870) for the payload. */
export const locationOf = (location) => {
  const lat = Number(location?.latitude)
  const lon = Number(location?.longitude)
  const place = [location?.name, location?.address].filter((v) => typeof v === "string" && v !== "")
    .join(", ")
  return {
    text: `[location] ${place !== "" ? `${place} ` : ""}(${lat}, ${lon})`.trim(),
    payload: `geo:${lat},${lon}`,
  }
}

/** What the customer wrote, in words, and a payload where the message has one. */
const contentOf = (message) => {
  switch (message.type) {
    case "text":
      return { text: String(message.text?.body ?? "") }
    case "image":
    case "video":
    case "document":
      return { text: String(message[message.type]?.caption ?? "") }
    case "audio":
      return { text: "" }
    case "sticker":
      return { text: "" }
    case "location":
      return locationOf(message.location)
    case "contacts":
      return {
        text: (message.contacts ?? []).map((c) => `[contact] ${contactCardText(c)}`).join("\n"),
      }
    case "interactive": {
      const reply = message.interactive?.button_reply ?? message.interactive?.list_reply
      if (reply !== undefined) {
        return {
          text: String(reply.title ?? reply.id ?? ""),
          ...(typeof reply.id === "string" && reply.id !== "" ? { payload: reply.id } : {}),
        }
      }
      const flow = message.interactive?.nfm_reply
      if (flow !== undefined) {
        return { text: `[form] ${flow.body ?? flow.name ?? ""}`.trim() }
      }
      return { text: `[interactive reply: ${message.interactive?.type ?? "unknown"}]` }
    }
    case "button":
      // A template's quick-reply button: the text shown, the payload the template defined.
      return {
        text: String(message.button?.text ?? message.button?.payload ?? ""),
        ...(typeof message.button?.payload === "string" && message.button.payload !== ""
          ? { payload: message.button.payload }
          : {}),
      }
    case "reaction":
      return {
        text: message.reaction?.emoji
          ? `[reaction] ${message.reaction.emoji}`
          : "[reaction removed]",
      }
    case "order":
      return {
        text: `[order] ${(message.order?.product_items ?? []).length} item(s) from catalog ${
          message.order?.catalog_id ?? "?"
        }${message.order?.text ? `: ${message.order.text}` : ""}`,
      }
    default: {
      // "unsupported" (and types newer than this plugin): kept, with Meta's words.
      const why = (message.errors ?? []).map((e) => e.error_data?.details ?? e.title ?? e.message)
        .filter(Boolean).join("; ")
      return { text: `[${message.type ?? "unknown"} message${why ? `: ${why}` : ""}]` }
    }
  }
}

/** Earlier messages this one answers: a quoted message, the message a button was under. */
const inReplyToOf = (message) => {
  const ids = []
  if (typeof message.context?.id === "string" && message.context.id !== "") {
    ids.push(message.context.id)
  }
  const reacted = message.reaction?.message_id
  if (message.type === "reaction" && typeof reacted === "string" && !ids.includes(reacted)) {
    ids.push(reacted)
  }
  return ids
}

/** A business-scoped user id (WhatsApp usernames, 2026): `US.13491208655302741918`. */
export const BSUID = /^[A-Z]{2}\.(ENT\.)?[A-Za-z0-9]{1,128}$/

/**
 * Who wrote: the `wa_id` (their number) when Meta gives it, else the business-scoped user id of
 * a customer who hides their number behind a username (`from_user_id`, `contacts[].user_id`).
 */
const senderIdOf = (value, message) => {
  const contacts = value.contacts ?? []
  const byNumber = message.from !== undefined
    ? contacts.find((c) => String(c.wa_id) === String(message.from))
    : undefined
  const byUser = message.from_user_id !== undefined
    ? contacts.find((c) => String(c.user_id) === String(message.from_user_id))
    : undefined
  const profile = byNumber ?? byUser ?? (contacts.length === 1 ? contacts[0] : undefined)
  const waId = message.from ?? profile?.wa_id
  const userId = message.from_user_id ?? profile?.user_id
  return { waId: waId === undefined ? undefined : String(waId), userId, profile }
}

/** One customer message of a `messages` change as an inbound message (without its account). */
export const inboundOf = (value, message) => {
  const { waId, userId, profile } = senderIdOf(value, message)
  const externalId = waId ?? (typeof userId === "string" && BSUID.test(userId) ? userId : "")
  const sender = { externalId }
  const name = profile?.profile?.name ?? profile?.profile?.username
  if (typeof name === "string" && name !== "") sender.name = name
  const phone = e164(waId)
  // The number is the account WhatsApp delivered from: Meta vouches for it.
  if (phone !== undefined) {
    sender.phone = phone
    sender.verified = true
  }
  const content = contentOf(message)
  const inReplyTo = inReplyToOf(message)
  const seconds = Number(message.timestamp)
  return {
    inbound: {
      sender,
      externalId: String(message.id),
      text: content.text,
      ...(Number.isFinite(seconds) && seconds > 0 ? { sentAt: seconds * 1000 } : {}),
      ...(content.payload !== undefined ? { payload: content.payload.slice(0, 1024) } : {}),
      ...(inReplyTo.length > 0 ? { inReplyTo } : {}),
    },
    files: mediaOf(message),
  }
}

/** Error codes after which nothing sent to that number can arrive (see README "Statuses"). */
const UNREACHABLE = new Set([131026])

/** A status of a sent message as a Chorus delivery status; `undefined` for `sent` and others. */
export const statusOf = (status) => {
  const at = Number(status.timestamp) > 0 ? Number(status.timestamp) * 1000 : undefined
  const base = { externalId: String(status.id), ...(at !== undefined ? { at } : {}) }
  if (status.status === "delivered" || status.status === "read") {
    return { ...base, state: status.status }
  }
  if (status.status === "failed") {
    const error = status.errors?.[0] ?? {}
    const details = error.error_data?.details
    const reason = [error.title ?? error.message ?? "failed", details].filter(Boolean).join(": ")
    return {
      ...base,
      state: "failed",
      error: { code: String(error.code ?? "failed"), reason },
      ...(UNREACHABLE.has(Number(error.code)) ? { unreachable: true } : {}),
    }
  }
  return undefined
}

/**
 * Everything a webhook body carries, by the business phone number it came to:
 * `{ messages: [{ phoneNumberId, inbound, files }], statuses: [{ phoneNumberId, status,
 * recipient }], skipped: [reason] }`. Throws on a body that is not a WhatsApp webhook.
 */
export const parseWebhook = (body) => {
  if (body?.object !== "whatsapp_business_account" || !Array.isArray(body.entry)) {
    throw new Error(`not a WhatsApp Business webhook (object ${JSON.stringify(body?.object)})`)
  }
  const messages = []
  const statuses = []
  const skipped = []
  for (const entry of body.entry) {
    for (const change of entry?.changes ?? []) {
      if (change?.field !== "messages") {
        skipped.push(`field ${change?.field} of account ${entry?.id}`)
        continue
      }
      const value = change.value ?? {}
      const phoneNumberId = String(value.metadata?.phone_number_id ?? "")
      for (const message of value.messages ?? []) {
        const converted = inboundOf(value, message)
        if (converted.inbound.sender.externalId === "") {
          skipped.push(`message ${message?.id} names no sender (no from, wa_id or user_id)`)
          continue
        }
        messages.push({ phoneNumberId, ...converted })
      }
      for (const status of value.statuses ?? []) {
        const converted = statusOf(status)
        if (converted === undefined) {
          skipped.push(`status ${status?.status} of ${status?.id}`)
          continue
        }
        statuses.push({
          phoneNumberId,
          status: converted,
          recipient: String(status.recipient_id ?? ""),
        })
      }
      for (const error of value.errors ?? []) {
        skipped.push(`error ${error?.code}: ${error?.title ?? error?.message}`)
      }
    }
  }
  return { messages, statuses, skipped }
}
