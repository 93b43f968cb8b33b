/**
 * Authentication for every `/api/v1/...` group: the group declares `.middleware(Authentication)`
 * and its handlers read the caller from `CurrentPrincipal`. Two ways in, tried in order:
 *
 * - `Authorization: Bearer chorus_…`: an API token (integrations, scripts). A missing,
 *   malformed, unknown or revoked token gets a bare 401, the same for all four.
 * - the `chorus_session` cookie: an operator signed in through `POST /api/v1/auth/login` (the
 *   inbox). A request that changes something (any method but GET, HEAD, OPTIONS) must also carry
 *   the session's CSRF token as `X-CSRF-Token`, and, when the browser sends an `Origin`, come
 *   from this server's own origin; otherwise 403 `CsrfRejected`. The cookie is `SameSite=Strict`
 *   and `HttpOnly` as well.
 *
 * Both schemes appear in the OpenAPI document.
 */
import {
  HttpApiError,
  HttpApiMiddleware,
  HttpApiSchema,
  HttpApiSecurity,
  HttpApp,
  HttpMiddleware,
  HttpServerRequest,
  HttpServerResponse,
  OpenApi,
} from "@effect/platform"
import { Context, Effect, Layer, Redacted, Schema } from "effect"
import { type Principal, supervises } from "../accounts/Access.ts"
import { csrfMatches, Sessions } from "../accounts/Sessions.ts"
import { ApiTokens } from "../auth/ApiTokens.ts"

/** Who the current request is: an API token or a signed-in operator. */
export class CurrentPrincipal extends Context.Tag("chorus/core/http/CurrentPrincipal")<
  CurrentPrincipal,
  Principal
>() {}

/** A cookie-authenticated change without the session's CSRF token (or from another origin). */
export class CsrfRejected extends Schema.TaggedError<CsrfRejected>()(
  "CsrfRejected",
  { message: Schema.String },
  HttpApiSchema.annotations({
    status: 403,
    description: "Send the session's csrfToken as X-CSRF-Token, from the server's own origin.",
  }),
) {}

/** The caller is known but their role does not allow this. */
export class Forbidden extends Schema.TaggedError<Forbidden>()(
  "Forbidden",
  { message: Schema.String },
  HttpApiSchema.annotations({ status: 403, description: "Your role does not allow this." }),
) {}

/** The session cookie: also what `POST /auth/login` sets. */
export const sessionCookie = HttpApiSecurity.apiKey({ key: "chorus_session", in: "cookie" }).pipe(
  HttpApiSecurity.annotate(
    OpenApi.Description,
    "An operator's session from `POST /api/v1/auth/login` (the inbox). Changes also need " +
      "`X-CSRF-Token`.",
  ),
)

const securitySchemes = {
  bearer: HttpApiSecurity.bearer.pipe(
    HttpApiSecurity.annotate(
      OpenApi.Description,
      "An API token from `chorus token create --name NAME`, sent as " +
        "`Authorization: Bearer chorus_…`.",
    ),
  ),
  session: sessionCookie,
}

export class Authentication extends HttpApiMiddleware.Tag<Authentication>()(
  "chorus/core/http/Authentication",
  {
    failure: Schema.Union(HttpApiError.Unauthorized, CsrfRejected),
    provides: CurrentPrincipal,
    security: securitySchemes,
  },
) {}

/** Authentication, then admins and API tokens only (people, teams, plugins, tokens). */
export class AdminAuthentication extends HttpApiMiddleware.Tag<AdminAuthentication>()(
  "chorus/core/http/AdminAuthentication",
  {
    failure: Schema.Union(HttpApiError.Unauthorized, CsrfRejected, Forbidden),
    provides: CurrentPrincipal,
    security: securitySchemes,
  },
) {}

/** Authentication, then supervisors, admins and API tokens only (the queue, loads). */
export class SupervisorAuthentication extends HttpApiMiddleware.Tag<SupervisorAuthentication>()(
  "chorus/core/http/SupervisorAuthentication",
  {
    failure: Schema.Union(HttpApiError.Unauthorized, CsrfRejected, Forbidden),
    provides: CurrentPrincipal,
    security: securitySchemes,
  },
) {}

const BEARER = /^Bearer +/i

