/**
 * `operator.updated`: published when an operator's presence, role, capacity or teams change,
 * with their current load, so supervisors' screens follow; routing is woken at the same time
 * (someone coming online may take queued conversations at once).
 */
import { Context, Effect, Layer, Option } from "effect"
import { Operators } from "../../core/accounts/Operators.ts"
import { Bus } from "../../core/bus/Bus.ts"
import { newId } from "../../core/ids.ts"
import { publishEvent } from "../../core/pipeline/Events.ts"
import type { OperatorId } from "../../schemas/Ids.ts"
import { InboxQueries } from "../conversation/InboxQueries.ts"
import { Router } from "./Router.ts"

export interface OperatorEventsShape {
  /** Announce the operator's current state; never fails (a failure is logged). */
  readonly changed: (id: OperatorId) => Effect.Effect<void>
}

export class OperatorEvents extends Context.Tag("chorus/actors/OperatorEvents")<
  OperatorEvents,
  OperatorEventsShape
>() {}

export const make = Effect.gen(function* () {
  const bus = yield* Bus
  const operators = yield* Operators
  const queries = yield* InboxQueries
  const router = yield* Router

  const changed = (id: OperatorId) =>
    Effect.gen(function* () {
      yield* router.wake
      const operator = yield* operators.get(id)
      if (Option.isNone(operator)) return
      const loads = yield* queries.loads()
      const event = {
        type: "operator.updated" as const,
        version: 1 as const,
        id: newId.event(),
        occurredAt: new Date(),
        operator: { ...operator.value, load: loads.get(id) ?? 0 },
      }
      yield* publishEvent(bus, event.id, event)
    }).pipe(
      Effect.catchAll((error) =>
        Effect.logWarning("operator.updated not published").pipe(
          Effect.annotateLogs({ operatorId: id, error: String(error) }),
        )
      ),
      Effect.withSpan("OperatorEvents.changed"),
    )

  return { changed } satisfies OperatorEventsShape
})

export const layer = Layer.effect(OperatorEvents, make)
