/**
 * What operators, supervisors and routing do to a conversation, with its events: a status
 * change, an assignment or transfer (`conversation.updated` with the changed fields), a private
 * note (`message.note_added`, with the operators it mentions) and a read mark.
 *
 * Each change goes through the conversation's actor, so it is ordered with the messages the
 * actor stores; the event follows the commit. Who may do what is the caller's to check (the
 * HTTP layer knows the operator and their teams).
 */
import { Context, Data, Effect, Layer, Schedule } from "effect"
import type { ActorError } from "../../core/actor/mod.ts"
import { Bus, type BusShape } from "../../core/bus/Bus.ts"
import { newId } from "../../core/ids.ts"
import { publishEvent } from "../../core/pipeline/Events.ts"
import type { DatabaseError } from "../../core/storage/Database.ts"
import type { Conversation } from "../../schemas/Conversation.ts"
import type { ChorusEvent } from "../../schemas/Events.ts"
import type { ConversationId, OperatorId } from "../../schemas/Ids.ts"
import type { Note } from "../../schemas/Message.ts"
import { ConversationActors } from "./ConversationActor.ts"
import {
  type ChangeResult,
  type ConversationChange,
  ConversationChanges,
} from "./ConversationChanges.ts"
import { ConversationStore } from "./ConversationStore.ts"

export class CommandConversationNotFound
  extends Data.TaggedError("CommandConversationNotFound")<{ readonly conversationId: string }> {
  override get message() {
    return `no conversation with id ${this.conversationId}`
  }
}

/** Resolved conversations take no changes (the customer's next message opens a new one). */
export class CommandConversationClosed
  extends Data.TaggedError("CommandConversationClosed")<{ readonly conversationId: string }> {
  override get message() {
    return `conversation ${this.conversationId} is resolved`
  }
}

export type CommandError =
  | CommandConversationNotFound
  | CommandConversationClosed
  | DatabaseError
  | ActorError

export interface NoteInput {
  readonly authorId: OperatorId | null
  readonly text: string
  readonly mentions: ReadonlyArray<OperatorId>
  readonly clientId: string | undefined
}

export interface ConversationCommandsShape {
  readonly change: (
    id: ConversationId,
    change: ConversationChange,
  ) => Effect.Effect<ChangeResult, CommandError>
  readonly addNote: (
    id: ConversationId,
    note: NoteInput,
  ) => Effect.Effect<{ readonly message: Note; readonly duplicate: boolean }, CommandError>
  readonly markRead: (id: ConversationId, seq: number) => Effect.Effect<void, DatabaseError>
}

export class ConversationCommands extends Context.Tag("chorus/actors/ConversationCommands")<
  ConversationCommands,
  ConversationCommandsShape
>() {}

const publishRetry = Schedule.exponential("50 millis").pipe(
  Schedule.either(Schedule.spaced("1 second")),
  Schedule.jittered,
  Schedule.upTo("10 seconds"),
)

/** Publish after the commit; a bus that stays down is logged, not the caller's failure. */
const announce = (bus: BusShape, dedupeId: string, event: ChorusEvent) =>
  publishEvent(bus, dedupeId, event).pipe(
    Effect.retry(publishRetry),
    Effect.catchAll((error) =>
      Effect.logError("change stored but its event not published").pipe(
        Effect.annotateLogs({ event: event.type, dedupeId, error: error.message }),
      )
    ),
  )

export const updatedEvent = (
  conversation: Conversation,
  changed: ReadonlyArray<string>,
): ChorusEvent => ({
  type: "conversation.updated",
  version: 1,
  id: newId.event(),
  occurredAt: new Date(),
  conversation,
  changed: [...changed],
})

export const make = Effect.gen(function* () {
  const bus = yield* Bus
  const actors = yield* ConversationActors
  const changes = yield* ConversationChanges
  const store = yield* ConversationStore

  const change = Effect.fn("ConversationCommands.change")(function* (
    id: ConversationId,
    wanted: ConversationChange,
  ) {
    const result = yield* actors.ask(id, { _tag: "Change", change: wanted }).pipe(
      Effect.catchTag(
        "ConversationMissing",
        () => new CommandConversationNotFound({ conversationId: id }),
      ),
    )
    if (result._tag === "Closed") {
      return yield* new CommandConversationClosed({ conversationId: id })
    }
    if (result._tag === "Changed") {
      if (result.conversation.status === "resolved") {
        yield* store.forgetOpenConversation(result.conversation.contactId, id)
      }
      // Unique per change: the conversation's id and its new updated time.
      const dedupeId = `${id}:${result.conversation.updatedAt.getTime()}:${
        result.changed.join(",")
      }`
      yield* announce(bus, dedupeId, updatedEvent(result.conversation, result.changed))
    }
    return result
  })

  const addNote = Effect.fn("ConversationCommands.addNote")(function* (
    id: ConversationId,
    note: NoteInput,
  ) {
    const result = yield* actors.ask(id, {
      _tag: "AppendNote",
      note: {
        authorId: note.authorId,
        text: note.text,
        mentions: note.mentions,
        clientId: note.clientId,
      },
    }).pipe(
      Effect.catchTag(
        "ConversationMissing",
        () => new CommandConversationNotFound({ conversationId: id }),
      ),
    )
    if (result._tag === "Closed") {
      return yield* new CommandConversationClosed({ conversationId: id })
    }
    yield* announce(bus, result.message.id, {
      type: "message.note_added",
      version: 1,
      id: newId.event(),
      occurredAt: new Date(),
      message: result.message,
    })
    return { message: result.message, duplicate: result._tag === "Duplicate" }
  })

  return {
    change,
    addNote,
    markRead: changes.markRead,
  } satisfies ConversationCommandsShape
})

export const layer = Layer.effect(ConversationCommands, make)
