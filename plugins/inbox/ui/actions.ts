/**
 * What the inbox does: sign-in, loading the list and a conversation, sending, changing a
 * conversation, and applying live events. Each updates the store (store.ts) from the API's
 * answers (api.ts); components call these and read the store.
 */
import { api, ApiError, setCsrfToken, whenUnauthorized } from "./api.ts"
import { connectEvents, type EventConnection } from "./events.ts"
import { setLocale, t } from "./i18n.ts"
import { chime, systemNotification } from "./notify.ts"
import {
  appendRows,
  emptyTimeline,
  getState,
  inView,
  mergeMessages,
  type PendingMessage,
  previewOf,
  resetState,
  setState,
  type State,
  type Timeline,
  upsertRow,
} from "./store.ts"
import type {
  Conversation,
  InboxConversation,
  InboxEvent,
  InboxStatus,
  InboxView,
  Locale,
  Message,
  Presence,
  SessionInfo,
} from "./types.ts"

const FIRST_LIST_PAGE = 200
const LIST_PAGE = 1000
const FIRST_HISTORY_PAGE = 50
const HISTORY_PAGE = 200

const message = (error: unknown) =>
  error instanceof ApiError ? error.message : String((error as Error)?.message ?? error)

// ---------------------------------------------------------------------------------------------
// Toasts

let toastIds = 0

export const toast = (text: string, kind: "info" | "error" = "info", conversationId?: string) => {
  const id = ++toastIds
  setState((s) => ({
    toasts: [...s.toasts.slice(-4), {
      id,
      text,
      kind,
      ...(conversationId ? { conversationId } : {}),
    }],
  }))
  setTimeout(() => dismissToast(id), kind === "error" ? 10_000 : 6_000)
}

export const dismissToast = (id: number) =>
  setState((s) => ({ toasts: s.toasts.filter((x) => x.id !== id) }))

// ---------------------------------------------------------------------------------------------
// Session

let connection: EventConnection | undefined

const signedIn = (session: SessionInfo) => {
  setCsrfToken(session.csrfToken)
  setLocale(session.operator.locale)
  resetState({ phase: "signedIn", session })
  void loadDirectory()
  // The list is read once the stream is open, so nothing falls between the two (an event after
  // the list's answer is on the stream). A stream that cannot open does not hold the list back.
  let listed = false
  const listOnce = () => {
    if (listed) return
    listed = true
    void loadList()
    void loadCounts()
  }
  setTimeout(listOnce, 2000)
  connection?.close()
  connection = connectEvents({
    onEvent: applyEvent,
    onStatus: (live) => {
      setState((s) => ({ live, everLive: s.everLive || live }))
      if (live) listOnce()
    },
    onResync: () => {
      void loadList()
      void loadCounts()
      const open = getState().selectedId
      if (open !== null) void refreshTimeline(open)
    },
    onRefused: async () => {
      try {
        await api.session()
        return true
      } catch (error) {
        if (error instanceof ApiError && error.status === 401) {
          signedOut()
          return false
        }
        return true
      }
    },
  })
}

const signedOut = () => {
  assignees.clear()
  connection?.close()
  connection = undefined
  setCsrfToken("")
  resetState({ phase: "signedOut" })
}

whenUnauthorized(() => {
  if (getState().phase === "signedIn") signedOut()
})

/** At start: an existing session (the cookie) goes straight to the inbox. */
export const boot = async () => {
  try {
    signedIn(await api.session())
  } catch {
    resetState({ phase: "signedOut" })
  }
}

export const login = async (email: string, password: string, totp?: string) => {
  const session = await api.login({ email, password, ...(totp ? { totp } : {}) })
  signedIn(session)
}

export const logout = async (everywhere: boolean) => {
  try {
    await (everywhere ? api.logoutEverywhere() : api.logout())
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 401)) {
      toast(t("action.failed", { message: message(error) }), "error")
      return
    }
  }
  signedOut()
}

const withOperator = (operator: SessionInfo["operator"]) =>
  setState((s) => (s.session ? { session: { ...s.session, operator } } : {}))

export const changePresence = async (presence: Presence) => {
  try {
    withOperator(await api.setPresence(presence))
  } catch (error) {
    toast(t("action.failed", { message: message(error) }), "error")
  }
}

export const changeLocale = async (locale: Locale) => {
  setLocale(locale)
  const session = getState().session
  if (session === null) {
    setState({})
    return
  }
  withOperator({ ...session.operator, locale })
  try {
    withOperator(await api.setLocale(locale))
  } catch (error) {
    toast(t("action.failed", { message: message(error) }), "error")
  }
}

