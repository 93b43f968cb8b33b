/**
 * Channel adapters provided by plugins (`contributes.channels` + `chorus.channels.register`),
 * seen by the core's channel actors as ordinary `ChannelAdapter`s: a send is handed to the
 * plugin's current version, and its answer classified (retryable or not) for the delivery policy.
 */
import { Duration, Effect, Option } from "effect"
import type { ChannelIdentity } from "../../schemas/Contact.ts"
import type { ChannelName, ExternalId } from "../../schemas/Ids.ts"
import type { OutgoingMessage } from "../../schemas/Message.ts"
import {
  type ChannelAdapter,
  type ChannelAdaptersShape,
  ProviderRejected,
  ProviderUnavailable,
  type SendError,
  type SendReceipt,
} from "../channels/ChannelAdapter.ts"
import type { PluginHostShape } from "./PluginHost.ts"

const adapterOf = (
  host: PluginHostShape,
  channel: string,
  capabilities: ChannelAdapter["capabilities"],
  delivery: ChannelAdapter["delivery"],
): ChannelAdapter => ({
  channel: channel as ChannelName,
  capabilities,
  ...(delivery !== undefined ? { delivery } : {}),
  send: (message: OutgoingMessage, recipient: ChannelIdentity) =>
    host.send(channel, {
      id: message.id,
      conversationId: message.conversationId,
      channel: message.channel,
      account: message.account,
      text: message.text,
      // A linked file's `url` is a URL object, which does not survive the copy to a worker or
      // a Deno subprocess (it arrives as {}): plugins get its text.
      attachments: message.attachments.map((a) =>
        a.url === undefined ? a : { ...a, url: a.url.href }
      ),
      ...(message.buttons !== undefined ? { buttons: message.buttons } : {}),
      recipient: { externalId: recipient.externalId, displayName: recipient.name ?? undefined },
    }).pipe(
      Effect.catchTag("PluginUnavailable", (e) =>
        Effect.fail(new ProviderUnavailable({ code: "plugin_unavailable", reason: e.message }))),
      Effect.flatMap((result): Effect.Effect<SendReceipt, SendError> =>
        result.ok
          ? Effect.succeed({ externalId: result.externalId as ExternalId })
          : result.retryable
          ? Effect.fail(
            new ProviderUnavailable({
              code: result.code,
              reason: result.reason,
              retryAfter: result.retryAfterMs === undefined
                ? undefined
                : Duration.millis(result.retryAfterMs),
            }),
          )
          : Effect.fail(
            new ProviderRejected({
              code: result.code,
              reason: result.reason,
              ...(result.unreachable === true ? { unreachable: true } : {}),
            }),
          )
      ),
    ),
})

/** The built-in adapters, then those of plugins for channels no built-in one has. */
export const withPluginChannels = (
  builtIn: ChannelAdaptersShape,
  host: PluginHostShape,
): ChannelAdaptersShape => ({
  get: (channel) => {
    const own = builtIn.get(channel)
    if (Option.isSome(own)) return own
    const contributed = host.channels().find((c) => c.channel === channel)
    return contributed === undefined
      ? Option.none()
      : Option.some(adapterOf(host, channel, contributed.capabilities, contributed.delivery))
  },
  get channels() {
    return [...builtIn.channels, ...host.channels().map((c) => c.channel as ChannelName)]
  },
})
