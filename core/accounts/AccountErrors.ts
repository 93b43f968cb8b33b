/**
 * The accounts services' errors. Each says, by its tag alone, what the caller should do: tell
 * the user (a taken e-mail, a weak password, a wrong code), ask for more (`TotpRequired`), wait
 * (`LoginThrottled`), or sign in again (`InvalidSession`). Messages are for the person at the
 * keyboard (the CLI prints them as they are); sign-in errors say nothing an attacker could use.
 */
import { Data } from "effect"

/** A field that does not fit its schema (an e-mail without `@`, an empty name). */
export class InvalidAccountInput extends Data.TaggedError("InvalidAccountInput")<{
  readonly field: string
  readonly detail: string
}> {
  override get message() {
    return `invalid ${this.field}: ${this.detail}`
  }
}

export class WeakPassword extends Data.TaggedError("WeakPassword")<{
  readonly reason: "too short" | "too long" | "one character repeated"
}> {
  override get message() {
    return `password refused (${this.reason}): use 10 to 200 characters, not all the same`
  }
}

export class OperatorEmailTaken extends Data.TaggedError("OperatorEmailTaken")<{
  readonly email: string
}> {
  override get message() {
    return `an operator with the e-mail ${JSON.stringify(this.email)} already exists`
  }
}

export class OperatorNotFound extends Data.TaggedError("OperatorNotFound")<{
  /** The id or e-mail asked for. */
  readonly operator: string
}> {
  override get message() {
    return `no operator ${JSON.stringify(this.operator)}`
  }
}

/** Demoting or disabling the last enabled admin would leave nobody to manage the rest. */
export class LastAdmin extends Data.TaggedError("LastAdmin")<{ readonly operator: string }> {
  override get message() {
    return `operator ${
      JSON.stringify(this.operator)
    } is the last enabled admin: make another admin first`
  }
}

export class InvalidTotpCode extends Data.TaggedError("InvalidTotpCode")<Record<never, never>> {
  override get message() {
    return "the one-time code is wrong, expired or already used"
  }
}

/** `confirmTotp`/`disableTotp` in the wrong state (not begun, or already enabled). */
export class TotpState extends Data.TaggedError("TotpState")<{
  readonly state: "not started" | "already enabled" | "not enabled"
}> {
  override get message() {
    return `two-factor sign-in is ${this.state}`
  }
}

export class TeamNotFound extends Data.TaggedError("TeamNotFound")<{
  /** The id or name asked for. */
  readonly team: string
}> {
  override get message() {
    return `no team ${JSON.stringify(this.team)}`
  }
}

export class TeamNameTaken extends Data.TaggedError("TeamNameTaken")<{ readonly name: string }> {
  override get message() {
    return `a team named ${JSON.stringify(this.name)} already exists`
  }
}

/**
 * The same error for an unknown e-mail, a wrong password and a disabled operator: the answer
 * must not tell an attacker which e-mails exist.
 */
export class InvalidCredentials
  extends Data.TaggedError("InvalidCredentials")<Record<never, never>> {
  override get message() {
    return "wrong e-mail or password"
  }
}

/** The password was right and the operator has TOTP: ask for the code and sign in again. */
export class TotpRequired extends Data.TaggedError("TotpRequired")<Record<never, never>> {
  override get message() {
    return "a one-time code is required"
  }
}

export class LoginThrottled extends Data.TaggedError("LoginThrottled")<{
  readonly retryAfterSeconds: number
}> {
  override get message() {
    return `too many failed sign-ins: try again in ${this.retryAfterSeconds} s`
  }
}

export class InvalidSession extends Data.TaggedError("InvalidSession")<{
  /** For logs only; the client is told to sign in again, whatever the reason. */
  readonly reason: "malformed" | "unknown" | "expired" | "operator disabled"
}> {
  override get message() {
    return `invalid session (${this.reason})`
  }
}
