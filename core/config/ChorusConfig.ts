/**
 * Chorus configuration: one Schema, decoded from defaults < `chorus.config.json` < `CHORUS_*`
 * environment variables. Every setting has a default, so an empty directory starts Chorus with
 * SQLite and the embedded bus.
 *
 * `settings` below is the single table of keys: the env variable, what is expected (for error
 * messages) and the documentation line. The README's configuration reference mirrors it, and a
 * test keeps the two in step.
 */
import { Context, Schema } from "effect"
import { DEFAULT_ALLOWED_TYPES } from "../attachments/FileTypes.ts"
import { DeliveryConfig } from "../../schemas/DeliverySettings.ts"

const NonEmpty = Schema.String.pipe(Schema.minLength(1))

export const LogLevel = Schema.Literal("debug", "info", "warning", "error")
export const LogFormat = Schema.Literal("json", "pretty")

export const HttpConfig = Schema.Struct({
  host: Schema.optionalWith(NonEmpty, { default: () => "127.0.0.1" }),
  port: Schema.optionalWith(Schema.Int.pipe(Schema.between(0, 65535)), { default: () => 8080 }),
})

export const DatabaseConfig = Schema.Struct({
  url: Schema.optional(Schema.String.pipe(Schema.pattern(/^postgres(ql)?:\/\/.+/))),
  sqliteFile: Schema.optional(NonEmpty),
  schema: Schema.optionalWith(Schema.String.pipe(Schema.pattern(/^[a-z_][a-z0-9_]{0,62}$/)), {
    default: () => "public",
  }),
  poolSize: Schema.optionalWith(Schema.Int.pipe(Schema.between(1, 200)), { default: () => 10 }),
  statementTimeoutSeconds: Schema.optionalWith(Schema.Int.pipe(Schema.between(0, 3_600)), {
    default: () => 30,
  }),
})

export const BusConfig = Schema.Struct({
  natsUrl: Schema.optional(
    Schema.String.pipe(
      Schema.pattern(/^(nats|tls|ws|wss):\/\/[^,\s]+(,(nats|tls|ws|wss):\/\/[^,\s]+)*$/),
    ),
  ),
  namespace: Schema.optionalWith(Schema.String.pipe(Schema.pattern(/^[a-z][a-z0-9_-]{0,31}$/)), {
    default: () => "chorus",
  }),
  replicas: Schema.optionalWith(Schema.Int.pipe(Schema.between(1, 5)), { default: () => 1 }),
})

/** Several nodes on one namespace (core/cluster/Leadership.ts). */
export const ClusterConfig = Schema.Struct({
  /** How long the leader's lease lasts without a renew: failover takes about this long. */
  leaseSeconds: Schema.optionalWith(Schema.Int.pipe(Schema.between(3, 300)), {
    default: () => 10,
  }),
  /** This node's id in the lease and logs. Default: host name, pid and a random suffix. */
  nodeId: Schema.optional(Schema.String.pipe(Schema.pattern(/^[A-Za-z0-9._-]{1,64}$/))),
})

export const LogConfig = Schema.Struct({
  level: Schema.optionalWith(LogLevel, { default: () => "info" as const }),
  format: Schema.optionalWith(LogFormat, { default: () => "json" as const }),
})

/**
 * The built-in `api` channel: replies to its conversations are POSTed to `webhookUrl`, signed
 * with `webhookSecret` (HMAC-SHA256). The secret is `Redacted`: printing the config (`chorus
 * config`, logs) shows `<redacted>`.
 */
export const ApiChannelConfig = Schema.Struct({
  webhookUrl: Schema.optional(Schema.String.pipe(Schema.pattern(/^https?:\/\/[^\s]+$/))),
  webhookSecret: Schema.optional(Schema.Redacted(NonEmpty)),
})

export const ChannelsConfig = Schema.Struct({
  api: Schema.optionalWith(ApiChannelConfig, { default: () => ApiChannelConfig.make({}) }),
})

