/**
 * Sessions verified in the last couple of seconds, shared by the accounts services of one
 * process (internal: not exported from mod.ts). `Sessions.verify` fills it so a browser's burst
 * of requests costs one lookup; signing out, disabling an operator, changing their role or teams
 * drops their entries at once. Another process's changes (the CLI, another node) are seen when
 * an entry expires, within `VERIFIED_TTL_MS`.
 */
import { Context, Layer } from "effect"
import type { Operator, SessionInfo } from "../../schemas/Operator.ts"

/** How long a verified session is trusted without asking the database again. */
export const VERIFIED_TTL_MS = 2_000
const MAX_ENTRIES = 10_000

export interface CachedSession {
  readonly info: SessionInfo
  readonly operator: Operator
  /** When it was read from the database. */
  readonly at: number
  /** When `last_seen_at` was last written (epoch ms). */
  readonly lastSeenAt: number
  readonly createdAt: number
}

export interface SessionCacheShape {
  readonly get: (tokenHash: string, now: number) => CachedSession | undefined
  readonly set: (tokenHash: string, entry: CachedSession) => void
  readonly dropSession: (sessionId: string) => void
  readonly dropOperator: (operatorId: string) => void
  readonly clear: () => void
}

export class SessionCache extends Context.Tag("chorus/core/accounts/SessionCache")<
  SessionCache,
  SessionCacheShape
>() {
  static readonly layer: Layer.Layer<SessionCache> = Layer.sync(SessionCache, () => {
    const entries = new Map<string, CachedSession>()
    const dropWhere = (drop: (entry: CachedSession) => boolean) => {
      for (const [hash, entry] of entries) if (drop(entry)) entries.delete(hash)
    }
    return {
      get: (hash, now) => {
        const entry = entries.get(hash)
        if (entry === undefined) return undefined
        if (now - entry.at >= VERIFIED_TTL_MS || now >= entry.info.expiresAt.getTime()) {
          entries.delete(hash)
          return undefined
        }
        return entry
      },
      set: (hash, entry) => {
        if (entries.size >= MAX_ENTRIES) entries.clear()
        entries.set(hash, entry)
      },
      dropSession: (id) => dropWhere((e) => e.info.sessionId === id),
      dropOperator: (id) => dropWhere((e) => e.operator.id === id),
      clear: () => entries.clear(),
    }
  })
}
