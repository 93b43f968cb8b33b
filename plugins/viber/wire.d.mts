/** Types of wire.mjs (a plain JavaScript module: the plugin needs no build step). */
export declare const TEXT_LIMIT: 7000
export declare const PICTURE_MAX_BYTES: number
export declare const TRACKING_LIMIT: number
export declare const UNANSWERED_LIMIT: 100
export declare const UNANSWERED_WINDOW_MS: number
export declare const unansweredNext: (
  counter: { since: number; count: number } | null | undefined,
  now: number,
) => { allowed: boolean; counter: { since: number; count: number } }
export declare const signatureOf: (body: Uint8Array | string, token: string) => Promise<string>
export declare const signatureValid: (
  body: Uint8Array | string,
  signature: string | undefined,
  token: string,
) => Promise<boolean>
export declare const parseViber: (text: string) => any
export declare const splitText: (text: string, limit?: number) => Array<string>
export declare const keyboardOf: (
  rows: ReadonlyArray<ReadonlyArray<{ text: string; payload?: string; url?: string }>> | undefined,
) => { keyboard?: any; tracking?: string; refused?: string }
export declare const pressOf: (
  text: string,
  trackingData: unknown,
) => { payload: string; label: string } | undefined
export declare const failureOf: (answer: unknown) => {
  ok: false
  retryable: boolean
  code: string
  reason: string
  retryAfterMs?: number
  unreachable?: boolean
}
export declare const eventOf: (account: string, event: unknown) => any
