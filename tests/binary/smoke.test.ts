/**
 * The single binary (`npm run build:binary` → dist/chorus) runs on its own: copied alone into an
 * empty directory outside the repository, with an environment holding no NODE_PATH (nor
 * anything else but the port), it starts, creates its SQLite database from the extracted
 * addon, answers `GET /health`, and stops cleanly on SIGTERM.
 *
 * Builds the binary first if dist/chorus is missing; delete it to test a fresh build.
 */
import { assert, beforeAll, describe, it } from "@effect/vitest"
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..")
const binary = path.join(root, "dist", "chorus")
const BUILD_TIMEOUT_MS = 5 * 60_000
const HEALTHY_WITHIN_MS = 20_000
const EXIT_WITHIN_MS = 5_000

const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = net.createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      server.close(() => resolve(port))
    })
  })

/** A fresh directory under the OS temp dir holding only a copy of the binary. */
const isolatedCopy = (): { dir: string; exe: string } => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "chorus-binary-"))
  const exe = path.join(dir, "chorus")
  fs.copyFileSync(binary, exe)
  fs.chmodSync(exe, 0o755)
  return { dir, exe }
}

const exited = (child: ChildProcess, withinMs: number) =>
  new Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number }>(
    (resolve, reject) => {
      const started = performance.now()
      const timer = setTimeout(
        () => reject(new Error(`chorus did not exit within ${withinMs} ms`)),
        withinMs,
      )
      child.once("exit", (code, signal) => {
        clearTimeout(timer)
        resolve({ code, signal, ms: Math.round(performance.now() - started) })
      })
    },
  )

const healthStatus = async (url: string): Promise<number | undefined> => {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(1_000) })
    await response.arrayBuffer()
    return response.status
  } catch {
    return undefined
  }
}

