/** Types of compose.mjs (a plain JavaScript module: the plugin needs no build step). */
export declare const messageIdFor: (chorusId: string, address: string) => string
export declare const replySubject: (subject: unknown, fallback: string) => string
export declare const threadHeaders: (
  thread: { subject?: string; messageId: string; references?: Array<string> } | undefined | null,
) => { inReplyTo?: string; references?: string }
export declare const textToHtml: (text: string) => string
export declare const failureOf: (error: unknown) => {
  ok: false
  retryable: boolean
  code: string
  reason: string
  unreachable?: boolean
}
