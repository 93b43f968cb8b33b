/**
 * The bench's output: one table for people, then one JSON line for machines (always the last
 * line of the run, so `npm run bench | tail -1` is the result).
 */
import { type Measurement, rate } from "./Benchmark.ts"

export interface SectionResult {
  readonly section: string
  readonly title: string
  readonly measurements: ReadonlyArray<Measurement>
  /** Why the section could not finish; its measurements so far are still reported. */
  readonly error?: string
}

export interface Ratio {
  readonly limit: string
  readonly ratio: number
}

export interface ResultRow {
  readonly section: string
  readonly name: string
  readonly label: string
  readonly ops: number
  readonly seconds: number
  readonly rate: number
  readonly ratios: ReadonlyArray<Ratio>
}

export const rows = (results: ReadonlyArray<SectionResult>): Array<ResultRow> => {
  const byName = new Map<string, Measurement>()
  for (const r of results) for (const m of r.measurements) byName.set(m.name, m)
  return results.flatMap((r) =>
    r.measurements.map((m) => ({
      section: r.section,
      name: m.name,
      label: m.label,
      ops: m.ops,
      seconds: m.seconds,
      rate: rate(m),
      ratios: (m.limits ?? []).flatMap((limit) => {
        const raw = byName.get(limit)
        return raw && rate(raw) > 0 ? [{ limit, ratio: rate(m) / rate(raw) }] : []
      }),
    }))
  )
}

const grouped = (n: number): string => Math.round(n).toLocaleString("en-US")

const pad = (s: string, width: number, right = false) => right ? s.padStart(width) : s.padEnd(width)

export const table = (results: ReadonlyArray<SectionResult>): string => {
  const all = rows(results)
  const header = ["benchmark", "what", "ops", "seconds", "rate/s", "vs raw limit"]
  const cells = all.map((r) => [
    r.name,
    r.label,
    grouped(r.ops),
    r.seconds.toFixed(2),
    grouped(r.rate),
    r.ratios.map((x) => `${x.ratio.toFixed(2)}× ${x.limit}`).join(", "),
  ])
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)))
  const numeric = new Set([2, 3, 4])
  const line = (c: ReadonlyArray<string>) =>
    c.map((s, i) => pad(s, widths[i]!, numeric.has(i))).join("  ").trimEnd()
  const out = [line(header), widths.map((w) => "-".repeat(w)).join("  ")]
  for (const result of results) {
    const mine = cells.filter((_, i) => all[i]!.section === result.section)
    out.push(`# ${result.title}${result.error ? `: FAILED (${result.error})` : ""}`)
    for (const c of mine) out.push(line(c))
  }
  return out.join("\n")
}

export const jsonLine = (
  results: ReadonlyArray<SectionResult>,
  environment: Readonly<Record<string, unknown>>,
): string =>
  JSON.stringify({
    bench: "chorus",
    version: 1,
    ...environment,
    results: rows(results).map((r) => ({
      section: r.section,
      name: r.name,
      ops: r.ops,
      seconds: Number(r.seconds.toFixed(3)),
      rate: Math.round(r.rate),
      ratios: Object.fromEntries(r.ratios.map((x) => [x.limit, Number(x.ratio.toFixed(3))])),
    })),
    errors: Object.fromEntries(
      results.filter((r) => r.error !== undefined).map((r) => [r.section, r.error]),
    ),
  })
