/**
 * Support for the identity tests: a Chorus server (ReplyServer's, SQLite + embedded bus by
 * default), customers' messages published on the inbound stream as a channel plugin publishes
 * them, and the Profile API called with the server's token.
 */
import { Effect, Schema } from "effect"
import type { BusShape } from "../../core/bus/Bus.ts"
import { inboundKey, inboundSubject } from "../../core/pipeline/Streams.ts"
import type { ChorusEvent } from "../../schemas/Events.ts"
import { InboundMessage, inboundMessageId } from "../../schemas/Inbound.ts"
import { request } from "../api/ApiServer.ts"
import { eventually } from "../api/ReplyServer.ts"

const decodeInbound = Schema.decodeUnknownSync(InboundMessage)
const encodeInbound = Schema.encodeSync(Schema.parseJson(InboundMessage))

let clock = Date.parse("2026-11-24T09:00:00Z")

export interface CustomerMessage {
  readonly channel: string
  readonly account: string
  readonly sender: {
    readonly externalId: string
    readonly name?: string
    readonly phone?: string
    readonly email?: string
    readonly verified?: boolean
  }
  readonly externalId: string
  readonly text: string
  readonly inReplyTo?: ReadonlyArray<string>
}

/** Publish a customer's message on the inbound stream, as a channel plugin does. */
export const publish = (bus: BusShape, message: CustomerMessage) =>
  Effect.suspend(() => {
    clock += 60_000
    const inbound = decodeInbound({
      ...message,
      sentAt: new Date(clock).toISOString(),
      receivedAt: new Date(clock + 500).toISOString(),
    })
    return bus.publish(
      inboundSubject(inbound.channel),
      new TextEncoder().encode(encodeInbound(inbound)),
      {
        id: inboundMessageId(inbound),
        key: inboundKey(inbound.channel, inbound.account, inbound.sender.externalId),
      },
    )
  })

/** Publish and wait until the pipeline stored it (its `message.received` event). */
export const deliver = (
  bus: BusShape,
  events: ReadonlyArray<ChorusEvent>,
  message: CustomerMessage,
) =>
  publish(bus, message).pipe(
    Effect.zipRight(eventually(`${message.externalId} stored`, () =>
      received(events, message.externalId) !== undefined)),
    Effect.map(() =>
      received(events, message.externalId)!
    ),
  )

export const received = (events: ReadonlyArray<ChorusEvent>, externalId: string) => {
  const event = events.find((e) =>
    e.type === "message.received" && e.message.externalId === externalId
  )
  return event?.type === "message.received" ? event.message : undefined
}

export const ofType = <T extends ChorusEvent["type"]>(
  events: ReadonlyArray<ChorusEvent>,
  type: T,
) => events.filter((e): e is Extract<ChorusEvent, { type: T }> => e.type === type)

/** Call the API; fail the test with the answer when the status is not `status`. */
export const api = (
  server: { readonly url: string; readonly token: string },
  path: string,
  options: { readonly method?: string; readonly body?: unknown; readonly status?: number } = {},
) =>
  request(`${server.url}/api/v1${path}`, {
    token: server.token,
    ...(options.method !== undefined ? { method: options.method } : {}),
    ...(options.body !== undefined ? { body: options.body } : {}),
  }).pipe(
    Effect.flatMap((answer) =>
      answer.status === (options.status ?? 200)
        ? Effect.succeed(answer.body as any)
        : Effect.dieMessage(`${options.method ?? "GET"} ${path}: ${answer.status} ${answer.text}`)
    ),
  )
