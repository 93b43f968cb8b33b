/**
 * Rows of the conversation tables as domain values, for the store and the read side.
 * Times are epoch milliseconds in bigint columns, which PostgreSQL returns as strings, and flags
 * are 0/1 integers: every conversion happens here.
 */
import type { Attachment, InboundAttachment } from "../../schemas/Common.ts"
import { newId } from "../../core/ids.ts"
import type { ChannelIdentity, Contact } from "../../schemas/Contact.ts"
import type { InboundMessage } from "../../schemas/Inbound.ts"
import type { ChannelReason, IncomingMessage, Message } from "../../schemas/Message.ts"
import type { Conversation, ConversationStatus } from "../../schemas/Conversation.ts"
import type {
  AccountId,
  ChannelIdentityId,
  ChannelName,
  ContactId,
  ConversationId,
  ExternalId,
  MessageId,
  OperatorId,
  TeamId,
} from "../../schemas/Ids.ts"
import type {
  ChannelIdentityRow,
  ContactRow,
  ConversationRow,
  MessageRow,
  NewMessage,
} from "../../core/storage/ConversationTables.ts"

/**
 * Thrown inside an append's transaction when the conversation was resolved since its actor last
 * loaded it (another node's actor resolved it): the transaction rolls back and the actor, which
 * restarts on it, reloads the status and answers `Closed`. Only possible with several nodes.
 */
export class ResolvedMeanwhile extends Error {
  constructor(readonly conversationId: string) {
    super(`conversation ${conversationId} was resolved meanwhile (by another node)`)
  }
}

/** Epoch milliseconds from a bigint column (a string on PostgreSQL). */
export const millis = (value: number | string): number => Number(value)

const date = (value: number | string): Date => new Date(millis(value))
const dateOrNull = (value: number | string | null): Date | null =>
  value === null ? null : date(value)

export const toContact = (
  row: Pick<ContactRow, "id" | "name" | "created_at" | "updated_at">,
): Contact => ({
  id: row.id as ContactId,
  name: row.name,
  createdAt: date(row.created_at),
  updatedAt: date(row.updated_at),
})

export const toIdentity = (row: ChannelIdentityRow): ChannelIdentity => ({
  id: row.id as ChannelIdentityId,
  contactId: row.contact_id as ContactId,
  channel: row.channel as ChannelName,
  account: row.account as AccountId,
  externalId: row.external_id as ExternalId,
  name: row.name,
  phone: row.phone,
  email: row.email,
  verification: row.verification as ChannelIdentity["verification"],
  reachable: Number(row.reachable) === 1,
  createdAt: date(row.created_at),
  lastSeenAt: dateOrNull(row.last_seen_at),
})

export const toConversation = (row: ConversationRow): Conversation => ({
  id: row.id as ConversationId,
  contactId: row.contact_id as ContactId,
  status: row.status as ConversationStatus,
  assigneeId: row.assignee_id as Conversation["assigneeId"],
  lastChannel: row.last_channel !== null && row.last_account !== null &&
      row.last_identity_id !== null
    ? {
      channel: row.last_channel as ChannelName,
      account: row.last_account as AccountId,
      identityId: row.last_identity_id as ChannelIdentityId,
    }
    : null,
  lastSeq: Number(row.last_seq),
  createdAt: date(row.created_at),
  updatedAt: date(row.updated_at),
  lastMessageAt: dateOrNull(row.last_message_at),
  resolvedAt: dateOrNull(row.resolved_at),
  teamId: (row.team_id ?? null) as TeamId | null,
  assignedAt: dateOrNull(row.assigned_at ?? null),
  waitingSince: dateOrNull(row.waiting_since ?? null),
  snoozedUntil: dateOrNull(row.snoozed_until ?? null),
  unreadCount: Number(row.unread_count ?? 0),
})

