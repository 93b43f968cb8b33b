/**
 * Delivery end to end, through a real server (SQLite, embedded bus) and the `api` channel's
 * webhook, a real HTTP receiver on loopback that fails as the test says:
 *
 * - a provider answering 500s, timeouts and 429s for a while, then recovering: every reply is
 *   delivered exactly once (the receiver counts the deliveries it accepted), the breaker opened
 *   and closed again, with `channel.alert` down and recovered, and health back `up`;
 * - a provider refusing a reply for good with a fallback configured: the copy arrives on the
 *   customer's other channel, the original is `failed` pointing at it;
 * - without a fallback: `failed`, in the dead-letter list with its attempts; retry from the list
 *   delivers it, discard takes it off; the inbox's resend does the same for a conversation;
 * - the health endpoint and the Prometheus text.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { newId } from "../../core/ids.ts"
import type { ChorusEvent } from "../../schemas/Events.ts"
import { metricValue } from "../support/Metrics.ts"
import { tempDir } from "../support/TestDatabase.ts"
import { type ReceivedRequest, webhookReceiver } from "../support/WebhookReceiver.ts"
import { request } from "../api/ApiServer.ts"
import { eventually, recordEvents, seedConversation, startReplyServer } from "../api/ReplyServer.ts"

type Server = Effect.Effect.Success<ReturnType<typeof startReplyServer>>

const reply = (server: Server, conversationId: string, text: string) =>
  request(`${server.url}/api/v1/conversations/${conversationId}/messages`, {
    token: server.token,
    body: { text },
  }).pipe(Effect.map((r) => {
    if (r.status !== 202) throw new Error(`reply: ${r.status} ${r.text}`)
    return r.body as { id: string }
  }))

const api = (server: Server, method: string, path: string, body?: unknown) =>
  request(`${server.url}/api/v1${path}`, {
    token: server.token,
    method,
    ...(body !== undefined ? { body } : {}),
  })

const stateOf = (server: Server, id: string) =>
  server.outbound.reply(id as never).pipe(
    Effect.map((r) => (r._tag === "Some" ? r.value.message : undefined)),
  )

/** Deliveries the receiver accepted (answered 2xx), by reply id. */
const accepted = (received: ReadonlyArray<ReceivedRequest & { ok?: boolean }>) => {
  const counts = new Map<string, number>()
  for (const r of received) {
    if (r.ok !== true) continue
    const id = String(r.headers["x-chorus-delivery"])
    counts.set(id, (counts.get(id) ?? 0) + 1)
  }
  return counts
}

/** A second identity of the same contact, on another account of the `api` channel. */
const addIdentity = (server: Server, contactId: string, account: string, externalId: string) =>
  server.database.query("test: add identity", (db) =>
    db.insertInto("channel_identities").values({
      id: newId.channelIdentity(),
      contact_id: contactId,
      channel: "api",
      account,
      external_id: externalId,
      name: null,
      phone: null,
      email: null,
      verification: "unverified",
      reachable: 1,
      created_at: Date.now() - 60_000,
      last_seen_at: Date.now() - 60_000,
    }).execute())

