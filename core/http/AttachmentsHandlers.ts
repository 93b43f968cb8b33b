/** Handlers of the attachments groups: upload (token) and read (token or signed link). */
import { HttpApiBuilder, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { Effect } from "effect"
import { AttachmentStore } from "../attachments/AttachmentStore.ts"
import { Sessions } from "../accounts/Sessions.ts"
import { ApiTokens } from "../auth/ApiTokens.ts"
import { ChorusApi } from "./Api.ts"
import { AttachmentForbidden, AttachmentNotFound, AttachmentRefused } from "./AttachmentsApi.ts"

/** Types a browser may show inline; anything else is downloaded, never rendered on our origin. */
const INLINE = /^(image\/(jpeg|png|gif|webp)|audio\/.*|video\/.*|application\/pdf)$/

export const AttachmentsUploadHandlers = HttpApiBuilder.group(
  ChorusApi,
  "attachments",
  (handlers) =>
    Effect.gen(function* () {
      const store = yield* AttachmentStore
      return handlers.handle("upload", ({ urlParams }) =>
        Effect.gen(function* () {
          const request = yield* HttpServerRequest.HttpServerRequest
          const declared = Number(request.headers["content-length"] ?? 0)
          if (declared > store.limits.maxBytes) {
            return yield* new AttachmentRefused({
              reason: "too_large",
              message:
                `${declared} bytes; the limit is ${store.limits.maxBytes} (attachments.maxBytes)`,
            })
          }
          const bytes = new Uint8Array(yield* request.arrayBuffer.pipe(Effect.orDie))
          const stored = yield* store.put({
            bytes,
            name: urlParams.name,
            mimeType: request.headers["content-type"] ?? "application/octet-stream",
          }).pipe(
            Effect.catchTag(
              "AttachmentRefused",
              (e) => Effect.fail(new AttachmentRefused({ reason: e.reason, message: e.message })),
            ),
            Effect.catchTags({ BlobStoreError: Effect.die, DatabaseError: Effect.die }),
          )
          return stored
        }))
    }),
)

export const AttachmentsReadHandlers = HttpApiBuilder.group(
  ChorusApi,
  "attachmentFiles",
  (handlers) =>
    Effect.gen(function* () {
      const store = yield* AttachmentStore
      const tokens = yield* ApiTokens
      const sessions = yield* Sessions
      return handlers.handle("read", ({ path, urlParams }) =>
        Effect.gen(function* () {
          const request = yield* HttpServerRequest.HttpServerRequest
          const bearer = /^Bearer +(.+)$/i.exec(request.headers["authorization"] ?? "")?.[1]
          const byToken = bearer === undefined ? false : yield* tokens.verify(bearer.trim()).pipe(
            Effect.as(true),
            Effect.catchTag("InvalidToken", () => Effect.succeed(false)),
            Effect.orDie,
          )
          // An operator's browser (the inbox's <img>) sends its session cookie.
          const cookie = request.cookies["chorus_session"]
          const bySession = byToken || cookie === undefined ? false : yield* sessions.verify(cookie)
            .pipe(
              Effect.as(true),
              Effect.catchTag("InvalidSession", () => Effect.succeed(false)),
              Effect.orDie,
            )
          if (
            !byToken && !bySession &&
            !store.verify(path.storageKey, urlParams.expires, urlParams.signature)
          ) {
            return yield* new AttachmentForbidden({
              message: "an API token, a signed-in session or a valid, unexpired signed link " +
                "is needed",
            })
          }
          const file = yield* store.get(path.storageKey).pipe(
            Effect.catchTag("BlobNotFound", () =>
              Effect.fail(
                new AttachmentNotFound({
                  storageKey: path.storageKey,
                  message: `no stored file ${path.storageKey}`,
                }),
              )),
            Effect.catchTags({ BlobStoreError: Effect.die, DatabaseError: Effect.die }),
          )
          return HttpServerResponse.uint8Array(file.bytes, {
            contentType: file.mimeType,
            headers: {
              "content-disposition": INLINE.test(file.mimeType) ? "inline" : "attachment",
              "x-content-type-options": "nosniff",
              "content-security-policy": "default-src 'none'; sandbox",
              "cache-control": "private, max-age=31536000, immutable",
              etag: `"${path.storageKey}"`,
            },
          })
        }))
    }),
)
