/**
 * The `chorus` command line: `start`, `migrate`, `config`, `dead-letters`, `token`, `plugin`,
 * `user`, `team`.
 * Built on @effect/cli, so `chorus --help` and `chorus <command> --help` document themselves.
 */
import { Args, Command, Options } from "@effect/cli"
import { NodeContext, NodeRuntime } from "@effect/platform-node"
import { Console, Effect, Layer, Option, Redacted } from "effect"
import { ApiTokens } from "../auth/ApiTokens.ts"
import { Bus } from "../bus/Bus.ts"
import { CoreLive, DatabaseLive, ServerLive, StorageLive } from "../Chorus.ts"
import { type ChorusConfig, sqliteFileOf } from "../config/ChorusConfig.ts"
import { loadConfig, unknownEnvVariables } from "../config/loadConfig.ts"
import * as Logging from "../logging/Logging.ts"
import { Database, redactUrl } from "../storage/Database.ts"
import { coreMigrationSet, migrate } from "../storage/Migrations.ts"
import { VERSION } from "../version.ts"
import { teamCommand, userCommand } from "./AccountCommands.ts"
import { pluginCommand } from "./PluginCommands.ts"

const configFile = Options.file("config").pipe(
  Options.withAlias("c"),
  Options.withDescription(
    "Config file (default: $CHORUS_CONFIG or ./chorus.config.json if present)",
  ),
  Options.optional,
)

/** Load the configuration or stop with the problems listed (exit code 2). */
const loadOrExit = (file: Option.Option<string>) =>
  loadConfig({ file: Option.getOrUndefined(file) }).pipe(
    Effect.catchTag("ConfigError", (error) =>
      Console.error(`chorus: ${error.message}`).pipe(
        Effect.zipRight(Effect.sync(() => process.exit(2))),
        Effect.zipRight(Effect.never),
      )),
  )

const withLogging = (config: ChorusConfig) => <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  effect.pipe(Effect.provide(Logging.layer(config.log)))

/** Any other failure: one clear line on stderr, exit code 1. */
const orExit = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  effect.pipe(
    Effect.catchAll((error) =>
      Console.error(`chorus: ${error instanceof Error ? error.message : String(error)}`).pipe(
        Effect.zipRight(Effect.sync(() => process.exit(1))),
        Effect.zipRight(Effect.never),
      )
    ),
  )

const describe = (config: ChorusConfig) => ({
  version: VERSION,
  dataDir: config.dataDir,
  store: config.database.url !== undefined
    ? `postgres ${redactUrl(config.database.url)} schema=${config.database.schema}`
    : `sqlite ${sqliteFileOf(config)}`,
  bus: config.bus.natsUrl !== undefined
    ? `jetstream ${config.bus.natsUrl} namespace=${config.bus.namespace}`
    : `embedded namespace=${config.bus.namespace}`,
})

const start = Command.make(
  "start",
  {
    config: configFile,
    dev: Options.boolean("dev").pipe(
      Options.withDescription(
        "Development mode: readable logs at debug level, plugins reloaded when their files change",
      ),
    ),
  },
  ({ config: file, dev }) =>
    Effect.gen(function* () {
      const loaded = yield* loadOrExit(file)
      const config: ChorusConfig = dev
        ? { ...loaded, log: { level: "debug", format: "pretty" } }
        : loaded
      const run = Effect.gen(function* () {
        const unknown = unknownEnvVariables()
        if (unknown.length > 0) {
          yield* Effect.logWarning("unknown CHORUS_* variables ignored (typo?)").pipe(
            Effect.annotateLogs({ variables: unknown }),
          )
        }
        yield* Effect.logInfo("chorus starting").pipe(Effect.annotateLogs(describe(config)))
        yield* Layer.launch(
          ServerLive(config, { plugins: { watch: dev } }).pipe(
            Layer.tap(() => Effect.logInfo("chorus started")),
          ),
        )
      })
      yield* run.pipe(orExit, withLogging(config))
    }),
).pipe(
  Command.withDescription("Start the Chorus server (embedded defaults need no configuration)."),
)

