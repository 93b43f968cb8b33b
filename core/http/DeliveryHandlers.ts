/**
 * Handlers of the delivery groups: channel health, the dead-letter list (retry, discard), a
 * reply's attempts and resend (visible conversations only), and Prometheus metrics.
 */
import { HttpApiBuilder } from "@effect/platform"
import { Effect, Option } from "effect"
import { ChannelAccounts } from "../../actors/channel/ChannelAccounts.ts"
import { prometheus } from "../../actors/channel/ChannelMetrics.ts"
import { Recovery, type RecoveryResult } from "../../actors/channel/Recovery.ts"
import { ConversationStore } from "../../actors/conversation/ConversationStore.ts"
import { OutboundStore } from "../../actors/conversation/OutboundWrites.ts"
import { outboxPrometheus } from "../../actors/conversation/Replies.ts"
import type { Principal } from "../accounts/Access.ts"
import { Leadership, prometheus as clusterPrometheus } from "../cluster/mod.ts"
import { corePrometheus } from "../metrics/CoreMetrics.ts"
import { PluginHost } from "../plugins/PluginHost.ts"
import type { MessageId } from "../../schemas/Ids.ts"
import { ChorusApi } from "./Api.ts"
import { CurrentPrincipal } from "./Authentication.ts"
import { DeliveryConflict, MessageNotFound } from "./DeliveryApi.ts"
import { visibleConversation } from "./Visibility.ts"

const who = (principal: Principal): string =>
  principal.kind === "operator"
    ? `operator:${principal.operator.id}`
    : `token:${principal.token.name}`

const notFound = (id: string) => new MessageNotFound({ id, message: `no reply with id ${id}` })

const settled = (id: MessageId, result: RecoveryResult, doing: string) =>
  result._tag === "Missing" ? Effect.fail(notFound(id)) : result._tag === "Unchanged"
    ? Effect.fail(
      new DeliveryConflict({
        id,
        message: `cannot ${doing}: the reply is ${result.message.delivery.state}` +
          (result.message.delivery.state === "failed" ? " and was handled already" : ""),
      }),
    )
    : Effect.succeed(result.message)

export const ChannelsHandlers = HttpApiBuilder.group(
  ChorusApi,
  "channels",
  (handlers) =>
    Effect.gen(function* () {
      const accounts = yield* ChannelAccounts
      return handlers.handle(
        "health",
        () => accounts.health.pipe(Effect.map((channels) => ({ channels }))),
      )
    }),
)

export const MetricsHandlers = HttpApiBuilder.group(
  ChorusApi,
  "metrics",
  (handlers) =>
    Effect.gen(function* () {
      const accounts = yield* ChannelAccounts
      const host = yield* PluginHost
      const leadership = yield* Leadership
      return handlers.handle(
        "metrics",
        () =>
          Effect.all([accounts.health, clusterPrometheus(leadership)]).pipe(
            Effect.map(([health, cluster]) =>
              corePrometheus() + prometheus(health) + host.prometheus() + cluster +
              outboxPrometheus()
            ),
          ),
      )
    }),
)

export const DeadLettersHandlers = HttpApiBuilder.group(
  ChorusApi,
  "deadLetters",
  (handlers) =>
    Effect.gen(function* () {
      const outbound = yield* OutboundStore
      const recovery = yield* Recovery
      const withMessage = (d: Parameters<typeof outbound.deadLetter>[0]) =>
        Effect.gen(function* () {
          const dead = yield* outbound.deadLetter(d)
          if (Option.isNone(dead)) return yield* notFound(d)
          const reply = yield* outbound.reply(d)
          return {
            ...dead.value,
            ...(Option.isSome(reply) ? { message: reply.value.message } : {}),
          }
        })
      return handlers
        .handle("list", ({ urlParams }) =>
          Effect.gen(function* () {
            const limit = urlParams.limit ?? 50
            const cursor = urlParams.before?.split("_")
            const page = yield* outbound.deadLetters({
              open: urlParams.status !== "all",
              limit,
              ...(urlParams.channel !== undefined ? { channel: urlParams.channel } : {}),
              ...(urlParams.account !== undefined ? { account: urlParams.account } : {}),
              ...(cursor !== undefined && cursor.length === 2 && Number.isFinite(Number(cursor[0]))
                ? { before: [Number(cursor[0]), cursor[1]!] as const }
                : {}),
            })
            const last = page[page.length - 1]
            // Each with its reply as it is now (what was written, to whom), for the person deciding.
            const withReplies = yield* Effect.forEach(page, (d) =>
              outbound.reply(d.messageId).pipe(
                Effect.map((r) => (Option.isSome(r) ? { ...d, message: r.value.message } : d)),
              ))
            return {
              deadLetters: withReplies,
              next: page.length === limit && last !== undefined
                ? `${last.deadAt.getTime()}_${last.messageId}`
                : null,
            }
          }).pipe(Effect.orDie))
        .handle("retry", ({ path }) =>
          Effect.gen(function* () {
            const principal = yield* CurrentPrincipal
            const result = yield* recovery.retry(path.messageId, who(principal)).pipe(Effect.orDie)
            return yield* settled(path.messageId, result, "retry")
          }))
        .handle("discard", ({ path }) =>
          Effect.gen(function* () {
            const principal = yield* CurrentPrincipal
            const result = yield* recovery.discard(path.messageId, who(principal)).pipe(
              Effect.orDie,
            )
            yield* settled(path.messageId, result, "discard")
            return yield* withMessage(path.messageId).pipe(
              Effect.catchTag("DatabaseError", (e) => Effect.die(e)),
            )
          }))
    }),
)

export const MessageDeliveryHandlers = HttpApiBuilder.group(
  ChorusApi,
  "messageDelivery",
  (handlers) =>
    Effect.gen(function* () {
      const store = yield* ConversationStore
      const outbound = yield* OutboundStore
      const recovery = yield* Recovery
      /** The reply, if it belongs to this (visible) conversation. */
      const replyIn = (conversationId: Parameters<typeof visibleConversation>[1], id: MessageId) =>
        Effect.gen(function* () {
          yield* visibleConversation(store, conversationId)
          const reply = yield* outbound.reply(id).pipe(Effect.orDie)
          if (Option.isNone(reply) || reply.value.message.conversationId !== conversationId) {
            return yield* notFound(id)
          }
          return reply.value.message
        })
      return handlers
        .handle("resend", ({ path }) =>
          Effect.gen(function* () {
            yield* replyIn(path.id, path.messageId)
            const principal = yield* CurrentPrincipal
            const result = yield* recovery.retry(path.messageId, who(principal)).pipe(Effect.orDie)
            return yield* settled(path.messageId, result, "resend")
          }))
        .handle("attempts", ({ path }) =>
          Effect.gen(function* () {
            yield* replyIn(path.id, path.messageId)
            const attempts = yield* outbound.attemptsOf(path.messageId).pipe(Effect.orDie)
            return {
              attempts: attempts.map((a, i) => ({
                attempt: i + 1,
                channel: a.channel,
                account: a.account,
                startedAt: new Date(a.startedAt),
                durationMs: Math.round(a.durationMs),
                outcome: a.outcome,
                code: a.code ?? null,
                reason: a.reason ?? null,
              })),
            }
          }))
    }),
)
