/**
 * `chorus.plugin.json`: what a plugin is, what it adds to Chorus and what it may touch. The host
 * decodes it (every problem at once, unknown keys refused) before any of the plugin's code runs;
 * the permissions are then all the plugin gets: anything not declared is denied.
 *
 * @example
 * ```json
 * {
 *   "id": "telegram",
 *   "version": "1.0.0",
 *   "engines": { "chorus": "^1.0.0" },
 *   "entry": "dist/index.js",
 *   "kind": "channel",
 *   "contributes": {
 *     "channels": [{ "name": "telegram", "capabilities": { "maxTextLength": 4096, "attachments": true } }],
 *     "routes": [{ "method": "POST", "path": "/plugins/telegram/webhook" }],
 *     "subjects": { "publishes": ["inbound.telegram"], "consumes": ["outbound.telegram"] }
 *   },
 *   "permissions": {
 *     "bus": { "publish": ["inbound.telegram"], "subscribe": ["outbound.telegram"] },
 *     "net": ["api.telegram.org"],
 *     "secrets": ["BOT_TOKEN"]
 *   }
 * }
 * ```
 */
import { Schema } from "effect"
import { SemverRangeString, SemverString } from "./Semver.ts"
import { DeliverySettings } from "./DeliverySettings.ts"

/**
 * A plugin id: 2 to 40 lower-case letters and digits, starting with a letter (`telegram`,
 * `crmsync`). It is embedded, as is, in names that use `_`, `-` and `.` as separators: tables
 * (`plugin_<id>_…`), secrets (`CHORUS_PLUGIN_<ID>_<NAME>`), streams and consumers
 * (`plugin-<id>-…`), subjects (`plugins.<id>.…`), URLs (`/plugins/<id>/…`). An id with a
 * separator in it would make names ambiguous: `crm` could declare the table
 * `plugin_crm_sync_links`, which is `crm-sync`'s. Without separators, no plugin's names can
 * start with another's.
 */
export const PluginId = Schema.String.pipe(
  Schema.filter((s) => /^[a-z][a-z0-9]{1,39}$/.test(s), {
    message: (issue) =>
      `expected a plugin id: 2 to 40 lower-case letters and digits, starting with a letter, ` +
      `no '-' or '_' (e.g. "telegram", "crmsync"), got ${JSON.stringify(issue.actual)}`,
  }),
  Schema.brand("PluginId"),
).annotations({ identifier: "PluginId" })
export type PluginId = typeof PluginId.Type

/** The prefix every table of plugin `id` must start with: `plugin_crmsync_`. */
export const tablePrefixOf = (id: string): string => `plugin_${id}_`

/** The subject namespace of plugin `id`'s own messages: `plugins.<id>.…`. */
export const subjectPrefixOf = (id: string): string => `plugins.${id}.`

/** `Schema.Literal` whose refusal lists the allowed values in one sentence. */
const oneOf = <const L extends ReadonlyArray<string>>(...values: L) =>
  Schema.Literal(...values).annotations({
    message: (issue) => ({
      message: `expected one of ${values.join(", ")}, got ${JSON.stringify(issue.actual)}`,
      override: true,
    }),
  })

export const PluginKind = oneOf("channel", "bot", "analytics", "ui", "integration")
export type PluginKind = typeof PluginKind.Type

/** A path inside the plugin's directory: relative, `/`-separated, never leaving it. */
export const RelativePath = Schema.String.pipe(
  Schema.filter(
    (s) =>
      s.length > 0 && !s.startsWith("/") && !/^[A-Za-z]:/.test(s) && !s.includes("\\") &&
      !s.split("/").includes(".."),
    {
      message: (issue) =>
        `expected a relative path inside the plugin directory ('/'-separated, no '..', not ` +
        `absolute), got ${JSON.stringify(issue.actual)}`,
    },
  ),
).annotations({ identifier: "RelativePath" })

const ModulePath = RelativePath.pipe(
  Schema.filter((s) => /\.(m?js|m?ts)$/.test(s), {
    message: (issue) =>
      `expected a JavaScript or TypeScript module (.js, .mjs, .ts, .mts), got ${
        JSON.stringify(issue.actual)
      }`,
  }),
)

