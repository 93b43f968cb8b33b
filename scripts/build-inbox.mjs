/**
 * Builds the web inbox (plugins/inbox/ui) into plugins/inbox/public/: `app.js` (Preact and the
 * app in one minified ES2020 bundle, nothing fetched at run time), `app.css` and `index.html`.
 * `npm run build` and `npm start` run it first; the binary packs the result with the plugin.
 *
 *   node scripts/build-inbox.mjs
 */
import * as esbuild from "esbuild"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")
export const inboxUiDir = path.join(root, "plugins/inbox/ui")
export const inboxPublicDir = path.join(root, "plugins/inbox/public")

/** Build the inbox's files into plugins/inbox/public/; returns their names and sizes. */
export const buildInbox = async () => {
  fs.mkdirSync(inboxPublicDir, { recursive: true })
  const common = {
    absWorkingDir: root,
    bundle: true,
    minify: true,
    target: "es2020",
    legalComments: "none",
    logLevel: "warning",
  }
  await esbuild.build({
    ...common,
    entryPoints: [path.join(inboxUiDir, "main.tsx")],
    outfile: path.join(inboxPublicDir, "app.js"),
    platform: "browser",
    format: "esm",
    jsx: "automatic",
    jsxImportSource: "preact",
    define: { "process.env.NODE_ENV": '"production"' },
  })
  await esbuild.build({
    ...common,
    entryPoints: [path.join(inboxUiDir, "app.css")],
    outfile: path.join(inboxPublicDir, "app.css"),
  })
  // The page is last: it is what the plugin looks for to tell a build is there.
  fs.copyFileSync(path.join(inboxUiDir, "index.html"), path.join(inboxPublicDir, "index.html"))
  return ["app.js", "app.css", "index.html"].map((name) => ({
    name,
    size: fs.statSync(path.join(inboxPublicDir, name)).size,
  }))
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const started = performance.now()
  try {
    const files = await buildInbox()
    console.log(
      `built plugins/inbox/public (${
        files.map((f) => `${f.name} ${(f.size / 1024).toFixed(1)} kB`).join(", ")
      }) in ${Math.round(performance.now() - started)} ms`,
    )
  } catch (error) {
    if (!Array.isArray(error?.errors)) console.error(error)
    process.exitCode = 1
  }
}
