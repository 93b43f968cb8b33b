/**
 * Where replies leave: the `outbound` stream is consumed in order per conversation (`ordering:
 * "key"`), each reply handed to its account's channel actor, which sends it under the account's
 * policy and commits the outcome; then `message.delivery_changed` is published and only then is
 * the bus message acknowledged. A reply the actor hands back (bulkhead full, breaker open, a long
 * retry delay) is nak'ed with that delay: it stays `queued` in the store and on the bus, and the
 * worker goes on with other accounts' replies. A crash anywhere before the acknowledgement
 * repeats the step, and every step is idempotent: the actor skips a message no longer `queued`,
 * and the event (id derived from the message and its state) is published again for it.
 *
 * The same stream carries follow-ups of replies a receipt failed after they were sent
 * (`after: "failed"`): the actor falls back or dead-letters them.
 */
import { Duration, Effect, Layer, Schema } from "effect"
import { Bus, Disposition } from "../../core/bus/Bus.ts"
import * as Policy from "../../core/delivery/Policy.ts"
import { publishDeliveryChanged } from "../../core/pipeline/Events.ts"
import { OutboundStream } from "../../core/pipeline/Streams.ts"
import { OutboundDelivery } from "../../schemas/Outbound.ts"
import { ChannelActors, INLINE_BUDGET, INLINE_DELAY } from "./ChannelActor.ts"

export interface OutboundConsumerOptions {
  /** Durable consumer name. Default `channels`. */
  readonly name?: string
  /** Replies handled at once (different conversations). Default 64. */
  readonly concurrency?: number
  /** Default 1,024. */
  readonly maxAckPending?: number
  /**
   * Deliveries of one bus message before the bus dead-letters it. Hand-backs (a full bulkhead, an
   * open breaker) count, so it is high; the reply's own attempts are bounded by its policy.
   * Default 100,000.
   */
  readonly maxDeliver?: number
  /** The policy the handler timeout is sized for. Default: the built-in one. */
  readonly delivery?: Policy.DeliverySettingsInput
}

const decodeDelivery = Schema.decodeUnknown(Schema.parseJson(OutboundDelivery))

export const layer = (options: OutboundConsumerOptions = {}) =>
  Layer.scopedDiscard(Effect.gen(function* () {
    const bus = yield* Bus
    const actors = yield* ChannelActors
    yield* bus.ensureStream(OutboundStream)
    const worstCase = Policy.worstCase(
      Policy.resolve(options.delivery),
      INLINE_DELAY,
      INLINE_BUDGET,
    )

    yield* bus.consume(
      {
        stream: OutboundStream.name,
        name: options.name ?? "channels",
        ordering: "key",
        concurrency: options.concurrency ?? 64,
        maxAckPending: options.maxAckPending ?? 1024,
        maxDeliver: options.maxDeliver ?? 100_000,
        handlerTimeout: Duration.sum(worstCase, Duration.seconds(30)),
        ackWait: Duration.sum(worstCase, Duration.seconds(60)),
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
          const { message, after } = decoded.right
          const report = after === "failed"
            ? yield* actors.settleLateFailure(message.id)
            : yield* actors.deliver(message.id)
          if (report._tag === "Missing") {
            return Disposition.DeadLetter({ reason: `no outgoing message ${message.id} is stored` })
          }
          if (report._tag === "Deferred") {
            return Disposition.Nak({ delay: report.delay, reason: report.reason })
          }
          const current = report.message
          if (current.delivery.state === "queued" || after === "failed") return
          yield* publishDeliveryChanged(
            bus,
            `${current.id}:${current.delivery.state}`,
            current,
            report.attempts,
          )
        }).pipe(Effect.withSpan("OutboundConsumer.handle")),
    )
    yield* Effect.logInfo("outbound consumer started").pipe(
      Effect.annotateLogs({ stream: OutboundStream.name }),
    )
  }))
