/** Types of webhook.mjs (a plain JavaScript module: the plugin needs no build step). */
export interface MediaToFetch {
  mediaId: string
  name: string
  mimeType: string
  sha256?: string
}
export interface Inbound {
  sender: { externalId: string; name?: string; phone?: string; verified?: boolean }
  externalId: string
  text: string
  sentAt?: number
  payload?: string
  inReplyTo?: Array<string>
}
export interface DeliveryStatus {
  externalId: string
  state: "delivered" | "read" | "failed"
  at?: number
  error?: { code: string; reason: string }
  unreachable?: boolean
}
export interface Parsed {
  messages: Array<{ phoneNumberId: string; inbound: Inbound; files: Array<MediaToFetch> }>
  statuses: Array<{ phoneNumberId: string; status: DeliveryStatus; recipient: string }>
  skipped: Array<string>
}
export declare const signatureValid: (
  appSecret: string,
  body: Uint8Array,
  header: unknown,
) => Promise<boolean>
export declare const signatureOf: (appSecret: string, body: Uint8Array) => Promise<string>
/** A business-scoped user id (WhatsApp usernames): `US.13491208655302741918`. */
export declare const BSUID: RegExp
export declare const e164: (waId: unknown) => string | undefined
export declare const mediaOf: (message: unknown) => Array<MediaToFetch>
export declare const contactCardText: (card: unknown) => string
export declare const locationOf: (location: unknown) => { text: string; payload: string }
export declare const inboundOf: (
  value: unknown,
  message: unknown,
) => { inbound: Inbound; files: Array<MediaToFetch> }
export declare const statusOf: (status: unknown) => DeliveryStatus | undefined
/** Throws on a body that is not a WhatsApp Business webhook. */
export declare const parseWebhook: (body: unknown) => Parsed
