/**
 * The guest runtime: the plugin's side of the wire (`Protocol.ts`). It imports the plugin's
 * entry module, hands its `activate` the `chorus` object (`Api.ts`), turns every call on it
 * into a call frame to the host, and serves the host's calls (deliver a bus message, answer a
 * route, send a reply, deactivate).
 *
 * The same code runs in-process (imported by the host), in a worker thread and in a Deno
 * subprocess: for the last two the host writes it out as one standalone ES module
 * (`GuestSource.ts`), so this file imports nothing at run time (types only) and must stay so.
 */
import type {
  Chorus,
  GuestConsumerSpec,
  GuestDisposition,
  GuestHttpRequest,
  GuestHttpResponse,
  GuestMessage,
  GuestOutgoing,
  GuestRequestInit,
  GuestResponse,
  GuestSendResult,
  GuestSocket,
  GuestSocketHandlers,
  GuestStreamSpec,
  GuestTypingTarget,
  MetricLabels,
  PluginDefinition,
} from "./Api.ts"
import type { Frame, GuestInit, WireError, WireMessage } from "./Protocol.ts"

/** A two-way frame channel. */
export interface Link {
  readonly send: (frame: Frame) => void
  readonly onFrame: (receive: (frame: Frame) => void) => void
}

const utf8 = new TextEncoder()
const fromUtf8 = new TextDecoder()

const toBytes = (data: unknown): Uint8Array =>
  data instanceof Uint8Array
    ? data
    : typeof data === "string"
    ? utf8.encode(data)
    : utf8.encode(JSON.stringify(data) ?? "null")

/** An error as a wire error: its name, message and own enumerable fields (JSON values). */
export const wireErrorOf = (error: unknown): WireError => {
  if (
    error instanceof Error || (typeof error === "object" && error !== null && "message" in error)
  ) {
    const e = error as Error & Record<string, unknown>
    const fields: Record<string, unknown> = {}
    for (const [k, v] of Object.entries(e)) {
      if (k === "name" || k === "message" || k === "stack") continue
      if (v === null || ["string", "number", "boolean"].includes(typeof v)) fields[k] = v
    }
    const name = typeof e["_tag"] === "string" ? (e["_tag"] as string) : e.name ?? "Error"
    return { name, message: String(e.message), fields }
  }
  return { name: "Error", message: String(error) }
}

/** A wire error as a throwable `Error` with its fields (`error.name === "PermissionDenied"`, …). */
export const errorOfWire = (wire: WireError): Error => {
  const error = new Error(wire.message)
  Object.assign(error, wire.fields ?? {})
  error.name = wire.name
  return error
}

/** JSON with bytes as `{ "$bytes": base64 }` (the Deno stdio wire). */
export const encodeJson = (value: unknown): string =>
  JSON.stringify(value, function (this: unknown, _key, v) {
    if (typeof v === "bigint") return Number.isSafeInteger(Number(v)) ? Number(v) : String(v)
    if (v instanceof Uint8Array) {
      let binary = ""
      for (let i = 0; i < v.length; i += 0x8000) {
        binary += String.fromCharCode(...v.subarray(i, i + 0x8000))
      }
      return { $bytes: btoa(binary) }
    }
    return v
  })

export const decodeJson = (text: string): any =>
  JSON.parse(text, (_key, v) => {
    if (
      v !== null && typeof v === "object" && typeof v.$bytes === "string" &&
      Object.keys(v).length === 1
    ) {
      const binary = atob(v.$bytes)
      const bytes = new Uint8Array(binary.length)
      for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i)
      return bytes
    }
    return v
  })

type Serve = (...args: Array<any>) => Promise<unknown>

