/**
 * The core's own figures for `GET /metrics`, in Prometheus' text format: the bus consumers (what
 * they took, acknowledged, retried, dead-lettered, and hold now), the actor supervisors
 * (resident actors, mailboxes, restarts, defects), the group-commit writers (transactions and the
 * writes they carried), how long a customer's message takes to reach the inbox, and the process
 * (CPU, memory, event-loop delay).
 *
 * Whatever runs registers while it runs — a consumer runner, a supervisor, a writer — with the
 * labels that name it and plain counters it bumps itself (no Effect, no allocation on the message
 * path). The figures are the process's: two parts with the same labels (two servers in one test
 * process, a consumer restarted) are summed, and the counters of a part that stopped are kept, so
 * a counter never goes down while the process lives.
 */
import { monitorEventLoopDelay } from "node:perf_hooks"
import type { ActorStats } from "../actor/ActorSupervisor.ts"
import type { GroupCommitStats } from "../storage/GroupCommit.ts"

export type Labels = Readonly<Record<string, string>>

/** One metric of a family: its name, type, help, and how to read it off one registered part. */
interface Metric<P> {
  readonly name: string
  readonly type: "counter" | "gauge"
  readonly help: string
  readonly read: (part: P) => number
}

interface Family<P> {
  readonly metrics: ReadonlyArray<Metric<P>>
  readonly parts: Set<{ readonly labels: Labels; readonly part: P }>
  /** Counters of parts that stopped, per label set (key → metric name → value). */
  readonly retired: Map<string, { readonly labels: Labels; readonly values: Map<string, number> }>
}

const metric =
  (type: "counter" | "gauge") =>
  <P>(name: string, help: string, read: (part: P) => number): Metric<P> => ({
    name,
    type,
    help,
    read,
  })
const counter = metric("counter")
const gauge = metric("gauge")

const labelKey = (labels: Labels) => JSON.stringify(Object.entries(labels).sort())

const family = <P>(metrics: ReadonlyArray<Metric<P>>): Family<P> => ({
  metrics,
  parts: new Set(),
  retired: new Map(),
})

/** Register `part` under `labels` until the returned function is called. */
const register = <P>(f: Family<P>, labels: Labels, part: P): () => void => {
  const entry = { labels, part }
  f.parts.add(entry)
  return () => {
    if (!f.parts.delete(entry)) return
    const key = labelKey(labels)
    const kept = f.retired.get(key) ?? { labels, values: new Map<string, number>() }
    for (const m of f.metrics) {
      if (m.type === "counter") {
        kept.values.set(m.name, (kept.values.get(m.name) ?? 0) + m.read(part))
      }
    }
    f.retired.set(key, kept)
  }
}

const escape = (value: string) =>
  value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n")

const formatLabels = (labels: Labels) => {
  const entries = Object.entries(labels)
  return entries.length === 0 ? "" : `{${entries.map(([k, v]) => `${k}="${escape(v)}"`).join(",")}}`
}

const render = <P>(f: Family<P>): string => {
  const lines: Array<string> = []
  for (const m of f.metrics) {
    const sums = new Map<string, { labels: Labels; value: number }>()
    const add = (labels: Labels, value: number) => {
      const key = labelKey(labels)
      const at = sums.get(key)
      if (at) at.value += value
      else sums.set(key, { labels, value })
    }
    for (const { labels, part } of f.parts) add(labels, m.read(part))
    if (m.type === "counter") {
      for (const { labels, values } of f.retired.values()) add(labels, values.get(m.name) ?? 0)
    }
    if (sums.size === 0) continue
    lines.push(`# HELP ${m.name} ${m.help}`, `# TYPE ${m.name} ${m.type}`)
    for (const { labels, value } of sums.values()) {
      lines.push(`${m.name}${formatLabels(labels)} ${value}`)
    }
  }
  return lines.length === 0 ? "" : lines.join("\n") + "\n"
}

// --- bus consumers --------------------------------------------------------------------------

/** What a consumer runner counts (it bumps the numbers) and holds (read when scraped). */
export interface ConsumerFigures {
  delivered: number
  acknowledged: number
  retried: number
  timedOut: number
  deadLettered: number
  readonly held: () => number
  readonly running: () => number
  readonly waiting: () => number
}

