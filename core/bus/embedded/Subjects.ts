/**
 * NATS subject rules for the embedded bus, so it accepts and routes exactly what JetStream
 * would: tokens separated by `.`, `*` matches one token, `>` (last token only) matches one or
 * more; published subjects carry no wildcards.
 */

export type Tokens = ReadonlyArray<string>

const TOKEN = /^[^\s.*>]+$/

/** The tokens of a subject pattern (wildcards allowed), or a reason it is invalid. */
export const parsePattern = (pattern: string): Tokens | string => {
  if (pattern.length === 0) return "empty subject"
  const tokens = pattern.split(".")
  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i]!
    if (token === "*") continue
    if (token === ">") {
      if (i !== tokens.length - 1) return `">" must be the last token in ${JSON.stringify(pattern)}`
      continue
    }
    if (!TOKEN.test(token)) {
      return `invalid token ${JSON.stringify(token)} in ${JSON.stringify(pattern)}`
    }
  }
  return tokens
}

/** The tokens of a concrete subject to publish on, or a reason it is invalid. */
export const parseSubject = (subject: string): Tokens | string => {
  const tokens = parsePattern(subject)
  if (typeof tokens === "string") return tokens
  return tokens.some((t) => t === "*" || t === ">")
    ? `cannot publish to a wildcard subject ${JSON.stringify(subject)}`
    : tokens
}

/** Whether the concrete `subject` matches `pattern`. */
export const matches = (pattern: Tokens, subject: Tokens): boolean => {
  for (let i = 0; i < pattern.length; i++) {
    const p = pattern[i]!
    if (p === ">") return subject.length > i
    if (i >= subject.length) return false
    if (p !== "*" && p !== subject[i]) return false
  }
  return pattern.length === subject.length
}

/** Whether some concrete subject matches both patterns. */
export const overlaps = (a: Tokens, b: Tokens): boolean => {
  const go = (i: number, j: number): boolean => {
    if (i === a.length && j === b.length) return true
    if (i < a.length && a[i] === ">") return j < b.length
    if (j < b.length && b[j] === ">") return i < a.length
    if (i === a.length || j === b.length) return false
    const x = a[i]!
    const y = b[j]!
    return (x === "*" || y === "*" || x === y) && go(i + 1, j + 1)
  }
  return go(0, 0)
}
