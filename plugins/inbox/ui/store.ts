/**
 * The inbox's state in one place: a plain object replaced on every change, listeners notified,
 * and `useStore(select)` re-rendering a component only when what it selected changed. The
 * updates that events and answers share (upsert a row, add a message) are pure functions here;
 * actions.ts does the I/O.
 */
import { useEffect, useReducer, useRef } from "preact/hooks"
import type {
  CannedResponse,
  ContactWithIdentities,
  Conversation,
  ConversationWithContact,
  Counts,
  InboxConversation,
  InboxStatus,
  InboxView,
  Message,
  OperatorLoad,
  SessionInfo,
  Team,
} from "./types.ts"

/** A reply or note shown at once, until the server's stored message replaces it. */
export interface PendingMessage {
  readonly clientId: string
  readonly direction: "out" | "note"
  readonly text: string
  readonly attachments: ReadonlyArray<
    { name: string; mimeType: string; size: number; storageKey: string }
  >
  readonly identityId?: string
  readonly mentions: ReadonlyArray<string>
  readonly createdAt: string
  readonly error?: string
}

export interface Timeline {
  /** Ascending `seq`. */
  readonly messages: ReadonlyArray<Message>
  /** `before` for the next older page; null once the oldest page is here. */
  readonly nextBefore: number | null
  readonly loaded: boolean
  readonly loadingOlder: boolean
  readonly error?: string
  readonly pending: ReadonlyArray<PendingMessage>
}

export interface Toast {
  readonly id: number
  readonly text: string
  readonly conversationId?: string
  readonly kind: "info" | "error"
}

export type Page = "inbox" | "queue" | "people" | "delivery"

export interface State {
  readonly phase: "booting" | "signedOut" | "signedIn"
  readonly session: SessionInfo | null
  readonly page: Page
  /** Channel health changes seen (the delivery page reads health again on each). */
  readonly healthEvents: number
  readonly view: InboxView
  readonly status: InboxStatus | ""
  readonly channel: string
  /** The list, most recently updated first. */
  readonly rows: ReadonlyArray<InboxConversation>
  readonly listLoading: boolean
  /** More pages are still coming. */
  readonly listMore: boolean
  readonly listError: string | null
  readonly counts: Counts | null
  readonly selectedId: string | null
  /** Conversations opened in the middle pane (not necessarily in the list's view). */
  readonly opened: Readonly<Record<string, ConversationWithContact>>
  readonly timelines: Readonly<Record<string, Timeline>>
  readonly contacts: Readonly<Record<string, ContactWithIdentities>>
  readonly contactConversations: Readonly<Record<string, ReadonlyArray<Conversation>>>
  readonly operators: ReadonlyArray<OperatorLoad>
  readonly teams: ReadonlyArray<Team>
  readonly canned: ReadonlyArray<CannedResponse>
  /** The event stream is open. */
  readonly live: boolean
  /** The stream was open once: the banner shows only for a lost connection. */
  readonly everLive: boolean
  readonly toasts: ReadonlyArray<Toast>
  /**
   * Who is typing where, until when (ms): by conversation, `customer` or an operator's id.
   * Ephemeral: shown a few seconds after the event, cleared by that party's message.
   */
  readonly typing: Readonly<Record<string, Readonly<Record<string, number>>>>
  readonly notificationPermission: NotificationPermission | "unsupported"
}

const initial: State = {
  phase: "booting",
  session: null,
  page: "inbox",
  healthEvents: 0,
  view: "mine",
  status: "open",
  channel: "",
  rows: [],
  listLoading: false,
  listMore: false,
  listError: null,
  counts: null,
  selectedId: null,
  opened: {},
  timelines: {},
  contacts: {},
  contactConversations: {},
  operators: [],
  teams: [],
  canned: [],
  live: false,
  everLive: false,
  toasts: [],
  typing: {},
  notificationPermission: typeof Notification === "undefined"
    ? "unsupported"
    : Notification.permission,
}

let state: State = initial
const listeners = new Set<() => void>()

export const getState = (): State => state

export const setState = (change: Partial<State> | ((s: State) => Partial<State>)) => {
  const patch = typeof change === "function" ? change(state) : change
  state = { ...state, ...patch }
  for (const listener of listeners) listener()
}

