/**
 * The plugin host: runs every discovered plugin as a supervised actor that owns its versions.
 *
 * A plugin *version* (a generation) is one run of its entry module in a guest (`GuestProcess`:
 * in-process, a worker thread, or a Deno subprocess) that talks to the host over frames
 * (`guest/Protocol.ts`). The host keeps what must outlive a version:
 *
 * - **Consumers.** A plugin's durable bus consumers live in the host. Each delivery waits at the
 *   plugin's gate, goes to the current version, and is acknowledged when the plugin's handler
 *   resolves. A reload closes the gate, lets the deliveries in flight finish, stops the old
 *   version, starts the new one and hands it the same consumers: no message lost or handled twice.
 * - **Routes and channels.** HTTP requests to `/plugins/<id>/…` and replies for the plugin's
 *   channels wait at the same gate while a version changes.
 * - **Supervision.** A version that crashes, exits, stops answering pings or fails to activate
 *   is restarted under a Schedule (exponential backoff); after too many failures the plugin is
 *   marked `failed` and its consumers are closed (their messages stay on the bus). Nothing a
 *   plugin does stops the host or another plugin (in-process plugins excepted: docs/plugins.md).
 *
 * Operators enable, disable and reload plugins through `GET/POST /api/v1/plugins…` and
 * `chorus plugin …`; a disabled plugin stays disabled across restarts (`chorus_plugin_state`).
 */
import * as NodeFs from "node:fs"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import { pathToFileURL } from "node:url"
import { type HttpClient, HttpClientRequest, Socket } from "@effect/platform"
import {
  Cause,
  Context,
  Data,
  Deferred,
  Duration,
  Effect,
  Either,
  Exit,
  Fiber,
  Layer,
  Option,
  ParseResult,
  Queue,
  Redacted,
  Runtime,
  Schedule,
  Schema,
  Scope,
} from "effect"
import { InboundMessage, inboundMessageId } from "../../schemas/Inbound.ts"
import { inboundJson } from "../../schemas/Wire.ts"
import { DeliveryReceipt } from "../../schemas/Outbound.ts"
import type { DeliverySettings } from "../../schemas/DeliverySettings.ts"
import * as Receipts from "../../actors/channel/Receipts.ts"
import { MANIFEST_FILE, type PluginManifest } from "../../schemas/PluginManifest.ts"
import { onlineOperatorsFor } from "../accounts/Availability.ts"
import {
  openConversationOf,
  publishTyping,
  typingLimiter,
  type TypingRoute,
} from "../inbox/Typing.ts"
import { AttachmentStore } from "../attachments/AttachmentStore.ts"
import { Bus, type ConsumerSpec, Disposition } from "../bus/Bus.ts"
import { describeIssues } from "../http/DecodeErrors.ts"
import { inboundKey, inboundSubject } from "../pipeline/Streams.ts"
import { Database } from "../storage/Database.ts"
import { type LoadedManifest, loadManifest, type ManifestInvalid } from "./Manifest.ts"
import type { DiscoveryResult } from "./Discovery.ts"
import type { GuestSendResult, PluginMode, SettingValue } from "./guest/Api.ts"
import type { GuestInit, WireMessage } from "./guest/Protocol.ts"
import { defaultDenoPath, entryProblem, type GuestProcess, startGuest } from "./GuestProcess.ts"
import * as GuestRpc from "./GuestRpc.ts"
import { type HostApi, make as makeHostApi } from "./HostApi.ts"
import { HOST_API_VERSION } from "./HostApiVersion.ts"
import { checkAttachments, checkChannel, checkRoute } from "./Permissions.ts"
import { type MetricKind, PluginMetrics } from "./PluginMetrics.ts"
import { runPluginMigrations } from "./PluginMigrations.ts"

export type PluginState =
  | "starting"
  | "active"
  | "reloading"
  | "restarting"
  | "stopping"
  | "disabled"
  | "failed"
  | "refused"

export interface PluginStatus {
  readonly id: string
  readonly version: string | null
  readonly name: string | null
  readonly kind: string | null
  readonly dir: string
  readonly mode: PluginMode
  readonly state: PluginState
  readonly enabled: boolean
  /** Versions started since the host started (1 after the first activation). */
  readonly generation: number
  /** Restarts after a failure since the host started. */
  readonly restarts: number
  readonly activeSince: string | null
  readonly lastError: { readonly message: string; readonly at: string } | null
  /** Manifest problems of a refused plugin. */
  readonly problems: ReadonlyArray<{ readonly path: string; readonly message: string }>
  readonly counters: {
    readonly delivered: number
    readonly deliveryErrors: number
    readonly requests: number
    readonly requestErrors: number
    readonly sends: number
    readonly sendErrors: number
  }
  readonly inFlight: number
  readonly consumers: ReadonlyArray<
    { readonly name: string; readonly stream: string; readonly filter: string | null }
  >
  readonly routes: ReadonlyArray<{ readonly method: string; readonly path: string }>
  readonly channels: ReadonlyArray<string>
  readonly permissions: PluginManifest["permissions"] | null
  readonly settings: Readonly<Record<string, SettingValue | undefined>>
  readonly metrics: ReturnType<PluginMetrics["snapshot"]>
}

/** A message a channel plugin handed in does not fit `InboundMessage`; nothing was published. */
export class InboundInvalid extends Data.TaggedError("InboundInvalid")<{
  readonly plugin: string
  readonly problems: string
}> {
  override get message() {
    return `inbound message from plugin ${this.plugin} is invalid: ${this.problems}`
  }
}

/** A delivery receipt a channel plugin reported does not fit `DeliveryReceipt`; nothing changed. */
export class ReceiptInvalid extends Data.TaggedError("ReceiptInvalid")<{
  readonly plugin: string
  readonly problems: string
}> {
  override get message() {
    return `delivery receipt from plugin ${this.plugin} is invalid: ${this.problems}`
  }
}

const decodeReceipt = Schema.decodeUnknownEither(DeliveryReceipt, { errors: "all" })
const decodeInbound = Schema.decodeUnknownEither(InboundMessage, {
  errors: "all",
  onExcessProperty: "error",
})

export class PluginNotFound extends Data.TaggedError("PluginNotFound")<{ readonly id: string }> {
  override get message() {
    return `no plugin ${this.id}`
  }
}

/** The operation does not apply in the plugin's state (e.g. reloading a disabled plugin). */
export class PluginConflict extends Data.TaggedError("PluginConflict")<{
  readonly id: string
  readonly reason: string
}> {
  override get message() {
    return `plugin ${this.id}: ${this.reason}`
  }
}

/** Setting values that do not fit the manifest's settings. */
export class SettingsInvalid extends Data.TaggedError("SettingsInvalid")<{
  readonly id: string
  readonly problems: ReadonlyArray<string>
}> {
  override get message() {
    return `settings of plugin ${this.id} are invalid: ${this.problems.join("; ")}`
  }
}

export interface PluginRequest {
  readonly method: string
  readonly path: string
  readonly query: Readonly<Record<string, string>>
  readonly headers: Readonly<Record<string, string>>
  readonly body: Uint8Array
}

export interface PluginResponse {
  readonly status: number
  readonly headers: Readonly<Record<string, string>>
  readonly body: Uint8Array
}

/** A reply to send through a plugin's channel (the guest's `GuestOutgoing`). */
export type PluginOutgoing = Readonly<Record<string, unknown>> & { readonly channel: string }

/** What a plugin's channel `send` answered (the guest's `GuestSendResult`). */
export type PluginSendResult = GuestSendResult

/** Run a plugin WebSocket connection on an upgraded socket, until it ends. */
export type SocketSession = (socket: Socket.Socket) => Effect.Effect<void>

export interface PluginHostShape {
  readonly list: Effect.Effect<ReadonlyArray<PluginStatus>>
  readonly status: (id: string) => Effect.Effect<PluginStatus, PluginNotFound>
  readonly enable: (id: string) => Effect.Effect<PluginStatus, PluginNotFound>
  readonly disable: (id: string) => Effect.Effect<PluginStatus, PluginNotFound>
  /** Stop the running version once it has finished its work in hand, then start the files' version. */
  readonly reload: (id: string) => Effect.Effect<PluginStatus, PluginNotFound | PluginConflict>
  /** Store setting values (validated against the manifest) and reload the plugin with them. */
  readonly setSettings: (
    id: string,
    values: Readonly<Record<string, unknown>>,
  ) => Effect.Effect<PluginStatus, PluginNotFound | PluginConflict | SettingsInvalid>
  /** The session of a plugin's WebSocket route (`"websocket": true`); `None` when none matches. */
  readonly openSocket: (request: PluginRequest) => Effect.Effect<Option.Option<SocketSession>>
  /** Serve `/plugins/<id>/…`; `None` when no plugin declares that route. */
  readonly handleRequest: (request: PluginRequest) => Effect.Effect<Option.Option<PluginResponse>>
  /** The channels plugins declare (`contributes.channels`), with their plugin and capabilities. */
  readonly channels: () => ReadonlyArray<{
    readonly plugin: string
    readonly channel: string
    readonly capabilities: {
      readonly maxTextLength: number
      readonly attachments: boolean
      readonly buttons: boolean
    }
    /** The channel's delivery defaults (its provider's limits), if it declares them. */
    readonly delivery?: DeliverySettings | undefined
  }>
  /** Send through the plugin that registered `channel`; waits while the plugin changes version. */
  readonly send: (
    channel: string,
    message: PluginOutgoing,
  ) => Effect.Effect<PluginSendResult, PluginUnavailable>
  /**
   * Show the customer on `channel` that an operator is typing, through the channel plugin's
   * `typing` handler; best effort (nothing when the plugin has none or is changing version).
   */
  readonly typing: (channel: string, to: PluginTypingTarget) => Effect.Effect<void>
  /** Prometheus text of every plugin's metrics. */
  readonly prometheus: () => string
}

