import * as NodeFs from "node:fs"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import { Effect, Redacted } from "effect"
import { afterAll, assert, describe, it } from "vitest"
import { accountsOver } from "../accounts/AccountsTest.ts"
import { startChorus } from "../support/ChorusProcess.ts"
import { sqliteDatabase } from "../support/TestDatabase.ts"

const dirs: Array<string> = []
const tmp = () => {
  const dir = NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), "chorus-accounts-"))
  dirs.push(dir)
  return dir
}
afterAll(() => {
  for (const dir of dirs) NodeFs.rmSync(dir, { recursive: true, force: true })
})

/** Run a `chorus` command to its end; stdout lines, stderr text and exit code. */
const run = async (args: ReadonlyArray<string>, cwd: string, input?: string) => {
  const chorus = startChorus(args, { cwd, ...(input !== undefined ? { input } : {}) })
  const code = await chorus.exited
  return { code, stdout: chorus.lines, stderr: chorus.stderr.join("") }
}

/** Sign in through the accounts services, over the data dir's SQLite file. */
const signIn = (cwd: string, email: string, password: string) =>
  Effect.runPromise(
    Effect.scoped(
      Effect.gen(function* () {
        const db = yield* sqliteDatabase(NodePath.join(cwd, "data", "chorus.sqlite"))
        const { sessions } = yield* accountsOver(db)
        const { info, token } = yield* sessions.signIn({ email, password })
        return { email: info.operator.email, token: Redacted.value(token) }
      }),
    ).pipe(Effect.either),
  )

