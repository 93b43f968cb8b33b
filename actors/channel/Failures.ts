/**
 * What happens to a reply its channel could not deliver (refused for good, reply window closed,
 * recipient unreachable, breaker open, retries exhausted, or failed by a receipt after it was
 * sent): never a silent drop.
 *
 * - With a **fallback** policy (`delivery.fallback`: channels in order), the customer's first
 *   reachable identity on the first of those channels that can carry the reply (and whose breaker
 *   is not open) gets a copy: a new reply in the same conversation, `fallbackOf` the original,
 *   appended by the conversation's actor with the client key `fallback:<original id>` (so doing
 *   it again after a crash finds the same copy). The original ends `failed` with the provider's
 *   reason and `fallbackTo` the copy: the inbox shows both and why.
 * - Without one (or with no reachable channel left), it ends `failed` and enters the dead-letter
 *   list, from which a person retries or discards it.
 */
import { Context, Effect, Layer, Option, Schedule } from "effect"
import { Bus } from "../../core/bus/Bus.ts"
import {
  ChannelAdapters,
  type SendError,
  toProviderError,
} from "../../core/channels/ChannelAdapter.ts"
import type { DatabaseError } from "../../core/storage/Database.ts"
import type { ChannelIdentity } from "../../schemas/Contact.ts"
import type { MessageId } from "../../schemas/Ids.ts"
import type { OutgoingMessage } from "../../schemas/Message.ts"
import { ConversationActors } from "../conversation/ConversationActor.ts"
import { type AttemptRecord, OutboundStore } from "../conversation/OutboundWrites.ts"
import { announce } from "../conversation/Replies.ts"
import { ChannelAccounts } from "./ChannelAccounts.ts"
import type { DeliveryReport } from "./ChannelActor.ts"

export interface FailuresShape {
  /** A queued reply failed for good: fall back, or record it failed and dead-letter it. */
  readonly fail: (
    message: OutgoingMessage,
    input: {
      readonly error: SendError
      readonly attempts: number
      readonly attempt?: AttemptRecord | undefined
    },
  ) => Effect.Effect<DeliveryReport, DatabaseError>
  /** A reply a receipt failed after it was sent: fall back, or dead-letter it. */
  readonly afterReceipt: (
    message: OutgoingMessage,
    attempts: number,
  ) => Effect.Effect<DeliveryReport, DatabaseError>
}

export class Failures extends Context.Tag("chorus/actors/Failures")<Failures, FailuresShape>() {}

