/**
 * Finds plugins in the configured directories (`plugins.dirs`, `CHORUS_PLUGINS_DIRS`): every
 * sub-directory holding a `chorus.plugin.json` is one plugin. A bad manifest never stops the
 * host: it is logged and kept in the result with its problems, and the others go on. Two
 * plugins with the same id are both refused (which one would win is an accident of directory
 * order), each naming the other's directory.
 */
import * as NodeFs from "node:fs"
import * as NodePath from "node:path"
import { Context, Effect, Layer } from "effect"
import { MANIFEST_FILE } from "../../schemas/PluginManifest.ts"
import { type LoadedManifest, loadManifest, ManifestInvalid } from "./Manifest.ts"

/** A plugin whose manifest is unusable, or whose id another plugin also has. */
export interface RefusedPlugin {
  readonly dir: string
  /** The id, when the manifest got far enough to have a valid one. */
  readonly id: string | undefined
  readonly error: ManifestInvalid
}

export interface DiscoveryResult {
  /** Usable plugins, sorted by id. */
  readonly plugins: ReadonlyArray<LoadedManifest>
  /** Plugins that were skipped, with why. */
  readonly refused: ReadonlyArray<RefusedPlugin>
}

export interface DiscoveryOptions {
  /** Default: `HOST_API_VERSION`. */
  readonly hostApiVersion?: string
  /**
   * Directories of plugins that ship with Chorus (the binary's): used for ids that no plugin in
   * `dirs` has, so a plugin in `dirs` replaces the built-in one of the same id.
   */
  readonly builtinDirs?: ReadonlyArray<string>
}

/** Sub-directories of `root` with a manifest; a missing root is no plugins (and a debug log). */
const candidates = (root: string) =>
  Effect.gen(function* () {
    const entries = yield* Effect.try(() => NodeFs.readdirSync(root, { withFileTypes: true })).pipe(
      Effect.tapError((e) =>
        Effect.logDebug("plugin directory not readable; no plugins from it").pipe(
          Effect.annotateLogs({ dir: root, reason: String(e.error) }),
        )
      ),
      Effect.orElseSucceed(() => []),
    )
    return entries
      .filter((e) => e.isDirectory() || e.isSymbolicLink())
      .map((e) => NodePath.join(root, e.name))
      .filter((dir) => NodeFs.existsSync(NodePath.join(dir, MANIFEST_FILE)))
      .sort()
  })

/** A manifest's id if its JSON has a string `id`: to report duplicates among refused ones too. */
const rawId = (dir: string): string | undefined => {
  try {
    const raw = JSON.parse(NodeFs.readFileSync(NodePath.join(dir, MANIFEST_FILE), "utf8"))
    return typeof raw?.id === "string" ? raw.id : undefined
  } catch {
    return undefined
  }
}

/** Discover every plugin under `dirs`; never fails. */
export const discover: (
  dirs: ReadonlyArray<string>,
  options?: DiscoveryOptions,
) => Effect.Effect<DiscoveryResult> = Effect.fn("Discovery.discover")(function* (
  dirs: ReadonlyArray<string>,
  options: DiscoveryOptions = {},
) {
  const loaded: Array<LoadedManifest> = []
  const refused: Array<RefusedPlugin> = []
  const seenRoots = new Set<string>()
  for (const root of dirs.map((d) => NodePath.resolve(d))) {
    if (seenRoots.has(root)) continue
    seenRoots.add(root)
    for (const dir of yield* candidates(root)) {
      const result = yield* loadManifest(dir, options).pipe(Effect.either)
      if (result._tag === "Right") loaded.push(result.right)
      else refused.push({ dir, id: rawId(dir), error: result.left })
    }
  }
  const byId = new Map<string, Array<LoadedManifest>>()
  for (const plugin of loaded) {
    byId.set(plugin.manifest.id, [...(byId.get(plugin.manifest.id) ?? []), plugin])
  }
  const plugins: Array<LoadedManifest> = []
  for (const [id, same] of byId) {
    if (same.length === 1) {
      plugins.push(same[0]!)
      continue
    }
    for (const plugin of same) {
      const others = same.filter((p) => p !== plugin).map((p) => p.dir)
      refused.push({
        dir: plugin.dir,
        id,
        error: new ManifestInvalid({
          file: NodePath.join(plugin.dir, MANIFEST_FILE),
          problems: [{
            path: "id",
            message: `duplicate plugin id ${JSON.stringify(id)}, also used by ${
              others.join(", ")
            }; neither is loaded until one is renamed or removed`,
          }],
        }),
      })
    }
  }
  if (options.builtinDirs !== undefined && options.builtinDirs.length > 0) {
    const builtin = yield* discover(options.builtinDirs, {
      ...(options.hostApiVersion !== undefined ? { hostApiVersion: options.hostApiVersion } : {}),
    })
    const taken = new Set([
      ...byId.keys(),
      ...refused.flatMap((r) => (r.id === undefined ? [] : [r.id])),
    ])
    for (const p of builtin.plugins) if (!taken.has(p.manifest.id)) plugins.push(p)
    for (const r of builtin.refused) if (r.id === undefined || !taken.has(r.id)) refused.push(r)
  }
  plugins.sort((a, b) => (a.manifest.id < b.manifest.id ? -1 : 1))
  for (const r of refused) {
    yield* Effect.logWarning("plugin refused").pipe(
      Effect.annotateLogs({ dir: r.dir, plugin: r.id ?? "(unknown)", problems: r.error.problems }),
    )
  }
  if (plugins.length > 0) {
    yield* Effect.logInfo("plugins discovered").pipe(
      Effect.annotateLogs({
        plugins: plugins.map((p) => `${p.manifest.id}@${p.manifest.version}`),
      }),
    )
  }
  return { plugins, refused } satisfies DiscoveryResult
})

/** What discovery found at start: the usable plugins and the refused ones, with why. */
export class DiscoveredPlugins extends Context.Tag("chorus/core/plugins/DiscoveredPlugins")<
  DiscoveredPlugins,
  DiscoveryResult
>() {}

/** Discover once when the layer is built; never fails, so a bad plugin never stops the host. */
export const layer = (
  dirs: ReadonlyArray<string>,
  options: DiscoveryOptions = {},
): Layer.Layer<DiscoveredPlugins> => Layer.effect(DiscoveredPlugins, discover(dirs, options))