export interface PluginTypingTarget {
  readonly account: string
  readonly externalId: string
  readonly conversationId: string
}

/** No running version of the plugin could take the call. */
export class PluginUnavailable extends Data.TaggedError("PluginUnavailable")<{
  readonly id: string
  readonly reason: string
}> {
  override get message() {
    return `plugin ${this.id} is unavailable: ${this.reason}`
  }
}

export class PluginHost extends Context.Tag("chorus/core/plugins/PluginHost")<
  PluginHost,
  PluginHostShape
>() {}

export interface PluginHostOptions {
  /** Mode of plugins without their own entry in `modes`. Default `worker`. */
  readonly mode?: PluginMode
  readonly modes?: Readonly<Record<string, PluginMode>>
  /** Setting values by plugin (the config file's `plugins.settings`). */
  readonly settings?: Readonly<Record<string, Readonly<Record<string, unknown>>>>
  readonly denoPath?: string
  /** Heap cap of a worker or Deno plugin, MiB. Default 256. */
  readonly maxHeapMb?: number
  /** Where the guest runtime file and Deno's cache go. Default: the OS temp dir. */
  readonly runtimeDir?: string
  /** Delays between restarts after failures; when it ends the plugin is `failed`. Default: 0.5 s doubling to 30 s, 5 restarts. */
  readonly restartSchedule?: Schedule.Schedule<unknown, unknown>
  /** Running this long without failing resets the restart schedule. Default 60 s. */
  readonly stableAfter?: Duration.DurationInput
  /** How often a worker or Deno plugin is pinged, and how long it has to answer. Default 5 s / 10 s. */
  readonly heartbeat?: {
    readonly interval: Duration.DurationInput
    readonly timeout: Duration.DurationInput
  }
  /** How long a stopping version may take to finish its deliveries in flight. Default 30 s. */
  readonly drainTimeout?: Duration.DurationInput
  readonly activateTimeout?: Duration.DurationInput
  /** How long a request or a reply waits for a plugin that is changing version. Default 15 s. */
  readonly waitTimeout?: Duration.DurationInput
  /** Reload a plugin when a file in its directory changes (`chorus start --dev`). */
  readonly watch?: boolean
  /** Start enabled plugins when the host starts. Default true. */
  readonly autoStart?: boolean
}

// ---------------------------------------------------------------------------------------------
// Internal state

interface Generation {
  readonly n: number
  readonly guest: GuestProcess
  rpc: GuestRpc.GuestRpc
  /** Stopped on purpose (reload, disable): its exit is not a failure. */
  stopping: boolean
  /** Why the host killed it (no answer to pings). */
  killedBecause: string | undefined
  heartbeat: Fiber.RuntimeFiber<unknown, unknown> | undefined
}

interface Binding {
  readonly gen: Generation
  readonly handler: number
  /** A channel's `typing` handler (operator typing shown to the customer), if it has one. */
  readonly typing?: number
}

interface ConsumerEntry {
  readonly name: string
  readonly key: string
  readonly spec: ConsumerSpec
  readonly scope: Scope.CloseableScope
  binding: Binding | undefined
  closing: boolean
}

interface Route {
  readonly method: string
  readonly path: string
  readonly websocket: boolean
  readonly pattern: RegExp
  readonly params: ReadonlyArray<string>
  binding: Binding | undefined
}

interface OpenSocket {
  readonly gen: Generation
  readonly write: (
    chunk: Uint8Array | string | Socket.CloseEvent,
  ) => Effect.Effect<void, Socket.SocketError>
}

interface Slot {
  readonly id: string
  readonly dir: string
  loaded: LoadedManifest | undefined
  problems: ReadonlyArray<{ readonly path: string; readonly message: string }>
  enabled: boolean
  state: PluginState
  gen: Generation | undefined
  generations: number
  restarts: number
  activeSince: number | undefined
  lastError: { message: string; at: number } | undefined
  open: boolean
  /** Fibers waiting for the gate to open or for the plugin to go. */
  waiters: Set<() => void>
  inFlight: number
  consumers: Map<string, ConsumerEntry>
  routes: Array<Route>
  channels: Map<string, Binding>
  /** Open WebSocket connections to the plugin's routes, by connection id. */
  sockets: Map<string, OpenSocket>
  hostApi: HostApi | undefined
  settings: Record<string, SettingValue | undefined>
  storedSettings: Record<string, unknown>
  readonly metrics: PluginMetrics
  readonly lock: Effect.Semaphore
  restartDriver: Schedule.ScheduleDriver<unknown, unknown, never> | undefined
  counters: {
    delivered: number
    deliveryErrors: number
    requests: number
    requestErrors: number
    sends: number
    sendErrors: number
  }
}

const now = () => Date.now()
const iso = (ms: number | undefined) => (ms === undefined ? null : new Date(ms).toISOString())

const wake = (slot: Slot) => {
  for (const w of slot.waiters) w()
  slot.waiters.clear()
}

const setOpen = (slot: Slot, open: boolean) => {
  slot.open = open
  if (open) wake(slot)
}

/** Wait until the gate opens, the plugin goes for good, or `deadline` (epoch ms) passes. */
const awaitGate = (slot: Slot, deadline: number | undefined) =>
  Effect.async<void>((resume) => {
    const done = () => {
      clearTimeout(timer)
      resume(Effect.void)
    }
    const timer = deadline === undefined ? undefined : setTimeout(() => {
      slot.waiters.delete(done)
      resume(Effect.void)
    }, Math.max(0, deadline - now()))
    slot.waiters.add(done)
    return Effect.sync(() => {
      clearTimeout(timer)
      slot.waiters.delete(done)
    })
  })

/**
 * A call into the plugin's running version, counted as work in hand: a stopping version finishes
 * these before it goes (`stopVersion` waits for `inFlight` to reach 0).
 */
const callInHand = (
  slot: Slot,
  binding: Binding,
  op: string,
  args: ReadonlyArray<unknown>,
  timeout?: Duration.DurationInput,
) =>
  Effect.suspend(() => {
    slot.inFlight++
    return binding.gen.rpc.call(op, args, timeout).pipe(
      Effect.either,
      Effect.ensuring(Effect.sync(() => {
        slot.inFlight--
        if (slot.inFlight === 0) wake(slot)
      })),
    )
  })

/** The plugin will not take work again without an operator (or a restart) bringing it back. */
const isDown = (slot: Slot) =>
  slot.state === "disabled" || slot.state === "failed" || slot.state === "refused"

/** Declared paths compiled once: requests match against them on every call. */
const compiledRoutes = new Map<string, { pattern: RegExp; params: ReadonlyArray<string> }>()

const routePattern = (path: string) => {
  const known = compiledRoutes.get(path)
  if (known !== undefined) return known
  const params: Array<string> = []
  const source = path
    .split("/")
    .map((segment) => {
      const m = /^\{([A-Za-z_][A-Za-z0-9_]*)\}$/.exec(segment)
      if (m) {
        params.push(m[1]!)
        return "([^/]+)"
      }
      return segment.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")
    })
    .join("/")
  const compiled = { pattern: new RegExp(`^${source}$`), params }
  compiledRoutes.set(path, compiled)
  return compiled
}

