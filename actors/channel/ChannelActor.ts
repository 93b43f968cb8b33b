/**
 * The channel actor: one per channel account (key `channel:account`), sending that account's
 * replies one at a time through its channel's adapter. Accounts are independent: a provider
 * account that hangs holds up only its own queue.
 *
 * For each reply it reads the message's current state first and skips one no longer `queued`
 * (a late duplicate from the outbox relay or a redelivery never sends twice), sends it under the
 * delivery policy (timeout per attempt, typed retries, `Retry-After`), and commits the outcome
 * (`sent` with the provider's id, or `failed` with its error) before it answers. A channel with
 * no adapter on this node fails the reply with a reason; nothing is silently dropped.
 */
import { Context, Effect, Either, Layer, Option } from "effect"
import * as Actors from "../../core/actor/mod.ts"
import {
  ChannelAdapters,
  noAdapter,
  ProviderRejected,
  toProviderError,
} from "../../core/channels/ChannelAdapter.ts"
import * as DeliveryPolicy from "../../core/channels/DeliveryPolicy.ts"
import type { DatabaseError } from "../../core/storage/Database.ts"
import type { MessageId } from "../../schemas/Ids.ts"
import type { OutgoingMessage } from "../../schemas/Message.ts"
import { type DeliveryOutcome, OutboundStore } from "../conversation/OutboundWrites.ts"

export interface Deliver {
  readonly _tag: "Deliver"
  readonly messageId: MessageId
}

export type DeliveryReport =
  /** This delivery sent (or failed) the message and recorded it. */
  | { readonly _tag: "Recorded"; readonly message: OutgoingMessage; readonly attempts: number }
  /** The message was no longer `queued`: nothing sent; its current state. */
  | {
    readonly _tag: "AlreadyRecorded"
    readonly message: OutgoingMessage
    readonly attempts: number
  }
  /** No outgoing message with this id is stored. */
  | { readonly _tag: "Missing" }

export interface ChannelActorsShape
  extends Actors.ActorSupervisor<string, Deliver, DeliveryReport, DatabaseError> {}

export class ChannelActors extends Context.Tag("chorus/actors/ChannelActors")<
  ChannelActors,
  ChannelActorsShape
>() {}

/** The actor key of a channel account. */
export const channelActorKey = (channel: string, account: string): string => `${channel}:${account}`

export interface ChannelActorOptions {
  readonly delivery?: DeliveryPolicy.DeliveryPolicyOptions
  /** Default: 5 minutes. */
  readonly idleTimeout?: Actors.ActorSupervisorOptions["idleTimeout"]
  /** Default: 10,000. */
  readonly maxActors?: number
}

export const layer = (options: ChannelActorOptions = {}) =>
  Layer.scoped(
    ChannelActors,
    Effect.gen(function* () {
      const outbound = yield* OutboundStore
      const adapters = yield* ChannelAdapters
      const policy = DeliveryPolicy.resolve(options.delivery)

      const deliver = Effect.fn("ChannelActor.deliver")(function* (messageId: MessageId) {
        const stored = yield* outbound.reply(messageId)
        if (Option.isNone(stored)) return { _tag: "Missing" } satisfies DeliveryReport
        const { message } = stored.value
        if (message.delivery.state !== "queued") {
          return {
            _tag: "AlreadyRecorded",
            message,
            attempts: stored.value.attempts,
          } satisfies DeliveryReport
        }
        const adapter = adapters.get(message.channel)
        const recipient = yield* outbound.identity(message.identityId)
        const { result, attempts } = Option.isNone(adapter)
          ? { result: Either.left(noAdapter(message.channel)), attempts: 0 }
          : Option.isNone(recipient)
          ? {
            result: Either.left(
              new ProviderRejected({
                code: "no_recipient",
                reason: `channel identity ${message.identityId} no longer exists`,
              }),
            ),
            attempts: 0,
          }
          : yield* DeliveryPolicy.run(policy, adapter.value.send(message, recipient.value))
        const outcome: DeliveryOutcome = Either.isRight(result)
          ? { state: "sent", externalId: result.right.externalId }
          : { state: "failed", error: toProviderError(result.left) }
        if (Either.isLeft(result)) {
          yield* Effect.logWarning("reply failed").pipe(
            Effect.annotateLogs({ messageId, attempts, error: result.left.message }),
          )
          if (result.left._tag === "ProviderRejected" && result.left.unreachable === true) {
            yield* outbound.markUnreachable(message.identityId)
            yield* Effect.logInfo("identity marked unreachable").pipe(
              Effect.annotateLogs({ identityId: message.identityId, reason: result.left.reason }),
            )
          }
        }
        const recorded = yield* outbound.recordDelivery({ messageId, outcome, attempts })
        if (Option.isNone(recorded)) return { _tag: "Missing" } satisfies DeliveryReport
        return {
          _tag: recorded.value.changed ? "Recorded" : "AlreadyRecorded",
          message: recorded.value.message,
          attempts,
        } satisfies DeliveryReport
      })

      const behaviour: Actors.ActorBehaviour<
        string,
        void,
        Deliver,
        DeliveryReport,
        DatabaseError
      > = {
        // The account's queue is its lane on the outbound stream; the actor holds no state.
        load: () => Effect.void,
        receive: (_state, command) =>
          deliver(command.messageId).pipe(Effect.map((report) => [undefined, report] as const)),
        restartOn: (error) => error.retryable,
      }
      return yield* Actors.make(behaviour, {
        name: "channel",
        idleTimeout: options.idleTimeout ?? "5 minutes",
        maxActors: options.maxActors ?? 10_000,
        // A delivery can take minutes; shutting down should not wait for it (the bus redelivers).
        shutdownTimeout: "2 seconds",
      })
    }),
  )