describe("single binary", () => {
  beforeAll(() => {
    if (fs.existsSync(binary)) return
    const started = performance.now()
    execFileSync("npm", ["run", "build:binary"], { cwd: root, stdio: "inherit" })
    console.log(`built dist/chorus in ${Math.round(performance.now() - started)} ms`)
  }, BUILD_TIMEOUT_MS)

  it("prints usage for --help", () => {
    const { dir, exe } = isolatedCopy()
    try {
      const usage = execFileSync(exe, ["--help"], { cwd: dir, env: {}, encoding: "utf8" })
      assert.include(usage, "USAGE")
      assert.include(usage, "start")
      assert.include(usage, "migrate")
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })

  it("starts from an empty directory, answers /health, and exits 0 on SIGTERM", async () => {
    const { dir, exe } = isolatedCopy()
    const port = await freePort()
    let output = ""
    const started = performance.now()
    const child = spawn(exe, ["start"], {
      cwd: dir,
      // Nothing inherited: no NODE_PATH, NODE_OPTIONS or anything pointing into the repository.
      env: { CHORUS_HTTP_PORT: String(port) },
      stdio: ["ignore", "pipe", "pipe"],
    })
    child.stdout?.on("data", (chunk) => (output += chunk))
    child.stderr?.on("data", (chunk) => (output += chunk))
    try {
      let status: number | undefined
      while (status !== 200) {
        assert.isNull(child.exitCode, `chorus exited early:\n${output}`)
        assert.isBelow(
          performance.now() - started,
          HEALTHY_WITHIN_MS,
          `no 200 from /health:\n${output}`,
        )
        status = await healthStatus(`http://127.0.0.1:${port}/health`)
        if (status !== 200) await new Promise((resolve) => setTimeout(resolve, 25))
      }
      const firstHealthyMs = Math.round(performance.now() - started)

      assert.isTrue(fs.statSync(path.join(dir, "data")).isDirectory(), "./data was created")
      assert.isTrue(
        fs.statSync(path.join(dir, "data", "chorus.sqlite")).size > 0,
        "./data/chorus.sqlite was created",
      )
      assert.isTrue(
        fs.readdirSync(path.join(dir, "data", "native")).some((f) =>
          /^better_sqlite3-.*\.node$/.test(f)
        ),
        "the SQLite addon was extracted to ./data/native",
      )

      const exit = exited(child, EXIT_WITHIN_MS)
      child.kill("SIGTERM")
      const { code, signal, ms } = await exit
      assert.strictEqual(signal, null, output)
      assert.strictEqual(code, 0, output)

      const sizeMb = (fs.statSync(exe).size / 1e6).toFixed(1)
      console.log(
        `dist/chorus: ${sizeMb} MB; first 200 from /health after ${firstHealthyMs} ms; ` +
          `exit after SIGTERM in ${ms} ms`,
      )
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL")
      fs.rmSync(dir, { recursive: true, force: true })
    }
  }, HEALTHY_WITHIN_MS + EXIT_WITHIN_MS + 10_000)

  it(
    "runs a plugin from ./plugins and its built-in plugins in worker threads, without the repository",
    async () => {
      const { dir, exe } = isolatedCopy()
      const pluginDir = path.join(dir, "plugins", "hello")
      fs.mkdirSync(pluginDir, { recursive: true })
      fs.writeFileSync(
        path.join(pluginDir, "chorus.plugin.json"),
        JSON.stringify({
          id: "hello",
          version: "1.0.0",
          engines: { chorus: "^1.0.0" },
          entry: "index.mjs",
          kind: "integration",
          contributes: { routes: [{ method: "GET", path: "/plugins/hello/who" }] },
        }),
      )
      fs.writeFileSync(
        path.join(pluginDir, "index.mjs"),
        `export async function activate(chorus) {
        const { isMainThread } = await import("node:worker_threads")
        await chorus.routes.handle("GET", "/plugins/hello/who", () => ({
          body: { mode: chorus.mode, inWorker: !isMainThread },
        }))
      }`,
      )
      const port = await freePort()
      let output = ""
      const child = spawn(exe, ["start"], {
        cwd: dir,
        env: { CHORUS_HTTP_PORT: String(port) },
        stdio: ["ignore", "pipe", "pipe"],
      })
      child.stdout?.on("data", (chunk) => (output += chunk))
      child.stderr?.on("data", (chunk) => (output += chunk))
      try {
        const started = performance.now()
        let body: unknown
        while (body === undefined) {
          assert.isNull(child.exitCode, `chorus exited early:\n${output}`)
          assert.isBelow(performance.now() - started, HEALTHY_WITHIN_MS, `no answer:\n${output}`)
          try {
            const response = await fetch(`http://127.0.0.1:${port}/plugins/hello/who`)
            if (response.status === 200) body = await response.json()
            else await response.arrayBuffer()
          } catch {
            // not listening yet
          }
          if (body === undefined) await new Promise((resolve) => setTimeout(resolve, 50))
        }
        assert.deepStrictEqual(body, { mode: "worker", inWorker: true })
        // The plugins of the source tree ride inside the binary (bundled with their
        // dependencies), extracted to the data directory and started from there.
        const telegramActive = output.split("\n").some((line) =>
          line.includes('"plugin active"') && line.includes('"plugin":"telegram"')
        )
        assert.isTrue(telegramActive, `the built-in telegram plugin is active:\n${output}`)
        // The widget plugin's own files ride along too: its script is served.
        const widget = await fetch(`http://127.0.0.1:${port}/plugins/widget/widget.js`)
        assert.strictEqual(widget.status, 200, output)
        assert.include(await widget.text(), "/plugins/widget/ws/")
        assert.isTrue(
          fs.readdirSync(path.join(dir, "data", "plugins-builtin")).length === 1,
          "extracted once to data/plugins-builtin",
        )
      } finally {
        if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL")
        fs.rmSync(dir, { recursive: true, force: true })
      }
    },
    HEALTHY_WITHIN_MS + 10_000,
  )
})
