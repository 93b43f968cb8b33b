/**
 * The load generator of the `ingest` section, run in a child process so the server under test
 * has its process (and event loop) to itself: open-loop `POST /api/v1/inbound` on a fixed
 * schedule over a pool of keep-alive connections, from 1,000 senders, and one SSE connection
 * reading `message.received`. Latency is per message, from the start of its POST to its event
 * arriving (both clocks are this process's).
 *
 * Usage (by bench/sections/Ingest.ts): `IngestLoad.ts '<json: url, token, tag, rates>'`; prints
 * the steps as one JSON line on stdout.
 */
import { Agent, request } from "node:http"
import { pathToFileURL } from "node:url"
import { percentile } from "./Server.ts"

const SENDERS = 1_000
const STEP_SECONDS = 3
export const SUSTAINED_P99_MS = 250
export const DRAIN_MS = 1_000
const TEXT = "x".repeat(200)

export interface Step {
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

export interface LoadPlan {
  readonly url: string
  readonly token: string
  readonly tag: string
  readonly rates: {
    readonly fixed: number
    readonly fixedSeconds: number
    readonly steps: ReadonlyArray<number>
  }
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

export const measureIngest = async (url: string, token: string, tag: string, rates: {
  readonly fixed: number
  readonly fixedSeconds: number
  readonly steps: ReadonlyArray<number>
}): Promise<Array<Step>> => {
  // Idle keep-alive sockets are closed here after 4 s, before the server's 5 s keep-alive
  // timeout closes them: a request sent on a socket the server is closing at that moment fails
  // (ECONNRESET), which counted as refused in a few runs when a burst reached for idle sockets.
  const agent = new Agent({ keepAlive: true, maxSockets: 128, timeout: 4_000 })
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
    // Warm up: first contacts and conversations (each of the 1,000 senders writes once), then
    // the measured traffic itself for 2 s (every sender writes again: the code of a message to
    // an open conversation compiled, caches and the heap settled), so the fixed step measures
    // steady state rather than the tail of the first contacts.
    await runStep(500, 2)
    await runStep(rates.fixed, 2)
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

// Run as a program only (importing this module for its types or constants runs nothing).
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const plan = JSON.parse(process.argv[2] ?? "{}") as LoadPlan
  measureIngest(plan.url, plan.token, plan.tag, plan.rates).then(
    (steps) => {
      process.stdout.write(`${JSON.stringify(steps)}\n`)
      process.exit(0)
    },
    (error) => {
      process.stderr.write(`${error instanceof Error ? error.stack : String(error)}\n`)
      process.exit(1)
    },
  )
}
