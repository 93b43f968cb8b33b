/**
 * Replies → e-mail (pure: no I/O): our Message-ID, derived from the Chorus message id so a reply
 * sent again after a crash is the same mail; the subject and the threading headers taken from
 * the customer's latest mail; the HTML alternative of the text; and SMTP failures classified for
 * Chorus's delivery policy.
 */

/**
 * `<chorus.<id>@<domain of the mailbox>>`: the same Chorus message always gets the same
 * Message-ID, so the customer's client and our own dedupe see one mail, however often it is sent.
 */
export const messageIdFor = (chorusId, address) => {
  const domain = String(address).split("@").pop().toLowerCase()
  const local = /^[A-Za-z0-9._-]{1,200}$/.test(chorusId)
    ? chorusId
    : [...new TextEncoder().encode(String(chorusId))].map((b) => b.toString(16).padStart(2, "0"))
      .join("").slice(0, 200)
  return `<chorus.${local}@${domain}>`
}

/** "Re: <subject>", without stacking ("Re: Re:", "AW: Re:") . */
export const replySubject = (subject, fallback) => {
  const s = String(subject ?? "").trim()
  if (s === "") return fallback
  return /^(re|aw|sv|antw|vs|ref|rif|odp|ha)\s*:/i.test(s) ? s : `Re: ${s}`
}

/**
 * The headers that make a reply thread in the customer's client (RFC 5322 3.6.4): In-Reply-To
 * their latest mail, References its chain plus it (at most 20 ids; the first is kept, as RFC
 * 5322 asks when shortening).
 */
export const threadHeaders = (thread) => {
  if (thread === undefined || thread === null || typeof thread.messageId !== "string") return {}
  const chain = Array.isArray(thread.references) ? thread.references : [thread.messageId]
  const references = chain.length > 20 ? [chain[0], ...chain.slice(-19)] : chain
  return { inReplyTo: thread.messageId, references: references.join(" ") }
}

const escapeHtml = (text) =>
  text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;")

/** The text as simple HTML: paragraphs at blank lines, line breaks kept, links clickable. */
export const textToHtml = (text) => {
  const paragraphs = String(text).replace(/\r\n/g, "\n").split(/\n{2,}/).map((p) =>
    escapeHtml(p.trim()).replace(
      /\bhttps?:\/\/[^\s<>"]+/g,
      (url) => `<a href="${url}">${url}</a>`,
    ).replace(/\n/g, "<br>\n")
  ).filter((p) => p !== "")
  return `<!doctype html><html><body>${
    paragraphs.map((p) => `<p>${p}</p>`).join("\n")
  }</body></html>`
}

/**
 * A nodemailer failure as Chorus's send result. An SMTP 4xx reply, a dropped or refused
 * connection, a timeout, DNS: the server may take it later (retryable). A 5xx reply is final;
 * a 5xx about the mailbox (550, 551, 553, or an enhanced 5.1.x status) means nothing sent to this
 * address can arrive: `unreachable`. A refused login (535) is final too: the mailbox's settings
 * need fixing, and retrying would only lock the account.
 */
export const failureOf = (error) => {
  const responseCode = typeof error?.responseCode === "number" ? error.responseCode : undefined
  const reason = String(error?.response ?? error?.message ?? error).slice(0, 1000)
  const enhanced = /\b([245])\.(\d{1,3})\.(\d{1,3})\b/.exec(reason)
  if (responseCode !== undefined && responseCode >= 400 && responseCode < 500) {
    return { ok: false, retryable: true, code: String(responseCode), reason }
  }
  if (responseCode !== undefined && responseCode >= 500 && responseCode < 600) {
    if (error?.code === "EAUTH") {
      return { ok: false, retryable: false, code: "auth", reason }
    }
    // 503 is "bad sequence of commands": the session, not the message; a new connection may do.
    if (responseCode === 503) return { ok: false, retryable: true, code: "503", reason }
    const mailbox = [550, 551, 553].includes(responseCode) ||
      (enhanced !== null && enhanced[1] === "5" && enhanced[2] === "1")
    const spam = enhanced !== null && enhanced[2] === "7"
    return {
      ok: false,
      retryable: false,
      code: enhanced !== null ? enhanced[0] : String(responseCode),
      reason,
      // A policy refusal (5.7.x: spam, DMARC) is about this mail, not about the address.
      ...(mailbox && !spam ? { unreachable: true } : {}),
    }
  }
  if (error?.code === "EAUTH" || error?.code === "ENOAUTH") {
    return { ok: false, retryable: false, code: "auth", reason }
  }
  if (error?.code === "ECONFIG" || error?.code === "EENVELOPE" && responseCode === undefined) {
    return { ok: false, retryable: false, code: String(error.code).toLowerCase(), reason }
  }
  // Connection refused or dropped, TLS, DNS, timeouts: try again later.
  return {
    ok: false,
    retryable: true,
    code: typeof error?.code === "string" ? error.code.toLowerCase() : "network",
    reason,
  }
}
