/**
 * Publishing a `ChorusEvent` on the events stream (see `Streams.ts`), for every writer of events:
 * the inbound consumer, replies, the channel actors.
 */
import { Effect } from "effect"
import type { ChorusEvent } from "../../schemas/Events.ts"
import { eventJson } from "../../schemas/Wire.ts"
import type { OutgoingMessage } from "../../schemas/Message.ts"
import type { BusShape } from "../bus/Bus.ts"
import { newId } from "../ids.ts"
import { eventSubject } from "./Streams.ts"

/**
 * Publish an event with a de-duplication id derived from what it describes
 * (`<type>:<dedupeId>`), so publishing it again after a crash is a duplicate the bus drops.
 */
export const publishEvent = (bus: BusShape, dedupeId: string, event: ChorusEvent) =>
  Effect.suspend(() =>
    bus.publish(
      eventSubject(event.type),
      // Our own, typed values: their JSON is their wire form (see schemas/Wire.ts).
      new TextEncoder().encode(eventJson(event)),
      {
        id: `${event.type}:${dedupeId}`,
        local: event,
        ...("message" in event ? { key: event.message.conversationId } : {}),
        ...("conversation" in event ? { key: event.conversation.id } : {}),
      },
    )
  )

/**
 * `message.delivery_changed` for a reply's current delivery state, de-duplicated by `dedupeId`
 * (the reply and its state, so a repeat after a crash is dropped by the bus).
 */
export const publishDeliveryChanged = (
  bus: BusShape,
  dedupeId: string,
  message: OutgoingMessage,
  attempts?: number,
) =>
  publishEvent(bus, dedupeId, {
    type: "message.delivery_changed",
    version: 1,
    id: newId.event(),
    occurredAt: new Date(),
    conversationId: message.conversationId,
    messageId: message.id,
    seq: message.seq,
    channel: message.channel,
    account: message.account,
    externalId: message.externalId,
    delivery: message.delivery,
    ...(attempts !== undefined && attempts > 0 ? { attempts } : {}),
  })
