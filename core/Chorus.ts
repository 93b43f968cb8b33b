/**
 * The Chorus host assembled from its configuration: storage (+ migrations), the bus (JetStream
 * when a NATS URL is set, else embedded in the database), the message pipeline (inbound
 * consumer, conversation actors, conversation store), plugin discovery and the HTTP server.
 */
import * as NodeFs from "node:fs"
import * as NodePath from "node:path"
import { FetchHttpClient } from "@effect/platform"
import { Duration, Effect, Layer } from "effect"
import * as ChannelAccounts from "../actors/channel/ChannelAccounts.ts"
import * as ChannelActor from "../actors/channel/ChannelActor.ts"
import * as Failures from "../actors/channel/Failures.ts"
import * as Recovery from "../actors/channel/Recovery.ts"
import * as OutboundConsumer from "../actors/channel/OutboundConsumer.ts"
import * as ConversationActor from "../actors/conversation/ConversationActor.ts"
import * as ContactCacheSync from "../actors/conversation/ContactCacheSync.ts"
import * as ConversationStore from "../actors/conversation/ConversationStore.ts"
import * as InboundConsumer from "../actors/conversation/InboundConsumer.ts"
import * as OutboundWrites from "../actors/conversation/OutboundWrites.ts"
import * as ConversationCommands from "../actors/conversation/ConversationCommands.ts"
import * as InboxQueries from "../actors/conversation/InboxQueries.ts"
import * as IdentityGraph from "./identity/IdentityGraph.ts"
import * as Replies from "../actors/conversation/Replies.ts"
import * as OperatorEvents from "../actors/routing/OperatorEvents.ts"
import * as Presence from "../actors/routing/Presence.ts"
import * as Router from "../actors/routing/Router.ts"
import { accountsLayer } from "./accounts/mod.ts"
import * as AttachmentStore from "./attachments/AttachmentStore.ts"
import { Bus } from "./bus/Bus.ts"
import * as EmbeddedBus from "./bus/EmbeddedBus.ts"
import * as JetStreamBus from "./bus/JetStreamBus.ts"
import * as CannedResponses from "./inbox/CannedResponses.ts"
import * as ApiWebhookAdapter from "./channels/ApiWebhookAdapter.ts"
import * as ChannelAdapter from "./channels/ChannelAdapter.ts"
import type { DeliverySettingsInput } from "./delivery/Policy.ts"
import * as Leadership from "./cluster/mod.ts"
import { type ChorusConfig, Config, sqliteFileOf } from "./config/ChorusConfig.ts"
import * as HttpServer from "./http/HttpServer.ts"
import { pipelineStreams } from "./pipeline/Streams.ts"
import { builtinPluginsDir } from "./plugins/BuiltinPlugins.ts"
import * as Discovery from "./plugins/Discovery.ts"
import { withPluginChannels } from "./plugins/PluginChannels.ts"
import * as PluginHost from "./plugins/PluginHost.ts"
import * as PluginTyping from "./plugins/PluginTyping.ts"
import { Database, layer as databaseLayer } from "./storage/Database.ts"
import { coreMigrationSet, migrate } from "./storage/Migrations.ts"

/** Create the data directory (and the SQLite file's directory) if missing. */
const ensureDirectories = (config: ChorusConfig) =>
  Effect.sync(() => {
    NodeFs.mkdirSync(config.dataDir, { recursive: true })
    if (config.database.url === undefined && sqliteFileOf(config) !== ":memory:") {
      NodeFs.mkdirSync(NodePath.dirname(sqliteFileOf(config)), { recursive: true })
    }
  })

/** The database, its directories created; no migrations run. */
export const DatabaseLive = (config: ChorusConfig) =>
  databaseLayer({
    url: config.database.url,
    schema: config.database.schema,
    sqliteFile: sqliteFileOf(config),
    poolSize: config.database.poolSize,
    statementTimeoutSeconds: config.database.statementTimeoutSeconds,
  }).pipe(Layer.provide(Layer.effectDiscard(ensureDirectories(config))))

/** Storage with the core's migrations applied. */
export const StorageLive = (config: ChorusConfig) =>
  Layer.effectDiscard(Database.pipe(Effect.flatMap((db) => migrate(db, coreMigrationSet)))).pipe(
    Layer.provideMerge(DatabaseLive(config)),
  )

