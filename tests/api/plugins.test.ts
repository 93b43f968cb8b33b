/**
 * Plugins in a running server (`ServerLive`, SQLite and the embedded bus): a channel plugin in a
 * worker thread takes a customer's message on its webhook route (no token: providers carry
 * none), the pipeline stores it, an operator's reply goes out through the plugin's registered
 * channel adapter to the "provider" (a loopback server), and the delivery is recorded with the
 * provider's id. The plugins API lists, disables, enables, reloads and configures it.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { writePlugin } from "../support/PluginFixtures.ts"
import { tempDir } from "../support/TestDatabase.ts"
import { webhookReceiver } from "../support/WebhookReceiver.ts"
import { request } from "./ApiServer.ts"
import { eventually, startReplyServer } from "./ReplyServer.ts"

const loopSource = `
export default {
  async activate(chorus) {
    const sent = chorus.metrics.counter("sent", "replies handed to the provider")
    await chorus.routes.handle("POST", "/plugins/loop/webhook", async (request) => {
      if (request.headers["x-loop-secret"] !== chorus.settings.secret) return { status: 401, body: { error: "bad secret" } }
      const update = request.json()
      try {
        const { duplicate } = await chorus.channels.receive("loop", {
          account: "main",
          sender: { externalId: update.from, name: update.name },
          externalId: update.id,
          text: update.text,
          sentAt: update.at,
        })
        return { status: 200, body: { ok: true, duplicate } }
      } catch (error) {
        return { status: 400, body: { error: error.name, problems: error.problems } }
      }
    })
    await chorus.channels.register("loop", {
      async send(message) {
        const response = await chorus.http.fetch(chorus.settings.providerUrl, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ to: message.recipient.externalId, text: message.text, idempotencyKey: message.id }),
        })
        if (response.status >= 500) return { ok: false, retryable: true, code: String(response.status), reason: response.text() }
        if (response.status >= 400) return { ok: false, retryable: false, code: String(response.status), reason: response.text() }
        sent.inc()
        return { ok: true, externalId: response.json().id }
      },
    })
  },
}
`

const loopManifest = (providerHost: string) => ({
  kind: "channel",
  contributes: {
    channels: [{ name: "loop", capabilities: { maxTextLength: 1000, attachments: false } }],
    routes: [{ method: "POST", path: "/plugins/loop/webhook" }],
    settings: [
      { key: "secret", type: "string", required: true },
      { key: "providerUrl", type: "string", required: true },
    ],
  },
  permissions: { net: [providerHost] },
})

const post = (url: string, body: unknown, headers: Record<string, string>) =>
  Effect.promise(async () => {
    const response = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", ...headers },
      body: JSON.stringify(body),
    })
    return { status: response.status, body: await response.text() }
  })

describe("plugins in the server", () => {
  it.scopedLive(
    "a channel plugin: webhook in, stored; reply out through the plugin, delivered",
    () =>
      Effect.gen(function* () {
        const provider = yield* webhookReceiver
        const dataDir = yield* tempDir()
        const plugins = yield* tempDir("chorus-plugins-")
        writePlugin(plugins, {
          id: "loop",
          manifest: loopManifest(new URL(provider.url).host),
          source: loopSource,
        })
        const server = yield* startReplyServer({
          dataDir,
          pluginsDir: plugins,
          pluginSettings: { loop: { secret: "s3cret", providerUrl: `${provider.url}/send` } },
        })

        const bad = yield* post(`${server.url}/plugins/loop/webhook`, { id: "u0" }, {
          "x-loop-secret": "wrong",
        })
        assert.strictEqual(bad.status, 401)
        const ok = yield* post(`${server.url}/plugins/loop/webhook`, {
          id: "u1",
          from: "alice",
          name: "Alice",
          text: "My order is late",
          at: Date.parse("2026-11-24T09:00:00Z"),
        }, { "x-loop-secret": "s3cret" })
        assert.strictEqual(ok.status, 200, ok.body)
        const again = yield* post(`${server.url}/plugins/loop/webhook`, {
          id: "u1",
          from: "alice",
          text: "My order is late",
          at: Date.parse("2026-11-24T09:00:00Z"),
        }, { "x-loop-secret": "s3cret" })
        assert.deepStrictEqual(JSON.parse(again.body), { ok: true, duplicate: true })
        const malformed = yield* post(`${server.url}/plugins/loop/webhook`, {
          id: "u2",
          from: "bob",
        }, {
          "x-loop-secret": "s3cret",
        })
        assert.strictEqual(malformed.status, 400)
        const refusal = JSON.parse(malformed.body)
        assert.strictEqual(refusal.error, "InboundInvalid")
        assert.match(refusal.problems, /^text: /)

        let conversationId = ""
        yield* eventually("the conversation from the plugin's channel", () =>
          request(`${server.url}/api/v1/conversations?channel=loop`, {
            token: server.token,
            method: "GET",
          }).pipe(
            Effect.map((r) => {
              const items = (r.body as { conversations?: Array<{ id: string }> }).conversations ??
                []
              if (items.length > 0) {
                conversationId = items[0]!.id
              }
              return items.length === 1
            }),
          ))
        const reply = yield* request(
          `${server.url}/api/v1/conversations/${conversationId}/messages`,
          {
            token: server.token,
            body: { text: "Sorry! It ships today." },
          },
        )
        assert.strictEqual(reply.status, 202, JSON.stringify(reply.body))
        const replyId = (reply.body as { id: string }).id
        yield* eventually("the provider got the reply", () =>
          provider.received.length === 1)
        assert.deepStrictEqual(provider.received[0]!.json, {
          to: "alice",
          text: "Sorry! It ships today.",
          idempotencyKey: replyId,
        })
        // The plugin's own Content-Type reaches the provider (not application/octet-stream).
        assert.strictEqual(provider.received[0]!.headers["content-type"], "application/json")
        yield* eventually("the reply is sent, with the provider's id", () =>
          request(`${server.url}/api/v1/conversations/${conversationId}/messages`, {
            token: server.token,
            method: "GET",
          })
            .pipe(Effect.map((r) => {
              const items = (r.body as {
                messages: Array<
                  { id: string; delivery: { state: string }; externalId: string | null }
                >
              }).messages
              const out = items.find((m) =>
                m.id === replyId
              )
              return out?.delivery.state === "sent" && out.externalId === "ext-0"
            })))
        const status = yield* request(`${server.url}/api/v1/plugins/loop`, {
          token: server.token,
          method: "GET",
        })
        const body = status.body as {
          state: string
          channels: Array<string>
          counters: { sends: number; requests: number }
        }
        assert.strictEqual(body.state, "active")
        assert.deepStrictEqual(body.channels, ["loop"])
        assert.strictEqual(body.counters.sends, 1)
        assert.strictEqual(body.counters.requests, 4)
        const metrics = yield* Effect.promise(() =>
          fetch(`${server.url}/api/v1/metrics`, {
            headers: { authorization: `Bearer ${server.token}` },
          }).then((r) =>
            r.text()
          )
        )
        assert.include(metrics, "chorus_plugin_loop_sent 1")
      }),
    60_000,
  )

  it.scopedLive(
    "the plugins API: list, disable (503 on its routes), enable, reload, settings; 401, 404, 400",
    () =>
      Effect.gen(function* () {
        const dataDir = yield* tempDir()
        const plugins = yield* tempDir("chorus-plugins-")
        writePlugin(plugins, {
          id: "hello",
          manifest: {
            contributes: {
              routes: [{ method: "GET", path: "/plugins/hello/greet" }],
              settings: [
                { key: "greeting", type: "string", default: "hi" },
                { key: "times", type: "integer", default: 1, enum: [1, 2, 3] },
              ],
            },
          },
          source: `export async function activate(chorus) {
          await chorus.routes.handle("GET", "/plugins/hello/greet", () => ({ body: chorus.settings.greeting.repeat(chorus.settings.times) }))
        }`,
        })
        writePlugin(plugins, { id: "broken", manifest: { kind: "nonsense" }, source: "" })
        const server = yield* startReplyServer({ dataDir, pluginsDir: plugins })
        const api = (method: string, path: string, body?: unknown) =>
          request(`${server.url}/api/v1${path}`, {
            token: server.token,
            method,
            ...(body !== undefined ? { body } : {}),
          })
        const greet = () =>
          Effect.promise(async () => {
            const r = await fetch(`${server.url}/plugins/hello/greet`)
            return { status: r.status, text: await r.text() }
          })

        const list = yield* api("GET", "/plugins")
        const all = (list.body as {
          plugins: Array<{ id: string; state: string; problems: Array<{ path: string }> }>
        }).plugins
        assert.deepStrictEqual(all.map((p) => [p.id, p.state]), [["broken", "refused"], [
          "hello",
          "active",
        ]])
        assert.deepStrictEqual(all[0]!.problems.map((p) => p.path), ["kind"])
        assert.deepStrictEqual(yield* greet(), { status: 200, text: "hi" })

        const unauthorized = yield* request(`${server.url}/api/v1/plugins`, {
          token: null,
          method: "GET",
        })
        assert.strictEqual(unauthorized.status, 401)
        assert.strictEqual((yield* api("POST", "/plugins/nope/reload")).status, 404)

        const disabled = yield* api("POST", "/plugins/hello/disable")
        assert.strictEqual((disabled.body as { state: string }).state, "disabled")
        assert.strictEqual((yield* greet()).status, 503)
        assert.strictEqual((yield* api("POST", "/plugins/hello/reload")).status, 409)
        const enabled = yield* api("POST", "/plugins/hello/enable")
        assert.strictEqual((enabled.body as { state: string }).state, "active")
        assert.deepStrictEqual(yield* greet(), { status: 200, text: "hi" })

        const bad = yield* api("PUT", "/plugins/hello/settings", { times: 7, colour: "red" })
        assert.strictEqual(bad.status, 400)
        assert.strictEqual((bad.body as { problems: Array<string> }).problems.length, 2)
        const set = yield* api("PUT", "/plugins/hello/settings", { greeting: "hey ", times: 2 })
        assert.strictEqual(set.status, 200, JSON.stringify(set.body))
        assert.strictEqual((set.body as { generation: number }).generation, 3)
        assert.deepStrictEqual(yield* greet(), { status: 200, text: "hey hey " })

        const reloaded = yield* api("POST", "/plugins/hello/reload")
        assert.strictEqual((reloaded.body as { generation: number }).generation, 4)
        assert.deepStrictEqual(yield* greet(), { status: 200, text: "hey hey " })
        const unknownRoute = yield* Effect.promise(() =>
          fetch(`${server.url}/plugins/hello/nothing`)
        )
        assert.strictEqual(unknownRoute.status, 404)
      }),
    60_000,
  )
})
