/**
 * Replies → WhatsApp Cloud API request bodies (pure): text split at 4,096 characters, media by
 * uploaded media id, buttons as reply buttons, a list or a link button, the 24-hour customer
 * service window, and Graph API errors classified for Chorus's delivery policy.
 */

export const TEXT_LIMIT = 4096
/** Captions of images, videos and documents. */
export const CAPTION_LIMIT = 1024
/** Body of an interactive message with reply buttons or a link button. */
export const BUTTON_BODY_LIMIT = 1024
export const REPLY_BUTTONS_MAX = 3
export const REPLY_BUTTON_TITLE_LIMIT = 20
export const LIST_ROWS_MAX = 10
export const LIST_ROW_TITLE_LIMIT = 24
export const WINDOW_MS = 24 * 60 * 60 * 1000

/**
 * Meta's published limits as the channel's delivery defaults (the shape of a manifest's
 * `contributes.channels[].delivery`, core/delivery/Policy.ts `DeliverySettings`): 80 messages a
 * second per business number (Cloud API throughput), and per customer one message every 6
 * seconds on average (the pair rate limit: 10 a minute, bursts borrowed from later).
 */
export const DELIVERY = {
  timeout: "15 seconds",
  pacing: {
    account: { limit: 80, interval: "1 second" },
    recipient: { limit: 10, interval: "1 minute" },
  },
}

/** Split `text` into parts of at most `limit` characters, preferring natural boundaries. */
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
 * How WhatsApp takes a file of this type and size: `image` (JPEG, PNG ≤ 5 MB), `video` (MP4,
 * 3GPP ≤ 16 MB), `audio` (AAC, AMR, MP3, MP4 audio, OGG/Opus ≤ 16 MB), `sticker` (WebP ≤ 500 KB),
 * else `document` (≤ 100 MB); `undefined` beyond that.
 */
export const mediaKindOf = (mimeType, size) => {
  const MB = 1024 * 1024
  if (/^image\/(jpeg|png)$/.test(mimeType) && size <= 5 * MB) return "image"
  if (/^video\/(mp4|3gpp)$/.test(mimeType) && size <= 16 * MB) return "video"
  if (/^audio\/(aac|amr|mpeg|mp4|ogg)$/.test(mimeType) && size <= 16 * MB) return "audio"
  if (mimeType === "image/webp" && size <= 500 * 1024) return "sticker"
  if (size <= 100 * MB) return "document"
  return undefined
}

/** Whether a caption may go with media of this kind. */
export const captionable = (kind) => kind === "image" || kind === "video" || kind === "document"

/**
 * The 24-hour customer service window: free-form messages only within 24 hours of the
 * customer's last message (`lastInboundMs`, undefined if they never wrote). A failure result
 * when closed, `undefined` when open.
 */
export const windowClosed = (lastInboundMs, nowMs) => {
  if (typeof lastInboundMs === "number" && nowMs - lastInboundMs < WINDOW_MS) return undefined
  const since = typeof lastInboundMs === "number"
    ? `the customer last wrote at ${new Date(lastInboundMs).toISOString()}, more than 24 hours ago`
    : "the customer has not written to this number"
  return {
    ok: false,
    retryable: false,
    code: "reply_window_closed",
    reason: `WhatsApp's 24-hour reply window is closed (${since}): only an approved template ` +
      "can be sent now (POST /plugins/whatsapp/templates/send); a free-form reply is possible " +
      "again once the customer writes.",
  }
}

/**
 * The interactive part of a reply with buttons, or a refusal. Rows are flattened (WhatsApp lays
 * buttons out itself): up to 3 payload buttons with titles ≤ 20 characters become reply
 * buttons; up to 10 with titles ≤ 24 a list (opened by `listLabel`); a single link button a
 * call-to-action URL button. Anything else is refused with the reason.
 */
