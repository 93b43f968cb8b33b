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
  }
  files: Array<FileToFetch>
  skip?: undefined
}
export declare const e164: (phone: unknown) => string | undefined
export declare const filesOf: (message: unknown) => Array<FileToFetch>
/** `Converted`, or `{ skip: reason }` for an update Chorus does not take. */
// deno-lint-ignore no-explicit-any -- a Bot API Update in, either shape out (tests read both)
export declare const toInbound: (account: string, update: any) => any
