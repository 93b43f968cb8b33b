/**
 * End to end ingest through a real server in this process: `POST /api/v1/inbound` (202 once on
 * the bus) → inbound consumer → conversation actor → stored → `message.received` on
 * `GET /api/v1/events`. Latency is per message, from the start of its POST to its event arriving
 * on an SSE connection (matched by `externalId`). The load is open-loop: sends are started on a
 * fixed schedule over a pool of keep-alive connections, whether earlier ones have answered or not,
 * from 1,000 senders (so 1,000 conversations).
 *
 * First a fixed 1,000 msg/s for 10 s (the issue's latency target), then rising rates for 3 s each;
 * the highest sustained rate is the last step whose events all arrived within 1 s of the last send
 * and whose p99 stayed ≤ 250 ms. Server, load generator and SSE client share this process (and the
 * machine's 2 cores with nats-server): the figures are a floor, not what a separate client would see.
 */
import { Agent, request } from "node:http"
import { Effect } from "effect"
import type { BenchContext, BenchSection, Measurement } from "../Benchmark.ts"
import { ms, percentile, startServer, verdict } from "../Server.ts"

const SENDERS = 1_000
const FIXED_RATE = 1_000
const FIXED_SECONDS = 10
const STEP_SECONDS = 3
const STEPS = [2_000, 3_000, 4_000, 6_000, 8_000]
const SUSTAINED_P99_MS = 250
const DRAIN_MS = 1_000
const TEXT = "x".repeat(200)

interface Step {
  readonly offered: number
  readonly sent: number
  readonly accepted: number
  readonly failed: number
  readonly delivered: number
  readonly seconds: number
  readonly p50: number
  readonly p99: number
  readonly accept99: number
  /** Every event arrived within DRAIN_MS of the last send, p99 within bounds. */
  readonly sustained: boolean
}

/** An SSE reader of `message.received`, calling `onEvent(externalId)` per event. */
const openEvents = (url: string, token: string, agent: Agent, onEvent: (id: string) => void) =>
  new Promise<() => void>((resolve, reject) => {
    const req = request(
      `${url}/api/v1/events?types=message.received`,
      { headers: { authorization: `Bearer ${token}`, accept: "text/event-stream" }, agent },
      (res) => {
        if (res.statusCode !== 200) return reject(new Error(`events: HTTP ${res.statusCode}`))
        res.setEncoding("utf8")
        let buffer = ""
        let connected = false
        res.on("data", (chunk: string) => {
          buffer += chunk
          let end: number
          while ((end = buffer.indexOf("\n")) >= 0) {
            const line = buffer.slice(0, end)
            buffer = buffer.slice(end + 1)
            if (!connected && line.startsWith(":")) {
              connected = true
              resolve(() => req.destroy())
            } else if (line.startsWith("data: ")) {
              const event = JSON.parse(line.slice(6)) as { message?: { externalId?: string } }
              const id = event.message?.externalId
              if (id) onEvent(id)
            }
          }
        })
        res.on("error", () => undefined)
      },
    )
    req.on("error", reject)
    req.end()
  })

const post = (url: string, token: string, agent: Agent, body: string) =>
  new Promise<number>((resolve) => {
    const req = request(`${url}/api/v1/inbound`, {
      method: "POST",
      agent,
      headers: {
        authorization: `Bearer ${token}`,
        "content-type": "application/json",
        "content-length": Buffer.byteLength(body),
      },
    }, (res) => {
      res.resume()
      res.on("end", () => resolve(res.statusCode ?? 0))
    })
    req.on("error", () => resolve(0))
    req.end(body)
  })

