/**
 * Normalised forms of what identifies a person, so equal things compare equal: phones in E.164
 * (libphonenumber-js, with an optional default country for national numbers), e-mails trimmed and
 * lower-cased (the local part too: providers treat it case-insensitively in practice, and a
 * missed match costs more than an extremely rare false one, which only ever yields a
 * suggestion), names with their spaces collapsed.
 */
import { type CountryCode, parsePhoneNumberFromString } from "libphonenumber-js"

/** E.164 form of `input`, or undefined when it is not a valid phone number. */
export const normalizePhone = (input: string, defaultCountry?: string): string | undefined => {
  const trimmed = input.trim()
  if (trimmed === "") return undefined
  const parsed = parsePhoneNumberFromString(
    trimmed.startsWith("00") ? `+${trimmed.slice(2)}` : trimmed,
    defaultCountry as CountryCode | undefined,
  )
  return parsed !== undefined && parsed.isValid() ? parsed.number : undefined
}

const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/

/** Lower-cased, trimmed e-mail address, or undefined when it is not one. */
export const normalizeEmail = (input: string): string | undefined => {
  const value = input.trim().toLowerCase()
  return EMAIL.test(value) && value.length <= 320 ? value : undefined
}

/** A name as people write it: trimmed, inner spaces collapsed; undefined when empty. */
export const normalizeName = (input: string | null | undefined): string | undefined => {
  const value = input?.trim().replace(/\s+/g, " ")
  return value === undefined || value === "" ? undefined : value
}

/** The key two names must share to count as "the same name": lower case, letters only. */
export const nameKey = (input: string | null | undefined): string | undefined => {
  const name = normalizeName(input)
  if (name === undefined) return undefined
  const key = name.toLowerCase().normalize("NFKD").replace(/[^\p{L}\p{N} ]/gu, "")
  return key.includes(" ") ? key : undefined
}
