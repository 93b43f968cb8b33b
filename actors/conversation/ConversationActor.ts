/**
 * The conversation actor: one per conversation, the only writer of its messages. It holds the
 * conversation's last sequence number, so appends get the next one without asking the database,
 * and it handles one message at a time, so a conversation's messages are numbered in the order
 * they were handled. Its state is a cache of `ConversationStore`: a restart or a passivation
 * drops it and `load` rebuilds it.
 *
 * Several nodes: the API (replies, notes, status) runs on every node, so two nodes may each have
 * an actor for one conversation. Numbering stays optimistic: an append whose sequence number
 * another node's actor took first breaks the unique index on (conversation, seq); the actor then
 * restarts (reloading `lastSeq` from storage) and handles the command again with the next free
 * number. Nothing is lost or numbered twice; a conversation written from two nodes at once costs
 * a retry per collision. Likewise for the status: an append to a conversation another node's
 * actor resolved meanwhile is refused by the store (`ResolvedMeanwhile`), and the reloaded actor
 * answers `Closed`, as it would have on one node.
 */
import { Context, Data, Effect, Layer, Option } from "effect"
import * as Actors from "../../core/actor/mod.ts"
import { type DatabaseError, violatesUnique } from "../../core/storage/Database.ts"
import type { ConversationStatus } from "../../schemas/Conversation.ts"
import type { ChannelIdentityId, ConversationId } from "../../schemas/Ids.ts"
import type { InboundMessage } from "../../schemas/Inbound.ts"
import { type AppendResult, ConversationStore } from "./ConversationStore.ts"
import { ResolvedMeanwhile } from "./ConversationRows.ts"
import { type AppendOutbound, type AppendOutboundResult, OutboundStore } from "./OutboundWrites.ts"
import {
  type AppendNote,
  type AppendNoteResult,
  type ChangeResult,
  type ConversationChange,
  ConversationChanges,
  layer as ConversationChangesLayer,
} from "./ConversationChanges.ts"

export interface ConversationState {
  readonly lastSeq: number
  /** Status changes go through the actor, so this is the conversation's status. */
  readonly status: ConversationStatus
}

export interface AppendInboundCommand {
  readonly _tag: "AppendInbound"
  readonly identityId: ChannelIdentityId
  readonly inbound: InboundMessage
}

/** Store an operator's reply as the conversation's next message (`queued` for its channel). */
export interface AppendOutboundCommand {
  readonly _tag: "AppendOutbound"
  readonly reply: Omit<AppendOutbound, "conversationId" | "seq">
}

/** Change status, assignee or team (operators, supervisors and routing). */
export interface ChangeCommand {
  readonly _tag: "Change"
  readonly change: ConversationChange
}

/** Store a private note as the conversation's next message. */
export interface AppendNoteCommand {
  readonly _tag: "AppendNote"
  readonly note: Omit<AppendNote, "conversationId" | "seq">
}

export type ConversationCommand =
  | AppendInboundCommand
  | AppendOutboundCommand
  | ChangeCommand
  | AppendNoteCommand

export class ConversationMissing extends Data.TaggedError("ConversationMissing")<{
  readonly conversationId: string
}> {
  override get message() {
    return `conversation ${this.conversationId} does not exist`
  }
}

/** The conversation is resolved: nothing more is appended to it. */
export interface ConversationClosed {
  readonly _tag: "Closed"
  readonly conversationId: ConversationId
}

/**
 * What the actor answers to `AppendInbound`: stored, a duplicate, or `Closed` when the
 * conversation is resolved (the sender's next message belongs in a new conversation).
 */
export type AppendReply = AppendResult | ConversationClosed

/** Every answer of the actor; `ask` narrows it by command. */
export type ConversationReply =
  | AppendReply
  | AppendOutboundResult
  | ChangeResult
  | AppendNoteResult

export type ConversationActorError = DatabaseError | ConversationMissing

type Supervisor = Actors.ActorSupervisor<
  ConversationId,
  ConversationCommand,
  ConversationReply,
  ConversationActorError
>

/** The supervisor, with `ask` typed by command: each command gets its own reply type. */
export interface ConversationActorsShape extends Omit<Supervisor, "ask"> {
  readonly ask: {
    (
      id: ConversationId,
      command: AppendInboundCommand,
    ): Effect.Effect<AppendReply, ConversationActorError | Actors.ActorError>
    (
      id: ConversationId,
      command: AppendOutboundCommand,
    ): Effect.Effect<
      AppendOutboundResult | ConversationClosed,
      ConversationActorError | Actors.ActorError
    >
    (
      id: ConversationId,
      command: ChangeCommand,
    ): Effect.Effect<ChangeResult | ConversationClosed, ConversationActorError | Actors.ActorError>
    (
      id: ConversationId,
      command: AppendNoteCommand,
    ): Effect.Effect<
      AppendNoteResult | ConversationClosed,
      ConversationActorError | Actors.ActorError
    >
  }
}

