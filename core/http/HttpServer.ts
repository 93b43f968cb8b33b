/**
 * The HTTP server: the HttpApi (with its OpenAPI document at `/api/openapi.json`) served by
 * Node's http module, every request logged as structured JSON.
 *
 * The port opens only once every handler is built (their layers reach the bus and the store),
 * and "http listening" is logged once requests are served: Node drops a request that arrives
 * while nobody listens for it, and its client waits for an answer until its own timeout. For the
 * instants that remain (between `listen` and the app's attachment, and during shutdown) the
 * server answers 503 with `Retry-After` rather than nothing.
 */
import { HttpApiBuilder, HttpMiddleware, HttpServer } from "@effect/platform"
import type { HttpServerRequest } from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import { Context, Deferred, Effect, Layer } from "effect"
import * as ConversationQueries from "../../actors/conversation/ConversationQueries.ts"
import { ApiTokens } from "../auth/ApiTokens.ts"
import { ChorusApi } from "./Api.ts"
import {
  AdminAuthenticationLive,
  AuthenticationLive,
  bearerChallenge,
  SupervisorAuthenticationLive,
} from "./Authentication.ts"
import { AuthHandlers, AuthLoginHandlers } from "./AuthHandlers.ts"
import { ConversationActionsHandlers, InboxHandlers, SupervisionHandlers } from "./InboxHandlers.ts"
import { readableDecodeErrors } from "./DecodeErrors.ts"
import {
  ChannelsHandlers,
  DeadLettersHandlers,
  MessageDeliveryHandlers,
  MetricsHandlers,
} from "./DeliveryHandlers.ts"
import { EventsHandlers, EventStreamsStop } from "./EventsHandlers.ts"
import { AttachmentsReadHandlers, AttachmentsUploadHandlers } from "./AttachmentsHandlers.ts"
import { InboundHandlers } from "./InboundHandlers.ts"
import * as InboundRoute from "./InboundRoute.ts"
import * as FrontRoutes from "./FrontRoutes.ts"
import { FrontRoutedServer } from "./FrontRoutes.ts"
import { PeopleHandlers } from "./PeopleHandlers.ts"
import { PluginsHandlers } from "./PluginsHandlers.ts"
import { ProfileHandlers } from "./ProfileHandlers.ts"
import * as ContactDirectory from "../identity/ContactDirectory.ts"
import { pluginRoutes } from "./PluginRoutes.ts"
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
  Layer.provide(ProfileHandlers.pipe(Layer.provide(ContactDirectory.layer))),
  Layer.provide([PluginsHandlers, AttachmentsUploadHandlers, AttachmentsReadHandlers]),
  Layer.provide([AuthLoginHandlers, AuthHandlers]),
  Layer.provide([InboxHandlers, ConversationActionsHandlers, SupervisionHandlers, PeopleHandlers]),
  Layer.provide([ChannelsHandlers, DeadLettersHandlers, MessageDeliveryHandlers, MetricsHandlers]),
  Layer.provide([AuthenticationLive, AdminAuthenticationLive, SupervisorAuthenticationLive]),
  Layer.provide([ApiTokens.Default, ConversationQueries.layer]),
)

/** Seconds a client is told to wait by the 503 of a server that is not serving yet. */
const NOT_SERVING_RETRY_AFTER = 1

/**
 * A Node HTTP server that answers 503 (with `Retry-After`) to any request arriving while no app
 * is attached: Node would otherwise leave it unanswered, with its connection open.
 */
export const createAnsweringServer = (): FrontRoutedServer => {
  const server = new FrontRoutedServer()
  server.on("request", (_request, response) => {
    // The app's own listener is attached after this one; while it is, this one stands aside.
    if (server.listenerCount("request") > 1) return
    response.writeHead(503, {
      "content-type": "text/plain; charset=utf-8",
      "retry-after": String(NOT_SERVING_RETRY_AFTER),
      connection: "close",
    })
    response.end("chorus is starting or stopping; retry shortly\n")
  })
  return server
}

const logListening = (server: HttpServer.HttpServer) => {
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
}

/**
 * Ends open event streams when the server stops. Built after the server, so it runs before the
 * server's close, which waits for every open connection.
 */
const endEventStreamsFirst = Layer.scopedDiscard(
  Effect.flatMap(
    EventStreamsStop,
    (stop) => Effect.addFinalizer(() => Deferred.succeed(stop, undefined)),
  ),
)

/**
 * No tracing span for the ingest route: it is the one called thousands of times a second, and
 * its span (URL parsed again, headers copied as attributes) cost more than the handler.
 */
const untraced = (request: HttpServerRequest.HttpServerRequest) =>
  request.method === "POST" && request.url.startsWith("/api/v1/inbound")

export const layer = (options: HttpOptions) =>
  Layer.unwrapEffect(Effect.sync(() => serve(options, createAnsweringServer())))

const serve = (options: HttpOptions, server: FrontRoutedServer) =>
  HttpApiBuilder.serve((app) => HttpMiddleware.logger(pluginRoutes(bearerChallenge(app)))).pipe(
    HttpMiddleware.withTracerDisabledWhen(untraced),
    // The ingest endpoint's hot path, in front of the app (see FrontRoutes.ts).
    Layer.merge(InboundRoute.layer),
    Layer.provide(FrontRoutes.layer(server)),
    Layer.provide(HttpApiBuilder.middleware(readableDecodeErrors)),
    Layer.provide(HttpApiBuilder.middlewareOpenApi({ path: "/api/openapi.json" })),
    Layer.merge(endEventStreamsFirst),
    // provideMerge: the bound address stays readable (port 0 picks a free port).
    Layer.provideMerge(
      NodeHttpServer.layer(() => server, { host: options.host, port: options.port }),
    ),
    // Only now is the app attached: the announcement that clients (and tests) wait for.
    Layer.tap((context) => logListening(Context.get(context, HttpServer.HttpServer))),
    // Built before the server above listens: the handlers' layers ensure streams on the bus,
    // which on JetStream takes round trips, and until they are built nothing answers.
    Layer.provide(ApiLive),
    Layer.provide(ApiTokens.Default),
    Layer.provide(Layer.effect(EventStreamsStop, Deferred.make<void>())),
  )
