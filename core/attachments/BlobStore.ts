/**
 * Where attachment bytes live: a content-addressed blob store. A blob's key is its SHA-256
 * (`sha256-<hex>`), so the same file sent twice is stored once and a key can never point at
 * other bytes. `BlobStore` is the seam for other backends (S3-compatible storage later); the
 * file system one keeps blobs under `<dataDir>/attachments/<aa>/<bb>/<hex>`.
 */
import { createHash } from "node:crypto"
import * as NodeFs from "node:fs"
import * as NodePath from "node:path"
import { Data, Effect } from "effect"

export class BlobStoreError extends Data.TaggedError("BlobStoreError")<{
  readonly operation: string
  readonly key: string
  readonly cause: unknown
}> {
  override get message() {
    const detail = this.cause instanceof Error ? this.cause.message : String(this.cause)
    return `attachment store ${this.operation} of ${this.key} failed: ${detail}`
  }
}

export class BlobNotFound extends Data.TaggedError("BlobNotFound")<{ readonly key: string }> {
  override get message() {
    return `no stored file ${this.key}`
  }
}

export interface BlobStore {
  /** Store `bytes` (idempotent: the same bytes give the same key and are kept once). */
  readonly put: (bytes: Uint8Array) => Effect.Effect<string, BlobStoreError>
  readonly get: (key: string) => Effect.Effect<Uint8Array, BlobNotFound | BlobStoreError>
  readonly has: (key: string) => Effect.Effect<boolean, BlobStoreError>
}

const KEY = /^sha256-([0-9a-f]{64})$/

export const keyOf = (bytes: Uint8Array): string =>
  `sha256-${createHash("sha256").update(bytes).digest("hex")}`

export const isKey = (key: string): boolean => KEY.test(key)

/** Blobs as files under `root`, written to a temporary name and renamed into place. */
export const fileSystem = (root: string): BlobStore => {
  const pathOf = (key: string) => {
    const hex = KEY.exec(key)?.[1]
    if (hex === undefined) return undefined
    return NodePath.join(root, hex.slice(0, 2), hex.slice(2, 4), hex)
  }
  return {
    put: (bytes) =>
      Effect.try({
        try: () => {
          const key = keyOf(bytes)
          const file = pathOf(key)!
          if (!NodeFs.existsSync(file)) {
            NodeFs.mkdirSync(NodePath.dirname(file), { recursive: true })
            const temporary = `${file}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`
            NodeFs.writeFileSync(temporary, bytes, { flush: true })
            NodeFs.renameSync(temporary, file)
          }
          return key
        },
        catch: (cause) => new BlobStoreError({ operation: "put", key: "(new)", cause }),
      }),
    get: (key) =>
      Effect.suspend(() => {
        const file = pathOf(key)
        if (file === undefined) return Effect.fail(new BlobNotFound({ key }))
        return Effect.try({
          try: () => new Uint8Array(NodeFs.readFileSync(file)),
          catch: (cause) =>
            (cause as NodeJS.ErrnoException).code === "ENOENT"
              ? new BlobNotFound({ key })
              : new BlobStoreError({ operation: "get", key, cause }),
        })
      }),
    has: (key) =>
      Effect.sync(() => {
        const file = pathOf(key)
        return file !== undefined && NodeFs.existsSync(file)
      }),
  }
}
