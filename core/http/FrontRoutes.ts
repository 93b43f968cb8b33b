/**
 * Routes served in front of the HttpApi app, straight from Node's `request` event.
 *
 * The HttpApi app costs about 250 µs of CPU per request on this machine before a handler runs
 * (router, middleware, security, a fiber and a context copy per step, the response encoder): fine
 * for reads and replies, but `POST /api/v1/inbound` is called thousands of times a second. A front
 * route takes such a request first, when it can answer it exactly as the app would; otherwise it
 * hands the request on (`pass`), untouched, to the app, which then answers it as usual. The app
 * still declares the endpoint (the OpenAPI document, the fallback for everything the front route
 * does not take).
 */
import { type IncomingMessage, Server, type ServerResponse } from "node:http"
import { Context, Effect, Layer, type Scope } from "effect"

/**
 * Look at a request: return false to leave it to the app at once; return true to answer it (or
 * to call `pass` later, which hands it to the app as if it had just arrived).
 */
export type FrontRoute = (
  request: IncomingMessage,
  response: ServerResponse,
  pass: () => void,
) => boolean

export interface FrontRoutesShape {
  /** Serve `route` until the scope closes. */
  readonly add: (route: FrontRoute) => Effect.Effect<void, never, Scope.Scope>
}

export class FrontRoutes extends Context.Tag("chorus/core/http/FrontRoutes")<
  FrontRoutes,
  FrontRoutesShape
>() {}

/** A Node HTTP server that offers every request to its front routes before its listeners. */
export class FrontRoutedServer extends Server {
  private readonly routes: Array<FrontRoute> = []

  readonly front: FrontRoutesShape = {
    add: (route) =>
      Effect.acquireRelease(
        Effect.sync(() => this.routes.push(route)),
        () =>
          Effect.sync(() => {
            const at = this.routes.indexOf(route)
            if (at >= 0) this.routes.splice(at, 1)
          }),
      ).pipe(Effect.asVoid),
  }

  override emit(event: any, ...args: Array<any>): boolean {
    if (event === "request" && this.routes.length > 0) {
      const [request, response] = args as [IncomingMessage, ServerResponse]
      const pass = () => {
        super.emit("request", request, response)
      }
      for (const route of this.routes) if (route(request, response, pass)) return true
    }
    return super.emit(event, ...args)
  }
}

/** The front routes of `server`, as a service for the layers that add routes. */
export const layer = (server: FrontRoutedServer): Layer.Layer<FrontRoutes> =>
  Layer.succeed(FrontRoutes, server.front)
