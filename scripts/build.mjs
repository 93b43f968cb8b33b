/**
 * Bundles the Chorus CLI into one CommonJS file, `dist/chorus.cjs`: the main script of the
 * single executable (scripts/build-binary.mjs). Node 20's SEA runs a CommonJS main whose
 * `require` reaches built-in modules only, so every dependency is inlined here.
 *
 *   node scripts/build.mjs                  # entry core/cli/main.ts
 *   node scripts/build.mjs --entry=<file>   # another entry (pipeline experiments)
 *
 * The better-sqlite3 addon is not bundled: inside the binary it is a SEA asset, loaded by
 * core/storage/nativeAddon.node.ts and handed to better-sqlite3 as `nativeBinding`.
 */
import * as esbuild from "esbuild"
import * as fs from "node:fs"
import { isBuiltin } from "node:module"
import * as path from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"
import { buildInbox, inboxUiDir } from "./build-inbox.mjs"

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")
export const distDir = path.join(root, "dist")
export const bundleFile = path.join(distDir, "chorus.cjs")
const defaultEntry = "core/cli/main.ts"

/** A build problem explained in its message; printed without a stack trace. */
export class BuildError extends Error {}

/** How the build scripts report a failure: esbuild has already printed its own errors. */
export const reportFailure = (error) => {
  if (error instanceof BuildError) console.error(error.message)
  else if (!Array.isArray(error?.errors)) console.error(error)
  process.exitCode = 1
}

/**
 * Packages that are absent on purpose. Left as `require("x")`, each would make the binary print
 * a warning at start (a SEA's `require` reaches built-in modules only), so they become modules
 * that throw MODULE_NOT_FOUND, which their callers already handle:
 * - ws tries `bufferutil` and `utf-8-validate` and falls back to JavaScript;
 * - pg loads `pg-native` only for `pg.native`, which Chorus never uses;
 * - better-sqlite3 finds its addon through `bindings`, which walks up from the caller's file to
 *   a package.json: meaningless in a bundle. Chorus always passes `nativeBinding` instead;
 * - (plugins) grammY's `debug` tries `supports-color` for colours, its `node-fetch` tries
 *   `encoding` for non-UTF-8 bodies; both fall back without them.
 */
const ABSENT = [
  "bufferutil",
  "utf-8-validate",
  "pg-native",
  "bindings",
  "supports-color",
  "encoding",
]

const absentModule = (name) => {
  const message = JSON.stringify(`${name} is not part of the chorus bundle (see scripts/build.mjs)`)
  const fail = `const error = new Error(${message}); error.code = "MODULE_NOT_FOUND"; throw error`
  // esbuild runs a CommonJS module once even if it threw, so `bindings` must fail when called.
  return name === "bindings" ? `module.exports = () => { ${fail} }` : fail
}

const absentPackages = {
  name: "chorus-absent-packages",
  setup(build) {
    const filter = new RegExp(`^(${ABSENT.join("|")})$`)
    build.onResolve({ filter }, (args) => ({ path: args.path, namespace: "chorus-absent" }))
    build.onLoad({ filter: /.*/, namespace: "chorus-absent" }, (args) => ({
      contents: absentModule(args.path),
      loader: "js",
    }))
  },
}

/**
 * The guest runtime that worker and Deno plugins run: core/plugins/guest/Guest.ts with its types
 * stripped, plus the line that boots it (GUEST_BOOT in GuestSource.ts, which does the same from
 * the sources at run time).
 */
const guestSource = () =>
  esbuild.transformSync(
    fs.readFileSync(path.join(root, "core/plugins/guest/Guest.ts"), "utf8"),
    { loader: "ts", format: "esm", target: "es2022" },
  ).code + "\nawait bootGuest()\n"

/** Bundle `entry` (relative to the repo root) into dist/chorus.cjs; returns esbuild's metafile. */
export const build = async ({ entry = defaultEntry } = {}) => {
  // The web inbox's page and bundle (plugins/inbox/public), which the binary packs with its plugin.
  await buildInbox()
  const entryFile = path.resolve(root, entry)
  if (!fs.existsSync(entryFile)) throw new BuildError(`build: entry ${entry} does not exist`)
  fs.mkdirSync(distDir, { recursive: true })
  fs.rmSync(bundleFile, { force: true })
  const result = await esbuild.build({
    absWorkingDir: root,
    entryPoints: [entryFile],
    outfile: bundleFile,
    bundle: true,
    platform: "node",
    format: "cjs",
    target: "node20",
    // Not minified: identifiers stay readable in stack traces and logs (minifying would save
    // ~2.5 MB of a ~108 MB binary). No keepNames: V8 names functions from their declarations
    // anyway, and esbuild's `__name` wrapper, run each time a named closure is created, cost ~2 %
    // of the server's CPU under the ingest load (the same bundle with and without it, alternated).
    // Only a name esbuild had to change to avoid a clash in the bundle (`flatMap2`) shows as such.
    minify: false,
    keepNames: false,
    sourcemap: false,
    legalComments: "none",
    metafile: true,
    logLevel: "warning",
    plugins: [absentPackages],
    define: {
      // ESM dependencies bundled into CJS: `import.meta` would be empty, so give it a real URL.
      "import.meta.url": "__chorus_import_meta_url",
      // The plugins' guest runtime as one module text (core/plugins/guest/GuestSource.ts).
      __CHORUS_GUEST_SOURCE__: JSON.stringify(guestSource()),
    },
    banner: {
      js: `var __chorus_import_meta_url = require("node:url").pathToFileURL(__filename).href;`,
    },
  })
  assertSelfContained(result.metafile)
  return result.metafile
}

