/**
 * People and teams over the API: an admin adds operators and teams, gives a team an inbox and
 * members, changes roles (in force at the next request), disables people (signed out at once);
 * the last admin cannot be demoted; an operator changes their own password.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { request } from "../api/ApiServer.ts"
import { eventually, startReplyServer } from "../api/ReplyServer.ts"
import { tempDir } from "../support/TestDatabase.ts"
import { addOperator, login, PASSWORD, signIn } from "./InboxClient.ts"

describe("people API", () => {
  it.scopedLive(
    "an admin sets up a team with an inbox and an operator, who then sees its conversations",
    () =>
      Effect.gen(function* () {
        const server = yield* startReplyServer({
          dataDir: yield* tempDir(),
          routing: { autoAssign: false },
        })
        yield* addOperator(server, { email: "root@x.io", role: "admin" })
        const root = yield* signIn(server.url, "root@x.io")

        const weak = yield* root.api("POST", "/operators", {
          email: "ann@x.io",
          name: "Ann",
          password: "short",
        })
        assert.deepStrictEqual([weak.status, weak.body.field], [422, "password"])
        const ann = yield* root.api("POST", "/operators", {
          email: " Ann@X.io ",
          name: "Ann",
          password: PASSWORD,
          capacity: 4,
        })
        assert.strictEqual(ann.status, 201, JSON.stringify(ann.body))
        assert.deepStrictEqual([ann.body.email, ann.body.role, ann.body.capacity], [
          "ann@x.io",
          "operator",
          4,
        ])
        const again = yield* root.api("POST", "/operators", {
          email: "ann@x.io",
          name: "A",
          password: PASSWORD,
        })
        assert.deepStrictEqual([again.status, again.body.field], [409, "email"])

        const team = yield* root.api("POST", "/teams", { name: "Support" })
        assert.strictEqual(team.status, 201)
        const member = yield* root.api("PUT", `/teams/${team.body.id}/members/${ann.body.id}`)
        assert.deepStrictEqual(member.body.memberIds, [ann.body.id])
        const inbox = yield* root.api("POST", `/teams/${team.body.id}/inboxes`, {
          channel: "api",
          account: "*",
        })
        assert.deepStrictEqual(inbox.body.inboxes, [{ channel: "api", account: "*" }])

        const sent = yield* request(`${server.url}/api/v1/inbound`, {
          token: server.token,
          body: {
            account: "shop",
            sender: { id: "c1", name: "Carl" },
            externalId: "m1",
            text: "hi",
          },
        })
        assert.strictEqual(sent.status, 202)
        const annSession = yield* signIn(server.url, "ann@x.io")
        yield* eventually("Ann sees Carl", () =>
          annSession.api("GET", "/inbox/conversations").pipe(
            Effect.map((r) => r.body.conversations.length === 1),
          ))
        // Operators cannot manage people.
        assert.strictEqual((yield* annSession.api("POST", "/teams", { name: "Mine" })).status, 403)
      }),
    60_000,
  )

  it.scopedLive(
    "role changes apply at the next request; disabling signs out; the last admin stays",
    () =>
      Effect.gen(function* () {
        const server = yield* startReplyServer({
          dataDir: yield* tempDir(),
          routing: { autoAssign: false },
        })
        const rootOperator = yield* addOperator(server, { email: "root@x.io", role: "admin" })
        const annOperator = yield* addOperator(server, { email: "ann@x.io" })
        const root = yield* signIn(server.url, "root@x.io")
        const ann = yield* signIn(server.url, "ann@x.io")
        assert.strictEqual((yield* ann.api("GET", "/queue")).status, 403)
        const promoted = yield* root.api("PATCH", `/operators/${annOperator.id}`, {
          role: "supervisor",
        })
        assert.strictEqual(promoted.body.role, "supervisor")
        assert.strictEqual((yield* ann.api("GET", "/queue")).status, 200)

        const lastAdmin = yield* root.api("PATCH", `/operators/${rootOperator.id}`, {
          role: "operator",
        })
        assert.strictEqual(lastAdmin.status, 409)

        const disabled = yield* root.api("PATCH", `/operators/${annOperator.id}`, {
          disabled: true,
        })
        assert.strictEqual(disabled.body.disabled, true)
        assert.strictEqual((yield* ann.api("GET", "/auth/session")).status, 401)
        assert.strictEqual((yield* login(server.url, { email: "ann@x.io" })).status, 401)
      }),
    60_000,
  )

  it.scopedLive(
    "an operator changes their own password: the current one is needed; sessions end",
    () =>
      Effect.gen(function* () {
        const server = yield* startReplyServer({ dataDir: yield* tempDir() })
        yield* addOperator(server, { email: "ann@x.io" })
        const ann = yield* signIn(server.url, "ann@x.io")
        const wrong = yield* ann.api("POST", "/auth/password", {
          currentPassword: "not it at all",
          newPassword: "a brand new secret",
        })
        assert.deepStrictEqual([wrong.status, wrong.body.field], [422, "currentPassword"])
        const changed = yield* ann.api("POST", "/auth/password", {
          currentPassword: PASSWORD,
          newPassword: "a brand new secret",
        })
        assert.strictEqual(changed.status, 204)
        assert.strictEqual((yield* ann.api("GET", "/auth/session")).status, 401)
        assert.strictEqual((yield* login(server.url, { email: "ann@x.io" })).status, 401)
        const fresh = yield* login(server.url, {
          email: "ann@x.io",
          password: "a brand new secret",
        })
        assert.strictEqual(fresh.status, 200)
      }),
    60_000,
  )
})
