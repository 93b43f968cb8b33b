/**
 * Handlers of the inbox's groups (core/http/InboxApi.ts): lists and counts, actions on a
 * conversation, people and teams, canned answers, the queue. Visibility is checked on every
 * conversation named in a path (404 when the caller may not see it).
 */
import { HttpApiBuilder } from "@effect/platform"
import { Effect, Option } from "effect"
import { ConversationCommands } from "../../actors/conversation/ConversationCommands.ts"
import { ConversationStore } from "../../actors/conversation/ConversationStore.ts"
import { InboxQueries } from "../../actors/conversation/InboxQueries.ts"
import { Router } from "../../actors/routing/Router.ts"
import type { Conversation } from "../../schemas/Conversation.ts"
import type { OperatorId, TeamId } from "../../schemas/Ids.ts"
import { operatorOf, seesEverything, supervises, visibilityOf } from "../accounts/Access.ts"
import { Operators } from "../accounts/Operators.ts"
import { Teams } from "../accounts/Teams.ts"
import { Bus } from "../bus/Bus.ts"
import { CannedResponses } from "../inbox/CannedResponses.ts"
import { customerRouteOf, publishTyping, typingLimiter } from "../inbox/Typing.ts"
import { Database } from "../storage/Database.ts"
import { ChorusApi } from "./Api.ts"
import { CurrentPrincipal, Forbidden } from "./Authentication.ts"
import { CannedResponseNotFound, ChangeRejected, ShortCodeTaken } from "./InboxApi.ts"
import { ConversationClosed } from "./RepliesApi.ts"
import {
  conversationNotFound,
  visibleContactConversations,
  visibleConversation,
} from "./Visibility.ts"

/** Failures of a conversation command, as the API says them. */
const commandErrors = <A, R>(
  effect: Effect.Effect<
    A,
    | { readonly _tag: "CommandConversationNotFound"; readonly conversationId: string }
    | { readonly _tag: "CommandConversationClosed"; readonly conversationId: string }
    | { readonly _tag: "DatabaseError" }
    | { readonly _tag: "ActorDefect" }
    | { readonly _tag: "MailboxFull" }
    | { readonly _tag: "SupervisorClosed" },
    R
  >,
) =>
  effect.pipe(
    Effect.catchTags({
      CommandConversationNotFound: (e) => Effect.fail(conversationNotFound(e.conversationId)),
      CommandConversationClosed: (e) =>
        Effect.fail(
          new ConversationClosed({
            id: e.conversationId,
            message: `conversation ${e.conversationId} is resolved`,
          }),
        ),
      DatabaseError: Effect.die,
      ActorDefect: Effect.die,
      MailboxFull: Effect.die,
      SupervisorClosed: Effect.die,
    }),
  )

export const InboxHandlers = HttpApiBuilder.group(
  ChorusApi,
  "inbox",
  (handlers) =>
    Effect.gen(function* () {
      const queries = yield* InboxQueries
      const operators = yield* Operators
      const teams = yield* Teams
      const canned = yield* CannedResponses
      return handlers
        .handle("list", ({ urlParams }) =>
          Effect.gen(function* () {
            const principal = yield* CurrentPrincipal
            const { cursor, ...rest } = urlParams
            const page = yield* queries.list(
              { ...rest, ...(cursor !== undefined ? { after: cursor } : {}) },
              visibilityOf(principal),
              operatorOf(principal)?.id ?? null,
            ).pipe(Effect.orDie)
            return { conversations: page.conversations, nextCursor: page.next }
          }))
        .handle("counts", () =>
          Effect.flatMap(CurrentPrincipal, (principal) =>
            queries.counts(visibilityOf(principal), operatorOf(principal)?.id ?? null).pipe(
              Effect.orDie,
            )))
        .handle("contactConversations", ({ path }) =>
          visibleContactConversations(queries, path.id).pipe(
            Effect.map((conversations) => ({ conversations })),
          ))
        .handle("operators", () =>
          Effect.gen(function* () {
            const [all, loads] = yield* Effect.all([operators.list(), queries.loads()]).pipe(
              Effect.orDie,
            )
            return { operators: all.map((o) => ({ ...o, load: loads.get(o.id) ?? 0 })) }
          }))
        .handle("teams", () =>
          teams.list().pipe(Effect.orDie, Effect.map((list) => ({ teams: list }))))
        .handle("cannedResponses", () =>
          Effect.gen(function* () {
            const principal = yield* CurrentPrincipal
            const list = yield* canned.list(
              seesEverything(principal) ? "all" : operatorOf(principal)!.teamIds,
            ).pipe(Effect.orDie)
            return { cannedResponses: list }
          }))
        .handle("createCannedResponse", ({ payload }) =>
          Effect.gen(function* () {
            const principal = yield* CurrentPrincipal
            const operator = operatorOf(principal)
            // Everyone's answers are a supervisor's to write; a team's, its members'.
            const allowed = payload.teamId === null
              ? supervises(principal)
              : seesEverything(principal) || operator!.teamIds.includes(payload.teamId)
            if (!allowed) {
              return yield* new Forbidden({
                message: payload.teamId === null
                  ? "only supervisors save canned answers for everyone; name your team"
                  : "you are not a member of that team",
              })
            }
            return yield* canned.create({
              shortCode: payload.shortCode,
              text: payload.text,
              teamId: payload.teamId,
              createdBy: operator?.id ?? null,
            }).pipe(
              Effect.catchTag("ShortCodeTaken", (e) =>
                new ShortCodeTaken({ shortCode: e.shortCode, message: e.message })),
              Effect.orDie,
            )
          }))
        .handle("deleteCannedResponse", ({ path }) =>
          Effect.gen(function* () {
            const principal = yield* CurrentPrincipal
            const found = yield* canned.get(path.id).pipe(Effect.orDie)
            const operator = operatorOf(principal)
            const mayDelete = found !== undefined &&
              (supervises(principal) ||
                (found.teamId !== null && operator!.teamIds.includes(found.teamId)))
            if (found === undefined) {
              return yield* new CannedResponseNotFound({
                id: path.id,
                message: `no canned answer ${path.id}`,
              })
            }
            if (!mayDelete) {
              return yield* new Forbidden({
                message: "only its team or a supervisor may delete it",
              })
            }
            yield* canned.remove(path.id).pipe(Effect.orDie)
          }))
    }),
)

