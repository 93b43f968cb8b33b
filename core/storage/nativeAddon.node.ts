/**
 * The better-sqlite3 native addon.
 *
 * Outside the single binary this answers `undefined` and better-sqlite3 finds its own build in
 * node_modules. Inside it (Node SEA, see scripts/build-binary.mjs) the addon is an asset of the
 * executable. A shared library can only be loaded from a file, so the asset is written once to
 * `<dir>/native/better_sqlite3-<sha256>.node` (next to the database) and later starts reuse it;
 * the hash in the name means a new binary with a different addon never loads a stale one. It is
 * loaded with `process.dlopen` because `require` inside a SEA reaches built-in modules only.
 */
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"

/** The SEA asset key scripts/build-binary.mjs ships the addon under. */
const ADDON_ASSET = "better_sqlite3.node"

type Sea = typeof import("node:sea")

/**
 * `node:sea` when running inside a single executable, else undefined. `getBuiltinModule` (Node
 * 20.16+) works in ESM under tsx and vitest, in the CJS bundle, and inside the SEA alike.
 */
export const seaRuntime = (): Sea | undefined => {
  const getBuiltin = (process as { getBuiltinModule?: (id: string) => unknown }).getBuiltinModule
  const sea = getBuiltin?.call(process, "node:sea") as Sea | undefined
  return sea?.isSea() ? sea : undefined
}

/** True inside the `dist/chorus` single executable. */
export const isSingleExecutable = (): boolean => seaRuntime() !== undefined

const sha256 = (bytes: Uint8Array): string => createHash("sha256").update(bytes).digest("hex")

const sameContent = (file: string, hash: string): boolean => {
  try {
    return sha256(fs.readFileSync(file)) === hash
  } catch {
    return false
  }
}

/** Write the addon unless an identical copy is there; rename makes concurrent starts safe. */
const extract = (bytes: Uint8Array, dir: string): string => {
  const hash = sha256(bytes)
  const target = path.join(dir, "native", `better_sqlite3-${hash.slice(0, 16)}.node`)
  if (sameContent(target, hash)) return target
  fs.mkdirSync(path.dirname(target), { recursive: true })
  const partial = `${target}.${process.pid}.partial`
  fs.writeFileSync(partial, bytes, { mode: 0o755 })
  fs.renameSync(partial, target)
  return target
}

let loaded: object | undefined

const dlopen = (file: string): object => {
  const module = { exports: {} as object }
  process.dlopen(module, file)
  return module.exports
}

/**
 * What to pass as better-sqlite3's `nativeBinding`: undefined outside the single binary;
 * inside it, the addon loaded from its copy under `dir` (the database's directory). Without a
 * `dir` (in-memory databases) the copy goes to a private temporary directory, removed once
 * loaded. The addon is loaded once per process and shared by every database.
 */
export const nativeBinding = (dir?: string): object | undefined => {
  const sea = seaRuntime()
  if (sea === undefined) return undefined
  if (loaded !== undefined) return loaded
  const bytes = new Uint8Array(sea.getAsset(ADDON_ASSET))
  if (dir !== undefined) {
    loaded = dlopen(extract(bytes, dir))
    return loaded
  }
  // Not a shared temp path: another user could swap the file between the hash check and dlopen.
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), "chorus-native-"))
  try {
    loaded = dlopen(extract(bytes, scratch))
    return loaded
  } finally {
    fs.rmSync(scratch, { recursive: true, force: true })
  }
}