const consumers = family<ConsumerFigures>([
  counter(
    "chorus_bus_consumer_delivered_total",
    "Deliveries the consumer took from the bus, redeliveries included.",
    (c) => c.delivered,
  ),
  counter(
    "chorus_bus_consumer_acknowledged_total",
    "Messages handled and acknowledged.",
    (c) => c.acknowledged,
  ),
  counter(
    "chorus_bus_consumer_retried_total",
    "Failed handlings (errors, defects, timeouts) given back to the bus for a redelivery.",
    (c) => c.retried,
  ),
  counter(
    "chorus_bus_consumer_timed_out_total",
    "Handlers interrupted for running past the consumer's handler timeout.",
    (c) => c.timedOut,
  ),
  counter(
    "chorus_bus_consumer_dead_lettered_total",
    "Messages dead-lettered: refused by the handler, or failed on their last delivery.",
    (c) => c.deadLettered,
  ),
  gauge(
    "chorus_bus_consumer_held",
    "Deliveries the consumer holds unacknowledged now (queued, running, waiting).",
    (c) => c.held(),
  ),
  gauge("chorus_bus_consumer_running", "Handlers running now.", (c) => c.running()),
  gauge(
    "chorus_bus_consumer_waiting_redelivery",
    "Failed deliveries held while they wait for their redelivery.",
    (c) => c.waiting(),
  ),
])

/** Counters for one running consumer; call `unregister` when it stops. */
export const registerConsumer = (
  labels: { readonly stream: string; readonly consumer: string },
  gauges: Pick<ConsumerFigures, "held" | "running" | "waiting">,
): { readonly figures: ConsumerFigures; readonly unregister: () => void } => {
  const figures: ConsumerFigures = {
    delivered: 0,
    acknowledged: 0,
    retried: 0,
    timedOut: 0,
    deadLettered: 0,
    ...gauges,
  }
  return { figures, unregister: register(consumers, labels, figures) }
}

// --- actor supervisors ----------------------------------------------------------------------

const actors = family<() => ActorStats>([
  gauge("chorus_actors_resident", "Actors in memory, busy or idle.", (s) => s().resident),
  gauge("chorus_actors_busy", "Actors handling a message now.", (s) => s().busy),
  gauge(
    "chorus_actors_waiting_for_slot",
    "Keys with messages waiting for room among the resident actors.",
    (s) => s().waitingForSlot,
  ),
  gauge(
    "chorus_actors_mailbox_depth",
    "Messages in all mailboxes (the one in hand included).",
    (s) => s().mailboxDepthTotal,
  ),
  gauge(
    "chorus_actors_mailbox_depth_max",
    "Messages in the fullest mailbox.",
    (s) => s().mailboxDepthMax,
  ),
  gauge(
    "chorus_actors_waiting_for_mailbox",
    "Senders suspended on a full mailbox (backpressure).",
    (s) => s().waitingForMailbox,
  ),
  counter("chorus_actors_handled_total", "Messages the actors handled.", (s) => s().handled),
  counter("chorus_actors_restarts_total", "Actor restarts after a defect.", (s) => s().restarts),
  counter(
    "chorus_actors_defects_total",
    "Messages failed with a defect after the restart schedule ran out.",
    (s) => s().defects,
  ),
  counter(
    "chorus_actors_passivations_total",
    "Actors passivated (idle, evicted, or at shutdown).",
    (s) => s().passivations,
  ),
])

/** Report a supervisor's figures (read when scraped) until `unregister` is called. */
export const registerActors = (actor: string, figures: () => ActorStats): () => void =>
  register(actors, { actor }, figures)

// --- group-commit writers -------------------------------------------------------------------

const writers = family<() => GroupCommitStats>([
  counter(
    "chorus_store_transactions_total",
    "Transactions of the group-commit writer (a batch, or one write of a failed batch).",
    (s) => s().transactions,
  ),
  counter(
    "chorus_store_writes_total",
    "Writes the group-commit writer committed or failed.",
    (s) => s().jobs,
  ),
  gauge(
    "chorus_store_largest_batch",
    "Most writes one of the writer's transactions carried so far.",
    (s) => s().largestBatch,
  ),
])

/** Report a group-commit writer's figures until `unregister` is called. */
export const registerWriter = (writer: string, figures: () => GroupCommitStats): () => void =>
  register(writers, { writer }, figures)

// --- inbound latency ------------------------------------------------------------------------

