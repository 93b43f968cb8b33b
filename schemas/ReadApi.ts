/**
 * The read API's query parameters and bodies: conversation lists (cursor-paginated, most
 * recently updated first), a conversation with its contact, message history pages (newest first,
 * by sequence) and a contact with its channel identities.
 */
import { ParseResult, Schema } from "effect"
import { ChannelIdentity, Contact } from "./Contact.ts"
import { Conversation, CONVERSATION_STATUSES, ConversationStatus } from "./Conversation.ts"
import { ChannelName, ConversationId, OperatorId } from "./Ids.ts"
import { Message } from "./Message.ts"

export const MAX_PAGE_SIZE = 200
export const DEFAULT_PAGE_SIZE = 50

const PageSize = Schema.NumberFromString.pipe(
  Schema.int({ message: () => `expected an integer from 1 to ${MAX_PAGE_SIZE}` }),
  Schema.between(1, MAX_PAGE_SIZE, {
    message: () => `expected an integer from 1 to ${MAX_PAGE_SIZE}`,
  }),
).annotations({ description: `Items per page, 1 to ${MAX_PAGE_SIZE}.` })

/** Where a conversation list page starts: after this (updated_at, id) in the list's order. */
export interface ConversationPosition {
  readonly updatedAt: number
  readonly id: ConversationId
}

const CURSOR_MESSAGE = "expected a cursor as returned in nextCursor"
const CURSOR_TEXT = /^(\d{1,16})\.([0-9A-HJKMNP-TV-Z]{26})$/

// base64url of an ASCII string, without padding; atob/btoa so schemas stay runtime-neutral.
const toBase64Url = (ascii: string) =>
  btoa(ascii).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "")
const fromBase64Url = (text: string): string | undefined => {
  if (!/^[A-Za-z0-9_-]{1,200}$/.test(text)) return undefined
  try {
    return atob(text.replace(/-/g, "+").replace(/_/g, "/"))
  } catch {
    return undefined
  }
}

/**
 * An opaque cursor on the wire (base64url of `<updated_at ms>.<id>`), a position in code.
 * Clients must not build or parse it: only pass back what `nextCursor` gave them.
 */
export const ConversationCursor = Schema.transformOrFail(
  Schema.String.annotations({ description: "Opaque; pass back a previous nextCursor." }),
  Schema.Struct({ updatedAt: Schema.Number, id: ConversationId }),
  {
    strict: true,
    decode: (cursor, _, ast) => {
      const match = CURSOR_TEXT.exec(fromBase64Url(cursor) ?? "")
      return match === null
        ? ParseResult.fail(new ParseResult.Type(ast, cursor, CURSOR_MESSAGE))
        : ParseResult.succeed({ updatedAt: Number(match[1]), id: match[2] as ConversationId })
    },
    encode: (position) => ParseResult.succeed(toBase64Url(`${position.updatedAt}.${position.id}`)),
  },
).annotations({ identifier: "ConversationCursor" })

/** `none` lists the conversations nobody is assigned to (the queue). */
export const AssigneeFilter = Schema.Union(OperatorId, Schema.Literal("none")).annotations({
  identifier: "AssigneeFilter",
  message: () => ({ message: "expected an operator id (a ULID) or none", override: true }),
})

const StatusFilter = ConversationStatus.annotations({
  message: () => ({
    message: `expected one of ${CONVERSATION_STATUSES.join(", ")}`,
    override: true,
  }),
})

export const ConversationListParams = Schema.Struct({
  status: Schema.optionalWith(StatusFilter, { exact: true }),
  assignee: Schema.optionalWith(AssigneeFilter, { exact: true }),
  /** The channel the customer wrote on last. */
  channel: Schema.optionalWith(ChannelName, { exact: true }),
  cursor: Schema.optionalWith(ConversationCursor, { exact: true }),
  limit: Schema.optionalWith(PageSize, { default: () => DEFAULT_PAGE_SIZE }),
})
export type ConversationListParams = typeof ConversationListParams.Type

export const ConversationList = Schema.Struct({
  /** Most recently updated first. */
  conversations: Schema.Array(Conversation),
  /** Pass as `cursor` for the next page; null on the last page. */
  nextCursor: Schema.NullOr(ConversationCursor),
}).annotations({ identifier: "ConversationList" })
export type ConversationList = typeof ConversationList.Type

export const ConversationWithContact = Schema.Struct({
  ...Conversation.fields,
  contact: Contact,
}).annotations({
  identifier: "ConversationWithContact",
  description: "A conversation and the contact it belongs to.",
})
export type ConversationWithContact = typeof ConversationWithContact.Type

export const MessageHistoryParams = Schema.Struct({
  /** Only messages with a smaller `seq` (exclusive): the previous page's `nextBefore`. */
  before: Schema.optionalWith(
    Schema.NumberFromString.pipe(
      Schema.int({ message: () => "expected a positive integer (a message seq)" }),
      Schema.positive({ message: () => "expected a positive integer (a message seq)" }),
    ),
    { exact: true },
  ),
  limit: Schema.optionalWith(PageSize, { default: () => DEFAULT_PAGE_SIZE }),
})
export type MessageHistoryParams = typeof MessageHistoryParams.Type

export const MessageHistoryPage = Schema.Struct({
  /** Newest first (descending `seq`). */
  messages: Schema.Array(Message),
  /** Pass as `before` for the next (older) page; null on the oldest page. */
  nextBefore: Schema.NullOr(Schema.Int),
}).annotations({ identifier: "MessageHistoryPage" })
export type MessageHistoryPage = typeof MessageHistoryPage.Type

export const ContactWithIdentities = Schema.Struct({
  ...Contact.fields,
  identities: Schema.Array(ChannelIdentity),
}).annotations({
  identifier: "ContactWithIdentities",
  description: "A contact and every channel identity linked to it.",
})
export type ContactWithIdentities = typeof ContactWithIdentities.Type