/** A new message's attachments, each given its id here: as the message shows them, as stored. */
export const newAttachments = (
  attachments: ReadonlyArray<InboundAttachment>,
): { readonly list: ReadonlyArray<Attachment>; readonly json: string } => {
  if (attachments.length === 0) return NO_ATTACHMENTS
  const list = attachments.map((a): Attachment => ({
    id: newId.attachment(),
    name: a.name,
    mimeType: a.mimeType,
    size: a.size,
    ...(a.url !== undefined ? { url: a.url } : {}),
    ...(a.storageKey !== undefined ? { storageKey: a.storageKey } : {}),
  }))
  // A URL writes itself as its href.
  return { list, json: JSON.stringify(list) }
}
const NO_ATTACHMENTS = { list: [], json: "[]" } as const

/** The `attachments` column of a new message: each attachment gets its id here. */
export const attachmentsJson = (attachments: ReadonlyArray<InboundAttachment>): string =>
  newAttachments(attachments).json

export const parseAttachments = (json: string): ReadonlyArray<Attachment> =>
  (JSON.parse(json) as Array<Record<string, unknown>>).map((a) => ({
    ...a,
    ...(typeof a["url"] === "string" ? { url: new URL(a["url"]) } : {}),
  })) as unknown as ReadonlyArray<Attachment>

/** A message row; `channel_reason` may be left out (rows built before it existed). */
export type MessageRowLike = Omit<MessageRow, "channel_reason"> & {
  readonly channel_reason?: string | null
}

/**
 * The inbound message just written as `row`, built from the values in hand: what `toMessage`
 * reads back from that row, without parsing and converting it again.
 */
export const newIncomingMessage = (
  row: NewMessage,
  m: InboundMessage,
  attachments: ReadonlyArray<Attachment>,
): IncomingMessage => ({
  id: row.id as MessageId,
  conversationId: row.conversation_id as ConversationId,
  seq: row.seq,
  text: m.text,
  attachments,
  createdAt: new Date(row.created_at),
  direction: "in",
  channel: m.channel,
  account: m.account,
  identityId: row.identity_id as ChannelIdentityId,
  externalId: m.externalId,
  sentAt: m.sentAt,
  receivedAt: m.receivedAt,
  ...(m.payload !== undefined ? { payload: m.payload } : {}),
})

export const toMessage = (row: MessageRowLike): Message => {
  const base = {
    id: row.id as MessageId,
    conversationId: row.conversation_id as ConversationId,
    seq: Number(row.seq),
    text: row.text,
    attachments: parseAttachments(row.attachments),
    createdAt: date(row.created_at),
  }
  if (row.direction === "in") {
    return {
      ...base,
      direction: "in",
      channel: row.channel as ChannelName,
      account: row.account as AccountId,
      identityId: row.identity_id as ChannelIdentityId,
      externalId: row.external_id as ExternalId,
      sentAt: date(row.sent_at ?? row.created_at),
      receivedAt: date(row.received_at ?? row.created_at),
      ...(row.payload != null ? { payload: row.payload } : {}),
    }
  }
  if (row.direction === "out") {
    const at = date(row.delivery_at ?? row.created_at)
    return {
      ...base,
      direction: "out",
      channel: row.channel as ChannelName,
      account: row.account as AccountId,
      identityId: row.identity_id as ChannelIdentityId,
      externalId: row.external_id as ExternalId | null,
      authorId: row.author_id as OperatorId | null,
      delivery: row.delivery_state === "failed"
        ? { state: "failed", at, error: JSON.parse(row.delivery_error ?? "{}") }
        : {
          state: (row.delivery_state ?? "queued") as "queued" | "sent" | "delivered" | "read",
          at,
        },
      ...(row.buttons != null ? { buttons: JSON.parse(row.buttons) } : {}),
      ...(row.fallback_of != null ? { fallbackOf: row.fallback_of as MessageId } : {}),
      ...(row.fallback_to != null ? { fallbackTo: row.fallback_to as MessageId } : {}),
      ...(row.channel_reason != null ? { channelReason: row.channel_reason as ChannelReason } : {}),
    }
  }
  return {
    ...base,
    direction: "note",
    authorId: row.author_id as OperatorId | null,
    mentions: JSON.parse(row.mentions ?? "[]") as Array<OperatorId>,
  }
}