const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"])

/** The request's own origin as the browser would write it (`http://host:port`). */
const ownOrigin = (request: HttpServerRequest.HttpServerRequest): string | undefined => {
  const host = request.headers["host"]
  if (host === undefined) return undefined
  const proto = request.headers["x-forwarded-proto"]?.split(",")[0]?.trim() ?? "http"
  return `${proto}://${host}`
}

/** The two ways in, then `check` on the principal (a role, for the admin and supervisor variants). */
const authenticate = <E>(check: (principal: Principal) => Effect.Effect<void, E>) =>
  Effect.gen(function* () {
    const tokens = yield* ApiTokens
    const sessions = yield* Sessions
    return {
      bearer: (token: Redacted.Redacted<string>) =>
        Effect.gen(function* () {
          // HttpApiSecurity.bearer cuts the first 7 characters whatever they are; insist on
          // the scheme so `Basic …` or a bare token is refused, not half-read.
          const request = yield* HttpServerRequest.HttpServerRequest
          if (!BEARER.test(request.headers["authorization"] ?? "")) {
            return yield* new HttpApiError.Unauthorized()
          }
          const info = yield* tokens.verify(Redacted.value(token).trim()).pipe(
            Effect.catchTag("InvalidToken", (e) =>
              Effect.logDebug("api token refused").pipe(
                Effect.annotateLogs({ reason: e.reason }),
                Effect.zipRight(new HttpApiError.Unauthorized()),
              )),
            // The store not answering is our failure, not the client's: a 500, not a 401.
            Effect.orDie,
          )
          const principal: Principal = { kind: "token", token: info }
          yield* check(principal)
          return principal
        }),
      session: (cookie: Redacted.Redacted<string>) =>
        Effect.gen(function* () {
          const value = Redacted.value(cookie)
          if (value === "") return yield* new HttpApiError.Unauthorized()
          const verified = yield* sessions.verify(value).pipe(
            Effect.catchTag("InvalidSession", () => new HttpApiError.Unauthorized()),
            Effect.orDie,
          )
          const request = yield* HttpServerRequest.HttpServerRequest
          if (!SAFE_METHODS.has(request.method)) {
            const origin = request.headers["origin"]
            if (origin !== undefined && origin !== ownOrigin(request)) {
              return yield* new CsrfRejected({ message: `requests from ${origin} are refused` })
            }
            if (!csrfMatches(verified.info, request.headers["x-csrf-token"])) {
              return yield* new CsrfRejected({
                message: "missing or wrong X-CSRF-Token (the csrfToken of your session)",
              })
            }
          }
          const principal: Principal = {
            kind: "operator",
            operator: verified.operator,
            session: verified.info,
          }
          yield* check(principal)
          return principal
        }),
    }
  })

export const AuthenticationLive = Layer.effect(
  Authentication,
  Effect.map(authenticate(() => Effect.void), Authentication.of),
)

export const AdminAuthenticationLive = Layer.effect(
  AdminAuthentication,
  Effect.map(
    authenticate((principal) =>
      principal.kind === "token" || principal.operator.role === "admin"
        ? Effect.void
        : Effect.fail(new Forbidden({ message: "only an admin may do this" }))
    ),
    AdminAuthentication.of,
  ),
)

export const SupervisorAuthenticationLive = Layer.effect(
  SupervisorAuthentication,
  Effect.map(
    authenticate((principal) =>
      supervises(principal)
        ? Effect.void
        : Effect.fail(new Forbidden({ message: "only a supervisor or an admin may do this" }))
    ),
    SupervisorAuthentication.of,
  ),
)

/**
 * Adds the challenge RFC 6750 asks for to every 401 (`WWW-Authenticate: Bearer realm="chorus"`),
 * without an `error` attribute, which would tell a wrong token from a missing one.
 */
export const bearerChallenge = HttpMiddleware.make((app) =>
  // A pre-response handler also sees the responses made from failures (the 401 is one).
  Effect.zipRight(
    HttpApp.appendPreResponseHandler((_request, response) =>
      Effect.succeed(
        response.status === 401
          ? HttpServerResponse.setHeader(response, "www-authenticate", 'Bearer realm="chorus"')
          : response,
      )
    ),
    app,
  )
)
