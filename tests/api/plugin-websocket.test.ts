/**
 * WebSocket routes of plugins (the web chat widget's transport): a plugin in a worker thread
 * declares `"websocket": true` on a route and serves connections with `chorus.routes.websocket`.
 * A real client (`ws`) connects through the server; the plugin greets it on open, answers each
 * message in order, learns of the close; a reload closes its connections with 1012 so clients
 * reconnect to the new version; a path no plugin declares is refused.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
// @ts-expect-error -- ws ships no types of its own (and @types/ws is not installed)
import WebSocket from "ws"
import { writePlugin } from "../support/PluginFixtures.ts"
import { tempDir } from "../support/TestDatabase.ts"
import { request } from "./ApiServer.ts"
import { eventually, startReplyServer } from "./ReplyServer.ts"

const source = `
export async function activate(chorus) {
  const closed = chorus.metrics.counter("closed", "connections ended")
  await chorus.routes.websocket("/plugins/chat/ws/{room}", {
    async open(socket, request) {
      if (request.query.name === "mallory") throw new Error("not welcome")
      await socket.send(JSON.stringify({ hello: request.query.name, room: request.params.room, version: chorus.plugin.version }))
    },
    async message(socket, data) {
      // Slow on purpose for the first message: order must still hold.
      if (data === "m0") await new Promise((r) => setTimeout(r, 50))
      await socket.send(String(data).toUpperCase())
      if (data === "bye") await socket.close(4000, "see you")
    },
    close(socket, code) {
      closed.inc(1, { code: String(code) })
    },
  })
}
`

const connect = (url: string) =>
  Effect.promise(
    () =>
      // deno-lint-ignore no-explicit-any -- ws is untyped here
      new Promise<{ ws: any; received: Array<string>; closed: Promise<number> }>(
        (resolve, reject) => {
          const ws = new WebSocket(url)
          const received: Array<string> = []
          const closed = new Promise<number>((r) => ws.on("close", (code: number) => r(code)))
          ws.on("message", (data: unknown) => received.push(String(data)))
          ws.on("open", () => resolve({ ws, received, closed }))
          ws.on(
            "unexpected-response",
            (_req: unknown, res: { statusCode: number }) =>
              reject(new Error(`status ${res.statusCode}`)),
          )
          ws.on("error", reject)
        },
      ),
  )

describe("plugin websocket routes", () => {
  it.scopedLive(
    "connect, greet, answer in order, close; reload closes with 1012; undeclared refused",
    () =>
      Effect.gen(function* () {
        const plugins = yield* tempDir("chorus-plugins-")
        writePlugin(plugins, {
          id: "chat",
          manifest: {
            contributes: {
              routes: [{ method: "GET", path: "/plugins/chat/ws/{room}", websocket: true }],
            },
          },
          source,
        })
        const server = yield* startReplyServer({ dataDir: yield* tempDir(), pluginsDir: plugins })
        const base = server.url.replace("http", "ws")
        const a = yield* connect(`${base}/plugins/chat/ws/lobby?name=ann`)
        for (const m of ["m0", "m1", "m2"]) a.ws.send(m)
        yield* eventually("answers", () => a.received.length === 4)
        assert.deepStrictEqual(JSON.parse(a.received[0]!), {
          hello: "ann",
          room: "lobby",
          version: "1.0.0",
        })
        assert.deepStrictEqual(a.received.slice(1), ["M0", "M1", "M2"])
        a.ws.send("bye")
        assert.strictEqual(yield* Effect.promise(() => a.closed), 4000)

        const b = yield* connect(`${base}/plugins/chat/ws/lobby?name=bob`)
        yield* eventually("greeting", () => b.received.length === 1)
        const reloaded = yield* request(`${server.url}/api/v1/plugins/chat/reload`, {
          token: server.token,
          method: "POST",
        })
        assert.strictEqual(reloaded.status, 200)
        assert.strictEqual(yield* Effect.promise(() => b.closed), 1012)
        const c = yield* connect(`${base}/plugins/chat/ws/lobby?name=bob`)
        yield* eventually("greeting from the new version", () => c.received.length === 1)
        c.ws.close(1000)
        assert.strictEqual(yield* Effect.promise(() => c.closed), 1000)

        const refused = yield* connect(`${base}/plugins/chat/ws/lobby?name=mallory`)
        assert.strictEqual(yield* Effect.promise(() => refused.closed), 1008)
        const undeclared = yield* connect(`${base}/plugins/chat/other`)
        assert.strictEqual(yield* Effect.promise(() => undeclared.closed), 4404)

        yield* eventually("closes counted", () =>
          request(`${server.url}/api/v1/plugins/chat`, { token: server.token, method: "GET" }).pipe(
            Effect.map((r) =>
              JSON.stringify((r.body as { metrics: unknown }).metrics).includes('"1000"')
            ),
          ))
      }),
    60_000,
  )
})
