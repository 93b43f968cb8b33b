/**
 * Typing indicators: `conversation.typing` events, from a customer (their channel plugin says
 * so, `chorus.channels.typing`) or from an operator (the inbox, `POST
 * /conversations/{id}/typing`). They go on the events stream like every event (so they reach
 * every node and every open inbox); each party is limited to one every two seconds, and readers
 * show one for a few seconds. The other way, an operator's typing reaches the customer's channel
 * plugin through its `typing` handler (core/plugins/PluginTyping.ts).
 */
import { Effect, Option } from "effect"
import type { BusShape } from "../bus/Bus.ts"
import { newId } from "../ids.ts"
import { Lru } from "../lru.ts"
import { publishEvent } from "../pipeline/Events.ts"
import type { DatabaseShape } from "../storage/Database.ts"
import type {
  AccountId,
  ChannelName,
  ConversationId,
  ExternalId,
  OperatorId,
} from "../../schemas/Ids.ts"

/** At most one typing event per party this often. */
export const TYPING_INTERVAL_MS = 2_000

/** Lets one call per key through every `TYPING_INTERVAL_MS`. */
export const typingLimiter = () => {
  const last = new Lru<string, number>(50_000)
  return (key: string): boolean => {
    const now = Date.now()
    const before = last.get(key)
    if (before !== undefined && now - before < TYPING_INTERVAL_MS) return false
    last.set(key, now)
    return true
  }
}

export interface TypingRoute {
  readonly channel: ChannelName
  readonly account: AccountId
  readonly externalId: ExternalId
}

export const publishTyping = (
  bus: BusShape,
  input: {
    readonly conversationId: ConversationId
    readonly by: "customer" | "operator"
    readonly operatorId: OperatorId | null
    readonly to: TypingRoute | null
  },
) => {
  const id = newId.event()
  return publishEvent(bus, id, {
    type: "conversation.typing",
    version: 1,
    id,
    occurredAt: new Date(),
    ...input,
  })
}

/** The open (or pending) conversation of the person behind a channel identity, if any. */
export const openConversationOf = (
  database: DatabaseShape,
  route: { readonly channel: string; readonly account: string; readonly externalId: string },
) =>
  database.query("typing: conversation of sender", (db) =>
    db.selectFrom("channel_identities")
      .innerJoin("conversations", "conversations.contact_id", "channel_identities.contact_id")
      .select(["conversations.id as id"])
      .where("channel_identities.channel", "=", route.channel)
      .where("channel_identities.account", "=", route.account)
      .where("channel_identities.external_id", "=", route.externalId)
      .where("conversations.status", "in", ["open", "pending"])
      .orderBy("conversations.created_at", "desc")
      .limit(1)
      .executeTakeFirst()).pipe(
      Effect.map((row) => Option.fromNullable(row?.id as ConversationId | undefined)),
    )

/** Where the customer of a conversation is: its last channel's identity. */
export const customerRouteOf = (database: DatabaseShape, conversationId: ConversationId) =>
  database.query("typing: customer route", (db) =>
    db.selectFrom("conversations")
      .innerJoin("channel_identities", "channel_identities.id", "conversations.last_identity_id")
      .select([
        "channel_identities.channel as channel",
        "channel_identities.account as account",
        "channel_identities.external_id as externalId",
      ])
      .where("conversations.id", "=", conversationId)
      .executeTakeFirst()).pipe(
      Effect.map((row) => row === undefined ? null : (row as unknown as TypingRoute)),
    )