const migrateCommand = Command.make(
  "migrate",
  { config: configFile },
  ({ config: file }) =>
    Effect.gen(function* () {
      const config = yield* loadOrExit(file)
      const report = yield* Effect.gen(function* () {
        const db = yield* Database
        return yield* migrate(db, coreMigrationSet)
      }).pipe(Effect.provide(DatabaseLive(config)), orExit, withLogging(config))
      yield* Console.log(
        report.applied.length === 0
          ? `${report.table}: up to date`
          : `${report.table}: applied ${report.applied.join(", ")}`,
      )
    }),
).pipe(Command.withDescription("Apply pending database migrations and exit."))

const configShow = Command.make(
  "config",
  { config: configFile },
  ({ config: file }) =>
    Effect.gen(function* () {
      const config = yield* loadOrExit(file)
      const shown = {
        ...config,
        database: {
          ...config.database,
          ...(config.database.url !== undefined ? { url: redactUrl(config.database.url) } : {}),
        },
        // The webhook secret is Redacted (printed as "<redacted>"); a URL may carry a password.
        channels: {
          ...config.channels,
          api: {
            ...config.channels.api,
            ...(config.channels.api.webhookUrl !== undefined
              ? { webhookUrl: redactUrl(config.channels.api.webhookUrl) }
              : {}),
          },
        },
      }
      yield* Console.log(JSON.stringify(shown, null, 2))
    }),
).pipe(
  Command.withDescription("Print the effective configuration (passwords and secrets redacted)."),
)

/**
 * Run a one-shot command's effect with the services `layer` builds from the configuration;
 * only warnings and errors are logged, so the command's own output stays readable.
 */
const withServices =
  <ROut, LE>(layer: (config: ChorusConfig) => Layer.Layer<ROut, LE>) =>
  <A, E>(file: Option.Option<string>, use: Effect.Effect<A, E, ROut>) =>
    Effect.gen(function* () {
      const config = yield* loadOrExit(file)
      return yield* use.pipe(
        Effect.provide(layer(config)),
        orExit,
        withLogging({ ...config, log: { ...config.log, level: "warning" } }),
      )
    })

const withBus = withServices(CoreLive)

const dlqList = Command.make(
  "list",
  {
    config: configFile,
    consumer: Options.text("consumer").pipe(
      Options.withDescription("Only this consumer's dead letters"),
      Options.optional,
    ),
    limit: Options.integer("limit").pipe(Options.withDefault(100)),
  },
  ({ config, consumer, limit }) =>
    withBus(
      config,
      Effect.gen(function* () {
        const bus = yield* Bus
        const letters = yield* bus.deadLetters.list({
          limit,
          ...(Option.isSome(consumer) ? { consumer: consumer.value } : {}),
        })
        for (const l of letters) {
          yield* Console.log(
            JSON.stringify({
              id: l.id,
              deadAt: l.deadAt.toISOString(),
              stream: l.stream,
              consumer: l.consumer,
              subject: l.subject,
              messageId: l.messageId,
              deliveries: l.deliveries,
              reason: l.reason,
              bytes: l.data.byteLength,
            }),
          )
        }
        if (letters.length === 0) yield* Console.log("no dead letters")
      }),
    ),
).pipe(Command.withDescription("List dead letters, oldest first, one JSON object per line."))

const idArg = Args.text({ name: "id" }).pipe(Args.withDescription("Dead letter id"))

const dlqReplay = Command.make(
  "replay",
  { config: configFile, id: idArg },
  ({ config, id }) =>
    withBus(
      config,
      Effect.gen(function* () {
        const bus = yield* Bus
        const ack = yield* bus.deadLetters.replay(id)
        yield* Console.log(`replayed ${id} as ${ack.stream}#${ack.seq}`)
      }),
    ),
).pipe(Command.withDescription("Deliver a dead letter again to the consumer that failed it."))

