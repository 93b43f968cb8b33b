/**
 * The inbox's API end to end on a real server (SQLite, embedded bus): sign-in and its
 * throttling, the session cookie's flags, CSRF, roles, team visibility on every read and write
 * (API and event stream), and what operators do to conversations.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Totp from "../../core/accounts/Totp.ts"
import { request } from "../api/ApiServer.ts"
import { eventually, startReplyServer } from "../api/ReplyServer.ts"
import { tempDir } from "../support/TestDatabase.ts"
import { addOperator, addTeam, login, signIn } from "./InboxClient.ts"

type Server = Effect.Effect.Success<ReturnType<typeof startReplyServer>>

/** A customer's message on the `api` channel, account `account`; its conversation's id. */
const customerWrites = (server: Server, account: string, sender: string, text: string) =>
  Effect.gen(function* () {
    const sent = yield* request(`${server.url}/api/v1/inbound`, {
      token: server.token,
      body: {
        account,
        sender: { id: sender, name: `Customer ${sender}` },
        externalId: `${sender}-${text}`,
        text,
      },
    })
    assert.strictEqual(sent.status, 202, sent.text)
    let conversationId = ""
    yield* eventually(
      `${sender}'s conversation`,
      () =>
        request(`${server.url}/api/v1/conversations?limit=200`, { token: server.token }).pipe(
          Effect.map((r) => {
            const list = (r.body as {
              conversations: Array<{ id: string; contactId: string; lastSeq: number }>
            })
              .conversations
            const found = list.find((c) => c.lastSeq > 0 && c.id !== "")
            return found !== undefined
          }),
          Effect.zipRight(
            request(`${server.url}/api/v1/inbox/conversations?limit=1000`, { token: server.token }),
          ),
          Effect.map((r) => {
            const rows = (r.body as {
              conversations: Array<
                { id: string; contact: { name: string }; preview: { text: string } | null }
              >
            }).conversations
            const row = rows.find((c) =>
              c.contact.name === `Customer ${sender}` && c.preview?.text === text
            )
            if (row !== undefined) conversationId = row.id
            return row !== undefined
          }),
        ),
    )
    return conversationId
  })

/** Two teams (support owns api:shop-a, billing owns api:shop-b), an operator in each, an admin. */
const setUp = Effect.gen(function* () {
  const server = yield* startReplyServer({
    dataDir: yield* tempDir(),
    routing: { autoAssign: false },
  })
  const support = yield* addTeam(server.teams, "Support", "shop-a")
  const billing = yield* addTeam(server.teams, "Billing", "shop-b")
  yield* addOperator(server, { email: "ann@example.com", teamIds: [support.id] })
  yield* addOperator(server, { email: "bob@example.com", teamIds: [billing.id] })
  yield* addOperator(server, {
    email: "sue@example.com",
    role: "supervisor",
    teamIds: [support.id],
  })
  yield* addOperator(server, { email: "root@example.com", role: "admin" })
  return { server, support, billing }
})