/** Run the guest side on `link` until the host ends it. */
export const runGuest = (link: Link): void => {
  let nextCall = 1
  let nextHandler = 1
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>()
  const handlers = new Map<number, (...args: Array<any>) => unknown>()
  let definition: PluginDefinition | undefined
  /** Open WebSocket connections, by the host's connection id. */
  const sockets = new Map<string, GuestSocket>()

  const call = (op: string, ...args: Array<unknown>): Promise<any> =>
    new Promise((resolve, reject) => {
      const id = nextCall++
      pending.set(id, { resolve, reject })
      link.send({ t: "call", id, op, args })
    })
  const event = (op: string, ...args: Array<unknown>) => link.send({ t: "event", op, args })
  const handlerId = (fn: (...args: Array<any>) => unknown) => {
    if (typeof fn !== "function") throw new TypeError("expected a handler function")
    const id = nextHandler++
    handlers.set(id, fn)
    return id
  }
  const readable = <T extends { body?: Uint8Array; data?: Uint8Array }>(
    value: T,
    bytes: Uint8Array,
  ) => ({
    ...value,
    text: () => fromUtf8.decode(bytes),
    json: () => JSON.parse(fromUtf8.decode(bytes)),
  })

  const chorusOf = (init: GuestInit): Chorus => {
    const log = (level: string) => (message: string, fields?: Record<string, unknown>) =>
      event("log", level, String(message), fields ?? {})
    const metric = (kind: string) => (name: string, help?: string) => {
      const record = (value: number, labels?: MetricLabels) =>
        event("metric", kind, name, help ?? "", value, labels ?? {})
      return kind === "counter"
        ? { inc: (by = 1, labels?: MetricLabels) => record(by, labels) }
        : kind === "gauge"
        ? { set: record }
        : { observe: record }
    }
    return {
      plugin: init.plugin,
      hostApiVersion: init.hostApiVersion,
      mode: init.mode,
      settings: Object.freeze({ ...init.settings }),
      log: { debug: log("debug"), info: log("info"), warn: log("warning"), error: log("error") },
      secrets: { get: (name: string) => call("secrets.get", name) },
      bus: {
        ensureStream: (spec: GuestStreamSpec) => call("bus.ensureStream", spec),
        publish: (subject: string, data: unknown, options) =>
          call("bus.publish", subject, toBytes(data), options),
        consume: (spec: GuestConsumerSpec, handler: (m: GuestMessage) => unknown) =>
          call("bus.consume", spec, handlerId(handler)),
      },
      http: {
        fetch: async (url: string, init: GuestRequestInit = {}): Promise<GuestResponse> => {
          const body = init.body === undefined ? undefined : toBytes(init.body)
          const response = await call("http.fetch", url, { ...init, body })
          return readable(response, response.body)
        },
      },
      storage: {
        dialect: init.dialect,
        execute: (compiled) =>
          call("storage.execute", { query: compiled.query, parameters: compiled.parameters }),
        kv: {
          get: (key: string) => call("storage.kv.get", key),
          set: (key: string, value: unknown) => call("storage.kv.set", key, value),
          delete: (key: string) => call("storage.kv.delete", key),
          list: (prefix?: string) => call("storage.kv.list", prefix ?? ""),
        },
      },
      routes: {
        handle: (method: string, path: string, handler) =>
          call("routes.handle", method, path, handlerId(handler)),
        websocket: (path: string, handlers: GuestSocketHandlers) =>
          call("routes.websocket", path, handlerId(() => handlers)),
      },
      metrics: {
        counter: metric("counter") as Chorus["metrics"]["counter"],
        gauge: metric("gauge") as Chorus["metrics"]["gauge"],
        histogram: metric("histogram") as Chorus["metrics"]["histogram"],
      },
      attachments: {
        put: (bytes: Uint8Array, file) => call("attachments.put", bytes, file),
        get: (key: string) => call("attachments.get", key),
        link: (key: string, ttlSeconds?: number) => call("attachments.link", key, ttlSeconds),
      },
      channels: {
        receive: (channel: string, message) => call("channels.receive", channel, message),
        availability: (channel: string, account: string) =>
          call("channels.availability", channel, account),
        register: (channel: string, adapter) => {
          if (typeof adapter?.send !== "function") {
            return Promise.reject(new TypeError("a channel adapter needs a send(message) function"))
          }
          return call(
            "channels.register",
            channel,
            handlerId((m: GuestOutgoing) => adapter.send(m)),
            ...(typeof adapter.typing === "function"
              ? [handlerId((to: GuestTypingTarget) => adapter.typing!(to))]
              : []),
          )
        },
        typing: (channel: string, from) => call("channels.typing", channel, from),
        status: (channel: string, update) => call("channels.status", channel, update),
      },
    }
  }

  const handler = (id: number) => {
    const fn = handlers.get(id)
    if (fn === undefined) throw new Error(`no handler ${id} in this plugin version`)
    return fn
  }

  const serve: Record<string, Serve> = {
    activate: async (init: GuestInit) => {
      const module = await import(init.entry)
      const candidate = module.default ?? module
      if (typeof candidate?.activate !== "function") {
        throw new TypeError(
          `${init.entry} exports no activate(chorus) function (export default { activate } or export function activate)`,
        )
      }
      definition = candidate as PluginDefinition
      await definition.activate(chorusOf(init))
    },
    deactivate: async () => {
      await definition?.deactivate?.()
    },
    deliver: async (id: number, message: WireMessage) => {
      const result = (await handler(id)(readable(message, message.data))) as GuestDisposition
      return result ?? null
    },
    route: async (id: number, request: Omit<GuestHttpRequest, "text" | "json">) => {
      const response =
        ((await handler(id)(readable(request, request.body))) ?? {}) as GuestHttpResponse
      const headers: Record<string, string> = {}
      for (const [k, v] of Object.entries(response.headers ?? {})) {
        headers[k.toLowerCase()] = String(v)
      }
      const body = response.body
      if (body !== undefined && headers["content-type"] === undefined) {
        headers["content-type"] = body instanceof Uint8Array
          ? "application/octet-stream"
          : typeof body === "string"
          ? "text/plain; charset=utf-8"
          : "application/json"
      }
      return {
        status: response.status ?? 200,
        headers,
        body: body === undefined ? new Uint8Array(0) : toBytes(body),
      }
    },
    send: async (id: number, message: GuestOutgoing) =>
      (await handler(id)(message)) as GuestSendResult,
    typing: async (id: number, to: GuestTypingTarget) => {
      await handler(id)(to)
      return null
    },
    ping: () => Promise.resolve("pong"),
    "ws.open": async (
      id: number,
      connection: string,
      request: Omit<GuestHttpRequest, "text" | "json">,
    ) => {
      const handlers = handler(id)() as GuestSocketHandlers
      const socket: GuestSocket = {
        id: connection,
        send: (data) => call("ws.send", connection, data),
        close: (code = 1000, reason = "") => call("ws.close", connection, code, reason),
      }
      sockets.set(connection, socket)
      await handlers.open?.(socket, readable(request, request.body))
    },
    "ws.message": async (id: number, connection: string, data: string | Uint8Array) => {
      const socket = sockets.get(connection)
      if (socket !== undefined) await (handler(id)() as GuestSocketHandlers).message?.(socket, data)
    },
    "ws.close": async (id: number, connection: string, code: number) => {
      const socket = sockets.get(connection)
      sockets.delete(connection)
      if (socket !== undefined) await (handler(id)() as GuestSocketHandlers).close?.(socket, code)
    },
  }

  link.onFrame((frame) => {
    if (frame.t === "result") {
      const waiting = pending.get(frame.id)
      if (waiting === undefined) return
      pending.delete(frame.id)
      if (frame.ok) waiting.resolve(frame.value)
      else waiting.reject(errorOfWire(frame.error))
      return
    }
    if (frame.t !== "call") return
    const serveOp = serve[frame.op]
    const id = frame.id
    Promise.resolve()
      .then(() => {
        if (serveOp === undefined) throw new Error(`unknown host call ${frame.op}`)
        return serveOp(...frame.args)
      })
      .then(
        (value) => link.send({ t: "result", id, ok: true, value: value ?? null }),
        (error) => link.send({ t: "result", id, ok: false, error: wireErrorOf(error) }),
      )
  })
}

