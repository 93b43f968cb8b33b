/**
 * Fault injection, end to end (issue #3): `chorus start` runs as a child process; concurrent
 * clients POST inbound messages over many conversations, each sender's messages in order (a
 * client waits for the 202 of `c<k>-<n>` before posting `c<k>-<n+1>`, and retries the same
 * message while the server is down). The chorus process is killed with SIGKILL twice mid-stream
 * and restarted on the same data directory (and, on JetStream, the same nats-server, which keeps
 * running). An SSE client reads `message.received` from before the first post and reconnects
 * with `Last-Event-ID` after each kill.
 *
 * Afterwards every message that got a 202 must be stored exactly once, in its conversation in
 * the order it was sent, and must appear exactly once in the event stream, ids strictly growing.
 *
 * Runs on the embedded bus (SQLite) and on JetStream (a private nats-server, plus SQLite).
 * `CHORUS_SOAK=1` runs the full size (20,000 messages over 500 conversations); CI runs
 * 4,000 over 100.
 */
import Sqlite from "better-sqlite3"
import { Effect, Exit, Scope } from "effect"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterEach, assert, describe, it } from "vitest"
import {
  type ChorusProcess,
  killHard as killChild,
  sleep,
  startChorus,
  waitFor,
} from "../support/ChorusProcess.ts"
import * as NatsServer from "../support/NatsServer.ts"

const soak = process.env["CHORUS_SOAK"] === "1"
const MESSAGES = soak ? 20_000 : 4_000
const CONVERSATIONS = soak ? 500 : 100
const PER_CONVERSATION = MESSAGES / CONVERSATIONS
/** Concurrent posting loops; each owns the senders `c<k>` with `k % LOOPS == loop`. */
const LOOPS = 32
/** Kill -9 once this share of the messages got their 202. */
const KILL_AT = [0.3, 0.65]

// -----------------------------------------------------------------------------------------------
// What a test started, stopped after each test whatever happened

const children = new Set<ChorusProcess>()
const dirs: Array<string> = []
let natsScope: Scope.CloseableScope | undefined
const intervals = new Set<ReturnType<typeof setInterval>>()

const killHard = async (chorus: ChorusProcess) => {
  await killChild(chorus)
  children.delete(chorus)
}

afterEach(async () => {
  for (const interval of intervals) clearInterval(interval)
  intervals.clear()
  for (const chorus of [...children]) await killHard(chorus)
  if (natsScope !== undefined) await Effect.runPromise(Scope.close(natsScope, Exit.void))
  natsScope = undefined
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true })
})

const run = async (args: ReadonlyArray<string>, env: Record<string, string>) => {
  const chorus = startChorus(args, { env })
  children.add(chorus)
  const code = await chorus.exited
  children.delete(chorus)
  return { code, stdout: chorus.lines, stderr: chorus.stderr.join("") }
}

// -----------------------------------------------------------------------------------------------
// The live event stream, read as a browser's EventSource would (reconnecting with Last-Event-ID)

interface ReceivedEvent {
  readonly id: number
  readonly externalId: string
  readonly conversationId: string
  readonly seq: number
}

interface EventReader {
  readonly events: Array<ReceivedEvent>
  /** Connections opened (the first one, then one per reconnection). */
  connections: number
  /** Reconnections sent with a Last-Event-ID. */
  resumed: number
  readonly firstConnected: Promise<void>
  readonly stop: () => Promise<void>
}

