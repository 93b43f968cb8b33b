/**
 * Presence follows the inbox's connections: an operator marked online whose every inbox tab has
 * been closed (no open event stream on this node) for `grace` becomes offline, so routing stops
 * giving them conversations nobody would see. Coming back does not turn them online again: that
 * is the operator's choice, made in the inbox.
 *
 * One node's view: with several nodes, an operator connected to another node only is not seen
 * here; the grace period is then the only protection (see docs/inbox.md).
 */
import { Context, Duration, Effect, Fiber, Layer, Option, type Scope } from "effect"
import { Operators } from "../../core/accounts/Operators.ts"
import type { OperatorId } from "../../schemas/Ids.ts"
import { OperatorEvents } from "./OperatorEvents.ts"

export interface PresenceShape {
  /** Count an open inbox connection for the operator until the scope closes. */
  readonly connected: (operatorId: OperatorId) => Effect.Effect<void, never, Scope.Scope>
}

export class Presence extends Context.Tag("chorus/actors/Presence")<Presence, PresenceShape>() {}

export const make = (options: { readonly grace?: Duration.DurationInput } = {}) =>
  Effect.gen(function* () {
    const operators = yield* Operators
    const events = yield* OperatorEvents
    const scope = yield* Effect.scope
    const grace = options.grace ?? Duration.seconds(60)
    const open = new Map<OperatorId, number>()
    const pending = new Map<OperatorId, Fiber.RuntimeFiber<void>>()

    const goOfflineLater = (id: OperatorId) =>
      Effect.gen(function* () {
        yield* Effect.sleep(grace)
        if ((open.get(id) ?? 0) > 0) return
        const operator = yield* operators.get(id)
        if (Option.isNone(operator) || operator.value.presence !== "online") return
        yield* operators.update(id, { presence: "offline" })
        yield* Effect.logInfo("operator offline: no inbox open").pipe(
          Effect.annotateLogs({ operatorId: id }),
        )
        yield* events.changed(id)
      }).pipe(
        Effect.catchAll((error) =>
          Effect.logWarning("presence not updated").pipe(
            Effect.annotateLogs({ operatorId: id, error: String(error) }),
          )
        ),
        Effect.ensuring(Effect.sync(() => pending.delete(id))),
      )

    const connected = (id: OperatorId) =>
      Effect.acquireRelease(
        Effect.gen(function* () {
          open.set(id, (open.get(id) ?? 0) + 1)
          const waiting = pending.get(id)
          if (waiting !== undefined) yield* Fiber.interrupt(waiting)
        }),
        () =>
          Effect.gen(function* () {
            const left = (open.get(id) ?? 1) - 1
            if (left > 0) {
              open.set(id, left)
              return
            }
            open.delete(id)
            // A release runs uninterruptibly, and a fiber forked there would inherit that: the
            // wait must stay interruptible, or closing the layer would wait the whole grace.
            if (!pending.has(id)) {
              pending.set(id, yield* Effect.forkIn(Effect.interruptible(goOfflineLater(id)), scope))
            }
          }),
      ).pipe(Effect.asVoid)

    return { connected } satisfies PresenceShape
  })

export const layer = (options: { readonly grace?: Duration.DurationInput } = {}) =>
  Layer.scoped(Presence, make(options))