// ---------------------------------------------------------------------------------------------
// The list

let listGeneration = 0
let listAbort: AbortController | undefined

/** Load the list for the current view and filters: a first page, then the rest page by page. */
export const loadList = async () => {
  const generation = ++listGeneration
  listAbort?.abort()
  const abort = new AbortController()
  listAbort = abort
  setState({ rows: [], listLoading: true, listMore: false, listError: null })
  const { view, status, channel } = getState()
  let cursor: string | undefined
  let limit = FIRST_LIST_PAGE
  try {
    while (true) {
      const page = await api.conversations(
        { view, status: status || undefined, channel: channel || undefined, cursor, limit },
        abort.signal,
      )
      if (generation !== listGeneration) return
      for (const row of page.conversations) assignees.set(row.id, row.assigneeId)
      setState((s) => ({
        rows: appendRows(s.rows, page.conversations),
        listLoading: false,
        listMore: page.nextCursor !== null,
      }))
      if (page.nextCursor === null) return
      cursor = page.nextCursor
      limit = LIST_PAGE
    }
  } catch (error) {
    if (generation !== listGeneration || (error as Error).name === "AbortError") return
    setState({ listLoading: false, listMore: false, listError: message(error) })
  }
}

export const setFilters = (
  change: { view?: InboxView; status?: InboxStatus | ""; channel?: string },
) => {
  setState(change)
  void loadList()
}

let countsTimer: ReturnType<typeof setTimeout> | undefined

export const loadCounts = async () => {
  try {
    const counts = await api.counts()
    setState({ counts })
  } catch {
    // The tabs show no counts until the next try.
  }
}

/** Counts follow events, at most twice a second. */
const countsSoon = () => {
  if (countsTimer !== undefined) return
  countsTimer = setTimeout(() => {
    countsTimer = undefined
    void loadCounts()
  }, 500)
}

/** Operators, teams and canned answers: what pickers offer. */
export const loadDirectory = async () => {
  const [operators, teams, canned] = await Promise.allSettled([
    api.operators(),
    api.teams(),
    api.cannedResponses(),
  ])
  setState({
    ...(operators.status === "fulfilled" ? { operators: operators.value.operators } : {}),
    ...(teams.status === "fulfilled" ? { teams: teams.value.teams } : {}),
    ...(canned.status === "fulfilled" ? { canned: canned.value.cannedResponses } : {}),
  })
}

// ---------------------------------------------------------------------------------------------
// A conversation

const patchTimeline = (id: string, change: (t: Timeline) => Partial<Timeline>) =>
  setState((s) => {
    const current = s.timelines[id] ?? emptyTimeline
    return { timelines: { ...s.timelines, [id]: { ...current, ...change(current) } } }
  })

/** Open a conversation: its newest page first; its contact for the card. */
export const openConversation = async (id: string) => {
  const s = getState()
  setState({ selectedId: id, page: "inbox" })
  if (s.selectedId !== id) history.replaceState(null, "", `#/c/${encodeURIComponent(id)}`)
  const existing = s.timelines[id]
  const loads: Array<Promise<unknown>> = [loadConversation(id)]
  if (existing === undefined || !existing.loaded) loads.push(refreshTimeline(id))
  await Promise.all(loads)
  markReadSoon(id)
}

const loadConversation = async (id: string) => {
  try {
    const conversation = await api.conversation(id)
    setState((s) => ({ opened: { ...s.opened, [id]: conversation } }))
    void loadContact(conversation.contactId)
  } catch (error) {
    patchTimeline(id, () => ({ error: message(error) }))
  }
}

export const loadContact = async (contactId: string) => {
  const [contact, conversations] = await Promise.allSettled([
    api.contact(contactId),
    api.contactConversations(contactId),
  ])
  setState((s) => ({
    ...(contact.status === "fulfilled"
      ? { contacts: { ...s.contacts, [contactId]: contact.value } }
      : {}),
    ...(conversations.status === "fulfilled"
      ? {
        contactConversations: {
          ...s.contactConversations,
          [contactId]: conversations.value.conversations,
        },
      }
      : {}),
  }))
}

/** The newest page, merged into what is there (after opening, or a gap in the events). */
export const refreshTimeline = async (id: string) => {
  try {
    const page = await api.messages(id, undefined, FIRST_HISTORY_PAGE)
    patchTimeline(id, (tl) => ({
      messages: mergeMessages(tl.messages, page.messages),
      nextBefore: tl.loaded ? tl.nextBefore : page.nextBefore,
      loaded: true,
    }))
  } catch (error) {
    patchTimeline(id, () => ({ error: message(error), loaded: true }))
  }
}