const readEvents = (current: () => string, token: string): EventReader => {
  let stopped = false
  let controller: AbortController | undefined
  let lastEventId: string | undefined
  let signalConnected!: () => void
  const reader: EventReader = {
    events: [],
    connections: 0,
    resumed: 0,
    firstConnected: new Promise<void>((resolve) => (signalConnected = resolve)),
    stop: async () => {
      stopped = true
      controller?.abort()
      await loop
    },
  }
  const handleBlock = (block: string) => {
    let id: string | undefined
    let event: string | undefined
    const data: Array<string> = []
    for (const line of block.split("\n")) {
      if (line.startsWith(":")) {
        if (line.slice(1).trim() === "connected") signalConnected()
        continue
      }
      const colon = line.indexOf(":")
      const field = colon < 0 ? line : line.slice(0, colon)
      const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "")
      if (field === "id") id = value
      else if (field === "event") event = value
      else if (field === "data") data.push(value)
    }
    if (id !== undefined) lastEventId = id
    if (event === "message.received" && data.length > 0) {
      const message = JSON.parse(data.join("\n")).message
      reader.events.push({
        id: Number(id),
        externalId: message.externalId,
        conversationId: message.conversationId,
        seq: message.seq,
      })
    }
  }
  const loop = (async () => {
    while (!stopped) {
      controller = new AbortController()
      try {
        const headers: Record<string, string> = {
          accept: "text/event-stream",
          authorization: `Bearer ${token}`,
        }
        if (lastEventId !== undefined) headers["last-event-id"] = lastEventId
        const response = await fetch(`${current()}/api/v1/events?types=message.received`, {
          headers,
          signal: controller.signal,
        })
        if (response.ok && response.body !== null) {
          reader.connections++
          if (lastEventId !== undefined) reader.resumed++
          const decoder = new TextDecoder()
          let buffer = ""
          const body = response.body.getReader()
          for (;;) {
            const { done, value } = await body.read()
            if (done) break
            buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, "\n")
            let end: number
            while ((end = buffer.indexOf("\n\n")) >= 0) {
              handleBlock(buffer.slice(0, end))
              buffer = buffer.slice(end + 2)
            }
          }
        } else {
          await response.text()
        }
      } catch {
        // The server went away (killed) or we stopped: reconnect below unless stopped.
      }
      if (!stopped) await sleep(100)
    }
  })()
  return reader
}

// -----------------------------------------------------------------------------------------------
// The scenario

interface Figures {
  backend: string
  size: string
  posted: number
  accepted: number
  acceptedAsDuplicate: number
  retries: number
  kills: Array<{ afterAccepted: number; downMs: number }>
  stored: number
  sseEvents: number
  sseConnections: number
  sseResumed: number
  postSeconds: number
  totalSeconds: number
}