/**
 * Start the guest where this module runs as a plugin's own runtime: in a Deno subprocess
 * (frames as marked JSON lines on stdio) or in a worker thread started with
 * `workerData.chorusGuest`. Elsewhere (imported by the host) it does nothing.
 */
export const bootGuest = async (): Promise<void> => {
  const deno = (globalThis as any).Deno
  if (deno !== undefined) {
    const MARK = "\u001e"
    // The plugin's own prints go to stderr: stdout carries the frames.
    console.log = console.error
    console.info = console.error
    console.debug = console.error
    const writeAll = (bytes: Uint8Array) => {
      let written = 0
      while (written < bytes.length) written += deno.stdout.writeSync(bytes.subarray(written))
    }
    let receive: (frame: Frame) => void = () => {}
    runGuest({
      send: (frame) => writeAll(utf8.encode(MARK + encodeJson(frame) + "\n")),
      onFrame: (r) => {
        receive = r
      },
    })
    let buffer = ""
    const decoder = new TextDecoder()
    for await (const chunk of deno.stdin.readable as AsyncIterable<Uint8Array>) {
      buffer += decoder.decode(chunk, { stream: true })
      let end: number
      while ((end = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, end)
        buffer = buffer.slice(end + 1)
        if (line.startsWith(MARK)) receive(decodeJson(line.slice(MARK.length)) as Frame)
      }
    }
    deno.exit(0) // the host closed stdin: it is gone or wants us gone
    return
  }
  if (typeof process === "undefined") return
  const threads = await import("node:worker_threads")
  if (threads.isMainThread || threads.workerData?.chorusGuest !== true) return
  const port = threads.parentPort!
  runGuest({ send: (frame) => port.postMessage(frame), onFrame: (r) => port.on("message", r) })
}
