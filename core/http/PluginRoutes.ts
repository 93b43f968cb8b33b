/**
 * Requests to `/plugins/<id>/…` go to the plugin that declares the route (`contributes.routes`)
 * and registered a handler for it; everything else goes to the API. Plugin routes are not behind
 * the API's bearer tokens: a webhook from Telegram or WhatsApp carries none, so a plugin checks
 * its provider's signature itself. Bodies are limited to 1 MiB (413). A WebSocket upgrade to a
 * route declared `"websocket": true` becomes a connection served by the plugin.
 */
import { type HttpApp, HttpServerRequest, HttpServerResponse, Socket } from "@effect/platform"
import { Effect, Option } from "effect"
import { PluginHost } from "../plugins/PluginHost.ts"

export const MAX_PLUGIN_BODY = 1024 * 1024

const json = (status: number, body: unknown) => HttpServerResponse.unsafeJson(body, { status })

export const pluginRoutes = <E, R>(
  app: HttpApp.Default<E, R>,
): HttpApp.Default<E, R | PluginHost> =>
  Effect.gen(function* () {
    const request = yield* HttpServerRequest.HttpServerRequest
    if (!request.url.startsWith("/plugins/")) return yield* app
    const host = yield* PluginHost
    const url = new URL(request.url, "http://chorus.local")
    if ((request.headers["upgrade"] ?? "").toLowerCase() === "websocket") {
      const session = yield* host.openSocket({
        method: "GET",
        path: url.pathname,
        query: Object.fromEntries(url.searchParams),
        headers: request.headers,
        body: new Uint8Array(0),
      })
      const socket = yield* request.upgrade.pipe(Effect.orDie)
      if (Option.isNone(session)) {
        // An upgrade request is answered on the socket: 4404, no such route.
        yield* Effect.scoped(
          Effect.gen(function* () {
            const write = yield* socket.writer
            yield* socket.runRaw(() => Effect.void, {
              onOpen: write(new Socket.CloseEvent(4404, `no websocket at ${url.pathname}`)).pipe(
                Effect.ignore,
              ),
            }).pipe(Effect.ignore)
          }),
        )
        return HttpServerResponse.empty()
      }
      yield* session.value(socket)
      return HttpServerResponse.empty()
    }
    const length = Number(request.headers["content-length"] ?? "0")
    if (length > MAX_PLUGIN_BODY) {
      return json(413, {
        error: "PayloadTooLarge",
        message: `bodies are limited to ${MAX_PLUGIN_BODY} bytes`,
      })
    }
    const body = request.method === "GET" || request.method === "HEAD"
      ? new Uint8Array(0)
      : new Uint8Array(
        yield* request.arrayBuffer.pipe(Effect.orElseSucceed(() => new ArrayBuffer(0))),
      )
    if (body.length > MAX_PLUGIN_BODY) {
      return json(413, {
        error: "PayloadTooLarge",
        message: `bodies are limited to ${MAX_PLUGIN_BODY} bytes`,
      })
    }
    const response = yield* host.handleRequest({
      method: request.method,
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      headers: request.headers,
      body,
    })
    if (Option.isNone(response)) {
      return json(404, {
        error: "NotFound",
        message: `no plugin serves ${request.method} ${url.pathname}`,
      })
    }
    const { status, headers, body: out } = response.value
    const { "content-type": contentType, ...rest } = headers
    return HttpServerResponse.uint8Array(out, {
      status,
      headers: rest,
      ...(contentType !== undefined ? { contentType } : {}),
    })
  })