describe("delivery policies end to end", () => {
  it.scopedLive("500s, timeouts and 429s for a while, then recovery: every reply delivered exactly once; the breaker opens and closes with alerts", () =>
    Effect.gen(function* () {
      const receiver = yield* webhookReceiver
      let outage = true
      let n = 0
      receiver.answer = (req) => {
        const r = req as ReceivedRequest & { ok?: boolean }
        if (!outage) {
          r.ok = true
          return { status: 200, body: JSON.stringify({ id: `ext-${n++}` }) }
        }
        const k = n++ % 3
        return k === 0
          ? { status: 500, body: "internal" }
          : k === 1
          ? "hang"
          : { status: 429, headers: { "retry-after": "1" }, body: "slow down" }
      }
      const server = yield* startReplyServer({
        dataDir: yield* tempDir(),
        webhookUrl: receiver.url,
        overrides: {
          timeout: "300 millis",
          retry: { baseDelay: "50 millis", maxDelay: "1 second", maxAttempts: 100 },
          breaker: { consecutiveFailures: 4, openFor: "500 millis", maxOpenFor: "1 second" },
        },
      })
      const events = yield* recordEvents(server.bus)
      const conversations = []
      for (let c = 0; c < 5; c++) {
        conversations.push(
          (yield* seedConversation(server.store, { account: "shop", sender: `c${c}` }))
            .conversation,
        )
      }
      const ids: Array<string> = []
      for (let i = 0; i < 4; i++) {
        for (const conversation of conversations) {
          ids.push((yield* reply(server, conversation.id, `reply ${i}`)).id)
        }
      }
      yield* eventually(
        "the breaker opened",
        () => events.some((e) => e.type === "channel.alert" && e.kind === "down"),
      )
      const during = yield* api(server, "GET", "/channels/health")
      const shop = (during.body as { channels: Array<{ account: string; status: string }> })
        .channels.find((c) => c.account === "shop")
      assert.include(["down", "degraded"], shop?.status)
      yield* Effect.sleep("1500 millis")
      outage = false
      // (The hanging requests stay unanswered: Chorus gave up on each after its timeout.)
      yield* eventually(
        "every reply sent",
        () =>
          Effect.forEach(ids, (id) => stateOf(server, id)).pipe(
            Effect.map((all) => all.every((m) => m?.delivery.state === "sent")),
          ),
        "10 seconds",
      )
      const counts = accepted(receiver.received)
      assert.strictEqual(counts.size, ids.length)
      for (const id of ids) assert.strictEqual(counts.get(id), 1, `reply ${id} accepted once`)
      yield* eventually(
        "recovered alert",
        () => events.some((e) => e.type === "channel.alert" && e.kind === "recovered"),
      )
      // Each conversation's replies were accepted in the order they were written.
      for (const conversation of conversations) {
        const order = receiver.received
          .filter((r) =>
            (r as { ok?: boolean }).ok === true && r.json?.conversationId === conversation.id
          )
          .map((r) => r.json.text)
        assert.deepStrictEqual(order, ["reply 0", "reply 1", "reply 2", "reply 3"])
      }
      // Every provider call is on record: the first reply's failures, then its success.
      const attempts = yield* api(
        server,
        "GET",
        `/conversations/${conversations[0]!.id}/messages/${ids[0]}/attempts`,
      )
      const list = (attempts.body as { attempts: Array<{ outcome: string }> }).attempts
      assert.strictEqual(list[list.length - 1]?.outcome, "sent")
      const health = (yield* api(server, "GET", "/channels/health")).body as {
        channels: Array<
          { account: string; status: string; breaker: { trips: number }; sent: number }
        >
      }
      const after = health.channels.find((c) => c.account === "shop")!
      assert.strictEqual(after.status, "up")
      assert.isAtLeast(after.breaker.trips, 1)
      assert.strictEqual(after.sent, ids.length)
      const metrics = yield* request(`${server.url}/metrics`, { token: server.token })
      assert.strictEqual(metrics.status, 200)
      assert.include(metrics.text, 'chorus_channel_sent_total{channel="api",account="shop"} 20')
      assert.include(metrics.text, 'chorus_channel_status{channel="api",account="shop"} 0')
      // The core's own families are there too (core/metrics/CoreMetrics.ts).
      for (
        const family of [
          "# TYPE chorus_bus_consumer_acknowledged_total counter",
          "# TYPE chorus_bus_consumer_held gauge",
          "# TYPE chorus_actors_resident gauge",
          "# TYPE chorus_store_transactions_total counter",
          "# TYPE process_cpu_seconds_total counter",
          "# TYPE nodejs_eventloop_delay_p99_seconds gauge",
        ]
      ) assert.include(metrics.text, family)
      assert.isAbove(
        metricValue(metrics.text, "chorus_store_writes_total", { writer: "outbound" }),
        0,
      )
    }))

  it.scopedLive("refused for good with a fallback configured: the copy goes to the customer's other channel", () =>
    Effect.gen(function* () {
      const receiver = yield* webhookReceiver
      receiver.answer = (req, i) => {
        if (req.json?.account === "shop") return { status: 400, body: "recipient not allowed" }
        ;(req as { ok?: boolean }).ok = true
        return { status: 200, body: JSON.stringify({ id: `backup-${i}` }) }
      }
      const server = yield* startReplyServer({
        dataDir: yield* tempDir(),
        webhookUrl: receiver.url,
        delivery: { channels: { api: { fallback: ["api"] } } },
      })
      const events = yield* recordEvents(server.bus)
      const { conversation, contact } = yield* seedConversation(server.store, {
        account: "shop",
        sender: "ann",
      })
      yield* addIdentity(server, contact.id, "backup", "ann-backup")
      const original = yield* reply(server, conversation.id, "Your order shipped.")
      let copyId = ""
      yield* eventually(
        "the original failed with a fallback",
        () =>
          stateOf(server, original.id).pipe(Effect.map((m) => {
            copyId = m?.fallbackTo ?? ""
            return m?.delivery.state === "failed" && copyId !== ""
          })),
      )
      yield* eventually(
        "the copy sent",
        () => stateOf(server, copyId).pipe(Effect.map((m) => m?.delivery.state === "sent")),
      )
      const failed = yield* stateOf(server, original.id)
      assert.strictEqual(failed?.delivery.state === "failed" && failed.delivery.error.code, "400")
      const copy = yield* stateOf(server, copyId)
      assert.strictEqual(copy?.fallbackOf, original.id)
      assert.strictEqual(copy?.account, "backup")
      assert.strictEqual(copy?.text, "Your order shipped.")
      assert.strictEqual(copy?.seq, 3)
      const backup = receiver.received.filter((r) => r.json?.account === "backup")
      assert.lengthOf(backup, 1)
      assert.strictEqual(backup[0]!.json.recipient.id, "ann-backup")
      // The inbox learns both: the copy as message.sent (with fallbackOf), the failure.
      yield* eventually(
        "events",
        () =>
          events.some((e: ChorusEvent) =>
            e.type === "message.sent" && e.message.id === copyId &&
            e.message.fallbackOf === original.id
          ),
      )
      // Nothing for a person to do: no dead letter.
      const list = yield* api(server, "GET", "/outbound/dead-letters")
      assert.lengthOf((list.body as { deadLetters: Array<unknown> }).deadLetters, 0)
    }))

  it.scopedLive("without a fallback: failed, in the dead-letter list; retry delivers it, discard takes it off, resend from the conversation", () =>
    Effect.gen(function* () {
      const receiver = yield* webhookReceiver
      let refuse = true
      receiver.answer = (req, i) => {
        if (refuse) return { status: 403, body: "forbidden for now" }
        ;(req as { ok?: boolean }).ok = true
        return { status: 200, body: JSON.stringify({ id: `ok-${i}` }) }
      }
      const server = yield* startReplyServer({
        dataDir: yield* tempDir(),
        webhookUrl: receiver.url,
      })
      const { conversation } = yield* seedConversation(server.store, {
        account: "shop",
        sender: "bo",
      })
      const a = yield* reply(server, conversation.id, "first")
      const b = yield* reply(server, conversation.id, "second")
      const c = yield* reply(server, conversation.id, "third")
      yield* eventually(
        "three dead letters",
        () =>
          api(server, "GET", "/outbound/dead-letters").pipe(
            Effect.map((r) => (r.body as { deadLetters: Array<unknown> }).deadLetters.length === 3),
          ),
      )
      const page = (yield* api(server, "GET", "/outbound/dead-letters?limit=2")).body as {
        deadLetters: Array<{ messageId: string; code: string; reason: string; attempts: number }>
        next: string | null
      }
      assert.deepStrictEqual(page.deadLetters.map((d) => d.messageId), [c.id, b.id])
      assert.strictEqual(page.deadLetters[0]!.code, "403")
      assert.include(page.deadLetters[0]!.reason, "forbidden for now")
      assert.strictEqual(page.deadLetters[0]!.attempts, 1)
      const rest = (yield* api(server, "GET", `/outbound/dead-letters?limit=2&before=${page.next}`))
        .body as { deadLetters: Array<{ messageId: string }>; next: string | null }
      assert.deepStrictEqual(rest.deadLetters.map((d) => d.messageId), [a.id])

      refuse = false
      const retried = yield* api(server, "POST", `/outbound/dead-letters/${a.id}/retry`)
      assert.strictEqual(retried.status, 202, retried.text)
      yield* eventually(
        "a sent after the retry",
        () => stateOf(server, a.id).pipe(Effect.map((m) => m?.delivery.state === "sent")),
      )
      const again = yield* api(server, "POST", `/outbound/dead-letters/${a.id}/retry`)
      assert.strictEqual(again.status, 409)
      const discarded = yield* api(server, "POST", `/outbound/dead-letters/${b.id}/discard`)
      assert.strictEqual(discarded.status, 200, discarded.text)
      assert.strictEqual((discarded.body as { resolution: string }).resolution, "discarded")
      assert.strictEqual((yield* stateOf(server, b.id))?.delivery.state, "failed")
      // The inbox's resend on the conversation.
      const resent = yield* api(
        server,
        "POST",
        `/conversations/${conversation.id}/messages/${c.id}/resend`,
      )
      assert.strictEqual(resent.status, 202, resent.text)
      yield* eventually(
        "c sent after the resend",
        () => stateOf(server, c.id).pipe(Effect.map((m) => m?.delivery.state === "sent")),
      )
      const open = (yield* api(server, "GET", "/outbound/dead-letters")).body as {
        deadLetters: Array<unknown>
      }
      assert.lengthOf(open.deadLetters, 0)
      const all = (yield* api(server, "GET", "/outbound/dead-letters?status=all")).body as {
        deadLetters: Array<{ messageId: string; resolution: string; resolvedBy: string }>
      }
      assert.deepStrictEqual(
        all.deadLetters.map((d) => [d.messageId, d.resolution]).sort(),
        [[a.id, "retried"], [b.id, "discarded"], [c.id, "retried"]].sort(),
      )
      assert.match(all.deadLetters[0]!.resolvedBy, /^token:/)
      const accepted = receiver.received.filter((r) => (r as { ok?: boolean }).ok === true)
      assert.deepStrictEqual(accepted.map((r) => r.json.text), ["first", "third"])
      // A wrong conversation for the message: 404, nothing resent.
      const other = yield* seedConversation(server.store, { account: "shop", sender: "zed" })
      const wrong = yield* api(
        server,
        "POST",
        `/conversations/${other.conversation.id}/messages/${b.id}/resend`,
      )
      assert.strictEqual(wrong.status, 404)
    }))

  it.scopedLive("breaker open without a fallback: replies wait (only probes call the provider) and go once it answers", () =>
    Effect.gen(function* () {
      const receiver = yield* webhookReceiver
      let down = true
      receiver.answer = (req, i) => {
        if (down) return { status: 503, body: "maintenance" }
        ;(req as { ok?: boolean }).ok = true
        return { status: 200, body: JSON.stringify({ id: `ok-${i}` }) }
      }
      const server = yield* startReplyServer({
        dataDir: yield* tempDir(),
        webhookUrl: receiver.url,
        overrides: {
          retry: { baseDelay: "20 millis", maxDelay: "100 millis", maxAttempts: 100 },
          breaker: { consecutiveFailures: 3, openFor: "400 millis", maxOpenFor: "400 millis" },
        },
      })
      const { conversation } = yield* seedConversation(server.store, {
        account: "shop",
        sender: "cy",
      })
      const ids: Array<string> = []
      for (let i = 0; i < 5; i++) ids.push((yield* reply(server, conversation.id, `m${i}`)).id)
      // 3 failures open it; then only one probe per 400 ms: in 2 s, about 5 more calls.
      yield* Effect.sleep("2 seconds")
      const calls = receiver.received.length
      assert.isAtMost(calls, 3 + 7, `calls while open: ${calls}`)
      // Only the conversation's first reply made calls (the probes); the others waited their turn.
      const stored = yield* Effect.forEach(ids, (id) => server.outbound.reply(id as never))
      assert.deepStrictEqual(
        stored.map((r) => r._tag === "Some" ? r.value.message.delivery.state : "missing"),
        ["queued", "queued", "queued", "queued", "queued"],
      )
      assert.deepStrictEqual(
        stored.slice(1).map((r) => r._tag === "Some" ? r.value.attempts : -1),
        [0, 0, 0, 0],
      )
      down = false
      yield* eventually("all sent", () =>
        Effect.forEach(ids, (id) => stateOf(server, id)).pipe(
          Effect.map((all) => all.every((m) => m?.delivery.state === "sent")),
        ))
      assert.strictEqual(accepted(receiver.received).size, 5)
    }))
})
