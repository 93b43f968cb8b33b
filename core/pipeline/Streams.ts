/**
 * The streams of the message pipeline and the subjects on them: one place, so whoever publishes
 * and whoever consumes agree.
 *
 * ```
 * channel ─▶ inbound.<channel>  ─▶ conversation actors ─▶ store ─▶ events.<type> ─▶ inbox, SSE, bots…
 * reply   ─▶ outbound.<channel> ─▶ channel actors ─▶ provider
 * ```
 */
import type { StreamSpec } from "../bus/Bus.ts"

/** What customers wrote, as channels publish it (`InboundMessage`), until a conversation stored it. */
export const InboundStream: StreamSpec = {
  name: "inbound",
  subjects: ["inbound.>"],
  maxAge: "7 days",
}

/**
 * What happened (`ChorusEvent`): the log clients replay from. Its stream sequence is the event
 * number clients see (`id:` in the SSE stream, `Last-Event-ID` on reconnect).
 */
export const EventsStream: StreamSpec = {
  name: "events",
  subjects: ["events.>"],
  maxAge: "30 days",
}

/** Replies waiting to leave through their channel. */
export const OutboundStream: StreamSpec = {
  name: "outbound",
  subjects: ["outbound.>"],
  maxAge: "7 days",
}

export const pipelineStreams: ReadonlyArray<StreamSpec> = [
  InboundStream,
  EventsStream,
  OutboundStream,
]

/** `inbound.telegram`: channel names are already valid subject tokens (see `ChannelName`). */
export const inboundSubject = (channel: string): string => `inbound.${channel}`

/** Ordering key of inbound messages: one sender on one account, in the order they wrote. */
export const inboundKey = (channel: string, account: string, senderExternalId: string): string =>
  `${channel}:${encodeURIComponent(account)}:${encodeURIComponent(senderExternalId)}`

/** `events.message.received` for event type `message.received`. */
export const eventSubject = (type: string): string => `events.${type}`

export const outboundSubject = (channel: string): string => `outbound.${channel}`

/**
 * Ordering key of replies: one conversation, whose replies go out in the order they were written
 * (different conversations of one account go out concurrently, within its bulkhead).
 */
export const outboundKey = (conversationId: string): string => conversationId
