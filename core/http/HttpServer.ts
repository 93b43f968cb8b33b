/**
 * The HTTP server: the HttpApi (with its OpenAPI document at `/api/openapi.json`) served by
 * Node's http module, every request logged as structured JSON.
 */
import { createServer } from "node:http"
import { HttpApiBuilder, HttpMiddleware, HttpServer } from "@effect/platform"
import type { HttpServerRequest } from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import { Effect, Layer } from "effect"
import * as ConversationQueries from "../../actors/conversation/ConversationQueries.ts"
import { ApiTokens } from "../auth/ApiTokens.ts"
import { ChorusApi } from "./Api.ts"
import { AuthenticationLive, bearerChallenge } from "./Authentication.ts"
import { readableDecodeErrors } from "./DecodeErrors.ts"
import { EventsHandlers } from "./EventsHandlers.ts"
import { InboundHandlers } from "./InboundHandlers.ts"
import { ContactsHandlers, ConversationsHandlers } from "./ReadHandlers.ts"
import { RepliesHandlers } from "./RepliesHandlers.ts"
import { SystemHandlers } from "./SystemHandlers.ts"
import { TokensHandlers } from "./TokensHandlers.ts"

export interface HttpOptions {
  readonly host: string
  readonly port: number
}

export const ApiLive = HttpApiBuilder.api(ChorusApi).pipe(
  Layer.provide([SystemHandlers, TokensHandlers]),
  Layer.provide(EventsHandlers),
  Layer.provide([InboundHandlers, ConversationsHandlers, ContactsHandlers, RepliesHandlers]),
  Layer.provide(AuthenticationLive),
  Layer.provide([ApiTokens.Default, ConversationQueries.layer]),
)

const logListening = Layer.effectDiscard(
  HttpServer.HttpServer.pipe(
    Effect.flatMap((server) => {
      const address = server.address
      return address._tag === "TcpAddress"
        ? Effect.logInfo("http listening").pipe(
          Effect.annotateLogs({
            host: address.hostname,
            port: address.port,
            url: `http://${address.hostname}:${address.port}`,
          }),
        )
        : Effect.logInfo("http listening").pipe(Effect.annotateLogs({ path: address.path }))
    }),
  ),
)

/**
 * No tracing span for the ingest route: it is the one called thousands of times a second, and
 * its span (URL parsed again, headers copied as attributes) cost more than the handler.
 */
const untraced = (request: HttpServerRequest.HttpServerRequest) =>
  request.method === "POST" && request.url.startsWith("/api/v1/inbound")

export const layer = (options: HttpOptions) =>
  HttpApiBuilder.serve((app) => HttpMiddleware.logger(bearerChallenge(app))).pipe(
    HttpMiddleware.withTracerDisabledWhen(untraced),
    Layer.provide(HttpApiBuilder.middleware(readableDecodeErrors)),
    Layer.provide(HttpApiBuilder.middlewareOpenApi({ path: "/api/openapi.json" })),
    Layer.provide(ApiLive),
    Layer.merge(logListening),
    // provideMerge: the bound address stays readable (port 0 picks a free port).
    Layer.provideMerge(
      NodeHttpServer.layer(createServer, { host: options.host, port: options.port }),
    ),
  )
