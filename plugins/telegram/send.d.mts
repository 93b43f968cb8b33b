/** Types of send.mjs (a plain JavaScript module: the plugin needs no build step). */
export declare const TEXT_LIMIT: 4096
export declare const CAPTION_LIMIT: 1024
export declare const splitText: (text: string, limit?: number) => Array<string>
export declare const failureOf: (error: unknown) => {
  ok: false
  retryable: boolean
  code: string
  reason: string
  retryAfterMs?: number
  unreachable?: boolean
}
