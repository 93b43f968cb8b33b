/**
 * Id generation: ULIDs (see schemas/Ids.ts). Within one millisecond the ids of this process
 * keep increasing (the random part is incremented instead of redrawn), so ids created one after
 * another sort in creation order even when the clock does not move between them.
 */
import { randomFillSync } from "node:crypto"
import { Effect } from "effect"
import type {
  ApiTokenId,
  AttachmentId,
  CannedResponseId,
  ChannelIdentityId,
  ContactId,
  ConversationId,
  EventId,
  MessageId,
  OperatorId,
  SessionId,
  TeamId,
} from "../schemas/Ids.ts"

const ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

let lastTime = -1
/** `lastTime` as the ULID's first 10 characters. */
let lastTimePart = ""
/** The 80-bit random part, as 16 base-32 digits (5 bits each). */
const lastRandom: Array<number> = new Array(16).fill(0)

/**
 * Random bytes drawn 4 KiB at a time: a `randomBytes` call per id (two ids per message, a new
 * millisecond each at a steady trickle) cost more than the rest of making the id.
 */
const pool = Buffer.allocUnsafe(4_096)
let poolAt = pool.length

const encodeTime = (ms: number): string => {
  let out = ""
  let t = ms
  for (let i = 0; i < 10; i++) {
    out = ALPHABET[t % 32] + out
    t = Math.floor(t / 32)
  }
  return out
}

/** A new ULID for the given time (default: now). */
export const ulid = (now: number = Date.now()): string => {
  if (now <= lastTime) {
    // Same millisecond (or the clock stepped back): increment the random part, keep the time.
    let i = 15
    while (i >= 0 && lastRandom[i] === 31) lastRandom[i--] = 0
    // 2^80 ids in one millisecond cannot happen; wrapping would only lose monotonicity.
    if (i >= 0) lastRandom[i]! += 1
  } else {
    lastTime = now
    lastTimePart = encodeTime(now)
    if (poolAt + 16 > pool.length) {
      randomFillSync(pool)
      poolAt = 0
    }
    for (let i = 0; i < 16; i++) lastRandom[i] = pool[poolAt + i]! & 31
    poolAt += 16
  }
  let out = lastTimePart
  for (let i = 0; i < 16; i++) out += ALPHABET[lastRandom[i]!]
  return out
}

/** The creation time (epoch milliseconds) encoded in a ULID. */
export const ulidTime = (id: string): number => {
  let t = 0
  for (const c of id.slice(0, 10)) t = t * 32 + ALPHABET.indexOf(c)
  return t
}

/** New ids, typed by what they identify. */
export const newId = {
  contact: () => ulid() as ContactId,
  channelIdentity: () => ulid() as ChannelIdentityId,
  conversation: () => ulid() as ConversationId,
  message: () => ulid() as MessageId,
  attachment: () => ulid() as AttachmentId,
  event: () => ulid() as EventId,
  operator: () => ulid() as OperatorId,
  team: () => ulid() as TeamId,
  session: () => ulid() as SessionId,
  apiToken: () => ulid() as ApiTokenId,
  cannedResponse: () => ulid() as CannedResponseId,
}

/** `ulid()` as an Effect, taking the time from Effect's `Clock` (so `TestClock` controls it). */
export const makeUlid: Effect.Effect<string> = Effect.clockWith((clock) =>
  clock.currentTimeMillis.pipe(Effect.map((now) => ulid(now)))
)
