import * as NodeFs from "node:fs"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import { assert, describe, it } from "vitest"
import { startChorus } from "../support/ChorusProcess.ts"

const tmp = () => NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), "chorus-cli-"))

describe("chorus command", () => {
  it("start with no configuration creates ./data, answers /health and /ready, stops cleanly on SIGTERM", async () => {
    const cwd = tmp()
    const chorus = startChorus(["start"], { cwd, env: { CHORUS_HTTP_PORT: "0" } })
    const url = await chorus.ready
    const health = await fetch(`${url}/health`)
    assert.strictEqual(health.status, 200)
    assert.strictEqual((await health.json()).status, "ok")
    const ready = await (await fetch(`${url}/ready`)).json()
    assert.strictEqual(ready.status, "ready")
    assert.strictEqual(ready.store.backend, "sqlite")
    assert.strictEqual(ready.bus.backend, "embedded")
    assert.isTrue(NodeFs.existsSync(NodePath.join(cwd, "data", "chorus.sqlite")))
    // Logs are JSON lines with a level and a message.
    const started = chorus.lines.map((l) => JSON.parse(l)).find((e) =>
      e.message === "chorus starting"
    )
    assert.strictEqual(started.logLevel, "INFO")
    chorus.child.kill("SIGTERM")
    assert.strictEqual(await chorus.exited, 0)
  })

  it("a bad value stops start-up with the key, the value and what was expected (exit 2)", async () => {
    const chorus = startChorus(["start"], {
      cwd: tmp(),
      env: { CHORUS_HTTP_PORT: "eighty", CHORUS_LOG_LEVEL: "loud" },
    })
    assert.strictEqual(await chorus.exited, 2)
    const err = chorus.stderr.join("")
    assert.include(
      err,
      'CHORUS_HTTP_PORT (http.port): got "eighty", expected an integer from 0 to 65535',
    )
    assert.include(err, 'CHORUS_LOG_LEVEL (log.level): got "loud"')
  })

  it("migrate applies the core migrations once", async () => {
    const cwd = tmp()
    const first = startChorus(["migrate"], { cwd })
    assert.strictEqual(await first.exited, 0)
    assert.match(first.lines.join("\n"), /chorus_migrations: applied .*embedded_bus/)
    const second = startChorus(["migrate"], { cwd })
    assert.strictEqual(await second.exited, 0)
    assert.include(second.lines.join("\n"), "chorus_migrations: up to date")
  })

  it("--help lists the commands", async () => {
    const help = startChorus(["--help"], { cwd: tmp() })
    assert.strictEqual(await help.exited, 0)
    const out = help.lines.join("\n")
    for (const command of ["start", "migrate", "config", "dead-letters"]) {
      assert.include(out, command)
    }
  })
})
