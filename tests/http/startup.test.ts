/**
 * The HTTP server while it starts (issue #3): a request must never be left without an answer.
 * Node drops a request that arrives while no handler listens for it, so a server whose port opens
 * before its handlers are built (they ensure streams on the bus: round trips on JetStream) left
 * the first clients after a restart waiting until their own timeout. The bus here is slowed down
 * on purpose, so that window is wide.
 */
import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Fiber, Layer } from "effect"
import { createServer as createTcpServer } from "node:net"
import { Bus } from "../../core/bus/Bus.ts"
import {
  ClusterLive,
  CoreLive,
  InboxLive,
  OutboundLive,
  PipelineLive,
  PluginHostLive,
  RoutingLive,
} from "../../core/Chorus.ts"
import { decodeConfig } from "../../core/config/loadConfig.ts"
import * as HttpServer from "../../core/http/HttpServer.ts"
import { tempDir } from "../support/TempDir.ts"

const freePort = Effect.async<number>((resume) => {
  const server = createTcpServer()
  server.listen(0, "127.0.0.1", () => {
    const address = server.address()
    const port = typeof address === "object" && address !== null ? address.port : 0
    server.close(() => resume(Effect.succeed(port)))
  })
})

/** The bus of the layers above it, with an `ensureStream` that takes `delay`. */
const slowEnsureStream = (delay: Duration.DurationInput) =>
  Layer.effect(
    Bus,
    Effect.map(Bus, (bus) => ({
      ...bus,
      ensureStream: (spec: Parameters<typeof bus.ensureStream>[0]) =>
        Effect.sleep(delay).pipe(Effect.zipRight(bus.ensureStream(spec))),
    })),
  )

type Attempt =
  | { readonly _tag: "Refused" }
  | { readonly _tag: "Answered"; readonly status: number; readonly ms: number }
  | { readonly _tag: "NoAnswer"; readonly ms: number }

/** One GET: refused (nothing listens), answered, or accepted and never answered in `withinMs`. */
const attempt = (url: string, withinMs: number) =>
  Effect.promise(async (): Promise<Attempt> => {
    const started = Date.now()
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(withinMs) })
      await response.text()
      return { _tag: "Answered", status: response.status, ms: Date.now() - started }
    } catch (e) {
      return e instanceof Error && e.name === "TimeoutError"
        ? { _tag: "NoAnswer", ms: Date.now() - started }
        : { _tag: "Refused" }
    }
  })

describe("the HTTP server while it starts", () => {
  it.scopedLive(
    "opens its port only once its handlers are built: no request goes unanswered, none waits",
    () =>
      Effect.gen(function* () {
        const port = yield* freePort
        const config = yield* decodeConfig({
          dataDir: yield* tempDir(),
          http: { host: "127.0.0.1", port },
          log: { level: "error" },
        })
        const server = HttpServer.layer(config.http).pipe(
          Layer.provide(slowEnsureStream("2 seconds")),
          Layer.provideMerge(RoutingLive(config)),
          Layer.provideMerge(OutboundLive(config)),
          Layer.provideMerge(PluginHostLive(config)),
          Layer.provideMerge(InboxLive(config)),
          Layer.provideMerge(PipelineLive),
          Layer.provideMerge(ClusterLive(config)),
          Layer.provideMerge(CoreLive(config)),
        )
        const building = yield* Effect.forkScoped(Layer.build(server))
        // Knock until the app answers. Every request that gets in must be answered at once, and
        // the app must answer as soon as the port opens: a server that opened its port before
        // building its handlers left requests without an answer (or, with only the 503 of
        // `createAnsweringServer`, turned them away) for the two seconds of the slow bus.
        const answers: Array<Attempt> = []
        let opened: number | undefined
        const deadline = Date.now() + 30_000
        while (Date.now() < deadline) {
          const a = yield* attempt(`http://127.0.0.1:${port}/health`, 5_000)
          if (a._tag !== "Refused") {
            opened ??= Date.now() - (a._tag === "Answered" ? a.ms : 0)
            answers.push(a)
            if (a._tag === "NoAnswer" || a.status === 200) break
          }
          yield* Effect.sleep("5 millis")
        }
        assert.isDefined(opened, "the port never opened")
        const turnedAway = answers.filter((a) => a._tag === "Answered" && a.status !== 200).length
        const summary = `${answers.length} requests got in, ${turnedAway} turned away, the app ` +
          `answered ${Date.now() - opened!} ms after the port opened`
        assert.deepInclude(answers.at(-1), { _tag: "Answered", status: 200 }, summary)
        assert.isBelow(Date.now() - opened!, 1_000, summary)
        yield* Fiber.join(building)
      }),
    60_000,
  )

  it.scopedLive(
    "answers 503 with Retry-After while no app is attached, and stands aside once one is",
    () =>
      Effect.gen(function* () {
        const server = HttpServer.createAnsweringServer()
        yield* Effect.acquireRelease(
          Effect.async<void>((resume) => {
            server.listen(0, "127.0.0.1", () => resume(Effect.void))
          }),
          () =>
            Effect.async<void>((resume) => {
              server.close(() => resume(Effect.void))
            }),
        )
        const address = server.address()
        const port = typeof address === "object" && address !== null ? address.port : 0
        const url = `http://127.0.0.1:${port}/api/v1/events`

        const before = yield* Effect.promise(() =>
          fetch(url, { signal: AbortSignal.timeout(5_000) })
        )
        assert.strictEqual(before.status, 503)
        assert.strictEqual(before.headers.get("retry-after"), "1")
        yield* Effect.promise(() => before.text())

        server.on("request", (_request, response) => response.end("served"))
        const after = yield* Effect.promise(() =>
          fetch(url, { signal: AbortSignal.timeout(5_000) }).then(async (r) => ({
            status: r.status,
            text: await r.text(),
          }))
        )
        assert.deepStrictEqual(after, { status: 200, text: "served" })
      }),
    30_000,
  )
})