describe("inbox API", () => {
  it.scopedLive(
    "sign-in: wrong passwords get 401, then 429 with retryAfterSeconds, even for the right one",
    () =>
      Effect.gen(function* () {
        const { server } = yield* setUp
        const wrong = yield* login(server.url, { email: "ann@example.com", password: "nope" })
        assert.strictEqual(wrong.status, 401)
        assert.strictEqual(wrong.body._tag, "InvalidCredentials")
        const unknown = yield* login(server.url, { email: "nobody@example.com", password: "nope" })
        assert.deepStrictEqual([unknown.status, unknown.body._tag], [401, "InvalidCredentials"])
        for (let i = 0; i < 4; i++) {
          yield* login(server.url, { email: "ann@example.com", password: `nope${i}` })
        }
        const throttled = yield* login(server.url, { email: "ann@example.com" })
        assert.strictEqual(throttled.status, 429, JSON.stringify(throttled.body))
        assert.strictEqual(throttled.body._tag, "LoginThrottled")
        assert.isAbove(throttled.body.retryAfterSeconds, 0)
        // Another operator is not locked out by Ann's failures.
        const bob = yield* login(server.url, { email: "bob@example.com" })
        assert.strictEqual(bob.status, 200)
      }),
    60_000,
  )

  it.scopedLive(
    "the session cookie is HttpOnly and SameSite=Strict; sign-out ends it; sign-out everywhere ends all",
    () =>
      Effect.gen(function* () {
        const { server } = yield* setUp
        const first = yield* login(server.url, { email: "ann@example.com" })
        const setCookie = first.headers.get("set-cookie") ?? ""
        assert.match(setCookie, /chorus_session=chs_/)
        assert.match(setCookie, /HttpOnly/i)
        assert.match(setCookie, /SameSite=Strict/i)
        assert.match(setCookie, /Path=\//)
        assert.notProperty(first.body, "token")

        const one = yield* signIn(server.url, "ann@example.com")
        const two = yield* signIn(server.url, "ann@example.com")
        assert.strictEqual((yield* one.api("GET", "/auth/session")).status, 200)
        assert.strictEqual((yield* one.api("POST", "/auth/logout")).status, 204)
        assert.strictEqual((yield* one.api("GET", "/auth/session")).status, 401)
        assert.strictEqual((yield* two.api("GET", "/auth/session")).status, 200)
        const three = yield* signIn(server.url, "ann@example.com")
        assert.strictEqual((yield* three.api("POST", "/auth/logout-everywhere")).status, 204)
        assert.strictEqual((yield* two.api("GET", "/auth/session")).status, 401)
        assert.strictEqual((yield* three.api("GET", "/auth/session")).status, 401)
      }),
    60_000,
  )

  it.scopedLive(
    "a change without the CSRF token, or from another origin, is refused with 403",
    () =>
      Effect.gen(function* () {
        const { server } = yield* setUp
        const ann = yield* signIn(server.url, "ann@example.com")
        const id = yield* customerWrites(server, "shop-a", "c1", "hello")
        const without = yield* ann.api("POST", `/conversations/${id}/notes`, { text: "x" }, {
          csrf: false,
        })
        assert.deepStrictEqual([without.status, without.body._tag], [403, "CsrfRejected"])
        const foreign = yield* ann.api("POST", `/conversations/${id}/notes`, { text: "x" }, {
          origin: "https://evil.example",
        })
        assert.deepStrictEqual([foreign.status, foreign.body._tag], [403, "CsrfRejected"])
        const ok = yield* ann.api("POST", `/conversations/${id}/notes`, { text: "checked" })
        assert.strictEqual(ok.status, 201, JSON.stringify(ok.body))
        // Reads need no token.
        assert.strictEqual(
          (yield* ann.api("GET", `/conversations/${id}`, undefined, { csrf: false })).status,
          200,
        )
        // Nor does a bearer token (no cookie, no CSRF).
        const byToken = yield* request(`${server.url}/api/v1/conversations/${id}/notes`, {
          token: server.token,
          body: { text: "from an integration" },
        })
        assert.strictEqual(byToken.status, 201)
      }),
    60_000,
  )

  it.scopedLive(
    "an operator sees only their teams' conversations: list, get, history, reply, contact all 404 otherwise",
    () =>
      Effect.gen(function* () {
        const { server } = yield* setUp
        const mine = yield* customerWrites(server, "shop-a", "alice", "my order")
        const theirs = yield* customerWrites(server, "shop-b", "boris", "my invoice")
        const ann = yield* signIn(server.url, "ann@example.com")

        const list = yield* ann.api("GET", "/inbox/conversations?view=all")
        assert.deepStrictEqual(list.body.conversations.map((c: { id: string }) => c.id), [mine])
        assert.strictEqual(
          list.body.conversations[0].teamId,
          (yield* server.teams.byName("Support").pipe(Effect.orDie)).pipe((o) =>
            o._tag === "Some" ? o.value.id : ""
          ),
        )
        const legacy = yield* ann.api("GET", "/conversations")
        assert.deepStrictEqual(legacy.body.conversations.map((c: { id: string }) => c.id), [mine])

        const other = yield* request(`${server.url}/api/v1/conversations/${theirs}`, {
          token: server.token,
        })
        for (
          const [method, path, body] of [
            ["GET", `/conversations/${theirs}`, undefined],
            ["GET", `/conversations/${theirs}/messages`, undefined],
            ["POST", `/conversations/${theirs}/messages`, { text: "hi" }],
            ["POST", `/conversations/${theirs}/notes`, { text: "hi" }],
            ["POST", `/conversations/${theirs}/status`, { status: "resolved" }],
            ["POST", `/conversations/${theirs}/assignment`, { assigneeId: ann.operator.id }],
            ["GET", `/contacts/${other.body.contactId}`, undefined],
            ["GET", `/contacts/${other.body.contactId}/conversations`, undefined],
          ] as const
        ) {
          const answer = yield* ann.api(method, path, body)
          assert.strictEqual(
            answer.status,
            404,
            `${method} ${path}: ${JSON.stringify(answer.body)}`,
          )
        }
        // The admin sees both.
        const root = yield* signIn(server.url, "root@example.com")
        const all = yield* root.api("GET", "/inbox/conversations")
        assert.sameMembers(all.body.conversations.map((c: { id: string }) => c.id), [mine, theirs])
        const counts = yield* ann.api("GET", "/inbox/counts")
        assert.deepStrictEqual(counts.body, { mine: 0, unassigned: 1, all: 1 })
      }),
    60_000,
  )

  it.scopedLive(
    "roles: an operator cannot manage plugins or see the queue; a supervisor sees the queue",
    () =>
      Effect.gen(function* () {
        const { server } = yield* setUp
        yield* customerWrites(server, "shop-a", "q1", "first")
        yield* customerWrites(server, "shop-a", "q2", "second")
        yield* customerWrites(server, "shop-b", "q3", "elsewhere")
        const ann = yield* signIn(server.url, "ann@example.com")
        const sue = yield* signIn(server.url, "sue@example.com")
        assert.strictEqual((yield* ann.api("GET", "/plugins")).status, 403)
        assert.strictEqual((yield* ann.api("GET", "/queue")).status, 403)
        assert.strictEqual((yield* sue.api("GET", "/plugins")).status, 403)
        const queue = yield* sue.api("GET", "/queue")
        assert.strictEqual(queue.status, 200)
        // Sue supervises Support: its two, in order of waiting; Billing's is not hers.
        assert.deepStrictEqual(queue.body.queue.map((e: { position: number }) => e.position), [
          1,
          2,
        ])
        assert.sameMembers(
          queue.body.operators.map((o: { email: string }) => o.email),
          ["ann@example.com", "sue@example.com"],
        )
        const root = yield* signIn(server.url, "root@example.com")
        assert.strictEqual((yield* root.api("GET", "/plugins")).status, 200)
        assert.strictEqual((yield* root.api("GET", "/queue")).body.queue.length, 3)
      }),
    60_000,
  )

  it.scopedLive(
    "status, snooze, assignment, transfer to another team, notes with mentions, read marks",
    () =>
      Effect.gen(function* () {
        const { server, billing } = yield* setUp
        const id = yield* customerWrites(server, "shop-a", "carl", "broken")
        yield* customerWrites(server, "shop-a", "carl", "still broken")
        const ann = yield* signIn(server.url, "ann@example.com")
        const sue = yield* signIn(server.url, "sue@example.com")

        let row = (yield* ann.api("GET", "/inbox/conversations")).body.conversations[0]
        assert.strictEqual(row.unreadCount, 2)
        assert.isNotNull(row.waitingSince)
        assert.strictEqual(
          (yield* ann.api("POST", `/conversations/${id}/read`, { seq: 2 })).status,
          204,
        )
        row = (yield* ann.api("GET", "/inbox/conversations")).body.conversations[0]
        assert.strictEqual(row.unreadCount, 0)

        const assigned = yield* ann.api("POST", `/conversations/${id}/assignment`, {
          assigneeId: ann.operator.id,
        })
        assert.strictEqual(assigned.status, 200, JSON.stringify(assigned.body))
        assert.strictEqual(assigned.body.assigneeId, ann.operator.id)
        assert.deepStrictEqual((yield* ann.api("GET", "/inbox/counts")).body, {
          mine: 1,
          unassigned: 0,
          all: 1,
        })

        const snoozeNoTime = yield* ann.api("POST", `/conversations/${id}/status`, {
          status: "snoozed",
        })
        assert.deepStrictEqual([snoozeNoTime.status, snoozeNoTime.body.field], [
          422,
          "snoozedUntil",
        ])
        const until = new Date(Date.now() + 3_600_000).toISOString()
        const snoozed = yield* ann.api("POST", `/conversations/${id}/status`, {
          status: "snoozed",
          snoozedUntil: until,
        })
        assert.deepStrictEqual([snoozed.body.status, snoozed.body.snoozedUntil], ["pending", until])
        const snoozedList = yield* ann.api("GET", "/inbox/conversations?status=snoozed")
        assert.strictEqual(snoozedList.body.conversations.length, 1)
        assert.strictEqual(
          (yield* ann.api("GET", "/inbox/conversations?status=pending")).body.conversations.length,
          0,
        )
        // The customer writes: open again.
        yield* customerWrites(server, "shop-a", "carl", "hello?")
        row = (yield* ann.api("GET", "/inbox/conversations")).body.conversations[0]
        assert.deepStrictEqual([row.status, row.snoozedUntil], ["open", null])

        const note = yield* ann.api("POST", `/conversations/${id}/notes`, {
          text: "@sue can you look?",
          mentions: [sue.operator.id],
        })
        assert.strictEqual(note.status, 201)
        assert.deepStrictEqual([note.body.direction, note.body.mentions], ["note", [
          sue.operator.id,
        ]])
        const history = yield* ann.api("GET", `/conversations/${id}/messages`)
        assert.deepStrictEqual(
          history.body.messages.map((
            m: { seq: number; direction: string },
          ) => [m.seq, m.direction]),
          [[4, "note"], [3, "in"], [2, "in"], [1, "in"]],
        )
        const badMention = yield* ann.api("POST", `/conversations/${id}/notes`, {
          text: "x",
          mentions: ["01JZZZZZZZZZZZZZZZZZZZZZZZ"],
        })
        assert.deepStrictEqual([badMention.status, badMention.body.field], [422, "mentions"])

        // Transfer to Billing's queue: Ann no longer sees it; Bob does.
        const moved = yield* ann.api("POST", `/conversations/${id}/assignment`, {
          assigneeId: null,
          teamId: billing.id,
        })
        assert.deepStrictEqual([moved.body.teamId, moved.body.assigneeId], [billing.id, null])
        assert.strictEqual((yield* ann.api("GET", `/conversations/${id}`)).status, 404)
        const bob = yield* signIn(server.url, "bob@example.com")
        assert.strictEqual((yield* bob.api("GET", `/conversations/${id}`)).status, 200)
        const resolved = yield* bob.api("POST", `/conversations/${id}/status`, {
          status: "resolved",
        })
        assert.strictEqual(resolved.body.status, "resolved")
        const again = yield* bob.api("POST", `/conversations/${id}/status`, { status: "open" })
        assert.deepStrictEqual([again.status, again.body._tag], [409, "ConversationClosed"])
      }),
    60_000,
  )

  it.scopedLive(
    "the event stream shows an operator only their teams' conversations, and a transfer away once",
    () =>
      Effect.gen(function* () {
        const { server, billing } = yield* setUp
        const ann = yield* signIn(server.url, "ann@example.com")
        const events: Array<{ type: string; conversationId: string | undefined }> = []
        const controller = new AbortController()
        const response = yield* Effect.promise(() =>
          fetch(`${server.url}/api/v1/events`, {
            headers: { cookie: ann.cookie },
            signal: controller.signal,
          })
        )
        assert.strictEqual(response.status, 200)
        yield* Effect.forkScoped(Effect.promise(async () => {
          const reader = response.body!.getReader()
          let buffer = ""
          try {
            while (true) {
              const { value, done } = await reader.read()
              if (done) return
              buffer += new TextDecoder().decode(value)
              let at: number
              while ((at = buffer.indexOf("\n\n")) >= 0) {
                const frame = buffer.slice(0, at)
                buffer = buffer.slice(at + 2)
                const data = frame.split("\n").filter((l) => l.startsWith("data: ")).map((l) =>
                  l.slice(6)
                ).join("\n")
                if (data === "") continue
                const event = JSON.parse(data)
                events.push({
                  type: event.type,
                  conversationId: event.conversation?.id ?? event.message?.conversationId ??
                    event.conversationId,
                })
              }
            }
          } catch {
            // aborted at the end of the test
          }
        }))
        // Registered after the reader: finalizers run last-first, so the read is aborted before
        // its fiber is awaited.
        yield* Effect.addFinalizer(() => Effect.sync(() => controller.abort()))
        const mine = yield* customerWrites(server, "shop-a", "dina", "question")
        const theirs = yield* customerWrites(server, "shop-b", "egor", "other question")
        yield* eventually("Ann's events", () =>
          events.some((e) => e.type === "message.received" && e.conversationId === mine))
        yield* ann.api("POST", `/conversations/${mine}/assignment`, {
          assigneeId: null,
          teamId: billing.id,
        })
        yield* eventually("the transfer", () =>
          events.some((e) => e.type === "conversation.updated"))
        yield* customerWrites(server, "shop-a", "dina", "anyone?")
        yield* Effect.sleep("500 millis")
        assert.isFalse(events.some((e) => e.conversationId === theirs), JSON.stringify(events))
        assert.isFalse(events.some((e) => e.type.startsWith("contact.")))
        // After the transfer, Dina's next message is Billing's business, not Ann's.
        const received = events.filter((e) =>
          e.type === "message.received" && e.conversationId === mine
        )
        assert.strictEqual(received.length, 1, JSON.stringify(events))
      }),
    60_000,
  )

  it.scopedLive(
    "TOTP: set up, confirm, then sign-in asks for the code and takes a valid one",
    () =>
      Effect.gen(function* () {
        const { server } = yield* setUp
        const ann = yield* signIn(server.url, "ann@example.com")
        const setup = yield* ann.api("POST", "/auth/totp/setup")
        assert.strictEqual(setup.status, 200)
        assert.match(setup.body.uri, /^otpauth:\/\/totp\//)
        const wrong = yield* ann.api("POST", "/auth/totp/confirm", { code: "000000" })
        assert.strictEqual(wrong.status, 401)
        const confirmed = yield* ann.api("POST", "/auth/totp/confirm", {
          code: Totp.codeAt(setup.body.secret, Date.now()),
        })
        assert.strictEqual(confirmed.body.totpEnabled, true)
        const needsCode = yield* login(server.url, { email: "ann@example.com" })
        assert.deepStrictEqual([needsCode.status, needsCode.body._tag], [401, "TotpRequired"])
        // A code of the next step (the window allows one step of clock drift).
        const withCode = yield* login(server.url, {
          email: "ann@example.com",
          totp: Totp.codeAt(setup.body.secret, Date.now() + 30_000),
        })
        assert.strictEqual(withCode.status, 200, JSON.stringify(withCode.body))
      }),
    60_000,
  )
})
