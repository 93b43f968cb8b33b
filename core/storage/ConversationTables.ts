/**
 * Tables of the conversation domain: contacts, their channel identities, conversations and
 * messages. Times are epoch milliseconds (bigint columns: PostgreSQL returns them as strings,
 * so readers convert); flags are 0/1 integers, so one set of queries serves SQLite and
 * PostgreSQL.
 */
import type { ColumnType, Insertable, Selectable, Updateable } from "kysely"

type Millis = number | string
type Flag = number

export interface ContactsTable {
  id: string
  name: string | null
  created_at: Millis
  updated_at: Millis
  /** Row version: every merge, split and edit bumps it (compare-and-set). Default 1. */
  version: ColumnType<number, number | undefined, number>
  /** Set when merged into another contact (kept so a split can restore it). */
  merged_into: ColumnType<string | null, string | null | undefined, string | null>
  /** `lower(name)`, for prefix search. */
  name_lower: ColumnType<string | null, string | null | undefined, string | null>
  /** JSON object of custom fields. Default `{}`. */
  custom: ColumnType<string, string | undefined, string>
}

export interface ChannelIdentitiesTable {
  id: string
  contact_id: string
  channel: string
  account: string
  external_id: string
  name: string | null
  phone: string | null
  email: string | null
  /** unverified | claimed | verified */
  verification: string
  reachable: Flag
  created_at: Millis
  last_seen_at: Millis | null
}

export interface ConversationsTable {
  id: string
  contact_id: string
  /** open | pending | resolved */
  status: string
  assignee_id: string | null
  last_channel: string | null
  last_account: string | null
  last_identity_id: string | null
  last_seq: number
  created_at: Millis
  updated_at: Millis
  last_message_at: Millis | null
  resolved_at: Millis | null
  /** The team that owns the conversation (from its inbox, or a transfer); null: admins only. */
  team_id: ColumnType<string | null, string | null | undefined, string | null>
  /** When the current assignee got it. */
  assigned_at: ColumnType<Millis | null, Millis | null | undefined, Millis | null>
  /** Since when the customer waits for an answer (their oldest unanswered message). */
  waiting_since: ColumnType<Millis | null, Millis | null | undefined, Millis | null>
  /** `pending` until this time, then open again. */
  snoozed_until: ColumnType<Millis | null, Millis | null | undefined, Millis | null>
  /** When the current assignee first answered since being assigned. */
  assignee_replied_at: ColumnType<Millis | null, Millis | null | undefined, Millis | null>
  /** The operator who last let it go back to the queue unanswered (not offered to them next). */
  requeued_from: ColumnType<string | null, string | null | undefined, string | null>
  /** When the customer was told their place in line (once). */
  queue_announced_at: ColumnType<Millis | null, Millis | null | undefined, Millis | null>
  /** Customer messages since an operator last read the conversation. */
  unread_count: ColumnType<number, number | undefined, number>
}

export interface MessagesTable {
  id: string
  conversation_id: string
  seq: number
  /** in | out | note */
  direction: string
  channel: string | null
  account: string | null
  identity_id: string | null
  external_id: string | null
  author_id: string | null
  text: string
  /** JSON array of attachments. */
  attachments: string
  /** queued | sent | delivered | read | failed (outgoing only). */
  delivery_state: string | null
  delivery_at: Millis | null
  /** JSON of the provider's error when failed. */
  delivery_error: string | null
  sent_at: Millis | null
  received_at: Millis | null
  created_at: Millis
  /** Outgoing only: the client's idempotency key, unique per conversation. */
  client_id: ColumnType<string | null, string | null | undefined, string | null>
  /** Outgoing only: send attempts so far (retries included). Default 0. */
  delivery_attempts: ColumnType<number, number | undefined, number>
  /** Outgoing only: JSON rows of buttons shown under it. */
  buttons: ColumnType<string | null, string | null | undefined, string | null>
  /** Incoming only: a pressed button's payload, a deep link's parameter. */
  payload: ColumnType<string | null, string | null | undefined, string | null>
  /** Notes only: JSON array of the operator ids the note mentions. */
  mentions: ColumnType<string | null, string | null | undefined, string | null>
  /** Outgoing only: why it went out on its channel (`last_used`, `operator_choice`). */
  channel_reason: ColumnType<string | null, string | null | undefined, string | null>
  /** Outgoing only: the reply this one was sent instead of (a fallback copy). */
  fallback_of: ColumnType<string | null, string | null | undefined, string | null>
  /** Outgoing only: the fallback copy sent instead of this reply. */
  fallback_to: ColumnType<string | null, string | null | undefined, string | null>
}

export interface DeliveryAttemptsTable {
  message_id: string
  attempt: number
  channel: string
  account: string
  started_at: Millis
  duration_ms: number
  /** sent | unavailable | rejected | timeout */
  outcome: string
  code: string | null
  reason: string | null
}

export interface OutboundDeadLettersTable {
  message_id: string
  conversation_id: string
  channel: string
  account: string
  code: string
  reason: string
  attempts: number
  dead_at: Millis
  resolved_at: ColumnType<Millis | null, Millis | null | undefined, Millis | null>
  resolved_by: ColumnType<string | null, string | null | undefined, string | null>
  /** retried | discarded */
  resolution: ColumnType<string | null, string | null | undefined, string | null>
}

export interface ConversationTables {
  contacts: ContactsTable
  channel_identities: ChannelIdentitiesTable
  conversations: ConversationsTable
  messages: MessagesTable
  delivery_attempts: DeliveryAttemptsTable
  outbound_dead_letters: OutboundDeadLettersTable
}

export type ContactRow = Selectable<ContactsTable>
export type ChannelIdentityRow = Selectable<ChannelIdentitiesTable>
export type NewChannelIdentity = Insertable<ChannelIdentitiesTable>
export type ConversationRow = Selectable<ConversationsTable>
export type ConversationUpdate = Updateable<ConversationsTable>
export type MessageRow = Selectable<MessagesTable>
export type NewMessage = Insertable<MessagesTable>
