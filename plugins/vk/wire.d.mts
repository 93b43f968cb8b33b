/** Types of wire.mjs (a plain JavaScript module: the plugin needs no build step). */
export declare const TEXT_LIMIT: 4096
export declare const API_VERSION: "5.199"
export declare const KEYBOARD: {
  rows: number
  perRow: number
  total: number
  label: number
  payload: number
}
export declare const splitText: (text: string, limit?: number) => Array<string>
export declare const randomIdOf: (id: string, part: number) => number
export declare const keyboardOf: (
  rows: ReadonlyArray<ReadonlyArray<{ text: string; payload?: string; url?: string }>> | undefined,
) => { keyboard?: unknown; refused?: string }
export declare const failureOf: (error: unknown) => {
  ok: false
  retryable: boolean
  code: string
  reason: string
  retryAfterMs?: number
  unreachable?: boolean
}
export declare const largestPhoto: (photo: unknown) => { url: string } | undefined
export declare const attachmentsOf: (message: unknown) => {
  files: Array<{ url: string; name: string; mimeType: string }>
  notes: Array<string>
}
export declare const eventOf: (account: string, event: unknown) => any
export declare const payloadText: (payload: unknown) => string | undefined
export declare const pacer: (
  limit: number,
  intervalMs: number,
  now?: () => number,
  sleep?: (ms: number) => Promise<void>,
) => () => Promise<void>
