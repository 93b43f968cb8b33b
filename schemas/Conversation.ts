/**
 * A conversation: the customer's history with the business, across channels. One conversation
 * per contact is open at a time; its messages are numbered by `seq` within it.
 */
import { Schema } from "effect"
import { ChannelRoute, Timestamp } from "./Common.ts"
import { ContactId, ConversationId, OperatorId, TeamId } from "./Ids.ts"

/**
 * Every status, in one list so adding one (the inbox will add `snoozed`) is one line here.
 * Readers must not assume the list is closed: a new status arrives with a new version of the
 * events that carry it (see `Events.ts`), so an old reader fails loudly instead of guessing.
 */
export const CONVERSATION_STATUSES = ["open", "pending", "resolved"] as const

export const ConversationStatus = Schema.Literal(...CONVERSATION_STATUSES).annotations({
  identifier: "ConversationStatus",
  description: "open: waiting on us; pending: waiting on the customer; resolved: done.",
})
export type ConversationStatus = typeof ConversationStatus.Type

export const Conversation = Schema.Struct({
  id: ConversationId,
  contactId: ContactId,
  status: ConversationStatus,
  /** The operator it is assigned to, or null while it is in the queue (or with a bot). */
  assigneeId: Schema.NullOr(OperatorId),
  /** Where the customer wrote last: replies go there unless the operator picks another. */
  lastChannel: Schema.NullOr(ChannelRoute),
  /** The `seq` of the newest message (0 before the first). */
  lastSeq: Schema.Int.pipe(Schema.nonNegative()),
  createdAt: Timestamp,
  updatedAt: Timestamp,
  lastMessageAt: Schema.NullOr(Timestamp),
  resolvedAt: Schema.NullOr(Timestamp),
  // The inbox's fields. Optional (an event written before they existed decodes without them).
  /** The team that owns it (its inbox's team, or where it was transferred); null: admins only. */
  teamId: Schema.optionalWith(Schema.NullOr(TeamId), { exact: true }),
  /** When the current assignee got it. */
  assignedAt: Schema.optionalWith(Schema.NullOr(Timestamp), { exact: true }),
  /** Since when the customer waits for an answer; null when the last word was ours. */
  waitingSince: Schema.optionalWith(Schema.NullOr(Timestamp), { exact: true }),
  /**
   * Set while the conversation is snoozed: its status is `pending` until then, and it opens
   * again at that time or when the customer writes, whichever comes first.
   */
  snoozedUntil: Schema.optionalWith(Schema.NullOr(Timestamp), { exact: true }),
  /** Customer messages since an operator last read it. */
  unreadCount: Schema.optionalWith(Schema.Int.pipe(Schema.nonNegative()), { exact: true }),
}).annotations({ identifier: "Conversation" })
export type Conversation = typeof Conversation.Type
