import * as NodeFs from "node:fs"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import { afterAll, assert, describe, it } from "vitest"
import { startChorus } from "../support/ChorusProcess.ts"

const dirs: Array<string> = []
const tmp = () => {
  const dir = NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), "chorus-token-"))
  dirs.push(dir)
  return dir
}
afterAll(() => {
  for (const dir of dirs) NodeFs.rmSync(dir, { recursive: true, force: true })
})

/** Run a `chorus` command to its end; stdout lines, stderr text and exit code. */
const run = async (args: ReadonlyArray<string>, cwd: string) => {
  const chorus = startChorus(args, { cwd })
  const code = await chorus.exited
  return { code, stdout: chorus.lines, stderr: chorus.stderr.join("") }
}

describe("chorus token", () => {
  it("token create prints a token once that a started chorus accepts; revoke locks it out", async () => {
    const cwd = tmp()
    const created = await run(["token", "create", "--name", "crm sync"], cwd)
    assert.strictEqual(created.code, 0, created.stderr)
    // stdout is the token alone (so `TOKEN=$(chorus token create …)` works); the notice is on stderr.
    assert.strictEqual(created.stdout.length, 1)
    const token = created.stdout[0]!
    assert.match(token, /^chorus_[0-9A-Za-z]{43}$/)
    assert.include(created.stderr, "cannot be shown again")

    const server = startChorus(["start"], { cwd, env: { CHORUS_HTTP_PORT: "0" } })
    try {
      const url = await server.ready
      const me = await fetch(`${url}/api/v1/tokens/me`, {
        headers: { authorization: `Bearer ${token}` },
      })
      assert.strictEqual(me.status, 200)
      assert.strictEqual((await me.json()).name, "crm sync")
      const anonymous = await fetch(`${url}/api/v1/tokens/me`)
      assert.strictEqual(anonymous.status, 401)
      assert.strictEqual(await anonymous.text(), "")

      const listed = await run(["token", "list"], cwd)
      assert.strictEqual(listed.code, 0, listed.stderr)
      assert.strictEqual(listed.stdout.length, 1)
      const entry = JSON.parse(listed.stdout[0]!)
      assert.strictEqual(entry.name, "crm sync")
      assert.strictEqual(entry.prefix, token.slice(0, 15))
      assert.isNotNull(entry.lastUsedAt)
      assert.notInclude(listed.stdout.join("\n"), token.slice(15))

      // Revoked from another process while the server runs: refused on the next request.
      const revoked = await run(["token", "revoke", "crm sync"], cwd)
      assert.strictEqual(revoked.code, 0, revoked.stderr)
      const after = await fetch(`${url}/api/v1/tokens/me`, {
        headers: { authorization: `Bearer ${token}` },
      })
      assert.strictEqual(after.status, 401)
    } finally {
      server.child.kill("SIGTERM")
      await server.exited
    }
  })

  it("refuses a duplicate name and an unknown token to revoke, with exit code 1", async () => {
    const cwd = tmp()
    assert.strictEqual((await run(["token", "create", "--name", "ci"], cwd)).code, 0)
    const again = await run(["token", "create", "--name", "ci"], cwd)
    assert.strictEqual(again.code, 1)
    assert.include(again.stderr, 'an active token named "ci" already exists')
    const missing = await run(["token", "revoke", "nope"], cwd)
    assert.strictEqual(missing.code, 1)
    assert.include(missing.stderr, 'no active token with the name or id "nope"')
    const help = await run(["token", "--help"], cwd)
    for (const command of ["create", "list", "revoke"]) {
      assert.include(help.stdout.join("\n"), command)
    }
  })
})