const scenario = async (backend: "embedded" | "jetstream", extraEnv: Record<string, string>) => {
  const started = Date.now()
  const dataDir = mkdtempSync(join(tmpdir(), "chorus-pipeline-kill-"))
  dirs.push(dataDir)
  const env = {
    CHORUS_DATA_DIR: dataDir,
    CHORUS_HTTP_PORT: "0",
    CHORUS_LOG_LEVEL: "info",
    ...extraEnv,
  }

  const created = await run(["token", "create", "--name", "fault"], env)
  assert.strictEqual(created.code, 0, created.stderr)
  const token = created.stdout[0]!
  assert.match(token, /^chorus_/)

  let server = startChorus(["start"], { env })
  children.add(server)
  let url = await server.ready

  const events = readEvents(() => url, token)
  // Nothing is posted before the stream is open: without Last-Event-ID it starts "now". The
  // first request is answered at once: a server that listened before its handlers were built
  // left it (and the first requests after each restart) without an answer (issue #3).
  const opened = await Promise.race([
    events.firstConnected.then(() => true),
    sleep(10_000).then(() => false),
  ])
  assert.isTrue(opened, `GET /api/v1/events on ${url} was not answered within 10 s`)

  // Which messages got their 202, and how.
  const accepted = new Map<string, { readonly duplicate: boolean }>()
  let posted = 0
  let retries = 0
  let lastFailure = ""
  const refused: Array<string> = []

  const postUntilAccepted = async (k: number, n: number) => {
    const externalId = `c${k}-${n}`
    const body = JSON.stringify({
      account: "fault",
      sender: { id: `c${k}`, name: `Customer ${k}` },
      externalId,
      text: `message ${n} of c${k}`,
    })
    posted++
    for (;;) {
      try {
        const response = await fetch(`${url}/api/v1/inbound`, {
          method: "POST",
          headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
          body,
          signal: AbortSignal.timeout(15_000),
        })
        const text = await response.text()
        if (response.status === 202) {
          accepted.set(externalId, { duplicate: JSON.parse(text).duplicate === true })
          return true
        }
        lastFailure = `${response.status} ${text.slice(0, 200)}`
        if (response.status < 500) {
          refused.push(`${externalId}: ${response.status} ${text}`)
          return false
        }
      } catch (e) {
        lastFailure = String(e)
        // connection refused or reset: the server is down
      }
      retries++
      await sleep(50)
    }
  }

  const postLoop = async (loop: number) => {
    const senders: Array<number> = []
    for (let k = loop; k < CONVERSATIONS; k += LOOPS) senders.push(k)
    // Interleave this loop's senders, each one strictly in order.
    for (let n = 0; n < PER_CONVERSATION; n++) {
      for (const k of senders) if (!(await postUntilAccepted(k, n))) return
    }
  }

  const kills: Array<{ afterAccepted: number; downMs: number }> = []
  // Shown only if the test fails (a hang included): where it stood, every 5 seconds.
  const progress = setInterval(() =>
    console.error(
      "progress",
      JSON.stringify({
        backend,
        accepted: accepted.size,
        retries,
        sseEvents: events.events.length,
        sseConnections: events.connections,
        url,
        lastFailure,
        kills,
      }),
    ), 5_000)
  intervals.add(progress)
  let posting = true
  const killer = (async () => {
    for (const share of KILL_AT) {
      await waitFor(() => !posting || accepted.size >= Math.floor(MESSAGES * share), 600_000, 2)
      if (!posting) return
      const afterAccepted = accepted.size
      const down = Date.now()
      await killHard(server)
      await sleep(200)
      server = startChorus(["start"], { env })
      children.add(server)
      url = await server.ready
      kills.push({ afterAccepted, downMs: Date.now() - down })
    }
  })()

  await Promise.all(Array.from({ length: LOOPS }, (_, loop) => postLoop(loop)))
  posting = false
  await killer
  clearInterval(progress)
  const postSeconds = (Date.now() - started) / 1000

  // Every accepted message reaches the event stream (with a timeout), then late repeats.
  await waitFor(() => events.events.length >= accepted.size, 90_000, 50)
  await sleep(1_000)
  await events.stop()

  // What is stored: the SQLite file, read-only (WAL: the running server is not disturbed).
  const db = new Sqlite(join(dataDir, "chorus.sqlite"), { readonly: true, fileMustExist: true })
  const rows = db
    .prepare(
      "SELECT external_id AS externalId, conversation_id AS conversationId, seq FROM messages " +
        "WHERE direction = 'in' AND channel = 'api' AND account = 'fault' " +
        "ORDER BY conversation_id, seq",
    )
    .all() as Array<{ externalId: string; conversationId: string; seq: number }>
  db.close()
  const totalSeconds = (Date.now() - started) / 1000

  const figures: Figures = {
    backend,
    size: `${MESSAGES} messages over ${CONVERSATIONS} conversations (${soak ? "soak" : "CI"})`,
    posted,
    accepted: accepted.size,
    acceptedAsDuplicate: [...accepted.values()].filter((a) => a.duplicate).length,
    retries,
    kills,
    stored: rows.length,
    sseEvents: events.events.length,
    sseConnections: events.connections,
    sseResumed: events.resumed,
    postSeconds,
    totalSeconds,
  }
  console.log(JSON.stringify(figures))

  // ---- the client side went as planned
  assert.deepStrictEqual(refused, [], "no message may be refused")
  assert.strictEqual(accepted.size, MESSAGES, "every message got a 202 in the end")
  assert.strictEqual(kills.length, KILL_AT.length, "chorus was killed mid-stream")

  // ---- stored exactly once, in per-conversation order
  const storedCount = new Map<string, number>()
  for (const row of rows) {
    storedCount.set(row.externalId, (storedCount.get(row.externalId) ?? 0) + 1)
  }
  const lost = [...accepted.keys()].filter((id) => !storedCount.has(id))
  const twice = [...storedCount].filter(([, count]) => count > 1).map(([id, count]) =>
    `${id} ×${count}`
  )
  const unknown = [...storedCount.keys()].filter((id) => !accepted.has(id))
  assert.deepStrictEqual(lost.slice(0, 20), [], `${lost.length} accepted messages not stored`)
  assert.deepStrictEqual(twice.slice(0, 20), [], `${twice.length} messages stored twice`)
  assert.deepStrictEqual(unknown.slice(0, 20), [], "stored messages nobody got a 202 for")

  const byConversation = new Map<string, Array<{ externalId: string; seq: number }>>()
  for (const row of rows) {
    const list = byConversation.get(row.conversationId) ?? []
    list.push(row)
    byConversation.set(row.conversationId, list)
  }
  assert.strictEqual(byConversation.size, CONVERSATIONS, "one conversation per sender")
  const disorder: Array<string> = []
  for (const [conversationId, list] of byConversation) {
    const sender = list[0]!.externalId.split("-")[0]
    list.forEach((m, i) => {
      const [s, n] = m.externalId.split("-")
      if (s !== sender || Number(n) !== i || m.seq !== i + 1) {
        disorder.push(
          `${conversationId}: seq ${m.seq} holds ${m.externalId}, expected ${sender}-${i}`,
        )
      }
    })
  }
  assert.deepStrictEqual(disorder.slice(0, 20), [], `${disorder.length} messages out of order`)

  // ---- the event stream: each accepted message exactly once, ids strictly growing
  const seen = new Map<string, number>()
  for (const e of events.events) seen.set(e.externalId, (seen.get(e.externalId) ?? 0) + 1)
  const missing = [...accepted.keys()].filter((id) => !seen.has(id))
  const repeated = [...seen].filter(([, count]) => count > 1).map(([id, count]) =>
    `${id} ×${count}`
  )
  assert.deepStrictEqual(
    missing.slice(0, 20),
    [],
    `${missing.length} accepted messages never sent as events`,
  )
  assert.deepStrictEqual(repeated.slice(0, 20), [], `${repeated.length} events sent twice`)
  const backwards: Array<string> = []
  for (let i = 1; i < events.events.length; i++) {
    const [before, after] = [events.events[i - 1]!, events.events[i]!]
    if (!(after.id > before.id)) backwards.push(`${before.id} then ${after.id}`)
  }
  assert.deepStrictEqual(backwards.slice(0, 20), [], "event ids must strictly grow")
  assert.strictEqual(events.events.length, MESSAGES)
  assert.isAtLeast(events.resumed, KILL_AT.length, "the reader resumed with Last-Event-ID")

  await killHard(server)
}

const timeout = soak ? 900_000 : 240_000

describe("the inbound pipeline under kill -9 of chorus", () => {
  it(
    `embedded bus: every 202 stored once, in order, and sent once as an event, across ${KILL_AT.length} kills`,
    () => scenario("embedded", {}),
    timeout,
  )

  it(
    `JetStream: every 202 stored once, in order, and sent once as an event, across ${KILL_AT.length} kills`,
    async () => {
      natsScope = await Effect.runPromise(Scope.make())
      const nats = await Effect.runPromise(Scope.extend(NatsServer.start(), natsScope))
      await scenario("jetstream", { CHORUS_NATS_URL: nats.url })
    },
    timeout,
  )
})
