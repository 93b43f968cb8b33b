/** Handlers of the tokens group: `GET /api/v1/tokens/me` answers with the caller's token. */
import { HttpApiBuilder, HttpApiError } from "@effect/platform"
import { Effect } from "effect"
import { ChorusApi } from "./Api.ts"
import { CurrentPrincipal } from "./Authentication.ts"

export const TokensHandlers = HttpApiBuilder.group(
  ChorusApi,
  "tokens",
  (handlers) =>
    Effect.succeed(
      handlers.handle("me", () =>
        Effect.flatMap(CurrentPrincipal, (principal) =>
          principal.kind === "token"
            ? Effect.succeed(principal.token)
            // A session is not a token: the operator's own view is GET /auth/session.
            : Effect.fail(new HttpApiError.Unauthorized()))),
    ),
)
