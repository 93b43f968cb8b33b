/** Types of send.mjs (a plain JavaScript module: the plugin needs no build step). */
export interface Failure {
  ok: false
  retryable: boolean
  code: string
  reason: string
  retryAfterMs?: number
  unreachable?: boolean
}
export interface Button {
  text: string
  payload?: string
  url?: string
}
/** Meta's published limits as delivery defaults (a manifest's `channels[].delivery`). */
export declare const DELIVERY: {
  timeout: string
  pacing: {
    account: { limit: number; interval: string }
    recipient: { limit: number; interval: string }
  }
}
export declare const TEXT_LIMIT: 4096
export declare const CAPTION_LIMIT: 1024
export declare const BUTTON_BODY_LIMIT: 1024
export declare const REPLY_BUTTONS_MAX: 3
export declare const REPLY_BUTTON_TITLE_LIMIT: 20
export declare const LIST_ROWS_MAX: 10
export declare const LIST_ROW_TITLE_LIMIT: 24
export declare const WINDOW_MS: number
export declare const splitText: (text: string, limit?: number) => Array<string>
export type MediaKind = "image" | "video" | "audio" | "sticker" | "document"
export declare const mediaKindOf: (mimeType: string, size: number) => MediaKind | undefined
export declare const captionable: (kind: MediaKind | undefined) => boolean
export declare const windowClosed: (lastInboundMs: unknown, nowMs: number) => Failure | undefined
export declare const interactiveOf: (
  body: string,
  buttons: ReadonlyArray<ReadonlyArray<Button>>,
  listLabel?: string,
) => { interactive: Record<string, any>; refusal?: undefined } | {
  refusal: Failure
  interactive?: undefined
}
export declare const failureOf: (
  status: number | undefined,
  body: unknown,
  networkError?: unknown,
) => Failure
export declare const multipartBody: (
  fields: Record<string, string>,
  file: { name: string; mimeType: string; bytes: Uint8Array },
) => { contentType: string; body: Uint8Array }
