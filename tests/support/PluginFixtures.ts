/**
 * Plugins for tests: a directory with a manifest and an entry module written from strings, and
 * a plugin host around them on a SQLite file and the embedded bus (or a given database and bus),
 * built by the plugin test kit (`core/plugins/sdk/TestKit.ts`).
 */
import * as NodeFs from "node:fs"
import * as NodePath from "node:path"
import { fileURLToPath } from "node:url"
import { Effect, type Scope } from "effect"
import type { BusShape } from "../../core/bus/Bus.ts"
import { discover } from "../../core/plugins/Discovery.ts"
import type * as PluginHost from "../../core/plugins/PluginHost.ts"
import { hostAround } from "../../core/plugins/sdk/TestKit.ts"
import type { DatabaseShape } from "../../core/storage/Database.ts"
import { tempDir } from "./TestDatabase.ts"

export interface PluginFiles {
  readonly id: string
  readonly manifest?: Record<string, unknown>
  /** The entry module's source (`index.mjs`). */
  readonly source: string
  readonly extra?: Readonly<Record<string, string>>
}

/** Write a plugin into `root/<id>`; the manifest gets sensible defaults. */
export const writePlugin = (root: string, files: PluginFiles): string => {
  const dir = NodePath.join(root, files.id)
  NodeFs.mkdirSync(dir, { recursive: true })
  NodeFs.writeFileSync(
    NodePath.join(dir, "chorus.plugin.json"),
    JSON.stringify(
      {
        id: files.id,
        version: "1.0.0",
        engines: { chorus: "^1.0.0" },
        entry: "index.mjs",
        kind: "bot",
        ...files.manifest,
      },
      null,
      2,
    ),
  )
  NodeFs.writeFileSync(NodePath.join(dir, "index.mjs"), files.source)
  for (const [name, content] of Object.entries(files.extra ?? {})) {
    NodeFs.mkdirSync(NodePath.dirname(NodePath.join(dir, name)), { recursive: true })
    NodeFs.writeFileSync(NodePath.join(dir, name), content)
  }
  return dir
}

export interface TestHost {
  readonly host: PluginHost.PluginHostShape
  readonly bus: BusShape
  readonly db: DatabaseShape
  readonly root: string
}

/** A plugin host over the plugins in `root` (written before), with its own database and bus. */
export const startHost = (
  root: string,
  options: PluginHost.PluginHostOptions & {
    readonly db?: DatabaseShape
    readonly bus?: BusShape
  } = {},
): Effect.Effect<TestHost, unknown, Scope.Scope> =>
  Effect.gen(function* () {
    const found = yield* discover([root])
    const world = yield* hostAround(found, {
      heartbeat: { interval: "500 millis", timeout: "2 seconds" },
      ...options,
    })
    return { ...world, root }
  })

export const pluginsRoot = () => tempDir("chorus-plugins-")

const REPO = NodePath.resolve(NodePath.dirname(fileURLToPath(import.meta.url)), "../..")

/**
 * Copy plugins of this repository (`plugins/<id>`, without their tests) into `root`, next to a
 * link to the repository's node_modules (for their dependencies, e.g. grammY); `net` replaces a
 * plugin's `permissions.net` (a fake provider's loopback host). Returns `root`.
 */
export const installRepoPlugins = (
  root: string,
  ids: ReadonlyArray<string>,
  options: { readonly net?: Readonly<Record<string, ReadonlyArray<string>>> } = {},
): string => {
  for (const id of ids) {
    const dir = NodePath.join(root, id)
    NodeFs.cpSync(NodePath.join(REPO, "plugins", id), dir, {
      recursive: true,
      filter: (f) => !f.endsWith(".test.ts"),
    })
    const net = options.net?.[id]
    if (net !== undefined) {
      const file = NodePath.join(dir, "chorus.plugin.json")
      const manifest = JSON.parse(NodeFs.readFileSync(file, "utf8"))
      manifest.permissions.net = net
      NodeFs.writeFileSync(file, JSON.stringify(manifest))
    }
  }
  if (!NodeFs.existsSync(NodePath.join(root, "node_modules"))) {
    NodeFs.symlinkSync(NodePath.join(REPO, "node_modules"), NodePath.join(root, "node_modules"))
  }
  return root
}

/** Poll `check` every 20 ms until it holds (or fail after `timeoutMs`). */
export const eventually = <A>(
  what: string,
  check: Effect.Effect<A | undefined, unknown>,
  timeoutMs = 20_000,
): Effect.Effect<A, Error> =>
  Effect.gen(function* () {
    const deadline = Date.now() + timeoutMs
    while (true) {
      const value = yield* check.pipe(Effect.orElseSucceed(() => undefined))
      if (value !== undefined && value !== false) return value as A
      if (Date.now() > deadline) {
        return yield* Effect.fail(new Error(`timed out waiting for ${what}`))
      }
      yield* Effect.promise(() => new Promise((r) => setTimeout(r, 20)))
    }
  })
