/**
 * `chorus plugin new`'s templates: each kind scaffolds a plugin whose manifest passes the
 * host's checks and which, run in a real host through the test kit (in every mode), does its job:
 * the echo bot echoes, the channel sends replies to a provider and publishes its webhook's
 * messages as the pipeline expects them, the analytics plugin counts. The plugin's own test
 * (written by the scaffold) passes, and fails once the plugin is broken.
 */
import { spawn } from "node:child_process"
import * as NodeFs from "node:fs"
import * as NodeHttp from "node:http"
import type { AddressInfo } from "node:net"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import { Effect, Either, Schema } from "effect"
import { afterAll, assert, describe, it } from "vitest"
import { inboundKey } from "../../core/pipeline/Streams.ts"
import type { PluginMode } from "../../core/plugins/guest/Api.ts"
import { loadManifest } from "../../core/plugins/Manifest.ts"
import { scaffold, type ScaffoldKind } from "../../core/plugins/sdk/Scaffold.ts"
import { startTestHost, type TestHost } from "../../core/plugins/sdk/TestKit.ts"
import { InboundMessage, inboundMessageId } from "../../schemas/Inbound.ts"

const ROOT = NodePath.resolve(__dirname, "../..")
const roots: Array<string> = []
afterAll(() => {
  for (const root of roots) NodeFs.rmSync(root, { recursive: true, force: true })
})

/** Scaffold `name` of `kind` into a fresh temp directory, as `chorus plugin new` writes it. */
const scaffoldInto = (name: string, kind: ScaffoldKind, root?: string): string => {
  const parent = root ?? NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), "chorus-scaffold-"))
  if (root === undefined) roots.push(parent)
  const dir = NodePath.join(parent, name)
  const core = NodePath.relative(dir, NodePath.join(ROOT, "core"))
  const files = Either.getOrThrow(scaffold({ name, kind, core }))
  NodeFs.mkdirSync(dir)
  for (const file of files) NodeFs.writeFileSync(NodePath.join(dir, file.path), file.content)
  return dir
}

const withKit = async (
  options: Parameters<typeof startTestHost>[0],
  use: (kit: TestHost) => Promise<void>,
) => {
  const kit = await startTestHost(options)
  try {
    await use(kit)
  } finally {
    await kit.stop()
  }
}

const received = (n: number, text: string, direction = "in") => ({
  type: "message.received",
  version: 1,
  id: `message.received:m${n}`,
  occurredAt: new Date().toISOString(),
  message: { id: `m${n}`, conversationId: "c1", direction, channel: "api", text },
})

