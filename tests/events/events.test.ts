/**
 * `GET /api/v1/events` end to end: an in-process server, a real token, events published on the
 * bus's events stream, and the SSE stream read with `fetch` and parsed as a browser would.
 * The embedded bus (SQLite) for most tests, JetStream for the resume test.
 */
import { HttpServer } from "@effect/platform"
import { jetstreamManager } from "@nats-io/jetstream"
import { connect as natsConnect } from "@nats-io/transport-node"
import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Exit, Layer, Redacted, Schedule, Schema, Scope } from "effect"
import { ApiTokens } from "../../core/auth/ApiTokens.ts"
import { Bus } from "../../core/bus/Bus.ts"
import { ServerLive } from "../../core/Chorus.ts"
import { decodeConfig } from "../../core/config/loadConfig.ts"
import { EventStreamSettings } from "../../core/http/EventsHandlers.ts"
import { deliveryChanged } from "../support/Events.ts"
import { eventSubject } from "../../core/pipeline/Streams.ts"
import { ChorusEvent } from "../../schemas/Events.ts"
import { freshNamespace } from "../support/NatsCleanup.ts"
import { tempDir } from "../support/TestDatabase.ts"
import { testNatsUrl } from "../support/TestServices.ts"

interface Options {
  readonly keepAlive?: Duration.DurationInput
  readonly natsUrl?: string
  /** The shared reader's memory of recent events (small: reconnects catch up from the bus). */
  readonly tailCapacity?: number
  /** A follower's buffer (1: bursts drop it from the shared reader, it catches up alone). */
  readonly followBuffer?: number
}

/** A server in this process on a fresh SQLite database (and the embedded bus, unless NATS). */
const startServer = (options: Options = {}) =>
  Effect.gen(function* () {
    const dir = yield* tempDir()
    const namespace = options.natsUrl === undefined ? undefined : yield* freshNamespace("ev")
    const bus = options.natsUrl === undefined
      ? {}
      : { bus: { natsUrl: options.natsUrl, namespace } }
    const config = yield* decodeConfig({
      dataDir: dir,
      http: { port: 0 },
      log: { level: "error" },
      ...bus,
    })
    const context = yield* Layer.build(
      ServerLive(config).pipe(
        Layer.provide(
          Layer.succeed(EventStreamSettings, {
            keepAlive: options.keepAlive ?? "15 seconds",
            ...(options.tailCapacity !== undefined ? { tailCapacity: options.tailCapacity } : {}),
            ...(options.followBuffer !== undefined ? { followBuffer: options.followBuffer } : {}),
          }),
        ),
      ),
    )
    const server = yield* HttpServer.HttpServer.pipe(Effect.provide(context))
    if (server.address._tag !== "TcpAddress") throw new Error("expected a TCP address")
    const tokens = yield* ApiTokens.pipe(Effect.provide(ApiTokens.Default), Effect.provide(context))
    const { token } = yield* tokens.create("inbox")
    const busService = yield* Bus.pipe(Effect.provide(context))
    return {
      url: `http://127.0.0.1:${server.address.port}`,
      auth: { authorization: `Bearer ${Redacted.value(token)}` },
      bus: busService,
      namespace,
    }
  })

// ---------------------------------------------------------------------------------------------
// Events to publish

type Published = { readonly seq: number; readonly json: string; readonly n: number }

const publishEvents = (
  bus: typeof Bus.Service,
  from: number,
  count: number,
  concurrency: number | "unbounded" = 1,
): Effect.Effect<Array<Published>, unknown> =>
  Effect.forEach(Array.from({ length: count }, (_, i) => from + i), (n) =>
    Effect.gen(function* () {
      const event = deliveryChanged(n)
      yield* Schema.decodeUnknown(ChorusEvent)(event) // what we publish is a valid event
      const json = JSON.stringify(event)
      const ack = yield* bus.publish(eventSubject(event.type), new TextEncoder().encode(json), {
        id: event.id,
      })
      return { seq: ack.seq, json, n }
    }), { concurrency }).pipe(Effect.map((all) => all.sort((a, b) => a.seq - b.seq)))

