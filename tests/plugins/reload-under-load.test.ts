/**
 * Hot reload under load, exactly once (issue #4): while the test publishes 10,000 messages, a
 * plugin consuming them is reloaded 20 times; every message is handled exactly once.
 *
 * The plugin records each message it handles by publishing `plugins.load.done` with a random
 * de-duplication id (not derived from the message, so a second handling would be stored as a
 * second message, not hidden by the bus); the test reads every `done` back and counts the input
 * ids, independently of the host's counters.
 *
 * Worker mode on the embedded bus (SQLite) is the CI case; in-process mode on the embedded bus
 * and worker mode on JetStream (the shared nats-server, a namespace of its own) run too.
 */
import { assert, describe, it } from "@effect/vitest"
import { Chunk, Effect, Fiber, Stream } from "effect"
import type { BusShape } from "../../core/bus/Bus.ts"
import type { PluginMode } from "../../core/plugins/guest/Api.ts"
import { openBus } from "../support/BusBackend.ts"
import { freshNamespace } from "../support/NatsCleanup.ts"
import { eventually, pluginsRoot, startHost, writePlugin } from "../support/PluginFixtures.ts"
import { testNatsUrl } from "../support/TestServices.ts"

const MESSAGES = 10_000
const RELOADS = 20

// The version id is drawn per activation, not per module: under vitest an in-process reload
// gets the cached module back (its runner drops the \`?v=\` query the host adds), though the
// host still activates it afresh.
const loadSource = `
export default {
  async activate(chorus) {
    const version = crypto.randomUUID()
    let handled = 0
    await chorus.bus.ensureStream({ name: "plugin-load", subjects: ["plugins.load.>"] })
    await chorus.bus.consume(
      { stream: "plugin-load", name: "main", filter: "plugins.load.in", concurrency: 32 },
      async (message) => {
        await chorus.bus.publish(
          "plugins.load.done",
          { in: message.id, version },
          { id: crypto.randomUUID() },
        )
        // Now and then, work after the record (as a real handler has): a version stopped
        // before its handlers finish would have those messages handled again by the next one.
        if (++handled % 16 === 0) await new Promise((resolve) => setTimeout(resolve, 20))
      },
    )
  },
}
`

const loadManifest = {
  permissions: { bus: { publish: ["plugins.load.>"], subscribe: ["plugins.load.>"] } },
}

const utf8 = new TextEncoder()
const fromUtf8 = new TextDecoder()

const underLoad = (mode: PluginMode, bus?: BusShape) =>
  Effect.gen(function* () {
    const root = yield* pluginsRoot()
    writePlugin(root, { id: "load", manifest: loadManifest, source: loadSource })
    const { host, bus: hostBus } = yield* startHost(root, {
      mode,
      ...(bus === undefined ? {} : { bus }),
    })
    const status = yield* host.status("load")
    assert.strictEqual(status.state, "active", JSON.stringify(status.lastError))
    const started = Date.now()

    const publisher = yield* Effect.forEach(
      Array.from({ length: MESSAGES }, (_, i) => i),
      (i) => hostBus.publish("plugins.load.in", utf8.encode(`m${i}`), { id: `in-${i}` }),
      { concurrency: 32, discard: true },
    ).pipe(Effect.fork)

    // Reloads spread over the flow: the i-th once the plugin has handled i/(RELOADS+1) of it.
    const versions = new Set<number>()
    for (let i = 1; i <= RELOADS; i++) {
      const threshold = Math.floor((i * MESSAGES) / (RELOADS + 1))
      yield* eventually(
        `${threshold} handled before reload ${i}`,
        host.status("load").pipe(Effect.map((s) => s.counters.delivered >= threshold)),
        40_000,
      )
      const reloaded = yield* host.reload("load")
      assert.strictEqual(reloaded.state, "active", JSON.stringify(reloaded.lastError))
      versions.add(reloaded.generation)
    }
    yield* Fiber.join(publisher)
    const published = Date.now()

    yield* eventually(
      "every message handled",
      host.status("load").pipe(Effect.map((s) => s.counters.delivered >= MESSAGES)),
      60_000,
    )
    // Every `done` the plugin stored: all there by now (each is stored before its message is
    // acknowledged), and whatever else comes within 2 seconds.
    const done = yield* hostBus.read("plugin-load", { fromSeq: 1, filter: "plugins.load.done" })
      .pipe(Stream.timeout("2 seconds"), Stream.runCollect, Effect.map(Chunk.toArray))
    const counts = new Map<string, number>()
    const byVersion = new Set<string>()
    for (const m of done) {
      const record = JSON.parse(fromUtf8.decode(m.data)) as { in: string; version: string }
      counts.set(record.in, (counts.get(record.in) ?? 0) + 1)
      byVersion.add(record.version)
    }
    const twice = [...counts].filter(([, n]) => n > 1).map(([id]) => id)
    const missing = Array.from({ length: MESSAGES }, (_, i) => `in-${i}`)
      .filter((id) => !counts.has(id))
    assert.deepStrictEqual(twice.slice(0, 10), [], `${twice.length} handled more than once`)
    assert.deepStrictEqual(missing.slice(0, 10), [], `${missing.length} never handled`)
    assert.strictEqual(done.length, MESSAGES)

    const after = yield* host.status("load")
    assert.strictEqual(after.state, "active")
    assert.strictEqual(after.generation, RELOADS + 1)
    assert.strictEqual(after.restarts, 0)
    assert.strictEqual(after.counters.delivered, MESSAGES)
    assert.strictEqual(after.counters.deliveryErrors, 0)
    assert.strictEqual(versions.size, RELOADS)
    // Most versions took part (a version between two close reloads may have had nothing to do).
    assert.isAtLeast(byVersion.size, RELOADS / 2)
    const dead = yield* hostBus.deadLetters.list({})
    assert.strictEqual(dead.length, 0)
    yield* Effect.logInfo("reload under load").pipe(
      Effect.annotateLogs({
        mode,
        publishMs: published - started,
        totalMs: Date.now() - started,
        versionsThatHandled: byVersion.size,
      }),
    )
  })

describe("hot reload under load", () => {
  it.scopedLive(
    `worker on the embedded bus: ${MESSAGES} messages, ${RELOADS} reloads, each handled exactly once`,
    () => underLoad("worker"),
    90_000,
  )

  it.scopedLive(
    `in-process on the embedded bus: ${MESSAGES} messages, ${RELOADS} reloads, each handled exactly once`,
    () => underLoad("inprocess"),
    90_000,
  )

  it.scopedLive(
    `worker on JetStream: ${MESSAGES} messages, ${RELOADS} reloads, each handled exactly once`,
    () =>
      Effect.gen(function* () {
        const namespace = yield* freshNamespace("reload")
        const bus = yield* openBus({ kind: "jetstream", servers: testNatsUrl, namespace })
        yield* underLoad("worker", bus)
      }),
    90_000,
  )
})
