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
import { Sessions } from "../accounts/Sessions.ts"
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

export class Authentication extends HttpApiMiddleware.Tag<Authentication>()(
  "chorus/core/http/Authentication",
  {
    failure: Schema.Union(HttpApiError.Unauthorized, CsrfRejected),
    provides: CurrentPrincipal,
    security: {
      bearer: HttpApiSecurity.bearer.pipe(
        HttpApiSecurity.annotate(
          OpenApi.Description,
          "An API token from `chorus token create --name NAME`, sent as " +
            "`Authorization: Bearer chorus_…`.",
        ),
      ),
      session: sessionCookie,
    },
  },
) {}

/** Admins and API tokens only (people, teams, plugins, tokens). */
export class RequireAdmin extends HttpApiMiddleware.Tag<RequireAdmin>()(
  "chorus/core/http/RequireAdmin",
  { failure: Forbidden },
) {}

/** Supervisors, admins and API tokens (the queue, operators' loads). */
export class RequireSupervisor extends HttpApiMiddleware.Tag<RequireSupervisor>()(
  "chorus/core/http/RequireSupervisor",
  { failure: Forbidden },
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

export const AuthenticationLive = Layer.effect(
  Authentication,
  Effect.gen(function* () {
    const tokens = yield* ApiTokens
    const sessions = yield* Sessions
    return Authentication.of({
      bearer: (token) =>
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
          return { kind: "token", token: info } satisfies Principal
        }),
      session: (cookie) =>
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
            if (request.headers["x-csrf-token"] !== verified.info.csrfToken) {
              return yield* new CsrfRejected({
                message: "missing or wrong X-CSRF-Token (the csrfToken of your session)",
              })
            }
          }
          return {
            kind: "operator",
            operator: verified.operator,
            session: verified.info,
          } satisfies Principal
        }),
    })
  }),
)

export const RequireAdminLive = Layer.succeed(
  RequireAdmin,
  Effect.flatMap(CurrentPrincipal, (principal) =>
    principal.kind === "token" || principal.operator.role === "admin"
      ? Effect.void
      : new Forbidden({ message: "only an admin may do this" })),
)

export const RequireSupervisorLive = Layer.succeed(
  RequireSupervisor,
  Effect.flatMap(CurrentPrincipal, (principal) =>
    supervises(principal)
      ? Effect.void
      : new Forbidden({ message: "only a supervisor or an admin may do this" })),
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
