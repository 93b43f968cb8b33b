/**
 * The attachments API: upload a file (to attach it to a reply by its `storageKey`), and read a
 * stored file — with an API token, or with a link signed by this installation (what the web
 * widget gives a visitor for their own files).
 */
import { HttpApiEndpoint, HttpApiGroup, HttpApiSchema, OpenApi } from "@effect/platform"
import { Schema } from "effect"
import { StoredFile } from "../../schemas/Attachments.ts"
import { Authentication } from "./Authentication.ts"

export class AttachmentRefused extends Schema.TaggedError<AttachmentRefused>()(
  "AttachmentRefused",
  {
    reason: Schema.Literal("empty", "too_large", "program", "type_mismatch", "type_not_allowed"),
    message: Schema.String,
  },
  HttpApiSchema.annotations({
    status: 422,
    description: "The file breaks a limit (size, type checked against its content, programs).",
  }),
) {}

export class AttachmentNotFound extends Schema.TaggedError<AttachmentNotFound>()(
  "AttachmentNotFound",
  { storageKey: Schema.String, message: Schema.String },
  HttpApiSchema.annotations({ status: 404 }),
) {}

export class AttachmentForbidden extends Schema.TaggedError<AttachmentForbidden>()(
  "AttachmentForbidden",
  { message: Schema.String },
  HttpApiSchema.annotations({
    status: 401,
    description: "Neither a valid API token nor a valid, unexpired signature.",
  }),
) {}

export class AttachmentsUploadApi extends HttpApiGroup.make("attachments")
  .add(
    HttpApiEndpoint.post("upload", "/attachments")
      .setUrlParams(
        Schema.Struct({ name: Schema.String.pipe(Schema.minLength(1), Schema.maxLength(255)) }),
      )
      .addSuccess(StoredFile, { status: 201 })
      .addError(AttachmentRefused)
      .annotate(
        OpenApi.Summary,
        "Store a file: the body is the file, Content-Type its declared type.",
      )
      .annotate(
        OpenApi.Description,
        "The request body is the file's bytes (not JSON, not multipart) and `Content-Type` its " +
          "declared type; `name` its file name. The content is checked: a program, a file whose " +
          "bytes contradict its type, a type outside `attachments.allowedTypes` or a file over " +
          "`attachments.maxBytes` gets 422 with the reason. The same bytes twice are stored " +
          "once (the key is their SHA-256).",
      ),
  )
  .middleware(Authentication)
  .annotate(OpenApi.Description, "Attachments: files of messages.") {}

export class AttachmentsReadApi extends HttpApiGroup.make("attachmentFiles")
  .add(
    HttpApiEndpoint.get("read", "/attachments/:storageKey")
      .setPath(Schema.Struct({ storageKey: Schema.String }))
      .setUrlParams(
        Schema.Struct({
          expires: Schema.optional(Schema.String),
          signature: Schema.optional(Schema.String),
        }),
      )
      .addSuccess(HttpApiSchema.Uint8Array({ contentType: "application/octet-stream" }))
      .addError(AttachmentNotFound)
      .addError(AttachmentForbidden)
      .annotate(
        OpenApi.Summary,
        "A stored file, with its checked Content-Type; needs an API token or a signed link.",
      ),
  )
  .annotate(OpenApi.Description, "Attachments: reading a stored file.") {}
