/**
 * The attachment store: files customers and operators send, kept once by content hash in a blob
 * store (`BlobStore.ts`; the file system under `<dataDir>/attachments` by default), with limits:
 *
 * - size: at most `attachments.maxBytes` (default 20 MiB); empty files are refused;
 * - type: the content decides, not the claim (`FileTypes.ts`): programs are always refused, a
 *   file whose bytes contradict its declared type is refused, and the type found must be in
 *   `attachments.allowedTypes`.
 *
 * Files are served only to authorised clients: API-token holders, or whoever holds a link signed
 * by this installation (`signedPath`, HMAC-SHA256 with an expiry), which the web widget hands to
 * its visitor for their own files.
 */
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto"
import * as NodePath from "node:path"
import { Context, Data, Effect, Layer } from "effect"
import type { DatabaseError } from "../storage/Database.ts"
import { Database } from "../storage/Database.ts"
import {
  type BlobNotFound,
  type BlobStore,
  type BlobStoreError,
  fileSystem,
  isKey,
} from "./BlobStore.ts"
import { classify, DEFAULT_ALLOWED_TYPES, typeAllowed } from "./FileTypes.ts"

/** A stored file, as attachments of messages refer to it (`storageKey`). */
export interface StoredFile {
  readonly storageKey: string
  readonly name: string
  readonly mimeType: string
  readonly size: number
}

export type RefusalReason = "empty" | "too_large" | "program" | "type_mismatch" | "type_not_allowed"

/** The file breaks a limit; nothing was stored. */
export class AttachmentRefused extends Data.TaggedError("AttachmentRefused")<{
  readonly reason: RefusalReason
  readonly detail: string
}> {
  override get message() {
    return `attachment refused (${this.reason}): ${this.detail}`
  }
}

export interface AttachmentLimits {
  readonly maxBytes: number
  readonly allowedTypes: ReadonlyArray<string>
}

export interface AttachmentStoreShape {
  readonly limits: AttachmentLimits
  /** Check and store a file. */
  readonly put: (file: {
    readonly bytes: Uint8Array
    readonly name: string
    readonly mimeType: string
  }) => Effect.Effect<StoredFile, AttachmentRefused | BlobStoreError | DatabaseError>
  /** A stored file's bytes and type. */
  readonly get: (key: string) => Effect.Effect<
    { readonly bytes: Uint8Array; readonly mimeType: string; readonly size: number },
    BlobNotFound | BlobStoreError | DatabaseError
  >
  /** `/api/v1/attachments/<key>?expires=…&signature=…`, valid for `ttlSeconds`. */
  readonly signedPath: (key: string, ttlSeconds: number) => string
  /** Whether `expires`/`signature` are a valid, unexpired signature for `key`. */
  readonly verify: (
    key: string,
    expires: string | undefined,
    signature: string | undefined,
  ) => boolean
}

export class AttachmentStore extends Context.Tag("chorus/core/AttachmentStore")<
  AttachmentStore,
  AttachmentStoreShape
>() {}

export const ATTACHMENTS_PATH = "/api/v1/attachments"

/** The installation's link-signing key: made once, kept in `chorus_secrets`, the same on every node. */
const signingKey = Effect.gen(function* () {
  const database = yield* Database
  const name = "attachments.signing_key"
  const read = database.query(
    "read secret",
    (db) =>
      db.selectFrom("chorus_secrets").select("value").where("name", "=", name).executeTakeFirst(),
  )
  const existing = yield* read
  if (existing !== undefined) return Buffer.from(existing.value, "base64")
  yield* database.query("create secret", (db) =>
    db.insertInto("chorus_secrets")
      .values({ name, value: randomBytes(32).toString("base64"), created_at: Date.now() })
      .onConflict((oc) => oc.column("name").doNothing())
      .execute())
  // Another node may have made it first: use whichever was stored.
  return Buffer.from((yield* read)!.value, "base64")
})

export const make = (options: { readonly blobs: BlobStore; readonly limits: AttachmentLimits }) =>
  Effect.gen(function* () {
    const database = yield* Database
    const key = yield* signingKey
    const sign = (storageKey: string, expires: string) =>
      createHmac("sha256", key).update(`${storageKey}.${expires}`).digest("base64url")

    const put: AttachmentStoreShape["put"] = (file) =>
      Effect.gen(function* () {
        if (file.bytes.length === 0) {
          return yield* new AttachmentRefused({ reason: "empty", detail: "the file is empty" })
        }
        if (file.bytes.length > options.limits.maxBytes) {
          return yield* new AttachmentRefused({
            reason: "too_large",
            detail:
              `${file.bytes.length} bytes; the limit is ${options.limits.maxBytes} (attachments.maxBytes)`,
          })
        }
        const kind = classify(file.bytes, file.mimeType)
        if (!kind.ok) {
          return yield* new AttachmentRefused({
            reason: kind.reason.startsWith("the file is a program") ? "program" : "type_mismatch",
            detail: kind.reason,
          })
        }
        if (!typeAllowed(kind.type, options.limits.allowedTypes)) {
          return yield* new AttachmentRefused({
            reason: "type_not_allowed",
            detail: `${kind.type} is not in attachments.allowedTypes`,
          })
        }
        const storageKey = yield* options.blobs.put(file.bytes)
        yield* database.query("index attachment", (db) =>
          db.insertInto("attachment_files")
            .values({
              key: storageKey,
              mime_type: kind.type,
              size: file.bytes.length,
              created_at: Date.now(),
            })
            .onConflict((oc) => oc.column("key").doNothing())
            .execute())
        const name = NodePath.basename(file.name.replace(/\\/g, "/")).slice(0, 255) || "file"
        return {
          storageKey,
          name,
          mimeType: kind.type,
          size: file.bytes.length,
        } satisfies StoredFile
      })

    const get: AttachmentStoreShape["get"] = (storageKey) =>
      Effect.gen(function* () {
        const row = isKey(storageKey)
          ? yield* database.query("read attachment", (db) =>
            db.selectFrom("attachment_files").selectAll().where("key", "=", storageKey)
              .executeTakeFirst())
          : undefined
        const bytes = yield* options.blobs.get(storageKey)
        return {
          bytes,
          mimeType: row?.mime_type ?? "application/octet-stream",
          size: bytes.length,
        }
      })

    return {
      limits: options.limits,
      put,
      get,
      signedPath: (storageKey, ttlSeconds) => {
        const expires = String(Math.floor(Date.now() / 1000) + ttlSeconds)
        return `${ATTACHMENTS_PATH}/${storageKey}?expires=${expires}&signature=${
          sign(storageKey, expires)
        }`
      },
      verify: (storageKey, expires, signature) => {
        if (expires === undefined || signature === undefined || !/^\d{1,12}$/.test(expires)) {
          return false
        }
        if (Number(expires) * 1000 < Date.now()) return false
        const expected = Buffer.from(sign(storageKey, expires))
        const given = Buffer.from(signature)
        return expected.length === given.length && timingSafeEqual(expected, given)
      },
    } satisfies AttachmentStoreShape
  })

/** The store in `<dataDir>/attachments`. */
export const layer = (
  options: { readonly dataDir: string; readonly limits?: Partial<AttachmentLimits> },
) =>
  Layer.effect(
    AttachmentStore,
    make({
      blobs: fileSystem(NodePath.join(options.dataDir, "attachments")),
      limits: {
        maxBytes: options.limits?.maxBytes ?? 20 * 1024 * 1024,
        allowedTypes: options.limits?.allowedTypes ?? DEFAULT_ALLOWED_TYPES,
      },
    }),
  )
