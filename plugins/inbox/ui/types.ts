/**
 * The API's bodies as they travel (dates as ISO strings, ids as strings): the encoded side of the
 * server's own Schemas, imported as types only so the bundle carries none of Effect.
 */
import type * as AttachmentsS from "../../../schemas/Attachments.ts"
import type * as ContactS from "../../../schemas/Contact.ts"
import type * as IdentityS from "../../../schemas/Identity.ts"
import type * as ConversationS from "../../../schemas/Conversation.ts"
import type * as DeliveryS from "../../../schemas/Delivery.ts"
import type * as InboxS from "../../../schemas/Inbox.ts"
import type * as MessageS from "../../../schemas/Message.ts"
import type * as OperatorS from "../../../schemas/Operator.ts"
import type * as ReadApiS from "../../../schemas/ReadApi.ts"

export type SessionInfo = typeof OperatorS.SessionInfo.Encoded
export type Operator = typeof OperatorS.Operator.Encoded
export type Team = typeof OperatorS.Team.Encoded
export type Presence = typeof OperatorS.Presence.Type
export type Locale = typeof OperatorS.Locale.Type
export type Role = typeof OperatorS.Role.Type
export type Conversation = typeof ConversationS.Conversation.Encoded
export type InboxConversation = typeof InboxS.InboxConversation.Encoded
export type InboxList = typeof InboxS.InboxList.Encoded
export type InboxView = typeof InboxS.InboxView.Type
export type InboxStatus = typeof InboxS.InboxStatus.Type
export type StatusChange = typeof InboxS.StatusChange.Encoded
export type AssignmentChange = typeof InboxS.AssignmentChange.Encoded
export type CannedResponse = typeof InboxS.CannedResponse.Encoded
export type OperatorLoad = typeof InboxS.OperatorLoad.Encoded
export type QueueView = typeof InboxS.QueueView.Encoded
export type ConversationWithContact = typeof ReadApiS.ConversationWithContact.Encoded
export type ContactWithIdentities = typeof ReadApiS.ContactWithIdentities.Encoded
export type MessageHistoryPage = typeof ReadApiS.MessageHistoryPage.Encoded
export type ChannelIdentity = typeof ContactS.ChannelIdentity.Encoded
export type MergeSuggestion = typeof IdentityS.MergeSuggestion.Encoded
export type MergeRecord = typeof IdentityS.MergeRecord.Encoded
export type ContactProfile = typeof IdentityS.ContactProfile.Encoded
export type Message = typeof MessageS.Message.Encoded
export type OutgoingMessage = typeof MessageS.OutgoingMessage.Encoded
export type Note = typeof MessageS.Note.Encoded
export type DeliveryState = typeof MessageS.DeliveryState.Encoded
export type StoredFile = typeof AttachmentsS.StoredFile.Encoded
export type Attachment = Message["attachments"][number]

export interface Counts {
  readonly mine: number
  readonly unassigned: number
  readonly all: number
}

/** What `/api/v1/events` sends (the fields the inbox reads; unknown types are ignored). */
export type InboxEvent =
  | { readonly type: "conversation.opened"; readonly conversation: Conversation }
  | { readonly type: "channel.health_changed"; readonly health: ChannelHealth }
  | {
    readonly type: "channel.alert"
    readonly kind: "down" | "recovered"
    readonly channel: string
    readonly account: string
    readonly reason: string
  }
  | {
    readonly type: "conversation.updated"
    readonly conversation: Conversation
    readonly changed: ReadonlyArray<string>
  }
  | { readonly type: "message.received"; readonly message: Message }
  | { readonly type: "message.sent"; readonly message: Message }
  | { readonly type: "message.note_added"; readonly message: Message }
  | {
    readonly type: "message.delivery_changed"
    readonly conversationId: string
    readonly messageId: string
    readonly seq: number
    readonly delivery: DeliveryState
  }
  | { readonly type: "contact.created"; readonly contact: ContactWithIdentities }
  | { readonly type: "operator.updated"; readonly operator: OperatorLoad }
  | {
    readonly type: "conversation.typing"
    readonly conversationId: string
    readonly by: "customer" | "operator"
    readonly operatorId: string | null
    readonly occurredAt: string
  }
export type ChannelHealth = typeof DeliveryS.ChannelHealthList.Encoded["channels"][number]
export type OutboundDeadLetter = typeof DeliveryS.OutboundDeadLetter.Encoded
export type DeadLetterPage = typeof DeliveryS.DeadLetterPage.Encoded
