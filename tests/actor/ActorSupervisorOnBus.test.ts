/**
 * The supervisor fed from the bus the way the conversation actors will be: a key-ordered
 * consumer `ask`s the actor and acknowledges only on its reply. On the embedded bus over SQLite,
 * with the real clock and short delays.
 */
import { join } from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Schedule } from "effect"
import { type BusShape } from "../../core/bus/Bus.ts"
import * as EmbeddedBus from "../../core/bus/EmbeddedBus.ts"
import { Database, makeDatabase } from "../../core/storage/Database.ts"
import { coreMigrationSet, migrate } from "../../core/storage/Migrations.ts"
import { type ActorBehaviour, make } from "../../core/actor/mod.ts"
import { tempDir } from "../support/TempDir.ts"
import { uniqueNamespace } from "../support/TestNamespace.ts"

const openBus = Effect.gen(function* () {
  const dir = yield* tempDir("chorus-actor-bus-")
  const db = yield* makeDatabase({ sqliteFile: join(dir, "chorus.sqlite") })
  yield* migrate(db, coreMigrationSet)
  const bus: BusShape = yield* EmbeddedBus.make({ namespace: uniqueNamespace("actor_") }).pipe(
    Effect.provideService(Database, db),
  )
  yield* bus.ensureStream({ name: "inbound", subjects: ["inbound.>"] })
  return bus
})

const text = new TextDecoder()
const bytes = (s: string) => new TextEncoder().encode(s)

describe("ActorSupervisor on the bus", () => {
  it.live(
    "a crash is handled by a restart; exhausted restarts dead-letter with the ActorDefect",
    () =>
      Effect.scoped(Effect.gen(function* () {
        const bus = yield* openBus
        const store = new Map<string, Array<string>>()
        let crashes = 0
        const behaviour: ActorBehaviour<string, Array<string>, string, void> = {
          load: (key) => Effect.sync(() => [...(store.get(key) ?? [])]),
          receive: (log, body, key) =>
            Effect.sync(() => {
              if (body === "poison") throw new Error("cannot parse poison")
              if (body === "crash-once" && crashes++ === 0) throw new Error("transient crash")
              const next = [...log, body]
              store.set(key, next)
              return [next, undefined] as const
            }),
        }
        const actors = yield* make(behaviour, {
          name: "conversation",
          restart: Schedule.spaced("5 millis").pipe(Schedule.intersect(Schedule.recurs(2))),
        })
        yield* bus.consume(
          {
            stream: "inbound",
            name: "conversations",
            ordering: "key",
            maxDeliver: 2,
            retry: Schedule.spaced("10 millis"),
          },
          (message) => actors.ask(message.key!, text.decode(message.data)),
        )
        const bodies = ["one", "crash-once", "poison", "two"]
        for (const [i, body] of bodies.entries()) {
          yield* bus.publish("inbound.api", bytes(body), { id: `m${i}`, key: "c1" })
        }
        yield* Effect.suspend(() =>
          (store.get("c1")?.length ?? 0) === 3 ? Effect.void : Effect.fail("not yet")
        ).pipe(Effect.retry(Schedule.spaced("20 millis").pipe(Schedule.upTo("20 seconds"))))

        assert.deepStrictEqual(store.get("c1"), ["one", "crash-once", "two"])
        const dead = yield* bus.deadLetters.list({ consumer: "conversations" })
        assert.strictEqual(dead.length, 1)
        assert.strictEqual(text.decode(dead[0]!.data), "poison")
        assert.strictEqual(dead[0]!.deliveries, 2)
        assert.include(dead[0]!.reason, "conversation c1 failed after 2 restart(s)")
        assert.include(dead[0]!.reason, "cannot parse poison")
        const stats = yield* actors.stats
        // One restart for the crash, two per delivery of the poison.
        assert.strictEqual(stats.restarts, 5)
        assert.strictEqual(stats.defects, 2)
      })),
  )
})
