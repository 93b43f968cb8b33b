/**
 * Heap per resident idle actor: starts 10,000 actors (one message each), lets them go idle and
 * compares the heap with the heap before. State is a small record, as a conversation actor's
 * would be before it caches anything; the figure is the supervisor's overhead plus that record.
 *
 *   node --expose-gc --import tsx tests/actor/residentMemory.ts [actors]
 */
import { Effect } from "effect"
import { type ActorBehaviour, make } from "../../core/actor/mod.ts"

const gc = (globalThis as { gc?: () => void }).gc
if (gc === undefined) throw new Error("run with node --expose-gc")

const count = Number(process.argv[2] ?? 10_000)

interface ConversationState {
  readonly id: string
  readonly lastSeq: number
}

const behaviour: ActorBehaviour<string, ConversationState, "ping", number> = {
  load: (id) => Effect.succeed({ id, lastSeq: 0 }),
  receive: (state) =>
    Effect.succeed([{ id: state.id, lastSeq: state.lastSeq + 1 }, state.lastSeq + 1] as const),
}

const heap = () => {
  gc()
  gc()
  return process.memoryUsage().heapUsed
}

const program = Effect.gen(function* () {
  const actors = yield* make(behaviour, { name: "conversation", maxActors: count * 2 })
  // Warm up code paths so compiled code and caches are not counted per actor.
  yield* Effect.forEach(
    Array.from({ length: 100 }, (_, i) => `warm-${i}`),
    (k) => actors.ask(k, "ping"),
    { concurrency: 64 },
  )
  const keys = Array.from({ length: count }, (_, i) => `conversation-${String(i).padStart(8, "0")}`)
  const before = heap()
  yield* Effect.forEach(keys, (k) => actors.ask(k, "ping"), { concurrency: 256, discard: true })
  const after = heap()
  const stats = yield* actors.stats
  const perActor = (after - before) / count
  console.log(
    JSON.stringify({
      actors: count,
      resident: stats.resident,
      busy: stats.busy,
      heapBeforeMiB: +(before / 2 ** 20).toFixed(2),
      heapAfterMiB: +(after / 2 ** 20).toFixed(2),
      bytesPerResidentIdleActor: Math.round(perActor),
    }),
  )
})

Effect.runPromise(Effect.scoped(program))
