/**
 * Where a plugin version runs, and the frame link to it (`guest/Protocol.ts`):
 *
 * - `inprocess`: the guest runtime runs in the host's own isolate. Fastest (no copies), no
 *   protection at all: a throw outside a handler, a blocked event loop or a leak is the host's.
 *   A reload imports the entry again under a new URL, and Node keeps every imported version.
 * - `worker`: a worker thread per plugin version, with its own heap (capped), its own empty
 *   `process.env`, and its own module graph that goes away with the thread, so reloads do not
 *   grow the host. It shares the process: it can still open files and sockets itself.
 * - `deno`: a Deno subprocess per plugin version, run with `--allow-read=<plugin dir>`,
 *   `--allow-net=<permissions.net>` and nothing else (no env, no run, no ffi, no write): the
 *   runtime itself refuses what the manifest does not declare.
 */
import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process"
import * as NodeFs from "node:fs"
import { createRequire } from "node:module"
import * as NodePath from "node:path"
import { pathToFileURL } from "node:url"
import { Worker } from "node:worker_threads"
import type { PluginMode } from "./guest/Api.ts"
import { decodeJson, encodeJson, type Link, runGuest } from "./guest/Guest.ts"
import { guestModuleFile } from "./guest/GuestSource.ts"
import { type Frame, FRAME_MARK } from "./guest/Protocol.ts"

export interface GuestProcess {
  readonly mode: PluginMode
  /** The host's end of the link. */
  readonly link: Link
  /** Settles (never rejects) with why the guest ended: a crash, an exit, or `terminate`. */
  readonly exited: Promise<string>
  /** End the guest now (a worker or subprocess is killed); resolves once it is gone. */
  readonly terminate: () => Promise<void>
}

export interface GuestOptions {
  readonly mode: PluginMode
  readonly plugin: string
  /** The entry module's file (a TypeScript one needs tsx in a worker). */
  readonly entry: string
  /** The plugin's directory (Deno may read it). */
  readonly dir: string
  /** Hosts for Deno's `--allow-net` (wildcard patterns are left out: Deno has no such form). */
  readonly netHosts: ReadonlyArray<string>
  /** Heap cap of a worker or Deno guest, in MiB. */
  readonly maxHeapMb: number
  /** The `deno` executable. */
  readonly denoPath: string
  /** Where the guest runtime module and Deno's cache are written. */
  readonly runtimeDir: string
  /** A line the guest printed (Deno's stderr, stray stdout). */
  readonly onOutput: (line: string) => void
}

/** The `deno` of the npm package when installed, else `deno` on the PATH. */
export const defaultDenoPath = (): string => {
  try {
    const pkg = createRequire(import.meta.url).resolve("deno/package.json")
    const binary = NodePath.join(NodePath.dirname(pkg), "deno")
    if (NodeFs.existsSync(binary)) return binary
  } catch {
    // not installed as a package (the single binary): the PATH's
  }
  return "deno"
}

const inProcess = (): GuestProcess => {
  let toGuest: (frame: Frame) => void = () => {}
  let toHost: (frame: Frame) => void = () => {}
  let ended = false
  let end: (reason: string) => void = () => {}
  const exited = new Promise<string>((resolve) => (end = resolve))
  runGuest({
    send: (frame) => queueMicrotask(() => !ended && toHost(frame)),
    onFrame: (receive) => (toGuest = receive),
  })
  return {
    mode: "inprocess",
    link: {
      send: (frame) => queueMicrotask(() => !ended && toGuest(frame)),
      onFrame: (receive) => (toHost = receive),
    },
    exited,
    terminate: () => {
      ended = true
      end("terminated")
      return Promise.resolve()
    },
  }
}

const inWorker = (options: GuestOptions): GuestProcess => {
  const worker = new Worker(pathToFileURL(guestModuleFile(options.runtimeDir)), {
    workerData: { chorusGuest: true },
    env: {},
    // Not the host's Node flags: run from the sources they hold `--import tsx`, which would load
    // again in every worker, about 80 ms of each plugin start, for no use to the guest runtime.
    // Only a TypeScript entry gets tsx (from the sources; startGuest refuses one without it).
    execArgv: isTypeScript(options.entry) ? ["--import", tsxLoader()!] : [],
    name: `chorus-plugin-${options.plugin}`,
    resourceLimits: { maxOldGenerationSizeMb: options.maxHeapMb },
  })
  let end: (reason: string) => void = () => {}
  const exited = new Promise<string>((resolve) => (end = resolve))
  let lastError: string | undefined
  worker.on("error", (error) => {
    lastError = error instanceof Error ? `${error.name}: ${error.message}` : String(error)
  })
  worker.on("exit", (code) => end(lastError ?? `worker exited with code ${code}`))
  return {
    mode: "worker",
    link: {
      send: (frame) => worker.postMessage(frame),
      onFrame: (receive) => worker.on("message", receive),
    },
    exited,
    terminate: async () => {
      lastError ??= "terminated"
      await worker.terminate()
      await exited
    },
  }
}

