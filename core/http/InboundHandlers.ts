/**
 * Handler of `POST /api/v1/inbound`: decode the body, map it to an `InboundMessage` on channel
 * `api`, publish it on the inbound stream and answer 202 once the bus has it durably.
 *
 * The body is decoded here (a raw handler) rather than by HttpApi: every problem is reported at
 * once (`sender.id: expected a non-empty string; text: …`); a body that is not JSON at all must
 * be a 400 too, not a 500; and a misspelt field must be refused, not dropped. The answer keeps
 * HttpApi's 400 shape (`HttpApiDecodeError`, `issues` with each path, see `DecodeErrors.ts`).
 */
import {
  HttpApiBuilder,
  HttpApiError,
  HttpApp,
  HttpIncomingMessage,
  HttpServerResponse,
} from "@effect/platform"
import type { HttpServerRequest } from "@effect/platform"
import { Clock, Effect, Either, Option, ParseResult, Schema } from "effect"
import { type ApiInboundAccepted, ApiInboundRequest } from "../../schemas/ApiChannel.ts"
import type { ChannelName } from "../../schemas/Ids.ts"
import { type InboundMessage, inboundMessageId } from "../../schemas/Inbound.ts"
import { inboundJson } from "../../schemas/Wire.ts"
import { Bus } from "../bus/Bus.ts"
import { inboundKey, InboundStream, inboundSubject } from "../pipeline/Streams.ts"
import { ChorusApi } from "./Api.ts"
import { describeIssues } from "./DecodeErrors.ts"
import { INBOUND_BODY_MAX, InboundTooLarge, InboundUnavailable } from "./InboundApi.ts"

const CHANNEL = "api" as ChannelName
const RETRY_AFTER_SECONDS = 5

/** A 400 naming each wrong field: `sender.id: expected a non-empty string; text: …`. */
const invalidBody = (error: ParseResult.ParseError) =>
  Effect.gen(function* () {
    const issues = yield* ParseResult.ArrayFormatter.formatError(error)
    return yield* new HttpApiError.HttpApiDecodeError({ issues, message: describeIssues(issues) })
  })

// Synchronous: an Effect per decode costs more than the decode of a small body.
const decodeBody = Schema.decodeUnknownEither(ApiInboundRequest, {
  errors: "all",
  // A misspelt optional field (`sentat`) would otherwise be dropped silently.
  onExcessProperty: "error",
})

const tooLarge = new InboundTooLarge({
  message: `the body is larger than ${INBOUND_BODY_MAX} bytes; nothing was accepted`,
  maxBytes: INBOUND_BODY_MAX,
})

/** The body as JSON, at most `INBOUND_BODY_MAX` bytes (a declared larger one is not read at all). */
const readJson = (request: HttpServerRequest.HttpServerRequest) =>
  Number(request.headers["content-length"] ?? 0) > INBOUND_BODY_MAX
    ? Effect.fail(tooLarge)
    : request.json.pipe(
      HttpIncomingMessage.withMaxBodySize(Option.some(INBOUND_BODY_MAX)),
      Effect.catchAll(() =>
        new HttpApiError.HttpApiDecodeError({
          issues: [{ _tag: "Type", path: [], message: "expected a JSON object (at most 1 MiB)" }],
          message: "body: expected a JSON object (at most 1 MiB)",
        })
      ),
    )

/** A 503 carries `Retry-After` (added as the response is sent, so the error stays typed). */
const retryAfter = HttpApp.appendPreResponseHandler((_request, response) =>
  Effect.succeed(
    response.status === 503
      ? HttpServerResponse.setHeader(response, "retry-after", String(RETRY_AFTER_SECONDS))
      : response,
  )
)

/**
 * What `POST /api/v1/inbound` does with a body once the caller is authenticated: decode it, map it
 * to an `InboundMessage` on channel `api`, publish it and answer once the bus has it durably.
 * Shared by the HttpApi handler below and the front route (InboundRoute.ts) that serves the
 * endpoint's hot path.
 */
export const makeAcceptInbound = Effect.gen(function* () {
  const bus = yield* Bus
  // Idempotent; the pipeline ensures it too. Publishing before it exists would be refused.
  yield* bus.ensureStream(InboundStream)
  return (json: unknown): Effect.Effect<
    ApiInboundAccepted,
    HttpApiError.HttpApiDecodeError | InboundUnavailable
  > =>
    Effect.gen(function* () {
      const decoded = decodeBody(json)
      if (Either.isLeft(decoded)) return yield* invalidBody(decoded.left)
      const body = decoded.right
      const now = new Date(yield* Clock.currentTimeMillis)
      const inbound: InboundMessage = {
        channel: CHANNEL,
        account: body.account,
        sender: {
          externalId: body.sender.id,
          ...(body.sender.name !== undefined ? { name: body.sender.name } : {}),
          ...(body.sender.phone !== undefined ? { phone: body.sender.phone } : {}),
          ...(body.sender.email !== undefined ? { email: body.sender.email } : {}),
          // An API client's phone and e-mail are its claims, never proof.
          verified: false,
        },
        externalId: body.externalId,
        text: body.text,
        attachments: body.attachments ?? [],
        sentAt: body.sentAt ?? now,
        receivedAt: now,
      }
      const id = inboundMessageId(inbound)
      const data = new TextEncoder().encode(inboundJson(inbound))
      // The bus answers within its own bound (Bus.ts): no timer of ours, no fiber per request.
      const ack = yield* bus.publish(inboundSubject(CHANNEL), data, {
        id,
        key: inboundKey(CHANNEL, body.account, body.sender.id),
        headers: { "Content-Type": "application/json" },
        local: inbound,
      }).pipe(
        Effect.catchTags({
          // A refusal (no stream, bad subject) is our bug, not the client's: a 500.
          BusRejected: (e) => Effect.die(e),
          BusUnavailable: (e) =>
            Effect.logWarning("inbound not accepted: bus unavailable").pipe(
              Effect.annotateLogs({ id, cause: e.message }),
              Effect.zipRight(
                new InboundUnavailable({
                  message: "the bus is unavailable; the message was not accepted, retry later",
                  retryAfterSeconds: RETRY_AFTER_SECONDS,
                }),
              ),
            ),
        }),
      )
      return { id, duplicate: ack.duplicate }
    })
})

export const InboundHandlers = HttpApiBuilder.group(
  ChorusApi,
  "inbound",
  (handlers) =>
    Effect.gen(function* () {
      const accept = yield* makeAcceptInbound
      return handlers.handleRaw("send", ({ request }) =>
        Effect.gen(function* () {
          const json: unknown = yield* readJson(request)
          return yield* accept(json).pipe(
            Effect.tapErrorTag("InboundUnavailable", () => retryAfter),
          )
        }))
    }),
)
