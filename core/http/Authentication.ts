/**
 * Bearer-token authentication for every `/api/v1/...` group: the group declares
 * `.middleware(Authentication)`, and its handlers can read the caller's token from
 * `CurrentApiToken`. A missing, malformed, unknown or revoked token gets a bare 401, the same
 * for all four, so a client learns nothing about which tokens exist. The scheme appears in the
 * OpenAPI document as `bearer`.
 */
import {
  HttpApiError,
  HttpApiMiddleware,
  HttpApiSecurity,
  HttpApp,
  HttpMiddleware,
  HttpServerRequest,
  HttpServerResponse,
  OpenApi,
} from "@effect/platform"
import { Context, Effect, Layer, Redacted } from "effect"
import type { ApiTokenInfo } from "../../schemas/ApiToken.ts"
import { ApiTokens } from "../auth/ApiTokens.ts"

/** The token the current request was authenticated with. */
export class CurrentApiToken extends Context.Tag("chorus/core/http/CurrentApiToken")<
  CurrentApiToken,
  ApiTokenInfo
>() {}

export class Authentication extends HttpApiMiddleware.Tag<Authentication>()(
  "chorus/core/http/Authentication",
  {
    failure: HttpApiError.Unauthorized,
    provides: CurrentApiToken,
    security: {
      bearer: HttpApiSecurity.bearer.pipe(
        HttpApiSecurity.annotate(
          OpenApi.Description,
          "An API token from `chorus token create --name NAME`, sent as " +
            "`Authorization: Bearer chorus_…`.",
        ),
      ),
    },
  },
) {}

const BEARER = /^Bearer +/i

export const AuthenticationLive = Layer.effect(
  Authentication,
  Effect.gen(function* () {
    const tokens = yield* ApiTokens
    return Authentication.of({
      bearer: (token) =>
        Effect.gen(function* () {
          // HttpApiSecurity.bearer cuts the first 7 characters whatever they are; insist on
          // the scheme so `Basic …` or a bare token is refused, not half-read.
          const request = yield* HttpServerRequest.HttpServerRequest
          if (!BEARER.test(request.headers["authorization"] ?? "")) {
            return yield* new HttpApiError.Unauthorized()
          }
          return yield* tokens.verify(Redacted.value(token).trim()).pipe(
            Effect.catchTag("InvalidToken", (e) =>
              Effect.logDebug("api token refused").pipe(
                Effect.annotateLogs({ reason: e.reason }),
                Effect.zipRight(new HttpApiError.Unauthorized()),
              )),
            // The store not answering is our failure, not the client's: a 500, not a 401.
            Effect.orDie,
          )
        }),
    })
  }),
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