export const ConversationActionsHandlers = HttpApiBuilder.group(
  ChorusApi,
  "conversationActions",
  (handlers) =>
    Effect.gen(function* () {
      const store = yield* ConversationStore
      const commands = yield* ConversationCommands
      const operators = yield* Operators
      const teams = yield* Teams
      const router = yield* Router
      const bus = yield* Bus
      const database = yield* Database
      const operatorTyping = typingLimiter()

      const changed = (result: { readonly conversation: Conversation }) => result.conversation

      return handlers
        .handle("status", ({ path, payload }) =>
          Effect.gen(function* () {
            yield* visibleConversation(store, path.id)
            if (payload.status === "snoozed" && payload.snoozedUntil === undefined) {
              return yield* new ChangeRejected({
                field: "snoozedUntil",
                message: "snoozed needs snoozedUntil: when the conversation opens again",
              })
            }
            const result = yield* commandErrors(commands.change(path.id, {
              status: payload.status,
              ...(payload.snoozedUntil !== undefined ? { snoozedUntil: payload.snoozedUntil } : {}),
            }))
            // Resolving frees a place under someone's capacity.
            if (payload.status === "resolved") yield* router.wake
            return changed(result)
          }))
        .handle("assignment", ({ path, payload }) =>
          Effect.gen(function* () {
            yield* visibleConversation(store, path.id)
            if (payload.assigneeId !== null) {
              const assignee = yield* operators.get(payload.assigneeId).pipe(Effect.orDie)
              if (Option.isNone(assignee) || assignee.value.disabled) {
                return yield* new ChangeRejected({
                  field: "assigneeId",
                  message: `no active operator ${payload.assigneeId}`,
                })
              }
            }
            if (payload.teamId !== undefined && payload.teamId !== null) {
              const team = yield* teams.get(payload.teamId).pipe(Effect.orDie)
              if (Option.isNone(team)) {
                return yield* new ChangeRejected({
                  field: "teamId",
                  message: `no team ${payload.teamId}`,
                })
              }
            }
            const result = yield* commandErrors(commands.change(path.id, {
              assignee: { id: payload.assigneeId as OperatorId | null },
              ...(payload.teamId !== undefined ? { teamId: payload.teamId as TeamId | null } : {}),
            }))
            yield* router.wake
            return changed(result)
          }))
        .handle("note", ({ path, payload }) =>
          Effect.gen(function* () {
            yield* visibleConversation(store, path.id)
            const principal = yield* CurrentPrincipal
            const mentions = [...new Set(payload.mentions)]
            for (const id of mentions) {
              const mentioned = yield* operators.get(id).pipe(Effect.orDie)
              if (Option.isNone(mentioned)) {
                return yield* new ChangeRejected({
                  field: "mentions",
                  message: `no operator ${id}`,
                })
              }
            }
            const result = yield* commandErrors(commands.addNote(path.id, {
              authorId: operatorOf(principal)?.id ?? null,
              text: payload.text,
              mentions,
              clientId: payload.clientId,
            }))
            return result.message
          }))
        .handle("typing", ({ path }) =>
          Effect.gen(function* () {
            yield* visibleConversation(store, path.id)
            const principal = yield* CurrentPrincipal
            const operatorId = operatorOf(principal)?.id ?? null
            if (!operatorTyping(`${path.id}\u0000${operatorId}`)) return
            const to = yield* customerRouteOf(database, path.id).pipe(Effect.orDie)
            yield* publishTyping(bus, { conversationId: path.id, by: "operator", operatorId, to })
              .pipe(Effect.catchAll(() => Effect.void)) // a lost typing signal is harmless
          }))
        .handle("read", ({ path, payload }) =>
          Effect.gen(function* () {
            yield* visibleConversation(store, path.id)
            yield* commands.markRead(path.id, payload.seq).pipe(Effect.orDie)
          }))
    }),
)

export const SupervisionHandlers = HttpApiBuilder.group(
  ChorusApi,
  "supervision",
  (handlers) =>
    Effect.gen(function* () {
      const queries = yield* InboxQueries
      const operators = yield* Operators
      return handlers.handle("queue", () =>
        Effect.gen(function* () {
          const principal = yield* CurrentPrincipal
          const [queue, all, loads] = yield* Effect.all([
            queries.queue(visibilityOf(principal)),
            operators.list(),
            queries.loads(),
          ]).pipe(Effect.orDie)
          const visibility = visibilityOf(principal)
          // A supervisor sees the people of their teams; an admin, everyone.
          const people = visibility.all
            ? all
            : all.filter((o) => o.teamIds.some((t) => visibility.teamIds.includes(t)))
          return { queue, operators: people.map((o) => ({ ...o, load: loads.get(o.id) ?? 0 })) }
        }))
    }),
)
