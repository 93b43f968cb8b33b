/**
 * A received e-mail (as mailparser's `simpleParser` gives it) → what Chorus does with it: a
 * customer's message, a bounce of one of our replies, or nothing (with the reason). Pure: no I/O.
 *
 * Decisions, in one place:
 * - The sender's address, lower-cased, is the identity (`externalId`) and its `email`, verified:
 *   an address that sent us mail is one the customer controls (issue #7). The Message-ID is the
 *   message's `externalId`, so a mail fetched twice is stored once.
 * - `inReplyTo`: the In-Reply-To ids, then References from the nearest back.
 * - Quoted history and signatures are trimmed from `text` (what the inbox shows); when that
 *   removed anything, the whole body is kept as a text attachment (`original.txt`), so nothing the
 *   customer sent is lost. (The raw .eml is not kept: the attachment store takes only types it can
 *   check from the content, and message/rfc822 is not one of them.)
 * - A delivery status notification (multipart/report; report-type=delivery-status) or a mail of
 *   a mailer daemon is a bounce: it names the Message-ID of our reply that failed and is never a
 *   customer's message.
 * - An automatic reply (Auto-Submitted other than "no", X-Autoreply, X-Autorespond, Precedence
 *   bulk/junk/list/auto_reply) opens no conversation: it is taken only when it answers a mail we
 *   sent (an out-of-office to an operator's reply belongs in that thread), else skipped.
 */

/** Our own Message-IDs start so (compose.mjs `messageIdFor`). */
export const OUR_ID = /^<chorus\.[^@>]+@[^>]+>$/

const MAX_ID = 512
const MAX_THREAD = 50

/** Every `<id>` in a header value (a string, an array of strings or nothing), in order. */
export const messageIds = (value) => {
  const text = Array.isArray(value) ? value.join(" ") : typeof value === "string" ? value : ""
  return [...text.matchAll(/<[^<>\s]+>/g)].map((m) => m[0]).filter((id) => id.length <= MAX_ID)
}

/** In-Reply-To, then References nearest first; no repeats, at most 50. */
export const threadOf = (parsed) => {
  const ids = [...messageIds(parsed.inReplyTo), ...messageIds(parsed.references).reverse()]
  return [...new Set(ids)].slice(0, MAX_THREAD)
}

const header = (parsed, name) => {
  const value = parsed.headers?.get?.(name)
  if (value === undefined || value === null) return undefined
  if (typeof value === "string") return value
  if (typeof value === "object" && "value" in value) return String(value.value)
  return String(value)
}

/** Why this mail is an automatic one (RFC 3834 and the de-facto headers), or undefined. */
export const autoReplyReason = (parsed) => {
  const submitted = header(parsed, "auto-submitted")
  if (submitted !== undefined && submitted.trim().toLowerCase() !== "no") {
    return `Auto-Submitted: ${submitted.trim()}`
  }
  for (const name of ["x-autoreply", "x-autorespond", "x-autoresponder"]) {
    if (header(parsed, name) !== undefined) return `${name} is set`
  }
  const precedence = header(parsed, "precedence")?.trim().toLowerCase()
  if (precedence !== undefined && ["bulk", "junk", "list", "auto_reply"].includes(precedence)) {
    return `Precedence: ${precedence}`
  }
  return undefined
}

const BOUNCE_SENDER = /^(mailer-daemon|postmaster|mail-daemon|mailerdaemon)@/i
const BOUNCE_SUBJECT =
  /undeliver|delivery status notification|returned mail|failure notice|delivery (has )?failed|mail delivery failed|non[- ]?delivery/i

/** Is this a delivery status notification (or a mailer daemon's bounce without one)? */
export const isBounce = (parsed) => {
  const type = parsed.headers?.get?.("content-type")
  if (
    type?.value?.toLowerCase?.() === "multipart/report" &&
    String(type.params?.["report-type"] ?? "").toLowerCase() === "delivery-status"
  ) return true
  const from = parsed.from?.value?.[0]?.address ?? ""
  return BOUNCE_SENDER.test(from) && BOUNCE_SUBJECT.test(parsed.subject ?? "")
}

