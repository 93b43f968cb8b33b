/**
 * Replies → Telegram: text split at Telegram's 4,096-character limit (at a paragraph, line or
 * word boundary when there is one), media as photos or documents, and Bot API errors classified
 * for Chorus's delivery policy.
 */

export const TEXT_LIMIT = 4096
export const CAPTION_LIMIT = 1024

/** Split `text` into parts of at most `limit` characters, preferring natural boundaries. */
export const splitText = (text, limit = TEXT_LIMIT) => {
  const parts = []
  let rest = text
  while (rest.length > limit) {
    const window = rest.slice(0, limit)
    let cut = Math.max(window.lastIndexOf("\n\n"), window.lastIndexOf("\n"))
    if (cut < limit / 2) cut = window.lastIndexOf(" ")
    if (cut < limit / 2) cut = limit
    // Never split a surrogate pair.
    if (cut === limit && /[\uD800-\uDBFF]/.test(rest[cut - 1])) cut -= 1
    parts.push(rest.slice(0, cut).trimEnd())
    rest = rest.slice(cut).replace(/^\s+/, "")
  }
  if (rest.length > 0 || parts.length === 0) parts.push(rest)
  return parts
}

/** A Bot API failure as Chorus's send result: retryable or not, with Telegram's words. */
export const failureOf = (error) => {
  const code = error?.error_code
  const description = String(error?.description ?? error?.message ?? error)
  if (code === 429) {
    const seconds = Number(error?.parameters?.retry_after ?? 1)
    return {
      ok: false,
      retryable: true,
      code: "429",
      reason: description,
      retryAfterMs: seconds * 1000,
    }
  }
  if (code === 403) {
    // Blocked by the user, deactivated, kicked: nothing this bot sends can reach them.
    return {
      ok: false,
      retryable: false,
      code: /blocked/i.test(description) ? "blocked" : "403",
      reason: description,
      unreachable: true,
    }
  }
  if (typeof code === "number" && code >= 400 && code < 500) {
    return { ok: false, retryable: false, code: String(code), reason: description }
  }
  // 5xx, network failures, timeouts: Telegram may take it later.
  return {
    ok: false,
    retryable: true,
    code: typeof code === "number" ? String(code) : "network",
    reason: description,
  }
}
