/**
 * What a plugin's code sees: the `chorus` object its `activate` receives, in plain Promises so
 * that a plugin needs no Effect (and runs the same in-process, in a worker thread or in Deno).
 * Every call is checked by the host against the plugin's manifest; an undeclared subject, host,
 * secret, table or route rejects with a `PermissionDenied` error (`error.name`) whose `field`
 * names the manifest field to add. This file holds types only.
 *
 * @example
 * ```js
 * // plugins/echo/index.js
 * export default {
 *   async activate(chorus) {
 *     await chorus.bus.consume(
 *       { stream: "events", name: "echo", filter: "events.message.received" },
 *       async (message) => {
 *         const event = message.json()
 *         await chorus.bus.publish("plugins.echo.seen", { id: event.id }, { id: `seen-${event.id}` })
 *       },
 *     )
 *     chorus.log.info("echo ready")
 *   },
 * }
 * ```
 */

/** The module a plugin's `entry` exports as `default` (or its named `activate`/`deactivate`). */
export interface PluginDefinition {
  /** Register consumers, routes and channels; the plugin takes no work before this resolves. */
  readonly activate: (chorus: Chorus) => void | Promise<void>
  /** Release what the plugin holds outside the host (timers, sockets). Host resources go by themselves. */
  readonly deactivate?: () => void | Promise<void>
}

export type SettingValue = string | number | boolean

export interface Chorus {
  readonly plugin: { readonly id: string; readonly version: string; readonly dir: string }
  /** Host API version, e.g. "1.0.0". */
  readonly hostApiVersion: string
  /** How this plugin runs: `inprocess`, `worker` (a worker thread) or `deno` (a Deno subprocess). */
  readonly mode: PluginMode
  /** Settings: manifest defaults overridden by the operator's values, already validated. */
  readonly settings: Readonly<Record<string, SettingValue | undefined>>
  readonly log: GuestLogger
  readonly secrets: { readonly get: (name: string) => Promise<string> }
  readonly bus: GuestBus
  readonly http: {
    readonly fetch: (url: string, init?: GuestRequestInit) => Promise<GuestResponse>
  }
  readonly storage: GuestStorage
  readonly routes: GuestRoutes
  readonly metrics: GuestMetrics
  readonly channels: GuestChannels
  /** The attachment store (`permissions.attachments: true`). */
  readonly attachments: GuestAttachments
}

export interface GuestStoredFile {
  /** Put it in an inbound message's attachments as `storageKey`. */
  readonly storageKey: string
  readonly name: string
  /** The type the content was checked as. */
  readonly mimeType: string
  readonly size: number
}

export interface GuestAttachments {
  /**
   * Store a file (e.g. a photo downloaded from the provider). Refused with `AttachmentRefused`
   * (`reason`: empty, too_large, program, type_mismatch, type_not_allowed) by the store's limits.
   */
  readonly put: (
    bytes: Uint8Array,
    file: { readonly name: string; readonly mimeType: string },
  ) => Promise<GuestStoredFile>
  /** A stored file's bytes (e.g. to upload a reply's attachment to the provider). */
  readonly get: (
    storageKey: string,
  ) => Promise<{ readonly bytes: Uint8Array; readonly mimeType: string; readonly size: number }>
  /**
   * A link anyone holding it may fetch the file with, until it expires: a path on this server
   * (`/api/v1/attachments/<key>?expires=…&signature=…`), for a customer's browser (the web chat
   * shows an operator's file with it). `ttlSeconds` default 86400 (one day), at most 604800.
   */
  readonly link: (storageKey: string, ttlSeconds?: number) => Promise<string>
}

export type PluginMode = "inprocess" | "worker" | "deno"

export interface GuestLogger {
  readonly debug: (message: string, fields?: Record<string, unknown>) => void
  readonly info: (message: string, fields?: Record<string, unknown>) => void
  readonly warn: (message: string, fields?: Record<string, unknown>) => void
  readonly error: (message: string, fields?: Record<string, unknown>) => void
}

// ---------------------------------------------------------------------------------------------
// Bus