/** Where the built-in plugins are bundled (and the SEA assets' index of them). */
export const pluginsDistDir = path.join(distDir, "plugins")

/**
 * Bundle every plugin under plugins/ (its entry with its dependencies, e.g. grammY) into
 * dist/plugins/<id>/, with the files it reads at run time (manifest, migrations, assets): the
 * plugins the single binary carries.
 * Returns the files, relative to dist/plugins.
 */
export const buildPlugins = async () => {
  fs.rmSync(pluginsDistDir, { recursive: true, force: true })
  const files = []
  const source = path.join(root, "plugins")
  for (const name of fs.readdirSync(source).sort()) {
    const dir = path.join(source, name)
    const manifestFile = path.join(dir, "chorus.plugin.json")
    if (!fs.existsSync(manifestFile)) continue
    const manifest = JSON.parse(fs.readFileSync(manifestFile, "utf8"))
    const out = path.join(pluginsDistDir, name)
    const result = await esbuild.build({
      absWorkingDir: root,
      entryPoints: [path.join(dir, manifest.entry)],
      outfile: path.join(out, manifest.entry),
      bundle: true,
      platform: "node",
      format: "esm",
      target: "node20",
      minify: false,
      legalComments: "none",
      metafile: true,
      logLevel: "warning",
      plugins: [absentPackages],
      // CommonJS dependencies bundled into ESM still call require() for built-ins.
      banner: {
        js:
          `import { createRequire as __chorusRequire } from "node:module"; const require = __chorusRequire(import.meta.url);`,
      },
    })
    assertSelfContained(result.metafile)
    files.push(path.join(name, manifest.entry))
    // Everything else the plugin reads at run time (manifest, migrations, public assets), but not
    // its tests, type declarations or the modules the bundle already holds.
    const bundled = new Set(Object.keys(result.metafile.inputs).map((f) => path.resolve(root, f)))
    const copy = (from, relative) => {
      for (const entry of fs.readdirSync(from, { withFileTypes: true })) {
        const source = path.join(from, entry.name)
        const target = path.join(relative, entry.name)
        if (entry.name === "node_modules" || /\.test\.|\.d\.m?ts$/.test(entry.name)) continue
        // The inbox's sources: public/ holds their bundle.
        if (source === inboxUiDir) continue
        if (entry.isDirectory()) copy(source, target)
        else if (!bundled.has(source)) {
          fs.mkdirSync(path.dirname(path.join(out, target)), { recursive: true })
          fs.copyFileSync(source, path.join(out, target))
          files.push(path.join(name, target))
        }
      }
    }
    copy(dir, "")
  }
  fs.mkdirSync(pluginsDistDir, { recursive: true })
  fs.writeFileSync(path.join(pluginsDistDir, "index.json"), JSON.stringify(files))
  return files
}

/**
 * Inside the binary, `require` of anything but a built-in module fails (and warns at start), so
 * a dependency that esbuild could not inline fails the build here instead. `node:` ids are
 * built-ins even when this Node lacks them (undici asks for `node:sqlite` only when used).
 */
const assertSelfContained = (metafile) => {
  const missing = new Set(
    Object.values(metafile.outputs).flatMap((output) =>
      output.imports.filter((i) => i.external && !i.path.startsWith("node:") && !isBuiltin(i.path))
        .map((i) => i.path)
    ),
  )
  if (missing.size > 0) {
    throw new BuildError(
      `build: not bundled, would fail inside the binary: ${[...missing].join(", ")}. ` +
        "Install them, or list them as absent in scripts/build.mjs if they are optional.",
    )
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const entry = process.argv.find((a) => a.startsWith("--entry="))?.slice("--entry=".length)
  const started = performance.now()
  try {
    await build(entry === undefined ? {} : { entry })
    const size = fs.statSync(bundleFile).size
    console.log(
      `built ${path.relative(root, bundleFile)} (${(size / 1e6).toFixed(1)} MB) in ${
        Math.round(performance.now() - started)
      } ms`,
    )
  } catch (error) {
    reportFailure(error)
  }
}
