/**
 * Time-based one-time passwords (RFC 6238 over RFC 4226): HMAC-SHA1, 6 digits, 30-second
 * steps, what every authenticator app (Google Authenticator, Aegis, 1Password) speaks.
 *
 * Pure functions; the time is an argument so callers pass Effect's `Clock` and tests a fixed
 * instant. `verifyCode` answers the matched time step so the caller can refuse a second use of
 * one step (a code stays valid for up to 90 s with the default window).
 */
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto"

export const DIGITS = 6
export const STEP_SECONDS = 30
const BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"

/** RFC 4648 base32, without padding (what otpauth URIs carry). */
export const base32Encode = (bytes: Uint8Array): string => {
  let out = ""
  let bits = 0
  let value = 0
  for (const byte of bytes) {
    value = (value << 8) | byte
    bits += 8
    while (bits >= 5) {
      out += BASE32[(value >>> (bits - 5)) & 31]
      bits -= 5
    }
  }
  if (bits > 0) out += BASE32[(value << (5 - bits)) & 31]
  return out
}

/** Decodes base32 (case, spaces and padding ignored); undefined if it is not base32. */
export const base32Decode = (text: string): Buffer | undefined => {
  const clean = text.replace(/[\s=]/g, "").toUpperCase()
  const out: Array<number> = []
  let bits = 0
  let value = 0
  for (const c of clean) {
    const index = BASE32.indexOf(c)
    if (index < 0) return undefined
    value = ((value << 5) | index) & 0xffff
    bits += 5
    if (bits >= 8) {
      out.push((value >>> (bits - 8)) & 0xff)
      bits -= 8
    }
  }
  return Buffer.from(out)
}

/** A new secret: 20 random bytes (160 bits, RFC 4226's recommendation), base32. */
export const newSecret = (): string => base32Encode(randomBytes(20))

/**
 * The `otpauth://` URI an authenticator app scans from a QR code, e.g.
 * `otpauth://totp/Chorus:ann%40example.com?secret=…&issuer=Chorus&algorithm=SHA1&digits=6&period=30`.
 */
export const otpauthUri = (
  options: { readonly secret: string; readonly account: string; readonly issuer?: string },
): string => {
  const issuer = options.issuer ?? "Chorus"
  const label = `${encodeURIComponent(issuer)}:${encodeURIComponent(options.account)}`
  const query = new URLSearchParams({
    secret: options.secret,
    issuer,
    algorithm: "SHA1",
    digits: String(DIGITS),
    period: String(STEP_SECONDS),
  })
  return `otpauth://totp/${label}?${query.toString()}`
}

/** The time step `nowMs` falls in. */
export const stepAt = (nowMs: number): number => Math.floor(nowMs / 1000 / STEP_SECONDS)

/** HOTP (RFC 4226) of `key` at `counter`. */
const hotp = (key: Uint8Array, counter: number): string => {
  const message = Buffer.alloc(8)
  message.writeBigUInt64BE(BigInt(counter))
  const mac = createHmac("sha1", key).update(message).digest()
  const offset = mac[mac.length - 1]! & 0x0f
  const binary = ((mac[offset]! & 0x7f) << 24) | (mac[offset + 1]! << 16) |
    (mac[offset + 2]! << 8) | mac[offset + 3]!
  return String(binary % 10 ** DIGITS).padStart(DIGITS, "0")
}

const keyOf = (secret: string | Uint8Array): Buffer | undefined =>
  typeof secret === "string" ? base32Decode(secret) : Buffer.from(secret)

/**
 * The code for `secret` (base32, or raw key bytes) at `nowMs`. For tests and for showing the
 * expected code in a development tool; sign-in uses `verifyCode`.
 */
export const codeAt = (secret: string | Uint8Array, nowMs: number): string => {
  const key = keyOf(secret)
  if (key === undefined) throw new TypeError("TOTP secret is not base32")
  return hotp(key, stepAt(nowMs))
}

/**
 * The time step whose code `code` is, looking `window` steps either side of `nowMs` (clocks
 * drift and people type slowly); undefined if none matches or the input is malformed. Every
 * candidate is compared, in constant time, whichever matches.
 */
export const verifyCode = (
  secret: string | Uint8Array,
  code: string,
  nowMs: number,
  window = 1,
): number | undefined => {
  const key = keyOf(secret)
  const given = code.replace(/\s/g, "")
  if (key === undefined || key.length === 0 || !/^\d{6}$/.test(given)) return undefined
  const now = stepAt(nowMs)
  let matched: number | undefined
  for (let step = now - window; step <= now + window; step++) {
    if (step < 0) continue
    if (
      timingSafeEqual(Buffer.from(hotp(key, step)), Buffer.from(given)) && matched === undefined
    ) {
      matched = step
    }
  }
  return matched
}
