/**
 * Operator passwords: scrypt (node:crypto, run on libuv's thread pool so the event loop keeps
 * serving), stored as `scrypt$N$r$p$<salt base64>$<key base64>` with a 16-byte random salt
 * and a 32-byte key. The cost parameters travel with each hash, so raising them later only
 * changes new hashes and old ones still verify.
 *
 * Default cost N=2^15, r=8, p=1 (OWASP's scrypt floor): about 32 MiB and ~100 ms a hash on one
 * core. The test layer (`Passwords.layerWith({ N: 1024 })`) is cheaper so tests stay quick.
 *
 * `verifyNobody` spends the same time as a real verification against a hash nobody has, for
 * sign-ins with an unknown e-mail: otherwise the quick answer would tell which e-mails exist.
 */
import { randomBytes, scrypt, timingSafeEqual } from "node:crypto"
import { Context, Effect, Layer } from "effect"
import { WeakPassword } from "./AccountErrors.ts"

export interface ScryptCost {
  /** CPU/memory cost, a power of two. Default 2^15. */
  readonly N: number
  /** Block size. Default 8. */
  readonly r: number
  /** Parallelism. Default 1. */
  readonly p: number
}

export const DEFAULT_COST: ScryptCost = { N: 2 ** 15, r: 8, p: 1 }

const SALT_BYTES = 16
const KEY_BYTES = 32
export const MIN_PASSWORD_LENGTH = 10
export const MAX_PASSWORD_LENGTH = 200
/** Bounds on a stored hash's N (2^17: 128 MiB at r=8): a corrupted row must not exhaust memory. */
const MAX_N = 2 ** 17

/** The password policy: 10 to 200 characters (code points), not one character repeated. */
export const checkPolicy = (password: string): WeakPassword | undefined => {
  const chars = [...password]
  if (chars.length < MIN_PASSWORD_LENGTH) return new WeakPassword({ reason: "too short" })
  if (chars.length > MAX_PASSWORD_LENGTH) return new WeakPassword({ reason: "too long" })
  if (chars.every((c) => c === chars[0])) {
    return new WeakPassword({ reason: "one character repeated" })
  }
  return undefined
}

/** scrypt needs 128·N·r bytes (plus a little); Node refuses above `maxmem` (32 MiB default). */
const maxmemFor = (cost: ScryptCost) => 256 * cost.N * cost.r * cost.p

const derive = (password: string, salt: Buffer, cost: ScryptCost, keyLength: number) =>
  Effect.async<Buffer>((resume) => {
    scrypt(
      password.normalize("NFC"),
      salt,
      keyLength,
      { N: cost.N, r: cost.r, p: cost.p, maxmem: maxmemFor(cost) },
      // Only invalid parameters make scrypt fail, and ours are checked: a defect.
      (error, key) => resume(error ? Effect.die(error) : Effect.succeed(key)),
    )
  })

interface Parsed {
  readonly cost: ScryptCost
  readonly salt: Buffer
  readonly key: Buffer
}

const FORMAT = /^scrypt\$(\d+)\$(\d+)\$(\d+)\$([A-Za-z0-9+/]+={0,2})\$([A-Za-z0-9+/]+={0,2})$/

const parse = (stored: string): Parsed | undefined => {
  const m = FORMAT.exec(stored)
  if (m === null) return undefined
  const cost = { N: Number(m[1]), r: Number(m[2]), p: Number(m[3]) }
  const powerOfTwo = cost.N > 1 && (cost.N & (cost.N - 1)) === 0
  if (!powerOfTwo || cost.N > MAX_N || cost.r < 1 || cost.r > 16 || cost.p < 1 || cost.p > 4) {
    return undefined
  }
  const key = Buffer.from(m[5]!, "base64")
  if (key.length < 16) return undefined
  return { cost, salt: Buffer.from(m[4]!, "base64"), key }
}

export interface PasswordsShape {
  /** A new hash of `password`; fails with `WeakPassword` if the policy refuses it. */
  readonly hash: (password: string) => Effect.Effect<string, WeakPassword>
  /**
   * Whether `password` matches `stored`. A malformed stored value never matches (and costs the
   * same time as a real check, against the dummy hash).
   */
  readonly verify: (password: string, stored: string) => Effect.Effect<boolean>
  /** As long as `verify` takes, always false: for an e-mail nobody has. */
  readonly verifyNobody: (password: string) => Effect.Effect<false>
}

export const make = (cost: ScryptCost = DEFAULT_COST): Effect.Effect<PasswordsShape> =>
  Effect.gen(function* () {
    const hashUnchecked = (password: string) =>
      Effect.gen(function* () {
        const salt = randomBytes(SALT_BYTES)
        const key = yield* derive(password, salt, cost, KEY_BYTES)
        return `scrypt$${cost.N}$${cost.r}$${cost.p}$${salt.toString("base64")}$${
          key.toString("base64")
        }`
      })
    // A hash of a random password, at the current cost: what `verifyNobody` checks against.
    const dummy = parse(yield* hashUnchecked(randomBytes(24).toString("base64")))!

    const compare = (password: string, parsed: Parsed) =>
      derive(password, parsed.salt, parsed.cost, parsed.key.length).pipe(
        Effect.map((key) => timingSafeEqual(key, parsed.key)),
      )

    const hash = Effect.fn("Passwords.hash")(function* (password: string) {
      const weak = checkPolicy(password)
      if (weak !== undefined) return yield* weak
      return yield* hashUnchecked(password)
    })

    const verify = Effect.fn("Passwords.verify")(function* (password: string, stored: string) {
      const parsed = parse(stored)
      if (parsed === undefined) {
        yield* compare(password, dummy)
        return false
      }
      return yield* compare(password, parsed)
    })

    const verifyNobody = Effect.fn("Passwords.verifyNobody")(function* (password: string) {
      yield* compare(password, dummy)
      return false as const
    })

    return { hash, verify, verifyNobody } satisfies PasswordsShape
  })

export class Passwords extends Context.Tag("chorus/core/accounts/Passwords")<
  Passwords,
  PasswordsShape
>() {
  /** Passwords at the default cost (N=2^15, r=8, p=1). */
  static readonly layer: Layer.Layer<Passwords> = Layer.effect(Passwords, make())

  /** Passwords at another cost; tests use a small N. */
  static readonly layerWith = (cost: Partial<ScryptCost>): Layer.Layer<Passwords> =>
    Layer.effect(Passwords, make({ ...DEFAULT_COST, ...cost }))
}