export interface GuestPublishOptions {
  /** De-duplication id (`Nats-Msg-Id`): publishing the same id twice stores one message. */
  readonly id: string
  /** Ordering key for consumers with `ordering: "key"`. */
  readonly key?: string
  readonly headers?: Readonly<Record<string, string>>
}

export interface GuestStreamSpec {
  /** `plugin-<id>` or `plugin-<id>-<x>`. */
  readonly name: string
  /** Subjects under `plugins.<id>.`. */
  readonly subjects: ReadonlyArray<string>
  readonly maxAgeMs?: number
  readonly duplicateWindowMs?: number
}

export interface GuestConsumerSpec {
  /** A stream: `events`, `inbound`, `outbound`, or one of the plugin's own. */
  readonly stream: string
  /** Durable name; kept across restarts and reloads (stored as `plugin-<id>-<name>`). */
  readonly name: string
  readonly filter?: string
  /** `"key"`: one message per key at a time, in order. Default `"none"`. */
  readonly ordering?: "none" | "key"
  readonly concurrency?: number
  readonly maxDeliver?: number
  readonly ackWaitMs?: number
  readonly handlerTimeoutMs?: number
  /** A new consumer starts with every message in the stream (`all`, default) or only new ones. */
  readonly startAt?: "all" | "new"
}

export interface GuestMessage {
  readonly stream: string
  readonly seq: number
  readonly subject: string
  readonly id: string
  readonly key: string | undefined
  readonly headers: Readonly<Record<string, string>>
  readonly data: Uint8Array
  readonly deliveryCount: number
  /** Epoch milliseconds. */
  readonly publishedAt: number
  readonly text: () => string
  readonly json: () => any
}

/** What a handler returns: nothing acknowledges; a throw counts as a failed delivery (retried). */
export type GuestDisposition =
  | void
  | undefined
  | { readonly nak: { readonly delayMs: number; readonly reason: string } }
  | { readonly deadLetter: string }

export interface GuestBus {
  readonly ensureStream: (spec: GuestStreamSpec) => Promise<void>
  /** `data`: bytes, a string (UTF-8) or any other value (JSON). */
  readonly publish: (
    subject: string,
    data: Uint8Array | string | unknown,
    options: GuestPublishOptions,
  ) => Promise<{ readonly stream: string; readonly seq: number; readonly duplicate: boolean }>
  /**
   * Deliver the messages of a durable consumer to `handler`, acknowledged when it resolves.
   * The consumer lives in the host: across a reload or a restart of the plugin it is kept and
   * handed to the new version, so no message is lost. A reload lets the messages in hand finish
   * first, so none is handled twice; after a crash, the messages the dead version had in hand
   * (whose work may be done) are delivered again: make their effects idempotent.
   */
  readonly consume: (
    spec: GuestConsumerSpec,
    handler: (message: GuestMessage) => GuestDisposition | Promise<GuestDisposition>,
  ) => Promise<void>
}

// ---------------------------------------------------------------------------------------------
// HTTP out

export interface GuestRequestInit {
  readonly method?: string
  readonly headers?: Readonly<Record<string, string>>
  readonly body?: Uint8Array | string
  /** Default 30 s. */
  readonly timeoutMs?: number
}

export interface GuestResponse {
  readonly status: number
  readonly headers: Readonly<Record<string, string>>
  readonly body: Uint8Array
  readonly text: () => string
  readonly json: () => any
}

// ---------------------------------------------------------------------------------------------
// Storage

export interface GuestStorage {
  /** `sqlite` or `postgres`: the dialect of `execute`. */
  readonly dialect: "sqlite" | "postgres"
  /**
   * Run a query built with Kysely (`query.compile()`): the host checks the tables of its
   * operation tree against `permissions.storage.tables`, compiles it again with its own dialect
   * and runs it. Returns the rows and, for writes, the affected row count.
   */
  readonly execute: (compiled: {
    readonly query: unknown
    readonly parameters: ReadonlyArray<unknown>
  }) => Promise<
    { readonly rows: ReadonlyArray<Record<string, unknown>>; readonly numAffectedRows?: number }
  >
  /** A small key-value store of the plugin's own (no declaration needed): offsets, cursors, flags. */
  readonly kv: {
    readonly get: (key: string) => Promise<unknown>
    readonly set: (key: string, value: unknown) => Promise<void>
    readonly delete: (key: string) => Promise<void>
    readonly list: (prefix?: string) => Promise<ReadonlyArray<string>>
  }
}

