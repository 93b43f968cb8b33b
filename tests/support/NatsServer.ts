/**
 * A private nats-server with JetStream for tests that kill, restart or stop the server: it
 * listens on a free loopback port and keeps its store in its own temporary directory, both kept
 * across `restart()` so the server recovers what it had. Stopped and removed with the scope.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { createConnection, createServer } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Data, Duration, Effect, type Scope } from "effect"

export class NatsServerError extends Data.TaggedError("NatsServerError")<{
  readonly reason: string
}> {}

export interface NatsServer {
  readonly url: string
  readonly port: number
  /** JetStream store directory (`-sd`). */
  readonly storeDir: string
  /** SIGKILL: no shutdown, nothing flushed by the server itself. Waits until the process is gone. */
  readonly kill9: Effect.Effect<void>
  /** SIGSTOP: the server keeps its connections open but answers nothing (a hung server). */
  readonly freeze: Effect.Effect<void>
  /** Start again on the same port and store; waits until the port answers. */
  readonly restart: Effect.Effect<void, NatsServerError>
  /** SIGTERM (SIGKILL after 5 s) and wait for the exit. */
  readonly stop: Effect.Effect<void>
  readonly isRunning: () => boolean
}

export interface NatsServerOptions {
  /** Default: `/usr/sbin/nats-server` (Debian), or `CHORUS_NATS_SERVER_BIN`. */
  readonly binary?: string
  /** How long to wait for the port to answer. Default: 15 seconds. */
  readonly startTimeout?: Duration.DurationInput
}

const freePort: Effect.Effect<number, NatsServerError> = Effect.async((resume) => {
  const server = createServer()
  server.once("error", (e) => resume(Effect.fail(new NatsServerError({ reason: e.message }))))
  server.listen(0, "127.0.0.1", () => {
    const address = server.address()
    const port = typeof address === "object" && address !== null ? address.port : 0
    server.close(() => resume(Effect.succeed(port)))
  })
})

/** One TCP connection attempt: does anything accept on the port? */
const answers = (port: number): Effect.Effect<boolean> =>
  Effect.async((resume) => {
    const socket = createConnection({ host: "127.0.0.1", port })
    socket.once("connect", () => {
      socket.destroy()
      resume(Effect.succeed(true))
    })
    socket.once("error", () => {
      socket.destroy()
      resume(Effect.succeed(false))
    })
  })

const exited = (child: ChildProcess): Effect.Effect<void> =>
  child.exitCode !== null || child.signalCode !== null ? Effect.void : Effect.async((resume) => {
    child.once("exit", () => resume(Effect.void))
  })

/** Start a private nats-server; it is stopped and its directory removed when the scope closes. */
export const start = (
  options: NatsServerOptions = {},
): Effect.Effect<NatsServer, NatsServerError, Scope.Scope> =>
  Effect.gen(function* () {
    const binary = options.binary ?? process.env["CHORUS_NATS_SERVER_BIN"] ??
      "/usr/sbin/nats-server"
    const startTimeout = Duration.decode(options.startTimeout ?? "15 seconds")
    const dir = yield* Effect.acquireRelease(
      Effect.sync(() => mkdtempSync(join(tmpdir(), "chorus-nats-"))),
      (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true })),
    )
    const storeDir = join(dir, "store")
    const port = yield* freePort
    let child: ChildProcess | undefined

    const isRunning = () =>
      child !== undefined && child.exitCode === null && child.signalCode === null

    /** Poll the port until it accepts a connection; fail early if the process died. */
    const waitUntilAnswering: Effect.Effect<void, NatsServerError> = Effect.gen(function* () {
      const deadline = Date.now() + Duration.toMillis(startTimeout)
      while (!(yield* answers(port))) {
        if (!isRunning()) {
          return yield* Effect.fail(
            new NatsServerError({ reason: `nats-server exited; see ${join(dir, "nats.log")}` }),
          )
        }
        if (Date.now() > deadline) {
          return yield* Effect.fail(
            new NatsServerError({ reason: `port ${port} did not answer in time` }),
          )
        }
        yield* Effect.sleep("25 millis")
      }
    })

    const launch: Effect.Effect<void, NatsServerError> = Effect.gen(function* () {
      if (isRunning()) return yield* Effect.fail(new NatsServerError({ reason: "already running" }))
      const proc = spawn(
        binary,
        [
          "-js",
          "-a",
          "127.0.0.1",
          "-p",
          String(port),
          "-sd",
          storeDir,
          "-l",
          join(dir, "nats.log"),
        ],
        { stdio: "ignore" },
      )
      child = proc
      const spawnError = yield* Effect.async<string | undefined>((resume) => {
        proc.once("error", (e) => resume(Effect.succeed(e.message)))
        proc.once("spawn", () => resume(Effect.succeed(undefined)))
      })
      if (spawnError !== undefined) {
        return yield* Effect.fail(new NatsServerError({ reason: spawnError }))
      }
      yield* waitUntilAnswering
    })

    const kill9 = Effect.suspend(() => {
      const proc = child
      if (!proc || !isRunning()) return Effect.void
      proc.kill("SIGKILL")
      return exited(proc)
    })

    const freeze = Effect.sync(() => {
      if (child && isRunning()) child.kill("SIGSTOP")
    })

    const stop = Effect.suspend(() => {
      const proc = child
      if (!proc || !isRunning()) return Effect.void
      proc.kill("SIGTERM")
      return exited(proc).pipe(
        Effect.timeout("5 seconds"),
        Effect.catchAll(() => kill9),
      )
    })

    yield* Effect.addFinalizer(() => stop)
    yield* launch

    return {
      url: `nats://127.0.0.1:${port}`,
      port,
      storeDir,
      kill9,
      freeze,
      restart: Effect.zipRight(stop, launch),
      stop,
      isRunning,
    } satisfies NatsServer
  })