/** The next older page (scrolling up). */
export const loadOlder = async (id: string) => {
  const tl = getState().timelines[id]
  if (tl === undefined || tl.loadingOlder || tl.nextBefore === null || !tl.loaded) return
  patchTimeline(id, () => ({ loadingOlder: true }))
  try {
    const page = await api.messages(id, tl.nextBefore, HISTORY_PAGE)
    patchTimeline(id, (cur) => ({
      messages: mergeMessages(cur.messages, page.messages),
      nextBefore: page.nextBefore,
      loadingOlder: false,
    }))
  } catch (error) {
    patchTimeline(id, () => ({ loadingOlder: false }))
    toast(t("error.generic", { message: message(error) }), "error")
  }
}

let readTimer: ReturnType<typeof setTimeout> | undefined

/** Tell the server the operator saw the open conversation up to its newest message. */
export const markReadSoon = (id: string) => {
  if (readTimer !== undefined) clearTimeout(readTimer)
  readTimer = setTimeout(() => {
    readTimer = undefined
    const s = getState()
    if (s.selectedId !== id || document.visibilityState !== "visible") return
    const messages = s.timelines[id]?.messages ?? []
    const seq = messages.length > 0 ? messages[messages.length - 1]!.seq : 0
    const row = s.rows.find((r) => r.id === id)
    if (seq === 0 || (row !== undefined && (row.unreadCount ?? 0) === 0)) return
    api.markRead(id, seq).catch(() => {})
    setState((st) => ({
      rows: st.rows.map((r) => (r.id === id ? { ...r, unreadCount: 0 } : r)),
    }))
  }, 400)
}

const randomId = () =>
  typeof crypto.randomUUID === "function"
    ? crypto.randomUUID()
    : [...crypto.getRandomValues(new Uint8Array(16))].map((b) => b.toString(16).padStart(2, "0"))
      .join("")

/** Send a reply or a note: shown at once as "sending", replaced by the stored message. */
export const send = async (
  conversationId: string,
  draft: Omit<PendingMessage, "clientId" | "createdAt" | "error">,
) => {
  const pending: PendingMessage = {
    ...draft,
    clientId: randomId(),
    createdAt: new Date().toISOString(),
  }
  patchTimeline(conversationId, (tl) => ({ pending: [...tl.pending, pending] }))
  await deliver(conversationId, pending)
}

/** Try a pending message again, with the same clientId: the server stores it once. */
export const retry = (conversationId: string, clientId: string) => {
  const pending = getState().timelines[conversationId]?.pending.find((p) => p.clientId === clientId)
  if (pending === undefined) return
  const { error: _, ...again } = pending
  patchTimeline(conversationId, (tl) => ({
    pending: tl.pending.map((p) => (p.clientId === clientId ? again : p)),
  }))
  void deliver(conversationId, again)
}

const deliver = async (conversationId: string, p: PendingMessage) => {
  try {
    const stored: Message = p.direction === "note"
      ? await api.note(conversationId, {
        text: p.text,
        mentions: [...p.mentions],
        clientId: p.clientId,
      })
      : await api.reply(conversationId, {
        text: p.text,
        clientId: p.clientId,
        ...(p.identityId ? { identityId: p.identityId } : {}),
        ...(p.attachments.length > 0 ? { attachments: [...p.attachments] } : {}),
      })
    patchTimeline(conversationId, (tl) => ({
      messages: mergeMessages(tl.messages, [stored]),
      pending: tl.pending.filter((x) => x.clientId !== p.clientId),
    }))
    touchRow(conversationId, stored)
  } catch (error) {
    patchTimeline(conversationId, (tl) => ({
      pending: tl.pending.map((x) =>
        x.clientId === p.clientId ? { ...x, error: message(error) } : x
      ),
    }))
  }
}

const conversationChanged = (conversation: Conversation) =>
  setState((s) => {
    const row = s.rows.find((r) => r.id === conversation.id)
    const opened = s.opened[conversation.id]
    const patch: { -readonly [K in keyof State]?: State[K] } = {}
    if (opened !== undefined) {
      patch.opened = { ...s.opened, [conversation.id]: { ...opened, ...conversation } }
    }
    const past = s.contactConversations[conversation.contactId]
    if (past?.some((p) => p.id === conversation.id)) {
      patch.contactConversations = {
        ...s.contactConversations,
        [conversation.contactId]: past.map((p) => (p.id === conversation.id ? conversation : p)),
      }
    }
    const contact = row?.contact ?? opened?.contact
    if (contact !== undefined) {
      const next: InboxConversation = {
        ...row,
        ...conversation,
        contact,
        preview: row?.preview ?? null,
      }
      patch.rows = upsertRow(s.rows, next, inView(s, next))
    }
    return patch
  })

