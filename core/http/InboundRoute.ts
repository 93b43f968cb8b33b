/**
 * `POST /api/v1/inbound` served as a front route (FrontRoutes.ts): the endpoint integrators call
 * thousands of times a second, answered in one fiber per request instead of the HttpApi app's
 * chain of middleware. It answers exactly as the app's handler (InboundHandlers.ts) would, with
 * the same code for everything past the HTTP framing (`makeAcceptInbound`): 202 with
 * `{ id, duplicate }`, 400 naming each wrong field, 503 with `Retry-After`.
 *
 * It takes only what it can answer alike: a request with a well-formed bearer token that
 * verifies, and a declared `Content-Length` within the limit. Everything else — no token or a
 * session cookie, a token that is refused (the app's 401 with its challenge), a chunked or
 * oversized body (the app's 413) — goes to the app untouched.
 */
import type { IncomingMessage, ServerResponse } from "node:http"
import { HttpApiError } from "@effect/platform"
import { Cause, Effect, Exit, FiberSet, Layer, LogLevel, Schema } from "effect"
import { whenLogging } from "../logging/Logging.ts"
import { ApiInboundAccepted } from "../../schemas/ApiChannel.ts"
import { ApiTokens } from "../auth/ApiTokens.ts"
import { FrontRoutes } from "./FrontRoutes.ts"
import { INBOUND_BODY_MAX, InboundUnavailable } from "./InboundApi.ts"
import { makeAcceptInbound } from "./InboundHandlers.ts"

const PATH = "/api/v1/inbound"
const BEARER = /^Bearer +(\S+)\s*$/i

const encodeAccepted = Schema.encodeSync(ApiInboundAccepted)
const encodeDecodeError = Schema.encodeSync(HttpApiError.HttpApiDecodeError)
const encodeUnavailable = Schema.encodeSync(InboundUnavailable)

const notJson = new HttpApiError.HttpApiDecodeError({
  issues: [{ _tag: "Type", path: [], message: "expected a JSON object (at most 1 MiB)" }],
  message: "body: expected a JSON object (at most 1 MiB)",
})

/** The request's path is the endpoint's (a query string is ignored, as by the app's router). */
const isInbound = (request: IncomingMessage) => {
  const url = request.url ?? ""
  return request.method === "POST" && url.startsWith(PATH) &&
    (url.length === PATH.length || url[PATH.length] === "?")
}

/** Answer with `body` as JSON; "" for an empty body. */
const send = (
  response: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
) => {
  if (response.headersSent || response.destroyed) return
  const text = body === "" ? "" : JSON.stringify(body)
  response.writeHead(status, {
    ...headers,
    ...(text === "" ? {} : { "content-type": "application/json" }),
    "content-length": Buffer.byteLength(text),
  })
  response.end(text)
}

/** The body, whole; the caller checked that it declares at most `INBOUND_BODY_MAX` bytes. */
const readBody = (request: IncomingMessage, length: number) =>
  Effect.async<Buffer, "aborted">((resume) => {
    const chunks: Array<Buffer> = []
    let size = 0
    const onData = (chunk: Buffer) => {
      size += chunk.length
      // Node stops a body at its Content-Length; more than declared cannot arrive.
      chunks.push(chunk)
    }
    const onEnd = () => {
      cleanup()
      resume(
        size === length ? Effect.succeed(Buffer.concat(chunks, size)) : Effect.fail("aborted"),
      )
    }
    const onAborted = () => {
      cleanup()
      resume(Effect.fail("aborted"))
    }
    const cleanup = () => {
      request.off("data", onData)
      request.off("end", onEnd)
      request.off("error", onAborted)
      request.off("aborted", onAborted)
    }
    request.on("data", onData)
    request.on("end", onEnd)
    request.on("error", onAborted)
    request.on("aborted", onAborted)
    return Effect.sync(cleanup)
  })

const parseJson = (body: Buffer): unknown => {
  try {
    return JSON.parse(body.toString("utf8"))
  } catch {
    return notJson
  }
}

/** The access log line the app's other routes write (HttpMiddleware.logger). */
const logSent = (request: IncomingMessage, status: number) =>
  whenLogging(LogLevel.Info, () =>
    Effect.logInfo("Sent HTTP response").pipe(
      Effect.annotateLogs({
        "http.method": "POST",
        "http.url": request.url ?? PATH,
        "http.status": status,
      }),
    ))

export const layer = Layer.scopedDiscard(
  Effect.gen(function* () {
    const routes = yield* FrontRoutes
    const tokens = yield* ApiTokens
    const accept = yield* makeAcceptInbound
    // Requests in flight are interrupted when the server stops (their fibers end with the scope).
    const run = yield* FiberSet.makeRuntime<never, void, never>()

    const handle =
      (request: IncomingMessage, response: ServerResponse, pass: () => void) =>
      (token: string, length: number) =>
        Effect.gen(function* () {
          const verified = yield* Effect.either(tokens.verify(token))
          // Refused or not checkable: the app answers (401 with its challenge, or 500) as ever.
          if (verified._tag === "Left") return pass()
          const body = yield* readBody(request, length)
          const json = parseJson(body)
          const exit = yield* Effect.exit(
            json === notJson ? Effect.fail(notJson) : accept(json),
          )
          if (Exit.isSuccess(exit)) {
            send(response, 202, encodeAccepted(exit.value))
            return yield* logSent(request, 202)
          }
          const failure = Cause.failureOption(exit.cause)
          if (failure._tag === "None") return yield* Effect.failCause(exit.cause)
          const error = failure.value
          if (error._tag === "HttpApiDecodeError") {
            send(response, 400, encodeDecodeError(error))
            return yield* logSent(request, 400)
          }
          send(response, 503, encodeUnavailable(error), {
            "retry-after": String(error.retryAfterSeconds),
          })
          return yield* logSent(request, 503)
        }).pipe(
          // The client went away mid-body: nobody to answer.
          Effect.catchAll(() => Effect.sync(() => response.destroy())),
          Effect.catchAllCause((cause) =>
            Cause.isInterruptedOnly(cause)
              // The server is stopping.
              ? Effect.sync(() => send(response, 503, "", { "retry-after": "1" }))
              : Effect.logError("inbound failed", cause).pipe(
                Effect.zipRight(Effect.sync(() => send(response, 500, ""))),
              )
          ),
        )

    yield* routes.add((request, response, pass) => {
      if (!isInbound(request)) return false
      const token = BEARER.exec(request.headers["authorization"] ?? "")?.[1]
      const declared = request.headers["content-length"]
      const length = declared === undefined ? NaN : Number(declared)
      if (
        token === undefined || !Number.isSafeInteger(length) || length > INBOUND_BODY_MAX ||
        request.headers["transfer-encoding"] !== undefined
      ) return false
      run(handle(request, response, pass)(token, length))
      return true
    })
  }),
)