const measureIngest = async (url: string, token: string, tag: string, rates: {
  readonly fixed: number
  readonly fixedSeconds: number
  readonly steps: ReadonlyArray<number>
}): Promise<Array<Step>> => {
  const agent = new Agent({ keepAlive: true, maxSockets: 128 })
  const started = new Map<string, number>()
  let latencies: Array<number> = []
  let delivered = 0
  const close = await openEvents(url, token, new Agent({ keepAlive: false }), (id) => {
    const t = started.get(id)
    if (t === undefined) return
    started.delete(id)
    latencies.push(performance.now() - t)
    delivered++
  })
  let n = 0
  const runStep = async (offered: number, seconds: number): Promise<Step> => {
    latencies = []
    delivered = 0
    const accepts: Array<number> = []
    let sent = 0
    let accepted = 0
    let failed = 0
    const total = offered * seconds
    const begin = performance.now()
    const inflight: Array<Promise<void>> = []
    await new Promise<void>((done) => {
      const tick = () => {
        const due = Math.min(total, Math.floor(((performance.now() - begin) / 1_000) * offered))
        while (sent < due) {
          const i = n++
          sent++
          const externalId = `${tag}-${i}`
          const body = JSON.stringify({
            account: "bench",
            sender: { id: `sender-${i % SENDERS}`, name: "Bench" },
            externalId,
            text: TEXT,
          })
          const t0 = performance.now()
          started.set(externalId, t0)
          inflight.push(
            post(url, token, agent, body).then((status) => {
              if (status === 202) {
                accepted++
                accepts.push(performance.now() - t0)
              } else failed++
            }),
          )
        }
        if (sent >= total) done()
        else setTimeout(tick, 2)
      }
      tick()
    })
    const lastSend = performance.now()
    await Promise.all(inflight)
    while (delivered < accepted && performance.now() - lastSend < 5_000) {
      await new Promise((r) => setTimeout(r, 5))
    }
    const drainedBy = performance.now() - lastSend
    const seconds_ = (performance.now() - begin) / 1_000
    const sorted = latencies.sort((a, b) => a - b)
    const p99 = percentile(sorted, 99)
    started.clear()
    return {
      offered,
      sent,
      accepted,
      failed,
      delivered,
      seconds: seconds_,
      p50: percentile(sorted, 50),
      p99,
      accept99: percentile(accepts.sort((a, b) => a - b), 99),
      sustained: failed === 0 && delivered >= sent && drainedBy <= DRAIN_MS &&
        p99 <= SUSTAINED_P99_MS,
    }
  }
  const steps: Array<Step> = []
  try {
    // Warm up: first contacts and conversations, compiled code, connections.
    await runStep(500, 2)
    steps.push(await runStep(rates.fixed, rates.fixedSeconds))
    // Up from the fixed rate while it holds; down from it if it does not.
    const ladder = steps[0]!.sustained ? rates.steps : rates.steps.length > 0 ? [500, 250] : []
    for (const offered of ladder) {
      const step = await runStep(offered, STEP_SECONDS)
      steps.push(step)
      if (step.sustained !== steps[0]!.sustained) break
    }
  } finally {
    close()
    agent.destroy()
  }
  return steps
}

const describeStep = (s: Step) =>
  `${s.offered.toLocaleString("en-US")}/s offered: ${s.delivered}/${s.sent} delivered` +
  `${s.failed > 0 ? `, ${s.failed} refused` : ""}, p50 ${ms(s.p50)}, p99 ${ms(s.p99)} ` +
  `(202 p99 ${ms(s.accept99)})${s.sustained ? "" : " — not sustained"}`

const run = (ctx: BenchContext, bus: "jetstream" | "embedded") =>
  Effect.gen(function* () {
    const server = yield* startServer(ctx, bus, bus === "jetstream" ? "ij" : "ie")
    const steps = yield* Effect.tryPromise(() =>
      measureIngest(server.url, server.token, bus, {
        fixed: FIXED_RATE,
        fixedSeconds: bus === "jetstream" ? FIXED_SECONDS : 3,
        steps: bus === "jetstream" ? STEPS : [],
      })
    )
    const fixed = steps[0]!
    const best = steps.filter((s) => s.sustained).reduce<Step | undefined>(
      (a, s) => (a === undefined || s.offered > a.offered ? s : a),
      undefined,
    )
    const lines = [
      `ingest (${bus}), server + load + SSE client in one process on the same cores:`,
      ...steps.map((s) => `  ${describeStep(s)}`),
      `  target p99 ≤ 50 ms at 1,000 msg/s: ${ms(fixed.p99)}, ${
        verdict(fixed.p99 <= 50 && fixed.sustained)
      }`,
      ...(bus === "jetstream"
        ? [
          `  highest sustained rate (events within ${DRAIN_MS} ms of the last send, p99 ≤ ` +
          `${SUSTAINED_P99_MS} ms): ${
            best ? `${best.offered.toLocaleString("en-US")} msg/s` : "none"
          }` +
          `; target ≥ 2,000 msg/s: ${verdict((best?.offered ?? 0) >= 2_000)}`,
        ]
        : []),
    ]
    yield* Effect.sync(() => process.stdout.write(`\n${lines.join("\n")}\n`))
    const limits = bus === "jetstream"
      ? ["jetstream.raw.publish"]
      : ["sqlite.raw.insert.row-per-tx"]
    const out: Array<Measurement> = [{
      name: `ingest.${bus}.fixed`,
      label: `HTTP→stored→SSE at ${FIXED_RATE.toLocaleString("en-US")}/s offered: p50 ` +
        `${ms(fixed.p50)}, p99 ${ms(fixed.p99)} (≤ 50 ms ${verdict(fixed.p99 <= 50)})`,
      ops: fixed.delivered,
      seconds: fixed.seconds,
      limits,
    }]
    if (bus === "jetstream") {
      out.push({
        name: `ingest.${bus}.sustained`,
        label: best
          ? `highest sustained step, p99 ${ms(best.p99)} (≥ 2,000/s ${
            verdict(best.offered >= 2_000)
          })`
          : "no step sustained (≥ 2,000/s NOT met)",
        ops: best?.delivered ?? 0,
        seconds: best?.seconds ?? 1,
        limits,
      })
    }
    return out
  })

export const ingest: BenchSection = {
  name: "ingest",
  title: "Ingest end to end: HTTP 202 → stored → SSE event (SQLite store)",
  run: (ctx) =>
    Effect.gen(function* () {
      const js = yield* Effect.scoped(run(ctx, "jetstream"))
      const embedded = yield* Effect.scoped(run(ctx, "embedded"))
      return [...js, ...embedded]
    }),
}
