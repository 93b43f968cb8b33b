/**
 * The host's end of a guest's link: calls into the plugin (`activate`, `deliver`, `route`, …)
 * as Effects, and the plugin's calls into the host served by `serve`. When the guest ends,
 * every call still waiting fails with `GuestGone`, so nothing waits for a dead plugin.
 */
import { Data, Duration, Effect } from "effect"
import type { GuestProcess } from "./GuestProcess.ts"
import { errorOfWire, wireErrorOf } from "./guest/Guest.ts"
import type { WireError } from "./guest/Protocol.ts"

/** The plugin version went away (crash, exit, kill, reload) before answering. */
export class GuestGone extends Data.TaggedError("GuestGone")<{
  readonly plugin: string
  readonly reason: string
}> {
  override get message() {
    return `plugin ${this.plugin} is gone: ${this.reason}`
  }
}

/** The plugin's code threw or rejected. */
export class GuestFailed extends Data.TaggedError("GuestFailed")<{
  readonly plugin: string
  readonly op: string
  readonly error: WireError
}> {
  override get message() {
    return `plugin ${this.plugin} failed in ${this.op}: ${this.error.name}: ${this.error.message}`
  }
}

/** The plugin did not answer in time. */
export class GuestTimeout extends Data.TaggedError("GuestTimeout")<{
  readonly plugin: string
  readonly op: string
  readonly after: string
}> {
  override get message() {
    return `plugin ${this.plugin} did not answer ${this.op} within ${this.after}`
  }
}

export type GuestCallError = GuestGone | GuestFailed | GuestTimeout

export interface GuestRpc {
  readonly call: (
    op: string,
    args: ReadonlyArray<unknown>,
    timeout?: Duration.DurationInput,
  ) => Effect.Effect<unknown, GuestCallError>
  /** Calls sent and not yet answered. */
  readonly pending: () => number
}

export const make = (
  plugin: string,
  guest: GuestProcess,
  serve: (op: string, args: ReadonlyArray<any>) => Promise<unknown>,
  onEvent: (op: string, args: ReadonlyArray<any>) => void,
): GuestRpc => {
  let nextId = 1
  let gone: string | undefined
  const waiting = new Map<
    number,
    (result: { ok: true; value: unknown } | { ok: false; error: GuestCallError }) => void
  >()
  void guest.exited.then((reason) => {
    gone = reason
    for (const [id, settle] of waiting) {
      waiting.delete(id)
      settle({ ok: false, error: new GuestGone({ plugin, reason }) })
    }
  })
  guest.link.onFrame((frame) => {
    if (frame.t === "result") {
      const settle = waiting.get(frame.id)
      if (settle === undefined) return
      waiting.delete(frame.id)
      settle(
        frame.ok
          ? { ok: true, value: frame.value }
          : { ok: false, error: new GuestFailed({ plugin, op: "call", error: frame.error }) },
      )
      return
    }
    if (frame.t === "event") {
      try {
        onEvent(frame.op, frame.args)
      } catch {
        // a malformed event from a plugin is its own loss
      }
      return
    }
    const id = frame.id
    const answer = (result: { ok: true; value: unknown } | { ok: false; error: unknown }) => {
      if (gone !== undefined) return
      try {
        guest.link.send(
          result.ok
            ? { t: "result", id, ok: true, value: result.value ?? null }
            : { t: "result", id, ok: false, error: wireErrorOf(result.error) },
        )
      } catch (error) {
        // The value cannot cross the wire (a function, a cycle): the plugin learns why.
        guest.link.send({ t: "result", id, ok: false, error: wireErrorOf(error) })
      }
    }
    serve(frame.op, frame.args).then(
      (value) => answer({ ok: true, value }),
      (error) => answer({ ok: false, error }),
    )
  })
  const call = (op: string, args: ReadonlyArray<unknown>, timeout?: Duration.DurationInput) => {
    const once = Effect.async<unknown, GuestCallError>((resume) => {
      if (gone !== undefined) return resume(Effect.fail(new GuestGone({ plugin, reason: gone })))
      const id = nextId++
      waiting.set(id, (result) =>
        resume(
          result.ok ? Effect.succeed(result.value) : Effect.fail(
            result.error._tag === "GuestFailed"
              ? new GuestFailed({ plugin, op, error: result.error.error })
              : result.error,
          ),
        ))
      guest.link.send({ t: "call", id, op, args })
      return Effect.sync(() => waiting.delete(id))
    })
    return timeout === undefined ? once : once.pipe(
      Effect.timeoutFail({
        duration: timeout,
        onTimeout: () =>
          new GuestTimeout({ plugin, op, after: Duration.format(Duration.decode(timeout)) }),
      }),
    )
  }
  return { call, pending: () => waiting.size }
}

/** A guest's failure as a throwable for logs and the status API. */
export const describe = (error: GuestCallError): string =>
  error._tag === "GuestFailed" ? `${error.error.name}: ${error.error.message}` : error.message

export { errorOfWire }