const act = async (run: () => Promise<Conversation>) => {
  try {
    const changed = await run()
    assignees.set(changed.id, changed.assigneeId)
    conversationChanged(changed)
    countsSoon()
  } catch (error) {
    toast(t("action.failed", { message: message(error) }), "error")
  }
}

export const changeStatus = (id: string, status: InboxStatus, snoozedUntil?: Date) =>
  act(() =>
    api.setStatus(id, {
      status,
      ...(snoozedUntil ? { snoozedUntil: snoozedUntil.toISOString() } : {}),
    })
  )

export const assign = (id: string, assigneeId: string | null, teamId?: string | null) =>
  act(() => api.assign(id, { assigneeId, ...(teamId !== undefined ? { teamId } : {}) }))

export const assignToMe = (id: string) => {
  const me = getState().session?.operator.id
  return me === undefined ? Promise.resolve() : assign(id, me)
}

// ---------------------------------------------------------------------------------------------
// Live events

const touchRow = (conversationId: string, m: Message) =>
  setState((s) => {
    const row = s.rows.find((r) => r.id === conversationId)
    if (row === undefined || (row.preview !== null && row.preview.at > m.createdAt)) return {}
    const updatedAt = row.updatedAt > m.createdAt ? row.updatedAt : m.createdAt
    // As the server counts them: a customer's message is unread and makes them wait (and opens
    // a pending or snoozed conversation); an answer ends both.
    const counters = m.direction === "in"
      ? {
        unreadCount: (row.unreadCount ?? 0) + 1,
        waitingSince: row.waitingSince ?? m.createdAt,
        status: "open" as const,
        snoozedUntil: null,
      }
      : m.direction === "out"
      ? { unreadCount: 0, waitingSince: null }
      : {}
    const next = {
      ...row,
      ...counters,
      preview: previewOf(m),
      lastSeq: Math.max(row.lastSeq, m.seq),
      updatedAt,
    }
    return { rows: upsertRow(s.rows, next, true) }
  })

/** A conversation the list has no row for: fetched with its contact and newest message. */
const fetching = new Set<string>()
const fetchRow = async (conversation: Conversation) => {
  if (fetching.has(conversation.id)) return
  fetching.add(conversation.id)
  try {
    const [full, newest] = await Promise.all([
      api.conversation(conversation.id),
      api.messages(conversation.id, undefined, 1),
    ])
    setState((s) => {
      const known = s.rows.find((r) => r.id === conversation.id)
      const latest = full.updatedAt > conversation.updatedAt ? full : { ...full, ...conversation }
      const { contact: _, ...fields } = latest
      const m = newest.messages[0]
      const preview = m !== undefined ? previewOf(m) : null
      // The list (or an event) may have brought it meanwhile: that row wins, the preview fills in.
      const row: InboxConversation = known !== undefined
        ? { ...known, preview: known.preview ?? preview }
        : { ...fields, contact: full.contact, preview }
      return { rows: upsertRow(s.rows, row, inView(s, row)) }
    })
  } catch {
    // Not visible to this operator after all.
  } finally {
    fetching.delete(conversation.id)
  }
}

const contactName = (conversationId: string) => {
  const s = getState()
  const c = s.rows.find((r) => r.id === conversationId)?.contact ??
    s.opened[conversationId]?.contact
  return c?.name ?? t("list.unknownContact")
}

/**
 * Who each conversation the page has heard of is assigned to, also those outside the list's
 * view: a customer's message in a conversation of mine is announced whatever the list shows.
 */
const assignees = new Map<string, string | null>()

const assigneeOf = (conversationId: string) => {
  const known = assignees.get(conversationId)
  if (known !== undefined) return known
  const s = getState()
  return s.rows.find((r) => r.id === conversationId)?.assigneeId ??
    s.opened[conversationId]?.assigneeId ?? null
}

/** Toast, chime and (page hidden) a system notification. */
const alert = (title: string, body: string, conversationId: string) => {
  const s = getState()
  const looking = s.selectedId === conversationId && document.visibilityState === "visible"
  if (looking) return
  toast(body === "" ? title : `${title}: ${body.slice(0, 120)}`, "info", conversationId)
  chime()
  systemNotification(title, body, () => void openConversation(conversationId))
}

