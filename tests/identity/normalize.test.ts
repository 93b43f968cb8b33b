/** What counts as the same phone, e-mail and name. */
import { assert, describe, it } from "@effect/vitest"
import {
  nameKey,
  normalizeEmail,
  normalizeName,
  normalizePhone,
} from "../../core/identity/Normalize.ts"

describe("Identity: normalising signals", () => {
  it("phones become E.164 whatever the punctuation; national numbers need a country", () => {
    assert.strictEqual(normalizePhone("+7 (916) 123-45-67"), "+79161234567")
    assert.strictEqual(normalizePhone("0079161234567"), "+79161234567")
    assert.strictEqual(normalizePhone("8 916 123 45 67", "RU"), "+79161234567")
    assert.strictEqual(normalizePhone("030 901820", "DE"), "+4930901820")
    assert.isUndefined(normalizePhone("8 916 123 45 67"))
    assert.isUndefined(normalizePhone("12"))
    assert.isUndefined(normalizePhone(""))
  })

  it("e-mails are trimmed and lower-cased; anything else is refused", () => {
    assert.strictEqual(normalizeEmail("  Anna.P@Example.COM "), "anna.p@example.com")
    assert.isUndefined(normalizeEmail("anna"))
    assert.isUndefined(normalizeEmail("a b@example.com"))
  })

  it("names compare by their letters, and only full names count", () => {
    assert.strictEqual(normalizeName("  Anna   Petrova "), "Anna Petrova")
    assert.strictEqual(nameKey("Anna  PETROVA"), nameKey("anna petrova"))
    assert.isUndefined(nameKey("Anna"), "a first name alone is too common to match on")
    assert.isUndefined(normalizeName("   "))
  })
})
