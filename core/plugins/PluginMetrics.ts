/**
 * Metrics plugins record through `chorus.metrics` (counters, gauges, histograms with labels),
 * kept by the host per plugin, named `chorus_plugin_<id>_<name>`, shown in the plugin's status
 * and rendered in Prometheus' text format at `GET /metrics`.
 */

export type MetricKind = "counter" | "gauge" | "histogram"

/** Histogram bucket bounds (upper, inclusive): 1 ms … 60 s when observing seconds. */
export const BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]

interface Series {
  labels: Record<string, string>
  value: number
  /** Histograms: counts per bucket (cumulative when rendered), sum, count. */
  buckets?: Array<number>
  sum?: number
  count?: number
}

interface Metric {
  readonly kind: MetricKind
  readonly help: string
  readonly series: Map<string, Series>
}

const NAME = /^[a-z_][a-z0-9_]{0,63}$/
const LABEL = /^[a-z_][a-z0-9_]{0,63}$/
/** Series per metric at most: a label with unbounded values must not eat the host's memory. */
export const MAX_SERIES = 1000

export class PluginMetrics {
  private readonly metrics = new Map<string, Metric>()
  /** Why the last observation was refused (bad name, kind clash, too many series). */
  refused: string | undefined

  constructor(readonly plugin: string) {}

  record(
    kind: MetricKind,
    name: string,
    help: string,
    value: number,
    labels: Record<string, string>,
  ) {
    if (!NAME.test(name)) {
      return this.refuse(`metric name ${JSON.stringify(name)}: use [a-z_][a-z0-9_]*`)
    }
    if (typeof value !== "number" || !Number.isFinite(value)) {
      return this.refuse(`metric ${name}: value ${String(value)} is not a finite number`)
    }
    if (kind === "counter" && value < 0) return this.refuse(`counter ${name} cannot go down`)
    const clean: Record<string, string> = {}
    for (const [k, v] of Object.entries(labels ?? {})) {
      if (!LABEL.test(k)) return this.refuse(`metric ${name}: label ${JSON.stringify(k)}`)
      clean[k] = String(v)
    }
    let metric = this.metrics.get(name)
    if (metric === undefined) {
      metric = { kind, help, series: new Map() }
      this.metrics.set(name, metric)
    } else if (metric.kind !== kind) {
      return this.refuse(`metric ${name} is a ${metric.kind}, not a ${kind}`)
    }
    const key = JSON.stringify(Object.entries(clean).sort())
    let series = metric.series.get(key)
    if (series === undefined) {
      if (metric.series.size >= MAX_SERIES) {
        return this.refuse(`metric ${name} has ${MAX_SERIES} label sets already`)
      }
      series = kind === "histogram"
        ? { labels: clean, value: 0, buckets: BUCKETS.map(() => 0), sum: 0, count: 0 }
        : { labels: clean, value: 0 }
      metric.series.set(key, series)
    }
    if (kind === "counter") series.value += value
    else if (kind === "gauge") series.value = value
    else {
      const at = BUCKETS.findIndex((b) => value <= b)
      if (at >= 0) series.buckets![at]! += 1
      series.sum! += value
      series.count! += 1
    }
  }

  private refuse(reason: string) {
    this.refused = reason
  }

  /** For the status API: name → kind and series (histograms as count and sum). */
  snapshot(): Record<
    string,
    { kind: MetricKind; series: Array<{ labels: Record<string, string>; value: number }> }
  > {
    const out: Record<
      string,
      { kind: MetricKind; series: Array<{ labels: Record<string, string>; value: number }> }
    > = {}
    for (const [name, m] of this.metrics) {
      out[name] = {
        kind: m.kind,
        series: [...m.series.values()].map((s) => ({
          labels: s.labels,
          value: m.kind === "histogram" ? s.count! : s.value,
          ...(m.kind === "histogram" ? { sum: s.sum! } : {}),
        })),
      }
    }
    return out
  }

  /** Prometheus text exposition of this plugin's metrics. */
  prometheus(): string {
    const lines: Array<string> = []
    const fmt = (labels: Record<string, string>, extra?: [string, string]) => {
      const all = Object.entries(labels)
      if (extra) all.push(extra)
      return all.length === 0
        ? ""
        : `{${
          all.map(([k, v]) =>
            `${k}="${v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"')}"`
          ).join(",")
        }}`
    }
    for (const [name, m] of this.metrics) {
      const full = `chorus_plugin_${this.plugin}_${name}`
      if (m.help !== "") lines.push(`# HELP ${full} ${m.help.replace(/\n/g, " ")}`)
      lines.push(`# TYPE ${full} ${m.kind}`)
      for (const s of m.series.values()) {
        if (m.kind !== "histogram") {
          lines.push(`${full}${fmt(s.labels)} ${s.value}`)
          continue
        }
        let cumulative = 0
        BUCKETS.forEach((bound, i) => {
          cumulative += s.buckets![i]!
          lines.push(`${full}_bucket${fmt(s.labels, ["le", String(bound)])} ${cumulative}`)
        })
        lines.push(`${full}_bucket${fmt(s.labels, ["le", "+Inf"])} ${s.count}`)
        lines.push(`${full}_sum${fmt(s.labels)} ${s.sum}`)
        lines.push(`${full}_count${fmt(s.labels)} ${s.count}`)
      }
    }
    return lines.length === 0 ? "" : lines.join("\n") + "\n"
  }
}
