/**
 * The attachment store: files checked by their content (type, size, programs), kept once by
 * hash on disk, served only with an API token or a signed link; and plugins storing media
 * through the host API when their manifest allows it.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Either, Layer } from "effect"
import * as AttachmentStore from "../../core/attachments/AttachmentStore.ts"
import { fileSystem } from "../../core/attachments/BlobStore.ts"
import { classify } from "../../core/attachments/FileTypes.ts"
import { request } from "../api/ApiServer.ts"
import { startReplyServer } from "../api/ReplyServer.ts"
import { jpeg } from "../support/Files.ts"
import { writePlugin } from "../support/PluginFixtures.ts"
import { sqliteDatabase, tempDir } from "../support/TestDatabase.ts"
import { Database } from "../../core/storage/Database.ts"

const png = new Uint8Array([
  0x89,
  0x50,
  0x4e,
  0x47,
  0x0d,
  0x0a,
  0x1a,
  0x0a,
  0,
  0,
  0,
  13,
  0x49,
  0x48,
  0x44,
  0x52,
])
const elf = new Uint8Array([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0, 0, 0, 0, 0])
const zip = new Uint8Array([0x50, 0x4b, 0x03, 0x04, 20, 0, 0, 0, 8, 0])
const text = new TextEncoder().encode("order,total\n42,19.90\n")

const store = (limits: Partial<AttachmentStore.AttachmentLimits> = {}) =>
  Effect.gen(function* () {
    const dir = yield* tempDir()
    const db = yield* sqliteDatabase()
    return yield* Layer.build(AttachmentStore.layer({ dataDir: dir, limits })).pipe(
      Effect.map((ctx) =>
        ctx.unsafeMap.get(
          AttachmentStore.AttachmentStore.key,
        ) as AttachmentStore.AttachmentStoreShape
      ),
      Effect.provideService(Database, db),
    )
  })

describe("attachment store", () => {
  it("the content decides the type; programs and contradictions are refused", () => {
    assert.deepStrictEqual(classify(jpeg, "image/png"), { ok: true, type: "image/jpeg" })
    assert.deepStrictEqual(classify(png, "image/png; charset=x"), { ok: true, type: "image/png" })
    assert.deepStrictEqual(
      classify(zip, "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
      { ok: true, type: "application/vnd.openxmlformats-officedocument.wordprocessingml.document" },
    )
    assert.deepStrictEqual(classify(text, "text/csv"), { ok: true, type: "text/csv" })
    assert.isFalse(classify(elf, "image/png").ok)
    assert.isFalse(classify(new TextEncoder().encode("#!/bin/sh\nrm -rf /"), "text/plain").ok)
    assert.isFalse(classify(new Uint8Array([1, 2, 3, 0, 5]), "text/plain").ok)
    assert.isFalse(classify(text, "image/jpeg").ok)
  })

  it.scopedLive("limits, de-duplication by content, signed links", () =>
    Effect.gen(function* () {
      const files = yield* store({ maxBytes: 1024, allowedTypes: ["image/*", "text/csv"] })
      const a = yield* files.put({ bytes: jpeg, name: "../../etc/cat.jpg", mimeType: "image/jpeg" })
      const b = yield* files.put({ bytes: jpeg, name: "same.jpg", mimeType: "image/jpeg" })
      assert.strictEqual(a.storageKey, b.storageKey)
      assert.match(a.storageKey, /^sha256-[0-9a-f]{64}$/)
      assert.strictEqual(a.name, "cat.jpg")
      assert.deepStrictEqual([...(yield* files.get(a.storageKey)).bytes], [...jpeg])
      const refusal = (bytes: Uint8Array, mimeType: string) =>
        files.put({ bytes, name: "x", mimeType }).pipe(
          Effect.either,
          Effect.map((
            e,
          ) => (Either.isLeft(e) && e.left._tag === "AttachmentRefused"
            ? e.left.reason
            : "stored")
          ),
        )
      assert.strictEqual(yield* refusal(new Uint8Array(0), "image/png"), "empty")
      assert.strictEqual(yield* refusal(new Uint8Array(2048).fill(0x41), "text/csv"), "too_large")
      assert.strictEqual(yield* refusal(elf, "image/png"), "program")
      assert.strictEqual(yield* refusal(text, "image/png"), "type_mismatch")
      assert.strictEqual(yield* refusal(zip, "application/zip"), "type_not_allowed")

      const link = new URL(files.signedPath(a.storageKey, 60), "http://x")
      const expires = link.searchParams.get("expires")!
      const signature = link.searchParams.get("signature")!
      assert.isTrue(files.verify(a.storageKey, expires, signature))
      assert.isFalse(files.verify(b.storageKey.replace(/.$/, "0"), expires, signature))
      assert.isFalse(files.verify(a.storageKey, String(Number(expires) + 1), signature))
      assert.isFalse(
        files.verify(
          a.storageKey,
          "1000",
          files.signedPath(a.storageKey, -5000).split("signature=")[1],
        ),
      )
      assert.isFalse(files.verify(a.storageKey, undefined, signature))
    }))

  it.scopedLive(
    "over HTTP: upload with a token, read with a token or a signed link, nothing else",
    () =>
      Effect.gen(function* () {
        const server = yield* startReplyServer({ dataDir: yield* tempDir() })
        const upload = (bytes: Uint8Array, type: string, name = "photo.jpg") =>
          Effect.promise(async () => {
            const r = await fetch(
              `${server.url}/api/v1/attachments?name=${encodeURIComponent(name)}`,
              {
                method: "POST",
                headers: { authorization: `Bearer ${server.token}`, "content-type": type },
                body: Buffer.from(bytes),
              },
            )
            return { status: r.status, body: await r.json() }
          })
        const stored = yield* upload(jpeg, "image/jpeg")
        assert.strictEqual(stored.status, 201, JSON.stringify(stored.body))
        assert.strictEqual(stored.body.mimeType, "image/jpeg")
        const key = stored.body.storageKey as string

        const read = (path: string, token: string | null) =>
          Effect.promise(async () => {
            const r = await fetch(
              `${server.url}${path}`,
              token ? { headers: { authorization: `Bearer ${token}` } } : {},
            )
            return {
              status: r.status,
              type: r.headers.get("content-type"),
              nosniff: r.headers.get("x-content-type-options"),
              bytes: new Uint8Array(await r.arrayBuffer()),
            }
          })
        const withToken = yield* read(`/api/v1/attachments/${key}`, server.token)
        assert.strictEqual(withToken.status, 200)
        assert.strictEqual(withToken.type, "image/jpeg")
        assert.strictEqual(withToken.nosniff, "nosniff")
        assert.deepStrictEqual([...withToken.bytes], [...jpeg])
        assert.strictEqual((yield* read(`/api/v1/attachments/${key}`, null)).status, 401)
        assert.strictEqual((yield* read(`/api/v1/attachments/${key}`, "chorus_wrong")).status, 401)
        // A link signed by the installation (any node: the key is in the database) opens it alone.
        const signer = yield* AttachmentStore.make({
          blobs: fileSystem("/nonexistent"),
          limits: { maxBytes: 1, allowedTypes: [] },
        }).pipe(Effect.provideService(Database, server.database))
        const signed = yield* read(signer.signedPath(key, 60), null)
        assert.strictEqual(signed.status, 200)
        assert.deepStrictEqual([...signed.bytes], [...jpeg])
        assert.strictEqual((yield* read(`${signer.signedPath(key, 60)}x`, null)).status, 401)
        assert.strictEqual((yield* read(signer.signedPath(key, -1), null)).status, 401)
        const unknown = `sha256-${"0".repeat(64)}`
        assert.strictEqual(
          (yield* read(`/api/v1/attachments/${unknown}`, server.token)).status,
          404,
        )

        const program = yield* upload(elf, "image/png", "cute.png")
        assert.strictEqual(program.status, 422)
        assert.strictEqual(program.body.reason, "program")
        const noToken = yield* Effect.promise(() =>
          fetch(`${server.url}/api/v1/attachments?name=a.jpg`, { method: "POST", body: jpeg }).then(
            (r) => r.status,
          )
        )
        assert.strictEqual(noToken, 401)
        const check = yield* request(`${server.url}/api/openapi.json`, {
          token: null,
          method: "GET",
        })
        assert.property((check.body as { paths: object }).paths, "/api/v1/attachments/{storageKey}")
      }),
    30_000,
  )

  it.scopedLive(
    "a plugin stores media through the host API only when its manifest allows it",
    () =>
      Effect.gen(function* () {
        const plugins = yield* tempDir("chorus-plugins-")
        const source = `
        export async function activate(chorus) {
          await chorus.routes.handle("POST", "/plugins/ID/store", async (request) => {
            try {
              const stored = await chorus.attachments.put(request.body, { name: "pic.jpg", mimeType: request.headers["content-type"] })
              const back = await chorus.attachments.get(stored.storageKey)
              return { body: { stored, same: back.bytes.length === request.body.length } }
            } catch (error) {
              return { status: 400, body: { name: error.name, field: error.field ?? null, reason: error.reason ?? null } }
            }
          })
        }`
        for (const [id, allowed] of [["media", true], ["plain", false]] as const) {
          writePlugin(plugins, {
            id,
            manifest: {
              contributes: { routes: [{ method: "POST", path: `/plugins/${id}/store` }] },
              permissions: { attachments: allowed },
            },
            source: source.replace("ID", id),
          })
        }
        const server = yield* startReplyServer({ dataDir: yield* tempDir(), pluginsDir: plugins })
        const post = (id: string, bytes: Uint8Array, type: string) =>
          Effect.promise(async () => {
            const r = await fetch(`${server.url}/plugins/${id}/store`, {
              method: "POST",
              headers: { "content-type": type },
              body: Buffer.from(bytes),
            })
            return { status: r.status, body: await r.json() }
          })
        const ok = yield* post("media", png, "image/png")
        assert.strictEqual(ok.status, 200, JSON.stringify(ok.body))
        assert.strictEqual(ok.body.stored.mimeType, "image/png")
        assert.isTrue(ok.body.same)
        assert.deepStrictEqual((yield* post("media", elf, "image/png")).body, {
          name: "AttachmentRefused",
          field: null,
          reason: "program",
        })
        assert.deepStrictEqual((yield* post("plain", png, "image/png")).body, {
          name: "PermissionDenied",
          field: "permissions.attachments",
          reason: null,
        })
      }),
    30_000,
  )
})
