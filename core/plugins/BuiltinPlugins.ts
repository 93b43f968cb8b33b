/**
 * The plugins the single binary carries (everything under plugins/ at build time, bundled with
 * its dependencies by scripts/build.mjs and shipped as SEA assets). At start they are written to
 * `<dataDir>/plugins-builtin/<hash>/` (once per content) and discovered after the configured
 * directories: a plugin of the same id in `plugins.dirs` takes precedence, so an operator can
 * replace a built-in plugin by dropping another version into ./plugins.
 *
 * Outside the binary there is nothing to extract: `./plugins` of the source tree is the default
 * plugins directory already.
 */
import { createHash } from "node:crypto"
import * as NodeFs from "node:fs"
import * as NodePath from "node:path"
import { seaRuntime } from "../storage/nativeAddon.node.ts"

/** The directory holding the binary's built-in plugins, written if needed; undefined outside it. */
export const builtinPluginsDir = (dataDir: string): string | undefined => {
  const sea = seaRuntime()
  if (sea === undefined) return undefined
  let files: Array<string>
  try {
    files = JSON.parse(sea.getAsset("plugins/index.json", "utf8")) as Array<string>
  } catch {
    return undefined // a binary built without plugins
  }
  const contents = files.map((f) => [f, new Uint8Array(sea.getAsset(`plugins/${f}`))] as const)
  const hash = createHash("sha256")
  for (const [f, bytes] of contents) hash.update(f).update(bytes)
  const dir = NodePath.join(dataDir, "plugins-builtin", hash.digest("hex").slice(0, 16))
  if (NodeFs.existsSync(NodePath.join(dir, ".complete"))) return dir
  const partial = `${dir}.${process.pid}.partial`
  NodeFs.rmSync(partial, { recursive: true, force: true })
  for (const [f, bytes] of contents) {
    const target = NodePath.join(partial, f)
    NodeFs.mkdirSync(NodePath.dirname(target), { recursive: true })
    NodeFs.writeFileSync(target, bytes)
  }
  NodeFs.writeFileSync(NodePath.join(partial, ".complete"), "")
  try {
    NodeFs.renameSync(partial, dir)
  } catch {
    // Another process extracted the same content first.
    NodeFs.rmSync(partial, { recursive: true, force: true })
  }
  return dir
}
