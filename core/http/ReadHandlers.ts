/**
 * Handlers of the read API: conversations, their messages, contacts. Store failures are ours,
 * not the client's: they become a 500 (and are logged), never a 4xx.
 */
import { HttpApiBuilder } from "@effect/platform"
import { Effect, Option } from "effect"
import { ConversationQueries } from "../../actors/conversation/ConversationQueries.ts"
import { ConversationStore } from "../../actors/conversation/ConversationStore.ts"
import type { ConversationId } from "../../schemas/Ids.ts"
import { ChorusApi } from "./Api.ts"
import { ContactNotFound, ConversationNotFound } from "./ReadApi.ts"

const conversationNotFound = (id: ConversationId) =>
  new ConversationNotFound({ id, message: `no conversation with id ${id}` })

export const ConversationsHandlers = HttpApiBuilder.group(
  ChorusApi,
  "conversations",
  (handlers) =>
    Effect.gen(function* () {
      const store = yield* ConversationStore
      const queries = yield* ConversationQueries
      return handlers
        .handle("list", ({ urlParams }) =>
          queries.list(
            { status: urlParams.status, assignee: urlParams.assignee, channel: urlParams.channel },
            { after: urlParams.cursor, limit: urlParams.limit },
          ).pipe(
            Effect.map((page) => ({ conversations: page.conversations, nextCursor: page.next })),
            Effect.orDie,
          ))
        .handle("get", ({ path }) =>
          queries.conversationWithContact(path.id).pipe(
            Effect.orDie,
            Effect.flatMap(Option.match({
              onNone: () => Effect.fail(conversationNotFound(path.id)),
              onSome: ({ contact, conversation }) => Effect.succeed({ ...conversation, contact }),
            })),
          ))
        .handle("messages", ({ path, urlParams }) =>
          Effect.gen(function* () {
            const conversation = yield* store.conversation(path.id).pipe(Effect.orDie)
            if (Option.isNone(conversation)) return yield* conversationNotFound(path.id)
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
      return handlers.handle("get", ({ path }) =>
        queries.contactWithIdentities(path.id).pipe(
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