export class ConversationActors extends Context.Tag("chorus/actors/ConversationActors")<
  ConversationActors,
  ConversationActorsShape
>() {}

export interface ConversationActorOptions {
  /** Default: 5 minutes. */
  readonly idleTimeout?: Actors.ActorSupervisorOptions["idleTimeout"]
  /** Default: 50,000. */
  readonly maxActors?: number
  /** Default: 64. */
  readonly mailboxCapacity?: number
}

/**
 * Unique indexes whose violation means another writer (another node's actor) stored first: the
 * sequence number (migration 0003), a provider's message id (0003), a client's idempotency key
 * (0004). Reloaded and handled again, the command takes the next number or answers `Duplicate`.
 */
const STORED_FIRST = [
  { name: "messages_conversation_seq", table: "messages", columns: ["conversation_id", "seq"] },
  {
    name: "messages_inbound_external",
    table: "messages",
    columns: ["channel", "account", "external_id"],
  },
  {
    name: "messages_outbound_client",
    table: "messages",
    columns: ["conversation_id", "client_id"],
  },
] as const

export const layer = (options: ConversationActorOptions = {}) =>
  Layer.scoped(
    ConversationActors,
    Effect.gen(function* () {
      const store = yield* ConversationStore
      const outbound = yield* OutboundStore
      const changes = yield* ConversationChanges
      const behaviour: Actors.ActorBehaviour<
        ConversationId,
        ConversationState,
        ConversationCommand,
        ConversationReply,
        ConversationActorError
      > = {
        load: (id) =>
          store.conversation(id).pipe(
            Effect.flatMap(Option.match({
              onNone: () => Effect.fail(new ConversationMissing({ conversationId: id })),
              onSome: (c) => Effect.succeed({ lastSeq: c.lastSeq, status: c.status }),
            })),
          ),
        receive: (state, command, id) =>
          // A resolved conversation takes no new messages; a fallback copy of a reply written
          // before it was resolved is that reply still being delivered.
          state.status === "resolved" &&
            !(command._tag === "AppendOutbound" && command.reply.fallbackOf !== undefined)
            ? Effect.succeed([state, { _tag: "Closed", conversationId: id }] as const)
            : command._tag === "Change"
            ? changes.change(id, command.change).pipe(
              Effect.flatMap(Option.match({
                onNone: () => Effect.fail(new ConversationMissing({ conversationId: id })),
                onSome: (result) =>
                  Effect.succeed(
                    [
                      { ...state, status: result.conversation.status },
                      result,
                    ] as const,
                  ),
              })),
            )
            : command._tag === "AppendNote"
            ? changes.appendNote({ ...command.note, conversationId: id, seq: state.lastSeq + 1 })
              .pipe(
                Effect.map((result) =>
                  [
                    result._tag === "Stored" ? { ...state, lastSeq: result.message.seq } : state,
                    result,
                  ] as const
                ),
              )
            : command._tag === "AppendOutbound"
            ? outbound.appendOutbound({
              ...command.reply,
              conversationId: id,
              seq: state.lastSeq + 1,
            }).pipe(
              Effect.map((result) =>
                [
                  result._tag === "Stored" ? { ...state, lastSeq: result.message.seq } : state,
                  result,
                ] as const
              ),
            )
            : store.appendInbound({
              conversationId: id,
              seq: state.lastSeq + 1,
              status: state.status,
              identityId: command.identityId,
              inbound: command.inbound,
            }).pipe(
              Effect.map((result) =>
                [
                  result._tag === "Stored"
                    ? { lastSeq: result.message.seq, status: "open" as const }
                    : state,
                  result,
                ] as const
              ),
            ),
        // Storage that is briefly unavailable, or a sequence number another node's actor took
        // first (our `lastSeq` is stale): reload and try again rather than fail the ask.
        // So does a conversation another node's actor resolved meanwhile: reloaded, it is Closed.
        restartOn: (error) =>
          error._tag === "DatabaseError" &&
          (error.retryable || STORED_FIRST.some((index) => violatesUnique(error, index)) ||
            error.cause instanceof ResolvedMeanwhile),
      }
      const supervisor: Supervisor = yield* Actors.make(behaviour, {
        name: "conversation",
        ...(options.idleTimeout !== undefined ? { idleTimeout: options.idleTimeout } : {}),
        ...(options.maxActors !== undefined ? { maxActors: options.maxActors } : {}),
        ...(options.mailboxCapacity !== undefined
          ? { mailboxCapacity: options.mailboxCapacity }
          : {}),
      })
      return supervisor as ConversationActorsShape
    }),
    // The actors' writer of status, assignment and notes; left in the context for read marks.
  ).pipe(Layer.provideMerge(ConversationChangesLayer))
