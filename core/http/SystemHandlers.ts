/** Handlers of the system group: `/health` answers while the process lives; `/ready` checks the store and the bus. */
import { HttpApiBuilder } from "@effect/platform"
import { Duration, Effect } from "effect"
import { Bus, describeCause } from "../bus/Bus.ts"
import { Database } from "../storage/Database.ts"
import { VERSION } from "../version.ts"
import { ChorusApi, NotReady } from "./Api.ts"

const startedAt = Date.now()

const probe = <E>(backend: string, check: Effect.Effect<void, E>) =>
  check.pipe(
    Effect.timeoutFail({ duration: "2 seconds", onTimeout: () => "no answer within 2 s" }),
    Effect.timed,
    Effect.map(([took]) => ({ backend, ok: true, latencyMs: Duration.toMillis(took) })),
    Effect.catchAll((e) => Effect.succeed({ backend, ok: false, error: describeCause(e) })),
  )

export const SystemHandlers = HttpApiBuilder.group(
  ChorusApi,
  "system",
  (handlers) =>
    Effect.gen(function* () {
      const database = yield* Database
      const bus = yield* Bus
      return handlers
        .handle("health", () =>
          Effect.succeed({
            status: "ok" as const,
            version: VERSION,
            uptimeSeconds: Math.round((Date.now() - startedAt) / 1000),
          }))
        .handle("ready", () =>
          Effect.gen(function* () {
            const [store, busState] = yield* Effect.all(
              [probe(database.dialect, database.ping), probe(bus.backend, bus.ping)],
              { concurrency: 2 },
            )
            const ok = store.ok && busState.ok
            const readiness = {
              status: ok ? ("ready" as const) : ("not_ready" as const),
              store,
              bus: busState,
            }
            if (!ok) return yield* new NotReady({ readiness })
            return readiness
          }))
    }),
)
