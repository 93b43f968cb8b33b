/**
 * The web inbox in Chromium against a real server (SQLite, embedded bus), its data seeded
 * through the public API (`POST /api/v1/inbound`, as a channel would):
 *
 * - list: 5,000 open conversations; from a click on the "All" tab to every page loaded and the
 *   count shown, and how long the page took to show the last page once it had arrived; scrolling
 *   the whole list (frame times).
 * - history: a conversation of 10,000 messages; from the click on its row to the newest message
 *   visible; then scrolling up through older pages (frame times, messages loaded).
 *
 * Each figure comes with its raw limit measured in the same page and run: the same HTTP requests
 * made with fetch() and nothing rendered.
 *
 *   node --import tsx bench/inbox-browser.ts            # 5,000 conversations, 10,000 messages
 *   CONVERSATIONS=500 MESSAGES=1000 node --import tsx bench/inbox-browser.ts
 */
import * as NodeFs from "node:fs"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import { Effect } from "effect"
import { chromium, type Page } from "playwright-core"
import { buildInbox } from "../scripts/build-inbox.mjs"
import { request } from "../tests/api/ApiServer.ts"
import { startReplyServer } from "../tests/api/ReplyServer.ts"
import { addOperator, PASSWORD, signIn } from "../tests/inbox/InboxClient.ts"
import { installRepoPlugins } from "../tests/support/PluginFixtures.ts"

const CONVERSATIONS = Number(process.env["CONVERSATIONS"] ?? 5000)
const MESSAGES = Number(process.env["MESSAGES"] ?? 10000)
const IN_FLIGHT = 16

const temp = (prefix: string) =>
  Effect.acquireRelease(
    Effect.sync(() => NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), prefix))),
    (dir) => Effect.sync(() => NodeFs.rmSync(dir, { recursive: true, force: true })),
  )

const promise = <A>(run: () => Promise<A>) => Effect.promise(run)

const percentile = (xs: ReadonlyArray<number>, p: number) => {
  const sorted = [...xs].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0
}

/** Scroll the element `selector` by `step` px a frame for `frames` frames; frame durations. */
const scrollFrames = (page: Page, selector: string, step: number, frames: number) =>
  page.evaluate(
    ({ selector, step, frames }) =>
      new Promise<Array<number>>((resolve) => {
        const el = document.querySelector(selector) as HTMLElement
        const times: Array<number> = []
        let last = performance.now()
        let n = 0
        const tick = () => {
          const now = performance.now()
          times.push(now - last)
          last = now
          el.scrollTop += step
          if (++n < frames) requestAnimationFrame(tick)
          else resolve(times.slice(1))
        }
        requestAnimationFrame(tick)
      }),
    { selector, step, frames },
  )

