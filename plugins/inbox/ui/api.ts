/**
 * The inbox's HTTP client: same-origin requests with the session cookie, `X-CSRF-Token` on every
 * request that changes something, and the server's errors (`{_tag, message}`) as `ApiError`s a
 * caller can tell apart by `tag`.
 */
import type {
  AssignmentChange,
  CannedResponse,
  ChannelHealth,
  ContactProfile,
  ContactWithIdentities,
  Conversation,
  ConversationWithContact,
  Counts,
  DeadLetterPage,
  InboxList,
  InboxStatus,
  InboxView,
  Locale,
  MergeRecord,
  MergeSuggestion,
  MessageHistoryPage,
  Note,
  Operator,
  OperatorLoad,
  OutboundDeadLetter,
  OutgoingMessage,
  Presence,
  QueueView,
  Role,
  SessionInfo,
  StatusChange,
  StoredFile,
  Team,
} from "./types.ts"

export class ApiError extends Error {
  constructor(
    readonly status: number,
    /** The server's `_tag` (`InvalidCredentials`, `LoginThrottled`…), or `NetworkError`. */
    readonly tag: string,
    message: string,
    readonly body: Record<string, unknown> = {},
  ) {
    super(message)
  }
}

let csrfToken = ""
let onUnauthorized: () => void = () => {}

/** The session's CSRF token, sent on every non-GET request. */
export const setCsrfToken = (token: string) => {
  csrfToken = token
}

/** Called when a request answers 401 outside sign-in: the session ended. */
export const whenUnauthorized = (handler: () => void) => {
  onUnauthorized = handler
}

interface RequestOptions {
  readonly body?: unknown
  /** Raw bytes (a file) instead of JSON. */
  readonly raw?: Blob
  readonly signal?: AbortSignal
}

const request = async <A>(method: string, path: string, options: RequestOptions = {}) => {
  const headers: Record<string, string> = { accept: "application/json" }
  if (method !== "GET" && csrfToken !== "") headers["x-csrf-token"] = csrfToken
  let body: BodyInit | undefined
  if (options.raw !== undefined) {
    body = options.raw
    headers["content-type"] = options.raw.type || "application/octet-stream"
  } else if (options.body !== undefined) {
    body = JSON.stringify(options.body)
    headers["content-type"] = "application/json"
  }
  let response: Response
  try {
    response = await fetch(`/api/v1${path}`, {
      method,
      headers,
      credentials: "same-origin",
      ...(body !== undefined ? { body } : {}),
      ...(options.signal !== undefined ? { signal: options.signal } : {}),
    })
  } catch (error) {
    if ((error as Error).name === "AbortError") throw error
    throw new ApiError(0, "NetworkError", String((error as Error).message ?? error))
  }
  if (response.status === 204) return undefined as A
  const text = await response.text()
  let json: unknown = undefined
  try {
    json = text === "" ? undefined : JSON.parse(text)
  } catch {
    // Not JSON (a proxy's page): reported below with the status.
  }
  if (!response.ok) {
    const fields = (typeof json === "object" && json !== null ? json : {}) as Record<
      string,
      unknown
    >
    const tag = String(fields["_tag"] ?? fields["error"] ?? `Http${response.status}`)
    const error = new ApiError(
      response.status,
      tag,
      String(fields["message"] ?? (text.slice(0, 200) || response.statusText)),
      fields,
    )
    if (response.status === 401 && !path.startsWith("/auth/")) onUnauthorized()
    throw error
  }
  return json as A
}

const query = (params: Record<string, string | number | undefined>) => {
  const search = new URLSearchParams()
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== "") search.set(k, String(v))
  }
  const s = search.toString()
  return s === "" ? "" : `?${s}`
}

const id = encodeURIComponent

export interface ListParams {
  readonly view: InboxView
  readonly status?: InboxStatus | undefined
  readonly channel?: string | undefined
  readonly teamId?: string | undefined
  readonly cursor?: string | undefined
  readonly limit?: number | undefined
}

export interface ReplyBody {
  readonly text: string
  readonly clientId: string
  readonly identityId?: string
  readonly attachments?: ReadonlyArray<
    { name: string; mimeType: string; size: number; storageKey: string }
  >
}

