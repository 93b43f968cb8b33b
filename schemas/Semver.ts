/**
 * Semantic versions and version ranges, the small part of semver.org and npm's range syntax a
 * plugin manifest needs: a plugin's `version`, and `engines.chorus`, the range of host API
 * versions it works with. Written here (pure, no I/O) because no semver library is a direct
 * dependency.
 *
 * Ranges: `1.2.3` / `=1.2.3` (exact), `>=1.2.0`, `>1.2.0`, `<2.0.0`, `<=1.9.0`, `^1.2.0`,
 * `~1.2.0`, x-ranges (`1.x`, `1.2.x`, `1`, `1.2`, `*`), several comparators separated by spaces
 * (all must hold: `>=1.2.0 <1.5.0`), and alternatives joined by `||`. A pre-release version
 * (`1.0.0-beta.1`) sorts before its release; ranges compare it plainly (npm's rule that keeps
 * pre-releases out of ranges that do not name them is not applied: the host API has none).
 */
import { Schema } from "effect"

export interface Version {
  readonly major: number
  readonly minor: number
  readonly patch: number
  readonly prerelease: ReadonlyArray<string | number>
}

const NUM = "0|[1-9]\\d*"
const IDENT = "(?:0|[1-9]\\d*|\\d*[A-Za-z-][0-9A-Za-z-]*)"
const VERSION = new RegExp(
  `^(${NUM})\\.(${NUM})\\.(${NUM})(?:-(${IDENT}(?:\\.${IDENT})*))?(?:\\+([0-9A-Za-z-]+(?:\\.[0-9A-Za-z-]+)*))?$`,
)

/** A version, or undefined if `text` is not a valid semantic version (`1.2.3`, `1.0.0-rc.1`). */
export const parseVersion = (text: string): Version | undefined => {
  const m = VERSION.exec(text)
  if (m === null) return undefined
  const nums = [m[1]!, m[2]!, m[3]!].map(Number)
  if (nums.some((n) => !Number.isSafeInteger(n))) return undefined
  return {
    major: nums[0]!,
    minor: nums[1]!,
    patch: nums[2]!,
    prerelease: m[4] === undefined
      ? []
      : m[4].split(".").map((id) => (/^\d+$/.test(id) ? Number(id) : id)),
  }
}

const compareIds = (a: string | number, b: string | number): number => {
  if (typeof a === "number" && typeof b === "number") return a - b
  if (typeof a === "number") return -1
  if (typeof b === "number") return 1
  return a < b ? -1 : a > b ? 1 : 0
}

/** Negative if `a < b`, 0 if equal (build metadata ignored), positive if `a > b`. */
export const compare = (a: Version, b: Version): number => {
  const core = a.major - b.major || a.minor - b.minor || a.patch - b.patch
  if (core !== 0) return core
  // A release sorts after its pre-releases.
  if (a.prerelease.length === 0 || b.prerelease.length === 0) {
    return b.prerelease.length - a.prerelease.length
  }
  for (let i = 0; i < Math.max(a.prerelease.length, b.prerelease.length); i++) {
    const x = a.prerelease[i]
    const y = b.prerelease[i]
    if (x === undefined) return -1
    if (y === undefined) return 1
    const c = compareIds(x, y)
    if (c !== 0) return c
  }
  return 0
}

type Op = ">=" | ">" | "<" | "<=" | "="

interface Comparator {
  readonly op: Op
  readonly version: Version
}

/** Alternatives (`||`), each a list of comparators that must all hold. */
export type Range = ReadonlyArray<ReadonlyArray<Comparator>>

const v = (major: number, minor: number, patch: number, pre = false): Version => ({
  major,
  minor,
  patch,
  prerelease: pre ? [0] : [],
})

/** `1`, `1.2`, `1.x`, `1.2.*`, `*`, `1.2.3`, `1.2.3-rc.1`: the parts given (undefined = wildcard). */
interface Partial {
  readonly major: number | undefined
  readonly minor: number | undefined
  readonly patch: number | undefined
  readonly full: Version | undefined
}

const WILD = /^[xX*]$/

const parsePartial = (text: string): Partial | undefined => {
  const full = parseVersion(text)
  if (full !== undefined) {
    return { major: full.major, minor: full.minor, patch: full.patch, full }
  }
  const parts = text.split(".")
  if (parts.length > 3 || parts.some((p) => !(WILD.test(p) || new RegExp(`^(${NUM})$`).test(p)))) {
    return undefined
  }
  const nums = parts.map((p) => (WILD.test(p) ? undefined : Number(p)))
  // A number after a wildcard (`1.x.3`) means nothing.
  const firstWild = nums.findIndex((n) => n === undefined)
  if (firstWild >= 0 && nums.slice(firstWild).some((n) => n !== undefined)) return undefined
  return { major: nums[0], minor: nums[1], patch: nums[2], full: undefined }
}

