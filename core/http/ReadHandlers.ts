/**
 * Handlers of the read API: conversations, their messages, contacts. Store failures are ours,
 * not the client's: they become a 500 (and are logged), never a 4xx.
 */
import { HttpApiBuilder } from "@effect/platform"
import { Effect, Option } from "effect"
import { ConversationQueries } from "../../actors/conversation/ConversationQueries.ts"
import { ConversationStore } from "../../actors/conversation/ConversationStore.ts"
import { InboxQueries } from "../../actors/conversation/InboxQueries.ts"
import { visibilityOf } from "../accounts/Access.ts"
import { ChorusApi } from "./Api.ts"
import { CurrentPrincipal } from "./Authentication.ts"
import { ContactNotFound } from "./ReadApi.ts"
import {
  conversationNotFound,
  visibleContactConversations,
  visibleConversation,
} from "./Visibility.ts"

export const ConversationsHandlers = HttpApiBuilder.group(
  ChorusApi,
  "conversations",
  (handlers) =>
    Effect.gen(function* () {
      const store = yield* ConversationStore
      const queries = yield* ConversationQueries
      return handlers
        .handle("list", ({ urlParams }) =>
          Effect.flatMap(CurrentPrincipal, (principal) =>
            queries.list(
              {
                status: urlParams.status,
                assignee: urlParams.assignee,
                channel: urlParams.channel,
                visibility: visibilityOf(principal),
              },
              { after: urlParams.cursor, limit: urlParams.limit },
            )).pipe(
              Effect.map((page) => ({ conversations: page.conversations, nextCursor: page.next })),
              Effect.orDie,
            ))
        .handle("get", ({ path }) =>
          visibleConversation(store, path.id).pipe(
            Effect.zipRight(queries.conversationWithContact(path.id).pipe(Effect.orDie)),
            Effect.flatMap(Option.match({
              onNone: () =>
                Effect.fail(conversationNotFound(path.id)),
              onSome: ({ contact, conversation }) =>
                Effect.succeed({ ...conversation, contact }),
            })),
          ))
        .handle("messages", ({ path, urlParams }) =>
          Effect.gen(function* () {
            yield* visibleConversation(store, path.id)
            return yield* store.messages(path.id, {
              limit: urlParams.limit,
              ...(urlParams.before !== undefined ? { before: urlParams.before } : {}),
            }).pipe(Effect.orDie)
          }))
    }),
)

export const ContactsHandlers = HttpApiBuilder.group(
  ChorusApi,
  "contacts",
  (handlers) =>
    Effect.gen(function* () {
      const queries = yield* ConversationQueries
      const inbox = yield* InboxQueries
      return handlers.handle("get", ({ path }) =>
        visibleContactConversations(inbox, path.id).pipe(
          Effect.zipRight(queries.contactWithIdentities(path.id)),
          Effect.orDie,
          Effect.flatMap(Option.match({
            onNone: () =>
              Effect.fail(
                new ContactNotFound({ id: path.id, message: `no contact with id ${path.id}` }),
              ),
            onSome: ({ contact, identities }) => Effect.succeed({ ...contact, identities }),
          })),
        ))
    }),
)