export const api = {
  login: (body: { email: string; password: string; totp?: string }) =>
    request<SessionInfo>("POST", "/auth/login", { body }),
  session: () => request<SessionInfo>("GET", "/auth/session"),
  logout: () => request<void>("POST", "/auth/logout"),
  logoutEverywhere: () => request<void>("POST", "/auth/logout-everywhere"),
  setPresence: (presence: Presence) =>
    request<Operator>("PUT", "/auth/presence", { body: { presence } }),
  setLocale: (locale: Locale) => request<Operator>("PUT", "/auth/locale", { body: { locale } }),

  conversations: (p: ListParams, signal?: AbortSignal) =>
    request<InboxList>(
      "GET",
      `/inbox/conversations${
        query({
          view: p.view,
          status: p.status,
          channel: p.channel,
          teamId: p.teamId,
          cursor: p.cursor,
          limit: p.limit,
        })
      }`,
      signal !== undefined ? { signal } : {},
    ),
  counts: () => request<Counts>("GET", "/inbox/counts"),
  conversation: (conversationId: string) =>
    request<ConversationWithContact>("GET", `/conversations/${id(conversationId)}`),
  messages: (conversationId: string, before?: number, limit = 50) =>
    request<MessageHistoryPage>(
      "GET",
      `/conversations/${id(conversationId)}/messages${query({ before, limit })}`,
    ),
  reply: (conversationId: string, body: ReplyBody) =>
    request<OutgoingMessage>("POST", `/conversations/${id(conversationId)}/messages`, { body }),
  note: (conversationId: string, body: { text: string; mentions: string[]; clientId: string }) =>
    request<Note>("POST", `/conversations/${id(conversationId)}/notes`, { body }),
  setStatus: (conversationId: string, body: StatusChange) =>
    request<Conversation>("POST", `/conversations/${id(conversationId)}/status`, { body }),
  assign: (conversationId: string, body: AssignmentChange) =>
    request<Conversation>("POST", `/conversations/${id(conversationId)}/assignment`, { body }),
  typing: (conversationId: string) =>
    request<void>("POST", `/conversations/${id(conversationId)}/typing`),
  markRead: (conversationId: string, seq: number) =>
    request<void>("POST", `/conversations/${id(conversationId)}/read`, { body: { seq } }),
  contact: (contactId: string) =>
    request<ContactWithIdentities>("GET", `/contacts/${id(contactId)}`),
  contactConversations: (contactId: string) =>
    request<{ conversations: Conversation[] }>("GET", `/contacts/${id(contactId)}/conversations`),
  // The identity graph: suggestions to merge, merge history, split.
  profile: (contactId: string) =>
    request<ContactProfile>("GET", `/contacts/${id(contactId)}/profile`),
  suggestions: (contactId: string) =>
    request<{ suggestions: MergeSuggestion[] }>(
      "GET",
      `/contacts/suggestions${query({ contactId })}`,
    ),
  merges: (contactId: string) =>
    request<{ merges: MergeRecord[] }>("GET", `/contacts/${id(contactId)}/merges`),
  acceptSuggestion: (suggestionId: string, targetId: string) =>
    request<{ suggestion: MergeSuggestion; merge: MergeRecord }>(
      "POST",
      `/contacts/suggestions/${id(suggestionId)}/accept`,
      { body: { targetId } },
    ),
  rejectSuggestion: (suggestionId: string) =>
    request<{ suggestion: MergeSuggestion }>(
      "POST",
      `/contacts/suggestions/${id(suggestionId)}/reject`,
    ),
  split: (mergeId: string, reason: string) =>
    request<MergeRecord>("POST", `/contacts/merges/${id(mergeId)}/split`, { body: { reason } }),
  operators: () => request<{ operators: OperatorLoad[] }>("GET", "/operators"),
  teams: () => request<{ teams: Team[] }>("GET", "/teams"),
  cannedResponses: () => request<{ cannedResponses: CannedResponse[] }>("GET", "/canned-responses"),
  queue: () => request<QueueView>("GET", "/queue"),
  // People and teams (admins), canned answers (supervisors for everyone's, members for a team's).
  addOperator: (body: { email: string; name: string; role: Role; password: string }) =>
    request<Operator>("POST", "/operators", { body }),
  changeOperator: (
    operatorId: string,
    body: { role?: Role; capacity?: number; disabled?: boolean; name?: string },
  ) => request<Operator>("PATCH", `/operators/${id(operatorId)}`, { body }),
  signOutOperator: (operatorId: string) =>
    request<void>("POST", `/operators/${id(operatorId)}/logout-everywhere`),
  addTeam: (name: string) => request<Team>("POST", "/teams", { body: { name } }),
  addMember: (teamId: string, operatorId: string) =>
    request<Team>("PUT", `/teams/${id(teamId)}/members/${id(operatorId)}`),
  removeMember: (teamId: string, operatorId: string) =>
    request<Team>("DELETE", `/teams/${id(teamId)}/members/${id(operatorId)}`),
  claimInbox: (teamId: string, inbox: { channel: string; account: string }) =>
    request<Team>("POST", `/teams/${id(teamId)}/inboxes`, { body: inbox }),
  releaseInbox: (teamId: string, inbox: { channel: string; account: string }) =>
    request<Team>("POST", `/teams/${id(teamId)}/inboxes/release`, { body: inbox }),
  addCanned: (body: { shortCode: string; text: string; teamId: string | null }) =>
    request<CannedResponse>("POST", "/canned-responses", { body }),
  deleteCanned: (cannedId: string) => request<void>("DELETE", `/canned-responses/${id(cannedId)}`),
  resend: (conversationId: string, messageId: string) =>
    request<OutgoingMessage>(
      "POST",
      `/conversations/${id(conversationId)}/messages/${id(messageId)}/resend`,
    ),
  channelHealth: () => request<{ channels: ChannelHealth[] }>("GET", "/channels/health"),
  deadLetters: (before?: string) =>
    request<DeadLetterPage>("GET", `/outbound/dead-letters${query({ before, limit: 50 })}`),
  retryDeadLetter: (messageId: string) =>
    request<OutgoingMessage>("POST", `/outbound/dead-letters/${id(messageId)}/retry`),
  discardDeadLetter: (messageId: string) =>
    request<OutboundDeadLetter>("POST", `/outbound/dead-letters/${id(messageId)}/discard`),
  upload: (file: File) =>
    request<StoredFile>("POST", `/attachments${query({ name: file.name })}`, { raw: file }),
}

/** Where a stored file is read from (images are shown from here). */
export const attachmentUrl = (storageKey: string) =>
  `/api/v1/attachments/${encodeURIComponent(storageKey)}`
