/** Types of parse.mjs (a plain JavaScript module: the plugin needs no build step). */
export declare const OUR_ID: RegExp
export declare const messageIds: (value: unknown) => Array<string>
export declare const threadOf: (parsed: any) => Array<string>
export declare const autoReplyReason: (parsed: any) => string | undefined
export declare const isBounce: (parsed: any) => boolean
export interface Bounce {
  originalMessageId: string | undefined
  recipient: string | undefined
  action: string
  status: string
  reason: string
  /** Final: the mail will not arrive (Action: failed). */
  failed: boolean
  /** A 5.x.x status: the address itself is the problem. */
  hard: boolean
}
export declare const parseBounce: (parsed: any) => Bounce
export declare const trimReply: (text: unknown) => { text: string; trimmed: boolean }
export declare const htmlToText: (html: unknown) => string
/** `{ kind: "message", inbound, subject, files, original?, automatic? }`, a bounce or a skip. */
export declare const toInbound: (
  parsed: any,
  options: {
    account: string
    ownAddress?: string
    fallbackId: string
    receivedAt?: number
    senderVerified?: boolean
  },
) => any
export declare const threadRecord: (
  inbound: { externalId: string },
  subject: string,
  parsed: any,
) => { subject: string; messageId: string; references: Array<string> }
