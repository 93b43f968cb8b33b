/**
 * How a test opens a bus: a plain, serializable description of a backend and its storage, so the
 * same description can open a bus in this process or in a child process that the test kills.
 *
 * Backends are imported lazily: a test of one backend never loads the other.
 */
import { Effect, type Scope } from "effect"
import type { BusShape } from "../../core/bus/Bus.ts"
import type { DatabaseOptions } from "../../core/storage/Database.ts"

export type BusBackend =
  | {
    readonly kind: "jetstream"
    readonly servers: string
    readonly namespace: string
  }
  | {
    readonly kind: "embedded"
    readonly namespace: string
    /** The database the bus persists to; every `openBus` opens its own connection to it. */
    readonly database: DatabaseOptions
  }

/** Open a bus instance over `backend`; it (and its connections) close with the scope. */
export const openBus = (backend: BusBackend): Effect.Effect<BusShape, unknown, Scope.Scope> => {
  switch (backend.kind) {
    case "jetstream":
      return Effect.promise(() => import("../../core/bus/JetStreamBus.ts")).pipe(
        Effect.flatMap((JetStreamBus) =>
          JetStreamBus.make({ servers: backend.servers, namespace: backend.namespace })
        ),
      )
    case "embedded":
      return Effect.all([
        Effect.promise(() => import("../../core/bus/EmbeddedBus.ts")),
        Effect.promise(() => import("../../core/storage/Database.ts")),
      ]).pipe(
        Effect.flatMap(([EmbeddedBus, { Database, makeDatabase }]) =>
          makeDatabase(backend.database).pipe(
            Effect.flatMap((db) =>
              EmbeddedBus.make({ namespace: backend.namespace }).pipe(
                Effect.provideService(Database, db),
              )
            ),
          )
        ),
      )
  }
}
