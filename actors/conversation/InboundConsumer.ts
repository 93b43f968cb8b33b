/**
 * Where a customer's message goes after its channel published it: the `inbound` stream is
 * consumed in order per sender (`ordering: "key"`), the sender is resolved to a contact and an
 * open conversation, the conversation's actor stores the message with the next sequence number,
 * and the events follow on the `events` stream. Only then is the bus message acknowledged, so a
 * crash anywhere before repeats the whole step — and every step is idempotent:
 *
 * - sender and conversation are found-or-created;
 * - the actor answers `Duplicate` for a message it already stored;
 * - events are published with ids derived from what they describe (`message.received:<id>`),
 *   so the bus de-duplicates a repeat, and they are published for a duplicate too, in case the
 *   crash came between the commit and the publish.
 *
 * A payload that is not a valid `InboundMessage` can never succeed: it is dead-lettered at
 * once, with the decoding error as the reason.
 */
import { Effect, Either, Layer, Schema } from "effect"
import { Bus, Disposition } from "../../core/bus/Bus.ts"
import { newId } from "../../core/ids.ts"
import { observeInboundLatency } from "../../core/metrics/CoreMetrics.ts"
import { publishEvent } from "../../core/pipeline/Events.ts"
import { EventsStream, InboundStream, pipelineStreams } from "../../core/pipeline/Streams.ts"
import { InboundMessage } from "../../schemas/Inbound.ts"
import { IdentityGraph } from "../../core/identity/IdentityGraph.ts"
import { ConversationActors } from "./ConversationActor.ts"
import { ConversationStore } from "./ConversationStore.ts"

export interface InboundConsumerOptions {
  /** Durable consumer name. Default `conversations`. */
  readonly name?: string
  /**
   * Messages handled at once (different senders). Default 256: a handler mostly waits (for the
   * group commit's fsync, for the bus to confirm its events), so the slots, not the CPU, capped
   * throughput at 64 once the machine was busy.
   */
  readonly concurrency?: number
  /** Default 1,024. */
  readonly maxAckPending?: number
  /** Default 5. */
  readonly maxDeliver?: number
}

const decodeInbound = Schema.decodeUnknownEither(Schema.parseJson(InboundMessage))

const stamp = () => ({ id: newId.event(), occurredAt: new Date() })

export const layer = (options: InboundConsumerOptions = {}) =>
  Layer.scopedDiscard(Effect.gen(function* () {
    const bus = yield* Bus
    const store = yield* ConversationStore
    const actors = yield* ConversationActors
    const graph = yield* IdentityGraph
    for (const stream of pipelineStreams) yield* bus.ensureStream(stream)

    yield* bus.consume(
      {
        stream: InboundStream.name,
        name: options.name ?? "conversations",
        ordering: "key",
        concurrency: options.concurrency ?? 256,
        maxAckPending: options.maxAckPending ?? 1024,
        maxDeliver: options.maxDeliver ?? 5,
      },
      (message) =>
        Effect.gen(function* () {
          // Published by this process a moment ago: the value itself, not its bytes decoded.
          const decoded = message.local !== undefined
            ? Either.right(message.local as InboundMessage)
            : decodeInbound(new TextDecoder().decode(message.data))
          if (decoded._tag === "Left") {
            return Disposition.DeadLetter({
              reason: `not a valid InboundMessage: ${decoded.left.message}`,
            })
          }
          const inbound = decoded.right
          const resolved = yield* store.resolveSender(inbound)
          // What the message proves about its sender may merge their contact into another.
          const contactId = yield* graph.observe(resolved, inbound)
          const sender = contactId === resolved.contact.id
            ? resolved
            : { ...(yield* store.resolveSender(inbound)), contactCreated: resolved.contactCreated }
          // An answer to a message of an open conversation of this contact stays in that thread.
          const thread = yield* store.threadConversation(sender.contact.id, inbound)
          let { conversation } = thread._tag === "Some"
            ? { conversation: thread.value }
            : yield* store.openConversation(sender.contact.id, sender.identity)
          let reply = yield* actors.ask(conversation.id, {
            _tag: "AppendInbound",
            identityId: sender.identity.id,
            inbound,
          })
          // Resolved since we last looked: the message opens the contact's next conversation.
          for (let attempt = 0; reply._tag === "Closed"; attempt++) {
            if (attempt === 3) {
              return yield* Effect.dieMessage(
                `conversation ${conversation.id} stays closed to a new message of its contact`,
              )
            }
            yield* store.forgetOpenConversation(sender.contact.id, conversation.id)
            conversation = (yield* store.openConversation(sender.contact.id, sender.identity))
              .conversation
            reply = yield* actors.ask(conversation.id, {
              _tag: "AppendInbound",
              identityId: sender.identity.id,
              inbound,
            })
          }
          const result = reply
          // Events, in the order a reader expects them. The contact's very first message also
          // (re)publishes contact.created: after a crash between creating the contact and
          // publishing, the redelivery finds the contact already there.
          if (
            sender.contactCreated ||
            (result.message.seq === 1 &&
              (yield* store.isFirstConversation(sender.contact.id, conversation.id)))
          ) {
            yield* publishEvent(bus, resolved.contact.id, {
              type: "contact.created",
              version: 1,
              ...stamp(),
              contact: resolved.contact,
            })
          }
          if (result.message.seq === 1) {
            yield* publishEvent(bus, conversation.id, {
              type: "conversation.opened",
              version: 1,
              ...stamp(),
              conversation,
            })
          }
          if (result._tag === "Stored" && result.previousStatus === "pending") {
            const reopened = yield* store.conversation(conversation.id)
            if (reopened._tag === "Some") {
              yield* publishEvent(bus, `${conversation.id}:${result.message.seq}`, {
                type: "conversation.updated",
                version: 1,
                ...stamp(),
                conversation: reopened.value,
                changed: ["status"],
              })
            }
          }
          yield* publishEvent(bus, result.message.id, {
            type: "message.received",
            version: 1,
            ...stamp(),
            message: result.message,
          })
          // A redelivered duplicate would count its first attempt's wait again.
          if (result._tag === "Stored") {
            observeInboundLatency(
              inbound.channel,
              (Date.now() - message.publishedAt.getTime()) / 1_000,
            )
          }
        }),
    )
    yield* Effect.logInfo("inbound consumer started").pipe(
      Effect.annotateLogs({ stream: InboundStream.name, events: EventsStream.name }),
    )
  }))
