/**
 * What a person does about replies that could not be delivered: retry one (from the dead-letter
 * list, or the inbox's "resend" on a failed message) — it goes back to `queued`, is announced,
 * and is put on the outbound stream under a fresh bus id for a new series of attempts — or
 * discard it (off the list; it stays failed, visible in the history). Both are recorded with who
 * did it and when.
 */
import { Context, Effect, Layer, Option } from "effect"
import { Bus, type BusError } from "../../core/bus/Bus.ts"
import { publishDeliveryChanged } from "../../core/pipeline/Events.ts"
import type { DatabaseError } from "../../core/storage/Database.ts"
import type { MessageId } from "../../schemas/Ids.ts"
import type { OutgoingMessage } from "../../schemas/Message.ts"
import { OutboundStore } from "../conversation/OutboundWrites.ts"
import { publishOutbound } from "../conversation/Replies.ts"

export type RecoveryResult =
  | { readonly _tag: "Done"; readonly message: OutgoingMessage }
  /** Nothing to do: the reply is not failed (any more), or the dead letter was handled. */
  | { readonly _tag: "Unchanged"; readonly message: OutgoingMessage }
  | { readonly _tag: "Missing" }

export interface RecoveryShape {
  readonly retry: (
    id: MessageId,
    by: string,
  ) => Effect.Effect<RecoveryResult, DatabaseError | BusError>
  readonly discard: (id: MessageId, by: string) => Effect.Effect<RecoveryResult, DatabaseError>
}

export class Recovery extends Context.Tag("chorus/actors/Recovery")<Recovery, RecoveryShape>() {}

export const layer = Layer.effect(
  Recovery,
  Effect.gen(function* () {
    const outbound = yield* OutboundStore
    const bus = yield* Bus

    const retry = Effect.fn("Recovery.retry")(function* (id: MessageId, by: string) {
      const result = yield* outbound.resolveDeadLetter(id, { by, resolution: "retried" })
      if (Option.isNone(result)) return { _tag: "Missing" } satisfies RecoveryResult
      const { changed, message } = result.value
      if (!changed) return { _tag: "Unchanged", message } satisfies RecoveryResult
      yield* Effect.logInfo("failed reply retried").pipe(Effect.annotateLogs({ messageId: id, by }))
      yield* publishDeliveryChanged(
        bus,
        `${message.id}:queued:${message.delivery.at.getTime()}`,
        message,
      )
      // A fresh bus id: the bus would drop the message id it saw within its duplicate window.
      yield* publishOutbound(bus, message, {
        busId: `${message.id}:retry:${message.delivery.at.getTime()}`,
      })
      return { _tag: "Done", message } satisfies RecoveryResult
    })

    const discard = Effect.fn("Recovery.discard")(function* (id: MessageId, by: string) {
      const result = yield* outbound.resolveDeadLetter(id, { by, resolution: "discarded" })
      if (Option.isNone(result)) return { _tag: "Missing" } satisfies RecoveryResult
      if (result.value.changed) {
        yield* Effect.logInfo("dead letter discarded").pipe(
          Effect.annotateLogs({ messageId: id, by }),
        )
      }
      return {
        _tag: result.value.changed ? "Done" : "Unchanged",
        message: result.value.message,
      } satisfies RecoveryResult
    })

    return { retry, discard } satisfies RecoveryShape
  }),
)
