/**
 * The inbox's bodies: the conversation list (what a row shows: contact, last message preview,
 * unread count, waiting time), conversation actions (status, assignment and transfer, notes,
 * read marks), canned answers and the supervisor's queue view.
 */
import { Schema } from "effect"
import { Timestamp } from "./Common.ts"
import { Contact } from "./Contact.ts"
import { Conversation } from "./Conversation.ts"
import { ChannelName, OperatorId, TeamId } from "./Ids.ts"
import { CannedResponseId, ConversationId } from "./Ids.ts"
import { Operator } from "./Operator.ts"
import { ConversationCursor } from "./ReadApi.ts"

export const INBOX_VIEWS = ["mine", "unassigned", "all"] as const
export const InboxView = Schema.Literal(...INBOX_VIEWS).annotations({
  identifier: "InboxView",
  description: "mine: assigned to me; unassigned: the queue; all: every conversation I may see.",
})
export type InboxView = typeof InboxView.Type

/** The inbox's statuses: `snoozed` is `pending` with a `snoozedUntil`. */
export const INBOX_STATUSES = ["open", "pending", "snoozed", "resolved"] as const
export const InboxStatus = Schema.Literal(...INBOX_STATUSES).annotations({
  identifier: "InboxStatus",
})
export type InboxStatus = typeof InboxStatus.Type

export const MAX_INBOX_PAGE = 1000

export const InboxListParams = Schema.Struct({
  view: Schema.optionalWith(InboxView, { default: () => "all" as const }),
  status: Schema.optionalWith(InboxStatus, { exact: true }),
  channel: Schema.optionalWith(ChannelName, { exact: true }),
  teamId: Schema.optionalWith(TeamId, { exact: true }),
  cursor: Schema.optionalWith(ConversationCursor, { exact: true }),
  limit: Schema.optionalWith(
    Schema.NumberFromString.pipe(Schema.int(), Schema.between(1, MAX_INBOX_PAGE)),
    { default: () => 100 },
  ),
})
export type InboxListParams = typeof InboxListParams.Type

export const MessagePreview = Schema.Struct({
  direction: Schema.Literal("in", "out", "note"),
  /** The first 200 characters; `[attachment]`-style text is the client's to render. */
  text: Schema.String,
  attachments: Schema.Int.pipe(Schema.nonNegative()),
  at: Timestamp,
}).annotations({ identifier: "MessagePreview" })
export type MessagePreview = typeof MessagePreview.Type

export const InboxConversation = Schema.Struct({
  ...Conversation.fields,
  contact: Contact,
  preview: Schema.NullOr(MessagePreview),
}).annotations({
  identifier: "InboxConversation",
  description: "A conversation as a row of the inbox's list.",
})
export type InboxConversation = typeof InboxConversation.Type

export const InboxList = Schema.Struct({
  /** Most recently updated first. */
  conversations: Schema.Array(InboxConversation),
  nextCursor: Schema.NullOr(ConversationCursor),
}).annotations({ identifier: "InboxList" })
export type InboxList = typeof InboxList.Type

export const StatusChange = Schema.Struct({
  status: InboxStatus,
  /** Required with `snoozed`: when it opens again. */
  snoozedUntil: Schema.optionalWith(Timestamp, { exact: true }),
}).annotations({ identifier: "StatusChange" })
export type StatusChange = typeof StatusChange.Type

/**
 * Assign or transfer: to a person (`assigneeId`), to a team's queue (`teamId` with
 * `assigneeId: null`), or both. `assigneeId: null` alone puts it back in its team's queue.
 */
export const AssignmentChange = Schema.Struct({
  assigneeId: Schema.NullOr(OperatorId),
  teamId: Schema.optionalWith(Schema.NullOr(TeamId), { exact: true }),
}).annotations({ identifier: "AssignmentChange" })
export type AssignmentChange = typeof AssignmentChange.Type

export const MAX_NOTE_TEXT = 20_000

export const NoteRequest = Schema.Struct({
  text: Schema.String.pipe(Schema.minLength(1), Schema.maxLength(MAX_NOTE_TEXT)),
  mentions: Schema.optionalWith(Schema.Array(OperatorId).pipe(Schema.maxItems(50)), {
    default: () => [],
  }),
  clientId: Schema.optionalWith(
    Schema.String.pipe(Schema.minLength(1), Schema.maxLength(200)),
    { exact: true },
  ),
}).annotations({ identifier: "NoteRequest" })
export type NoteRequest = typeof NoteRequest.Type

export const ReadMark = Schema.Struct({
  /** The newest message seq the operator has seen. */
  seq: Schema.Int.pipe(Schema.nonNegative()),
}).annotations({ identifier: "ReadMark" })

export const CannedShortCode = Schema.String.pipe(
  Schema.pattern(/^[a-z0-9][a-z0-9_-]{0,39}$/, {
    message: () => "expected a short code: lower-case letters, digits, '_' or '-' (at most 40)",
  }),
).annotations({ identifier: "CannedShortCode" })

export const CannedResponse = Schema.Struct({
  id: CannedResponseId,
  shortCode: Schema.String,
  text: Schema.String,
  /** Null: everyone's; otherwise only that team's. */
  teamId: Schema.NullOr(TeamId),
  createdAt: Timestamp,
}).annotations({ identifier: "CannedResponse" })
export type CannedResponse = typeof CannedResponse.Type

export const NewCannedResponse = Schema.Struct({
  shortCode: CannedShortCode,
  text: Schema.String.pipe(Schema.minLength(1), Schema.maxLength(MAX_NOTE_TEXT)),
  teamId: Schema.optionalWith(Schema.NullOr(TeamId), { default: () => null }),
}).annotations({ identifier: "NewCannedResponse" })

/** An operator as the supervisor sees them: presence, load and capacity. */
export const OperatorLoad = Schema.Struct({
  ...Operator.fields,
  /** Open conversations assigned to them now. */
  load: Schema.Int.pipe(Schema.nonNegative()),
}).annotations({ identifier: "OperatorLoad" })
export type OperatorLoad = typeof OperatorLoad.Type

export const QueueEntry = Schema.Struct({
  conversationId: ConversationId,
  teamId: Schema.NullOr(TeamId),
  /** 1 is next. Per team. */
  position: Schema.Int.pipe(Schema.positive()),
  waitingSince: Schema.NullOr(Timestamp),
}).annotations({ identifier: "QueueEntry" })
export type QueueEntry = typeof QueueEntry.Type

export const QueueView = Schema.Struct({
  queue: Schema.Array(QueueEntry),
  operators: Schema.Array(OperatorLoad),
}).annotations({ identifier: "QueueView" })
export type QueueView = typeof QueueView.Type