/** A burst published at once reaches a connected client whole, in stream order. */
const burst = (options: Options) =>
  Effect.gen(function* () {
    const { auth, bus, url } = yield* startServer(options)
    const client = yield* connect(`${url}/api/v1/events`, auth)
    yield* connected(client)
    const published = yield* publishEvents(bus, 0, 200, "unbounded")
    yield* until("200 events", () => client.events().length >= 200)
    yield* Effect.sleep("300 millis")
    assert.deepStrictEqual(received(client), expected(published))
  })

// ---------------------------------------------------------------------------------------------
// A minimal EventSource: frames parsed as the HTML spec says, kept for the test to look at.

interface Frame {
  readonly id: string | undefined
  readonly event: string | undefined
  readonly data: string | undefined
}

interface SseClient {
  readonly status: number
  readonly headers: Headers
  readonly frames: Array<Frame>
  readonly comments: Array<string>
  /** Frames carrying data: the events an EventSource would dispatch. */
  readonly events: () => Array<Frame>
  /** The id an EventSource would send as `Last-Event-ID` when it reconnects. */
  readonly lastEventId: () => string | undefined
  readonly close: () => void
}

const parseBlock = (block: string, client: { frames: Array<Frame>; comments: Array<string> }) => {
  let id: string | undefined
  let event: string | undefined
  const data: Array<string> = []
  for (const line of block.split("\n")) {
    if (line.startsWith(":")) {
      client.comments.push(line.slice(1).trim())
      continue
    }
    const colon = line.indexOf(":")
    const field = colon < 0 ? line : line.slice(0, colon)
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "")
    if (field === "id") id = value
    else if (field === "event") event = value
    else if (field === "data") data.push(value)
  }
  if (id !== undefined || data.length > 0) {
    client.frames.push({ id, event, data: data.length > 0 ? data.join("\n") : undefined })
  }
}

const connect = (url: string, headers: Record<string, string> = {}) =>
  Effect.acquireRelease(
    Effect.promise(async (): Promise<SseClient> => {
      const controller = new AbortController()
      const response = await fetch(url, {
        headers: { accept: "text/event-stream", ...headers },
        signal: controller.signal,
      })
      const frames: Array<Frame> = []
      const comments: Array<string> = []
      const client: SseClient = {
        status: response.status,
        headers: response.headers,
        frames,
        comments,
        events: () => frames.filter((f) => f.data !== undefined),
        lastEventId: () => [...frames].reverse().find((f) => f.id !== undefined)?.id,
        close: () => controller.abort(),
      }
      const body = response.body
      if (response.ok && body !== null) {
        void (async () => {
          const decoder = new TextDecoder()
          let buffer = ""
          try {
            const reader = body.getReader()
            for (;;) {
              const { done, value } = await reader.read()
              if (done) break
              buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, "\n")
              let end: number
              while ((end = buffer.indexOf("\n\n")) >= 0) {
                parseBlock(buffer.slice(0, end), client)
                buffer = buffer.slice(end + 2)
              }
            }
          } catch {
            // aborted by close()
          }
        })()
      } else {
        await response.text()
      }
      return client
    }),
    (client) => Effect.sync(() => client.close()),
  )

/** Wait until `check` holds for the client, polling. */
const until = (what: string, check: () => boolean, within: Duration.DurationInput = "10 seconds") =>
  Effect.suspend(() => (check() ? Effect.void : Effect.fail("not yet" as const))).pipe(
    Effect.retry(Schedule.spaced("20 millis")),
    Effect.timeoutFail({ duration: within, onTimeout: () => new Error(`timed out: ${what}`) }),
  )

const connected = (client: SseClient) =>
  until("the stream opened", () => client.comments.includes("connected"))

/** The events a client received, as (id, event, data) to compare with what was published. */
const received = (client: SseClient) =>
  client.events().map((f) => ({ id: f.id, event: f.event, data: f.data }))
const expected = (published: ReadonlyArray<Published>) =>
  published.map((p) => ({ id: String(p.seq), event: "message.delivery_changed", data: p.json }))