/** How long "… is typing" stays after the event (the sender repeats it while typing). */
const TYPING_SHOWN_MS = 5000

const setTyping = (conversationId: string, who: string, until: number | null) =>
  setState((s) => {
    const current = { ...s.typing[conversationId] }
    if (until === null) {
      if (current[who] === undefined) return {}
      delete current[who]
    } else current[who] = until
    return { typing: { ...s.typing, [conversationId]: current } }
  })

let lastTypingSent = 0

/** Tell the others (and the customer's channel) I am typing: at most once every two seconds. */
export const typing = (conversationId: string) => {
  const now = Date.now()
  if (now - lastTypingSent < 2000) return
  lastTypingSent = now
  api.typing(conversationId).catch(() => {})
}

const applyMessage = (m: Message) => {
  // Whoever wrote it has stopped typing.
  setTyping(m.conversationId, m.direction === "in" ? "customer" : m.authorId ?? "", null)
  setState((s) => {
    const tl = s.timelines[m.conversationId]
    if (tl === undefined || !tl.loaded) return {}
    return {
      timelines: {
        ...s.timelines,
        [m.conversationId]: { ...tl, messages: mergeMessages(tl.messages, [m]) },
      },
    }
  })
  touchRow(m.conversationId, m)
}

export const applyEvent = (event: InboxEvent) => {
  const s = getState()
  const me = s.session?.operator.id
  switch (event.type) {
    case "conversation.opened":
    case "conversation.updated": {
      const c = event.conversation
      const before = assigneeOf(c.id)
      assignees.set(c.id, c.assigneeId)
      const known = s.rows.some((r) => r.id === c.id) || s.opened[c.id] !== undefined
      if (known) conversationChanged(c)
      else if (inView(s, c)) void fetchRow(c)
      const assignedNow = c.assigneeId === me && me !== undefined &&
        (event.type === "conversation.opened" || before !== me)
      if (assignedNow) alert(t("notify.assigned"), "", c.id)
      countsSoon()
      return
    }
    case "message.received": {
      applyMessage(event.message)
      if (assigneeOf(event.message.conversationId) === me) {
        alert(
          t("notify.message", { name: contactName(event.message.conversationId) }),
          event.message.text,
          event.message.conversationId,
        )
      }
      if (s.selectedId === event.message.conversationId) markReadSoon(s.selectedId)
      return
    }
    case "message.sent":
      applyMessage(event.message)
      return
    case "message.note_added": {
      applyMessage(event.message)
      const note = event.message
      if (
        note.direction === "note" && me !== undefined && (note.mentions ?? []).includes(me) &&
        note.authorId !== me
      ) {
        const author = s.operators.find((o) => o.id === note.authorId)?.name ?? "?"
        alert(t("notify.mention", { name: author }), note.text, note.conversationId)
      }
      return
    }
    case "message.delivery_changed":
      setState((st) => {
        const tl = st.timelines[event.conversationId]
        if (tl === undefined) return {}
        return {
          timelines: {
            ...st.timelines,
            [event.conversationId]: {
              ...tl,
              messages: tl.messages.map((m) =>
                m.id === event.messageId && m.direction === "out"
                  ? { ...m, delivery: event.delivery }
                  : m
              ),
            },
          },
        }
      })
      return
    case "conversation.typing": {
      // A replayed (caught-up) one is old news.
      const age = Date.now() - Date.parse(event.occurredAt)
      const who = event.by === "customer" ? "customer" : event.operatorId ?? ""
      if (age > TYPING_SHOWN_MS || who === "" || who === me) return
      setTyping(event.conversationId, who, Date.now() + TYPING_SHOWN_MS)
      return
    }
    case "channel.health_changed":
      setState((st) => ({ healthEvents: st.healthEvents + 1 }))
      return
    case "channel.alert": {
      const role = getState().session?.operator.role
      if (role === "admin" || role === "supervisor") {
        toast(
          t(event.kind === "down" ? "delivery.alertDown" : "delivery.alertRecovered", {
            channel: `${event.channel} · ${event.account}`,
            reason: event.reason,
          }),
          event.kind === "down" ? "error" : "info",
        )
      }
      return
    }
    case "operator.updated": {
      const o = event.operator
      setState((st) => ({
        operators: st.operators.some((x) => x.id === o.id)
          ? st.operators.map((x) => (x.id === o.id ? o : x))
          : [...st.operators, o],
      }))
      if (o.id === me) {
        const { load: _, ...operator } = o
        withOperator(operator)
      }
      return
    }
    default:
      return
  }
}
