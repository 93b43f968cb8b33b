/**
 * Routing on a real server: queued conversations go to online operators of their team, least
 * loaded first, never over capacity; away and offline operators get nothing new; what an
 * assignee leaves unanswered goes back to the queue and to someone else; a snoozed
 * conversation opens again on time.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { request } from "../api/ApiServer.ts"
import { eventually, startReplyServer } from "../api/ReplyServer.ts"
import { tempDir } from "../support/TestDatabase.ts"
import { addOperator, addTeam, signIn } from "./InboxClient.ts"

type Server = Effect.Effect.Success<ReturnType<typeof startReplyServer>>

interface Row {
  readonly id: string
  readonly status: string
  readonly assigneeId: string | null
  readonly contact: { readonly name: string | null }
}

const rows = (server: Server) =>
  request(`${server.url}/api/v1/inbox/conversations?limit=1000`, { token: server.token }).pipe(
    Effect.map((r) => (r.body as { conversations: Array<Row> }).conversations),
  )

const customersWrite = (server: Server, account: string, senders: ReadonlyArray<string>) =>
  Effect.gen(function* () {
    for (const sender of senders) {
      const sent = yield* request(`${server.url}/api/v1/inbound`, {
        token: server.token,
        body: {
          account,
          sender: { id: sender, name: sender },
          externalId: `${sender}-1`,
          text: "help",
        },
      })
      assert.strictEqual(sent.status, 202)
      // One at a time, so the queue's order (longest waiting first) is the order written.
      yield* eventually(
        `${sender} stored`,
        () => rows(server).pipe(Effect.map((list) => list.some((c) => c.contact.name === sender))),
      )
    }
  })

const loadOf = (list: ReadonlyArray<Row>, operatorId: string) =>
  list.filter((c) => c.status === "open" && c.assigneeId === operatorId).length

describe("routing", () => {
  it.scopedLive(
    "balances by load within capacity; away and offline operators get nothing",
    () =>
      Effect.gen(function* () {
        const server = yield* startReplyServer({
          dataDir: yield* tempDir(),
          routing: { autoAssign: true, answerTimeoutSeconds: 0 },
        })
        const team = yield* addTeam(server.teams, "Support", "shop")
        const ann = yield* addOperator(server, {
          email: "ann@x.io",
          teamIds: [team.id],
          capacity: 2,
          presence: "online",
        })
        const bob = yield* addOperator(server, {
          email: "bob@x.io",
          teamIds: [team.id],
          capacity: 3,
          presence: "online",
        })
        const away = yield* addOperator(server, {
          email: "cid@x.io",
          teamIds: [team.id],
          presence: "away",
        })
        const offline = yield* addOperator(server, { email: "dan@x.io", teamIds: [team.id] })
        // Online but in another team: never gets Support's conversations.
        const other = yield* addTeam(server.teams, "Billing", "billing")
        const eve = yield* addOperator(server, {
          email: "eve@x.io",
          teamIds: [other.id],
          presence: "online",
        })

        yield* customersWrite(server, "shop", ["c1", "c2", "c3", "c4", "c5", "c6", "c7"])
        yield* eventually("five assigned (capacity 2 + 3)", () =>
          rows(server).pipe(Effect.map((list) =>
            list.filter((c) =>
              c.assigneeId !== null
            ).length === 5
          )))
        yield* Effect.sleep("1500 millis") // a pass or two more: nothing beyond capacity
        const list = yield* rows(server)
        assert.strictEqual(loadOf(list, ann.id), 2)
        assert.strictEqual(loadOf(list, bob.id), 3)
        for (const idle of [away, offline, eve]) {
          assert.strictEqual(loadOf(list, idle.id), 0)
        }
        // The two left are the last two written (longest waiting were served first).
        assert.sameMembers(
          list.filter((c) => c.assigneeId === null).map((c) => c.contact.name),
          ["c6", "c7"],
        )
        // Bob resolves one: the longest waiting of the queue goes to him at once.
        const bobs = list.find((c) => c.assigneeId === bob.id)!
        const bobSession = yield* signIn(server.url, "bob@x.io")
        yield* bobSession.api("POST", `/conversations/${bobs.id}/status`, { status: "resolved" })
        yield* eventually("c6 assigned to Bob", () =>
          rows(server).pipe(Effect.map((l) =>
            l.find((c) =>
              c.contact.name === "c6"
            )?.assigneeId === bob.id
          )))
        // Cid comes online (through the API, as the inbox does): he takes c7.
        const cid = yield* signIn(server.url, "cid@x.io")
        const online = yield* cid.api("PUT", "/auth/presence", { presence: "online" })
        assert.strictEqual(online.body.presence, "online")
        yield* eventually("c7 assigned to Cid", () =>
          rows(server).pipe(Effect.map((l) =>
            l.find((c) =>
              c.contact.name === "c7"
            )?.assigneeId === away.id
          )))
      }),
    60_000,
  )

  it.scopedLive("balanced: equal capacities end with equal loads", () =>
    Effect.gen(function* () {
      const server = yield* startReplyServer({
        dataDir: yield* tempDir(),
        routing: { autoAssign: true, answerTimeoutSeconds: 0 },
      })
      const team = yield* addTeam(server.teams, "Support", "shop")
      const people = []
      for (const email of ["a@x.io", "b@x.io", "c@x.io"]) {
        people.push(yield* addOperator(server, { email, teamIds: [team.id], presence: "online" }))
      }
      yield* customersWrite(server, "shop", ["k1", "k2", "k3", "k4", "k5", "k6", "k7", "k8", "k9"])
      yield* eventually("all nine assigned", () =>
        rows(server).pipe(Effect.map((list) => list.every((c) => c.assigneeId !== null))))
      const list = yield* rows(server)
      assert.deepStrictEqual(
        people.map((p) =>
          loadOf(list, p.id)
        ),
        [3, 3, 3],
      )
    }), 60_000)

  it.scopedLive(
    "an unanswered conversation goes back to the queue and to someone else; an answered one stays",
    () =>
      Effect.gen(function* () {
        const server = yield* startReplyServer({
          dataDir: yield* tempDir(),
          routing: { autoAssign: true, answerTimeoutSeconds: 2 },
        })
        const team = yield* addTeam(server.teams, "Support", "shop")
        const ann = yield* addOperator(server, {
          email: "ann@x.io",
          teamIds: [team.id],
          capacity: 1,
          presence: "online",
        })
        yield* customersWrite(server, "shop", ["u1", "u2"])
        yield* eventually("u1 with Ann", () =>
          rows(server).pipe(Effect.map((l) =>
            l.find((c) =>
              c.contact.name === "u1"
            )?.assigneeId === ann.id
          )))
        const bob = yield* addOperator(server, {
          email: "bob@x.io",
          teamIds: [team.id],
          capacity: 1,
          presence: "online",
        })
        yield* eventually("u2 with Bob", () =>
          rows(server).pipe(Effect.map((l) =>
            l.find((c) =>
              c.contact.name === "u2"
            )?.assigneeId === bob.id
          )))
        // Bob answers his; Ann does not answer hers.
        const u2 = (yield* rows(server)).find((c) =>
          c.contact.name === "u2"
        )!
        const bobSession = yield* signIn(server.url, "bob@x.io")
        const reply = yield* bobSession.api("POST", `/conversations/${u2.id}/messages`, {
          text: "On it",
        })
        assert.strictEqual(reply.status, 202, JSON.stringify(reply.body))
        // Ann's goes back to the queue after 2 s. Bob is full, and it never goes back to Ann by
        // itself: it waits at the head of the queue. Bob's answered one stays with him.
        yield* eventually("u1 back in the queue", () =>
          rows(server).pipe(Effect.map((l) =>
            l.find((c) =>
              c.contact.name === "u1"
            )?.assigneeId === null
          )), "10 seconds")
        yield* Effect.sleep("3 seconds")
        let list = yield* rows(server)
        assert.isNull(
          list.find((c) =>
            c.contact.name === "u1"
          )!.assigneeId,
        )
        assert.strictEqual(list.find((c) => c.contact.name === "u2")!.assigneeId, bob.id)
        // Bob frees a place: u1 goes to him.
        yield* bobSession.api("POST", `/conversations/${u2.id}/status`, { status: "resolved" })
        yield* eventually("u1 with Bob", () =>
          rows(server).pipe(Effect.map((l) =>
            l.find((c) =>
              c.contact.name === "u1"
            )?.assigneeId === bob.id
          )))
        list = yield* rows(server)
        assert.strictEqual(list.find((c) => c.contact.name === "u2")!.status, "resolved")
      }),
    60_000,
  )

  it.scopedLive("a snoozed conversation opens again at its time", () =>
    Effect.gen(function* () {
      const server = yield* startReplyServer({
        dataDir: yield* tempDir(),
        routing: { autoAssign: false },
      })
      const team = yield* addTeam(server.teams, "Support", "shop")
      yield* addOperator(server, { email: "ann@x.io", teamIds: [team.id] })
      yield* customersWrite(server, "shop", ["s1"])
      const ann = yield* signIn(server.url, "ann@x.io")
      const row = (yield* rows(server))[0]!
      const snoozed = yield* ann.api("POST", `/conversations/${row.id}/status`, {
        status: "snoozed",
        snoozedUntil: new Date(Date.now() + 1_500).toISOString(),
      })
      assert.strictEqual(snoozed.body.status, "pending")
      yield* eventually("open again", () =>
        rows(server).pipe(Effect.map((l) => l[0]!.status === "open")), "5 seconds")
    }), 60_000)

  it.scopedLive(
    "an online operator whose inbox is closed becomes offline; an open one keeps them online",
    () =>
      Effect.gen(function* () {
        const server = yield* startReplyServer({
          dataDir: yield* tempDir(),
          routing: { autoAssign: true, offlineAfterSeconds: 1 },
        })
        const team = yield* addTeam(server.teams, "Support", "shop")
        yield* addOperator(server, { email: "ann@x.io", teamIds: [team.id] })
        yield* addOperator(server, { email: "bob@x.io", teamIds: [team.id] })
        const ann = yield* signIn(server.url, "ann@x.io")
        const bob = yield* signIn(server.url, "bob@x.io")
        yield* ann.api("PUT", "/auth/presence", { presence: "online" })
        yield* bob.api("PUT", "/auth/presence", { presence: "online" })
        // Ann keeps her inbox open (its event stream); Bob opens his and closes it.
        const open = (cookie: string) =>
          Effect.acquireRelease(
            Effect.promise(async () => {
              const controller = new AbortController()
              const response = await fetch(`${server.url}/api/v1/events`, {
                headers: { cookie },
                signal: controller.signal,
              })
              return { controller, response }
            }),
            ({ controller }) => Effect.sync(() => controller.abort()),
          )
        yield* open(ann.cookie)
        yield* Effect.scoped(open(bob.cookie).pipe(Effect.zipRight(Effect.sleep("300 millis"))))
        const presenceOf = (email: string) =>
          request(`${server.url}/api/v1/operators`, { token: server.token }).pipe(
            Effect.map((r) =>
              (r.body as { operators: Array<{ email: string; presence: string }> }).operators
                .find((o) => o.email === email)?.presence
            ),
          )
        yield* eventually("Bob offline", () =>
          presenceOf("bob@x.io").pipe(Effect.map((p) => p === "offline")))
        yield* Effect.sleep("1500 millis")
        assert.strictEqual(yield* presenceOf("ann@x.io"), "online")
      }),
    60_000,
  )

  it.scopedLive(
    "customers are told their place in line once, when nobody can take them",
    () =>
      Effect.gen(function* () {
        const server = yield* startReplyServer({
          dataDir: yield* tempDir(),
          routing: { autoAssign: true, queueMessage: "You are number {position} in line." },
        })
        const team = yield* addTeam(server.teams, "Support", "shop")
        yield* addOperator(server, { email: "ann@x.io", teamIds: [team.id], presence: "away" })
        yield* customersWrite(server, "shop", ["p1", "p2"])
        const outgoing = (name: string) =>
          Effect.gen(function* () {
            const row = (yield* rows(server)).find((c) => c.contact.name === name)!
            const history = yield* request(
              `${server.url}/api/v1/conversations/${row.id}/messages`,
              {
                token: server.token,
              },
            )
            return (history.body as { messages: Array<{ direction: string; text: string }> })
              .messages.filter((m) => m.direction === "out").map((m) => m.text)
          })
        yield* eventually("both told", () =>
          Effect.all([outgoing("p1"), outgoing("p2")]).pipe(
            Effect.map(([a, b]) => a.length === 1 && b.length === 1),
          ))
        yield* Effect.sleep("2500 millis") // more passes: nobody is told twice
        assert.deepStrictEqual(yield* outgoing("p1"), ["You are number 1 in line."])
        assert.deepStrictEqual(yield* outgoing("p2"), ["You are number 2 in line."])
      }),
    60_000,
  )
})