export const BusLive = (config: ChorusConfig): Layer.Layer<Bus, unknown, Database> =>
  config.bus.natsUrl !== undefined
    ? JetStreamBus.layer({
      servers: config.bus.natsUrl.split(","),
      namespace: config.bus.namespace,
      replicas: config.bus.replicas,
      connectionName: "chorus",
    })
    : EmbeddedBus.layer({ namespace: config.bus.namespace })

/** The attachment store in `<dataDir>/attachments`, with the configured limits. */
export const AttachmentsLive = (config: ChorusConfig) =>
  AttachmentStore.layer({ dataDir: config.dataDir, limits: config.attachments })

/** Config, storage, the attachment store and the bus: what every command needs. */
export const CoreLive = (config: ChorusConfig) =>
  Layer.merge(BusLive(config), AttachmentsLive(config)).pipe(
    Layer.provideMerge(StorageLive(config)),
    Layer.provideMerge(Layer.succeed(Config, config)),
  )

/**
 * Who leads the namespace: on JetStream the holder of the KV lease `<namespace>_leases` (one
 * node), on the embedded bus this process (it owns the database file).
 */
export const ClusterLive = (config: ChorusConfig): Layer.Layer<Leadership.Leadership, unknown> =>
  config.bus.natsUrl !== undefined
    ? Leadership.leaseLayer({
      servers: config.bus.natsUrl.split(","),
      namespace: config.bus.namespace,
      ttl: Duration.seconds(config.cluster.leaseSeconds),
      replicas: config.bus.replicas,
      ...(config.cluster.nodeId !== undefined ? { nodeId: config.cluster.nodeId } : {}),
    })
    : Leadership.single(config.cluster.nodeId)

/**
 * The message pipeline: the inbound consumer (on the leader only: it is ordered per sender and
 * assumes one active instance) feeding the conversation actors, which store through the
 * conversation store. Leaves the store and the actors in the context for the API.
 */
export const PipelineLive = Leadership.leaderOnly("inbound consumer", InboundConsumer.layer()).pipe(
  Layer.provideMerge(IdentityGraph.layer()),
  Layer.provideMerge(ConversationActor.layer()),
  Layer.provideMerge(Layer.merge(ConversationStore.layer(), OutboundWrites.layer())),
)

/**
 * On JetStream (several nodes may serve one namespace): forget cached senders and open
 * conversations of contacts that another node merged, split or edited (see ContactCacheSync).
 */
export const ContactCachesLive = (
  config: ChorusConfig,
): Layer.Layer<never, unknown, Bus | ConversationStore.ConversationStore> =>
  config.bus.natsUrl !== undefined ? ContactCacheSync.layer : Layer.empty

/**
 * The channel adapters this node sends through: the built-in `api` webhook, then the channels
 * plugins provide (`contributes.channels`).
 */
export const ChannelsLive = (
  config: ChorusConfig,
): Layer.Layer<ChannelAdapter.ChannelAdapters, never, PluginHost.PluginHost> =>
  Layer.effect(
    ChannelAdapter.ChannelAdapters,
    Effect.gen(function* () {
      const api = yield* ApiWebhookAdapter.make(config.channels.api)
      const host = yield* PluginHost.PluginHost
      return withPluginChannels(ChannelAdapter.make([api]), host)
    }),
  ).pipe(Layer.provide(FetchHttpClient.layer))

export interface OutboundOptions {
  /** Delivery settings over every configured layer (tests). Default: none. */
  readonly delivery?: DeliverySettingsInput
  /** Adapters instead of `ChannelsLive(config)` (tests). */
  readonly adapters?: Layer.Layer<ChannelAdapter.ChannelAdapters, never, PluginHost.PluginHost>
  /** The outbox sweep's timing (tests). Default: every 30 s, replies queued over 30 s. */
  readonly outbox?: Replies.OutboxRelayOptions
}

/**
 * Replies: the reply service (leaves `Replies` in the context for the API), and on the leader the
 * outbox relay (at once, then a sweep every 30 s) and the outbound consumer feeding one channel
 * actor per channel account. Needs the pipeline (conversation actors and stores) and the bus.
 */
