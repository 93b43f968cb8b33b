/**
 * Where replies leave: the `outbound` stream is consumed in order per channel account
 * (`ordering: "key"`), each reply handed to its account's channel actor, which sends it and
 * commits the outcome; then `message.delivery_changed` is published and only then is the bus
 * message acknowledged. A crash anywhere before repeats the step, and every step is idempotent:
 * the actor skips a message no longer `queued`, and the event (id derived from the message and
 * its state) is published again for it, in case the crash came between the commit and the
 * publish.
 */
import { Duration, Effect, Layer, Schema } from "effect"
import { Bus, Disposition } from "../../core/bus/Bus.ts"
import * as DeliveryPolicy from "../../core/channels/DeliveryPolicy.ts"
import { newId } from "../../core/ids.ts"
import { OutboundStream } from "../../core/pipeline/Streams.ts"
import { OutboundDelivery } from "../../schemas/Outbound.ts"
import { publishEvent } from "../../core/pipeline/Events.ts"
import { channelActorKey, ChannelActors } from "./ChannelActor.ts"

export interface OutboundConsumerOptions {
  /** Durable consumer name. Default `channels`. */
  readonly name?: string
  /** Replies handled at once (different accounts). Default 64. */
  readonly concurrency?: number
  /** Default 1,024. */
  readonly maxAckPending?: number
  /** Default 5. */
  readonly maxDeliver?: number
  /** The channel actors' policy, to give a handler time for all its retries. */
  readonly delivery?: DeliveryPolicy.DeliveryPolicyOptions
}

const decodeDelivery = Schema.decodeUnknown(Schema.parseJson(OutboundDelivery))

export const layer = (options: OutboundConsumerOptions = {}) =>
  Layer.scopedDiscard(Effect.gen(function* () {
    const bus = yield* Bus
    const actors = yield* ChannelActors
    yield* bus.ensureStream(OutboundStream)
    const worstCase = DeliveryPolicy.worstCase(DeliveryPolicy.resolve(options.delivery))

    yield* bus.consume(
      {
        stream: OutboundStream.name,
        name: options.name ?? "channels",
        ordering: "key",
        concurrency: options.concurrency ?? 64,
        maxAckPending: options.maxAckPending ?? 1024,
        maxDeliver: options.maxDeliver ?? 5,
        handlerTimeout: Duration.sum(worstCase, Duration.seconds(30)),
      },
      (busMessage) =>
        Effect.gen(function* () {
          const decoded = yield* decodeDelivery(new TextDecoder().decode(busMessage.data)).pipe(
            Effect.either,
          )
          if (decoded._tag === "Left") {
            return Disposition.DeadLetter({
              reason: `not a valid OutboundDelivery: ${decoded.left.message}`,
            })
          }
          const { message } = decoded.right
          const report = yield* actors.ask(channelActorKey(message.channel, message.account), {
            _tag: "Deliver",
            messageId: message.id,
          })
          if (report._tag === "Missing") {
            return Disposition.DeadLetter({ reason: `no outgoing message ${message.id} is stored` })
          }
          const current = report.message
          if (current.delivery.state === "queued") return
          yield* publishEvent(bus, `${current.id}:${current.delivery.state}`, {
            type: "message.delivery_changed",
            version: 1,
            id: newId.event(),
            occurredAt: new Date(),
            conversationId: current.conversationId,
            messageId: current.id,
            seq: current.seq,
            channel: current.channel,
            account: current.account,
            externalId: current.externalId,
            delivery: current.delivery,
            ...(report.attempts > 0 ? { attempts: report.attempts } : {}),
          })
        }).pipe(Effect.withSpan("OutboundConsumer.handle")),
    )
    yield* Effect.logInfo("outbound consumer started").pipe(
      Effect.annotateLogs({ stream: OutboundStream.name }),
    )
  }))