/** Where plugins are discovered: each sub-directory with a `chorus.plugin.json` is one plugin. */
export const PluginMode = Schema.Literal("inprocess", "worker", "deno")

export const PluginsConfig = Schema.Struct({
  dirs: Schema.optionalWith(Schema.Array(NonEmpty), { default: () => ["./plugins"] }),
  /** How plugins run unless `modes` says otherwise (docs/plugins.md, "Isolation"). */
  mode: Schema.optionalWith(PluginMode, { default: () => "worker" as const }),
  /** Mode per plugin id, e.g. `{ "crmsync": "deno" }` (config file only). */
  modes: Schema.optionalWith(Schema.Record({ key: Schema.String, value: PluginMode }), {
    default: () => ({}),
  }),
  /** Setting values per plugin id (config file only); checked against each manifest. */
  settings: Schema.optionalWith(
    Schema.Record({
      key: Schema.String,
      value: Schema.Record({
        key: Schema.String,
        value: Schema.Union(Schema.String, Schema.Number, Schema.Boolean),
      }),
    }),
    { default: () => ({}) },
  ),
  /** The `deno` executable for `deno` mode. Default: the npm package's, else `deno` on PATH. */
  deno: Schema.optional(NonEmpty),
  /** Heap cap of each worker or Deno plugin, MiB. */
  maxHeapMb: Schema.optionalWith(Schema.Int.pipe(Schema.between(16, 16384)), {
    default: () => 256,
  }),
})

/** The attachment store's limits (core/attachments). */
export const AttachmentsConfig = Schema.Struct({
  maxBytes: Schema.optionalWith(Schema.Int.pipe(Schema.between(1024, 2 * 1024 * 1024 * 1024)), {
    default: () => 20 * 1024 * 1024,
  }),
  allowedTypes: Schema.optionalWith(
    Schema.Array(Schema.String.pipe(Schema.pattern(/^[a-z0-9.+-]+\/([a-z0-9.+-]+|\*)$/))),
    { default: () => [...DEFAULT_ALLOWED_TYPES] },
  ),
})

/** Queue and auto-assignment (actors/routing/Router.ts). */
export const RoutingConfig = Schema.Struct({
  autoAssign: Schema.optionalWith(Schema.Boolean, { default: () => true }),
  answerTimeoutSeconds: Schema.optionalWith(Schema.Int.pipe(Schema.between(0, 86_400)), {
    default: () => 300,
  }),
  offlineAfterSeconds: Schema.optionalWith(Schema.Int.pipe(Schema.between(1, 86_400)), {
    default: () => 60,
  }),
  queueMessage: Schema.optionalWith(Schema.String.pipe(Schema.maxLength(1000)), {
    default: () => "",
  }),
})

/** Operators' sign-in sessions (core/accounts/Sessions.ts). */
export const AuthConfig = Schema.Struct({
  sessionIdleHours: Schema.optionalWith(Schema.Number.pipe(Schema.between(0.05, 720)), {
    default: () => 12,
  }),
  sessionMaxDays: Schema.optionalWith(Schema.Number.pipe(Schema.between(0.01, 365)), {
    default: () => 7,
  }),
  /** Mark the session cookie `Secure` (set when Chorus is served over HTTPS). */
  secureCookies: Schema.optionalWith(Schema.Boolean, { default: () => false }),
})