export const layer = Layer.effect(
  Failures,
  Effect.gen(function* () {
    const outbound = yield* OutboundStore
    const adapters = yield* ChannelAdapters
    const accounts = yield* ChannelAccounts
    const conversations = yield* ConversationActors
    const bus = yield* Bus

    /** The identities a reply (and the copies before it) already went to. */
    const tried = (message: OutgoingMessage) =>
      Effect.gen(function* () {
        const ids = new Set<string>([message.identityId])
        let at: MessageId | undefined = message.fallbackOf
        for (let hop = 0; at !== undefined && hop < 10; hop++) {
          const previous = yield* outbound.reply(at)
          if (Option.isNone(previous)) break
          ids.add(previous.value.message.identityId)
          at = previous.value.message.fallbackOf
        }
        return ids
      })

    const target = (message: OutgoingMessage) =>
      Effect.gen(function* () {
        const order = accounts.policyOf(message.channel, message.account).fallback
        if (order.length === 0) return Option.none<ChannelIdentity>()
        const used = yield* tried(message)
        const candidates = (yield* outbound.reachableIdentities(message.conversationId))
          .filter((i) => !used.has(i.id))
        for (const channel of order) {
          const adapter = adapters.get(channel)
          if (Option.isNone(adapter)) continue
          const { capabilities } = adapter.value
          if (message.text.length > capabilities.maxTextLength) continue
          if (message.attachments.length > 0 && !capabilities.attachments) continue
          for (const identity of candidates.filter((i) => i.channel === channel)) {
            const acct = yield* accounts.get(identity.channel, identity.account)
            if ((yield* acct.breaker.snapshot).state === "open") continue
            return Option.some(identity)
          }
        }
        return Option.none<ChannelIdentity>()
      })

    /** Append the copy through the conversation's actor and put it on its way. */
    const copyTo = (message: OutgoingMessage, recipient: ChannelIdentity) =>
      Effect.gen(function* () {
        const capable = adapters.get(recipient.channel).pipe(
          Option.map((a) => a.capabilities.buttons),
          Option.getOrElse(() => false),
        )
        const result = yield* conversations.ask(message.conversationId, {
          _tag: "AppendOutbound",
          reply: {
            recipient,
            text: message.text,
            // The same files: an attachment minus its id is what a reply carries.
            attachments: message.attachments.map(({ id: _id, ...file }) => file),
            clientId: `fallback:${message.id}`,
            authorId: message.authorId,
            fallbackOf: message.id,
            channelReason: "fallback",
            ...(message.buttons !== undefined && capable ? { buttons: message.buttons } : {}),
          },
        }).pipe(Effect.option)
        if (Option.isNone(result) || result.value._tag === "Closed") {
          return Option.none<OutgoingMessage>()
        }
        return Option.some(result.value.message as OutgoingMessage)
      })

    const publish = (copy: OutgoingMessage) =>
      announce(bus, copy).pipe(
        Effect.retry(Schedule.exponential("100 millis").pipe(Schedule.upTo("5 seconds"))),
        // The copy is stored `queued`: the outbox relay of the next start publishes it if not now.
        Effect.catchAll((error) =>
          Effect.logWarning("fallback copy stored but not yet published").pipe(
            Effect.annotateLogs({ messageId: copy.id, error: error.message }),
          )
        ),
      )

    const fail = Effect.fn("Failures.fail")(function* (
      message: OutgoingMessage,
      input: {
        readonly error: SendError
        readonly attempts: number
        readonly attempt?: AttemptRecord | undefined
      },
    ) {
      const { error } = input
      if (error._tag === "ProviderRejected" && error.unreachable === true) {
        yield* outbound.markUnreachable(message.identityId)
        yield* Effect.logInfo("identity marked unreachable").pipe(
          Effect.annotateLogs({ identityId: message.identityId, reason: error.reason }),
        )
      }
      const acct = yield* accounts.get(message.channel, message.account)
      acct.settled("failed")
      const to = yield* target(message)
      const copy = Option.isNone(to)
        ? Option.none<OutgoingMessage>()
        : yield* copyTo(message, to.value)
      const recorded = yield* outbound.recordDelivery({
        messageId: message.id,
        outcome: {
          state: "failed",
          error: toProviderError(error),
          ...(Option.isSome(copy) ? { fallbackTo: copy.value.id } : {}),
        },
        attempts: input.attempts,
        attempt: input.attempt,
      })
      yield* Effect.logWarning(
        Option.isSome(copy) ? "reply failed; sent on another channel instead" : "reply failed",
      ).pipe(
        Effect.annotateLogs({
          messageId: message.id,
          channel: message.channel,
          attempts: input.attempts,
          error: error.message,
          ...(Option.isSome(copy)
            ? { fallbackTo: copy.value.id, fallbackChannel: copy.value.channel }
            : { deadLettered: true }),
        }),
      )
      if (Option.isSome(copy)) yield* publish(copy.value)
      if (Option.isNone(recorded)) return { _tag: "Missing" } satisfies DeliveryReport
      return {
        _tag: recorded.value.changed ? "Recorded" : "AlreadyRecorded",
        message: recorded.value.message,
        attempts: input.attempts,
      } satisfies DeliveryReport
    })

    const afterReceipt = Effect.fn("Failures.afterReceipt")(function* (
      message: OutgoingMessage,
      attempts: number,
    ) {
      if (message.delivery.state !== "failed" || message.fallbackTo !== undefined) {
        return { _tag: "AlreadyRecorded", message, attempts } satisfies DeliveryReport
      }
      const to = yield* target(message)
      const copy = Option.isNone(to)
        ? Option.none<OutgoingMessage>()
        : yield* copyTo(message, to.value)
      if (Option.isSome(copy)) {
        yield* outbound.linkFallback(message.id, copy.value.id)
        yield* publish(copy.value)
      } else {
        yield* outbound.deadLetterFailed(message)
      }
      const now = yield* outbound.reply(message.id)
      return Option.isNone(now)
        ? { _tag: "Missing" } satisfies DeliveryReport
        : { _tag: "Recorded", message: now.value.message, attempts } satisfies DeliveryReport
    })

    return { fail, afterReceipt } satisfies FailuresShape
  }),
)
