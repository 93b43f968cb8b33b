/** Handlers of the tokens group: `GET /api/v1/tokens/me` answers with the caller's token. */
import { HttpApiBuilder } from "@effect/platform"
import { Effect } from "effect"
import { ChorusApi } from "./Api.ts"
import { CurrentApiToken } from "./Authentication.ts"

export const TokensHandlers = HttpApiBuilder.group(
  ChorusApi,
  "tokens",
  (handlers) => Effect.succeed(handlers.handle("me", () => CurrentApiToken)),
)
