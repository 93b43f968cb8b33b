/**
 * The operators' web inbox as a plugin: it serves the page and its built assets from `public/`
 * (made by scripts/build-inbox.mjs, `npm run build`); the page talks to the host's API
 * (`/api/v1/…`, same origin, the session cookie) and never to this plugin.
 *
 * - `GET /plugins/inbox/` is the page, with `cache-control: no-cache` and the security headers
 *   (a strict Content-Security-Policy: no inline script, nothing from another origin).
 * - `GET /plugins/inbox/<asset>` serves a file of `public/` with an ETag (304 on a match).
 * - Without a build, both answer 503 saying to run `npm run build`.
 *
 * Files are read on request and kept while their modification time stays the same, so a rebuild
 * is served without reloading the plugin.
 */
import { createHash } from "node:crypto"
import * as NodeFs from "node:fs"
import * as NodePath from "node:path"

const TYPES = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".json": "application/json",
  ".map": "application/json",
}

const ASSET = /^[a-z0-9][a-z0-9_-]*(\.[a-z0-9]+)+$/

/** The page's headers: it may load only its own assets and talk only to its own origin. */
export const PAGE_SECURITY_HEADERS = {
  "content-security-policy": [
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "connect-src 'self'",
    "img-src 'self' data: blob:",
    "media-src 'self' blob:",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
  ].join("; "),
  "x-frame-options": "DENY",
  "referrer-policy": "same-origin",
  "x-content-type-options": "nosniff",
}

const notBuilt = {
  status: 503,
  headers: { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" },
  body: "The inbox is not built: run `npm run build` (or `node scripts/build-inbox.mjs`).\n",
}

export default {
  async activate(chorus) {
    const publicDir = NodePath.join(chorus.plugin.dir, "public")
    /** name -> { mtimeMs, size, bytes, etag } */
    const cache = new Map()

    const read = (name) => {
      const file = NodePath.join(publicDir, name)
      let stat
      try {
        stat = NodeFs.statSync(file)
      } catch {
        return undefined
      }
      if (!stat.isFile()) return undefined
      const known = cache.get(name)
      if (known !== undefined && known.mtimeMs === stat.mtimeMs && known.size === stat.size) {
        return known
      }
      const bytes = new Uint8Array(NodeFs.readFileSync(file))
      const etag = `"${createHash("sha256").update(bytes).digest("base64url").slice(0, 27)}"`
      const entry = { mtimeMs: stat.mtimeMs, size: stat.size, bytes, etag }
      cache.set(name, entry)
      return entry
    }

    const page = () => {
      const html = read("index.html")
      if (html === undefined) return notBuilt
      return {
        headers: {
          "content-type": TYPES[".html"],
          "cache-control": "no-cache",
          ...PAGE_SECURITY_HEADERS,
        },
        body: html.bytes,
      }
    }

    await chorus.routes.handle("GET", "/plugins/inbox", () => ({
      status: 308,
      headers: { location: "/plugins/inbox/", "content-type": "text/plain; charset=utf-8" },
      body: "/plugins/inbox/\n",
    }))
    await chorus.routes.handle("GET", "/plugins/inbox/", page)
    await chorus.routes.handle("GET", "/plugins/inbox/{asset}", (request) => {
      const name = request.params.asset
      if (name === "index.html") return page()
      const type = TYPES[NodePath.extname(name)]
      if (!ASSET.test(name) || type === undefined) {
        return {
          status: 404,
          headers: { "content-type": "text/plain; charset=utf-8" },
          body: "not found\n",
        }
      }
      const asset = read(name)
      if (asset === undefined) {
        return read("index.html") === undefined ? notBuilt : {
          status: 404,
          headers: { "content-type": "text/plain; charset=utf-8" },
          body: "not found\n",
        }
      }
      const headers = {
        "content-type": type,
        "cache-control": "no-cache",
        etag: asset.etag,
        "x-content-type-options": "nosniff",
      }
      if (request.headers["if-none-match"] === asset.etag) {
        return { status: 304, headers, body: "" }
      }
      return { headers, body: asset.bytes }
    })
  },
}
