/**
 * The visibility rule (core/accounts/Access.ts) applied to a request: the conversation or
 * contact it names, if the caller may see it, else 404 as if it did not exist.
 */
import { Effect, Option } from "effect"
import type { ConversationStoreShape } from "../../actors/conversation/ConversationStore.ts"
import type { InboxQueriesShape } from "../../actors/conversation/InboxQueries.ts"
import type { Conversation } from "../../schemas/Conversation.ts"
import type { ContactId, ConversationId } from "../../schemas/Ids.ts"
import { canSee, visibilityOf } from "../accounts/Access.ts"
import { CurrentPrincipal } from "./Authentication.ts"
import { ContactNotFound, ConversationNotFound } from "./ReadApi.ts"

export const conversationNotFound = (id: string) =>
  new ConversationNotFound({ id, message: `no conversation with id ${id}` })

export const contactNotFound = (id: string) =>
  new ContactNotFound({ id, message: `no contact with id ${id}` })

/** The conversation, if it exists and the caller may see it. */
export const visibleConversation = (store: ConversationStoreShape, id: ConversationId) =>
  Effect.gen(function* () {
    const principal = yield* CurrentPrincipal
    const found = yield* store.conversation(id).pipe(Effect.orDie)
    if (Option.isNone(found) || !canSee(visibilityOf(principal), found.value)) {
      return yield* conversationNotFound(id)
    }
    return found.value satisfies Conversation
  })

/** A contact is visible to whoever may see one of its conversations. */
export const visibleContactConversations = (queries: InboxQueriesShape, id: ContactId) =>
  Effect.gen(function* () {
    const principal = yield* CurrentPrincipal
    const visibility = visibilityOf(principal)
    const all = yield* queries.contactConversations(id).pipe(Effect.orDie)
    const visible = all.filter((c) => canSee(visibility, c))
    if (!visibility.all && visible.length === 0) return yield* contactNotFound(id)
    return visible
  })
