/**
 * Handler of `POST /api/v1/conversations/{id}/messages`: decode the reply, hand it to
 * `Replies` (conversation actor, outbox, outbound stream) and answer 202 with the stored message.
 *
 * As for `POST /api/v1/inbound`, the body is decoded here (a raw handler) so every problem is
 * reported at once, a body that is not JSON is a 400, and a misspelt field is refused.
 */
import { HttpApiBuilder, HttpApiError, HttpApp, HttpServerResponse } from "@effect/platform"
import type { HttpServerRequest } from "@effect/platform"
import { Effect, ParseResult, Schema } from "effect"
import { Replies } from "../../actors/conversation/Replies.ts"
import { ReplyRequest } from "../../schemas/Outbound.ts"
import { ConversationStore } from "../../actors/conversation/ConversationStore.ts"
import { ChorusApi } from "./Api.ts"
import { CurrentPrincipal } from "./Authentication.ts"
import { visibleConversation } from "./Visibility.ts"
import { describeIssues } from "./DecodeErrors.ts"
import { ConversationNotFound } from "./ReadApi.ts"
import { ConversationClosed, IDEMPOTENT_REPLAYED, ReplyRejected } from "./RepliesApi.ts"

type Issue = { readonly _tag: "Type"; readonly path: Array<string>; readonly message: string }

const badRequest = (issues: ReadonlyArray<ParseResult.ArrayFormatterIssue | Issue>) =>
  new HttpApiError.HttpApiDecodeError({ issues, message: describeIssues(issues) })

const invalidBody = (error: ParseResult.ParseError) =>
  ParseResult.ArrayFormatter.formatError(error).pipe(Effect.flatMap((issues) => badRequest(issues)))

const decodeBody = Schema.decodeUnknown(ReplyRequest, {
  errors: "all",
  onExcessProperty: "error",
})

const readJson = (request: HttpServerRequest.HttpServerRequest) =>
  request.json.pipe(
    Effect.catchAll(() =>
      badRequest([{ _tag: "Type", path: [], message: "expected a JSON object" }])
    ),
  )

const replayed = HttpApp.appendPreResponseHandler((_request, response) =>
  Effect.succeed(HttpServerResponse.setHeader(response, IDEMPOTENT_REPLAYED, "true"))
)

export const RepliesHandlers = HttpApiBuilder.group(
  ChorusApi,
  "replies",
  (handlers) =>
    Effect.gen(function* () {
      const replies = yield* Replies
      const store = yield* ConversationStore
      return handlers.handleRaw("send", ({ path, headers, request }) =>
        Effect.gen(function* () {
          const body = yield* decodeBody(yield* readJson(request)).pipe(
            Effect.catchTag("ParseError", invalidBody),
          )
          const headerKey = headers["idempotency-key"]
          if (
            headerKey !== undefined && body.clientId !== undefined && headerKey !== body.clientId
          ) {
            return yield* badRequest([{
              _tag: "Type",
              path: ["clientId"],
              message: "differs from the Idempotency-Key header (send one, or the same in both)",
            }])
          }
          yield* visibleConversation(store, path.id)
          const principal = yield* CurrentPrincipal
          const result = yield* replies.send({
            conversationId: path.id,
            text: body.text,
            attachments: body.attachments ?? [],
            identityId: body.identityId,
            clientId: headerKey ?? body.clientId,
            // API tokens are clients, not operators: their replies have no author.
            authorId: principal.kind === "operator" ? principal.operator.id : null,
            ...(body.buttons !== undefined ? { buttons: body.buttons } : {}),
          }).pipe(
            Effect.catchTags({
              ReplyConversationNotFound: (e) =>
                new ConversationNotFound({ id: e.conversationId, message: e.message }),
              ReplyConversationClosed: (e) =>
                new ConversationClosed({ id: e.conversationId, message: e.message }),
              ReplyIdentityInvalid: (e) =>
                new ReplyRejected({ field: e.field, message: e.message }),
              ReplyNotSendable: (e) => new ReplyRejected({ field: e.field, message: e.message }),
            }),
            // Storage and actor failures are ours, not the client's: a 500 (logged).
            Effect.catchTags({
              DatabaseError: Effect.die,
              ActorDefect: Effect.die,
              MailboxFull: Effect.die,
              SupervisorClosed: Effect.die,
            }),
          )
          if (result.duplicate) yield* replayed
          return result.message
        }))
    }),
)