const TOKEN = "[A-Za-z0-9_-]+"
const SUBJECT_PATTERN = new RegExp(`^${TOKEN}(\\.(${TOKEN}|\\*))*(\\.>)?$`)

/**
 * A bus subject pattern: `.`-separated tokens of letters, digits, `_` and `-`; `*` matches one
 * token, a final `>` one or more. The first token is always literal (it names a stream's
 * subjects: `events`, `inbound`, `plugins`): `>` or `*.created` would reach every stream.
 */
export const SubjectPattern = Schema.String.pipe(
  Schema.filter((s) => SUBJECT_PATTERN.test(s), {
    message: (issue) =>
      `expected a subject pattern such as "events.message.received", "inbound.*" or ` +
      `"plugins.<id>.>": tokens of letters, digits, '_' or '-' separated by '.', '*' for one ` +
      `token, a final '>' for the rest, the first token literal; got ${
        JSON.stringify(issue.actual)
      }`,
  }),
).annotations({ identifier: "SubjectPattern" })

const LABEL = "[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
const HOST_NAME = new RegExp(`^(\\*\\.)?${LABEL}(\\.${LABEL})*$`)
const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/
const IPV6 = /^\[[0-9a-f:.]+\]$/

/** Parse `host[:port]`; undefined if it is not a valid host pattern. */
export const parseHostPattern = (
  text: string,
): { readonly host: string; readonly port: number | undefined } | undefined => {
  const m = /^(.*?)(?::(\d{1,5}))?$/.exec(text)
  if (m === null) return undefined
  const host = m[1]!
  const port = m[2] === undefined ? undefined : Number(m[2])
  if (port !== undefined && (port < 1 || port > 65535)) return undefined
  if (IPV6.test(host) || IPV4.test(host)) return { host, port }
  if (!HOST_NAME.test(host) || host.length > 253) return undefined
  return { host, port }
}

/**
 * An outbound host a plugin may reach: `api.telegram.org`, `*.example.com` (any sub-domain, not
 * `example.com` itself), an IP address, each with an optional `:port` (default: any port).
 * Lower-case, no scheme, no path.
 */
export const HostPattern = Schema.String.pipe(
  Schema.filter((s) => parseHostPattern(s) !== undefined, {
    message: (issue) =>
      `expected a host name such as "api.telegram.org", "*.example.com" or "127.0.0.1:8443" ` +
      `(lower-case, optional port, no scheme or path), got ${JSON.stringify(issue.actual)}`,
  }),
).annotations({ identifier: "HostPattern" })

/**
 * A secret's name: upper-case letters, digits and `_` (`BOT_TOKEN`). The host reads it from
 * `CHORUS_PLUGIN_<ID>_<NAME>` (id upper-cased).
 */
export const SecretName = Schema.String.pipe(
  Schema.filter((s) => /^[A-Z][A-Z0-9_]{0,63}\*?$/.test(s), {
    message: (issue) =>
      `expected a secret name in upper case: a letter, then letters, digits or '_' (e.g. ` +
      `"BOT_TOKEN"), or a prefix ending in '*' for a family of secrets (e.g. "BOT_TOKEN_*", ` +
      `one per channel account), got ${JSON.stringify(issue.actual)}`,
  }),
).annotations({ identifier: "SecretName" })

/** A table name (the plugin prefix is checked against the id, see `PluginManifest`). */
export const TableName = Schema.String.pipe(
  Schema.filter((s) => /^[a-z][a-z0-9_]{0,62}$/.test(s), {
    message: (issue) =>
      `expected a lower-case SQL table name (letters, digits, '_', at most 63), got ${
        JSON.stringify(issue.actual)
      }`,
  }),
).annotations({ identifier: "TableName" })

const list = <A, I>(item: Schema.Schema<A, I>) =>
  Schema.optionalWith(
    Schema.Array(item).annotations({
      message: (issue) => `expected a list (JSON array), got ${JSON.stringify(issue.actual)}`,
    }),
    { default: () => [] },
  )

