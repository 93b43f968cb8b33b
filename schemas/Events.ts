/**
 * The events the rest of the system consumes (the inbox, bots, analytics, outbound webhooks),
 * published after the change they describe is stored.
 *
 * Every event carries `type` and `version`. Versioning rule: a change an existing reader could
 * not decode (a field removed or retyped, a new status value) is a new version, declared here
 * beside the old one; emitters keep emitting the old version until every node understands the
 * new one. Adding an optional field is not a new version. `ChorusEvent` decodes every known
 * (type, version) pair; an unknown type or version fails with an error that names it, so a
 * consumer dead-letters what it cannot read instead of silently dropping it.
 *
 * `id` is unique per event and doubles as the bus de-duplication id.
 */
import { Schema } from "effect"
import { ChannelHealth } from "./ChannelHealth.ts"
import { Timestamp } from "./Common.ts"
import { ChannelIdentity, Contact } from "./Contact.ts"
import { Conversation } from "./Conversation.ts"
import { ContactProfile, MergeRecord, MergeSuggestion } from "./Identity.ts"
import { OperatorLoad } from "./Inbox.ts"
import { IncomingMessage, Note, OutgoingMessage } from "./Message.ts"
import { DeliveryState } from "./Message.ts"
import {
  AccountId,
  ChannelName,
  ConversationId,
  EventId,
  ExternalId,
  MessageId,
  OperatorId,
} from "./Ids.ts"

const event = <
  const T extends string,
  const V extends number,
  const F extends Schema.Struct.Fields,
>(type: T, version: V, identifier: string, description: string, fields: F) =>
  Schema.Struct({
    type: Schema.Literal(type),
    version: Schema.Literal(version),
    id: EventId,
    occurredAt: Timestamp,
    ...fields,
  }).annotations({ identifier, description })

export const ContactCreatedV1 = event(
  "contact.created",
  1,
  "ContactCreatedV1",
  "A new contact, created when an identity no contact had wrote for the first time.",
  { contact: Contact },
)

export const ContactIdentityAddedV1 = event(
  "contact.identity_added",
  1,
  "ContactIdentityAddedV1",
  "A channel identity was linked to a contact (new, or moved there by a merge).",
  { identity: ChannelIdentity },
)

export const ContactUpdatedV1 = event(
  "contact.updated",
  1,
  "ContactUpdatedV1",
  "A contact's profile changed (name, custom fields, phones, e-mails): its new state, for CRM " +
    "connectors.",
  {
    contact: ContactProfile,
    /** What changed: `name`, `custom`, `phones`, `emails`, `signals`. */
    changed: Schema.Array(Schema.String),
  },
)

export const ContactMergedV1 = event(
  "contact.merged",
  1,
  "ContactMergedV1",
  "Two contacts were merged: `merge.sourceId` now points at `contact` (the survivor), which " +
    "holds both's identities and conversations. A split can undo it.",
  { merge: MergeRecord, contact: ContactProfile },
)

export const ContactSplitV1 = event(
  "contact.split",
  1,
  "ContactSplitV1",
  "A merge was undone: `restored` is back with its identities and conversations, `contact` " +
    "(the survivor) as it was before the merge.",
  { merge: MergeRecord, contact: ContactProfile, restored: ContactProfile },
)

export const ContactSuggestionCreatedV1 = event(
  "contact.suggestion_created",
  1,
  "ContactSuggestionCreatedV1",
  "Two contacts may be one person (a claimed phone or e-mail, the same name): an operator " +
    "decides. Never merged automatically.",
  { suggestion: MergeSuggestion },
)

export const ConversationOpenedV1 = event(
  "conversation.opened",
  1,
  "ConversationOpenedV1",
  "A conversation was opened (the first message of a contact with none open).",
  { conversation: Conversation },
)

export const ConversationUpdatedV1 = event(
  "conversation.updated",
  1,
  "ConversationUpdatedV1",
  "A conversation changed: status, assignee, last channel. Carries the new state.",
  {
    conversation: Conversation,
    /** Names of the `Conversation` fields that changed (`status`, `assigneeId`, …). */
    changed: Schema.Array(Schema.String),
  },
)

export const MessageReceivedV1 = event(
  "message.received",
  1,
  "MessageReceivedV1",
  "A customer's message was stored in its conversation.",
  { message: IncomingMessage },
)

export const MessageSentV1 = event(
  "message.sent",
  1,
  "MessageSentV1",
  "An operator's or a bot's reply was stored and queued for its channel; its delivery " +
    "progress follows as message.delivery_changed.",
  { message: OutgoingMessage },
)

export const NoteAddedV1 = event(
  "message.note_added",
  1,
  "NoteAddedV1",
  "An operator added a private note to a conversation.",
  { message: Note },
)

