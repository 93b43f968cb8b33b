/**
 * Child process of the `actors-memory` section (needs `--expose-gc`, hence its own process):
 * 10,000 conversations in a SQLite store, then the real `ConversationActors` layer, each
 * conversation's actor asked once (one inbound message appended), and the heap growth per
 * resident actor. Prints one JSON line.
 *
 *   node --expose-gc --import tsx bench/ActorsMemoryChild.ts DIR [count]
 */
import { join } from "node:path"
import { Effect, Layer, Schema } from "effect"
import {
  ConversationActors,
  layer as actorsLayer,
} from "../actors/conversation/ConversationActor.ts"
import { layer as outboundLayer } from "../actors/conversation/OutboundWrites.ts"
import { ConversationStore, layer as storeLayer } from "../actors/conversation/ConversationStore.ts"
import { Database, makeDatabase } from "../core/storage/Database.ts"
import { coreMigrationSet, migrate } from "../core/storage/Migrations.ts"
import type { ChannelIdentityId, ConversationId } from "../schemas/Ids.ts"
import { InboundMessage } from "../schemas/Inbound.ts"

const gc = (globalThis as { gc?: () => void }).gc
if (gc === undefined) throw new Error("run with node --expose-gc")
const dir = process.argv[2]
if (dir === undefined) throw new Error("usage: ActorsMemoryChild.ts DIR [count]")
const count = Number(process.argv[3] ?? 10_000)

const heap = () => {
  gc()
  gc()
  return process.memoryUsage().heapUsed
}

const inbound = (sender: string, externalId: string) =>
  Schema.decodeUnknownSync(InboundMessage)({
    channel: "api",
    account: "bench",
    sender: { externalId: sender, name: "Bench" },
    externalId,
    text: "hello",
    sentAt: "2026-11-23T10:00:00Z",
    receivedAt: "2026-11-23T10:00:01Z",
  })

const program = Effect.gen(function* () {
  const store = yield* ConversationStore
  const open = (i: number) =>
    Effect.gen(function* () {
      const sender = yield* store.resolveSender(inbound(`sender-${i}`, `seed-${i}`))
      const opened = yield* store.openConversation(sender.contact.id, sender.identity)
      return [opened.conversation.id, sender.identity.id] as const
    })
  const warm = yield* Effect.forEach(Array.from({ length: 100 }, (_, i) => count + i), open, {
    concurrency: 16,
  })
  const all = yield* Effect.forEach(Array.from({ length: count }, (_, i) => i), open, {
    concurrency: 16,
  })
  const actors = yield* ConversationActors
  const ask = ([id, identityId]: readonly [ConversationId, ChannelIdentityId], i: number) =>
    actors.ask(id, {
      _tag: "AppendInbound",
      identityId,
      inbound: inbound(`sender-${i}`, `m-${i}`),
    })
  // Warm up code paths so compiled code and caches are not counted per actor.
  yield* Effect.forEach(warm, (c, i) => ask(c, count + i), { concurrency: 64, discard: true })
  const before = heap()
  yield* Effect.forEach(all, ask, { concurrency: 256, discard: true })
  const after = heap()
  const stats = yield* actors.stats
  process.stdout.write(
    `${
      JSON.stringify({
        actors: count,
        resident: stats.resident,
        heapBefore: before,
        heapAfter: after,
        bytesPerActor: Math.round((after - before) / count),
      })
    }\n`,
  )
})

const layer = actorsLayer({ maxActors: count * 2, idleTimeout: "1 hour" }).pipe(
  Layer.provideMerge(Layer.merge(storeLayer(), outboundLayer())),
  Layer.provideMerge(
    Layer.scoped(
      Database,
      Effect.tap(
        makeDatabase({ sqliteFile: join(dir, "actors.sqlite") }),
        (db) => migrate(db, coreMigrationSet),
      ),
    ),
  ),
)

Effect.runPromise(program.pipe(Effect.provide(layer), Effect.scoped)).then(
  () => process.exit(0),
  (e) => {
    console.error(e)
    process.exit(1)
  },
)
