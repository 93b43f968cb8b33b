/**
 * Accounts: operators, teams, sign-in sessions, TOTP and sign-in throttling, for the operator
 * web inbox and the `chorus user`/`chorus team` commands.
 *
 * ```ts
 * import { AccountsLive, Operators, Sessions } from "./core/accounts/mod.ts"
 * program.pipe(Effect.provide(AccountsLive), Effect.provide(StorageLive(config)))
 * ```
 *
 * `AccountsLive` builds the four services over one `Database`, sharing one verified-session
 * cache so signing out, disabling someone or changing their role takes effect at once in this
 * process (other processes see it within two seconds).
 */
import { Layer } from "effect"
import type { Database } from "../storage/Database.ts"
import { LoginThrottle, type LoginThrottleOptions } from "./LoginThrottle.ts"
import { Operators } from "./Operators.ts"
import { Passwords, type ScryptCost } from "./Passwords.ts"
import { SessionCache } from "./SessionCache.ts"
import { Sessions, type SessionsOptions } from "./Sessions.ts"
import { Teams } from "./Teams.ts"

export * from "./AccountErrors.ts"
export { LoginThrottle, type LoginThrottleOptions, throttleKeys } from "./LoginThrottle.ts"
export {
  type NewOperatorInput,
  type OperatorPatch,
  Operators,
  type OperatorsShape,
  type TotpEnrolment,
} from "./Operators.ts"
export {
  checkPolicy,
  DEFAULT_COST,
  Passwords,
  type PasswordsShape,
  type ScryptCost,
} from "./Passwords.ts"
export {
  csrfMatches,
  Sessions,
  type SessionsOptions,
  type SessionsShape,
  type SessionSummary,
  type SignedIn,
  type SignInInput,
  type VerifiedSession,
} from "./Sessions.ts"
export { type InboxClaim, Teams, type TeamsShape } from "./Teams.ts"
export * as Totp from "./Totp.ts"

export interface AccountsOptions {
  readonly sessions?: SessionsOptions
  readonly throttle?: LoginThrottleOptions
  /** scrypt cost of new password hashes. Default N=2^15, r=8, p=1. */
  readonly passwords?: Partial<ScryptCost>
}

/** Operators, Teams, Sessions and LoginThrottle with the given options. */
export const accountsLayer = (
  options: AccountsOptions = {},
): Layer.Layer<Operators | Teams | Sessions | LoginThrottle, never, Database> => {
  const throttle = options.throttle === undefined
    ? LoginThrottle.layer
    : LoginThrottle.layerWith(options.throttle)
  // One instance of each (a layer used twice in one build is built once): Passwords and the
  // session cache stay internal, the throttle is offered too.
  const shared = Layer.mergeAll(
    options.passwords === undefined ? Passwords.layer : Passwords.layerWith(options.passwords),
    SessionCache.layer,
    throttle,
  )
  return Layer.mergeAll(Operators.layer, Teams.layer, Sessions.layer(options.sessions), throttle)
    .pipe(Layer.provide(shared))
}

/** The accounts services with their defaults; needs `Database` (with migrations applied). */
export const AccountsLive = accountsLayer()