/** Header-like fields ("Name: value", folded lines joined), blocks separated by blank lines. */
const fieldBlocks = (text) =>
  text.replace(/\r\n/g, "\n").split(/\n\s*\n/).map((block) => {
    const fields = {}
    let last
    for (const line of block.split("\n")) {
      if (/^[ \t]/.test(line) && last !== undefined) {
        fields[last] += " " + line.trim()
        continue
      }
      const m = /^([A-Za-z0-9-]+):\s*(.*)$/.exec(line)
      if (m === null) continue
      last = m[1].toLowerCase()
      fields[last] = m[2].trim()
    }
    return fields
  }).filter((f) => Object.keys(f).length > 0)

const contentText = (attachment) =>
  typeof attachment.content === "string"
    ? attachment.content
    : new TextDecoder().decode(attachment.content)

/**
 * What a bounce says: the Message-ID of the mail that failed, the status (`5.1.1`), the action,
 * the server's words, and whether it is final (a 5.x.x status). A 4.x.x ("delayed") is not a
 * failure. `originalMessageId` is undefined when the bounce does not name it.
 */
export const parseBounce = (parsed) => {
  const parts = parsed.attachments ?? []
  const status = parts.find((a) => /^message\/(global-)?delivery-status$/i.test(a.contentType))
  let recipient
  let action
  let code
  let diagnostic
  // mailparser keeps message/delivery-status as an attachment or, as text/*-like, in the text.
  const fieldsText = status !== undefined ? contentText(status) : parsed.text ?? ""
  {
    const blocks = fieldBlocks(fieldsText)
    // The first per-recipient block that failed, else the first one after the per-message block.
    const perRecipient = blocks.filter((b) => b["final-recipient"] || b["original-recipient"])
    const chosen = perRecipient.find((b) => /^failed$/i.test(b["action"] ?? "")) ??
      perRecipient[0] ?? {}
    recipient = (chosen["final-recipient"] ?? chosen["original-recipient"])?.replace(
      /^rfc822;\s*/i,
      "",
    )
    action = chosen["action"]?.toLowerCase()
    code = /\d\.\d{1,3}\.\d{1,3}/.exec(chosen["status"] ?? "")?.[0]
    diagnostic = chosen["diagnostic-code"]?.replace(/^smtp;\s*/i, "")
  }
  const body = parsed.text ?? ""
  if (code === undefined) {
    // A mailer daemon's plain-text bounce: the enhanced status code in its words, if any.
    code = /\b([45]\.\d{1,3}\.\d{1,3})\b/.exec(body)?.[1]
    if (code === undefined) {
      const basic = /\b([45]\d\d)[ -]/.exec(body)?.[1]
      if (basic !== undefined) code = `${basic[0]}.0.0`
    }
  }
  if (diagnostic === undefined) {
    diagnostic = /\b[45]\d\d[ -].{0,300}/.exec(body)?.[0]?.trim()
  }
  if (recipient === undefined) recipient = header(parsed, "x-failed-recipients")?.trim()
  // The original: the returned message or its headers; else a Message-ID quoted in the text.
  const original = parts.find((a) =>
    /^(message\/rfc822|text\/rfc822-headers|message\/global|message\/global-headers)$/i.test(
      a.contentType,
    )
  )
  const quoted = original !== undefined ? contentText(original) : body
  const originalMessageId = /^Message-ID:\s*(<[^<>\s]+>)/im.exec(quoted)?.[1] ??
    // Some daemons fold the header or quote it with "> ".
    /Message-ID:\s*(<[^<>\s]+>)/i.exec(quoted)?.[1]
  // "failed" is final whatever the status class (RFC 3464 2.3.3: a 4.x.x given up on after
  // days is failed too); only a 5.x.x says the address itself is the problem.
  const hard = code !== undefined && code.startsWith("5")
  const failed = action !== undefined ? action === "failed" : code === undefined || hard
  return {
    originalMessageId,
    recipient,
    action: action ?? (failed ? "failed" : "delayed"),
    status: code ?? "5.0.0",
    reason: diagnostic ?? `delivery ${action ?? "failed"} (${code ?? "no status"})`,
    failed,
    hard,
  }
}

// -- trimming quotes and signatures -------------------------------------------------------------

