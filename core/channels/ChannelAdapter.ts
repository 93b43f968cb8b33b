/**
 * The channel adapter contract: how the core hands a reply to a channel (Telegram, e-mail, the
 * built-in `api` webhook) without knowing any of them by name. A channel actor (actors/channel)
 * calls `send` once per attempt; timeouts and retries are its business (`DeliveryPolicy.ts`),
 * so an adapter makes one provider call and says, by the error's type, whether another try can
 * help.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import * as ChannelAdapter from "./core/channels/ChannelAdapter.ts"
 * import type { ChannelName, ExternalId } from "./schemas/Ids.ts"
 *
 * // A channel that prints replies instead of sending them.
 * const printer: ChannelAdapter.ChannelAdapter = {
 *   channel: "console" as ChannelName,
 *   capabilities: { maxTextLength: 4096, attachments: false },
 *   send: (message, recipient) =>
 *     Effect.sync(() => {
 *       console.log(`to ${recipient.externalId}: ${message.text}`)
 *       return { externalId: message.id as unknown as ExternalId }
 *     }),
 * }
 * const adapters = ChannelAdapter.layer([printer]) // Layer<ChannelAdapters>
 * ```
 */
import { Context, Data, type Duration, type Effect, Layer, Option } from "effect"
import type { ChannelIdentity } from "../../schemas/Contact.ts"
import type { DeliverySettings } from "../../schemas/DeliverySettings.ts"
import type { ChannelName, ExternalId } from "../../schemas/Ids.ts"
import type { OutgoingMessage, ProviderError } from "../../schemas/Message.ts"

/** What a channel can carry; the reply API refuses what the channel cannot send. */
export interface ChannelCapabilities {
  /** Longest text, in UTF-16 code units (JavaScript string length). */
  readonly maxTextLength: number
  /** Whether replies may carry attachments. */
  readonly attachments: boolean
  /** Whether replies may carry buttons (an inline keyboard). */
  readonly buttons: boolean
}

/** The provider accepted the message. */
export interface SendReceipt {
  /** The provider's id of the sent message (for delivery receipts and replies-to). */
  readonly externalId: ExternalId
}

/**
 * The provider could not take the message now (down, overloaded, rate-limited, timed out):
 * sending it again later may succeed.
 */
export class ProviderUnavailable extends Data.TaggedError("ProviderUnavailable")<{
  /** The provider's code (`503`, `429`, `timeout`, `network`). */
  readonly code: string
  readonly reason: string
  /** The provider asked to wait this long before the next try (HTTP `Retry-After`). */
  readonly retryAfter?: Duration.Duration | undefined
}> {
  override get message() {
    return `provider unavailable (${this.code}): ${this.reason}`
  }
}

/**
 * The provider refused the message for good (bad recipient, blocked, malformed), or there is no
 * way to send it at all (no adapter, channel not configured): retrying cannot help.
 */
export class ProviderRejected extends Data.TaggedError("ProviderRejected")<{
  readonly code: string
  readonly reason: string
  /**
   * Nothing sent to this recipient can arrive (the person blocked the bot, left, the address
   * bounces): the identity is marked unreachable.
   */
  readonly unreachable?: boolean | undefined
}> {
  override get message() {
    return `provider rejected the message (${this.code}): ${this.reason}`
  }
}

export type SendError = ProviderUnavailable | ProviderRejected

export const isRetryable = (error: SendError): error is ProviderUnavailable =>
  error._tag === "ProviderUnavailable"

/** A send error as stored on a failed message and shown to operators. */
export const toProviderError = (error: SendError): ProviderError => ({
  code: error.code,
  message: error.reason,
  retryable: isRetryable(error),
})

export interface ChannelAdapter {
  readonly channel: ChannelName
  readonly capabilities: ChannelCapabilities
  /** The channel's delivery defaults (its provider's published limits); see core/delivery. */
  readonly delivery?: DeliverySettings | undefined
  /**
   * Send `message` to `recipient` (an identity on `message.account` of this channel): one
   * provider call, no retries. Must be safe to call again for the same message after a crash:
   * pass `message.id` to the provider as its idempotency key where it has one.
   */
  readonly send: (
    message: OutgoingMessage,
    recipient: ChannelIdentity,
  ) => Effect.Effect<SendReceipt, SendError>
}

/** The adapters this node can send through, by channel. */
export interface ChannelAdaptersShape {
  readonly get: (channel: string) => Option.Option<ChannelAdapter>
  readonly channels: ReadonlyArray<ChannelName>
}

export class ChannelAdapters extends Context.Tag("chorus/core/ChannelAdapters")<
  ChannelAdapters,
  ChannelAdaptersShape
>() {}

export const make = (adapters: ReadonlyArray<ChannelAdapter>): ChannelAdaptersShape => {
  const byChannel = new Map<string, ChannelAdapter>(adapters.map((a) => [a.channel, a]))
  return {
    get: (channel) => Option.fromNullable(byChannel.get(channel)),
    channels: [...byChannel.values()].map((a) => a.channel),
  }
}

export const layer = (adapters: ReadonlyArray<ChannelAdapter>): Layer.Layer<ChannelAdapters> =>
  Layer.succeed(ChannelAdapters, make(adapters))

/** Why a message on a channel without an adapter fails (never silently dropped). */
export const noAdapter = (channel: string): ProviderRejected =>
  new ProviderRejected({
    code: "no_adapter",
    reason: `no adapter for channel ${channel} is installed on this node; the reply cannot be sent`,
  })
