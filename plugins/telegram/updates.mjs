/**
 * Telegram updates → Chorus inbound messages (pure: no I/O). A message's media become files to
 * fetch (by `file_id`), stored in the attachment store before the message is handed in.
 *
 * External ids: `<chat id>:<message id>` for a message; an edit is a message of its own,
 * `<chat id>:<message id>:edit:<edit_date>`, so the history keeps both versions.
 */

/** @typedef {{ fileId: string, name: string, mimeType: string, size?: number }} FileToFetch */

const nameOf = (user) =>
  [user?.first_name, user?.last_name].filter((p) => typeof p === "string" && p !== "").join(" ") ||
  (user?.username ? `@${user.username}` : undefined)

/** Telegram gives phone numbers with or without "+": E.164 needs it. */
export const e164 = (phone) => {
  if (typeof phone !== "string") return undefined
  const digits = phone.replace(/[^\d]/g, "")
  return /^[1-9]\d{6,14}$/.test(digits) ? `+${digits}` : undefined
}

const extension = {
  "image/jpeg": "jpg",
  "image/webp": "webp",
  "video/webm": "webm",
  "application/x-tgsticker": "tgs",
}

/** The files of a message, largest photo size only. */
export const filesOf = (message) => {
  /** @type {FileToFetch[]} */
  const files = []
  if (Array.isArray(message.photo) && message.photo.length > 0) {
    const largest = [...message.photo].sort((a, b) =>
      (a.file_size ?? a.width * a.height) - (b.file_size ?? b.width * b.height)
    ).at(-1)
    files.push({
      fileId: largest.file_id,
      name: `photo-${message.message_id}.jpg`,
      mimeType: "image/jpeg",
      size: largest.file_size,
    })
  }
  if (message.document) {
    const d = message.document
    files.push({
      fileId: d.file_id,
      name: d.file_name ?? `document-${message.message_id}`,
      mimeType: d.mime_type ?? "application/octet-stream",
      size: d.file_size,
    })
  }
  if (message.voice) {
    files.push({
      fileId: message.voice.file_id,
      name: `voice-${message.message_id}.ogg`,
      mimeType: message.voice.mime_type ?? "audio/ogg",
      size: message.voice.file_size,
    })
  }
  if (message.audio) {
    const a = message.audio
    files.push({
      fileId: a.file_id,
      name: a.file_name ?? `audio-${message.message_id}.mp3`,
      mimeType: a.mime_type ?? "audio/mpeg",
      size: a.file_size,
    })
  }
  if (message.video) {
    const v = message.video
    files.push({
      fileId: v.file_id,
      name: v.file_name ?? `video-${message.message_id}.mp4`,
      mimeType: v.mime_type ?? "video/mp4",
      size: v.file_size,
    })
  }
  if (message.sticker) {
    const s = message.sticker
    const mimeType = s.is_animated
      ? "application/x-tgsticker"
      : s.is_video
      ? "video/webm"
      : "image/webp"
    files.push({
      fileId: s.file_id,
      name: `sticker-${message.message_id}.${extension[mimeType]}`,
      mimeType,
      size: s.file_size,
    })
  }
  return files
}

/** What the customer wrote, in words, when a message is only media or a shared contact. */
const textOf = (message) => {
  if (typeof message.text === "string") return message.text
  if (typeof message.caption === "string") return message.caption
  if (message.contact) {
    const c = message.contact
    return `[contact] ${[c.first_name, c.last_name].filter(Boolean).join(" ")} ${
      c.phone_number ?? ""
    }`.trim()
  }
  if (message.sticker) return message.sticker.emoji ?? ""
  if (message.location) {
    return `[location] ${message.location.latitude},${message.location.longitude}`
  }
  return ""
}

/**
 * The inbound message of an update, and the files to fetch for it; `undefined` for updates
 * Chorus does not take (channel posts, callback queries, joins, a bot's own messages, …), with
 * the reason.
 */
export const toInbound = (account, update) => {
  if (update.callback_query !== undefined) return fromButton(account, update)
  const edited = update.edited_message !== undefined
  const message = update.message ?? update.edited_message
  if (message === undefined) {
    return {
      skip: `update ${update.update_id} has no message (${
        Object.keys(update).filter((k) => k !== "update_id").join(", ")
      })`,
    }
  }
  if (message.chat?.type !== "private") {
    return { skip: `update ${update.update_id} is from a ${message.chat?.type} chat` }
  }
  if (message.from?.is_bot) return { skip: `update ${update.update_id} is from a bot` }
  const from = message.from ?? message.chat
  const sender = { externalId: String(from.id) }
  const name = nameOf(from)
  if (name !== undefined) sender.name = name
  // A contact the user shared about themselves (the keyboard's "share my phone" button) is their
  // number as Telegram knows it: verified. Someone else's card is only text.
  if (message.contact && message.contact.user_id === from.id) {
    const phone = e164(message.contact.phone_number)
    if (phone !== undefined) {
      sender.phone = phone
      sender.verified = true
    }
  }
  const externalId = edited
    ? `${message.chat.id}:${message.message_id}:edit:${message.edit_date ?? update.update_id}`
    : `${message.chat.id}:${message.message_id}`
  const sentAt = ((edited ? message.edit_date : undefined) ?? message.date) * 1000
  const text = textOf(message)
  // A deep link (t.me/<bot>?start=<parameter>) arrives as "/start <parameter>": the parameter
  // is the message's payload (a campaign, an order number), the text stays as written.
  const start = /^\/start(?:@\w+)?\s+(\S{1,64})\s*$/.exec(text)
  return {
    inbound: {
      account,
      sender,
      externalId,
      text,
      sentAt,
      ...(start !== null && !edited ? { payload: start[1] } : {}),
    },
    files: filesOf(message),
  }
}

/**
 * A pressed inline button: a message with the button's text (as the customer saw it) and its
 * payload (the callback data). The callback query's id makes it unique: a redelivered update is
 * the same message.
 */
const fromButton = (account, update) => {
  const query = update.callback_query
  if (query.message?.chat !== undefined && query.message.chat.type !== "private") {
    return { skip: `callback query ${query.id} is from a ${query.message.chat.type} chat` }
  }
  if (typeof query.data !== "string" || query.data === "") {
    return { skip: `callback query ${query.id} has no data (a game button)` }
  }
  const from = query.from
  const sender = { externalId: String(from.id) }
  const name = nameOf(from)
  if (name !== undefined) sender.name = name
  const pressed = (query.message?.reply_markup?.inline_keyboard ?? []).flat()
    .find((b) => b.callback_data === query.data)
  return {
    inbound: {
      account,
      sender,
      externalId: `callback:${query.id}`,
      text: pressed?.text ?? query.data,
      sentAt: Date.now(),
      payload: query.data,
    },
    files: [],
    callbackQueryId: query.id,
  }
}