const program = Effect.gen(function* () {
  yield* promise(() => buildInbox())
  const plugins = yield* temp("chorus-bench-plugins-")
  installRepoPlugins(plugins, ["inbox"])
  const server = yield* startReplyServer({
    dataDir: yield* temp("chorus-bench-"),
    pluginsDir: plugins,
    routing: { autoAssign: false },
  })
  yield* addOperator(server, { email: "admin@example.com", role: "admin" })
  const admin = yield* signIn(server.url, "admin@example.com")

  // Seed through the public API.
  const inbound = (sender: string, i: number, text: string) =>
    request(`${server.url}/api/v1/inbound`, {
      token: server.token,
      body: {
        account: "bench",
        sender: { id: sender, name: `Customer ${sender}` },
        externalId: `${sender}-${i}`,
        text,
      },
    })
  const seeded = performance.now()
  yield* Effect.forEach(
    Array.from({ length: CONVERSATIONS - 1 }, (_, i) => i),
    (i) => inbound(`c${i}`, 0, `Hello, this is customer ${i}`),
    { concurrency: IN_FLIGHT, discard: true },
  )
  // The long conversation: one customer, in order within each batch (seq follows arrival).
  yield* Effect.forEach(
    Array.from({ length: MESSAGES }, (_, i) => i),
    (i) =>
      inbound(
        "long",
        i,
        i % 9 === 0
          ? `Message ${i + 1}: a longer one, so rows differ in height. `.repeat(1 + (i % 4))
          : `Message ${i + 1}`,
      ),
    { concurrency: IN_FLIGHT, discard: true },
  )
  // Wait until the pipeline stored everything.
  let longId = ""
  while (true) {
    const counts = (yield* admin.api("GET", "/inbox/counts")).body as { all: number }
    const page = (yield* admin.api(
      "GET",
      "/inbox/conversations?view=all&limit=5",
    )).body as { conversations: Array<{ id: string; lastSeq: number; contact: { name: string } }> }
    const long = page.conversations.find((c) => c.contact.name === "Customer long")
    if (long !== undefined) longId = long.id
    if (counts.all >= CONVERSATIONS && long !== undefined && long.lastSeq >= MESSAGES) break
    yield* Effect.sleep("200 millis")
  }
  const seedSeconds = (performance.now() - seeded) / 1000
  console.log(
    `seeded ${CONVERSATIONS} conversations and ${MESSAGES} messages in one through ` +
      `POST /api/v1/inbound in ${seedSeconds.toFixed(1)} s`,
  )

  const browser = yield* Effect.acquireRelease(
    promise(() =>
      chromium.launch({
        executablePath: "/usr/bin/chromium",
        args: [
          "--no-sandbox",
          "--disable-gpu",
          "--no-first-run",
          "--disable-background-networking",
          "--disable-sync",
        ],
      })
    ),
    (b) => promise(() => b.close()),
  )
  const page = yield* promise(() => browser.newPage({ viewport: { width: 1400, height: 900 } }))
  // tsx keeps function names with a `__name` helper, which the evaluated functions then call.
  yield* promise(() => page.addInitScript("globalThis.__name = (f) => f"))
  yield* promise(async () => {
    await page.goto(`${server.url}/plugins/inbox/`)
    await page.fill("input[name=email]", "admin@example.com")
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button[type=submit]")
    await page.waitForSelector("header.topbar")
  })

  // ---- The list
  const list = yield* promise(() =>
    page.evaluate(async (expected) => {
      const meta = () => document.querySelector(".list-meta")?.textContent ?? ""
      const done = () => meta() === `${expected} conversations`
      const firstRows = () => document.querySelectorAll(".conv-row").length > 0
      performance.clearResourceTimings()
      const tab = document.querySelector("[data-testid=view-all]") as HTMLElement
      const started = performance.now()
      tab.click()
      let first = 0
      await new Promise<void>((resolve) => {
        const check = () => {
          if (first === 0 && firstRows() && !meta().startsWith("Loading")) {
            first = performance.now() - started
          }
          if (done()) resolve()
          else requestAnimationFrame(check)
        }
        requestAnimationFrame(check)
      })
      const all = performance.now() - started
      const pages = performance.getEntriesByType("resource").filter((e) =>
        e.name.includes("/api/v1/inbox/conversations")
      ) as Array<PerformanceResourceTiming>
      const lastArrived = Math.max(...pages.map((p) => p.responseEnd)) - started
      // Raw: the same pages fetched and parsed, nothing rendered.
      const rawStart = performance.now()
      let cursor: string | null = null
      let limit = 200
      let rows = 0
      do {
        const q = new URLSearchParams({ view: "all", status: "open", limit: String(limit) })
        if (cursor !== null) q.set("cursor", cursor)
        const body = await (await fetch(`/api/v1/inbox/conversations?${q}`)).json() as {
          conversations: Array<unknown>
          nextCursor: string | null
        }
        rows += body.conversations.length
        cursor = body.nextCursor
        limit = 1000
      } while (cursor !== null)
      const raw = performance.now() - rawStart
      return { first, all, renderAfterLastPage: all - lastArrived, pages: pages.length, raw, rows }
    }, CONVERSATIONS)
  )
  const listFrames = yield* promise(() => scrollFrames(page, ".conversations", 400, 240))

  // ---- The long conversation
  const history = yield* promise(() =>
    page.evaluate(async ({ id, newest }) => {
      const row = () => document.querySelector(`.list-pane [data-conversation="${id}"]`)
      ;(document.querySelector(".conversations") as HTMLElement).scrollTop = 0
      for (let i = 0; i < 3; i++) await new Promise((r) => requestAnimationFrame(r))
      // The list is newest first; the long conversation is the most recently updated.
      if (row() === null) throw new Error("the long conversation is not in view")
      const started = performance.now()
      ;(row() as HTMLElement).click()
      await new Promise<void>((resolve) => {
        const check = () => {
          const timeline = document.querySelector(".timeline")
          const el = document.querySelector(`.timeline [data-seq="${newest}"]`)
          if (timeline !== null && el !== null) {
            const a = el.getBoundingClientRect()
            const b = timeline.getBoundingClientRect()
            if (a.bottom <= b.bottom + 1 && a.top >= b.top - 1) return resolve()
          }
          requestAnimationFrame(check)
        }
        requestAnimationFrame(check)
      })
      const visible = performance.now() - started
      const rawStart = performance.now()
      await Promise.all([
        fetch(`/api/v1/conversations/${id}`).then((r) => r.json()),
        fetch(`/api/v1/conversations/${id}/messages?limit=50`).then((r) => r.json()),
      ])
      return { visible, raw: performance.now() - rawStart }
    }, { id: longId, newest: MESSAGES })
  )
  // Scroll up through the history: older pages load on the way.
  const upFrames: Array<number> = []
  const scrollStarted = performance.now()
  let loaded = 0
  for (let round = 0; round < 60 && loaded < MESSAGES; round++) {
    upFrames.push(...(yield* promise(() => scrollFrames(page, ".timeline", -1500, 30))))
    loaded = yield* promise(() =>
      page.evaluate(() => {
        const seqs = [...document.querySelectorAll(".timeline [data-seq]")].map((e) =>
          Number(e.getAttribute("data-seq"))
        )
        return seqs.length === 0 ? 0 : Math.min(...seqs)
      })
    )
    if (loaded === 1) break
  }
  const scrollSeconds = (performance.now() - scrollStarted) / 1000
  const domRows = yield* promise(() =>
    page.evaluate(() => document.querySelectorAll(".timeline .vrow").length)
  )

  const ms = (x: number) => `${x.toFixed(0)} ms`
  console.log(`
Inbox in Chromium (${NodeOs.cpus().length} cores, ${NodeOs.cpus()[0]?.model ?? "?"})

List of ${CONVERSATIONS} conversations (${list.pages} pages: 200, then 1000 each)
  click "All" → first rows shown        ${ms(list.first)}
  click "All" → all ${list.rows} rows loaded   ${
    ms(list.all)
  }   (raw: same pages fetched, not rendered: ${ms(list.raw)}; ratio ${
    (list.all / list.raw).toFixed(2)
  }x)
  last page arrived → shown             ${ms(list.renderAfterLastPage)}
  scrolling the list: frame p50 ${ms(percentile(listFrames, 50))}, p95 ${
    ms(percentile(listFrames, 95))
  }, max ${ms(Math.max(...listFrames))}

Conversation of ${MESSAGES} messages
  click → newest message visible        ${
    ms(history.visible)
  }   (raw: conversation + newest page fetched: ${ms(history.raw)}; ratio ${
    (history.visible / history.raw).toFixed(2)
  }x)
  scrolling up ${scrollSeconds.toFixed(1)} s: reached seq ${loaded}; frame p50 ${
    ms(percentile(upFrames, 50))
  }, p95 ${ms(percentile(upFrames, 95))}; rows in the DOM at the end: ${domRows}
`)
})

Effect.runPromise(Effect.scoped(program)).then(
  () => process.exit(0),
  (error) => {
    console.error(error)
    process.exit(1)
  },
)
