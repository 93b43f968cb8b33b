/**
 * `chorus` as a child process, the way an integrator runs it: started with an environment,
 * its JSON log lines collected, its HTTP port learned from the "http listening" line.
 */
import { type ChildProcess, spawn } from "node:child_process"
import * as NodePath from "node:path"
import { pathToFileURL } from "node:url"

export const ROOT = NodePath.resolve(__dirname, "../..")

// A test that fails or times out must not leave its server running: whatever is still alive
// when the test worker exits is killed.
const alive = new Set<ChildProcess>()
process.on("exit", () => {
  for (const child of alive) child.kill("SIGKILL")
})

export interface ChorusProcess {
  readonly child: ChildProcess
  readonly lines: Array<string>
  readonly stderr: Array<string>
  /** Resolves with the HTTP base URL once the server listens. */
  readonly ready: Promise<string>
  /** Resolves with the exit code. */
  readonly exited: Promise<number | null>
}

/** Start `chorus <args>`; `command` defaults to the TypeScript CLI run through tsx. */
export const startChorus = (
  args: ReadonlyArray<string>,
  options: {
    env?: Record<string, string>
    cwd?: string
    command?: ReadonlyArray<string>
    /** Written to the child's standard input, which is then closed (default: no stdin). */
    input?: string
  } = {},
): ChorusProcess => {
  const [cmd, ...pre] = options.command ?? [
    process.execPath,
    // As `npm start` runs it (see README, "Performance").
    "--max-semi-space-size=64",
    "--import",
    // Absolute: a bare "tsx" would be resolved from the child's (temporary) working directory.
    pathToFileURL(NodePath.join(ROOT, "node_modules/tsx/dist/loader.mjs")).href,
    NodePath.join(ROOT, "core/cli/main.ts"),
  ]
  const child = spawn(cmd!, [...pre, ...args], {
    cwd: options.cwd ?? ROOT,
    env: { PATH: process.env["PATH"] ?? "", HOME: process.env["HOME"] ?? "/tmp", ...options.env },
    stdio: [options.input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
  })
  if (options.input !== undefined) child.stdin!.end(options.input)
  const lines: Array<string> = []
  const stderr: Array<string> = []
  let resolveReady!: (url: string) => void
  let rejectReady!: (e: Error) => void
  const ready = new Promise<string>((res, rej) => {
    resolveReady = res
    rejectReady = rej
  })
  let buffer = ""
  child.stdout!.on("data", (chunk: Buffer) => {
    buffer += chunk.toString()
    let nl: number
    while ((nl = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, nl)
      buffer = buffer.slice(nl + 1)
      lines.push(line)
      try {
        const entry = JSON.parse(line)
        if (entry.message === "http listening" && entry.annotations?.url) {
          resolveReady(entry.annotations.url)
        }
      } catch {
        // not JSON (pretty logs): ignore
      }
    }
  })
  child.stderr!.on("data", (chunk: Buffer) => stderr.push(chunk.toString()))
  alive.add(child)
  const exited = new Promise<number | null>((res) =>
    child.on("exit", (code) => {
      alive.delete(child)
      res(code)
    })
  )
  // Commands that never listen (migrate, --help) leave `ready` unused: don't report it unhandled.
  ready.catch(() => undefined)
  exited.then((code) =>
    rejectReady(
      new Error(
        `chorus exited (${code}) before listening:\n${stderr.join("")}\n${lines.join("\n")}`,
      ),
    )
  )
  return { child, lines, stderr, ready, exited }
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/** Poll until `check` holds or the time is up; answers whether it held. */
export const waitFor = async (check: () => boolean, withinMs: number, everyMs = 20) => {
  const deadline = Date.now() + withinMs
  while (!check()) {
    if (Date.now() > deadline) return false
    await sleep(everyMs)
  }
  return true
}

/** SIGKILL a chorus child (if it still runs) and wait for it to go. */
export const killHard = async (chorus: ChorusProcess) => {
  if (chorus.child.exitCode === null && chorus.child.signalCode === null) {
    chorus.child.kill("SIGKILL")
    await chorus.exited
  }
}

/** Run a chorus command to its end: exit code, stdout lines, stderr. */
export const runChorus = async (
  args: ReadonlyArray<string>,
  options: Parameters<typeof startChorus>[1] = {},
) => {
  const chorus = startChorus(args, options)
  const code = await chorus.exited
  return { code, stdout: chorus.lines, stderr: chorus.stderr.join("") }
}
