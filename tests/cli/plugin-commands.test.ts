/**
 * `chorus plugin …` against a real server in a child process: `new` scaffolds a plugin into
 * ./plugins, the server started there runs it, and `list`, `disable`, `enable`, `reload` change
 * and show its state through the plugins API with a bearer token; every error is one line on
 * stderr and a non-zero exit.
 */
import * as NodeFs from "node:fs"
import * as NodeNet from "node:net"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import { afterAll, assert, beforeAll, describe, it } from "vitest"
import { unknownEnvVariables } from "../../core/config/loadConfig.ts"
import { type ChorusProcess, startChorus } from "../support/ChorusProcess.ts"

const cwd = NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), "chorus-plugin-cli-"))
let server: ChorusProcess
let url = ""
let token = ""

/** `chorus <args>` in `cwd`, to its end. */
const chorus = async (args: ReadonlyArray<string>, env: Record<string, string> = {}) => {
  const run = startChorus(args, { cwd, env })
  const code = await run.exited
  return { code, stdout: run.lines.join("\n"), stderr: run.stderr.join("") }
}

/** `--url` and `--token` of the server under test. */
const at = () => ["--url", url, "--token", token]

const stateOf = async (id: string) => {
  const r = await fetch(`${url}/api/v1/plugins/${id}`, {
    headers: { authorization: `Bearer ${token}` },
  })
  return (await r.json()) as { state: string; generation: number; enabled: boolean }
}

