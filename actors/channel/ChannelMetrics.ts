/**
 * Channel health as Prometheus text (`chorus_channel_*`), one series per channel account, for
 * `GET /metrics` and `GET /api/v1/metrics`.
 */
import type { ChannelHealth } from "../../schemas/ChannelHealth.ts"

const label = (value: string) =>
  value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n")

const STATUS = { up: 0, degraded: 1, down: 2 } as const
const BREAKER = { closed: 0, half_open: 1, open: 2 } as const

export const prometheus = (health: ReadonlyArray<ChannelHealth>): string => {
  const series: Array<
    [name: string, type: string, help: string, value: (h: ChannelHealth) => number]
  > = [
    ["chorus_channel_status", "gauge", "0 up, 1 degraded, 2 down.", (h) => STATUS[h.status]],
    [
      "chorus_channel_breaker_state",
      "gauge",
      "0 closed, 1 half-open, 2 open.",
      (h) => BREAKER[h.breaker.state],
    ],
    [
      "chorus_channel_breaker_trips_total",
      "counter",
      "Times the breaker opened.",
      (h) => h.breaker.trips,
    ],
    [
      "chorus_channel_error_rate",
      "gauge",
      "Share of provider calls that failed, last 5 minutes.",
      (h) => h.errorRate,
    ],
    ["chorus_channel_calls", "gauge", "Provider calls in the last 5 minutes.", (h) => h.calls],
    [
      "chorus_channel_latency_p95_ms",
      "gauge",
      "Provider call latency, 95th percentile.",
      (h) => h.latencyMs.p95 ?? 0,
    ],
    [
      "chorus_channel_queue_depth",
      "gauge",
      "Replies stored and not yet sent.",
      (h) => h.queueDepth,
    ],
    ["chorus_channel_in_flight", "gauge", "Sends under way on this node.", (h) => h.inFlight],
    [
      "chorus_channel_waiting",
      "gauge",
      "Sends waiting in the bulkhead on this node.",
      (h) => h.waiting,
    ],
    [
      "chorus_channel_sent_total",
      "counter",
      "Replies sent since this node started.",
      (h) => h.sent,
    ],
    [
      "chorus_channel_failed_total",
      "counter",
      "Replies failed since this node started.",
      (h) => h.failed,
    ],
  ]
  const lines: Array<string> = []
  for (const [name, type, help, value] of series) {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`)
    for (const h of health) {
      lines.push(`${name}{channel="${label(h.channel)}",account="${label(h.account)}"} ${value(h)}`)
    }
  }
  return lines.join("\n") + "\n"
}