// ---------------------------------------------------------------------------------------------
// Routes (HTTP in)

export interface GuestHttpRequest {
  readonly method: string
  /** The path, e.g. `/plugins/echo/webhook`. */
  readonly path: string
  /** Values of `{name}` segments of the declared path. */
  readonly params: Readonly<Record<string, string>>
  readonly query: Readonly<Record<string, string>>
  /** Lower-case names. */
  readonly headers: Readonly<Record<string, string>>
  readonly body: Uint8Array
  readonly text: () => string
  readonly json: () => any
}

export interface GuestHttpResponse {
  readonly status?: number
  readonly headers?: Readonly<Record<string, string>>
  /** A string, bytes, or any other value (sent as JSON). */
  readonly body?: unknown
}

export interface GuestRoutes {
  /** Serve a route declared in `contributes.routes` (method and path exactly as declared). */
  readonly handle: (
    method: string,
    path: string,
    handler: (request: GuestHttpRequest) => GuestHttpResponse | Promise<GuestHttpResponse>,
  ) => Promise<void>
  /**
   * Serve a WebSocket route declared with `"websocket": true`. Each connection gets `open`, its
   * messages in order, then `close`. When the plugin reloads or restarts, its connections are
   * closed with code 1012 (service restart): clients reconnect to the new version.
   */
  readonly websocket: (path: string, handlers: GuestSocketHandlers) => Promise<void>
}

/** One WebSocket connection to a plugin route. */
export interface GuestSocket {
  /** Unique per connection. */
  readonly id: string
  readonly send: (data: string | Uint8Array) => Promise<void>
  readonly close: (code?: number, reason?: string) => Promise<void>
}

export interface GuestSocketHandlers {
  /** The connection is open; `request` is the upgrade request (headers, query, params). Throw to refuse it (closed with 1008). */
  readonly open?: (socket: GuestSocket, request: GuestHttpRequest) => void | Promise<void>
  /** A message, text or binary; the next waits until this one's handler resolved. */
  readonly message?: (socket: GuestSocket, data: string | Uint8Array) => void | Promise<void>
  /** The connection ended, with its close code (1006: dropped without a close frame). */
  readonly close?: (socket: GuestSocket, code: number) => void | Promise<void>
}

// ---------------------------------------------------------------------------------------------
// Metrics

export type MetricLabels = Readonly<Record<string, string>>

export interface GuestMetrics {
  /** A counter named `chorus_plugin_<id>_<name>` in `/metrics`. */
  readonly counter: (name: string, help?: string) => {
    readonly inc: (by?: number, labels?: MetricLabels) => void
  }
  readonly gauge: (name: string, help?: string) => {
    readonly set: (value: number, labels?: MetricLabels) => void
  }
  /** Observations in seconds (or any unit: the buckets are 1 ms … 60). */
  readonly histogram: (name: string, help?: string) => {
    readonly observe: (value: number, labels?: MetricLabels) => void
  }
}

// ---------------------------------------------------------------------------------------------
// Channels

export interface GuestOutgoing {
  /** The Chorus message id: pass it to the provider as an idempotency key where there is one. */
  readonly id: string
  readonly conversationId: string
  readonly channel: string
  readonly account: string
  readonly text: string | undefined
  readonly attachments: ReadonlyArray<unknown>
  /** Rows of buttons to show under it (channels declaring `buttons`): `{ text, payload | url }`. */
  readonly buttons?: ReadonlyArray<
    ReadonlyArray<{ readonly text: string; readonly payload?: string; readonly url?: string }>
  >
  readonly recipient: { readonly externalId: string; readonly displayName?: string | undefined }
}

export type GuestSendResult =
  | { readonly ok: true; readonly externalId: string }
  /** `retryable`: the provider may take it later (5xx, 429, network); `retryAfterMs` if it said. */
  | {
    readonly ok: false
    readonly retryable: boolean
    readonly code: string
    readonly reason: string
    readonly retryAfterMs?: number
    /** Nothing can reach this recipient (blocked the bot, left): the identity is marked unreachable. */
    readonly unreachable?: boolean
  }

