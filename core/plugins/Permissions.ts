/**
 * The permission model: a plugin may use a host capability only as far as its manifest's
 * `permissions` declare (deny by default, as Deno does). This module holds the decisions (is
 * this subject, host, secret or table granted?) and the one error every refusal is:
 * `PermissionDenied`, which names the manifest field to add, so fixing it is one edit.
 *
 * What the checks cover is what goes through the host API; in-process plugins are not
 * sandboxed (see docs/plugins.md).
 */
import { Schema } from "effect"
import {
  MANIFEST_FILE,
  parseHostPattern,
  patternCovers,
  type Permissions,
  subjectPrefixOf,
  tablePrefixOf,
} from "../../schemas/PluginManifest.ts"

/** The capabilities a manifest can grant; each is a field under `permissions`. */
export const Capability = Schema.Literal(
  "bus.publish",
  "bus.subscribe",
  "bus.streams",
  "net",
  "secrets",
  "storage.tables",
  "routes",
  "channels",
  "attachments",
)
export type Capability = typeof Capability.Type

/**
 * The plugin used something its manifest does not grant. Retrying cannot help: the manifest
 * must change (`field`, `add`), then the plugin be reloaded.
 */
export class PermissionDenied extends Schema.TaggedError<PermissionDenied>()("PermissionDenied", {
  plugin: Schema.String,
  capability: Capability,
  /** What was asked for: a subject, `host:port`, a secret or table name. */
  requested: Schema.String,
  /** The manifest field that grants it: `permissions.bus.publish`. */
  field: Schema.String,
  /** What to do about it, in one sentence. */
  hint: Schema.String,
}) {
  override get message() {
    return `plugin ${this.plugin} may not use ${this.capability} ${
      JSON.stringify(this.requested)
    }: ${this.hint}`
  }
}

const verbs: Record<Capability, string> = {
  "bus.publish": "publish to",
  "bus.subscribe": "consume or read",
  "bus.streams": "create the stream",
  net: "connect to",
  secrets: "read the secret",
  "storage.tables": "use the table",
  routes: "serve the route",
  attachments: "use the attachment store for",
  channels: "send as the channel",
}

const denied = (
  plugin: string,
  capability: Capability,
  requested: string,
  hint?: string,
): PermissionDenied =>
  new PermissionDenied({
    plugin,
    capability,
    requested,
    field: `permissions.${capability === "bus.streams" ? "bus" : capability}`,
    hint: hint ??
      `${verbs[capability]} ${JSON.stringify(requested)} is not declared; add ${
        JSON.stringify(requested)
      } to permissions.${capability} in ${MANIFEST_FILE}`,
  })

/** Decisions for one plugin's granted permissions. */
export interface Grants {
  readonly plugin: string
  readonly permissions: Permissions
}

/** May the plugin publish on the concrete `subject`? */
export const checkPublish = (g: Grants, subject: string): PermissionDenied | undefined =>
  g.permissions.bus.publish.some((p) => patternCovers(p, subject))
    ? undefined
    : denied(g.plugin, "bus.publish", subject)

/** May the plugin consume or read everything `filter` (a pattern) matches? */
export const checkSubscribe = (g: Grants, filter: string): PermissionDenied | undefined =>
  g.permissions.bus.subscribe.some((p) => patternCovers(p, filter))
    ? undefined
    : denied(g.plugin, "bus.subscribe", filter)

/** The stream name a plugin's own streams start with: `plugin-<id>`. */
export const streamPrefixOf = (id: string): string => `plugin-${id}`

/** Durable consumer names are prefixed so a plugin can never join (and steal from) a core consumer. */
export const consumerNameOf = (id: string, name: string): string => `plugin-${id}-${name}`

/** A plugin creates only its own streams (`plugin-<id>…`) over its own subjects (`plugins.<id>.…`). */
export const checkStream = (
  g: Grants,
  name: string,
  subjects: ReadonlyArray<string>,
): PermissionDenied | undefined => {
  const prefix = streamPrefixOf(g.plugin)
  const ownSubjects = subjectPrefixOf(g.plugin)
  const foreign = subjects.find((s) => !s.startsWith(ownSubjects))
  if (name !== prefix && !name.startsWith(`${prefix}-`)) {
    return denied(
      g.plugin,
      "bus.streams",
      name,
      `a plugin's streams are named ${prefix} or ${prefix}-<name>; core streams belong to the host`,
    )
  }
  if (foreign !== undefined) {
    return denied(
      g.plugin,
      "bus.streams",
      name,
      `a plugin's streams hold only its own subjects ${ownSubjects}…, not ${
        JSON.stringify(foreign)
      }`,
    )
  }
  return undefined
}

/** `https://api.telegram.org/bot…` → host `api.telegram.org`, port 443. */
const hostAndPort = (url: URL): { host: string; port: number } => ({
  host: url.hostname.toLowerCase(),
  port: url.port !== "" ? Number(url.port) : url.protocol === "https:" ? 443 : 80,
})

