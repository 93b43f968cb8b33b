import { assert, describe, it } from "vitest"
import * as Totp from "../../core/accounts/Totp.ts"

// RFC 6238 appendix B, SHA-1 rows: the key is the ASCII "12345678901234567890". The RFC lists
// 8-digit codes; a 6-digit code is the same number modulo 10^6, i.e. its last six digits.
const RFC_KEY = Buffer.from("12345678901234567890", "ascii")
const RFC_VECTORS: ReadonlyArray<readonly [number, string]> = [
  [59, "94287082"],
  [1111111109, "07081804"],
  [1111111111, "14050471"],
  [1234567890, "89005924"],
  [2000000000, "69279037"],
  [20000000000, "65353130"],
]

describe("TOTP", () => {
  it("matches the RFC 6238 SHA-1 test vectors", () => {
    const secret = Totp.base32Encode(RFC_KEY)
    assert.strictEqual(secret, "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ")
    for (const [seconds, code] of RFC_VECTORS) {
      assert.strictEqual(Totp.codeAt(secret, seconds * 1000), code.slice(-6), `T=${seconds}`)
      assert.strictEqual(Totp.codeAt(RFC_KEY, seconds * 1000), code.slice(-6))
      assert.strictEqual(
        Totp.verifyCode(secret, code.slice(-6), seconds * 1000),
        Math.floor(seconds / 30),
      )
    }
  })

  it("base32 round-trips, ignoring case, spaces and padding", () => {
    for (const length of [0, 1, 2, 3, 4, 5, 6, 19, 20, 21]) {
      const bytes = Buffer.from(Array.from({ length }, (_, i) => (i * 37 + 11) & 0xff))
      const encoded = Totp.base32Encode(bytes)
      assert.notInclude(encoded, "=")
      assert.deepStrictEqual(Totp.base32Decode(encoded), bytes)
    }
    assert.deepStrictEqual(Totp.base32Decode("gezd gnbv===="), Totp.base32Decode("GEZDGNBV"))
    assert.isUndefined(Totp.base32Decode("GEZ1"))
  })

  it("accepts a code one step either side by default and answers the step it matched", () => {
    const secret = Totp.newSecret()
    const now = 1_800_000_015_000
    const step = Totp.stepAt(now)
    const previous = Totp.codeAt(secret, now - 30_000)
    const next = Totp.codeAt(secret, now + 30_000)
    assert.strictEqual(Totp.verifyCode(secret, Totp.codeAt(secret, now), now), step)
    assert.strictEqual(Totp.verifyCode(secret, previous, now), step - 1)
    assert.strictEqual(Totp.verifyCode(secret, next, now), step + 1)
    assert.strictEqual(
      Totp.verifyCode(secret, ` ${previous.slice(0, 3)} ${previous.slice(3)} `, now),
      step - 1,
    )
    // Two steps away, or any step away with window 0: refused.
    assert.isUndefined(Totp.verifyCode(secret, Totp.codeAt(secret, now - 60_000), now))
    assert.isUndefined(Totp.verifyCode(secret, previous, now, 0))
    assert.strictEqual(Totp.verifyCode(secret, Totp.codeAt(secret, now - 60_000), now, 2), step - 2)
  })

  it("refuses wrong and malformed codes and a malformed secret", () => {
    const secret = Totp.newSecret()
    const now = 1_800_000_000_000
    const right = Totp.codeAt(secret, now)
    const valid = [-30_000, 0, 30_000].map((d) => Totp.codeAt(secret, now + d))
    let wrong = Number(right)
    do wrong = (wrong + 1) % 1_000_000
    while (valid.includes(String(wrong).padStart(6, "0")))
    assert.isUndefined(Totp.verifyCode(secret, String(wrong).padStart(6, "0"), now))
    for (const code of ["", "12345", "1234567", "12345a", right + "0"]) {
      assert.isUndefined(Totp.verifyCode(secret, code, now), code)
    }
    assert.isUndefined(Totp.verifyCode("not base32!", right, now))
  })

  it("makes 160-bit base32 secrets and otpauth URIs an authenticator app reads", () => {
    const a = Totp.newSecret()
    const b = Totp.newSecret()
    assert.match(a, /^[A-Z2-7]{32}$/)
    assert.strictEqual(Totp.base32Decode(a)!.length, 20)
    assert.notStrictEqual(a, b)
    const uri = new URL(
      Totp.otpauthUri({ secret: a, account: "ann@example.com", issuer: "Chorus" }),
    )
    assert.strictEqual(uri.protocol, "otpauth:")
    assert.strictEqual(uri.host, "totp")
    assert.strictEqual(decodeURIComponent(uri.pathname), "/Chorus:ann@example.com")
    assert.strictEqual(uri.searchParams.get("secret"), a)
    assert.strictEqual(uri.searchParams.get("issuer"), "Chorus")
    assert.strictEqual(uri.searchParams.get("digits"), "6")
    assert.strictEqual(uri.searchParams.get("period"), "30")
    assert.strictEqual(uri.searchParams.get("algorithm"), "SHA1")
  })
})