/** A customer's message as a channel plugin hands it in (`chorus.channels.receive`). */
export interface GuestInbound {
  /** The channel account (bot, phone number, page) it came to. */
  readonly account: string
  readonly sender: {
    /** The provider's id of the person on this account. */
    readonly externalId: string
    readonly name?: string
    /** E.164 (`+4915123456789`). */
    readonly phone?: string
    readonly email?: string
    /** True when the provider vouches for the phone or e-mail (not typed in by the person). */
    readonly verified?: boolean
  }
  /** The provider's message id: a repeat of the same id is recognised and stored once. */
  readonly externalId: string
  readonly text: string
  readonly attachments?: ReadonlyArray<unknown>
  /** When the customer sent it (ISO 8601 or epoch ms); default now. */
  readonly sentAt?: string | number
  /** A pressed button's payload, a deep link's parameter (at most 1,024 characters). */
  readonly payload?: string
  /**
   * Provider ids of earlier messages this one answers, nearest first (e-mail In-Reply-To then
   * References, a quoted message): the core keeps the thread in its conversation. At most 50.
   */
  readonly inReplyTo?: ReadonlyArray<string>
}

/**
 * What became of a reply after the provider took it (a status webhook, a read receipt, a
 * bounce), by the provider's id of the sent message (`externalId` of the send result).
 */
export interface GuestDeliveryStatus {
  readonly account: string
  /** The provider's id of the sent message, as the send result returned it. */
  readonly externalId: string
  readonly state: "delivered" | "read" | "failed"
  /** For `failed`: the provider's code and words. */
  readonly error?: { readonly code: string; readonly reason: string }
  /** For `failed`: nothing sent to this recipient can arrive (a hard bounce, blocked). */
  readonly unreachable?: boolean
  /** When it happened, by the provider's clock (ISO 8601 or epoch ms); default now. */
  readonly at?: string | number
}

export interface GuestChannels {
  /**
   * Hand a customer's message to Chorus: checked against the inbound schema (a wrong field
   * rejects with `InboundInvalid` naming it), then published on `inbound.<channel>` with the
   * de-duplicating id and the ordering key. Resolves once it is durable on the bus: only then
   * confirm it to the provider. No bus permission needed, only the channel in
   * `contributes.channels`.
   */
  readonly receive: (
    channel: string,
    message: GuestInbound,
  ) => Promise<{ readonly id: string; readonly duplicate: boolean }>
  /**
   * Whether someone can answer this channel account now: the online operators of the team that
   * owns it (the online admins when no team does). A chat window shows its offline form when
   * `available` is false.
   */
  readonly availability: (
    channel: string,
    account: string,
  ) => Promise<{ readonly online: number; readonly available: boolean }>
  /**
   * Send replies of a channel declared in `contributes.channels`. One provider call per `send`.
   * `typing` (optional) shows the customer that an operator is typing (a chat window's
   * indicator, Telegram's `sendChatAction`); best effort, called at most every two seconds.
   */
  readonly register: (
    channel: string,
    adapter: {
      readonly send: (message: GuestOutgoing) => Promise<GuestSendResult>
      readonly typing?: (to: GuestTypingTarget) => Promise<void>
    },
  ) => Promise<void>
  /**
   * The customer is typing (a chat window's keystrokes): the inbox shows it. At most one every
   * two seconds per person is passed on; resolves whether it was.
   */
  readonly typing: (
    channel: string,
    from: { readonly account: string; readonly externalId: string },
  ) => Promise<boolean>
  /**
   * Report what became of a sent reply (`delivered`, `read`, `failed`). States only move
   * forward (a late `delivered` after `read` changes nothing); an unknown `externalId` resolves
   * `{ found: false }` (a status for a message sent before Chorus, or by another system).
   * `failed` with `unreachable` marks the identity unreachable.
   */
  readonly status: (
    channel: string,
    update: GuestDeliveryStatus,
  ) => Promise<{ readonly found: boolean; readonly changed: boolean }>
}

/** Whom an operator's typing is shown to. */
export interface GuestTypingTarget {
  readonly account: string
  readonly externalId: string
  readonly conversationId: string
}
