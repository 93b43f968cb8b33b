/**
 * The guest runtime (`Guest.ts`) as one standalone ES module file, for worker threads and Deno
 * subprocesses to run. From the sources it is compiled here with esbuild (a type-only strip,
 * `Guest.ts` imports nothing at run time); in the bundle and the single binary the build has
 * already done it and put the text in `__CHORUS_GUEST_SOURCE__` (scripts/build.mjs).
 */
import { createHash } from "node:crypto"
import * as NodeFs from "node:fs"
import { createRequire } from "node:module"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import { fileURLToPath } from "node:url"

declare const __CHORUS_GUEST_SOURCE__: string | undefined

/** What the build appends to the compiled `Guest.ts`: start when run as a plugin's runtime. */
export const GUEST_BOOT = "\nawait bootGuest()\n"

let cached: string | undefined

/** The guest runtime's module text. */
export const guestModuleSource = (): string => {
  if (cached !== undefined) return cached
  if (typeof __CHORUS_GUEST_SOURCE__ === "string") return (cached = __CHORUS_GUEST_SOURCE__)
  const file = fileURLToPath(new URL("./Guest.ts", import.meta.url))
  const esbuild = createRequire(import.meta.url)("esbuild") as typeof import("esbuild")
  const { code } = esbuild.transformSync(NodeFs.readFileSync(file, "utf8"), {
    loader: "ts",
    format: "esm",
    target: "es2022",
  })
  return (cached = code + GUEST_BOOT)
}

/**
 * The guest runtime written to `dir` (default: the OS temporary directory), named by its
 * content hash so every version of Chorus keeps its own and concurrent hosts agree.
 */
export const guestModuleFile = (
  dir: string = NodePath.join(NodeOs.tmpdir(), "chorus-guest"),
): string => {
  const source = guestModuleSource()
  const hash = createHash("sha256").update(source).digest("hex").slice(0, 16)
  const file = NodePath.join(dir, `guest-${hash}.mjs`)
  if (!NodeFs.existsSync(file)) {
    NodeFs.mkdirSync(dir, { recursive: true })
    const temporary = `${file}.${process.pid}.tmp`
    NodeFs.writeFileSync(temporary, source)
    NodeFs.renameSync(temporary, file)
  }
  return file
}