describe("chorus user and team", () => {
  it(
    "user add reads the password from stdin; the operator signs in with it; list shows no hashes",
    async () => {
      const cwd = tmp()
      const added = await run(
        [
          "user",
          "add",
          "--email",
          "Ann@Example.com",
          "--name",
          "Ann",
          "--role",
          "admin",
          "--password-stdin",
        ],
        cwd,
        "correct horse battery\n",
      )
      assert.strictEqual(added.code, 0, added.stderr)
      assert.strictEqual(added.stdout.length, 1)
      const ann = JSON.parse(added.stdout[0]!)
      assert.deepInclude(ann, { email: "ann@example.com", name: "Ann", role: "admin", capacity: 6 })

      const second = await run(
        [
          "user",
          "add",
          "--email",
          "bob@example.com",
          "--name",
          "Bob",
          "--capacity",
          "3",
          "--password-stdin",
        ],
        cwd,
        "another good password",
      )
      assert.strictEqual(second.code, 0, second.stderr)
      assert.deepInclude(JSON.parse(second.stdout[0]!), { role: "operator", capacity: 3 })

      const listed = await run(["user", "list"], cwd)
      assert.strictEqual(listed.code, 0, listed.stderr)
      assert.deepStrictEqual(listed.stdout.map((l) => JSON.parse(l).email), [
        "ann@example.com",
        "bob@example.com",
      ])
      assert.notInclude(listed.stdout.join("\n"), "scrypt")
      assert.notInclude(listed.stdout.join("\n"), "password")

      const session = await signIn(cwd, "ann@example.com", "correct horse battery")
      assert.strictEqual(session._tag, "Right")
      const wrong = await signIn(cwd, "ann@example.com", "correct horse batterY")
      assert.strictEqual(
        wrong._tag === "Left" ? wrong.left._tag : "signed in",
        "InvalidCredentials",
      )

      // Refusals: a taken e-mail, a weak password, no terminal to ask on, the last admin.
      const taken = await run(
        ["user", "add", "--email", "ann@example.com", "--name", "A", "--password-stdin"],
        cwd,
        "x",
      )
      assert.strictEqual(taken.code, 1)
      assert.include(taken.stderr, 'an operator with the e-mail "ann@example.com" already exists')
      const weak = await run(
        ["user", "add", "--email", "c@example.com", "--name", "C", "--password-stdin"],
        cwd,
        "short\n",
      )
      assert.strictEqual(weak.code, 1)
      assert.include(weak.stderr, "password refused (too short)")
      const noTerminal = await run(["user", "add", "--email", "c@example.com", "--name", "C"], cwd)
      assert.strictEqual(noTerminal.code, 1)
      assert.include(noTerminal.stderr, "--password-stdin")
      const lastAdmin = await run(["user", "disable", "--email", "ann@example.com"], cwd)
      assert.strictEqual(lastAdmin.code, 1)
      assert.include(lastAdmin.stderr, "last enabled admin")
    },
    180_000,
  )

  it("passwd, logout and disable end the operator's sessions", async () => {
    const cwd = tmp()
    const add = await run(
      ["user", "add", "--email", "bob@example.com", "--name", "Bob", "--password-stdin"],
      cwd,
      "first long password\n",
    )
    assert.strictEqual(add.code, 0, add.stderr)
    assert.strictEqual((await signIn(cwd, "bob@example.com", "first long password"))._tag, "Right")
    const logout = await run(["user", "logout", "--email", "bob@example.com"], cwd)
    assert.strictEqual(logout.code, 0, logout.stderr)
    assert.include(logout.stdout.join(""), "(1 sessions)")

    const passwd = await run(
      ["user", "passwd", "--email", "BOB@example.com", "--password-stdin"],
      cwd,
      "second long password\r\n",
    )
    assert.strictEqual(passwd.code, 0, passwd.stderr)
    assert.strictEqual((await signIn(cwd, "bob@example.com", "first long password"))._tag, "Left")
    assert.strictEqual((await signIn(cwd, "bob@example.com", "second long password"))._tag, "Right")

    const disabled = await run(["user", "disable", "--email", "bob@example.com"], cwd)
    assert.strictEqual(disabled.code, 0, disabled.stderr)
    assert.strictEqual((await signIn(cwd, "bob@example.com", "second long password"))._tag, "Left")
    const enabled = await run(["user", "enable", "--email", "bob@example.com"], cwd)
    assert.strictEqual(enabled.code, 0, enabled.stderr)
    assert.strictEqual((await signIn(cwd, "bob@example.com", "second long password"))._tag, "Right")
    const unknown = await run(["user", "totp-reset", "--email", "nobody@example.com"], cwd)
    assert.strictEqual(unknown.code, 1)
    assert.include(unknown.stderr, 'no operator with the e-mail "nobody@example.com"')
  }, 180_000)

  it("team add, member add, inbox add (moving it from another team), list", async () => {
    const cwd = tmp()
    const steps: Array<[ReadonlyArray<string>, string?]> = [
      [
        ["user", "add", "--email", "ann@example.com", "--name", "Ann", "--password-stdin"],
        "correct horse battery",
      ],
      [["team", "add", "Support"]],
      [["team", "add", "VIP"]],
      [["team", "member", "add", "--team", "Support", "--email", "ann@example.com"]],
      [["team", "inbox", "add", "--team", "Support", "--inbox", "telegram:*"]],
      [["team", "inbox", "add", "--team", "Support", "--inbox", "email:help@acme.test"]],
      [["team", "inbox", "add", "--team", "VIP", "--inbox", "telegram:*"]],
    ]
    const outputs: Array<string> = []
    for (const [args, input] of steps) {
      const result = await run(args, cwd, input)
      assert.strictEqual(result.code, 0, `${args.join(" ")}: ${result.stderr}`)
      outputs.push(result.stdout.join("\n"))
    }
    assert.strictEqual(JSON.parse(outputs[1]!).name, "Support")
    assert.strictEqual(outputs[3], "added ann@example.com to Support")
    assert.strictEqual(outputs[4], "Support now owns telegram:*")
    assert.strictEqual(outputs[6], "VIP now owns telegram:* (moved from Support)")

    const listed = await run(["team", "list"], cwd)
    assert.strictEqual(listed.code, 0, listed.stderr)
    const teams = listed.stdout.map((l) => JSON.parse(l))
    assert.deepStrictEqual(
      teams.map((t) => [t.name, t.members, t.inboxes]),
      [
        ["Support", ["ann@example.com"], ["email:help@acme.test"]],
        ["VIP", [], ["telegram:*"]],
      ],
    )
    const users = await run(["user", "list"], cwd)
    assert.deepStrictEqual(JSON.parse(users.stdout[0]!).teamIds, [teams[0].id])

    const badInbox = await run(
      ["team", "inbox", "add", "--team", "VIP", "--inbox", "telegram"],
      cwd,
    )
    assert.strictEqual(badInbox.code, 1)
    assert.include(badInbox.stderr, "expected --inbox channel:account")
    const noTeam = await run([
      "team",
      "member",
      "add",
      "--team",
      "Nope",
      "--email",
      "ann@example.com",
    ], cwd)
    assert.strictEqual(noTeam.code, 1)
    assert.include(noTeam.stderr, 'no team named "Nope"')
  }, 180_000)
})