/** What a channel can carry: the same shape as `ChannelCapabilities` in core/channels. */
export const ChannelCapabilitiesSchema = Schema.Struct({
  maxTextLength: Schema.Int.pipe(Schema.positive()),
  attachments: Schema.Boolean,
  /** Whether replies may carry buttons (an inline keyboard). Default false. */
  buttons: Schema.optionalWith(Schema.Boolean, { default: () => false }),
}).annotations({ identifier: "ChannelCapabilities" })

export const ChannelContribution = Schema.Struct({
  name: Schema.String.pipe(
    Schema.pattern(/^[a-z][a-z0-9_-]{0,31}$/, {
      message: () =>
        "expected a channel name: a lower-case letter, then letters, digits, '_' or '-' (at most 32)",
    }),
  ),
  capabilities: ChannelCapabilitiesSchema,
  /**
   * The channel's delivery defaults: its provider's published limits (`pacing`), a fitting
   * `timeout`… (core/delivery/Policy.ts `DeliverySettings`); chorus.config.json's `delivery`
   * section overrides them.
   */
  delivery: Schema.optionalWith(DeliverySettings, { exact: true }),
})

export const RouteContribution = Schema.Struct({
  method: oneOf("GET", "POST", "PUT", "PATCH", "DELETE"),
  /** Under the plugin's own prefix: `/plugins/<id>/…`. */
  path: Schema.String.pipe(
    Schema.pattern(/^\/[A-Za-z0-9._~\-/:{}]*$/, {
      message: () => "expected a URL path such as /plugins/<id>/webhook",
    }),
  ),
  description: Schema.optionalWith(Schema.String, { exact: true }),
  /** A WebSocket endpoint (method GET): `chorus.routes.websocket` serves it. */
  websocket: Schema.optionalWith(Schema.Boolean, { default: () => false }),
}).pipe(
  Schema.filter((r) =>
    !r.websocket || r.method === "GET" || {
      path: ["method"],
      message: "a websocket route is opened with GET",
    }
  ),
)

export const SettingContribution = Schema.Struct({
  key: Schema.String.pipe(
    Schema.pattern(/^[a-z][A-Za-z0-9]{0,63}$/, {
      message: () => "expected a setting key in camelCase, e.g. pollInterval",
    }),
  ),
  type: oneOf("string", "integer", "number", "boolean"),
  description: Schema.optionalWith(Schema.String, { exact: true }),
  default: Schema.optionalWith(Schema.Union(Schema.String, Schema.Number, Schema.Boolean), {
    exact: true,
  }),
  /** Allowed values (strings and numbers). */
  enum: Schema.optionalWith(Schema.Array(Schema.Union(Schema.String, Schema.Number)), {
    exact: true,
  }),
  required: Schema.optionalWith(Schema.Boolean, { default: () => false }),
})

export const PanelContribution = Schema.Struct({
  id: Schema.String.pipe(
    Schema.pattern(/^[a-z][a-z0-9-]{0,39}$/, { message: () => "expected a panel id slug" }),
  ),
  title: Schema.String.pipe(Schema.minLength(1), Schema.maxLength(80)),
  location: oneOf("conversation-sidebar", "navigation", "settings"),
  entry: ModulePath,
})

export const Contributes = Schema.Struct({
  channels: list(ChannelContribution),
  routes: list(RouteContribution),
  subjects: Schema.optionalWith(
    Schema.Struct({ publishes: list(SubjectPattern), consumes: list(SubjectPattern) }),
    { default: () => ({ publishes: [], consumes: [] }) },
  ),
  settings: list(SettingContribution),
  /** Directory of the plugin's migrations (run in `chorus_plugin_<id>_migrations`). */
  migrations: Schema.optionalWith(RelativePath, { exact: true }),
  panels: list(PanelContribution),
})

export const Permissions = Schema.Struct({
  bus: Schema.optionalWith(
    Schema.Struct({ publish: list(SubjectPattern), subscribe: list(SubjectPattern) }),
    { default: () => ({ publish: [], subscribe: [] }) },
  ),
  net: list(HostPattern),
  secrets: list(SecretName),
  storage: Schema.optionalWith(Schema.Struct({ tables: list(TableName) }), {
    default: () => ({ tables: [] }),
  }),
  /** Store and read files in the attachment store (a channel plugin's media). */
  attachments: Schema.optionalWith(Schema.Boolean, { default: () => false }),
})
export type Permissions = typeof Permissions.Type