describe("chorus plugin", () => {
  beforeAll(async () => {
    const created = await chorus(["plugin", "new", "echo", "--kind", "bot"])
    assert.strictEqual(created.code, 0, created.stderr)
    const made = await chorus(["token", "create", "--name", "cli"])
    assert.strictEqual(made.code, 0, made.stderr)
    token = made.stdout.trim()
    server = startChorus(["start"], { cwd, env: { CHORUS_HTTP_PORT: "0" } })
    url = await server.ready
  }, 120_000)

  afterAll(async () => {
    server?.child.kill("SIGTERM")
    await server?.exited
    NodeFs.rmSync(cwd, { recursive: true, force: true })
  })

  it("new writes a plugin into ./plugins/<name>/, and refuses an existing one or a bad name", async () => {
    const dir = NodePath.join(cwd, "plugins", "echo")
    assert.deepStrictEqual(NodeFs.readdirSync(dir).sort(), [
      "README.md",
      "chorus.plugin.json",
      "index.mjs",
      "index.test.mjs",
    ])
    const test = NodeFs.readFileSync(NodePath.join(dir, "index.test.mjs"), "utf8")
    const kit = /from "([^"]+TestKit\.ts)"/.exec(test)![1]!
    assert.isTrue(NodeFs.existsSync(NodePath.resolve(dir, kit)), kit)

    const before = NodeFs.readFileSync(NodePath.join(dir, "index.mjs"), "utf8")
    const again = await chorus(["plugin", "new", "echo", "--kind", "channel"])
    assert.strictEqual(again.code, 1)
    assert.include(again.stderr, "plugins/echo already exists; nothing was written")
    assert.strictEqual(NodeFs.readFileSync(NodePath.join(dir, "index.mjs"), "utf8"), before)

    const bad = await chorus(["plugin", "new", "My-Bot", "--kind", "bot"])
    assert.strictEqual(bad.code, 1)
    assert.include(bad.stderr, '"My-Bot" is not a valid plugin id')
    assert.isFalse(NodeFs.existsSync(NodePath.join(cwd, "plugins", "My-Bot")))

    const elsewhere = await chorus(["plugin", "new", "counts", "--kind", "analytics", "--dir", "x"])
    assert.strictEqual(elsewhere.code, 0, elsewhere.stderr)
    assert.include(elsewhere.stdout, "Created analytics plugin counts in x/counts/")
    assert.isTrue(NodeFs.existsSync(NodePath.join(cwd, "x", "counts", "chorus.plugin.json")))
  })

  it("list shows the server's plugins as a table, or as JSON", async () => {
    const list = await chorus(["plugin", "list", ...at()])
    assert.strictEqual(list.code, 0, list.stderr)
    const lines = list.stdout.split("\n")
    assert.match(lines[0]!, /^ID\s+VERSION\s+MODE\s+STATE\s+RESTARTS\s+LAST ERROR$/)
    assert.match(lines[1]!, /^echo\s+0\.1\.0\s+worker\s+active\s+0\s+-$/)

    const json = await chorus(["plugin", "list", "--json", ...at()])
    const plugins = JSON.parse(json.stdout)
    assert.deepStrictEqual(plugins.map((p: { id: string }) => p.id), ["echo"])
    assert.strictEqual(plugins[0].state, "active")
  })

  it("disable, enable and reload change the plugin's state on the server", async () => {
    const disabled = await chorus(["plugin", "disable", "echo", ...at()])
    assert.strictEqual(disabled.code, 0, disabled.stderr)
    assert.strictEqual(disabled.stdout, "echo 0.1.0: disabled")
    assert.deepInclude(await stateOf("echo"), { state: "disabled", enabled: false })
    assert.match(
      (await chorus(["plugin", "list", ...at()])).stdout,
      /echo\s+0\.1\.0\s+worker\s+disabled/,
    )

    const refused = await chorus(["plugin", "reload", "echo", ...at()])
    assert.strictEqual(refused.code, 1)
    assert.strictEqual(
      refused.stderr.trim(),
      "chorus: plugin echo: it is disabled; enable it instead",
    )

    const enabled = await chorus(["plugin", "enable", "echo", ...at()])
    assert.strictEqual(enabled.code, 0, enabled.stderr)
    assert.strictEqual(enabled.stdout, "echo 0.1.0: active")
    const before = await stateOf("echo")
    assert.deepInclude(before, { state: "active", enabled: true })

    const reloaded = await chorus(["plugin", "reload", "echo", "--json", ...at()])
    assert.strictEqual(reloaded.code, 0, reloaded.stderr)
    const status = JSON.parse(reloaded.stdout)
    assert.strictEqual(status.state, "active")
    assert.strictEqual(status.generation, before.generation + 1)
    assert.strictEqual((await stateOf("echo")).generation, before.generation + 1)
  })

  it("takes the server and the token from CHORUS_URL/CHORUS_TOKEN, or the port from the config", async () => {
    const fromEnv = await chorus(["plugin", "list"], { CHORUS_URL: url, CHORUS_TOKEN: token })
    assert.strictEqual(fromEnv.code, 0, fromEnv.stderr)
    assert.include(fromEnv.stdout, "echo")
    const port = new URL(url).port
    const fromConfig = await chorus(["plugin", "list"], {
      CHORUS_HTTP_PORT: port,
      CHORUS_TOKEN: token,
    })
    assert.strictEqual(fromConfig.code, 0, fromConfig.stderr)
    assert.include(fromConfig.stdout, "echo")
  })

  it("CHORUS_URL and CHORUS_TOKEN are not taken for misspelt settings when the server starts", () => {
    const env = { CHORUS_URL: url, CHORUS_TOKEN: token, CHORUS_HTTP_PROT: "1" }
    assert.deepStrictEqual(unknownEnvVariables(env), ["CHORUS_HTTP_PROT"])
  })

  it("says in one line what went wrong: unknown plugin, bad or no token, no server", async () => {
    const unknown = await chorus(["plugin", "enable", "nope", ...at()])
    assert.strictEqual(unknown.code, 1)
    assert.strictEqual(unknown.stderr.trim(), `chorus: no plugin nope on the server at ${url}`)

    const badToken = await chorus(["plugin", "list", "--url", url, "--token", "chorus_wrong"])
    assert.strictEqual(badToken.code, 1)
    assert.match(badToken.stderr.trim(), /^chorus: the server at .* refused the API token \(401\)/)
    assert.notInclude(badToken.stderr.trim(), "\n")

    const noToken = await chorus(["plugin", "list", "--url", url])
    assert.strictEqual(noToken.code, 1)
    assert.include(noToken.stderr, "no API token: pass --token or set CHORUS_TOKEN")

    // A port nobody listens on: taken, then given back.
    const free = NodeNet.createServer()
    await new Promise<void>((resolve) => free.listen(0, "127.0.0.1", resolve))
    const port = (free.address() as NodeNet.AddressInfo).port
    await new Promise((resolve) => free.close(resolve))
    const downUrl = `http://127.0.0.1:${port}`
    const down = await chorus(["plugin", "list", "--url", downUrl, "--token", token])
    assert.strictEqual(down.code, 1)
    assert.strictEqual(
      down.stderr.trim(),
      `chorus: cannot reach the Chorus server at ${downUrl} (ECONNREFUSED); is it running? ` +
        "Point at it with --url or CHORUS_URL",
    )
  })
})
