/**
 * The read side of conversations, for the read API and later the inbox: filtered conversation
 * lists with keyset pagination, a conversation with its contact, a contact with its identities.
 * Plain queries over the store's tables; nothing here writes.
 *
 * Lists run most recently updated first and page by (updated_at, id), both descending: a keyset,
 * not an offset, so a page costs the same at the end of the list as at the start, and a
 * conversation updated while someone pages moves to the front instead of shifting every later
 * page (an item can then appear again at the front, never be skipped among the older ones).
 * The indexes (status, updated_at, id) and (assignee_id, status, updated_at) serve the filters.
 */
import { Context, Effect, Layer, Option } from "effect"
import type { ChannelIdentity, Contact } from "../../schemas/Contact.ts"
import type { Conversation, ConversationStatus } from "../../schemas/Conversation.ts"
import type { ChannelName, ContactId, ConversationId, OperatorId } from "../../schemas/Ids.ts"
import type { ConversationPosition } from "../../schemas/ReadApi.ts"
import type { Visibility } from "../../core/accounts/Access.ts"
import { Database, type DatabaseError } from "../../core/storage/Database.ts"
import { millis, toContact, toConversation, toIdentity } from "./ConversationRows.ts"

export interface ConversationFilter {
  readonly status?: ConversationStatus | undefined
  /** An operator, or `"none"` for unassigned conversations. */
  readonly assignee?: OperatorId | "none" | undefined
  /** The channel the customer wrote on last. */
  readonly channel?: ChannelName | undefined
  /** Only what this caller may see (default: everything). */
  readonly visibility?: Visibility | undefined
}

export interface ConversationListPage {
  readonly conversations: ReadonlyArray<Conversation>
  /** Where the next page starts; null on the last page. */
  readonly next: ConversationPosition | null
}

export interface ConversationQueriesShape {
  /** One page of conversations matching `filter`, most recently updated first. */
  readonly list: (
    filter: ConversationFilter,
    page: { readonly after?: ConversationPosition | undefined; readonly limit: number },
  ) => Effect.Effect<ConversationListPage, DatabaseError>
  readonly conversationWithContact: (
    id: ConversationId,
  ) => Effect.Effect<
    Option.Option<{ readonly conversation: Conversation; readonly contact: Contact }>,
    DatabaseError
  >
  readonly contactWithIdentities: (
    id: ContactId,
  ) => Effect.Effect<
    Option.Option<
      { readonly contact: Contact; readonly identities: ReadonlyArray<ChannelIdentity> }
    >,
    DatabaseError
  >
}

export class ConversationQueries extends Context.Tag("chorus/actors/ConversationQueries")<
  ConversationQueries,
  ConversationQueriesShape
>() {}

export const make = Effect.gen(function* () {
  const database = yield* Database

  const list = Effect.fn("ConversationQueries.list")(function* (
    filter: ConversationFilter,
    page: { readonly after?: ConversationPosition | undefined; readonly limit: number },
  ) {
    const limit = Math.max(1, Math.floor(page.limit))
    const rows = yield* database.query("list conversations", (db) => {
      let q = db.selectFrom("conversations").selectAll()
      if (filter.status !== undefined) q = q.where("status", "=", filter.status)
      if (filter.assignee === "none") q = q.where("assignee_id", "is", null)
      else if (filter.assignee !== undefined) q = q.where("assignee_id", "=", filter.assignee)
      if (filter.channel !== undefined) q = q.where("last_channel", "=", filter.channel)
      const visibility = filter.visibility
      if (visibility !== undefined && !visibility.all) {
        q = q.where((eb) =>
          eb.or([
            eb("assignee_id", "=", visibility.operatorId),
            ...(visibility.teamIds.length > 0
              ? [eb("team_id", "in", [...visibility.teamIds])]
              : []),
          ])
        )
      }
      const after = page.after
      if (after !== undefined) {
        q = q.where((eb) =>
          eb.or([
            eb("updated_at", "<", after.updatedAt),
            eb.and([eb("updated_at", "=", after.updatedAt), eb("id", "<", after.id)]),
          ])
        )
      }
      return q.orderBy("updated_at", "desc").orderBy("id", "desc").limit(limit + 1).execute()
    })
    const pageRows = rows.slice(0, limit)
    const last = pageRows[pageRows.length - 1]
    return {
      conversations: pageRows.map(toConversation),
      next: rows.length > limit && last !== undefined
        ? { updatedAt: millis(last.updated_at), id: last.id as ConversationId }
        : null,
    } satisfies ConversationListPage
  })

  const conversationWithContact = Effect.fn("ConversationQueries.conversationWithContact")(
    function* (id: ConversationId) {
      const row = yield* database.query(
        "get conversation with contact",
        (db) => db.selectFrom("conversations").selectAll().where("id", "=", id).executeTakeFirst(),
      )
      if (row === undefined) return Option.none()
      const contact = yield* database.query(
        "get contact",
        (db) =>
          db.selectFrom("contacts").selectAll().where("id", "=", row.contact_id)
            .executeTakeFirstOrThrow(),
      )
      return Option.some({ conversation: toConversation(row), contact: toContact(contact) })
    },
  )

  const contactWithIdentities = Effect.fn("ConversationQueries.contactWithIdentities")(
    function* (id: ContactId) {
      const contact = yield* database.query(
        "get contact",
        (db) => db.selectFrom("contacts").selectAll().where("id", "=", id).executeTakeFirst(),
      )
      if (contact === undefined) return Option.none()
      const identities = yield* database.query(
        "get contact identities",
        (db) =>
          db.selectFrom("channel_identities").selectAll().where("contact_id", "=", id)
            .orderBy("created_at").orderBy("id").execute(),
      )
      return Option.some({ contact: toContact(contact), identities: identities.map(toIdentity) })
    },
  )

  return { list, conversationWithContact, contactWithIdentities } satisfies ConversationQueriesShape
})

export const layer = Layer.effect(ConversationQueries, make)