/** Setting values checked against the manifest: defaults, then config, then API-set values. */
export const resolveSettings = (
  manifest: PluginManifest,
  ...layers: ReadonlyArray<Readonly<Record<string, unknown>> | undefined>
): Either.Either<Record<string, SettingValue | undefined>, ReadonlyArray<string>> => {
  const problems: Array<string> = []
  const declared = new Map(manifest.contributes.settings.map((s) => [s.key, s]))
  const values: Record<string, SettingValue | undefined> = {}
  for (const s of manifest.contributes.settings) values[s.key] = s.default
  for (const layer of layers) {
    for (const [key, value] of Object.entries(layer ?? {})) {
      const setting = declared.get(key)
      if (setting === undefined) {
        problems.push(
          `${key}: no such setting (declared: ${[...declared.keys()].join(", ") || "none"})`,
        )
        continue
      }
      if (value === null) {
        values[key] = setting.default
        continue
      }
      const ok = setting.type === "string"
        ? typeof value === "string"
        : setting.type === "boolean"
        ? typeof value === "boolean"
        : setting.type === "integer"
        ? Number.isInteger(value)
        : typeof value === "number" && Number.isFinite(value)
      if (!ok) {
        problems.push(
          `${key}: expected ${
            setting.type === "integer" ? "an integer" : `a ${setting.type}`
          }, got ${JSON.stringify(value)}`,
        )
        continue
      }
      if (setting.enum !== undefined && !setting.enum.includes(value as string | number)) {
        problems.push(
          `${key}: expected one of ${setting.enum.map((e) => JSON.stringify(e)).join(", ")}, got ${
            JSON.stringify(value)
          }`,
        )
        continue
      }
      values[key] = value as SettingValue
    }
  }
  for (const s of manifest.contributes.settings) {
    if (s.required && values[s.key] === undefined) problems.push(`${s.key}: required and not set`)
  }
  return problems.length > 0 ? Either.left(problems) : Either.right(values)
}

const toWire = (m: {
  stream: string
  seq: number
  subject: string
  id: string
  key: string | undefined
  headers: Readonly<Record<string, string>>
  data: Uint8Array
  deliveryCount: number
  publishedAt: Date
}): WireMessage => ({
  stream: m.stream,
  seq: m.seq,
  subject: m.subject,
  id: m.id,
  key: m.key,
  headers: m.headers,
  data: m.data,
  deliveryCount: m.deliveryCount,
  publishedAt: m.publishedAt.getTime(),
})

const CONSUMER_NAME = /^[A-Za-z0-9_-]{1,64}$/
const MAX_RESPONSE_BYTES = 16 * 1024 * 1024

const asRecord = (value: unknown): Record<string, unknown> =>
  typeof value === "object" && value !== null ? (value as Record<string, unknown>) : {}

// ---------------------------------------------------------------------------------------------