const fields = Schema.Struct({
  id: PluginId,
  version: SemverString,
  /** Human-readable name. Default: the id. */
  name: Schema.optionalWith(Schema.String.pipe(Schema.minLength(1), Schema.maxLength(80)), {
    exact: true,
  }),
  description: Schema.optionalWith(Schema.String.pipe(Schema.maxLength(500)), { exact: true }),
  engines: Schema.Struct({ chorus: SemverRangeString }),
  entry: ModulePath,
  kind: PluginKind,
  contributes: Schema.optionalWith(Contributes, { default: () => Contributes.make({}) }),
  /** Deny by default: an absent list grants nothing. */
  permissions: Schema.optionalWith(Permissions, { default: () => Permissions.make({}) }),
})

const SUBJECT_TOKEN = (s: string) => s.split(".")

/** Whether pattern `a` covers every subject `b` matches (wildcards on both sides). */
export const patternCovers = (a: string, b: string): boolean => {
  const x = SUBJECT_TOKEN(a)
  const y = SUBJECT_TOKEN(b)
  for (let i = 0; i < x.length; i++) {
    const p = x[i]!
    if (p === ">") return y.length > i
    if (i >= y.length) return false
    const q = y[i]!
    if (q === ">") return false
    if (p !== "*" && p !== q) return false
  }
  return x.length === y.length
}

/**
 * What the checks between fields read: taken from a decoded manifest, or from the raw JSON when
 * decoding failed (so these problems are reported in the same round; values of the wrong type
 * are left out as `undefined`, their own problem is already reported).
 */
export interface CrossView {
  readonly id: string
  readonly routes: ReadonlyArray<string | undefined>
  readonly tables: ReadonlyArray<string | undefined>
  readonly publish: ReadonlyArray<string | undefined>
  readonly subscribe: ReadonlyArray<string | undefined>
  readonly publishes: ReadonlyArray<string | undefined>
  readonly consumes: ReadonlyArray<string | undefined>
  readonly settings: ReadonlyArray<
    { readonly type: unknown; readonly default: unknown } | undefined
  >
}

const isPluginId = Schema.is(PluginId)

const at = (node: unknown, ...keys: ReadonlyArray<string>): unknown =>
  keys.reduce<unknown>(
    (
      n,
      k,
    ) => (typeof n === "object" && n !== null && !Array.isArray(n) ? (n as any)[k] : undefined),
    node,
  )

const strings = (node: unknown): ReadonlyArray<string | undefined> =>
  Array.isArray(node) ? node.map((v) => (typeof v === "string" ? v : undefined)) : []

const isSubjectPattern = Schema.is(SubjectPattern)

/** Subject patterns, the invalid ones as `undefined` (their problem is reported on its own). */
const patterns = (node: unknown): ReadonlyArray<string | undefined> =>
  strings(node).map((p) => (isSubjectPattern(p) ? p : undefined))

/** The cross-field view of raw manifest JSON, or undefined without a valid id to check against. */
export const rawCrossView = (raw: unknown): CrossView | undefined => {
  const id = at(raw, "id")
  if (!isPluginId(id)) return undefined
  const routes = at(raw, "contributes", "routes")
  const settings = at(raw, "contributes", "settings")
  return {
    id,
    routes: Array.isArray(routes) ? routes.map((r) => strings([at(r, "path")])[0]) : [],
    tables: strings(at(raw, "permissions", "storage", "tables")),
    publish: patterns(at(raw, "permissions", "bus", "publish")),
    subscribe: patterns(at(raw, "permissions", "bus", "subscribe")),
    publishes: patterns(at(raw, "contributes", "subjects", "publishes")),
    consumes: patterns(at(raw, "contributes", "subjects", "consumes")),
    settings: Array.isArray(settings)
      ? settings.map((x) =>
        typeof x === "object" && x !== null
          ? { type: at(x, "type"), default: at(x, "default") }
          : undefined
      )
      : [],
  }
}

