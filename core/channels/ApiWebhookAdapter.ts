/**
 * The built-in `api` channel's adapter: a reply to an `api` conversation is POSTed, signed, to
 * the client's webhook (`channels.api.webhookUrl`). This is the one channel the core ships (its
 * inbound half is `POST /api/v1/inbound`); every other channel arrives as a plugin.
 *
 * The answer decides what happens next:
 * - 2xx: sent; the provider id is the response's `id` (a JSON string) if any, else the message id;
 * - 408, 429, 5xx, a network error: `ProviderUnavailable` (retried; 429's `Retry-After` honoured);
 * - any other status: `ProviderRejected` (failed, with the status and the start of the body);
 * - no URL configured: `ProviderRejected` naming the setting to set.
 */
import { createHmac } from "node:crypto"
import { HttpClient, HttpClientRequest } from "@effect/platform"
import { Clock, Duration, Effect, Option, Redacted, Schema } from "effect"
import { ApiOutboundWebhook } from "../../schemas/ApiChannel.ts"
import type { ChannelName, ExternalId } from "../../schemas/Ids.ts"
import { MAX_REPLY_TEXT } from "../../schemas/Outbound.ts"
import {
  type ChannelAdapter,
  ProviderRejected,
  ProviderUnavailable,
  type SendReceipt,
} from "./ChannelAdapter.ts"

export const API_CHANNEL = "api" as ChannelName

export interface ApiWebhookOptions {
  readonly webhookUrl?: string | undefined
  readonly webhookSecret?: Redacted.Redacted<string> | undefined
}

export const Header = {
  signature: "x-chorus-signature",
  timestamp: "x-chorus-timestamp",
  delivery: "x-chorus-delivery",
} as const

/** `sha256=<hex>` of `"<timestamp>.<body>"`: what a receiver recomputes to verify a POST. */
export const sign = (secret: string, timestamp: string, body: string): string =>
  `sha256=${createHmac("sha256", secret).update(`${timestamp}.${body}`).digest("hex")}`

/** `Retry-After` as seconds (`120`) or an HTTP date; absent or unreadable: undefined. */
export const parseRetryAfter = (
  value: string | undefined,
  now: number,
): Duration.Duration | undefined => {
  if (value === undefined) return undefined
  const trimmed = value.trim()
  if (/^\d+$/.test(trimmed)) return Duration.seconds(Number(trimmed))
  const at = Date.parse(trimmed)
  return Number.isNaN(at) ? undefined : Duration.millis(Math.max(0, at - now))
}

const encodeWebhook = Schema.encode(ApiOutboundWebhook)
const ResponseId = Schema.parseJson(Schema.Struct({ id: Schema.NonEmptyTrimmedString }))
const decodeResponseId = Schema.decodeUnknownOption(ResponseId)

const RETRYABLE_STATUS = (status: number) => status === 408 || status === 429 || status >= 500

export const make = (
  options: ApiWebhookOptions,
): Effect.Effect<ChannelAdapter, never, HttpClient.HttpClient> =>
  Effect.gen(function* () {
    const client = yield* HttpClient.HttpClient
    const { webhookUrl, webhookSecret } = options
    if (webhookUrl !== undefined && webhookSecret === undefined) {
      yield* Effect.logWarning(
        "api channel webhook has no secret: replies are POSTed unsigned; set " +
          "channels.api.webhookSecret (CHORUS_API_WEBHOOK_SECRET)",
      )
    }

    const send: ChannelAdapter["send"] = Effect.fn("ApiWebhookAdapter.send")(
      function* (message, recipient) {
        if (webhookUrl === undefined) {
          return yield* new ProviderRejected({
            code: "not_configured",
            reason: "the api channel has no webhook to send replies to: set " +
              "channels.api.webhookUrl (env CHORUS_API_WEBHOOK_URL)",
          })
        }
        const body = JSON.stringify(
          yield* encodeWebhook({
            type: "message.outbound",
            id: message.id,
            conversationId: message.conversationId,
            account: message.account,
            recipient: { id: recipient.externalId },
            text: message.text,
            attachments: message.attachments,
            createdAt: message.createdAt,
          }).pipe(Effect.orDie),
        )
        const now = yield* Clock.currentTimeMillis
        const timestamp = String(Math.floor(now / 1000))
        const request = HttpClientRequest.post(webhookUrl).pipe(
          HttpClientRequest.bodyText(body, "application/json"),
          HttpClientRequest.setHeaders({
            [Header.delivery]: message.id,
            [Header.timestamp]: timestamp,
            ...(webhookSecret !== undefined
              ? { [Header.signature]: sign(Redacted.value(webhookSecret), timestamp, body) }
              : {}),
          }),
        )
        const response = yield* client.execute(request).pipe(
          Effect.mapError((error) =>
            new ProviderUnavailable({ code: "network", reason: error.message })
          ),
        )
        // A body we cannot read is no reason to send again: the status decides.
        const text = yield* response.text.pipe(Effect.orElseSucceed(() => ""))
        const status = response.status
        if (status >= 200 && status < 300) {
          return {
            externalId: Option.match(decodeResponseId(text), {
              onNone: () => message.id as unknown as ExternalId,
              onSome: (r) => r.id as ExternalId,
            }),
          } satisfies SendReceipt
        }
        const reason = `webhook answered ${status}${
          text.length > 0 ? `: ${text.slice(0, 500)}` : ""
        }`
        if (RETRYABLE_STATUS(status)) {
          return yield* new ProviderUnavailable({
            code: String(status),
            reason,
            retryAfter: parseRetryAfter(response.headers["retry-after"], now),
          })
        }
        return yield* new ProviderRejected({ code: String(status), reason })
      },
    )

    return {
      channel: API_CHANNEL,
      // The client's systems decide what they can show; Chorus's own limit applies.
      capabilities: { maxTextLength: MAX_REPLY_TEXT, attachments: true, buttons: true },
      send,
    } satisfies ChannelAdapter
  })