/** Lines that start the quoted earlier message, in the mail clients' languages we met. */
const QUOTE_HEADERS = [
  /^On\b.{0,200}\bwrote:\s*$/i, // Gmail, Apple Mail, Thunderbird (en)
  /^Le\b.{0,200}\ba écrit\s?:\s*$/i, // fr
  /^Am\b.{0,200}\bschrieb.{0,100}:\s*$/i, // de
  /^El\b.{0,200}\bescribió:\s*$/i, // es
  /^Il giorno\b.{0,200}\bha scritto:\s*$/i, // it
  /^Op\b.{0,200}\bschreef.{0,100}:\s*$/i, // nl
  /^.{0,200}\bпишет:\s*$/i, // ru
  /^-{2,}\s*(Original Message|Forwarded message|Ursprüngliche Nachricht|Message d'origine)\s*-{2,}/i,
  /^_{10,}\s*$/, // Outlook's rule before "From: … Sent: …"
  /^(From|Von|De|От):\s.+$/, // Outlook without a rule, checked with the next lines below
]

/** RFC 3676's signature delimiter, and the phones' signatures. */
const SIGNATURE = [
  /^-- ?$/,
  /^Sent from my (iPhone|iPad|Android|mobile|Galaxy|BlackBerry)\b/i,
  /^Sent from (Outlook|Mail|Yahoo Mail) for\b/i,
  /^Get Outlook for (iOS|Android)/i,
  /^Отправлено с (iPhone|iPad|Android)/i,
]

const outlookHeaderAt = (lines, i) =>
  /^(From|Von|De|От):\s/.test(lines[i]) &&
  lines.slice(i + 1, i + 5).some((l) => /^(Sent|Date|Gesendet|Envoyé|Отправлено):\s/.test(l))

/**
 * The customer's own words: the text before the quoted earlier message (an "On … wrote:" line,
 * an Outlook header block, a block of "> " lines at the end) and before the signature.
 * `trimmed` says whether anything was cut. A mail that is only a quote keeps its whole text.
 */
export const trimReply = (text) => {
  const full = String(text ?? "").replace(/\r\n/g, "\n")
  const lines = full.split("\n")
  let end = lines.length
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]
    const joined = i + 1 < lines.length ? `${line} ${lines[i + 1]}` : line
    const isHeader = QUOTE_HEADERS.slice(0, -1).some((re) => re.test(line)) ||
      // "On Mon, 1 Jan 2026 at 10:00, Anna <a@example.com>" + "wrote:" split over two lines.
      (/^On\b/i.test(line) && /\bwrote:\s*$/i.test(joined) && !/\bwrote:\s*$/i.test(line)) ||
      outlookHeaderAt(lines, i)
    if (isHeader) {
      end = i
      break
    }
    if (SIGNATURE.some((re) => re.test(line))) {
      end = i
      break
    }
  }
  // A trailing block of "> " lines (a quote without a header line).
  let kept = lines.slice(0, end)
  let last = kept.length
  while (last > 0 && (/^\s*>/.test(kept[last - 1]) || kept[last - 1].trim() === "")) last--
  if (last < kept.length && kept.slice(last).some((l) => /^\s*>/.test(l))) {
    kept = kept.slice(0, last)
  }
  const result = kept.join("\n").trim()
  if (result === "") return { text: full.trim(), trimmed: false }
  return { text: result, trimmed: result !== full.trim() }
}

// -- the customer's message ---------------------------------------------------------------------

const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/

const attachmentName = (a, i) => {
  if (typeof a.filename === "string" && a.filename.trim() !== "") return a.filename.trim()
  const ext = /^image\/(png|jpeg|gif|webp)$/i.exec(a.contentType ?? "")?.[1]
  return `attachment-${i + 1}${ext !== undefined ? `.${ext === "jpeg" ? "jpg" : ext}` : ""}`
}

/**
 * The mail as Chorus takes it: `{ kind: "message", inbound, files, original? }`,
 * `{ kind: "bounce", bounce }` or `{ kind: "skip", reason, keepUnseen? }` (`keepUnseen`: a mail a
 * person should look at in the mailbox). `options.account` is the channel account;
 * `options.ownAddress` the mailbox's address (our own copies are skipped); `options.fallbackId`
 * the Message-ID to use when the mail has none (derived from its bytes, so stable);
 * `options.receivedAt` the server's date when the mail has no Date; `options.senderVerified: false`
 * records the address as unverified (mail that reached us without a provider's checks).
 */