export const OutboundLive = (config: ChorusConfig, options: OutboundOptions = {}) =>
  Layer.merge(
    Leadership.leaderOnly(
      "outbound consumer",
      OutboundConsumer.layer({ ...(options.delivery ? { delivery: options.delivery } : {}) }),
    ),
    Leadership.leaderOnly(
      "outbox relay",
      Layer.scopedDiscard(Effect.forkScoped(Replies.outboxRelay(options.outbox))),
    ),
  ).pipe(
    Layer.provideMerge(Recovery.layer),
    Layer.provideMerge(ChannelActor.layer),
    Layer.provideMerge(Failures.layer),
    Layer.provideMerge(Replies.layer),
    Layer.provideMerge(
      ChannelAccounts.layer({ ...(options.delivery ? { overrides: options.delivery } : {}) }),
    ),
    Layer.provideMerge(options.adapters ?? ChannelsLive(config)),
  )

/**
 * The plugins in `plugins.dirs`, discovered (manifests checked, bad ones logged and skipped).
 */
export const PluginsLive = (config: ChorusConfig) =>
  Layer.suspend(() => {
    const builtin = builtinPluginsDir(config.dataDir)
    return Discovery.layer(
      config.plugins.dirs,
      builtin === undefined ? {} : { builtinDirs: [builtin] },
    )
  })

export interface PluginHostOptions {
  /** Reload a plugin when its files change (`chorus start --dev`). */
  readonly watch?: boolean
  /** Overrides for tests (restart schedule, heartbeat…). */
  readonly host?: PluginHost.PluginHostOptions
}

/**
 * The plugin host: activates the discovered plugins (in their configured modes, with their
 * configured settings) once the pipeline's streams exist. Leaves `PluginHost` in the context.
 */
export const PluginHostLive = (config: ChorusConfig, options: PluginHostOptions = {}) =>
  Layer.scoped(
    PluginHost.PluginHost,
    Effect.gen(function* () {
      const bus = yield* Bus
      for (const stream of pipelineStreams) yield* bus.ensureStream(stream)
      const discovered = yield* Discovery.DiscoveredPlugins
      return yield* PluginHost.make(discovered, {
        mode: config.plugins.mode,
        modes: config.plugins.modes,
        settings: config.plugins.settings,
        maxHeapMb: config.plugins.maxHeapMb,
        runtimeDir: NodePath.join(config.dataDir, "plugins-runtime"),
        ...(config.plugins.deno !== undefined ? { denoPath: config.plugins.deno } : {}),
        ...(options.watch === true ? { watch: true } : {}),
        ...options.host,
      })
    }),
  ).pipe(Layer.provide([FetchHttpClient.layer, PluginsLive(config)]))

/**
 * Operators and the inbox: accounts (sign-in, teams), conversation commands (status,
 * assignment, notes), the inbox's queries and canned answers. Needs the pipeline.
 */
export const InboxLive = (config: ChorusConfig) =>
  Layer.mergeAll(ConversationCommands.layer, InboxQueries.layer, CannedResponses.layer).pipe(
    Layer.provideMerge(
      accountsLayer({
        sessions: {
          idleTimeout: Duration.hours(config.auth.sessionIdleHours),
          absoluteTimeout: Duration.days(config.auth.sessionMaxDays),
        },
      }),
    ),
  )

/**
 * The queue: the router (assignment, re-queue, snooze, places in line), operator events and
 * presence. Needs the inbox and replies (the router can tell customers their place).
 */
export const RoutingLive = (config: ChorusConfig) =>
  Presence.layer({ grace: Duration.seconds(config.routing.offlineAfterSeconds) }).pipe(
    Layer.provideMerge(OperatorEvents.layer),
    Layer.provideMerge(
      Router.layer({
        autoAssign: config.routing.autoAssign,
        answerTimeout: Duration.seconds(config.routing.answerTimeoutSeconds),
        queueMessage: config.routing.queueMessage,
      }),
    ),
  )

/** The whole server. */
export const ServerLive = (
  config: ChorusConfig,
  options: { readonly outbound?: OutboundOptions; readonly plugins?: PluginHostOptions } = {},
) =>
  HttpServer.layer(config.http).pipe(
    Layer.provideMerge(RoutingLive(config)),
    Layer.provideMerge(OutboundLive(config, options.outbound)),
    Layer.provideMerge(PluginTyping.layer),
    Layer.provideMerge(PluginHostLive(config, options.plugins)),
    Layer.provideMerge(InboxLive(config)),
    Layer.provideMerge(ContactCachesLive(config)),
    Layer.provideMerge(PipelineLive),
    Layer.provideMerge(ClusterLive(config)),
    Layer.provideMerge(CoreLive(config)),
  )
