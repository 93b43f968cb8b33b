/**
 * The conversation actor: one per conversation, the only writer of its messages. It holds the
 * conversation's last sequence number, so appends get the next one without asking the database,
 * and it handles one message at a time, so a conversation's messages are numbered in the order
 * they were handled. Its state is a cache of `ConversationStore`: a restart or a passivation
 * drops it and `load` rebuilds it.
 */
import { Context, Data, Effect, Layer, Option } from "effect"
import * as Actors from "../../core/actor/mod.ts"
import type { DatabaseError } from "../../core/storage/Database.ts"
import type { ConversationStatus } from "../../schemas/Conversation.ts"
import type { ChannelIdentityId, ConversationId } from "../../schemas/Ids.ts"
import type { InboundMessage } from "../../schemas/Inbound.ts"
import { type AppendResult, ConversationStore } from "./ConversationStore.ts"

export interface ConversationState {
  readonly lastSeq: number
  /** Status changes go through the actor, so this is the conversation's status. */
  readonly status: ConversationStatus
}

export type ConversationCommand = {
  readonly _tag: "AppendInbound"
  readonly identityId: ChannelIdentityId
  readonly inbound: InboundMessage
}

export class ConversationMissing extends Data.TaggedError("ConversationMissing")<{
  readonly conversationId: string
}> {
  override get message() {
    return `conversation ${this.conversationId} does not exist`
  }
}

/**
 * What the actor answers to `AppendInbound`: stored, a duplicate, or `Closed` when the
 * conversation is resolved (the sender's next message belongs in a new conversation).
 */
export type AppendReply = AppendResult | {
  readonly _tag: "Closed"
  readonly conversationId: ConversationId
}

export type ConversationActorError = DatabaseError | ConversationMissing

export interface ConversationActorsShape extends
  Actors.ActorSupervisor<
    ConversationId,
    ConversationCommand,
    AppendReply,
    ConversationActorError
  > {}

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

export const layer = (options: ConversationActorOptions = {}) =>
  Layer.scoped(
    ConversationActors,
    Effect.gen(function* () {
      const store = yield* ConversationStore
      const behaviour: Actors.ActorBehaviour<
        ConversationId,
        ConversationState,
        ConversationCommand,
        AppendReply,
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
          state.status === "resolved"
            ? Effect.succeed([state, { _tag: "Closed", conversationId: id }] as const)
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
        // Storage that is briefly unavailable: reload and try again rather than fail the ask.
        restartOn: (error) => error._tag === "DatabaseError" && error.retryable,
      }
      return yield* Actors.make(behaviour, {
        name: "conversation",
        ...(options.idleTimeout !== undefined ? { idleTimeout: options.idleTimeout } : {}),
        ...(options.maxActors !== undefined ? { maxActors: options.maxActors } : {}),
        ...(options.mailboxCapacity !== undefined
          ? { mailboxCapacity: options.mailboxCapacity }
          : {}),
      })
    }),
  )