export const ChorusConfigSchema = Schema.Struct({
  dataDir: Schema.optionalWith(NonEmpty, { default: () => "./data" }),
  http: Schema.optionalWith(HttpConfig, { default: () => HttpConfig.make({}) }),
  database: Schema.optionalWith(DatabaseConfig, { default: () => DatabaseConfig.make({}) }),
  bus: Schema.optionalWith(BusConfig, { default: () => BusConfig.make({}) }),
  cluster: Schema.optionalWith(ClusterConfig, { default: () => ClusterConfig.make({}) }),
  log: Schema.optionalWith(LogConfig, { default: () => LogConfig.make({}) }),
  channels: Schema.optionalWith(ChannelsConfig, { default: () => ChannelsConfig.make({}) }),
  plugins: Schema.optionalWith(PluginsConfig, { default: () => PluginsConfig.make({}) }),
  attachments: Schema.optionalWith(AttachmentsConfig, {
    default: () => AttachmentsConfig.make({}),
  }),
  routing: Schema.optionalWith(RoutingConfig, { default: () => RoutingConfig.make({}) }),
  auth: Schema.optionalWith(AuthConfig, { default: () => AuthConfig.make({}) }),
  /**
   * Delivery policies (config file only): `defaults`, by channel (`channels.<name>`) and by
   * channel account (`accounts["<channel>:<account>"]`); see core/delivery/Policy.ts.
   */
  delivery: Schema.optionalWith(DeliveryConfig, {
    default: () => ({ defaults: {}, channels: {}, accounts: {} }),
  }),
})

export type ChorusConfig = typeof ChorusConfigSchema.Type

export class Config extends Context.Tag("chorus/core/Config")<Config, ChorusConfig>() {}

/** `list`: an array in the file, comma-separated in the environment. */
export type SettingKind = "string" | "integer" | "number" | "boolean" | "list"

export interface Setting {
  /** Dotted path in the config file. */
  readonly key: string
  readonly env: string
  readonly kind: SettingKind
  /** What a valid value looks like, as said in error messages. */
  readonly expected: string
  readonly default: string
  readonly doc: string
}