/** A provider's send endpoint on loopback: records requests, answers with `status`. */
const provider = async () => {
  const requests: Array<{ headers: NodeHttp.IncomingHttpHeaders; body: any }> = []
  let status = 200
  const server = NodeHttp.createServer((request, response) => {
    let body = ""
    request.on("data", (chunk) => (body += chunk))
    request.on("end", () => {
      requests.push({ headers: request.headers, body: JSON.parse(body) })
      response.writeHead(status, { "content-type": "application/json" })
      response.end(JSON.stringify(status === 200 ? { id: `p${requests.length}` } : { no: 1 }))
    })
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/send`,
    requests,
    answer: (s: number) => (status = s),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  }
}

describe("plugin scaffold", () => {
  it("refuses names that are not plugin ids, and channel names over 32 characters", () => {
    for (const name of ["Echo", "e", "crm-sync", "crm_sync", "1bot", "a".repeat(41)]) {
      const result = scaffold({ name, kind: "bot", core: "../../core" })
      assert.isTrue(Either.isLeft(result), name)
      if (Either.isLeft(result)) assert.include(result.left.message, "not a valid plugin id")
    }
    assert.isTrue(Either.isRight(scaffold({ name: "a".repeat(40), kind: "bot", core: "c" })))
    const long = scaffold({ name: "a".repeat(33), kind: "channel", core: "c" })
    assert.isTrue(Either.isLeft(long) && long.left.message.includes("at most 32"))
  })

  for (const kind of ["bot", "channel", "analytics"] as const) {
    it(`a ${kind} plugin's manifest passes the host's checks, declaring only what it uses`, async () => {
      const dir = scaffoldInto(`my${kind}`, kind)
      const loaded = await Effect.runPromise(loadManifest(dir))
      assert.strictEqual(loaded.manifest.id, `my${kind}`)
      assert.strictEqual(loaded.manifest.version, "0.1.0")
      assert.strictEqual(loaded.manifest.kind, kind)
      assert.strictEqual(loaded.manifest.entry, "index.mjs")
      assert.deepStrictEqual(loaded.manifest.engines, { chorus: "^1.0.0" })
      assert.deepStrictEqual(
        NodeFs.readdirSync(dir).sort(),
        ["README.md", "chorus.plugin.json", "index.mjs", "index.test.mjs"],
      )
      assert.deepStrictEqual(loaded.manifest.permissions.secrets, [])
      assert.deepStrictEqual(loaded.manifest.permissions.storage.tables, [])
    })
  }

  const modes: ReadonlyArray<PluginMode> = ["worker", "inprocess", "deno"]
  for (const mode of modes) {
    it(`the echo bot echoes customers' messages and counts them (${mode})`, async () => {
      const dir = scaffoldInto("echo", "bot")
      await withKit({ plugin: dir, mode, settings: { prefix: "> " } }, async (kit) => {
        const status = await kit.status()
        assert.strictEqual(status.state, "active", JSON.stringify(status.lastError))
        assert.strictEqual(status.mode, mode)
        await kit.publish("events.message.received", received(1, "hello"), { id: "e1" })
        await kit.publish("events.message.received", received(2, "mine", "out"), { id: "e2" })
        await kit.publish("events.message.received", received(3, "again"), { id: "e3" })
        const echoed = await kit.read("plugin-echo", { filter: "plugins.echo.echoed", count: 2 })
        assert.deepStrictEqual(echoed.map((m) => m.json().text), ["> hello", "> again"])
        assert.deepStrictEqual(echoed.map((m) => m.id), [
          "echoed-message.received:m1",
          "echoed-message.received:m3",
        ])
        const counts = await kit.waitFor(async () => {
          const r = await kit.request("GET", "/plugins/echo/status")
          return r.json().echoed === 2 ? r.json() : undefined
        })
        assert.deepStrictEqual(counts, { echoed: 2, last: "> again" })
        // Every event was delivered (and acknowledged), the one not "in" too.
        assert.strictEqual((await kit.status()).counters.delivered, 3)
      })
    })
  }

  for (const mode of modes) {
    it(`the channel sends replies to its provider and publishes its webhook's messages (${mode})`, async () => {
      const dir = scaffoldInto("shopchat", "channel")
      const p = await provider()
      try {
        await withKit(
          { plugin: dir, mode, settings: { sendUrl: p.url, webhookToken: "s3" } },
          async (kit) => {
            assert.deepStrictEqual((await kit.status()).channels, ["shopchat"])
            const outgoing = {
              id: "01M8OUT",
              conversationId: "c1",
              channel: "shopchat",
              account: "main",
              text: "Your parcel left today.",
              attachments: [],
              recipient: { externalId: "u1" },
            }
            assert.deepStrictEqual(await kit.send("shopchat", outgoing), {
              ok: true,
              externalId: "p1",
            })
            assert.deepStrictEqual(p.requests[0]!.body, {
              account: "main",
              to: "u1",
              text: "Your parcel left today.",
            })
            assert.strictEqual(p.requests[0]!.headers["idempotency-key"], "01M8OUT")
            p.answer(503)
            const retry = await kit.send("shopchat", outgoing)
            assert.deepInclude(retry, { ok: false, retryable: true, code: "http_503" })
            p.answer(400)
            assert.deepInclude(await kit.send("shopchat", outgoing), {
              ok: false,
              retryable: false,
            })

            const webhook = {
              account: "main",
              from: { id: "u1", name: "Ann" },
              messageId: "x1",
              text: "Where is it?",
              sentAt: "2026-11-23T10:00:00Z",
            }
            const unauthorized = await kit.request("POST", "/plugins/shopchat/webhook", {
              body: webhook,
            })
            assert.strictEqual(unauthorized.status, 401)
            const headers = { "X-Webhook-Token": "s3" }
            const bad = await kit.request("POST", "/plugins/shopchat/webhook", {
              body: { ...webhook, from: {} },
              headers,
            })
            assert.strictEqual(bad.status, 400)
            assert.include(bad.text(), "from.id")
            const first = await kit.request("POST", "/plugins/shopchat/webhook", {
              body: webhook,
              headers,
            })
            assert.strictEqual(first.status, 202)
            assert.deepStrictEqual(first.json(), { accepted: true, duplicate: false })
            const again = await kit.request("POST", "/plugins/shopchat/webhook", {
              body: webhook,
              headers,
            })
            assert.deepStrictEqual(again.json(), { accepted: true, duplicate: true })

            // What the pipeline reads: a valid InboundMessage, under the core's id and key.
            const [message] = await kit.read("inbound", { filter: "inbound.shopchat" })
            const inbound = Schema.decodeUnknownSync(InboundMessage)(message!.json())
            assert.strictEqual(message!.subject, "inbound.shopchat")
            assert.strictEqual(message!.id, inboundMessageId(inbound))
            assert.strictEqual(message!.key, inboundKey("shopchat", "main", "u1"))
            assert.deepStrictEqual(
              [inbound.channel, inbound.account, inbound.externalId, inbound.text],
              ["shopchat", "main", "x1", "Where is it?"],
            )
            assert.deepStrictEqual<unknown>(inbound.sender, {
              externalId: "u1",
              name: "Ann",
              verified: false,
            })
            assert.strictEqual(inbound.sentAt.toISOString(), "2026-11-23T10:00:00.000Z")
            const all = await kit.read("inbound", { filter: "inbound.>", count: 2, timeoutMs: 500 })
              .catch((e: Error) => e)
            assert.match(String(all), /1 of 2 messages/)
          },
        )
      } finally {
        await p.close()
      }
    })
  }

  for (const mode of modes) {
    it(`the analytics plugin counts events by type in its store and its metric (${mode})`, async () => {
      const dir = scaffoldInto("stats", "analytics")
      await withKit({ plugin: dir, mode }, async (kit) => {
        const types = ["message.received", "conversation.opened", "message.received"]
        for (const [i, type] of types.entries()) {
          await kit.publish(`events.${type}`, { type, version: 1, id: `${type}:${i}` }, {
            id: `e${i}`,
          })
        }
        const counts = await kit.waitFor(async () => {
          const body = (await kit.request("GET", "/plugins/stats/counts")).json()
          return body["message.received"] === 2 && body["conversation.opened"] === 1
            ? body
            : undefined
        })
        assert.deepStrictEqual(counts, { "conversation.opened": 1, "message.received": 2 })
        assert.match(
          kit.prometheus(),
          /chorus_plugin_stats_events_total\{type="message.received"\} 2/,
        )
        assert.match(
          kit.prometheus(),
          /chorus_plugin_stats_events_total\{type="conversation.opened"\} 1/,
        )
        // The counts are in the store: a new version reads them back.
        await kit.reload()
        await kit.publish("events.message.received", { id: "m:9" }, { id: "e9" })
        await kit.waitFor(async () =>
          (await kit.request("GET", "/plugins/stats/counts")).json()["message.received"] === 3
        )
      })
    })
  }

  it("the test kit refuses a plugin whose manifest is invalid, naming the problem", async () => {
    const dir = scaffoldInto("broken", "bot")
    const file = NodePath.join(dir, "chorus.plugin.json")
    const manifest = JSON.parse(NodeFs.readFileSync(file, "utf8"))
    manifest.permissions.bus.subscribe = []
    NodeFs.writeFileSync(file, JSON.stringify(manifest))
    const error = await startTestHost({ plugin: dir }).then(() => undefined, (e: Error) => e)
    assert.instanceOf(error, Error)
    assert.include(error!.message, "Invalid plugin manifest")
  })

  /** `node_modules/.bin/deno <args>` in `cwd`. */
  const deno = (args: ReadonlyArray<string>, cwd: string) =>
    new Promise<{ code: number | null; output: string }>((resolve) => {
      const child = spawn(NodePath.join(ROOT, "node_modules/.bin/deno"), args, {
        cwd,
        env: {
          PATH: process.env["PATH"] ?? "",
          HOME: process.env["HOME"] ?? "/tmp",
          NO_COLOR: "1",
        },
      })
      let output = ""
      child.stdout.on("data", (chunk) => (output += chunk))
      child.stderr.on("data", (chunk) => (output += chunk))
      child.on("exit", (code) => resolve({ code, output }))
    })

  it("the scaffolded files pass deno fmt --check and deno lint, whatever the id's length", async () => {
    const root = NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), "chorus-scaffold-"))
    roots.push(root)
    for (const kind of ["bot", "channel", "analytics"] as const) {
      for (const name of ["ab", "a".repeat(32), ...(kind === "channel" ? [] : ["b".repeat(40)])]) {
        scaffoldInto(name, kind, NodeFs.mkdtempSync(NodePath.join(root, `${kind}-`)))
      }
    }
    // The repository's deno.json settings (deno fmt and deno lint cover plugins/).
    const fmt = await deno(
      [
        "fmt",
        "--check",
        "--no-config",
        "--line-width",
        "100",
        "--indent-width",
        "2",
        "--no-semicolons",
        ".",
      ],
      root,
    )
    assert.strictEqual(fmt.code, 0, fmt.output)
    assert.match(fmt.output, /Checked 32 files/)
    const lint = await deno(["lint", "--no-config", "."], root)
    assert.strictEqual(lint.code, 0, lint.output)
  })

  /** Run the scaffolded plugins' own tests with vitest in a child process. */
  const vitest = (root: string) =>
    new Promise<{ code: number | null; output: string }>((resolve) => {
      const child = spawn(
        process.execPath,
        [NodePath.join(ROOT, "node_modules/vitest/vitest.mjs"), "run", "--root", root],
        {
          cwd: root,
          env: { PATH: process.env["PATH"] ?? "", HOME: process.env["HOME"] ?? "/tmp" },
        },
      )
      let output = ""
      child.stdout.on("data", (chunk) => (output += chunk))
      child.stderr.on("data", (chunk) => (output += chunk))
      child.on("exit", (code) => resolve({ code, output }))
    })

  it("the scaffolded plugins' own tests pass, and fail when the plugin is broken", async () => {
    const root = NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), "chorus-scaffold-"))
    roots.push(root)
    for (const kind of ["bot", "channel", "analytics"] as const) {
      scaffoldInto(`my${kind}`, kind, root)
    }
    const passed = await vitest(root)
    assert.strictEqual(passed.code, 0, passed.output)
    assert.match(passed.output, /Test Files\s+3 passed \(3\)/)
    assert.match(passed.output, /Tests\s+4 passed \(4\)/)

    // The bot stops echoing the text: its test must notice.
    const entry = NodePath.join(root, "mybot", "index.mjs")
    NodeFs.writeFileSync(
      entry,
      NodeFs.readFileSync(entry, "utf8").replace("${event.message.text}", "${event.message.id}"),
    )
    const failed = await vitest(NodePath.join(root, "mybot"))
    assert.strictEqual(failed.code, 1, failed.output)
    assert.match(failed.output, /echo: m1/)
  })
})