export const make = (discovered: DiscoveryResult, options: PluginHostOptions = {}) =>
  Effect.gen(function* () {
    const database = yield* Database
    /** Customers' typing signals: one every two seconds per person. */
    const customerTyping = typingLimiter()
    yield* Bus // the host API reaches it; fail early if missing
    const runtime = yield* Effect.runtime<Bus | Database | HttpClient.HttpClient>()
    const hostScope = yield* Effect.scope
    const attachments = yield* Effect.serviceOption(AttachmentStore)
    const runExit = Runtime.runPromiseExit(runtime)
    const forkDaemon = <A, E>(effect: Effect.Effect<A, E, any>) =>
      Runtime.runFork(runtime)(effect as Effect.Effect<A, E, Bus | Database>)

    const defaultMode: PluginMode = options.mode ?? "worker"
    const denoPath = options.denoPath ?? defaultDenoPath()
    const maxHeapMb = options.maxHeapMb ?? 256
    const runtimeDir = options.runtimeDir ?? NodePath.join(NodeOs.tmpdir(), "chorus-plugins")
    const restartSchedule = options.restartSchedule ??
      Schedule.exponential("500 millis").pipe(
        Schedule.union(Schedule.spaced("30 seconds")),
        Schedule.intersect(Schedule.recurs(5)),
      )
    const stableAfter = Duration.toMillis(options.stableAfter ?? "60 seconds")
    const heartbeat = options.heartbeat ?? { interval: "5 seconds", timeout: "10 seconds" }
    const drainTimeout = Duration.toMillis(options.drainTimeout ?? "30 seconds")
    const activateTimeout = options.activateTimeout ?? "30 seconds"
    const waitTimeout = Duration.toMillis(options.waitTimeout ?? "15 seconds")

    // Stored state: disabled plugins and API-set settings.
    const stored = yield* database.query(
      "plugin state",
      (db) => db.selectFrom("chorus_plugin_state").selectAll().execute(),
    ).pipe(Effect.orDie)
    const storedById = new Map(stored.map((r) => [r.plugin, r]))

    const modeOf = (id: string): PluginMode => options.modes?.[id] ?? defaultMode

    const slots = new Map<string, Slot>()
    const newSlot = (id: string, dir: string, loaded: LoadedManifest | undefined): Slot => {
      const row = storedById.get(id)
      let storedSettings: Record<string, unknown> = {}
      try {
        storedSettings = asRecord(JSON.parse(row?.settings ?? "{}"))
      } catch {
        storedSettings = {}
      }
      return {
        id,
        dir,
        loaded,
        problems: [],
        enabled: row === undefined ? true : Number(row.enabled) === 1,
        state: "disabled",
        gen: undefined,
        generations: 0,
        restarts: 0,
        activeSince: undefined,
        lastError: undefined,
        open: false,
        waiters: new Set(),
        inFlight: 0,
        consumers: new Map(),
        routes: [],
        channels: new Map(),
        sockets: new Map(),
        hostApi: undefined,
        settings: {},
        storedSettings,
        metrics: new PluginMetrics(id),
        lock: Effect.unsafeMakeSemaphore(1),
        restartDriver: undefined,
        counters: {
          delivered: 0,
          deliveryErrors: 0,
          requests: 0,
          requestErrors: 0,
          sends: 0,
          sendErrors: 0,
        },
      }
    }
    for (const p of discovered.plugins) slots.set(p.manifest.id, newSlot(p.manifest.id, p.dir, p))
    for (const r of discovered.refused) {
      const id = r.id ?? NodePath.basename(r.dir)
      if (slots.has(id)) continue
      const slot = newSlot(id, r.dir, undefined)
      slot.state = "refused"
      slot.problems = r.error.problems
      slots.set(id, slot)
    }

    const persist = (slot: Slot) =>
      database.query("plugin state", (db) =>
        db.insertInto("chorus_plugin_state")
          .values({
            plugin: slot.id,
            enabled: slot.enabled ? 1 : 0,
            settings: JSON.stringify(slot.storedSettings),
            updated_at: now(),
          })
          .onConflict((oc) =>
            oc.column("plugin").doUpdateSet({
              enabled: slot.enabled ? 1 : 0,
              settings: JSON.stringify(slot.storedSettings),
              updated_at: now(),
            })
          )
          .execute()).pipe(Effect.orDie)

    const fail = (slot: Slot, message: string) =>
      Effect.sync(() => {
        slot.lastError = { message, at: now() }
      })

    const logFor = (slot: Slot) => Effect.annotateLogs({ plugin: slot.id })
    const locked = <A, E, R>(slot: Slot, effect: Effect.Effect<A, E, R>) =>
      slot.lock.withPermits(1)(effect)
    type Needs = Bus | Database | HttpClient.HttpClient
    /** The host's services, for the operations it hands out. */
    const withHost = <A, E>(effect: Effect.Effect<A, E, Needs>): Effect.Effect<A, E> =>
      Effect.provide(effect, runtime.context)
    /** Set when the host stops: no version starts after that. */
    let closed = false

    // ------------------------------------------------------------------------------------------
    // Consumers

    const closeConsumer = (slot: Slot, entry: ConsumerEntry) =>
      Effect.gen(function* () {
        if (slot.consumers.get(entry.name) === entry) slot.consumers.delete(entry.name)
        entry.closing = true
        wake(slot)
        yield* Scope.close(entry.scope, Exit.void)
      })

    const closeAllConsumers = (slot: Slot) =>
      Effect.forEach([...slot.consumers.values()], (e) => closeConsumer(slot, e), { discard: true })

    const deliverTo =
      (slot: Slot, entry: ConsumerEntry) =>
      (message: Parameters<Parameters<HostApi["bus"]["consume"]>[1]>[0]) =>
        Effect.gen(function* () {
          const wire = toWire(message)
          while (true) {
            if (entry.closing || isDown(slot)) {
              return Disposition.Nak({
                delay: "1 second",
                reason: `plugin ${slot.id} is not running`,
              })
            }
            const binding = entry.binding
            if (!slot.open || binding === undefined || binding.gen !== slot.gen) {
              yield* awaitGate(slot, undefined)
              continue
            }
            const result = yield* callInHand(slot, binding, "deliver", [binding.handler, wire])
            if (Either.isLeft(result)) {
              if (result.left._tag === "GuestGone") continue // the next version takes it
              slot.counters.deliveryErrors++
              slot.lastError = { message: GuestRpc.describe(result.left), at: now() }
              return yield* Effect.fail(GuestRpc.describe(result.left))
            }
            slot.counters.delivered++
            const d = asRecord(result.right)
            if (typeof d["deadLetter"] === "string") {
              return Disposition.DeadLetter({ reason: d["deadLetter"] })
            }
            const nak = asRecord(d["nak"])
            if (typeof nak["delayMs"] === "number") {
              return Disposition.Nak({
                delay: Duration.millis(Math.max(0, nak["delayMs"])),
                reason: String(nak["reason"] ?? "nak by plugin"),
              })
            }
            return Disposition.Ack()
          }
        })

    const bindConsumer = (slot: Slot, gen: Generation, raw: unknown, handler: number) =>
      Effect.gen(function* () {
        const s = asRecord(raw)
        const name = s["name"]
        if (typeof name !== "string" || !CONSUMER_NAME.test(name)) {
          return yield* Effect.fail(
            new TypeError(
              `consumer name must match ${CONSUMER_NAME.source}, got ${JSON.stringify(name)}`,
            ),
          )
        }
        if (typeof s["stream"] !== "string") {
          return yield* Effect.fail(new TypeError("consumer stream must be a string"))
        }
        const ms = (
          k: string,
        ) => (typeof s[k] === "number" ? Duration.millis(s[k] as number) : undefined)
        const spec: ConsumerSpec = {
          stream: s["stream"],
          name,
          ...(typeof s["filter"] === "string" ? { filter: s["filter"] } : {}),
          ...(s["ordering"] === "key" ? { ordering: "key" as const } : {}),
          ...(typeof s["concurrency"] === "number" ? { concurrency: s["concurrency"] } : {}),
          ...(typeof s["maxDeliver"] === "number" ? { maxDeliver: s["maxDeliver"] } : {}),
          ...(ms("ackWaitMs") ? { ackWait: ms("ackWaitMs")! } : {}),
          ...(ms("handlerTimeoutMs") ? { handlerTimeout: ms("handlerTimeoutMs")! } : {}),
          ...(s["startAt"] === "new" ? { startAt: "new" as const } : {}),
        }
        const key = JSON.stringify(spec)
        const existing = slot.consumers.get(name)
        if (existing !== undefined && existing.key === key) {
          if (existing.binding?.gen === gen) {
            return yield* Effect.fail(
              new Error(`consumer ${name} is already registered by this version`),
            )
          }
          existing.binding = { gen, handler }
          return
        }
        if (existing !== undefined) yield* closeConsumer(slot, existing) // its spec changed
        const scope = yield* Scope.make()
        const entry: ConsumerEntry = {
          name,
          key,
          spec,
          scope,
          binding: { gen, handler },
          closing: false,
        }
        slot.consumers.set(name, entry)
        const started = yield* slot.hostApi!.bus.consume(spec, deliverTo(slot, entry)).pipe(
          Scope.extend(scope),
          Effect.either,
        )
        if (Either.isLeft(started)) {
          yield* closeConsumer(slot, entry)
          return yield* Effect.fail(started.left)
        }
      })

    // ------------------------------------------------------------------------------------------
    // What a guest may call

    const serveFor = (slot: Slot, gen: Generation) => {
      const host = slot.hostApi!
      const manifest = slot.loaded!.manifest
      const grants = {
        plugin: slot.id,
        permissions: manifest.permissions,
        routes: manifest.contributes.routes,
        channels: manifest.contributes.channels,
      }
      const ops: Record<string, (...args: Array<any>) => Effect.Effect<unknown, unknown, any>> = {
        "secrets.get": (name: string) =>
          host.secrets.get(String(name)).pipe(Effect.map(Redacted.value)),
        "bus.ensureStream": (spec: Record<string, unknown>) =>
          host.bus.ensureStream({
            name: String(spec["name"]),
            subjects: Array.isArray(spec["subjects"]) ? spec["subjects"].map(String) : [],
            ...(typeof spec["maxAgeMs"] === "number"
              ? { maxAge: Duration.millis(spec["maxAgeMs"]) }
              : {}),
            ...(typeof spec["duplicateWindowMs"] === "number"
              ? { duplicateWindow: Duration.millis(spec["duplicateWindowMs"]) }
              : {}),
          }),
        "bus.publish": (subject: string, data: Uint8Array, opts: Record<string, unknown>) =>
          typeof opts?.["id"] !== "string" || opts["id"] === ""
            ? Effect.fail(new TypeError("publish needs options.id (the de-duplication id)"))
            : host.bus.publish(String(subject), data, {
              id: opts["id"],
              ...(typeof opts["key"] === "string" ? { key: opts["key"] } : {}),
              ...(opts["headers"] ? { headers: opts["headers"] as Record<string, string> } : {}),
            }),
        "bus.consume": (spec: unknown, handler: number) => bindConsumer(slot, gen, spec, handler),
        "http.fetch": (url: string, init: Record<string, unknown>) =>
          Effect.gen(function* () {
            const method = String(init?.["method"] ?? "GET").toUpperCase() as "GET"
            let request = HttpClientRequest.make(method)(String(url)).pipe(
              HttpClientRequest.setHeaders(asRecord(init?.["headers"]) as Record<string, string>),
            )
            if (init?.["body"] instanceof Uint8Array) {
              // The plugin's Content-Type (JSON, a multipart boundary), not octet-stream.
              const declared = Object.entries(asRecord(init?.["headers"])).find(([name]) =>
                name.toLowerCase() === "content-type"
              )?.[1]
              request = HttpClientRequest.bodyUint8Array(
                request,
                init["body"],
                typeof declared === "string" ? declared : undefined,
              )
            }
            const response = yield* host.http.execute(request).pipe(
              Effect.timeout(
                Duration.millis(
                  typeof init?.["timeoutMs"] === "number" ? init["timeoutMs"] : 30_000,
                ),
              ),
            )
            const body = new Uint8Array(yield* response.arrayBuffer)
            if (body.length > MAX_RESPONSE_BYTES) {
              return yield* Effect.fail(
                new Error(`response larger than ${MAX_RESPONSE_BYTES} bytes`),
              )
            }
            return { status: response.status, headers: { ...response.headers }, body }
          }).pipe(Effect.scoped),
        "storage.execute": (compiled: Record<string, unknown>) =>
          host.storage.execute(compiled?.["query"]),
        "storage.kv.get": (key: string) =>
          database.query("plugin kv get", (db) =>
            db.selectFrom("chorus_plugin_kv").select("value")
              .where("plugin", "=", slot.id).where("key", "=", String(key)).executeTakeFirst())
            .pipe(
              Effect.map((row) => (row === undefined ? null : JSON.parse(row.value))),
            ),
        "storage.kv.set": (key: string, value: unknown) =>
          database.query("plugin kv set", (db) =>
            db.insertInto("chorus_plugin_kv")
              .values({
                plugin: slot.id,
                key: String(key),
                value: JSON.stringify(value ?? null),
                updated_at: now(),
              })
              .onConflict((oc) =>
                oc.columns(["plugin", "key"]).doUpdateSet({
                  value: JSON.stringify(value ?? null),
                  updated_at: now(),
                })
              )
              .execute()).pipe(Effect.asVoid),
        "storage.kv.delete": (key: string) =>
          database.query(
            "plugin kv delete",
            (db) =>
              db.deleteFrom("chorus_plugin_kv").where("plugin", "=", slot.id).where(
                "key",
                "=",
                String(key),
              )
                .execute(),
          ).pipe(Effect.asVoid),
        "storage.kv.list": (prefix: string) =>
          database.query(
            "plugin kv list",
            (db) =>
              db.selectFrom("chorus_plugin_kv").select("key").where("plugin", "=", slot.id)
                .where("key", ">=", String(prefix)).where("key", "<", `${String(prefix)}\uffff`)
                .orderBy("key").execute(),
          ).pipe(Effect.map((rows) => rows.map((r) => r.key))),
        "routes.handle": (method: string, path: string, handler: number) =>
          Effect.suspend(() => {
            const problem = checkRoute(grants, String(method), String(path))
            if (problem !== undefined) return Effect.fail(problem)
            const upper = String(method).toUpperCase()
            const route = slot.routes.find((r) => r.method === upper && r.path === path)
            if (route === undefined) {
              const { pattern, params } = routePattern(path)
              slot.routes.push({
                method: upper,
                path,
                pattern,
                params,
                websocket: false,
                binding: { gen, handler },
              })
            } else route.binding = { gen, handler }
            return Effect.void
          }),
        "attachments.put": (bytes: unknown, file: Record<string, unknown>) =>
          Effect.gen(function* () {
            const problem = checkAttachments(grants, "put")
            if (problem !== undefined) return yield* problem
            if (Option.isNone(attachments)) {
              return yield* Effect.fail(new Error("this host has no attachment store"))
            }
            if (!(bytes instanceof Uint8Array)) {
              return yield* Effect.fail(new TypeError("put(bytes, …): bytes must be a Uint8Array"))
            }
            return yield* attachments.value.put({
              bytes,
              name: String(file?.["name"] ?? "file"),
              mimeType: String(file?.["mimeType"] ?? "application/octet-stream"),
            })
          }),
        "attachments.get": (key: string) =>
          Effect.gen(function* () {
            const problem = checkAttachments(grants, "get")
            if (problem !== undefined) return yield* problem
            if (Option.isNone(attachments)) {
              return yield* Effect.fail(new Error("this host has no attachment store"))
            }
            return yield* attachments.value.get(String(key))
          }),
        "attachments.link": (key: string, ttlSeconds?: number) =>
          Effect.gen(function* () {
            const problem = checkAttachments(grants, "link")
            if (problem !== undefined) return yield* problem
            if (Option.isNone(attachments)) {
              return yield* Effect.fail(new Error("this host has no attachment store"))
            }
            const ttl = ttlSeconds === undefined || ttlSeconds === null
              ? 86_400
              : Number(ttlSeconds)
            if (!Number.isInteger(ttl) || ttl < 1 || ttl > 604_800) {
              return yield* Effect.fail(
                new RangeError(
                  "link(key, ttlSeconds): ttlSeconds must be an integer from 1 to 604800",
                ),
              )
            }
            // Only a file that exists: a link to nothing would 404 in the customer's browser.
            yield* attachments.value.get(String(key))
            return attachments.value.signedPath(String(key), ttl)
          }),
        "channels.receive": (channel: string, raw: unknown) =>
          Effect.gen(function* () {
            const problem = checkChannel(grants, String(channel))
            if (problem !== undefined) return yield* problem
            // As JSON: an `undefined` field is an absent one, whichever way the message came.
            const r = asRecord(JSON.parse(JSON.stringify(raw ?? null)))
            const when = (v: unknown) =>
              typeof v === "number"
                ? new Date(v).toISOString()
                : v === undefined
                ? new Date().toISOString()
                : v
            const decoded = decodeInbound({
              ...r,
              channel,
              sentAt: when(r["sentAt"]),
              receivedAt: when(r["receivedAt"]),
            })
            if (Either.isLeft(decoded)) {
              return yield* new InboundInvalid({
                plugin: slot.id,
                problems: describeIssues(ParseResult.ArrayFormatter.formatErrorSync(decoded.left)),
              })
            }
            const inbound = decoded.right
            const id = inboundMessageId(inbound)
            const bus = yield* Bus
            const ack = yield* bus.publish(
              inboundSubject(inbound.channel),
              new TextEncoder().encode(inboundJson(inbound)),
              {
                id,
                key: inboundKey(inbound.channel, inbound.account, inbound.sender.externalId),
                headers: { "Content-Type": "application/json" },
                local: inbound,
              },
            )
            return { id, duplicate: ack.duplicate }
          }),
        "channels.status": (channel: string, raw: unknown) =>
          Effect.gen(function* () {
            const problem = checkChannel(grants, String(channel))
            if (problem !== undefined) return yield* problem
            const r = asRecord(JSON.parse(JSON.stringify(raw ?? null)))
            const decoded = decodeReceipt({
              ...r,
              ...(typeof r["at"] === "number" ? { at: new Date(r["at"]).toISOString() } : {}),
            })
            if (Either.isLeft(decoded)) {
              return yield* new ReceiptInvalid({
                plugin: slot.id,
                problems: describeIssues(ParseResult.ArrayFormatter.formatErrorSync(decoded.left)),
              })
            }
            const result = yield* Receipts.record(
              database,
              yield* Bus,
              String(channel),
              decoded.right,
            )
            return { found: result.found, changed: result.changed }
          }),
        "routes.websocket": (path: string, handler: number) =>
          Effect.suspend(() => {
            const problem = checkRoute(grants, "GET", path, { websocket: true })
            if (problem !== undefined) return Effect.fail(problem)
            const route = slot.routes.find((r) => r.websocket && r.path === path)
            if (route === undefined) {
              const { pattern, params } = routePattern(path)
              slot.routes.push({
                method: "GET",
                path,
                pattern,
                params,
                websocket: true,
                binding: { gen, handler },
              })
            } else route.binding = { gen, handler }
            return Effect.void
          }),
        "ws.send": (connection: string, data: unknown) =>
          Effect.suspend(() => {
            const open = slot.sockets.get(String(connection))
            if (open === undefined || open.gen !== gen) {
              return Effect.fail(new Error(`connection ${connection} is closed`))
            }
            const chunk = typeof data === "string" || data instanceof Uint8Array
              ? data
              : JSON.stringify(data)
            return open.write(chunk)
          }),
        "ws.close": (connection: string, code: unknown, reason: unknown) =>
          Effect.suspend(() => {
            const open = slot.sockets.get(String(connection))
            if (open === undefined) return Effect.void
            const c = typeof code === "number" && (code === 1000 || (code >= 3000 && code <= 4999))
              ? code
              : 1000
            return open.write(
              new Socket.CloseEvent(
                c,
                typeof reason === "string" ? reason.slice(0, 120) : undefined,
              ),
            )
              .pipe(Effect.ignore)
          }),
        "channels.availability": (channel: string, account: string) =>
          Effect.gen(function* () {
            const problem = checkChannel(grants, String(channel))
            if (problem !== undefined) return yield* problem
            const online = yield* onlineOperatorsFor(database, String(channel), String(account))
            return { online, available: online > 0 }
          }),
        "channels.register": (channel: string, handler: number, typing?: number) =>
          Effect.suspend(() => {
            const problem = checkChannel(grants, String(channel))
            if (problem !== undefined) return Effect.fail(problem)
            slot.channels.set(String(channel), {
              gen,
              handler,
              ...(typeof typing === "number" ? { typing } : {}),
            })
            return Effect.void
          }),
        "channels.typing": (channel: string, raw: unknown) =>
          Effect.gen(function* () {
            const problem = checkChannel(grants, String(channel))
            if (problem !== undefined) return yield* problem
            const r = asRecord(raw)
            const route = {
              channel: String(channel),
              account: String(r["account"] ?? ""),
              externalId: String(r["externalId"] ?? ""),
            }
            if (
              !customerTyping(`${route.channel}\u0000${route.account}\u0000${route.externalId}`)
            ) {
              return false
            }
            const conversation = yield* openConversationOf(database, route)
            if (Option.isNone(conversation)) return false
            yield* publishTyping(yield* Bus, {
              conversationId: conversation.value,
              by: "customer",
              operatorId: null,
              to: route as TypingRoute,
            })
            return true
          }),
      }
      return (op: string, args: ReadonlyArray<any>): Promise<unknown> => {
        if (gen !== slot.gen || gen.stopping) {
          return Promise.reject(new Error(`this version of plugin ${slot.id} has been stopped`))
        }
        const serve = ops[op]
        if (serve === undefined) return Promise.reject(new Error(`unknown host call ${op}`))
        return runExit(
          Effect.suspend(() => serve(...args)).pipe(logFor(slot)) as Effect.Effect<
            unknown,
            unknown,
            Bus | Database
          >,
        ).then(
          (exit) => {
            if (Exit.isSuccess(exit)) return exit.value
            throw Cause.squash(exit.cause)
          },
        )
      }
    }

    const eventsFor = (slot: Slot) => (op: string, args: ReadonlyArray<any>) => {
      if (op === "log") {
        const [level, message, fields] = args
        const log = level === "debug"
          ? Effect.logDebug
          : level === "warning"
          ? Effect.logWarning
          : level === "error"
          ? Effect.logError
          : Effect.logInfo
        forkDaemon(
          log(String(message)).pipe(Effect.annotateLogs({ ...asRecord(fields), plugin: slot.id })),
        )
      } else if (op === "metric") {
        const [kind, name, help, value, labels] = args
        slot.metrics.record(
          kind as MetricKind,
          String(name),
          String(help ?? ""),
          value,
          asRecord(labels) as Record<string, string>,
        )
      }
    }

    // ------------------------------------------------------------------------------------------
    // Versions

    const stopHeartbeat = (gen: Generation) =>
      gen.heartbeat === undefined ? Effect.void : Fiber.interrupt(gen.heartbeat).pipe(Effect.asVoid)

    /** Forget the routes and channels a version registered (consumers wait for the next one). */
    const unbind = (slot: Slot, gen: Generation) => {
      // Its connections go with it: 1012 (service restart) tells clients to reconnect.
      for (const [id, open] of slot.sockets) {
        if (open.gen !== gen) continue
        slot.sockets.delete(id)
        forkDaemon(open.write(new Socket.CloseEvent(1012, "plugin restarting")).pipe(Effect.ignore))
      }
      for (const r of slot.routes) if (r.binding?.gen === gen) r.binding = undefined
      slot.routes = slot.routes.filter((r) => r.binding !== undefined)
      for (const [c, b] of slot.channels) if (b.gen === gen) slot.channels.delete(c)
    }

    const startHeartbeat = (slot: Slot, gen: Generation) => {
      if (gen.guest.mode === "inprocess") return
      gen.heartbeat = forkDaemon(
        Effect.gen(function* () {
          while (true) {
            yield* Effect.sleep(heartbeat.interval)
            const answered = yield* gen.rpc.call("ping", [], heartbeat.timeout).pipe(Effect.either)
            if (Either.isRight(answered)) continue
            if (answered.left._tag === "GuestGone") return
            gen.killedBecause = `not answering: no reply to a ping within ${
              Duration.format(Duration.decode(heartbeat.timeout))
            } (a blocked event loop?)`
            yield* Effect.logError("plugin not answering; killing it").pipe(logFor(slot))
            yield* Effect.promise(() => gen.guest.terminate())
            return
          }
        }),
      )
    }

    /** Start a version of the plugin from its files. Fails with why it could not. */
    const startVersion = (slot: Slot) =>
      Effect.gen(function* () {
        if (closed) return yield* Effect.fail("the host is stopping")
        const loaded = yield* loadManifest(slot.dir).pipe(Effect.either)
        if (Either.isLeft(loaded)) {
          slot.problems = loaded.left.problems
          return yield* Effect.fail(manifestMessage(loaded.left))
        }
        if (loaded.right.manifest.id !== slot.id) {
          return yield* Effect.fail(
            `the manifest's id changed from ${slot.id} to ${loaded.right.manifest.id}; restart Chorus to load it under its new id`,
          )
        }
        slot.problems = []
        slot.loaded = loaded.right
        const manifest = loaded.right.manifest
        const settings = resolveSettings(manifest, options.settings?.[slot.id], slot.storedSettings)
        if (Either.isLeft(settings)) {
          return yield* Effect.fail(`settings: ${settings.left.join("; ")}`)
        }
        slot.settings = settings.right
        if (manifest.contributes.migrations !== undefined) {
          const applied = yield* runPluginMigrations(
            database,
            slot.id,
            manifest.permissions.storage.tables,
            NodePath.join(slot.dir, manifest.contributes.migrations),
          ).pipe(Effect.mapError((e) => `migrations: ${e.message}`))
          if (applied.length > 0) {
            yield* Effect.logInfo("plugin migrations applied").pipe(
              Effect.annotateLogs({ migrations: applied }),
              logFor(slot),
            )
          }
        }
        slot.hostApi = yield* makeHostApi(manifest)
        const mode = modeOf(slot.id)
        const n = ++slot.generations
        const unsupported = entryProblem(loaded.right.entry, mode)
        if (unsupported !== undefined) return yield* Effect.fail(unsupported)
        const guest = yield* Effect.try({
          try: () =>
            startGuest({
              mode,
              plugin: slot.id,
              entry: loaded.right.entry,
              dir: slot.dir,
              netHosts: manifest.permissions.net,
              maxHeapMb,
              denoPath,
              runtimeDir,
              onOutput: (line) =>
                forkDaemon(
                  Effect.logInfo(line).pipe(
                    Effect.annotateLogs({ plugin: slot.id, stream: "output" }),
                  ),
                ),
            }),
          catch: (e) => `could not start a ${mode} for the plugin: ${(e as Error).message}`,
        })
        const gen: Generation = {
          n,
          guest,
          rpc: undefined as unknown as GuestRpc.GuestRpc,
          stopping: false,
          killedBecause: undefined,
          heartbeat: undefined,
        }
        gen.rpc = GuestRpc.make(slot.id, guest, serveFor(slot, gen), eventsFor(slot))
        slot.gen = gen
        void guest.exited.then((reason) => onExit(slot, gen, reason))
        const entryUrl = pathToFileURL(loaded.right.entry).href
        const init: GuestInit = {
          // In-process, the module cache would hand back the old version without a new URL.
          entry: mode === "inprocess" ? `${entryUrl}?v=${n}` : entryUrl,
          plugin: { id: slot.id, version: manifest.version, dir: slot.dir },
          hostApiVersion: HOST_API_VERSION,
          mode,
          settings: slot.settings,
          dialect: database.dialect,
        }
        const activated = yield* gen.rpc.call("activate", [init], activateTimeout).pipe(
          Effect.either,
        )
        if (Either.isLeft(activated)) {
          gen.stopping = true
          unbind(slot, gen)
          slot.gen = undefined
          yield* Effect.promise(() => guest.terminate())
          return yield* Effect.fail(`activate failed: ${GuestRpc.describe(activated.left)}`)
        }
        // Consumers this version did not ask for again are closed (their messages stay on the bus).
        for (const entry of [...slot.consumers.values()]) {
          if (entry.binding?.gen !== gen) yield* closeConsumer(slot, entry)
        }
        slot.state = "active"
        slot.activeSince = now()
        setOpen(slot, true)
        startHeartbeat(slot, gen)
        yield* Effect.logInfo("plugin active").pipe(
          Effect.annotateLogs({ version: manifest.version, mode, generation: n }),
          logFor(slot),
        )
      })

    /** Stop the running version after its deliveries in flight have finished (or the drain timed out). */
    const stopVersion = (slot: Slot) =>
      Effect.gen(function* () {
        setOpen(slot, false)
        const gen = slot.gen
        if (gen === undefined) return
        const deadline = now() + drainTimeout
        while (slot.inFlight > 0 && now() < deadline) yield* awaitGate(slot, deadline)
        if (slot.inFlight > 0) {
          yield* Effect.logWarning(
            "plugin did not finish its deliveries in time; they will be redelivered",
          ).pipe(
            Effect.annotateLogs({ inFlight: slot.inFlight }),
            logFor(slot),
          )
        }
        gen.stopping = true
        yield* stopHeartbeat(gen)
        yield* gen.rpc.call("deactivate", [], "5 seconds").pipe(
          Effect.tapError((e) =>
            Effect.logWarning("plugin deactivate failed").pipe(
              Effect.annotateLogs({ error: GuestRpc.describe(e) }),
              logFor(slot),
            )
          ),
          Effect.ignore,
        )
        unbind(slot, gen)
        slot.gen = undefined
        yield* Effect.promise(() => gen.guest.terminate())
      })

    /**
     * After a failed start or a crash: restart under the schedule, or give up. Returns at once;
     * the wait and the restart run on their own fiber, taking the plugin's lock only to act, so
     * an operator can disable or reload the plugin meanwhile (which cancels the restart).
     */
    const scheduleRestart = (slot: Slot, reason: string): Effect.Effect<void> =>
      Effect.gen(function* () {
        yield* fail(slot, reason)
        yield* Effect.logError("plugin failed").pipe(Effect.annotateLogs({ reason }), logFor(slot))
        if (slot.activeSince !== undefined && now() - slot.activeSince > stableAfter) {
          slot.restartDriver = undefined
        }
        slot.restartDriver ??= yield* Schedule.driver(restartSchedule)
        const driver = slot.restartDriver
        slot.state = "restarting"
        slot.activeSince = undefined
        forkDaemon(
          Effect.gen(function* () {
            const next = yield* driver.next(reason).pipe(Effect.either)
            yield* locked(
              slot,
              Effect.gen(function* () {
                if (slot.state !== "restarting" || closed) return // disabled or reloaded meanwhile
                if (Either.isLeft(next)) {
                  slot.state = "failed"
                  wake(slot)
                  yield* closeAllConsumers(slot)
                  yield* Effect.logError(
                    "plugin failed too often; it stays stopped until enabled or reloaded",
                  ).pipe(Effect.annotateLogs({ restarts: slot.restarts }), logFor(slot))
                  return
                }
                slot.restarts++
                const started = yield* startVersion(slot).pipe(Effect.either)
                if (Either.isLeft(started)) yield* scheduleRestart(slot, started.left)
              }),
            )
          }),
        )
      })

    const onExit = (slot: Slot, gen: Generation, reason: string) => {
      if (gen.stopping) return
      setOpen(slot, false)
      forkDaemon(
        slot.lock.withPermits(1)(
          Effect.gen(function* () {
            if (slot.gen !== gen) return
            yield* stopHeartbeat(gen)
            unbind(slot, gen)
            slot.gen = undefined
            yield* scheduleRestart(slot, gen.killedBecause ?? `crashed: ${reason}`)
          }),
        ),
      )
    }

    const begin = (slot: Slot) =>
      Effect.gen(function* () {
        slot.state = "starting"
        slot.restartDriver = undefined
        const started = yield* startVersion(slot).pipe(Effect.either)
        if (Either.isLeft(started)) yield* scheduleRestart(slot, started.left)
      })

    // ------------------------------------------------------------------------------------------
    // Status and control

    const statusOf = (slot: Slot): PluginStatus => {
      const m = slot.loaded?.manifest
      return {
        id: slot.id,
        version: m?.version ?? null,
        name: m?.name ?? null,
        kind: m?.kind ?? null,
        dir: slot.dir,
        mode: modeOf(slot.id),
        state: slot.state,
        enabled: slot.enabled,
        generation: slot.generations,
        restarts: slot.restarts,
        activeSince: iso(slot.activeSince),
        lastError: slot.lastError === undefined
          ? null
          : { message: slot.lastError.message, at: new Date(slot.lastError.at).toISOString() },
        problems: slot.problems,
        counters: { ...slot.counters },
        inFlight: slot.inFlight,
        consumers: [...slot.consumers.values()].map((c) => ({
          name: c.name,
          stream: c.spec.stream,
          filter: c.spec.filter ?? null,
        })),
        routes: slot.routes.map((r) => ({ method: r.method, path: r.path })),
        channels: [...slot.channels.keys()],
        permissions: m?.permissions ?? null,
        settings: slot.settings,
        metrics: slot.metrics.snapshot(),
      }
    }

    const slotOf = (id: string) =>
      Effect.suspend(() => {
        const slot = slots.get(id)
        return slot === undefined ? Effect.fail(new PluginNotFound({ id })) : Effect.succeed(slot)
      })

    const enable = (id: string) =>
      Effect.gen(function* () {
        const slot = yield* slotOf(id)
        yield* locked(
          slot,
          Effect.gen(function* () {
            slot.enabled = true
            yield* persist(slot)
            if (slot.state === "disabled" || slot.state === "failed" || slot.state === "refused") {
              yield* begin(slot)
            }
          }),
        )
        return statusOf(slot)
      })

    const disable = (id: string) =>
      Effect.gen(function* () {
        const slot = yield* slotOf(id)
        yield* locked(
          slot,
          Effect.gen(function* () {
            slot.enabled = false
            yield* persist(slot)
            if (slot.state === "refused") return
            slot.state = "stopping"
            yield* stopVersion(slot)
            slot.state = "disabled"
            slot.activeSince = undefined
            wake(slot)
            yield* closeAllConsumers(slot)
            yield* Effect.logInfo("plugin disabled").pipe(logFor(slot))
          }),
        )
        return statusOf(slot)
      })

    const reloadLocked = (slot: Slot) =>
      Effect.gen(function* () {
        if (!slot.enabled) {
          return yield* new PluginConflict({
            id: slot.id,
            reason: "it is disabled; enable it instead",
          })
        }
        slot.state = "reloading"
        yield* stopVersion(slot)
        slot.restartDriver = undefined
        const started = yield* startVersion(slot).pipe(Effect.either)
        if (Either.isLeft(started)) yield* scheduleRestart(slot, started.left)
      })

    const reload = (id: string) =>
      Effect.gen(function* () {
        const slot = yield* slotOf(id)
        yield* locked(slot, reloadLocked(slot))
        return statusOf(slot)
      })

    const setSettings = (id: string, values: Readonly<Record<string, unknown>>) =>
      Effect.gen(function* () {
        const slot = yield* slotOf(id)
        const manifest = slot.loaded?.manifest
        if (manifest === undefined) {
          return yield* new PluginConflict({ id, reason: "its manifest is not valid" })
        }
        const merged = { ...slot.storedSettings, ...values }
        for (const [k, v] of Object.entries(merged)) if (v === null) delete merged[k]
        const checked = resolveSettings(manifest, options.settings?.[id], merged)
        if (Either.isLeft(checked)) {
          return yield* new SettingsInvalid({ id, problems: checked.left })
        }
        yield* locked(
          slot,
          Effect.gen(function* () {
            slot.storedSettings = merged
            yield* persist(slot)
            if (slot.enabled && !isDown(slot)) yield* reloadLocked(slot)
            else slot.settings = checked.right
          }),
        )
        return statusOf(slot)
      })

    // ------------------------------------------------------------------------------------------
    // Requests and replies

    const handleRequest = (request: PluginRequest) =>
      Effect.gen(function* () {
        const m = /^\/plugins\/([a-z][a-z0-9]*)(\/|$)/.exec(request.path)
        const slot = m === null ? undefined : slots.get(m[1]!)
        if (slot === undefined || slot.loaded === undefined) return Option.none<PluginResponse>()
        const method = request.method.toUpperCase()
        const declared = slot.loaded.manifest.contributes.routes.find((r) =>
          !r.websocket && r.method === method && routePattern(r.path).pattern.test(request.path)
        )
        if (declared === undefined) return Option.none<PluginResponse>()
        const unavailable = (reason: string) =>
          Option.some<PluginResponse>({
            status: 503,
            headers: { "content-type": "application/json", "retry-after": "5" },
            body: new TextEncoder().encode(
              JSON.stringify({ error: "PluginUnavailable", message: reason }),
            ),
          })
        const deadline = now() + waitTimeout
        while (true) {
          if (isDown(slot)) return unavailable(`plugin ${slot.id} is ${slot.state}`)
          const route = slot.routes.find((r) =>
            !r.websocket && r.method === method && r.path === declared.path
          )
          const binding = route?.binding
          if (!slot.open || binding === undefined || binding.gen !== slot.gen) {
            if (slot.open && slot.state === "active" && route === undefined) {
              return unavailable(
                `plugin ${slot.id} declares ${method} ${declared.path} but did not register a handler`,
              )
            }
            if (now() >= deadline) return unavailable(`plugin ${slot.id} is ${slot.state}`)
            yield* awaitGate(slot, deadline)
            continue
          }
          const match = route!.pattern.exec(request.path)!
          const params: Record<string, string> = {}
          route!.params.forEach((p, i) => (params[p] = decodeURIComponent(match[i + 1]!)))
          slot.counters.requests++
          const result = yield* callInHand(
            slot,
            binding,
            "route",
            [binding.handler, { ...request, method, params }],
            Duration.millis(Math.max(1, deadline - now()) + 30_000),
          )
          if (Either.isLeft(result)) {
            if (result.left._tag === "GuestGone" && now() < deadline) continue
            slot.counters.requestErrors++
            slot.lastError = { message: GuestRpc.describe(result.left), at: now() }
            return Option.some<PluginResponse>({
              status: result.left._tag === "GuestTimeout" ? 504 : 500,
              headers: { "content-type": "application/json" },
              body: new TextEncoder().encode(JSON.stringify({
                error: result.left._tag,
                message: `plugin ${slot.id} failed to answer: ${GuestRpc.describe(result.left)}`,
              })),
            })
          }
          const r = asRecord(result.right)
          return Option.some<PluginResponse>({
            status: typeof r["status"] === "number" ? r["status"] : 200,
            headers: asRecord(r["headers"]) as Record<string, string>,
            body: r["body"] instanceof Uint8Array ? r["body"] : new Uint8Array(0),
          })
        }
      })

    /**
     * The session of a WebSocket route, if `request` is for one: the caller upgrades the request
     * and runs the session on the socket. Messages reach the plugin one at a time, in order.
     */
    const openSocket = (request: PluginRequest) =>
      Effect.sync(() => {
        const m = /^\/plugins\/([a-z][a-z0-9]*)(\/|$)/.exec(request.path)
        const slot = m === null ? undefined : slots.get(m[1]!)
        const declared = slot?.loaded?.manifest.contributes.routes.find((r) =>
          r.websocket && routePattern(r.path).pattern.test(request.path)
        )
        if (slot === undefined || declared === undefined) return Option.none<SocketSession>()
        const session: SocketSession = (socket) =>
          Effect.gen(function* () {
            const deadline = now() + waitTimeout
            let route: Route | undefined
            while (true) {
              route = slot.routes.find((r) => r.websocket && r.path === declared.path)
              if (slot.open && route?.binding !== undefined && route.binding.gen === slot.gen) break
              if (isDown(slot) || now() >= deadline || (slot.open && route === undefined)) {
                const write = yield* socket.writer
                yield* write(new Socket.CloseEvent(1013, `plugin ${slot.id} is ${slot.state}`))
                  .pipe(Effect.ignore)
                return
              }
              yield* awaitGate(slot, deadline)
            }
            const binding = route.binding!
            const match = route.pattern.exec(request.path)!
            const params: Record<string, string> = {}
            route.params.forEach((p, i) => (params[p] = decodeURIComponent(match[i + 1]!)))
            const id = `ws-${crypto.randomUUID()}`
            // The socket opens (the upgrade completes) once it runs: run it first, collecting
            // what arrives, and only then tell the plugin, whose greeting needs an open socket.
            const inbox = yield* Queue.unbounded<string | Uint8Array | null>()
            const isOpen = yield* Deferred.make<void>()
            const running = yield* socket.runRaw((data) => Queue.offer(inbox, data), {
              onOpen: Deferred.succeed(isOpen, undefined),
            }).pipe(
              Effect.either,
              // Ended without opening: let the wait below go on.
              Effect.tap(() => Deferred.succeed(isOpen, undefined)),
              // The request's fiber may be uninterruptible; these must not inherit that.
              Effect.interruptible,
              Effect.fork,
            )
            yield* Deferred.await(isOpen)
            if (Option.isSome(yield* Fiber.poll(running))) return
            const write = yield* socket.writer
            slot.sockets.set(id, { gen: binding.gen, write })
            slot.counters.requests++
            const opened = yield* binding.gen.rpc.call("ws.open", [binding.handler, id, {
              ...request,
              params,
            }], "15 seconds")
              .pipe(Effect.either)
            if (Either.isLeft(opened)) {
              slot.sockets.delete(id)
              yield* write(new Socket.CloseEvent(1008, "refused by the plugin")).pipe(Effect.ignore)
              yield* Fiber.await(running).pipe(Effect.timeout("5 seconds"), Effect.ignore)
              return
            }
            // One message at a time, in order; `null` (after the socket ended) ends the loop.
            const forward = yield* Effect.gen(function* () {
              while (true) {
                const data = yield* Queue.take(inbox)
                if (data === null) return
                yield* binding.gen.rpc.call("ws.message", [binding.handler, id, data]).pipe(
                  Effect.ignore,
                )
              }
            }).pipe(Effect.interruptible, Effect.fork)
            const ended = yield* Fiber.join(running)
            const code = Either.isRight(ended)
              ? 1000
              : Socket.SocketCloseError.is(ended.left)
              ? ended.left.code
              : 1006
            // What arrived before the end is still handed over, then the close.
            yield* Queue.offer(inbox, null)
            yield* Fiber.join(forward).pipe(
              Effect.timeout("10 seconds"),
              Effect.catchAll(() => Fiber.interrupt(forward)),
            )
            slot.sockets.delete(id)
            yield* binding.gen.rpc.call("ws.close", [binding.handler, id, code], "5 seconds").pipe(
              Effect.ignore,
            )
          }).pipe(Effect.scoped)
        return Option.some(session)
      })

    const channelOwners = () => {
      const out: Array<
        {
          plugin: string
          channel: string
          capabilities: { maxTextLength: number; attachments: boolean; buttons: boolean }
          delivery?: DeliverySettings | undefined
        }
      > = []
      for (const slot of slots.values()) {
        for (const c of slot.loaded?.manifest.contributes.channels ?? []) {
          out.push({
            plugin: slot.id,
            channel: c.name,
            capabilities: c.capabilities,
            ...(c.delivery !== undefined ? { delivery: c.delivery } : {}),
          })
        }
      }
      return out
    }

    const send = (channel: string, message: PluginOutgoing) =>
      Effect.gen(function* () {
        const owner = channelOwners().find((c) => c.channel === channel)
        const slot = owner === undefined ? undefined : slots.get(owner.plugin)
        if (slot === undefined) {
          return yield* new PluginUnavailable({
            id: "(none)",
            reason: `no plugin provides channel ${channel}`,
          })
        }
        const deadline = now() + waitTimeout
        while (true) {
          if (isDown(slot)) {
            return yield* new PluginUnavailable({ id: slot.id, reason: `it is ${slot.state}` })
          }
          const binding = slot.channels.get(channel)
          if (!slot.open || binding === undefined || binding.gen !== slot.gen) {
            if (slot.open && binding === undefined) {
              return yield* new PluginUnavailable({
                id: slot.id,
                reason: `it did not register channel ${channel}`,
              })
            }
            if (now() >= deadline) {
              return yield* new PluginUnavailable({ id: slot.id, reason: `it is ${slot.state}` })
            }
            yield* awaitGate(slot, deadline)
            continue
          }
          slot.counters.sends++
          const result = yield* callInHand(slot, binding, "send", [binding.handler, message])
          if (Either.isLeft(result)) {
            if (result.left._tag === "GuestGone") continue
            slot.counters.sendErrors++
            slot.lastError = { message: GuestRpc.describe(result.left), at: now() }
            return {
              ok: false,
              retryable: true,
              code: "plugin",
              reason: GuestRpc.describe(result.left),
            } as const
          }
          const r = asRecord(result.right)
          if (r["ok"] === true && typeof r["externalId"] === "string") {
            return { ok: true, externalId: r["externalId"] } as const
          }
          if (r["ok"] === false) {
            return {
              ok: false,
              retryable: r["retryable"] === true,
              code: String(r["code"] ?? "error"),
              reason: String(r["reason"] ?? "the plugin reported a failure"),
              ...(typeof r["retryAfterMs"] === "number" ? { retryAfterMs: r["retryAfterMs"] } : {}),
              ...(r["unreachable"] === true ? { unreachable: true } : {}),
            } as const
          }
          slot.counters.sendErrors++
          return {
            ok: false,
            retryable: false,
            code: "plugin",
            reason:
              `plugin ${slot.id} answered send with neither { ok: true, externalId } nor { ok: false, … }`,
          } as const
        }
      })

    // ------------------------------------------------------------------------------------------
    // Start, watch, stop

    yield* Scope.addFinalizer(
      hostScope,
      Effect.sync(() => (closed = true)).pipe(
        Effect.zipRight(Effect.forEach([...slots.values()], (slot) =>
          locked(
            slot,
            Effect.gen(function* () {
              if (slot.gen === undefined && slot.consumers.size === 0) return
              slot.state = "stopping"
              yield* stopVersion(slot)
              yield* closeAllConsumers(slot)
              slot.state = "disabled"
            }),
          ), { concurrency: "unbounded", discard: true })),
      ),
    )

    if (options.autoStart !== false) {
      yield* Effect.forEach(
        [...slots.values()].filter((s) => s.state !== "refused" || s.enabled),
        (slot) =>
          locked(
            slot,
            slot.enabled && slot.state !== "refused" ? begin(slot) : Effect.sync(() => {
              if (slot.state !== "refused") slot.state = "disabled"
            }),
          ),
        { concurrency: "unbounded", discard: true },
      )
    } else {
      for (const slot of slots.values()) if (slot.state !== "refused") slot.state = "disabled"
    }

    if (options.watch === true) {
      for (const slot of slots.values()) {
        let timer: ReturnType<typeof setTimeout> | undefined
        const watcher = yield* Effect.try(() =>
          NodeFs.watch(slot.dir, { recursive: true }, (_event, file) => {
            if (file !== null && /(^|\/)(node_modules|\.git)\//.test(String(file))) return
            clearTimeout(timer)
            timer = setTimeout(() => {
              if (!slot.enabled) return
              forkDaemon(
                Effect.logInfo("plugin files changed; reloading").pipe(
                  Effect.annotateLogs({ file: String(file) }),
                  logFor(slot),
                  Effect.zipRight(locked(slot, reloadLocked(slot)).pipe(Effect.ignore)),
                ),
              )
            }, 200)
          })
        ).pipe(Effect.option)
        if (Option.isSome(watcher)) {
          yield* Scope.addFinalizer(
            hostScope,
            Effect.sync(() => {
              clearTimeout(timer)
              watcher.value.close()
            }),
          )
        }
      }
    }

    const typing = (channel: string, to: PluginTypingTarget) =>
      Effect.gen(function* () {
        const owner = channelOwners().find((c) => c.channel === channel)
        const slot = owner === undefined ? undefined : slots.get(owner.plugin)
        if (slot === undefined || isDown(slot) || !slot.open) return
        const binding = slot.channels.get(channel)
        if (binding?.typing === undefined || binding.gen !== slot.gen) return
        const result = yield* callInHand(slot, binding, "typing", [binding.typing, to], "5 seconds")
        if (Either.isLeft(result) && result.left._tag !== "GuestGone") {
          yield* Effect.logDebug("typing indicator not shown").pipe(
            Effect.annotateLogs({ plugin: slot.id, error: GuestRpc.describe(result.left) }),
          )
        }
      })

    return {
      list: Effect.sync(() =>
        [...slots.values()].sort((a, b) => (a.id < b.id ? -1 : 1)).map(statusOf)
      ),
      status: (id) => slotOf(id).pipe(Effect.map(statusOf)),
      enable: (id) => withHost(enable(id)),
      disable: (id) => withHost(disable(id)),
      reload: (id) => withHost(reload(id)),
      setSettings: (id, values) => withHost(setSettings(id, values)),
      handleRequest,
      openSocket,
      channels: channelOwners,
      send,
      typing,
      prometheus: () => [...slots.values()].map((s) => s.metrics.prometheus()).join(""),
    } satisfies PluginHostShape
  })

const manifestMessage = (error: ManifestInvalid) =>
  `invalid ${MANIFEST_FILE}: ${error.problems.map((p) => `${p.path}: ${p.message}`).join("; ")}`

/** The plugin host as a layer: needs the discovery result, the bus, the database and an HTTP client. */
export const layer = (discovered: DiscoveryResult, options: PluginHostOptions = {}) =>
  Layer.scoped(PluginHost, make(discovered, options))
