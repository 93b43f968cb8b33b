/**
 * Handlers of the sign-in groups: `authLogin` (public) and `auth` (the current session). The
 * session token travels only in the `chorus_session` cookie (HttpOnly, SameSite=Strict, Secure
 * when `auth.secureCookies`); the body answers the CSRF token the inbox sends back on changes.
 */
import { HttpApiBuilder, HttpApiError, HttpServerRequest } from "@effect/platform"
import { Effect, Option } from "effect"
import type { OperatorId } from "../../schemas/Ids.ts"
import type { Principal } from "../accounts/Access.ts"
import { Operators } from "../accounts/Operators.ts"
import { Sessions } from "../accounts/Sessions.ts"
import { Config } from "../config/ChorusConfig.ts"
import { OperatorEvents } from "../../actors/routing/OperatorEvents.ts"
import { ChorusApi } from "./Api.ts"
import {
  InvalidCredentials,
  InvalidTotpCode,
  LoginThrottled,
  PasswordRejected,
  TotpRequired,
} from "./AuthApi.ts"
import { CurrentPrincipal, sessionCookie } from "./Authentication.ts"

/** The signed-in operator; an API token has no session. */
const currentOperator = Effect.flatMap(
  CurrentPrincipal,
  (principal: Principal) =>
    principal.kind === "operator"
      ? Effect.succeed(principal)
      : Effect.fail(new HttpApiError.Unauthorized()),
)

export const AuthLoginHandlers = HttpApiBuilder.group(
  ChorusApi,
  "authLogin",
  (handlers) =>
    Effect.gen(function* () {
      const sessions = yield* Sessions
      const config = yield* Config
      return handlers.handle("login", ({ payload }) =>
        Effect.gen(function* () {
          const request = yield* HttpServerRequest.HttpServerRequest
          const address = Option.getOrUndefined(request.remoteAddress)
          const userAgent = request.headers["user-agent"]
          const { token, info } = yield* sessions.signIn({
            email: payload.email,
            password: payload.password,
            ...(payload.totp !== undefined ? { totp: payload.totp } : {}),
            ...(userAgent !== undefined ? { userAgent } : {}),
            ...(address !== undefined ? { address } : {}),
          }).pipe(
            Effect.catchTags({
              InvalidCredentials: () =>
                new InvalidCredentials({ message: "wrong e-mail or password" }),
              TotpRequired: () =>
                new TotpRequired({ message: "enter the code from your authenticator app" }),
              InvalidTotpCode: () =>
                new InvalidTotpCode({ message: "the code is wrong or was used already" }),
              LoginThrottled: (e) =>
                new LoginThrottled({
                  message: `too many failed attempts; try again in ${e.retryAfterSeconds} s`,
                  retryAfterSeconds: e.retryAfterSeconds,
                }),
            }),
            Effect.catchTag("DatabaseError", Effect.die),
          )
          yield* HttpApiBuilder.securitySetCookie(sessionCookie, token, {
            httpOnly: true,
            secure: config.auth.secureCookies,
            sameSite: "strict",
            path: "/",
          })
          return info
        }))
    }),
)

const clearCookie = (secure: boolean) =>
  HttpApiBuilder.securitySetCookie(sessionCookie, "", {
    httpOnly: true,
    secure,
    sameSite: "strict",
    path: "/",
    maxAge: 0,
  })

export const AuthHandlers = HttpApiBuilder.group(
  ChorusApi,
  "auth",
  (handlers) =>
    Effect.gen(function* () {
      const sessions = yield* Sessions
      const operators = yield* Operators
      const operatorEvents = yield* OperatorEvents
      const config = yield* Config
      const secure = config.auth.secureCookies

      const updated = (id: OperatorId) =>
        operators.get(id).pipe(
          Effect.orDie,
          Effect.flatMap(Option.match({
            onNone: () => Effect.fail(new HttpApiError.Unauthorized()),
            onSome: Effect.succeed,
          })),
        )

      return handlers
        .handle("session", () =>
          Effect.map(currentOperator, (p) => ({ ...p.session, operator: p.operator })))
        .handle("logout", () =>
          Effect.gen(function* () {
            const { session } = yield* currentOperator
            yield* sessions.signOut(session.sessionId).pipe(Effect.orDie)
            yield* clearCookie(secure)
          }))
        .handle("logoutEverywhere", () =>
          Effect.gen(function* () {
            const { operator } = yield* currentOperator
            yield* sessions.signOutEverywhere(operator.id).pipe(Effect.orDie)
            yield* clearCookie(secure)
          }))
        .handle("presence", ({ payload }) =>
          Effect.gen(function* () {
            const { operator } = yield* currentOperator
            yield* operators.update(operator.id, { presence: payload.presence }).pipe(
              Effect.orDie,
            )
            yield* operatorEvents.changed(operator.id)
            return yield* updated(operator.id)
          }))
        .handle("locale", ({ payload }) =>
          Effect.gen(function* () {
            const { operator } = yield* currentOperator
            yield* operators.update(operator.id, { locale: payload.locale }).pipe(Effect.orDie)
            return yield* updated(operator.id)
          }))
        .handle("password", ({ payload }) =>
          Effect.gen(function* () {
            const { operator } = yield* currentOperator
            const right = yield* operators.checkPassword(operator.id, payload.currentPassword).pipe(
              Effect.orDie,
            )
            if (!right) {
              return yield* new PasswordRejected({
                field: "currentPassword",
                message: "the current password is wrong",
              })
            }
            yield* operators.setPassword(operator.id, payload.newPassword).pipe(
              Effect.catchTag("WeakPassword", (e) =>
                new PasswordRejected({ field: "newPassword", message: e.message })),
              Effect.orDie,
            )
            yield* clearCookie(secure)
          }))
        .handle("totpSetup", () =>
          Effect.gen(function* () {
            const { operator } = yield* currentOperator
            return yield* operators.beginTotp(operator.id).pipe(Effect.orDie)
          }))
        .handle("totpConfirm", ({ payload }) =>
          Effect.gen(function* () {
            const { operator } = yield* currentOperator
            yield* operators.confirmTotp(operator.id, payload.code).pipe(
              Effect.catchTag("InvalidTotpCode", () =>
                new InvalidTotpCode({ message: "the code is wrong; try the next one" })),
              Effect.orDie,
            )
            return yield* updated(operator.id)
          }))
        .handle("totpDisable", ({ payload }) =>
          Effect.gen(function* () {
            const { operator } = yield* currentOperator
            yield* operators.disableTotp(operator.id, payload.code).pipe(
              Effect.catchTag("InvalidTotpCode", () =>
                new InvalidTotpCode({ message: "the code is wrong; try the next one" })),
              Effect.orDie,
            )
            return yield* updated(operator.id)
          }))
    }),
)
