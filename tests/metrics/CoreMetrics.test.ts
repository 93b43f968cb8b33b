/**
 * The core's metrics registry: parts with the same labels are summed, a stopped part's counters
 * are kept (a counter never goes down while the process lives) and its gauges go, and the text
 * is well-formed Prometheus exposition.
 */
import { assert, describe, it } from "@effect/vitest"
import {
  corePrometheus,
  LATENCY_BUCKETS,
  observeInboundLatency,
  registerActors,
  registerConsumer,
  registerWriter,
} from "../../core/metrics/CoreMetrics.ts"
import { metricValue } from "../support/Metrics.ts"

const actorFigures = (handled: number, resident: number) => () => ({
  resident,
  busy: 0,
  waitingForSlot: 0,
  passivating: 0,
  mailboxDepthTotal: 0,
  mailboxDepthMax: 0,
  waitingForMailbox: 0,
  handled,
  restarts: 0,
  defects: 0,
  passivations: 0,
})

describe("core metrics", () => {
  it("sums parts with the same labels; keeps a stopped part's counters, not its gauges", () => {
    const labels = { stream: "unit-metrics", consumer: `c-${Date.now()}` }
    let held = 3
    const a = registerConsumer(labels, { held: () => held, running: () => 1, waiting: () => 0 })
    const b = registerConsumer(labels, { held: () => 2, running: () => 0, waiting: () => 0 })
    a.figures.acknowledged += 5
    b.figures.acknowledged += 2
    b.figures.deadLettered += 1
    let text = corePrometheus()
    assert.strictEqual(metricValue(text, "chorus_bus_consumer_acknowledged_total", labels), 7)
    assert.strictEqual(metricValue(text, "chorus_bus_consumer_held", labels), 5)
    held = 4
    b.unregister()
    b.unregister() // twice is once
    text = corePrometheus()
    assert.strictEqual(metricValue(text, "chorus_bus_consumer_acknowledged_total", labels), 7)
    assert.strictEqual(metricValue(text, "chorus_bus_consumer_dead_lettered_total", labels), 1)
    assert.strictEqual(metricValue(text, "chorus_bus_consumer_held", labels), 4)
    a.figures.acknowledged += 1
    a.unregister()
    text = corePrometheus()
    assert.strictEqual(metricValue(text, "chorus_bus_consumer_acknowledged_total", labels), 8)
    assert.notInclude(text, `chorus_bus_consumer_held{stream="unit-metrics"`)
  })

  it("reports supervisors and writers under their names, read when scraped", () => {
    const actor = `unit-${Date.now()}`
    let handled = 10
    const stop = registerActors(actor, () => actorFigures(handled, 2)())
    const stopWriter = registerWriter(actor, () => ({ transactions: 4, jobs: 9, largestBatch: 3 }))
    handled = 12
    const text = corePrometheus()
    assert.strictEqual(metricValue(text, "chorus_actors_handled_total", { actor }), 12)
    assert.strictEqual(metricValue(text, "chorus_actors_resident", { actor }), 2)
    assert.strictEqual(metricValue(text, "chorus_store_writes_total", { writer: actor }), 9)
    assert.strictEqual(metricValue(text, "chorus_store_largest_batch", { writer: actor }), 3)
    stop()
    stopWriter()
    const after = corePrometheus()
    assert.strictEqual(metricValue(after, "chorus_actors_handled_total", { actor }), 12)
    assert.notInclude(after, `chorus_actors_resident{actor="${actor}"}`)
  })

  it("the inbound latency is a cumulative histogram per channel, in seconds", () => {
    const channel = `unit-${Date.now()}`
    for (const seconds of [0.0005, 0.003, 0.003, 0.2, 42, -1]) {
      observeInboundLatency(channel, seconds)
    }
    const text = corePrometheus()
    const bucket = (le: string) =>
      metricValue(text, "chorus_inbound_latency_seconds_bucket", { channel, le })
    // -1 (a clock ahead of the bus's) counts as 0; 42 s is past the last bound.
    assert.strictEqual(bucket("0.001"), 2)
    assert.strictEqual(bucket("0.0025"), 2)
    assert.strictEqual(bucket("0.005"), 4)
    assert.strictEqual(bucket("0.25"), 5)
    assert.strictEqual(bucket(String(LATENCY_BUCKETS[LATENCY_BUCKETS.length - 1])), 5)
    assert.strictEqual(bucket("+Inf"), 6)
    assert.strictEqual(metricValue(text, "chorus_inbound_latency_seconds_count", { channel }), 6)
    assert.closeTo(
      metricValue(text, "chorus_inbound_latency_seconds_sum", { channel }),
      0.0005 + 0.003 + 0.003 + 0.2 + 42,
      1e-9,
    )
  })

  it("is Prometheus text: every sample's family has one HELP and one TYPE, labels escaped", () => {
    const stop = registerActors('odd "name"\\x', actorFigures(1, 1))
    observeInboundLatency("unit-format", 0.003)
    const text = corePrometheus()
    stop()
    assert.include(text, 'chorus_actors_resident{actor="odd \\"name\\"\\\\x"} 1')
    const declared = new Map<string, number>()
    for (const line of text.trim().split("\n")) {
      const type = /^# TYPE (\S+) (counter|gauge|histogram)$/.exec(line)
      if (type) {
        declared.set(type[1]!, (declared.get(type[1]!) ?? 0) + 1)
        continue
      }
      if (line.startsWith("# HELP ")) continue
      const sample = /^([a-z_][a-z0-9_]*)(\{.*\})? (-?[0-9.e+-]+)$/.exec(line)
      assert.isNotNull(sample, `not a sample line: ${line}`)
      const family = declared.has(sample![1]!)
        ? sample![1]!
        : sample![1]!.replace(/_(bucket|sum|count)$/, "")
      assert.strictEqual(declared.get(family), 1, `${sample![1]} declared once`)
    }
    assert.include([...declared.keys()], "process_resident_memory_bytes")
  })
})