export const settings: ReadonlyArray<Setting> = [
  {
    key: "dataDir",
    env: "CHORUS_DATA_DIR",
    kind: "string",
    expected: "a non-empty directory path",
    default: "./data",
    doc: "Where Chorus keeps its SQLite database and files; created if missing.",
  },
  {
    key: "http.host",
    env: "CHORUS_HTTP_HOST",
    kind: "string",
    expected: "a non-empty host name or IP address",
    default: "127.0.0.1",
    doc: "Address the HTTP server listens on (`0.0.0.0` for every interface).",
  },
  {
    key: "http.port",
    env: "CHORUS_HTTP_PORT",
    kind: "integer",
    expected: "an integer from 0 to 65535 (0 picks a free port)",
    default: "8080",
    doc: "HTTP port.",
  },
  {
    key: "database.url",
    env: "CHORUS_DATABASE_URL",
    kind: "string",
    expected: "a postgres:// or postgresql:// URL",
    default: "(unset: SQLite)",
    doc: "PostgreSQL connection URL. Unset means SQLite in the data directory.",
  },
  {
    key: "database.sqliteFile",
    env: "CHORUS_DATABASE_SQLITE_FILE",
    kind: "string",
    expected: "a non-empty file path",
    default: "<dataDir>/chorus.sqlite",
    doc: "SQLite database file (when no PostgreSQL URL is set).",
  },
  {
    key: "database.schema",
    env: "CHORUS_DATABASE_SCHEMA",
    kind: "string",
    expected: "a lower-case SQL identifier ([a-z_][a-z0-9_]*, at most 63 characters)",
    default: "public",
    doc: "PostgreSQL schema for Chorus's tables; created if missing.",
  },
  {
    key: "database.poolSize",
    env: "CHORUS_DATABASE_POOL_SIZE",
    kind: "integer",
    expected: "an integer from 1 to 200",
    default: "10",
    doc: "PostgreSQL connections per node.",
  },
  {
    key: "database.statementTimeoutSeconds",
    env: "CHORUS_DATABASE_STATEMENT_TIMEOUT_SECONDS",
    kind: "integer",
    expected: "an integer from 0 to 3600 (0: no limit)",
    default: "30",
    doc: "PostgreSQL cancels a statement running (or waiting for a lock) longer than this, and " +
      "ends a session left idle inside a transaction that long, so a stuck query cannot hold a " +
      "pooled connection for good. Migrations run without the limit.",
  },
  {
    key: "bus.natsUrl",
    env: "CHORUS_NATS_URL",
    kind: "string",
    expected: "nats:// (or tls://, ws://, wss://) URLs, comma-separated",
    default: "(unset: embedded bus)",
    doc: "NATS servers with JetStream. Unset means the embedded bus in the local database.",
  },
  {
    key: "bus.namespace",
    env: "CHORUS_BUS_NAMESPACE",
    kind: "string",
    expected: "a lower-case name: a letter, then letters, digits, '_' or '-' (at most 32)",
    default: "chorus",
    doc: "Prefix of every stream and subject, so several Chorus installations can share one NATS.",
  },
  {
    key: "bus.replicas",
    env: "CHORUS_NATS_REPLICAS",
    kind: "integer",
    expected: "an integer from 1 to 5",
    default: "1",
    doc: "JetStream stream replicas (3 on a three-node NATS cluster survives the loss of a node).",
  },
  {
    key: "cluster.leaseSeconds",
    env: "CHORUS_CLUSTER_LEASE_SECONDS",
    kind: "integer",
    expected: "an integer from 3 to 300",
    default: "10",
    doc: "On JetStream: how long the leader's lease lasts without a renew. A standby takes over " +
      "this long after the leader stops renewing (at once after a clean shutdown).",
  },
  {
    key: "cluster.nodeId",
    env: "CHORUS_CLUSTER_NODE_ID",
    kind: "string",
    expected: "1 to 64 letters, digits, '.', '_' or '-'",
    default: "<hostname>-<pid>-<random>",
    doc: "This node's name in the cluster lease, logs and `chorus_cluster_leader`.",
  },
  {
    key: "log.level",
    env: "CHORUS_LOG_LEVEL",
    kind: "string",
    expected: "one of debug, info, warning, error",
    default: "info",
    doc: "Lowest level logged.",
  },
  {
    key: "log.format",
    env: "CHORUS_LOG_FORMAT",
    kind: "string",
    expected: "json or pretty",
    default: "json",
    doc: "`json`: one JSON object per line (for log shippers); `pretty`: for people.",
  },
  {
    key: "channels.api.webhookUrl",
    env: "CHORUS_API_WEBHOOK_URL",
    kind: "string",
    expected: "an http:// or https:// URL",
    default: "(unset: api replies fail)",
    doc: "Where replies to `api`-channel conversations are POSTed (see Replying). Unset: they " +
      "fail with a reason naming this setting.",
  },
  {
    key: "channels.api.webhookSecret",
    env: "CHORUS_API_WEBHOOK_SECRET",
    kind: "string",
    expected: "a non-empty string",
    default: "(unset: unsigned)",
    doc: "Key of the `X-Chorus-Signature` HMAC on every webhook POST. Never printed.",
  },
  {
    key: "plugins.dirs",
    env: "CHORUS_PLUGINS_DIRS",
    kind: "list",
    expected: "directory paths, comma-separated in the env",
    default: "./plugins",
    doc: "Where plugins are found: each sub-directory with a `chorus.plugin.json` " +
      "(docs/plugins.md). Relative paths are resolved against the working directory.",
  },
  {
    key: "attachments.maxBytes",
    env: "CHORUS_ATTACHMENTS_MAX_BYTES",
    kind: "integer",
    expected: "an integer from 1024 to 2147483648",
    default: "20971520 (20 MiB)",
    doc: "Largest file the attachment store accepts (uploads, channel media).",
  },
  {
    key: "attachments.allowedTypes",
    env: "CHORUS_ATTACHMENTS_ALLOWED_TYPES",
    kind: "list",
    expected: "MIME types or type/*, comma-separated in the env",
    default: "images, PDF, audio, mp4/webm/mov video, text, CSV, zip, office documents",
    doc: "Types the attachment store accepts, checked against the content, not the claimed " +
      "type; programs are refused whatever this says.",
  },
  {
    key: "plugins.mode",
    env: "CHORUS_PLUGINS_MODE",
    kind: "string",
    expected: "inprocess, worker or deno",
    default: "worker",
    doc: "How plugins run: `inprocess` (trusted, fastest), `worker` (a worker thread each) or " +
      "`deno` (a Deno subprocess with permission flags from the manifest). Per plugin: " +
      "`plugins.modes` in the config file (docs/plugin-host.md).",
  },
  {
    key: "plugins.deno",
    env: "CHORUS_PLUGINS_DENO",
    kind: "string",
    expected: "a path to the deno executable",
    default: "the deno npm package, else deno on PATH",
    doc: "The Deno runtime used for plugins in `deno` mode.",
  },
  {
    key: "plugins.maxHeapMb",
    env: "CHORUS_PLUGINS_MAX_HEAP_MB",
    kind: "integer",
    expected: "an integer from 16 to 16384",
    default: "256",
    doc: "Heap cap of each plugin running in a worker or in Deno, MiB: one that needs more " +
      "is stopped and restarted, the host is not affected.",
  },
  {
    key: "routing.autoAssign",
    env: "CHORUS_ROUTING_AUTO_ASSIGN",
    kind: "boolean",
    expected: "true or false",
    default: "true",
    doc: "Assign queued conversations to online operators of their team, least loaded first, " +
      "within each operator's capacity (docs/inbox.md).",
  },
  {
    key: "routing.answerTimeoutSeconds",
    env: "CHORUS_ROUTING_ANSWER_TIMEOUT_SECONDS",
    kind: "integer",
    expected: "an integer from 0 to 86400 (0: never)",
    default: "300",
    doc: "A conversation its assignee has not answered this long after getting it goes back " +
      "to the queue (and is offered to someone else first).",
  },
  {
    key: "routing.offlineAfterSeconds",
    env: "CHORUS_ROUTING_OFFLINE_AFTER_SECONDS",
    kind: "integer",
    expected: "an integer from 1 to 86400",
    default: "60",
    doc: "An online operator whose every inbox tab has been closed this long becomes offline, " +
      "so routing stops assigning to them.",
  },
  {
    key: "routing.queueMessage",
    env: "CHORUS_ROUTING_QUEUE_MESSAGE",
    kind: "string",
    expected: "a text of at most 1000 characters; {position} is replaced by the place",
    default: "(empty: customers are not told)",
    doc: "Sent once to a customer whose new conversation waits in the queue, e.g. " +
      "`All our operators are busy; you are number {position} in line.`",
  },
  {
    key: "auth.sessionIdleHours",
    env: "CHORUS_AUTH_SESSION_IDLE_HOURS",
    kind: "number",
    expected: "a number of hours from 0.05 to 720",
    default: "12",
    doc: "An operator's session ends after this long without a request.",
  },
  {
    key: "auth.sessionMaxDays",
    env: "CHORUS_AUTH_SESSION_MAX_DAYS",
    kind: "number",
    expected: "a number of days from 0.01 to 365",
    default: "7",
    doc: "A session ends this long after sign-in, whatever its use.",
  },
  {
    key: "auth.secureCookies",
    env: "CHORUS_AUTH_SECURE_COOKIES",
    kind: "boolean",
    expected: "true or false",
    default: "false",
    doc: "Mark the session cookie `Secure`: set it when browsers reach Chorus over HTTPS " +
      "(behind a TLS proxy).",
  },
]

/** The SQLite file actually used: the configured one, else `<dataDir>/chorus.sqlite`. */
export const sqliteFileOf = (config: ChorusConfig): string =>
  config.database.sqliteFile ?? `${config.dataDir.replace(/\/+$/, "")}/chorus.sqlite`
