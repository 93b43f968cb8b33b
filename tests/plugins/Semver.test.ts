/** The semver subset of plugin manifests: versions, ranges, and which versions a range admits. */
import { assert, describe, it } from "@effect/vitest"
import { compare, parseRange, parseVersion, satisfies } from "../../schemas/Semver.ts"

const admits = (range: string, version: string): boolean => {
  const r = parseRange(range)
  const v = parseVersion(version)
  assert.isDefined(r, `range ${range}`)
  assert.isDefined(v, `version ${version}`)
  return satisfies(v!, r!)
}

describe("semantic versions", () => {
  it("parses versions with pre-release and build and refuses malformed ones", () => {
    assert.deepStrictEqual(parseVersion("1.2.3-rc.1+build.5"), {
      major: 1,
      minor: 2,
      patch: 3,
      prerelease: ["rc", 1],
    })
    for (const bad of ["1", "1.2", "01.2.3", "1.2.3-", "v1.2.3", "1.2.3.4", "a.b.c", ""]) {
      assert.isUndefined(parseVersion(bad), bad)
    }
  })

  it("orders pre-releases before their release", () => {
    const v = (s: string) => parseVersion(s)!
    assert.isBelow(compare(v("1.0.0-alpha"), v("1.0.0-alpha.1")), 0)
    assert.isBelow(compare(v("1.0.0-alpha.1"), v("1.0.0-beta")), 0)
    assert.isBelow(compare(v("1.0.0-rc.1"), v("1.0.0")), 0)
    assert.isBelow(compare(v("1.0.0"), v("1.0.1")), 0)
    assert.strictEqual(compare(v("1.0.0+a"), v("1.0.0+b")), 0)
  })

  it("caret admits compatible versions", () => {
    assert.isTrue(admits("^1.0.0", "1.0.0"))
    assert.isTrue(admits("^1.0.0", "1.9.3"))
    assert.isFalse(admits("^1.0.0", "2.0.0"))
    assert.isFalse(admits("^1.2.0", "1.1.9"))
    assert.isTrue(admits("^0.2.3", "0.2.9"))
    assert.isFalse(admits("^0.2.3", "0.3.0"))
    assert.isFalse(admits("^0.0.3", "0.0.4"))
    assert.isTrue(admits("^1.x", "1.4.0"))
  })

  it("tilde admits patch releases", () => {
    assert.isTrue(admits("~1.2.0", "1.2.7"))
    assert.isFalse(admits("~1.2.0", "1.3.0"))
    assert.isTrue(admits("~1", "1.9.0"))
  })

  it("comparators, exact versions, x-ranges and alternatives", () => {
    assert.isTrue(admits(">=1.0.0 <2.0.0", "1.5.0"))
    assert.isFalse(admits(">=1.0.0 <2.0.0", "2.0.0"))
    assert.isFalse(admits(">1.0.0", "1.0.0"))
    assert.isTrue(admits("<=1.0.0", "1.0.0"))
    assert.isTrue(admits("1.0.0", "1.0.0"))
    assert.isFalse(admits("=1.0.0", "1.0.1"))
    assert.isTrue(admits("1.x", "1.7.2"))
    assert.isFalse(admits("1.2.x", "1.3.0"))
    assert.isTrue(admits("*", "7.0.0"))
    assert.isTrue(admits("0.x || 1.x", "1.0.0"))
    assert.isFalse(admits("0.x || 2.x", "1.0.0"))
    assert.isTrue(admits(">= 1.0.0", "1.0.0"))
    assert.isFalse(admits("<2", "2.0.0-rc.1"))
  })

  it("refuses what is not a range", () => {
    for (const bad of ["", "latest", "^", ">=1.0.0 <", "1.x.3", "1.0.0 - 2.0.0", "~>1.0", "||"]) {
      assert.isUndefined(parseRange(bad), bad)
    }
  })
})