const dlqDiscard = Command.make(
  "discard",
  { config: configFile, id: idArg },
  ({ config, id }) =>
    withBus(
      config,
      Effect.gen(function* () {
        const bus = yield* Bus
        yield* bus.deadLetters.discard(id)
        yield* Console.log(`discarded ${id}`)
      }),
    ),
).pipe(Command.withDescription("Delete a dead letter for good."))

const deadLetters = Command.make("dead-letters").pipe(
  Command.withDescription("Messages a consumer gave up on: list, replay, discard."),
  Command.withSubcommands([dlqList, dlqReplay, dlqDiscard]),
)

/** The token store (migrations applied first, so a fresh data dir works). */
const withTokens = withServices((config) =>
  ApiTokens.Default.pipe(Layer.provide(StorageLive(config)))
)

const tokenCreate = Command.make(
  "create",
  {
    config: configFile,
    name: Options.text("name").pipe(
      Options.withDescription("What the token is for (unique among active tokens)"),
    ),
  },
  ({ config, name }) =>
    withTokens(
      config,
      Effect.gen(function* () {
        const tokens = yield* ApiTokens
        const { info, token } = yield* tokens.create(name)
        yield* Console.log(Redacted.value(token))
        yield* Console.error(
          `Created API token ${JSON.stringify(info.name)} (id ${info.id}). ` +
            "Store it now: it cannot be shown again.",
        )
      }),
    ),
).pipe(Command.withDescription("Create an API token and print it (once: only its hash is kept)."))

const tokenList = Command.make(
  "list",
  {
    config: configFile,
    all: Options.boolean("all").pipe(Options.withDescription("Include revoked tokens")),
  },
  ({ all, config }) =>
    withTokens(
      config,
      Effect.gen(function* () {
        const tokens = yield* ApiTokens
        const list = yield* tokens.list({ includeRevoked: all })
        for (const t of list) {
          yield* Console.log(
            JSON.stringify({
              id: t.id,
              name: t.name,
              prefix: t.prefix,
              createdAt: t.createdAt.toISOString(),
              lastUsedAt: t.lastUsedAt?.toISOString() ?? null,
              ...(t.revokedAt !== null ? { revokedAt: t.revokedAt.toISOString() } : {}),
            }),
          )
        }
        if (list.length === 0) yield* Console.log("no API tokens")
      }),
    ),
).pipe(Command.withDescription("List API tokens (never their secrets), one JSON object per line."))

const tokenRevoke = Command.make(
  "revoke",
  {
    config: configFile,
    nameOrId: Args.text({ name: "name-or-id" }).pipe(Args.withDescription("Token name or id")),
  },
  ({ config, nameOrId }) =>
    withTokens(
      config,
      Effect.gen(function* () {
        const tokens = yield* ApiTokens
        const info = yield* tokens.revoke(nameOrId)
        yield* Console.log(`revoked ${JSON.stringify(info.name)} (id ${info.id})`)
      }),
    ),
).pipe(Command.withDescription("Revoke an API token; requests with it get 401 at once."))

const token = Command.make("token").pipe(
  Command.withDescription("API bearer tokens: create, list, revoke."),
  Command.withSubcommands([tokenCreate, tokenList, tokenRevoke]),
)

const chorus = Command.make("chorus").pipe(
  Command.withDescription("Chorus: omnichannel customer communication."),
  Command.withSubcommands([
    start,
    migrateCommand,
    configShow,
    deadLetters,
    token,
    pluginCommand,
    userCommand,
    teamCommand,
  ]),
)

const cli = Command.run(chorus, { name: "chorus", version: VERSION })

cli(process.argv).pipe(
  Effect.provide(NodeContext.layer),
  // Our own logger (JSON by default) replaces the runtime's pretty one: see core/logging.
  (program) => NodeRuntime.runMain(program, { disablePrettyLogger: true }),
)
