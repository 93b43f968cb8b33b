/**
 * A Chorus server for the reply tests, built as `chorus start` builds it (`ServerLive`) but with
 * a fast delivery policy, plus what the tests seed and check with: conversations written through
 * the store as the pipeline does, the events stream as it is published, polling helpers.
 */
import { ChannelAccounts } from "../../actors/channel/ChannelAccounts.ts"
import { HttpServer } from "@effect/platform"
import { Context, Effect, Layer, Redacted, Schedule, Schema, Stream } from "effect"
import { ConversationStore } from "../../actors/conversation/ConversationStore.ts"
import { OutboundStore } from "../../actors/conversation/OutboundWrites.ts"
import { type OutboxRelayOptions, Replies } from "../../actors/conversation/Replies.ts"
import { Router } from "../../actors/routing/Router.ts"
import { Operators } from "../../core/accounts/Operators.ts"
import { Teams } from "../../core/accounts/Teams.ts"
import { ApiTokens } from "../../core/auth/ApiTokens.ts"
import { Bus, type BusShape } from "../../core/bus/Bus.ts"
import type { DeliverySettingsInput } from "../../core/delivery/Policy.ts"
import { ServerLive } from "../../core/Chorus.ts"
import { decodeConfig } from "../../core/config/loadConfig.ts"
import { EventsStream } from "../../core/pipeline/Streams.ts"
import { Database } from "../../core/storage/Database.ts"
import { ChorusEvent } from "../../schemas/Events.ts"
import { InboundMessage } from "../../schemas/Inbound.ts"

/** Retries in milliseconds, so a test of three attempts takes well under a second. */
export const FAST_DELIVERY: DeliverySettingsInput = {
  timeout: "3 seconds",
  retry: { baseDelay: "20 millis", maxDelay: "2 seconds", maxAttempts: 4 },
}

export interface ReplyServerOptions {
  readonly dataDir: string
  readonly webhookUrl?: string
  readonly webhookSecret?: string
  /** Plugins directory (default: none). */
  readonly pluginsDir?: string
  /** Plugin settings from the config file. */
  readonly pluginSettings?: Record<string, Record<string, string | number | boolean>>
  /** Queue and auto-assignment settings (`routing.*`). */
  readonly routing?: {
    readonly autoAssign?: boolean
    readonly answerTimeoutSeconds?: number
    readonly offlineAfterSeconds?: number
    readonly queueMessage?: string
  }
  /** chorus.config.json's `delivery` section (policies per channel and account). */
  readonly delivery?: unknown
  /** Delivery settings over every layer (default: `FAST_DELIVERY`). */
  readonly overrides?: DeliverySettingsInput
  /** The outbox sweep's timing (default: every 30 s, replies queued over 30 s). */
  readonly outbox?: OutboxRelayOptions
  /** PostgreSQL schema and JetStream namespace instead of SQLite and the embedded bus. */
  readonly shared?: {
    readonly databaseUrl: string
    readonly schema: string
    readonly natsUrl: string
    readonly namespace: string
  }
}

let tokenCount = 0

export const startReplyServer = (options: ReplyServerOptions) =>
  Effect.gen(function* () {
    const config = yield* decodeConfig({
      dataDir: options.dataDir,
      http: { port: 0 },
      log: { level: "error" },
      plugins: {
        dirs: [options.pluginsDir ?? `${options.dataDir}/no-plugins`],
        settings: options.pluginSettings ?? {},
      },
      ...(options.routing !== undefined ? { routing: options.routing } : {}),
      ...(options.delivery !== undefined ? { delivery: options.delivery } : {}),
      channels: {
        api: {
          ...(options.webhookUrl !== undefined ? { webhookUrl: options.webhookUrl } : {}),
          ...(options.webhookSecret !== undefined ? { webhookSecret: options.webhookSecret } : {}),
        },
      },
      ...(options.shared
        ? {
          database: { url: options.shared.databaseUrl, schema: options.shared.schema },
          bus: { natsUrl: options.shared.natsUrl, namespace: options.shared.namespace },
        }
        : {}),
    })
    const context = yield* Layer.build(
      ServerLive(config, {
        outbound: {
          delivery: options.overrides ?? FAST_DELIVERY,
          ...(options.outbox !== undefined ? { outbox: options.outbox } : {}),
        },
      }),
    )
    const server = Context.get(context, HttpServer.HttpServer)
    if (server.address._tag !== "TcpAddress") throw new Error("expected a TCP address")
    const tokens = yield* ApiTokens.pipe(Effect.provide(ApiTokens.Default), Effect.provide(context))
    const { token } = yield* tokens.create(`replies-${++tokenCount}`)
    return {
      url: `http://127.0.0.1:${server.address.port}`,
      token: Redacted.value(token),
      bus: Context.get(context, Bus),
      store: Context.get(context, ConversationStore),
      outbound: Context.get(context, OutboundStore),
      database: Context.get(context, Database),
      operators: Context.get(context, Operators),
      teams: Context.get(context, Teams),
      router: Context.get(context, Router),
      channels: Context.get(context, ChannelAccounts),
      /** Run the outbox relay now (as at start); how many replies it published. */
      relayOutbox: Context.get(context, Replies).relayOutbox(),
    }
  })

/** A conversation on channel `channel`, account `account`, with one inbound message (seq 1). */
export const seedConversation = (
  store: Context.Tag.Service<typeof ConversationStore>,
  options: { readonly channel?: string; readonly account: string; readonly sender: string },
) =>
  Effect.gen(function* () {
    const inbound = Schema.decodeUnknownSync(InboundMessage)({
      channel: options.channel ?? "api",
      account: options.account,
      sender: { externalId: options.sender, name: `Customer ${options.sender}` },
      externalId: `${options.sender}-1`,
      text: "Where is my parcel?",
      sentAt: "2026-11-23T10:00:00Z",
      receivedAt: "2026-11-23T10:00:01Z",
    })
    const resolved = yield* store.resolveSender(inbound)
    const { conversation } = yield* store.openConversation(resolved.contact.id, resolved.identity)
    yield* store.appendInbound({
      conversationId: conversation.id,
      seq: 1,
      status: "open",
      identityId: resolved.identity.id,
      inbound,
    })
    return { conversation, identity: resolved.identity, contact: resolved.contact }
  })

const decodeEvent = Schema.decodeUnknownSync(Schema.parseJson(ChorusEvent))

/** Every event published from now on (and before: the stream is read from its start). */
export const recordEvents = (bus: BusShape) =>
  Effect.gen(function* () {
    const events: Array<ChorusEvent> = []
    yield* bus.read(EventsStream.name, { fromSeq: 1 }).pipe(
      Stream.runForEach((m) =>
        Effect.sync(() => events.push(decodeEvent(new TextDecoder().decode(m.data))))
      ),
      Effect.forkScoped,
    )
    return events
  })

/** Wait until `check` holds (polling every 25 ms), or die after `within` with `what`. */
export const eventually = (
  what: string,
  check: () => boolean | Effect.Effect<boolean, unknown>,
  within: "10 seconds" | "5 seconds" | "3 seconds" = "10 seconds",
) =>
  Effect.suspend(() => {
    const result = check()
    return typeof result === "boolean" ? Effect.succeed(result) : result
  }).pipe(
    Effect.flatMap((ok) => (ok ? Effect.void : Effect.fail("not yet"))),
    Effect.retry(Schedule.spaced("25 millis").pipe(Schedule.upTo(within))),
    Effect.orElse(() => Effect.dieMessage(`timed out waiting for: ${what}`)),
  )