const decodedView = (m: typeof fields.Type): CrossView => ({
  id: m.id,
  routes: m.contributes.routes.map((r) => r.path),
  tables: m.permissions.storage.tables,
  publish: m.permissions.bus.publish,
  subscribe: m.permissions.bus.subscribe,
  publishes: m.contributes.subjects.publishes,
  consumes: m.contributes.subjects.consumes,
  settings: m.contributes.settings.map((x) => ({ type: x.type, default: x.default })),
})

/**
 * Checks between fields: routes under the plugin's prefix, tables with its prefix, no other
 * plugin's subjects, contributed subjects covered by the permissions, setting defaults of the
 * declared type.
 */
export const crossChecks = (m: CrossView): ReadonlyArray<Schema.FilterIssue> => {
  const issues: Array<Schema.FilterIssue> = []
  const routePrefix = `/plugins/${m.id}`
  m.routes.forEach((path, i) => {
    if (path === undefined) return
    if (path !== routePrefix && !path.startsWith(`${routePrefix}/`)) {
      issues.push({
        path: ["contributes", "routes", i, "path"],
        message: `expected a path under this plugin's prefix ${routePrefix}/, got ${
          JSON.stringify(path)
        }`,
      })
    }
  })
  const prefix = tablePrefixOf(m.id)
  m.tables.forEach((table, i) => {
    if (table === undefined) return
    if (!table.startsWith(prefix) || table.length === prefix.length) {
      issues.push({
        path: ["permissions", "storage", "tables", i],
        message: `expected a table name starting with ${prefix} (this plugin's prefix), got ${
          JSON.stringify(table)
        }`,
      })
    }
  })
  const foreign = (pattern: string) => {
    const tokens = pattern.split(".")
    return tokens[0] === "plugins" && tokens.length > 1 && tokens[1] !== m.id
  }
  const checkSubjects = (
    path: ReadonlyArray<PropertyKey>,
    patterns: ReadonlyArray<string | undefined>,
  ) =>
    patterns.forEach((pattern, i) => {
      if (pattern !== undefined && foreign(pattern)) {
        issues.push({
          path: [...path, i],
          message: `a plugin's own subjects are plugins.${m.id}.…; ${
            JSON.stringify(pattern)
          } reaches other plugins' subjects`,
        })
      }
    })
  checkSubjects(["permissions", "bus", "publish"], m.publish)
  checkSubjects(["permissions", "bus", "subscribe"], m.subscribe)
  const covered = (
    path: ReadonlyArray<PropertyKey>,
    patterns: ReadonlyArray<string | undefined>,
    granted: ReadonlyArray<string | undefined>,
    field: string,
  ) =>
    patterns.forEach((pattern, i) => {
      // An invalid grant could have been meant to cover it: its own problem says enough.
      if (pattern === undefined || granted.includes(undefined)) return
      if (!granted.some((g) => g !== undefined && patternCovers(g, pattern))) {
        issues.push({
          path: [...path, i],
          message: `${JSON.stringify(pattern)} is not covered by ${field}: add it there too`,
        })
      }
    })
  covered(
    ["contributes", "subjects", "publishes"],
    m.publishes,
    m.publish,
    "permissions.bus.publish",
  )
  covered(
    ["contributes", "subjects", "consumes"],
    m.consumes,
    m.subscribe,
    "permissions.bus.subscribe",
  )
  m.settings.forEach((setting, i) => {
    if (setting === undefined || setting.default === undefined) return
    if (!["string", "integer", "number", "boolean"].includes(String(setting.type))) return
    const d = setting.default
    const ok = setting.type === "string"
      ? typeof d === "string"
      : setting.type === "boolean"
      ? typeof d === "boolean"
      : setting.type === "integer"
      ? typeof d === "number" && Number.isInteger(d)
      : typeof d === "number"
    if (!ok) {
      issues.push({
        path: ["contributes", "settings", i, "default"],
        message: `expected a default of type ${String(setting.type)}, got ${JSON.stringify(d)}`,
      })
    }
  })
  return issues
}

export const PluginManifest = fields.pipe(Schema.filter((m) => crossChecks(decodedView(m))))
  .annotations({
    identifier: "PluginManifest",
  })
export type PluginManifest = typeof PluginManifest.Type

/** The manifest's file name, beside the entry module. */
export const MANIFEST_FILE = "chorus.plugin.json"