/** Deno's permission flags for a plugin: read its own directory, reach its declared hosts. */
export const denoFlags = (options: Pick<GuestOptions, "dir" | "netHosts" | "maxHeapMb">) => {
  const hosts = options.netHosts.filter((h) => !h.includes("*"))
  return [
    "run",
    "--no-prompt",
    "--no-config",
    "--no-lock",
    `--allow-read=${options.dir}`,
    ...(hosts.length > 0 ? [`--allow-net=${hosts.join(",")}`] : []),
    `--v8-flags=--max-old-space-size=${options.maxHeapMb}`,
  ]
}

const inDeno = (options: GuestOptions): GuestProcess => {
  const guestFile = guestModuleFile(options.runtimeDir)
  const child: ChildProcessWithoutNullStreams = spawn(
    options.denoPath,
    [...denoFlags(options), guestFile],
    {
      cwd: options.dir,
      env: {
        PATH: process.env["PATH"] ?? "/usr/bin:/bin",
        DENO_DIR: NodePath.join(options.runtimeDir, "deno-cache"),
        DENO_NO_UPDATE_CHECK: "1",
        NO_COLOR: "1",
      },
      stdio: ["pipe", "pipe", "pipe"],
    },
  )
  let end: (reason: string) => void = () => {}
  const exited = new Promise<string>((resolve) => (end = resolve))
  let lastError: string | undefined
  let receive: (frame: Frame) => void = () => {}
  const lines = (stream: NodeJS.ReadableStream, onLine: (line: string) => void) => {
    let buffer = ""
    stream.setEncoding("utf8")
    stream.on("data", (chunk: string) => {
      buffer += chunk
      let at: number
      while ((at = buffer.indexOf("\n")) >= 0) {
        onLine(buffer.slice(0, at))
        buffer = buffer.slice(at + 1)
      }
    })
  }
  lines(child.stdout, (line) => {
    if (line.startsWith(FRAME_MARK)) receive(decodeJson(line.slice(FRAME_MARK.length)) as Frame)
    else if (line !== "") options.onOutput(line)
  })
  const recentErrors: Array<string> = []
  lines(child.stderr, (line) => {
    if (line === "") return
    recentErrors.push(line)
    if (recentErrors.length > 5) recentErrors.shift()
    options.onOutput(line)
  })
  child.on("error", (error) => {
    lastError = `could not run deno (${options.denoPath}): ${error.message}`
  })
  child.on("exit", (code, signal) =>
    end(
      lastError ??
        `deno exited with ${signal ?? `code ${code}`}${
          recentErrors.length > 0 ? `: ${recentErrors.join(" | ")}` : ""
        }`,
    ))
  child.stdin.on("error", () => {}) // a write after the child died: its exit says why
  return {
    mode: "deno",
    link: {
      send: (frame) => {
        if (child.stdin.writable) child.stdin.write(FRAME_MARK + encodeJson(frame) + "\n")
      },
      onFrame: (r) => (receive = r),
    },
    exited,
    terminate: async () => {
      lastError ??= "terminated"
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL")
      await exited
    },
  }
}

const isTypeScript = (file: string) => /\.[mc]?tsx?$/.test(file)

/** tsx's loader when it is installed (running from the sources), else undefined (the binary). */
export const tsxLoader = (): string | undefined => {
  try {
    return pathToFileURL(createRequire(import.meta.url).resolve("tsx")).href
  } catch {
    return undefined
  }
}

/**
 * Why this Chorus cannot run `entry` in `mode`, if it cannot: Node 20 runs no TypeScript, so a
 * `.ts` entry works in a worker or in-process only from the sources (tsx), always in Deno.
 */
export const entryProblem = (entry: string, mode: PluginMode): string | undefined =>
  isTypeScript(entry) && mode !== "deno" && tsxLoader() === undefined
    ? `the entry ${NodePath.basename(entry)} is TypeScript, which this Chorus cannot load in ` +
      `${mode} mode: build it to JavaScript (and point entry at the .js), or run the plugin in ` +
      `deno mode`
    : undefined

export const startGuest = (options: GuestOptions): GuestProcess =>
  options.mode === "inprocess"
    ? inProcess()
    : options.mode === "worker"
    ? inWorker(options)
    : inDeno(options)
