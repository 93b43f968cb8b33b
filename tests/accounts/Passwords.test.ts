import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { make } from "../../core/accounts/Passwords.ts"
import { failure } from "./AccountsTest.ts"

describe("Passwords", () => {
  it.effect("hashes with scrypt N=2^15 r=8 p=1, a 16-byte salt and a 32-byte key", () =>
    Effect.gen(function* () {
      const passwords = yield* make()
      const stored = yield* passwords.hash("correct horse battery")
      const parts = stored.split("$")
      assert.deepStrictEqual(parts.slice(0, 4), ["scrypt", "32768", "8", "1"])
      assert.strictEqual(Buffer.from(parts[4]!, "base64").length, 16)
      assert.strictEqual(Buffer.from(parts[5]!, "base64").length, 32)
      assert.notInclude(stored, "correct horse")
      assert.isTrue(yield* passwords.verify("correct horse battery", stored))
      assert.isFalse(yield* passwords.verify("correct horse batterz", stored))
      assert.isFalse(yield* passwords.verify("", stored))
      // A fresh salt each time: one password, two different hashes.
      assert.notStrictEqual(yield* passwords.hash("correct horse battery"), stored)
    }))

  it.effect("verifies hashes made at another cost (the cost travels with the hash)", () =>
    Effect.gen(function* () {
      const cheap = yield* make({ N: 1024, r: 8, p: 1 })
      const stored = yield* cheap.hash("old enough password")
      assert.match(stored, /^scrypt\$1024\$8\$1\$/)
      const current = yield* make()
      assert.isTrue(yield* current.verify("old enough password", stored))
      assert.isFalse(yield* current.verify("old enough passworD", stored))
    }))

  it.effect("refuses weak passwords: under 10 or over 200 characters, one character repeated", () =>
    Effect.gen(function* () {
      const passwords = yield* make({ N: 1024, r: 8, p: 1 })
      const reason = (password: string) =>
        failure(passwords.hash(password)).pipe(Effect.map((e) => `${e._tag}: ${e.reason}`))
      assert.strictEqual(yield* reason("nine char"), "WeakPassword: too short")
      assert.strictEqual(yield* reason("x".repeat(201) + "y"), "WeakPassword: too long")
      assert.strictEqual(yield* reason("aaaaaaaaaaaaaaaa"), "WeakPassword: one character repeated")
      // Characters, not bytes: ten Cyrillic letters are ten characters.
      assert.match(yield* passwords.hash("пароль1234"), /^scrypt\$/)
      assert.strictEqual(yield* reason("пароль123"), "WeakPassword: too short")
      assert.match(yield* passwords.hash("ten chars!"), /^scrypt\$/)
      assert.match(yield* passwords.hash("y".repeat(199) + "z"), /^scrypt\$/)
    }))

  it.effect("a malformed stored hash never matches, and nobody's password never matches", () =>
    Effect.gen(function* () {
      const passwords = yield* make({ N: 1024, r: 8, p: 1 })
      for (const stored of ["", "plain", "scrypt$3$8$1$AAAA$AAAA", "bcrypt$2b$10$abc"]) {
        assert.isFalse(yield* passwords.verify("correct horse battery", stored))
      }
      // An absurd cost in a corrupted row is refused rather than allocating gigabytes.
      const huge = (yield* passwords.hash("correct horse battery")).replace(
        "$1024$",
        "$1073741824$",
      )
      assert.isFalse(yield* passwords.verify("correct horse battery", huge))
      assert.isFalse(yield* passwords.verifyNobody("correct horse battery"))
    }))
})