export const interactiveOf = (body, buttons, listLabel = "Choose") => {
  const flat = buttons.flat()
  const links = flat.filter((b) => b.url !== undefined)
  const refuse = (reason) => ({
    refusal: { ok: false, retryable: false, code: "buttons_unsupported", reason },
  })
  if (flat.length === 0) return refuse("no buttons")
  if (body.length === 0) return refuse("WhatsApp needs a text with buttons")
  if (links.length > 0) {
    if (flat.length > 1) {
      return refuse(
        "WhatsApp shows one link button per message, without other buttons: send the link alone",
      )
    }
    const [link] = links
    if (link.text.length > REPLY_BUTTON_TITLE_LIMIT) {
      return refuse(`a link button's text is at most ${REPLY_BUTTON_TITLE_LIMIT} characters`)
    }
    return {
      interactive: {
        type: "cta_url",
        body: { text: body },
        action: { name: "cta_url", parameters: { display_text: link.text, url: link.url } },
      },
    }
  }
  const ids = flat.map((b) => String(b.payload ?? b.text))
  if (new Set(ids).size !== ids.length) return refuse("two buttons have the same payload")
  if (ids.some((id) => id.length > 256)) return refuse("a button payload is at most 256 characters")
  if (
    flat.length <= REPLY_BUTTONS_MAX && flat.every((b) => b.text.length <= REPLY_BUTTON_TITLE_LIMIT)
  ) {
    return {
      interactive: {
        type: "button",
        body: { text: body },
        action: {
          buttons: flat.map((b, i) => ({ type: "reply", reply: { id: ids[i], title: b.text } })),
        },
      },
    }
  }
  if (flat.length <= LIST_ROWS_MAX && flat.every((b) => b.text.length <= LIST_ROW_TITLE_LIMIT)) {
    return {
      interactive: {
        type: "list",
        body: { text: body },
        action: {
          button: listLabel.slice(0, REPLY_BUTTON_TITLE_LIMIT),
          sections: [{ rows: flat.map((b, i) => ({ id: ids[i], title: b.text })) }],
        },
      },
    }
  }
  return refuse(
    `WhatsApp takes at most ${REPLY_BUTTONS_MAX} reply buttons (titles ≤ ` +
      `${REPLY_BUTTON_TITLE_LIMIT} characters) or a list of ${LIST_ROWS_MAX} (titles ≤ ` +
      `${LIST_ROW_TITLE_LIMIT}); this reply has ${flat.length}, the longest title ` +
      `${Math.max(...flat.map((b) => b.text.length))} characters`,
  )
}

/** Graph API codes that mean "later": throughput (130429), pair rate (131056), app/WABA limits. */
const RETRY_AFTER_MS = {
  // Cloud API throughput (80 msg/s per number by default): a moment is enough.
  130429: 1_000,
  // Pair rate limit: about one message every 6 seconds to the same user.
  131056: 6_000,
  // Application and WhatsApp Business Account rate limits: hourly budgets.
  4: 60_000,
  80007: 60_000,
  // Spam rate limit: the number's sends are throttled for a while.
  131048: 60_000,
  // "Something went wrong" / "Service unavailable" / "Business account locked or upgrading".
  131000: 5_000,
  131016: 5_000,
  131057: 60_000,
  133004: 5_000,
}

/**
 * A Graph API answer (HTTP `status` and its JSON body) as Chorus's failure result. Pass
 * `status: undefined` and an error for a network failure or timeout.
 */
export const failureOf = (status, body, networkError) => {
  if (status === undefined) {
    return {
      ok: false,
      retryable: true,
      code: "network",
      reason: String(networkError?.message ?? networkError ?? "no answer from the Graph API"),
    }
  }
  const error = body?.error ?? {}
  const code = Number(error.code)
  const details = error.error_data?.details
  const reason = [error.message ?? `HTTP ${status}`, details].filter(Boolean).join(": ")
  if (code === 131047) {
    return {
      ok: false,
      retryable: false,
      code: "reply_window_closed",
      reason: `WhatsApp's 24-hour reply window is closed: only an approved template can be sent ` +
        `now (POST /plugins/whatsapp/templates/send). WhatsApp said: ${reason}`,
    }
  }
  if (RETRY_AFTER_MS[code] !== undefined) {
    return {
      ok: false,
      retryable: true,
      code: String(code),
      reason,
      retryAfterMs: RETRY_AFTER_MS[code],
    }
  }
  if (status === 429) {
    return {
      ok: false,
      retryable: true,
      code: Number.isFinite(code) ? String(code) : "429",
      reason,
      retryAfterMs: 1_000,
    }
  }
  if (status >= 500) {
    return {
      ok: false,
      retryable: true,
      code: Number.isFinite(code) ? String(code) : String(status),
      reason,
    }
  }
  return {
    ok: false,
    retryable: false,
    code: Number.isFinite(code) ? String(code) : String(status),
    reason,
    // Not a WhatsApp number, or one that cannot take messages.
    ...(code === 131026 ? { unreachable: true } : {}),
  }
}

/** A multipart/form-data body (the media upload): fields, then one file. */
export const multipartBody = (fields, file) => {
  const boundary = `chorus-${crypto.randomUUID()}`
  const encoder = new TextEncoder()
  const chunks = []
  for (const [name, value] of Object.entries(fields)) {
    chunks.push(encoder.encode(
      `--${boundary}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`,
    ))
  }
  const filename = file.name.replace(/["\r\n\\]/g, "_")
  chunks.push(encoder.encode(
    `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${filename}"\r\n` +
      `Content-Type: ${file.mimeType}\r\n\r\n`,
  ))
  chunks.push(file.bytes)
  chunks.push(encoder.encode(`\r\n--${boundary}--\r\n`))
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0))
  let at = 0
  for (const c of chunks) {
    out.set(c, at)
    at += c.length
  }
  return { contentType: `multipart/form-data; boundary=${boundary}`, body: out }
}
