/** Builds the web inbox into plugins/inbox/public/; returns the files and their sizes. */
export declare const buildInbox: () => Promise<Array<{ name: string; size: number }>>
export declare const inboxUiDir: string
export declare const inboxPublicDir: string
