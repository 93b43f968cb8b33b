/**
 * Sign-in throttling against password guessing, kept in `chorus_login_failures` so it survives
 * a restart and every node sees the same counts.
 *
 * Keys are `email:<address>` and `ip:<address>`. A key is locked once it has `limit` failures
 * within `window` (e-mail: 5 in 15 minutes; address: 20 in 15 minutes, so an office behind one
 * NAT is not locked out by a few people mistyping). The first lock lasts 1 minute; each further
 * failure within `window` of the last lock ending locks again for twice as long, up to 1 hour.
 * A successful sign-in clears the e-mail key (not the address key: an attacker with one valid
 * account must not be able to reset the counter of the address they guess others' from).
 *
 * Times come from Effect's `Clock` (tests use `TestClock`).
 */
import { Clock, Context, Duration, Effect, Layer } from "effect"
import { Database, type DatabaseError } from "../storage/Database.ts"
import { LoginThrottled } from "./AccountErrors.ts"

export interface ThrottlePolicy {
  /** Failures within `window` that lock the key. */
  readonly limit: number
  readonly window: Duration.DurationInput
}

export interface LoginThrottleOptions {
  /** Default 5 failures in 15 minutes. */
  readonly email?: ThrottlePolicy
  /** Default 20 failures in 15 minutes. */
  readonly address?: ThrottlePolicy
  /** First lock. Default 1 minute. */
  readonly firstLock?: Duration.DurationInput
  /** Longest lock. Default 1 hour. */
  readonly maxLock?: Duration.DurationInput
}

/** The throttle keys of a sign-in attempt. */
export const throttleKeys = (email: string, address?: string | undefined): ReadonlyArray<string> =>
  address === undefined || address === ""
    ? [`email:${email.trim().toLowerCase()}`]
    : [`email:${email.trim().toLowerCase()}`, `ip:${address}`]

export interface LoginThrottleShape {
  /** Fails with `LoginThrottled` (the longest wait) if any of `keys` is locked. */
  readonly check: (
    keys: ReadonlyArray<string>,
  ) => Effect.Effect<void, LoginThrottled | DatabaseError>
  readonly recordFailure: (keys: ReadonlyArray<string>) => Effect.Effect<void, DatabaseError>
  /** Clears the `email:` keys among `keys`. */
  readonly recordSuccess: (keys: ReadonlyArray<string>) => Effect.Effect<void, DatabaseError>
}

/** Rows idle for this long are deleted (at most once per interval and process). */
const PRUNE_INTERVAL_MS = 10 * 60_000

export const make = (options: LoginThrottleOptions = {}) =>
  Effect.gen(function* () {
    const database = yield* Database
    const postgres = database.dialect === "postgres"
    const emailPolicy = options.email ?? { limit: 5, window: "15 minutes" }
    const addressPolicy = options.address ?? { limit: 20, window: "15 minutes" }
    const firstLockMs = Duration.toMillis(options.firstLock ?? "1 minute")
    const maxLockMs = Duration.toMillis(options.maxLock ?? "1 hour")
    const policyOf = (key: string) => {
      const p = key.startsWith("ip:") ? addressPolicy : emailPolicy
      return { limit: p.limit, windowMs: Duration.toMillis(p.window) }
    }
    const longestWindowMs = Math.max(
      Duration.toMillis(emailPolicy.window),
      Duration.toMillis(addressPolicy.window),
    )
    let prunedAt = -Infinity

    const check = Effect.fn("LoginThrottle.check")(function* (keys: ReadonlyArray<string>) {
      if (keys.length === 0) return
      const now = yield* Clock.currentTimeMillis
      const rows = yield* database.query(
        "login_failures.check",
        (db) =>
          db.selectFrom("chorus_login_failures").select(["key", "locked_until"])
            .where("key", "in", keys).execute(),
      )
      const until = Math.max(0, ...rows.map((r) => Number(r.locked_until ?? 0)))
      if (until > now) {
        return yield* new LoginThrottled({ retryAfterSeconds: Math.ceil((until - now) / 1000) })
      }
    })

    const recordFailure = Effect.fn("LoginThrottle.recordFailure")(
      function* (keys: ReadonlyArray<string>) {
        const now = yield* Clock.currentTimeMillis
        for (const key of keys) {
          const { limit, windowMs } = policyOf(key)
          yield* database.transaction("login_failures.record", async (trx) => {
            await trx.insertInto("chorus_login_failures")
              .values({ key, failures: 0, first_failed_at: now, locked_until: null })
              .onConflict((oc) => oc.column("key").doNothing()).execute()
            // Locked on PostgreSQL so two nodes counting one key do not lose a failure.
            const row = await trx.selectFrom("chorus_login_failures").selectAll()
              .where("key", "=", key).$if(postgres, (q) => q.forUpdate()).executeTakeFirstOrThrow()
            const lockedUntil = row.locked_until === null ? null : Number(row.locked_until)
            const stale = lockedUntil === null
              ? now - Number(row.first_failed_at) > windowMs
              : now - lockedUntil > windowMs
            const failures = stale ? 1 : row.failures + 1
            const lock = failures >= limit
              ? now + Math.min(firstLockMs * 2 ** Math.min(failures - limit, 30), maxLockMs)
              : stale
              ? null
              : lockedUntil
            await trx.updateTable("chorus_login_failures").set({
              failures,
              first_failed_at: stale ? now : Number(row.first_failed_at),
              locked_until: lock,
            }).where("key", "=", key).execute()
          })
        }
        if (now - prunedAt >= PRUNE_INTERVAL_MS) {
          prunedAt = now
          const before = now - longestWindowMs
          yield* database.query(
            "login_failures.prune",
            (db) =>
              db.deleteFrom("chorus_login_failures").where((eb) =>
                eb.or([
                  eb.and([eb("locked_until", "is", null), eb("first_failed_at", "<", before)]),
                  eb("locked_until", "<", before),
                ])
              ).execute(),
          )
        }
      },
    )

    const recordSuccess = Effect.fn("LoginThrottle.recordSuccess")(
      function* (keys: ReadonlyArray<string>) {
        const emails = keys.filter((k) => k.startsWith("email:"))
        if (emails.length === 0) return
        yield* database.query(
          "login_failures.clear",
          (db) => db.deleteFrom("chorus_login_failures").where("key", "in", emails).execute(),
        )
      },
    )

    return { check, recordFailure, recordSuccess } satisfies LoginThrottleShape
  })

export class LoginThrottle extends Context.Tag("chorus/core/accounts/LoginThrottle")<
  LoginThrottle,
  LoginThrottleShape
>() {
  /** With the default policy (e-mail 5 / 15 min, address 20 / 15 min, locks 1 min to 1 h). */
  static readonly layer: Layer.Layer<LoginThrottle, never, Database> = Layer.effect(
    LoginThrottle,
    make(),
  )

  static readonly layerWith = (
    options: LoginThrottleOptions,
  ): Layer.Layer<LoginThrottle, never, Database> => Layer.effect(LoginThrottle, make(options))
}