export const MessageDeliveryChangedV1 = event(
  "message.delivery_changed",
  1,
  "MessageDeliveryChangedV1",
  "An outgoing message's delivery state changed (sent, delivered, read, failed).",
  {
    conversationId: ConversationId,
    messageId: MessageId,
    seq: Schema.Int.pipe(Schema.positive()),
    channel: ChannelName,
    account: AccountId,
    externalId: Schema.NullOr(ExternalId),
    delivery: DeliveryState,
    /** Send attempts it took (retries included); absent when no attempt was made. */
    attempts: Schema.optionalWith(Schema.Int.pipe(Schema.nonNegative()), { exact: true }),
  },
)

export const ConversationTypingV1 = event(
  "conversation.typing",
  1,
  "ConversationTypingV1",
  "Someone is typing in a conversation: the customer (on their channel) or an operator (in " +
    "the inbox). Ephemeral: a reader shows it for a few seconds after `occurredAt` and ignores " +
    "old ones (a catching-up client replays them).",
  {
    conversationId: ConversationId,
    by: Schema.Literal("customer", "operator"),
    /** The operator typing; null when the customer is. */
    operatorId: Schema.NullOr(OperatorId),
    /** Where the customer is (the conversation's last channel), to show it to them there. */
    to: Schema.NullOr(
      Schema.Struct({ channel: ChannelName, account: AccountId, externalId: ExternalId }),
    ),
  },
)

export const OperatorUpdatedV1 = event(
  "operator.updated",
  1,
  "OperatorUpdatedV1",
  "An operator's presence, role, capacity or teams changed (the supervisor's view, routing).",
  { operator: OperatorLoad },
)

export const ChannelHealthChangedV1 = event(
  "channel.health_changed",
  1,
  "ChannelHealthChangedV1",
  "A channel account's delivery health changed status (up, degraded, down).",
  { health: ChannelHealth },
)

export const ChannelAlertV1 = event(
  "channel.alert",
  1,
  "ChannelAlertV1",
  "A channel account went down (its circuit breaker opened: the provider keeps failing) or " +
    "recovered: for on-call alerting.",
  {
    kind: Schema.Literal("down", "recovered"),
    channel: Schema.String,
    account: Schema.String,
    reason: Schema.String,
  },
)

/** Every known event, every version. Add new versions here; never remove one still emitted. */
const MEMBERS = [
  ContactCreatedV1,
  ContactIdentityAddedV1,
  ContactUpdatedV1,
  ContactMergedV1,
  ContactSplitV1,
  ContactSuggestionCreatedV1,
  ConversationOpenedV1,
  ConversationUpdatedV1,
  MessageReceivedV1,
  MessageSentV1,
  NoteAddedV1,
  MessageDeliveryChangedV1,
  OperatorUpdatedV1,
  ConversationTypingV1,
  ChannelHealthChangedV1,
  ChannelAlertV1,
] as const

/** Known versions of each event type, e.g. `{ "message.received": [1], … }`. */
export const EVENT_VERSIONS: Readonly<Record<string, ReadonlyArray<number>>> = MEMBERS.reduce(
  (acc, member) => {
    const type = member.fields.type.literals[0]
    const version = member.fields.version.literals[0]
    return { ...acc, [type]: [...(acc[type] ?? []), version] }
  },
  {} as Record<string, ReadonlyArray<number>>,
)

const describeUnknown = (actual: unknown): string | undefined => {
  if (typeof actual !== "object" || actual === null) return "expected an event object"
  const { type, version } = actual as { type?: unknown; version?: unknown }
  if (typeof type !== "string") return 'expected an event with a string "type"'
  const versions = EVENT_VERSIONS[type]
  if (versions === undefined) {
    return `unknown event type ${JSON.stringify(type)} (known: ${
      Object.keys(EVENT_VERSIONS).join(", ")
    })`
  }
  if (typeof version !== "number" || !versions.includes(version)) {
    return `unknown version ${JSON.stringify(version)} of event type ${
      JSON.stringify(type)
    } (known: ${versions.join(", ")})`
  }
  return undefined
}

/**
 * Any known event. A known type and version is decoded by its own schema (errors name the
 * failing field); an unknown one fails with "unknown event type …" / "unknown version … of …".
 */
export const ChorusEvent = Schema.Union(...MEMBERS).annotations({
  identifier: "ChorusEvent",
  message: (issue) => {
    const unknown = describeUnknown(issue.actual)
    // Replace the union's message only for an unknown (type, version); otherwise (override
    // false) the member's detailed error, naming the failing field, is what gets printed.
    return unknown === undefined
      ? { message: "invalid event", override: false }
      : { message: unknown, override: true }
  },
})
export type ChorusEvent = typeof ChorusEvent.Type
export type ChorusEventEncoded = typeof ChorusEvent.Encoded
export type EventType = ChorusEvent["type"]
/** The event(s) of one type, e.g. `EventOf<"message.received">`. */
export type EventOf<T extends EventType> = Extract<ChorusEvent, { readonly type: T }>
