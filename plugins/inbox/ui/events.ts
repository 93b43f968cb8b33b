/**
 * The live connection: one `EventSource` on `/api/v1/events` (the session cookie goes with it).
 *
 * - While the browser reconnects by itself it resends `Last-Event-ID`, so the server sends
 *   exactly what was missed; events are still applied once each (ids at or below the last
 *   applied one are ignored: a replay may overlap).
 * - When the server answers the stream with an error the browser gives up; we open a new stream
 *   with a capped, jittered backoff. A new stream starts at "now", so the caller refetches what
 *   it shows (`onResync`). The same when the stream dropped before any numbered event came:
 *   the browser then has no `Last-Event-ID` to resend.
 */
import type { InboxEvent } from "./types.ts"

export const EVENT_TYPES = [
  "conversation.opened",
  "conversation.updated",
  "message.received",
  "message.sent",
  "message.note_added",
  "message.delivery_changed",
  "contact.created",
  "operator.updated",
  "conversation.typing",
  "channel.health_changed",
  "channel.alert",
] as const

export interface EventHandlers {
  readonly onEvent: (event: InboxEvent, id: number) => void
  /** Open (true) or lost (false). */
  readonly onStatus: (live: boolean) => void
  /** A new stream replaced one the server closed: events in between may be missing. */
  readonly onResync: () => void
  /** The server refused the stream; resolves whether to keep trying (false: signed out). */
  readonly onRefused: () => Promise<boolean>
}

export interface EventConnection {
  readonly close: () => void
  /** The id of the last event applied. */
  readonly lastId: () => number
}

const MAX_BACKOFF_MS = 30_000

export const connectEvents = (handlers: EventHandlers, url = "/api/v1/events"): EventConnection => {
  let lastId = 0
  let source: EventSource | undefined
  let attempt = 0
  let closed = false
  let timer: ReturnType<typeof setTimeout> | undefined
  let resync = false
  let dropped = false

  const receive = (message: MessageEvent<string>) => {
    const id = Number(message.lastEventId)
    if (message.lastEventId !== "" && Number.isFinite(id)) {
      if (id <= lastId) return
      lastId = id
    }
    let event: InboxEvent
    try {
      event = JSON.parse(message.data) as InboxEvent
    } catch {
      return
    }
    if (typeof event !== "object" || event === null) return
    if (typeof (event as { type?: unknown }).type !== "string") {
      event = { ...(event as object), type: message.type } as InboxEvent
    }
    handlers.onEvent(event, id)
  }

  const open = () => {
    if (closed) return
    const es = new EventSource(url, { withCredentials: true })
    source = es
    es.onopen = () => {
      attempt = 0
      handlers.onStatus(true)
      // A browser that got no numbered event before the drop has no Last-Event-ID to resend:
      // the server starts from now, so what happened in between is fetched instead.
      if (resync || (dropped && lastId === 0)) {
        resync = false
        handlers.onResync()
      }
    }
    es.onerror = () => {
      dropped = true
      handlers.onStatus(false)
      // CONNECTING: the browser retries by itself, with Last-Event-ID. CLOSED: it gave up.
      if (es.readyState !== EventSource.CLOSED || closed) return
      es.close()
      resync = true
      const delay = Math.min(MAX_BACKOFF_MS, 500 * 2 ** attempt) * (0.5 + Math.random() / 2)
      attempt++
      timer = setTimeout(() => {
        void handlers.onRefused().then((again) => {
          if (again) open()
        })
      }, delay)
    }
    for (const type of EVENT_TYPES) es.addEventListener(type, receive)
    es.onmessage = receive
  }

  open()
  return {
    close: () => {
      closed = true
      if (timer !== undefined) clearTimeout(timer)
      source?.close()
    },
    lastId: () => lastId,
  }
}