export const toInbound = (parsed, options) => {
  if (isBounce(parsed)) return { kind: "bounce", bounce: parseBounce(parsed) }
  const from = parsed.from?.value?.find((a) => typeof a.address === "string" && a.address !== "")
  if (from === undefined) {
    return { kind: "skip", reason: "the mail has no sender address (From)", keepUnseen: true }
  }
  const address = from.address.trim().toLowerCase()
  if (options.ownAddress !== undefined && address === options.ownAddress.toLowerCase()) {
    return { kind: "skip", reason: "a mail from this mailbox itself" }
  }
  const inReplyTo = threadOf(parsed)
  const automatic = autoReplyReason(parsed)
  if (automatic !== undefined && !inReplyTo.some((id) => OUR_ID.test(id))) {
    return { kind: "skip", reason: `an automatic mail (${automatic}) that answers none of ours` }
  }
  const messageId = messageIds(parsed.messageId)[0] ?? options.fallbackId
  const body = typeof parsed.text === "string" && parsed.text.trim() !== ""
    ? parsed.text
    : htmlToText(typeof parsed.html === "string" ? parsed.html : "")
  const { text, trimmed } = trimReply(body)
  const subject = typeof parsed.subject === "string" ? parsed.subject.trim() : ""
  const date = parsed.date instanceof Date && !Number.isNaN(parsed.date.getTime())
    ? parsed.date.getTime()
    : options.receivedAt ?? Date.now()
  const sender = { externalId: address }
  const name = typeof from.name === "string" ? from.name.trim() : ""
  if (name !== "") sender.name = name.slice(0, 200)
  if (EMAIL.test(address) && address.length <= 320) {
    sender.email = address
    sender.verified = options.senderVerified !== false
  }
  const files = (parsed.attachments ?? []).map((a, i) => ({
    name: attachmentName(a, i),
    mimeType: String(a.contentType ?? "application/octet-stream").toLowerCase(),
    bytes: a.content instanceof Uint8Array
      ? a.content
      : new TextEncoder().encode(String(a.content)),
  }))
  return {
    kind: "message",
    inbound: {
      account: options.account,
      sender,
      externalId: messageId,
      text,
      sentAt: date,
      ...(inReplyTo.length > 0 ? { inReplyTo } : {}),
    },
    subject,
    files,
    // The whole body, kept when the shown text is a part of it.
    ...(trimmed ? { original: originalText(parsed, body) } : {}),
    ...(automatic !== undefined ? { automatic } : {}),
  }
}

/** The full text of the mail, with the headers a reader needs to place it. */
const originalText = (parsed, body) => {
  const lines = [
    `From: ${parsed.from?.text ?? ""}`,
    `To: ${[parsed.to ?? []].flat().map((t) => t.text).join(", ")}`,
    `Date: ${parsed.date instanceof Date ? parsed.date.toUTCString() : ""}`,
    `Subject: ${parsed.subject ?? ""}`,
    `Message-ID: ${parsed.messageId ?? ""}`,
    "",
    body,
  ]
  return lines.join("\n")
}

/** HTML → plain text for a mail without a text part: blocks become lines, entities decoded. */
export const htmlToText = (html) =>
  decodeEntities(
    String(html)
      .replace(/<(script|style|head)\b[\s\S]*?<\/\1>/gi, "")
      .replace(/<br\s*\/?>/gi, "\n")
      .replace(/<\/(p|div|li|tr|h[1-6]|blockquote)>/gi, "\n")
      .replace(/<li\b[^>]*>/gi, "- ")
      .replace(/<[^>]+>/g, ""),
  ).replace(/[ \t]+\n/g, "\n").replace(/\n{3,}/g, "\n\n").trim()

const decodeEntities = (text) =>
  text.replace(/&(#x[0-9a-f]+|#\d+|[a-z]+);/gi, (whole, entity) => {
    const named = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'", nbsp: " " }
    if (entity[0] === "#") {
      const code = entity[1] === "x" || entity[1] === "X"
        ? parseInt(entity.slice(2), 16)
        : parseInt(entity.slice(1), 10)
      return Number.isFinite(code) && code > 0 && code <= 0x10ffff
        ? String.fromCodePoint(code)
        : whole
    }
    return named[entity.toLowerCase()] ?? whole
  })

/**
 * What a reply needs to thread in the customer's mail client, from their latest mail: its
 * subject, its Message-ID (In-Reply-To) and the References chain (oldest first, ending with it).
 */
export const threadRecord = (inbound, subject, parsed) => {
  const references = [...messageIds(parsed.references), inbound.externalId]
  return {
    subject,
    messageId: inbound.externalId,
    references: [...new Set(references)].slice(-20),
  }
}
