/**
 * Builds `dist/chorus`: one executable that runs from an empty directory, no node_modules.
 *
 * Node's single executable application (SEA) feature, Node 20:
 * 1. scripts/build.mjs bundles the CLI into dist/chorus.cjs (the SEA main must be CommonJS);
 * 2. `node --experimental-sea-config` turns it into a blob, with the better-sqlite3 addon as
 *    an asset (core/storage/nativeAddon.node.ts extracts and loads it at start);
 * 3. a copy of this `node` gets the blob injected by postject, which flips the SEA fuse.
 *
 *   node scripts/build-binary.mjs                   # entry core/cli/main.ts
 *   node scripts/build-binary.mjs --entry=<file>    # another entry
 *   node scripts/build-binary.mjs --strip           # strip node's symbols first (needs binutils)
 *
 * The binary is for the OS, CPU and libc of the machine that builds it, and runs the Node
 * version that built it.
 */
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { inject } from "postject"
import {
  build,
  BuildError,
  buildPlugins,
  bundleFile,
  distDir,
  pluginsDistDir,
  reportFailure,
  root,
} from "./build.mjs"

/** The key nativeAddon.node.ts asks `node:sea` for. */
const ADDON_ASSET = "better_sqlite3.node"
const addonFile = path.join(root, "node_modules/better-sqlite3/build/Release/better_sqlite3.node")
const seaConfigFile = path.join(distDir, "sea-config.json")
const blobFile = path.join(distDir, "chorus.blob")
const binaryFile = path.join(distDir, "chorus")
const SEA_FUSE = "NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2"

/**
 * postject's ELF library warns about the notes section of every Node build ("Can't find string
 * offset for section name '.note.100'"); harmless, and it would bury real warnings.
 */
const withoutNoteWarnings = async (run) => {
  const warn = console.warn
  console.warn = (...args) => {
    if (!/Can't find string offset for section name/.test(String(args[0]))) warn(...args)
  }
  try {
    return await run()
  } finally {
    console.warn = warn
  }
}

const step = async (name, run) => {
  const started = performance.now()
  const result = await run()
  console.log(`  ${name}: ${Math.round(performance.now() - started)} ms`)
  return result
}

const checkPrerequisites = () => {
  const [major = 0, minor = 0] = process.versions.node.split(".").map(Number)
  if (major < 20 || (major === 20 && minor < 16)) {
    // SEA assets arrived in 20.12; nativeAddon.node.ts finds node:sea with getBuiltinModule (20.16).
    throw new BuildError(`build-binary: needs Node >= 20.16, this is ${process.version}`)
  }
  if (!fs.existsSync(addonFile)) {
    throw new BuildError(`build-binary: ${addonFile} is missing (npm ci)`)
  }
}

/** Bundle `entry`, make the SEA blob, inject it into a copy of this node as dist/chorus. */
const buildBinary = async ({ entry, strip = false } = {}) => {
  checkPrerequisites()
  await step("bundle", () => build(entry === undefined ? {} : { entry }))
  // The plugins under plugins/ ride along as assets (core/plugins/BuiltinPlugins.ts).
  const pluginFiles = await step("bundle plugins", () => buildPlugins())

  await step("sea blob", () => {
    const config = {
      main: bundleFile,
      output: blobFile,
      disableExperimentalSEAWarning: true,
      // V8 code cache for the main script: first /health ~210 ms instead of ~330 ms.
      useCodeCache: true,
      assets: {
        [ADDON_ASSET]: addonFile,
        "plugins/index.json": path.join(pluginsDistDir, "index.json"),
        ...Object.fromEntries(
          pluginFiles.map((f) => [`plugins/${f}`, path.join(pluginsDistDir, f)]),
        ),
      },
    }
    fs.writeFileSync(seaConfigFile, JSON.stringify(config, null, 2))
    // Quiet on success ("Wrote single executable preparation blob…"); on failure execFileSync
    // throws with node's output in the message.
    execFileSync(process.execPath, ["--experimental-sea-config", seaConfigFile], {
      cwd: root,
      stdio: "pipe",
    })
  })

  await step("inject", async () => {
    fs.copyFileSync(process.execPath, binaryFile)
    fs.chmodSync(binaryFile, 0o755)
    // About 12 MB less; addons still link (the dynamic symbol table stays), but native stack
    // traces and profilers lose node's symbol names, hence opt-in.
    if (strip) execFileSync("strip", [binaryFile], { stdio: "inherit" })
    const blob = fs.readFileSync(blobFile)
    await withoutNoteWarnings(() =>
      inject(binaryFile, "NODE_SEA_BLOB", blob, { sentinelFuse: SEA_FUSE })
    )
  })
}

const started = performance.now()
console.log("building dist/chorus")
// A failed build must not leave an older binary behind that looks current; unlinking (not
// overwriting) also avoids ETXTBSY while the old one is running.
fs.rmSync(binaryFile, { force: true })
try {
  const entry = process.argv.find((a) => a.startsWith("--entry="))?.slice("--entry=".length)
  await buildBinary({ entry, strip: process.argv.includes("--strip") })
  const mb = (fs.statSync(binaryFile).size / 1e6).toFixed(1)
  console.log(
    `built ${path.relative(root, binaryFile)} (${mb} MB, node ${process.version}, ` +
      `${process.platform}-${process.arch}) in ${Math.round(performance.now() - started)} ms`,
  )
} catch (error) {
  fs.rmSync(binaryFile, { force: true })
  reportFailure(error)
} finally {
  fs.rmSync(blobFile, { force: true })
}
