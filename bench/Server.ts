/**
 * A Chorus server in the bench process, as `chorus start` builds it (`ServerLive`): SQLite in a
 * scratch directory, JetStream on the bench's nats-server under a namespace of its own (deleted
 * afterwards) or the embedded bus, a free loopback port and one API token.
 */
import { OutboundStore } from "../actors/conversation/OutboundWrites.ts"
import { mkdtempSync } from "node:fs"
import { join } from "node:path"
import { HttpServer } from "@effect/platform"
import { Context, Effect, Layer, Logger, LogLevel, Redacted, Schema } from "effect"
import { ConversationStore } from "../actors/conversation/ConversationStore.ts"
import { ApiTokens } from "../core/auth/ApiTokens.ts"
import { Bus } from "../core/bus/Bus.ts"
import { ServerLive } from "../core/Chorus.ts"
import { decodeConfig } from "../core/config/loadConfig.ts"
import { deleteNamespaceStreams } from "../tests/support/NatsCleanup.ts"
import { InboundMessage } from "../schemas/Inbound.ts"
import type { BenchContext } from "./Benchmark.ts"

export const startServer = (
  ctx: BenchContext,
  bus: "jetstream" | "embedded",
  tag: string,
  /** More configuration (`{ channels: { api: { webhookUrl } } }`). */
  extra: Record<string, unknown> = {},
) =>
  Effect.gen(function* () {
    const dataDir = mkdtempSync(join(ctx.workDir, `${tag}-`))
    const namespace = `${ctx.runId}${tag}`
    if (bus === "jetstream") {
      yield* Effect.addFinalizer(() => deleteNamespaceStreams(namespace, ctx.natsUrl))
    }
    const config = yield* decodeConfig({
      dataDir,
      http: { port: 0, host: "127.0.0.1" },
      log: { level: "error" },
      ...(bus === "jetstream" ? { bus: { natsUrl: ctx.natsUrl, namespace } } : {}),
      ...extra,
    })
    // The bench's own logger would print every request (the CLI sets the level from the config).
    const context = yield* Layer.build(ServerLive(config)).pipe(
      Logger.withMinimumLogLevel(LogLevel.Error),
    )
    const server = Context.get(context, HttpServer.HttpServer)
    if (server.address._tag !== "TcpAddress") return yield* Effect.die("expected a TCP address")
    const tokens = yield* ApiTokens.pipe(Effect.provide(ApiTokens.Default), Effect.provide(context))
    const { token } = yield* tokens.create("bench")
    return {
      dataDir,
      url: `http://127.0.0.1:${server.address.port}`,
      token: Redacted.value(token),
      store: Context.get(context, ConversationStore),
      outbound: Context.get(context, OutboundStore),
      bus: Context.get(context, Bus),
    }
  })

/**
 * `count` `api` conversations, each opened by one customer message stored straight through the
 * store (no bus), spread over `accounts` accounts named `<prefix>-<n>`: what replies go to.
 */
export const seedConversations = (
  store: ConversationStore["Type"],
  options: { readonly count: number; readonly accounts: number; readonly prefix: string },
) =>
  Effect.gen(function* () {
    const conversations: Array<string> = []
    for (let i = 0; i < options.count; i++) {
      const inbound = Schema.decodeUnknownSync(InboundMessage)({
        channel: "api",
        account: `${options.prefix}-${i % options.accounts}`,
        sender: { externalId: `${options.prefix}-${i}` },
        externalId: `${options.prefix}-${i}-0`,
        text: "question",
        sentAt: "2026-11-23T10:00:00Z",
        receivedAt: "2026-11-23T10:00:01Z",
      })
      const sender = yield* store.resolveSender(inbound)
      const { conversation } = yield* store.openConversation(sender.contact.id, sender.identity)
      yield* store.appendInbound({
        conversationId: conversation.id,
        seq: 1,
        status: "open",
        identityId: sender.identity.id,
        inbound,
      })
      conversations.push(conversation.id)
    }
    return conversations
  })

/** Percentile (0–100) of ascending-sorted samples. */
export const percentile = (sorted: ReadonlyArray<number>, p: number): number =>
  sorted.length === 0
    ? NaN
    : sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!

/** Milliseconds for a report; "—" for no sample (a percentile of nothing comes back as null). */
export const ms = (x: number | null) =>
  x === null || !Number.isFinite(x) ? "—" : `${x.toFixed(1)} ms`

/** "met" / "NOT met" for a target line. */
export const verdict = (ok: boolean) => (ok ? "met" : "NOT met")
