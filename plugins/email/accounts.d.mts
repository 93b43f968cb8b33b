/** Types of accounts.mjs (a plain JavaScript module: the plugin needs no build step). */
export interface Server {
  host: string
  port: number
  security: "tls" | "starttls" | "none"
  user: string
}
export interface Mailbox {
  name: string
  address: string
  displayName?: string
  defaultSubject?: string
  imap?: Server & { folder: string; processed: string }
  smtp: Server & { auth: boolean }
}
export declare const parseAccounts: (text: unknown) => Array<Mailbox>
export declare const secretName: (kind: "IMAP" | "SMTP", account: string) => string
export declare const hostAllowed: (
  patterns: ReadonlyArray<string>,
  host: string,
  port: number,
) => boolean
export declare const undeclaredServers: (
  accounts: ReadonlyArray<Mailbox>,
  net: ReadonlyArray<string>,
) => Array<string>
export declare const parseListen: (text: unknown) => { host: string; port: number } | undefined
