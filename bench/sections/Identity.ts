/**
 * Contacts at scale: import a CRM export of 100,000 contacts (5% planted duplicates) through
 * `POST /api/v1/contacts/import` in exports of 10,000, then search them over HTTP (by phone,
 * e-mail, external id and name prefix, in turn; keep-alive, client in the same process) and
 * report the import time and the search p99. SQLite, embedded bus.
 *
 * `CHORUS_BENCH_IDENTITY_CONTACTS` sets a smaller count for a quick check.
 */
import { Agent, request } from "node:http"
import { Effect } from "effect"
import type { BenchSection, Measurement } from "../Benchmark.ts"
import { ms, percentile, startServer, verdict } from "../Server.ts"

const CONTACTS = Number(process.env["CHORUS_BENCH_IDENTITY_CONTACTS"] ?? 100_000)
const PER_IMPORT = 10_000
const SEARCHES = 2_000
const TARGET_MS = 50

const pad = (n: number) => String(n).padStart(7, "0")

/** Contact `i` of the export; every 20th duplicates an earlier one (same e-mail, other case). */
const record = (i: number) =>
  i % 20 === 19
    ? {
      externalId: `dup-${i}`,
      name: `Dup${i} Person${i}`,
      phones: [`+7917${pad(i)}`],
      emails: [`USER${i - 7}@COMPANY${i - 7}.EXAMPLE`],
    }
    : {
      externalId: `crm-${i}`,
      name: `Person${i} Surname${i}`,
      phones: [`+7916${pad(i)}`],
      emails: [`user${i}@company${i}.example`],
      custom: { segment: i % 3 === 0 ? "b2b" : "b2c" },
    }

const call = (
  agent: Agent,
  url: string,
  token: string,
  body?: string,
): Promise<{ status: number; text: string }> =>
  new Promise((resolve, reject) => {
    const req = request(url, {
      agent,
      method: body === undefined ? "GET" : "POST",
      headers: {
        authorization: `Bearer ${token}`,
        ...(body !== undefined ? { "content-type": "application/json" } : {}),
      },
    }, (res) => {
      const chunks: Array<Buffer> = []
      res.on("data", (c: Buffer) => chunks.push(c))
      res.on("end", () =>
        resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString() }))
    })
    req.on("error", reject)
    req.end(body)
  })

export const identity: BenchSection = {
  name: "identity",
  title: `Contacts: import ${CONTACTS.toLocaleString("en-US")} (5% duplicates), search p99`,
  run: (ctx) =>
    Effect.gen(function* () {
      const server = yield* startServer(ctx, "embedded", "id")
      const agent = new Agent({ keepAlive: true, maxSockets: 1 })
      const base = `${server.url}/api/v1/contacts`
      const imported = yield* Effect.promise(async () => {
        const started = performance.now()
        let suggestions = 0
        for (let from = 0; from < CONTACTS; from += PER_IMPORT) {
          const contacts = Array.from(
            { length: Math.min(PER_IMPORT, CONTACTS - from) },
            (_, k) => record(from + k),
          )
          const answer = await call(
            agent,
            `${base}/import`,
            server.token,
            JSON.stringify({ format: "json", contacts }),
          )
          if (answer.status !== 200) throw new Error(`import: HTTP ${answer.status} ${answer.text}`)
          suggestions += (JSON.parse(answer.text) as { suggestions: number }).suggestions
        }
        return { seconds: (performance.now() - started) / 1_000, suggestions }
      })
      const expected = Math.floor(CONTACTS / 20)
      if (imported.suggestions !== expected) {
        return yield* Effect.fail(
          new Error(`expected ${expected} suggestions, got ${imported.suggestions}`),
        )
      }
      const query = (n: number) => {
        const i = (n * 7919) % CONTACTS
        const j = i % 20 === 19 ? i - 1 : i
        switch (n % 4) {
          case 0:
            return `phone=${encodeURIComponent(`+7 916 ${pad(j)}`)}`
          case 1:
            return `email=user${j}%40company${j}.example`
          case 2:
            return `externalId=crm-${j}`
          default:
            return `name=person${j}%20s`
        }
      }
      const samples = yield* Effect.promise(async () => {
        for (let n = 0; n < 100; n++) await call(agent, `${base}?${query(n)}`, server.token)
        const out: Array<number> = []
        const started = performance.now()
        for (let n = 0; n < SEARCHES; n++) {
          const t0 = performance.now()
          const answer = await call(agent, `${base}?${query(n)}`, server.token)
          out.push(performance.now() - t0)
          if (answer.status !== 200 || !answer.text.includes('"id"')) {
            throw new Error(`search ${query(n)}: HTTP ${answer.status} ${answer.text}`)
          }
        }
        agent.destroy()
        return { sorted: out.sort((a, b) => a - b), seconds: (performance.now() - started) / 1e3 }
      })
      const p50 = percentile(samples.sorted, 50)
      const p99 = percentile(samples.sorted, 99)
      const ok = p99 <= TARGET_MS
      yield* Effect.sync(() =>
        process.stdout.write(
          `\nidentity (${CONTACTS.toLocaleString("en-US")} contacts):\n` +
            `  import: ${imported.seconds.toFixed(1)} s ` +
            `(${Math.round(CONTACTS / imported.seconds)} contacts/s), ` +
            `${imported.suggestions} suggestions for ${expected} planted duplicates\n` +
            `  search over HTTP: p50 ${ms(p50)}, p99 ${ms(p99)}; target p99 ≤ ${TARGET_MS} ms: ` +
            `${verdict(ok)}\n`,
        )
      )
      const out: Array<Measurement> = [
        {
          name: "identity.import",
          label: `POST /contacts/import, ${CONTACTS.toLocaleString("en-US")} contacts in ` +
            `${imported.seconds.toFixed(1)} s`,
          ops: CONTACTS,
          seconds: imported.seconds,
        },
        {
          name: "identity.search",
          label: `GET /contacts?phone|email|externalId|name: p50 ${ms(p50)}, p99 ${ms(p99)} ` +
            `(≤ ${TARGET_MS} ms ${verdict(ok)})`,
          ops: SEARCHES,
          seconds: samples.seconds,
        },
      ]
      return out
    }),
}
