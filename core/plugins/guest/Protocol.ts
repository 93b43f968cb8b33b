/**
 * The wire between the plugin host and a plugin's guest runtime (`Guest.ts`): frames of calls
 * and results in both directions, plus one-way events. In a worker thread frames travel by
 * `postMessage` (structured clone); to a Deno subprocess as JSON lines on stdio, each prefixed
 * with `FRAME_MARK` so that anything else the plugin prints is told apart, bytes as
 * `{ "$bytes": "<base64>" }`. In-process, the same frames are passed as objects.
 *
 * Host → guest calls: `activate` (GuestInit), `deactivate`, `deliver` (handler, message),
 * `route` (handler, request), `send` (handler, outgoing), `ping`.
 * Guest → host calls: `secrets.get`, `bus.ensureStream`, `bus.publish`, `bus.consume`,
 * `http.fetch`, `storage.execute`, `storage.kv.get|set|delete|list`, `routes.handle`,
 * `channels.receive`, `channels.register`, `attachments.put|get|link`. Guest → host events: `log`, `metric`.
 */
import type { GuestMessage, PluginMode, SettingValue } from "./Api.ts"

export type Frame =
  | {
    readonly t: "call"
    readonly id: number
    readonly op: string
    readonly args: ReadonlyArray<unknown>
  }
  | { readonly t: "result"; readonly id: number; readonly ok: true; readonly value: unknown }
  | { readonly t: "result"; readonly id: number; readonly ok: false; readonly error: WireError }
  | { readonly t: "event"; readonly op: string; readonly args: ReadonlyArray<unknown> }

/** An error crossing the wire: `name` is the tag (`PermissionDenied`, `SecretMissing`, `Error`). */
export interface WireError {
  readonly name: string
  readonly message: string
  readonly fields?: Readonly<Record<string, unknown>>
}

/** What `activate` receives. */
export interface GuestInit {
  /** A `file:` URL of the entry module. */
  readonly entry: string
  readonly plugin: { readonly id: string; readonly version: string; readonly dir: string }
  readonly hostApiVersion: string
  readonly mode: PluginMode
  readonly settings: Readonly<Record<string, SettingValue | undefined>>
  readonly dialect: "sqlite" | "postgres"
}

/** A bus message on the wire: the handler's message without its decoding helpers. */
export type WireMessage = Omit<GuestMessage, "text" | "json">

/** The line prefix of a frame on a Deno subprocess's stdout (ASCII record separator). */
export const FRAME_MARK = "\u001e"
