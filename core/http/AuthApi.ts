/**
 * Operators' sign-in: `POST /api/v1/auth/login` answers the session (its CSRF token included)
 * and sets the `chorus_session` cookie (HttpOnly, SameSite=Strict); the rest of the group works
 * on the current session: who am I, sign out (here or everywhere), presence, language, and the
 * TOTP second factor. Wrong passwords are throttled per e-mail and per address (429 with
 * `retryAfterSeconds`).
 */
import { HttpApiEndpoint, HttpApiGroup, HttpApiSchema, OpenApi } from "@effect/platform"
import { Schema } from "effect"
import { Locale, Operator, Presence, SessionInfo } from "../../schemas/Operator.ts"
import { Authentication } from "./Authentication.ts"

export class InvalidCredentials extends Schema.TaggedError<InvalidCredentials>()(
  "InvalidCredentials",
  { message: Schema.String },
  HttpApiSchema.annotations({
    status: 401,
    description: "Unknown e-mail, wrong password or a disabled account (not told apart).",
  }),
) {}

export class TotpRequired extends Schema.TaggedError<TotpRequired>()(
  "TotpRequired",
  { message: Schema.String },
  HttpApiSchema.annotations({
    status: 401,
    description: "The password is right and the account has a second factor: send `totp`.",
  }),
) {}

export class InvalidTotpCode extends Schema.TaggedError<InvalidTotpCode>()(
  "InvalidTotpCode",
  { message: Schema.String },
  HttpApiSchema.annotations({ status: 401, description: "The TOTP code is wrong or used." }),
) {}

export class LoginThrottled extends Schema.TaggedError<LoginThrottled>()(
  "LoginThrottled",
  { message: Schema.String, retryAfterSeconds: Schema.Int },
  HttpApiSchema.annotations({
    status: 429,
    description: "Too many wrong attempts for this e-mail or address; wait retryAfterSeconds.",
  }),
) {}

/** The current password is wrong, or the new one too weak. */
export class PasswordRejected extends Schema.TaggedError<PasswordRejected>()(
  "PasswordRejected",
  { field: Schema.String, message: Schema.String },
  HttpApiSchema.annotations({
    status: 422,
    description: "currentPassword is wrong, or newPassword too weak (at least 10 characters).",
  }),
) {}

export const LoginRequest = Schema.Struct({
  email: Schema.String.pipe(Schema.minLength(1), Schema.maxLength(320)),
  password: Schema.String.pipe(Schema.minLength(1), Schema.maxLength(200)),
  totp: Schema.optionalWith(Schema.String.pipe(Schema.pattern(/^\d{6}$/)), { exact: true }),
}).annotations({ identifier: "LoginRequest" })

export const TotpSetup = Schema.Struct({
  /** Base32, for typing into an authenticator app by hand. */
  secret: Schema.String,
  /** `otpauth://totp/…` for a QR code. */
  uri: Schema.String,
}).annotations({ identifier: "TotpSetup" })

const TotpCode = Schema.Struct({ code: Schema.String.pipe(Schema.pattern(/^\d{6}$/)) })

export class AuthLoginApi extends HttpApiGroup.make("authLogin")
  .add(
    HttpApiEndpoint.post("login", "/auth/login")
      .setPayload(LoginRequest)
      .addSuccess(SessionInfo)
      .addError(InvalidCredentials)
      .addError(TotpRequired)
      .addError(InvalidTotpCode)
      .addError(LoginThrottled)
      .annotate(OpenApi.Summary, "Sign in; sets the session cookie and answers its CSRF token."),
  )
  .annotate(OpenApi.Description, "Operators' sign-in (the inbox).") {}

export class AuthApi extends HttpApiGroup.make("auth")
  .add(
    HttpApiEndpoint.get("session", "/auth/session")
      .addSuccess(SessionInfo)
      .annotate(OpenApi.Summary, "The current session: operator, CSRF token, expiry."),
  )
  .add(
    HttpApiEndpoint.post("logout", "/auth/logout")
      .addSuccess(Schema.Void, { status: 204 })
      .annotate(OpenApi.Summary, "End this session."),
  )
  .add(
    HttpApiEndpoint.post("logoutEverywhere", "/auth/logout-everywhere")
      .addSuccess(Schema.Void, { status: 204 })
      .annotate(OpenApi.Summary, "End every session of this operator, on every device."),
  )
  .add(
    HttpApiEndpoint.put("presence", "/auth/presence")
      .setPayload(Schema.Struct({ presence: Presence }))
      .addSuccess(Operator)
      .annotate(OpenApi.Summary, "Online, away or offline: routing assigns to online only."),
  )
  .add(
    HttpApiEndpoint.put("locale", "/auth/locale")
      .setPayload(Schema.Struct({ locale: Locale }))
      .addSuccess(Operator)
      .annotate(OpenApi.Summary, "The interface language."),
  )
  .add(
    HttpApiEndpoint.post("password", "/auth/password")
      .setPayload(Schema.Struct({
        currentPassword: Schema.String.pipe(Schema.maxLength(200)),
        newPassword: Schema.String.pipe(Schema.maxLength(200)),
      }))
      .addSuccess(Schema.Void, { status: 204 })
      .addError(PasswordRejected)
      .annotate(
        OpenApi.Summary,
        "Change my password (the current one is needed); every session ends, sign in again.",
      ),
  )
  .add(
    HttpApiEndpoint.post("totpSetup", "/auth/totp/setup")
      .addSuccess(TotpSetup)
      .annotate(OpenApi.Summary, "Start enrolling a second factor (confirm with a code)."),
  )
  .add(
    HttpApiEndpoint.post("totpConfirm", "/auth/totp/confirm")
      .setPayload(TotpCode)
      .addSuccess(Operator)
      .addError(InvalidTotpCode)
      .annotate(OpenApi.Summary, "Turn the second factor on with a code from the app."),
  )
  .add(
    HttpApiEndpoint.post("totpDisable", "/auth/totp/disable")
      .setPayload(TotpCode)
      .addSuccess(Operator)
      .addError(InvalidTotpCode)
      .annotate(OpenApi.Summary, "Turn the second factor off (needs a current code)."),
  )
  .middleware(Authentication)
  .annotate(OpenApi.Description, "The signed-in operator's session.") {}