/** Whether host pattern `pattern` (`*.example.com:8443`) admits `host`:`port`. */
export const hostMatches = (pattern: string, host: string, port: number): boolean => {
  const parsed = parseHostPattern(pattern)
  if (parsed === undefined) return false
  if (parsed.port !== undefined && parsed.port !== port) return false
  if (parsed.host.startsWith("*.")) {
    const domain = parsed.host.slice(1) // ".example.com"
    return host.endsWith(domain) && host.length > domain.length
  }
  return parsed.host === host
}

/** May the plugin send a request to `url`? */
export const checkUrl = (g: Grants, url: URL): PermissionDenied | undefined => {
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    return denied(g.plugin, "net", url.href, `only http: and https: URLs can be fetched`)
  }
  const { host, port } = hostAndPort(url)
  if (g.permissions.net.some((p) => hostMatches(p, host, port))) return undefined
  const defaultPort = (url.protocol === "https:" ? 443 : 80) === port
  const entry = defaultPort ? host : `${host}:${port}`
  return denied(
    g.plugin,
    "net",
    `${host}:${port}`,
    `${host}:${port} is not declared; add ${
      JSON.stringify(entry)
    } to permissions.net in ${MANIFEST_FILE}`,
  )
}

/** May the plugin read secret `name`? */
/** Granted by its exact name, or by a declared prefix pattern (`BOT_TOKEN_*`). */
export const checkSecret = (g: Grants, name: string): PermissionDenied | undefined =>
  g.permissions.secrets.some((s) =>
      s === name ||
      (s.endsWith("*") && name.startsWith(s.slice(0, -1)) && /^[A-Z0-9_]+$/.test(name))
    )
    ? undefined
    : denied(g.plugin, "secrets", name)

/** The environment variable holding secret `name` of plugin `id`: `CHORUS_PLUGIN_CRMSYNC_API_KEY`. */
export const secretEnvName = (id: string, name: string): string =>
  `CHORUS_PLUGIN_${id.toUpperCase()}_${name}`

/** May the plugin use table `table`? Its own prefix and declared, both. */
export const checkTable = (g: Grants, table: string): PermissionDenied | undefined => {
  const prefix = tablePrefixOf(g.plugin)
  if (!table.startsWith(prefix)) {
    return denied(
      g.plugin,
      "storage.tables",
      table,
      `a plugin's tables start with ${prefix}; name it ${prefix}<name> and add it to ` +
        `permissions.storage.tables in ${MANIFEST_FILE}`,
    )
  }
  return g.permissions.storage.tables.includes(table)
    ? undefined
    : denied(g.plugin, "storage.tables", table)
}

/**
 * May the plugin serve `method path`? Only routes in `contributes.routes`, method and path as
 * declared (path parameters `{name}` included).
 */
export const checkRoute = (
  g: Grants & {
    readonly routes: ReadonlyArray<
      { readonly method: string; readonly path: string; readonly websocket?: boolean }
    >
  },
  method: string,
  path: string,
  options: { readonly websocket?: boolean } = {},
): PermissionDenied | undefined => {
  const upper = method.toUpperCase()
  const declared = g.routes.some((r) =>
    r.method === upper && r.path === path &&
    (options.websocket === undefined || (r.websocket ?? false) === options.websocket)
  )
  if (declared) return undefined
  const kind = options.websocket === true ? "websocket route" : "route"
  const declaration = `{ "method": ${JSON.stringify(upper)}, "path": ${JSON.stringify(path)}${
    options.websocket === true ? ', "websocket": true' : ""
  } }`
  return new PermissionDenied({
    plugin: g.plugin,
    capability: "routes",
    requested: options.websocket === true ? `websocket ${path}` : `${upper} ${path}`,
    field: "contributes.routes",
    hint:
      `the ${kind} is not declared; add ${declaration} to contributes.routes in ${MANIFEST_FILE}`,
  })
}

/** May the plugin send replies as `channel`? Only channels in `contributes.channels`. */
export const checkChannel = (
  g: Grants & { readonly channels: ReadonlyArray<{ readonly name: string }> },
  channel: string,
): PermissionDenied | undefined =>
  g.channels.some((c) => c.name === channel) ? undefined : new PermissionDenied({
    plugin: g.plugin,
    capability: "channels",
    requested: channel,
    field: "contributes.channels",
    hint: `the channel is not declared; add { "name": ${JSON.stringify(channel)}, ` +
      `"capabilities": { … } } to contributes.channels in ${MANIFEST_FILE}`,
  })

/** May the plugin store and read attachments? Only with `permissions.attachments: true`. */
export const checkAttachments = (g: Grants, what: string): PermissionDenied | undefined =>
  g.permissions.attachments ? undefined : new PermissionDenied({
    plugin: g.plugin,
    capability: "attachments",
    requested: what,
    field: "permissions.attachments",
    hint:
      `the attachment store is not granted; set "attachments": true in permissions in ${MANIFEST_FILE}`,
  })