/** Read, disconnect, miss events, reconnect with Last-Event-ID: exactly the missed ones. */
const resumesWithoutGapOrRepeat = (options: Options) =>
  Effect.gen(function* () {
    const { auth, bus, namespace, url } = yield* startServer(options)
    const endpoint = `${url}/api/v1/events`
    yield* publishEvents(bus, 0, 2) // before anyone listens: not sent to a new client
    const serverReaders = options.natsUrl === undefined ? [] : yield* readers(options, namespace)

    const first = yield* connect(endpoint, auth)
    assert.strictEqual(first.status, 200)
    assert.match(first.headers.get("content-type") ?? "", /^text\/event-stream/)
    yield* connected(first)
    const seen = yield* publishEvents(bus, 2, 3)
    yield* until("3 events", () => first.events().length >= 3)
    assert.deepStrictEqual(received(first), expected(seen))
    const lastSeen = first.lastEventId()!
    first.close()

    const missed = yield* publishEvents(bus, 5, 4)
    const second = yield* connect(endpoint, { ...auth, "last-event-id": lastSeen })
    yield* until("the 4 missed events", () => second.events().length >= 4)
    const live = yield* publishEvents(bus, 9, 2)
    yield* until("the 2 live events", () => second.events().length >= 6)
    yield* Effect.sleep("300 millis")
    assert.deepStrictEqual(received(second), expected([...missed, ...live]))

    // The same from the query string, for clients that cannot set headers.
    const third = yield* connect(`${endpoint}?lastEventId=${missed[1]!.seq}`, auth)
    yield* until("from the query", () => third.events().length >= 4)
    yield* Effect.sleep("300 millis")
    assert.deepStrictEqual(received(third), expected([...missed.slice(2), ...live]))

    if (options.natsUrl !== undefined) {
      // The two clients still open follow the server's own readers (the shared events reader,
      // the typing relay, the contact cache sync): none holds a consumer of its own, and one
      // that had to catch up on its own has given its consumer back.
      yield* readers(options, namespace).pipe(
        Effect.filterOrFail((names) => names.length === serverReaders.length),
        Effect.retry(Schedule.spaced("100 millis").pipe(Schedule.upTo("10 seconds"))),
      )
    }
  })

/** The ephemeral readers (consumers) of the events stream on JetStream. */
const readers = (options: Options, namespace: string | undefined) =>
  Effect.acquireUseRelease(
    Effect.promise(() => natsConnect({ servers: options.natsUrl! })),
    (nc) =>
      Effect.promise(async () => {
        const jsm = await jetstreamManager(nc)
        const names: Array<string> = []
        for await (const c of jsm.consumers.list(`${namespace}_events`)) {
          if (c.name.startsWith("read_")) names.push(c.name)
        }
        return names
      }),
    (nc) => Effect.promise(() => nc.close()),
  )

