/**
 * What a file really is, from its first bytes: a declared MIME type is a claim (a customer's
 * browser, a provider's field), the content is the fact. Executables are recognised so they can
 * be refused whatever they claim to be.
 */

interface Signature {
  readonly type: string
  readonly test: (b: Uint8Array) => boolean
}

const starts = (b: Uint8Array, bytes: ReadonlyArray<number>, at = 0) =>
  b.length >= at + bytes.length && bytes.every((x, i) => b[at + i] === x)
const ascii = (s: string) => [...s].map((c) => c.charCodeAt(0))

const SIGNATURES: ReadonlyArray<Signature> = [
  { type: "image/jpeg", test: (b) => starts(b, [0xff, 0xd8, 0xff]) },
  { type: "image/png", test: (b) => starts(b, [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]) },
  { type: "image/gif", test: (b) => starts(b, ascii("GIF87a")) || starts(b, ascii("GIF89a")) },
  { type: "image/webp", test: (b) => starts(b, ascii("RIFF")) && starts(b, ascii("WEBP"), 8) },
  { type: "application/pdf", test: (b) => starts(b, ascii("%PDF-")) },
  { type: "audio/ogg", test: (b) => starts(b, ascii("OggS")) },
  {
    type: "audio/mpeg",
    test: (b) => starts(b, ascii("ID3")) || starts(b, [0xff, 0xfb]) || starts(b, [0xff, 0xf3]),
  },
  { type: "audio/wav", test: (b) => starts(b, ascii("RIFF")) && starts(b, ascii("WAVE"), 8) },
  { type: "video/webm", test: (b) => starts(b, [0x1a, 0x45, 0xdf, 0xa3]) },
  // ISO base media (mp4, m4a, mov): "ftyp" at offset 4; the brand tells audio from video.
  {
    type: "video/mp4",
    test: (b) => starts(b, ascii("ftyp"), 4) && !starts(b, ascii("M4A"), 8),
  },
  { type: "audio/mp4", test: (b) => starts(b, ascii("ftyp"), 4) && starts(b, ascii("M4A"), 8) },
  { type: "application/zip", test: (b) => starts(b, [0x50, 0x4b, 0x03, 0x04]) },
  { type: "application/gzip", test: (b) => starts(b, [0x1f, 0x8b]) },
]

/** Programs: refused by every store, whatever type was declared. */
const EXECUTABLES: ReadonlyArray<Signature> = [
  { type: "application/x-msdownload", test: (b) => starts(b, ascii("MZ")) },
  { type: "application/x-elf", test: (b) => starts(b, [0x7f, 0x45, 0x4c, 0x46]) },
  {
    type: "application/x-mach-binary",
    test: (b) =>
      starts(b, [0xfe, 0xed, 0xfa, 0xce]) || starts(b, [0xfe, 0xed, 0xfa, 0xcf]) ||
      starts(b, [0xcf, 0xfa, 0xed, 0xfe]) || starts(b, [0xca, 0xfe, 0xba, 0xbe]),
  },
  { type: "text/x-shellscript", test: (b) => starts(b, ascii("#!")) },
]

/** Containers whose declared type is more precise than the signature (docx is a zip). */
const REFINES: Readonly<Record<string, ReadonlyArray<string>>> = {
  "application/zip": [
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "application/vnd.oasis.opendocument.text",
    "application/vnd.oasis.opendocument.spreadsheet",
    "application/epub+zip",
  ],
  // Telegram's animated stickers are gzipped JSON.
  "application/gzip": ["application/x-tgsticker"],
  "video/mp4": ["video/quicktime", "audio/mp4"],
  "audio/ogg": ["audio/opus", "video/ogg"],
}

/** Types a file that has no signature may be (plain text and the like); checked as text. */
const TEXTUAL = new Set([
  "text/plain",
  "text/csv",
  "application/json",
  "text/markdown",
  "text/calendar",
  "text/vcard",
])

export type Sniffed =
  | { readonly _tag: "Executable"; readonly type: string }
  | { readonly _tag: "Known"; readonly type: string }
  | { readonly _tag: "Unknown" }

export const sniff = (bytes: Uint8Array): Sniffed => {
  const head = bytes.subarray(0, 64)
  for (const s of EXECUTABLES) if (s.test(head)) return { _tag: "Executable", type: s.type }
  for (const s of SIGNATURES) if (s.test(head)) return { _tag: "Known", type: s.type }
  return { _tag: "Unknown" }
}

const looksLikeText = (bytes: Uint8Array) => {
  const sample = bytes.subarray(0, 4096)
  try {
    new TextDecoder("utf-8", { fatal: true }).decode(
      sample.length < bytes.length ? sample.subarray(0, sample.length - 3) : sample,
    )
  } catch {
    return false
  }
  return !sample.includes(0)
}

export type Classified =
  | { readonly ok: true; readonly type: string }
  | { readonly ok: false; readonly reason: string }

/**
 * The type to store `bytes` under, given the `declared` one: the content's own when it has a
 * signature (a precise declared type of the same family is kept, e.g. a .docx zip), the declared
 * one for text that is text; refused for programs and for content that contradicts its claim.
 */
export const classify = (bytes: Uint8Array, declared: string): Classified => {
  const claimed = declared.split(";")[0]!.trim().toLowerCase()
  const found = sniff(bytes)
  if (found._tag === "Executable") {
    return {
      ok: false,
      reason: `the file is a program (${found.type}); programs are never accepted`,
    }
  }
  if (found._tag === "Known") {
    if (claimed === found.type || (REFINES[found.type] ?? []).includes(claimed)) {
      return { ok: true, type: claimed }
    }
    return { ok: true, type: found.type }
  }
  if (TEXTUAL.has(claimed)) {
    return looksLikeText(bytes)
      ? { ok: true, type: claimed }
      : { ok: false, reason: `declared ${claimed} but the content is not text` }
  }
  return {
    ok: false,
    reason: `the content does not match the declared type ${claimed} (or any type it recognises)`,
  }
}

/** Does `type` match one of `patterns` (`image/*`, `application/pdf`)? */
export const typeAllowed = (type: string, patterns: ReadonlyArray<string>): boolean =>
  patterns.some((p) => p === type || (p.endsWith("/*") && type.startsWith(p.slice(0, -1))))

export const DEFAULT_ALLOWED_TYPES: ReadonlyArray<string> = [
  "image/jpeg",
  "image/png",
  "image/gif",
  "image/webp",
  "application/pdf",
  "audio/*",
  "video/mp4",
  "video/webm",
  "video/quicktime",
  "text/plain",
  "text/csv",
  "application/zip",
  "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
  "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
  "application/vnd.openxmlformats-officedocument.presentationml.presentation",
  "application/vnd.oasis.opendocument.text",
  "application/vnd.oasis.opendocument.spreadsheet",
  "application/x-tgsticker",
]