/** Back to the signed-out state (keeps nothing of the previous operator). */
export const resetState = (patch: Partial<State> = {}) => {
  state = { ...initial, notificationPermission: state.notificationPermission, ...patch }
  for (const listener of listeners) listener()
}

/** Select part of the state; the component re-renders when the selection changes (`Object.is`). */
export const useStore = <A>(select: (s: State) => A): A => {
  const [, force] = useReducer((n: number) => n + 1, 0)
  const selected = select(state)
  const last = useRef(selected)
  last.current = selected
  const selector = useRef(select)
  selector.current = select
  useEffect(() => {
    const listener = () => {
      if (!Object.is(selector.current(state), last.current)) force(0)
    }
    listeners.add(listener)
    listener()
    return () => {
      listeners.delete(listener)
    }
  }, [])
  return selected
}

// ---------------------------------------------------------------------------------------------
// Pure updates

/** The inbox's status of a conversation: `snoozed` is `pending` with a `snoozedUntil`. */
export const inboxStatus = (c: Conversation): InboxStatus => {
  const status = c.status as string
  if (status === "snoozed") return "snoozed"
  if (c.status === "pending" && c.snoozedUntil) return "snoozed"
  return c.status
}

/** Whether a conversation belongs in the list as the operator filtered it. */
export const inView = (s: State, c: Conversation): boolean => {
  const me = s.session?.operator.id
  if (s.view === "mine" && c.assigneeId !== me) return false
  if (s.view === "unassigned" && c.assigneeId !== null) return false
  if (s.status !== "" && inboxStatus(c) !== s.status) return false
  if (s.channel !== "" && c.lastChannel?.channel !== s.channel) return false
  return true
}

const newerFirst = (a: InboxConversation, b: InboxConversation) =>
  a.updatedAt < b.updatedAt ? 1 : a.updatedAt > b.updatedAt ? -1 : a.id < b.id ? 1 : -1

/** Put a row in the list at its place (or take it out when it left the view). */
export const upsertRow = (
  rows: ReadonlyArray<InboxConversation>,
  row: InboxConversation,
  keep: boolean,
): ReadonlyArray<InboxConversation> => {
  const without = rows.filter((r) => r.id !== row.id)
  if (!keep) return without.length === rows.length ? rows : without
  // Most updates move a row to the top: find its place without sorting everything.
  let i = 0
  while (i < without.length && newerFirst(without[i]!, row) < 0) i++
  return [...without.slice(0, i), row, ...without.slice(i)]
}

/** Add pages of rows (a later page never replaces a row an event already brought). */
export const appendRows = (
  rows: ReadonlyArray<InboxConversation>,
  page: ReadonlyArray<InboxConversation>,
): ReadonlyArray<InboxConversation> => {
  const known = new Set(rows.map((r) => r.id))
  const fresh = page.filter((r) => !known.has(r.id))
  return fresh.length === 0 ? rows : [...rows, ...fresh]
}

export const emptyTimeline: Timeline = {
  messages: [],
  nextBefore: null,
  loaded: false,
  loadingOlder: false,
  pending: [],
}

/** Merge messages into a timeline by id, kept in `seq` order. */
export const mergeMessages = (
  messages: ReadonlyArray<Message>,
  incoming: ReadonlyArray<Message>,
): ReadonlyArray<Message> => {
  if (incoming.length === 0) return messages
  // An older page: everything goes before what is there.
  const first = messages[0]
  if (first !== undefined && incoming.every((m) => m.seq < first.seq)) {
    return [...[...incoming].sort((a, b) => a.seq - b.seq), ...messages]
  }
  const byId = new Map(messages.map((m) => [m.id, m] as const))
  let appendOnly = true
  let last = messages.length > 0 ? messages[messages.length - 1]!.seq : 0
  for (const m of incoming) {
    if (byId.has(m.id) || m.seq <= last) appendOnly = false
    byId.set(m.id, m)
    last = Math.max(last, m.seq)
  }
  if (appendOnly) return [...messages, ...[...incoming].sort((a, b) => a.seq - b.seq)]
  return [...byId.values()].sort((a, b) => a.seq - b.seq)
}

/** What a list row shows of its newest message. */
export const previewOf = (m: Message): InboxConversation["preview"] => ({
  direction: m.direction,
  text: m.text.slice(0, 200),
  attachments: m.attachments.length,
  at: m.createdAt,
})