const desugar = (op: string, p: Partial): ReadonlyArray<Comparator> | undefined => {
  const { major, minor, patch } = p
  if (p.full !== undefined) {
    const full = p.full
    switch (op) {
      case "":
      case "=":
        return [{ op: "=", version: full }]
      case ">=":
      case ">":
      case "<":
      case "<=":
        return [{ op, version: full }]
      case "~":
        return [{ op: ">=", version: full }, {
          op: "<",
          version: v(full.major, full.minor + 1, 0, true),
        }]
      case "^": {
        const upper = full.major > 0
          ? v(full.major + 1, 0, 0, true)
          : full.minor > 0
          ? v(0, full.minor + 1, 0, true)
          : v(0, 0, full.patch + 1, true)
        return [{ op: ">=", version: full }, { op: "<", version: upper }]
      }
    }
    return undefined
  }
  // Partial versions: the lowest version they cover, and the first one past them.
  if (major === undefined) {
    return op === "<" || op === ">" ? [{ op: "<", version: v(0, 0, 0, true) }] : []
  }
  const low = v(major, minor ?? 0, patch ?? 0)
  const next = minor === undefined ? v(major + 1, 0, 0, true) : v(major, minor + 1, 0, true)
  switch (op) {
    case "":
    case "=":
      return [{ op: ">=", version: low }, { op: "<", version: next }]
    case ">=":
      return [{ op: ">=", version: low }]
    case ">":
      return [{ op: ">=", version: next }]
    case "<":
      return [{ op: "<", version: v(low.major, low.minor, low.patch, true) }]
    case "<=":
      return [{ op: "<", version: next }]
    case "~":
      return [{ op: ">=", version: low }, { op: "<", version: next }]
    case "^": {
      const upper = major > 0 || minor === undefined
        ? v(major + 1, 0, 0, true)
        : v(0, minor + 1, 0, true)
      return [{ op: ">=", version: low }, { op: "<", version: upper }]
    }
  }
  return undefined
}

const COMPARATOR = /^(\^|~|>=|<=|>|<|=)?\s*v?(.+)$/

/** A range, or undefined if `text` is not one. */
export const parseRange = (text: string): Range | undefined => {
  if (text.trim().length === 0) return undefined
  const sets: Array<ReadonlyArray<Comparator>> = []
  for (const alternative of text.split("||")) {
    const words = alternative.trim().replace(/(\^|~|>=|<=|>|<|=)\s+/g, "$1").split(/\s+/)
    if (words.length === 0 || words[0] === "") return undefined
    const set: Array<Comparator> = []
    for (const word of words) {
      const m = COMPARATOR.exec(word)
      if (m === null) return undefined
      const partial = parsePartial(m[2]!)
      if (partial === undefined) return undefined
      const comparators = desugar(m[1] ?? "", partial)
      if (comparators === undefined) return undefined
      set.push(...comparators)
    }
    sets.push(set)
  }
  return sets
}

const holds = (c: Comparator, version: Version): boolean => {
  const d = compare(version, c.version)
  switch (c.op) {
    case "=":
      return d === 0
    case ">=":
      return d >= 0
    case ">":
      return d > 0
    case "<":
      return d < 0
    case "<=":
      return d <= 0
  }
}

/** Whether `version` is in `range`. */
export const satisfies = (version: Version, range: Range): boolean =>
  range.some((set) => set.every((c) => holds(c, version)))

/** A semantic version as text: `1.2.3`, `0.1.0-beta.2`. */
export const SemverString = Schema.String.pipe(
  Schema.filter((s) => parseVersion(s) !== undefined, {
    message: (issue) =>
      `expected a semantic version such as 1.2.3, got ${JSON.stringify(issue.actual)}`,
  }),
).annotations({ identifier: "Semver" })

/** A version range as text: `^1.0.0`, `>=1.2.0 <2.0.0`, `1.x || 2.x`. */
export const SemverRangeString = Schema.String.pipe(
  Schema.filter((s) => parseRange(s) !== undefined, {
    message: (issue) =>
      `expected a version range such as ^1.0.0, ~1.2.0, >=1.0.0 <2.0.0, 1.x or 1.x || 2.x, got ${
        JSON.stringify(issue.actual)
      }`,
  }),
).annotations({ identifier: "SemverRange" })
