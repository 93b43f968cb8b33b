/**
 * A consumer in a child process that takes one message and holds it until it is killed: the
 * way to leave a delivery truly unacknowledged. In-process, a stopping consumer hands what it
 * holds back to the bus; only a process that dies (kill -9) cannot.
 *
 * `holdingConsumer` starts the child (`HoldingConsumer.main.ts`), waits until its handler holds
 * a message, and returns what it holds and a `kill` that SIGKILLs it.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { createInterface } from "node:readline"
import { fileURLToPath } from "node:url"
import { Data, Deferred, Duration, Effect, type Scope } from "effect"
import type { BusBackend } from "./BusBackend.ts"

export interface HoldingConsumerRequest {
  readonly backend: BusBackend
  readonly stream: string
  readonly consumer: string
  readonly ackWaitMillis: number
}

/** What the child's handler holds: printed by the child as one JSON line. */
export interface Held {
  readonly id: string
  readonly seq: number
  readonly deliveryCount: number
}

export class HoldingConsumerFailed extends Data.TaggedError("HoldingConsumerFailed")<{
  readonly reason: string
}> {}

const entry = fileURLToPath(new URL("./HoldingConsumer.main.ts", import.meta.url))

/** Start the child; resolves once its handler holds a message. The child dies with the scope. */
export const holdingConsumer = (
  request: HoldingConsumerRequest,
  within: Duration.DurationInput = "30 seconds",
): Effect.Effect<
  { readonly held: Held; readonly kill: Effect.Effect<void> },
  HoldingConsumerFailed,
  Scope.Scope
> =>
  Effect.gen(function* () {
    const child: ChildProcess = yield* Effect.acquireRelease(
      Effect.sync(() =>
        spawn(process.execPath, ["--import", "tsx", entry, JSON.stringify(request)], {
          stdio: ["ignore", "pipe", "pipe"],
        })
      ),
      (child) => Effect.sync(() => child.exitCode === null && child.kill("SIGKILL")),
    )
    const held = yield* Deferred.make<Held, HoldingConsumerFailed>()
    const exited = yield* Deferred.make<void>()
    let stderr = ""
    child.stderr!.on("data", (chunk) => (stderr = (stderr + String(chunk)).slice(-4_000)))
    createInterface({ input: child.stdout! }).on("line", (line) => {
      if (line.startsWith("{")) Deferred.unsafeDone(held, Effect.succeed(JSON.parse(line) as Held))
    })
    child.on("exit", (code, signal) => {
      Deferred.unsafeDone(exited, Effect.void)
      Deferred.unsafeDone(
        held,
        Effect.fail(
          new HoldingConsumerFailed({ reason: `child exited (${code ?? signal}): ${stderr}` }),
        ),
      )
    })
    const message = yield* Deferred.await(held).pipe(
      Effect.timeoutFail({
        duration: within,
        onTimeout: () =>
          new HoldingConsumerFailed({
            reason: `no message held within ${Duration.format(Duration.decode(within))}: ${stderr}`,
          }),
      }),
    )
    const kill = Effect.sync(() => child.kill("SIGKILL")).pipe(
      Effect.zipRight(Deferred.await(exited)),
    )
    return { held: message, kill }
  })
