/**
 * Conversations for the read tests, written through `ConversationStore` as the pipeline does
 * (resolve the sender, open the conversation, append), then given a status, an assignee and an
 * `updated_at` directly, so a test knows the exact order and the filters' answers.
 */
import { Effect, Schema } from "effect"
import type { ConversationStoreShape } from "../../actors/conversation/ConversationStore.ts"
import type { DatabaseShape } from "../../core/storage/Database.ts"
import type { ConversationStatus } from "../../schemas/Conversation.ts"
import type { ContactId, ConversationId } from "../../schemas/Ids.ts"
import { InboundMessage } from "../../schemas/Inbound.ts"

export const OPERATOR_A = "01JD0000000000000000000AAA"
export const OPERATOR_B = "01JD0000000000000000000BBB"

export interface Seeded {
  readonly id: ConversationId
  readonly contactId: ContactId
  readonly channel: string
  readonly status: ConversationStatus
  readonly assignee: string | null
  readonly updatedAt: number
}

export const inboundOf = (
  channel: string,
  sender: string,
  externalId: string,
  text = `message ${externalId}`,
) =>
  Schema.decodeUnknownSync(InboundMessage)({
    channel,
    account: "main",
    sender: { externalId: sender, name: `Customer ${sender}`, email: `${sender}@example.com` },
    externalId,
    text,
    sentAt: "2026-11-23T10:00:00Z",
    receivedAt: "2026-11-23T10:00:01Z",
  })

/** One conversation with `messages` inbound messages (seq 1…n). */
export const seedConversation = (
  store: ConversationStoreShape,
  channel: string,
  sender: string,
  messages: number,
) =>
  Effect.gen(function* () {
    const resolved = yield* store.resolveSender(inboundOf(channel, sender, `${sender}-0`))
    const { conversation } = yield* store.openConversation(
      resolved.contact.id,
      resolved.identity,
    )
    for (let seq = 1; seq <= messages; seq++) {
      yield* store.appendInbound({
        conversationId: conversation.id,
        seq,
        status: "open",
        identityId: resolved.identity.id,
        inbound: inboundOf(channel, sender, `${sender}-${seq}`, `#${seq}`),
      })
    }
    return { conversation, contact: resolved.contact, identity: resolved.identity }
  })

/**
 * `count` conversations: every second on telegram (else api); every third pending, every fifth
 * resolved; assigned to A, B or nobody in turn; `updated_at` in steps of 1 s with ties (seven
 * distinct values), so pagination must break ties by id.
 */
export const seedMany = (store: ConversationStoreShape, database: DatabaseShape, count: number) =>
  Effect.forEach(Array.from({ length: count }, (_, i) => i), (i) =>
    Effect.gen(function* () {
      const channel = i % 2 === 0 ? "api" : "telegram"
      const { contact, conversation } = yield* seedConversation(store, channel, `s${i}`, 1)
      const status: ConversationStatus = i % 5 === 0 ? "resolved" : i % 3 === 0 ? "pending" : "open"
      const assignee = i % 3 === 0 ? OPERATOR_A : i % 3 === 1 ? OPERATOR_B : null
      const updatedAt = 1_790_000_000_000 + (i % 7) * 1000
      yield* database.query("seed conversation state", (db) =>
        db.updateTable("conversations")
          .set({ status, assignee_id: assignee, updated_at: updatedAt })
          .where("id", "=", conversation.id)
          .execute())
      return {
        id: conversation.id,
        contactId: contact.id,
        channel,
        status,
        assignee,
        updatedAt,
      } satisfies Seeded
    }))

/** The list's order: most recently updated first, ties by id, descending. */
export const listOrder = (items: ReadonlyArray<Seeded>): ReadonlyArray<Seeded> =>
  [...items].sort((a, b) => b.updatedAt - a.updatedAt || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0))