describe("GET /api/v1/events", () => {
  it.scopedLive(
    "a client that reconnects with Last-Event-ID gets exactly the events it missed, in order",
    () => resumesWithoutGapOrRepeat({}),
    30_000,
  )

  it.scopedLive(
    "the same on JetStream",
    () => resumesWithoutGapOrRepeat({ natsUrl: testNatsUrl }),
    30_000,
  )

  it.scopedLive(
    "the same when the missed events are older than the server's memory, or a client falls " +
      "behind the shared reader: it catches up from the bus",
    () =>
      Effect.gen(function* () {
        yield* resumesWithoutGapOrRepeat({ tailCapacity: 2, followBuffer: 1 })
        yield* resumesWithoutGapOrRepeat({ natsUrl: testNatsUrl, tailCapacity: 2, followBuffer: 1 })
        yield* burst({ tailCapacity: 2, followBuffer: 1 })
        yield* burst({ natsUrl: testNatsUrl, tailCapacity: 2, followBuffer: 1 })
      }),
    60_000,
  )

  it.scopedLive("without Last-Event-ID a client gets only events published after it connected", () =>
    Effect.gen(function* () {
      const { auth, bus, url } = yield* startServer()
      yield* publishEvents(bus, 0, 3)
      const client = yield* connect(`${url}/api/v1/events`, auth)
      yield* connected(client)
      const fresh = yield* publishEvents(bus, 3, 2)
      yield* until("2 events", () => client.events().length >= 2)
      yield* Effect.sleep("300 millis")
      assert.deepStrictEqual(received(client), expected(fresh))
    }))

  it.scopedLive(
    "types= keeps only those types and the ids stay stream sequences; an undecodable event " +
      "moves the id without an event",
    () =>
      Effect.gen(function* () {
        const { auth, bus, url } = yield* startServer()
        const before = yield* publishEvents(bus, 0, 1)
        const junk = (id: string) =>
          bus.publish("events.message.received", new TextEncoder().encode(`{"type":"nope"}`), {
            id,
          })
        const all = yield* connect(`${url}/api/v1/events?lastEventId=${before[0]!.seq}`, auth)
        const filtered = yield* connect(
          `${url}/api/v1/events?lastEventId=${before[0]!.seq}&types=message.delivery_changed`,
          auth,
        )
        const a = yield* publishEvents(bus, 1, 1)
        const bad = yield* junk("junk-1")
        const b = yield* publishEvents(bus, 2, 1)
        yield* until("both clients got 2 events", () =>
          all.events().length >= 2 && filtered.events().length >= 2)
        yield* Effect.sleep("200 millis")
        assert.deepStrictEqual(received(all), expected([...a, ...b]))
        assert.deepStrictEqual(received(filtered), expected([...a, ...b]))
        // The undecodable event was sent as a bare id: a reconnect does not ask for it again.
        assert.deepStrictEqual(
          all.frames.map((f) =>
            f.id
          ),
          [a[0]!.seq, bad.seq, b[0]!.seq].map(String),
        )
        assert.deepStrictEqual(all.frames[1], {
          id: String(bad.seq),
          event: undefined,
          data: undefined,
        })
        assert.notInclude(filtered.frames.map((f) => f.id), String(bad.seq))

        const unknown = yield* Effect.promise(() =>
          fetch(`${url}/api/v1/events?types=message.nope`, { headers: auth }).then((r) => r.status)
        )
        assert.strictEqual(unknown, 400)
        const badId = yield* Effect.promise(() =>
          fetch(`${url}/api/v1/events`, { headers: { ...auth, "last-event-id": "x" } }).then((r) =>
            r.status
          )
        )
        assert.strictEqual(badId, 400)
      }),
    30_000,
  )

  it.scopedLive("sends a keepalive comment at the configured interval", () =>
    Effect.gen(function* () {
      const { auth, url } = yield* startServer({ keepAlive: "150 millis" })
      const client = yield* connect(`${url}/api/v1/events`, auth)
      yield* until(
        "3 keepalives",
        () => client.comments.filter((c) => c === "keepalive").length >= 3,
      )
      assert.deepStrictEqual(client.events(), [])
    }))

  it.scopedLive("refuses a missing or wrong token with 401", () =>
    Effect.gen(function* () {
      const { url } = yield* startServer()
      const none = yield* connect(`${url}/api/v1/events`)
      assert.strictEqual(none.status, 401)
      assert.strictEqual(none.headers.get("www-authenticate"), 'Bearer realm="chorus"')
      const wrong = yield* connect(`${url}/api/v1/events`, { authorization: "Bearer chorus_nope" })
      assert.strictEqual(wrong.status, 401)
    }))

  it.scopedLive("is in the OpenAPI document as text/event-stream behind the bearer scheme", () =>
    Effect.gen(function* () {
      const { url } = yield* startServer()
      const doc = yield* Effect.promise(() =>
        fetch(`${url}/api/openapi.json`).then((r) => r.json())
      )
      const op = doc.paths["/api/v1/events"].get
      assert.deepStrictEqual(op.security, [{ bearer: [] }, { session: [] }])
      assert.property(op.responses["200"].content, "text/event-stream")
      assert.property(op.responses, "401")
      const params = op.parameters.map((p: { name: string; in: string }) => `${p.in}:${p.name}`)
      assert.includeMembers(params, ["query:lastEventId", "query:types", "header:last-event-id"])
    }))
  it.scopedLive("stopping the server ends open event streams instead of waiting for them", () =>
    Effect.gen(function* () {
      const serverScope = yield* Scope.make()
      const { auth, url } = yield* startServer().pipe(Scope.extend(serverScope))
      const client = yield* connect(`${url}/api/v1/events`, auth)
      yield* connected(client)
      yield* Scope.close(serverScope, Exit.void).pipe(
        Effect.timeoutFail({
          duration: "5 seconds",
          onTimeout: () => new Error("the server did not stop with an event stream open"),
        }),
      )
    }))
})