/** Upper bounds (seconds, inclusive) of the inbound latency histogram: 1 ms … 10 s. */
export const LATENCY_BUCKETS = [
  0.001,
  0.0025,
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  5,
  10,
] as const

interface Histogram {
  readonly counts: Array<number>
  sum: number
  count: number
}

/** Per channel; channels are few (the api channel and the channel plugins), capped anyway. */
const inboundLatency = new Map<string, Histogram>()
const MAX_CHANNELS = 64

/**
 * A customer's message was stored and its `message.received` published, `seconds` after the bus
 * accepted it (when `POST /api/v1/inbound` answered 202, or a channel plugin's `receive` returned).
 */
export const observeInboundLatency = (channel: string, seconds: number): void => {
  let h = inboundLatency.get(channel)
  if (h === undefined) {
    if (inboundLatency.size >= MAX_CHANNELS) return
    h = { counts: LATENCY_BUCKETS.map(() => 0), sum: 0, count: 0 }
    inboundLatency.set(channel, h)
  }
  const value = Math.max(0, seconds)
  for (let i = 0; i < LATENCY_BUCKETS.length; i++) {
    if (value <= LATENCY_BUCKETS[i]!) {
      h.counts[i]!++
      break
    }
  }
  h.sum += value
  h.count++
}

const latencyPrometheus = (): string => {
  if (inboundLatency.size === 0) return ""
  const name = "chorus_inbound_latency_seconds"
  const lines = [
    `# HELP ${name} From a customer's message accepted by the bus to its message.received ` +
    "published: what an open inbox waits for it.",
    `# TYPE ${name} histogram`,
  ]
  for (const [channel, h] of inboundLatency) {
    const label = `channel="${escape(channel)}"`
    let cumulative = 0
    LATENCY_BUCKETS.forEach((bound, i) => {
      cumulative += h.counts[i]!
      lines.push(`${name}_bucket{${label},le="${bound}"} ${cumulative}`)
    })
    lines.push(`${name}_bucket{${label},le="+Inf"} ${h.count}`)
    lines.push(`${name}_sum{${label}} ${h.sum}`, `${name}_count{${label}} ${h.count}`)
  }
  return lines.join("\n") + "\n"
}

// --- the process ----------------------------------------------------------------------------

let loopDelay: ReturnType<typeof monitorEventLoopDelay> | undefined

const processMetrics = (): string => {
  // Measured from the first scrape on; each scrape reports the interval since the previous one.
  if (loopDelay === undefined) {
    loopDelay = monitorEventLoopDelay({ resolution: 10 })
    loopDelay.enable()
  }
  const cpu = process.cpuUsage()
  const memory = process.memoryUsage()
  const p99 = loopDelay.count > 0 ? loopDelay.percentile(99) / 1e9 : 0
  const max = loopDelay.count > 0 ? loopDelay.max / 1e9 : 0
  loopDelay.reset()
  return [
    "# HELP process_cpu_seconds_total CPU time of the process, user and system.",
    "# TYPE process_cpu_seconds_total counter",
    `process_cpu_seconds_total ${(cpu.user + cpu.system) / 1e6}`,
    "# HELP process_resident_memory_bytes Resident memory of the process.",
    "# TYPE process_resident_memory_bytes gauge",
    `process_resident_memory_bytes ${memory.rss}`,
    "# HELP nodejs_heap_used_bytes JavaScript heap in use.",
    "# TYPE nodejs_heap_used_bytes gauge",
    `nodejs_heap_used_bytes ${memory.heapUsed}`,
    "# HELP nodejs_eventloop_delay_p99_seconds Event-loop delay, 99th percentile since the " +
    "previous scrape (10 ms resolution).",
    "# TYPE nodejs_eventloop_delay_p99_seconds gauge",
    `nodejs_eventloop_delay_p99_seconds ${p99}`,
    "# HELP nodejs_eventloop_delay_max_seconds Event-loop delay, longest since the previous scrape.",
    "# TYPE nodejs_eventloop_delay_max_seconds gauge",
    `nodejs_eventloop_delay_max_seconds ${max}`,
  ].join("\n") + "\n"
}

/** Everything above, as Prometheus text. */
export const corePrometheus = (): string =>
  render(consumers) + render(actors) + render(writers) + latencyPrometheus() + processMetrics()
