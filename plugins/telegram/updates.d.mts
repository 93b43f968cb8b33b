/** Types of updates.mjs (a plain JavaScript module: the plugin needs no build step). */
export interface FileToFetch {
  fileId: string
  name: string
  mimeType: string
  size?: number
}
export interface Converted {
  inbound: {
    account: string
    sender: { externalId: string; name?: string; phone?: string; verified?: boolean }
    externalId: string
    text: string
    sentAt: number
    /** A deep link's parameter, a pressed button's callback data. */
    payload?: string
  }
  files: Array<FileToFetch>
  /** For a pressed button: answered once the press is stored. */
  callbackQueryId?: string
  skip?: undefined
}
export declare const e164: (phone: unknown) => string | undefined
export declare const filesOf: (message: unknown) => Array<FileToFetch>
/** `Converted`, or `{ skip: reason }` for an update Chorus does not take. */
// deno-lint-ignore no-explicit-any -- a Bot API Update in, either shape out (tests read both)
export declare const toInbound: (account: string, update: any) => any
