/**
 * `chorus plugin new`: the files of a new plugin, from a template per kind (an echo bot, a channel,
 * an analytics counter). Pure: it returns the files, the CLI writes them. Every template is a
 * working plugin (plain JavaScript, no build step) with a manifest that declares exactly what its
 * code uses, a README and a test that runs it in a real host through the test kit
 * (`core/plugins/sdk/TestKit.ts`).
 *
 * @example
 * ```ts
 * const files = scaffold({ name: "echo", kind: "bot", core: "../../core" })
 * // Right([{ path: "chorus.plugin.json", content: "{…}" }, { path: "index.mjs", … }, …])
 * ```
 */
import { Data, Either } from "effect"
import { MANIFEST_FILE } from "../../../schemas/PluginManifest.ts"

export const scaffoldKinds = ["bot", "channel", "analytics"] as const
export type ScaffoldKind = (typeof scaffoldKinds)[number]

export interface ScaffoldOptions {
  /** The plugin id and directory name: 2–40 lower-case letters and digits, starting with a letter. */
  readonly name: string
  readonly kind: ScaffoldKind
  /**
   * Chorus's `core/` directory relative to the plugin directory (`../../core` for
   * `plugins/<name>`): the test imports the test kit from there, and the JSDoc types name the
   * host API there.
   */
  readonly core: string
}

export interface ScaffoldFile {
  /** Relative to the plugin directory. */
  readonly path: string
  readonly content: string
}

/** The name cannot be a plugin id (or, for a channel, a channel name). */
export class ScaffoldRefused extends Data.TaggedError("ScaffoldRefused")<{
  readonly reason: string
}> {
  override get message() {
    return this.reason
  }
}

const ID = /^[a-z][a-z0-9]{1,39}$/

/** The files of a new plugin `name` of `kind`, or why that name cannot be one. */
export const scaffold = (
  options: ScaffoldOptions,
): Either.Either<ReadonlyArray<ScaffoldFile>, ScaffoldRefused> => {
  const { name: id, kind } = options
  if (!ID.test(id)) {
    return Either.left(
      new ScaffoldRefused({
        reason: `${JSON.stringify(id)} is not a valid plugin id: use 2 to 40 lower-case letters ` +
          `and digits, starting with a letter, without '-' or '_' (e.g. "echo", "crmsync")`,
      }),
    )
  }
  if (kind === "channel" && id.length > 32) {
    return Either.left(
      new ScaffoldRefused({
        reason: `a channel plugin's id is also its channel name, which has at most 32 ` +
          `characters; ${JSON.stringify(id)} has ${id.length}`,
      }),
    )
  }
  const template = templates[kind](id, `${options.core}/plugins/guest/Api.ts`)
  return Either.right([
    { path: MANIFEST_FILE, content: JSON.stringify(template.manifest, null, 2) + "\n" },
    { path: "index.mjs", content: template.source },
    { path: "index.test.mjs", content: template.test(`${options.core}/plugins/sdk/TestKit.ts`) },
    { path: "README.md", content: wrapMarkdown(template.readme) },
  ])
}

/**
 * Re-wrap the prose of a Markdown text at `width` columns, as `deno fmt` does, so a new plugin's
 * README passes `deno fmt --check` whatever the length of its id. Paragraphs and list items
 * are filled greedily; code spans are never split; headings, fences and tables are kept.
 */
export const wrapMarkdown = (text: string, width = 100): string => {
  const out: Array<string> = []
  let block: { indent: string; first: string; words: Array<string> } | undefined
  const flush = () => {
    if (block === undefined) return
    let line = block.first
    let empty = true
    for (const word of block.words) {
      if (!empty && line.length + 1 + word.length > width) {
        out.push(line)
        line = block.indent + word
      } else {
        line += (empty ? "" : " ") + word
      }
      empty = false
    }
    out.push(line)
    block = undefined
  }
  let fenced = false
  for (const line of text.split("\n")) {
    if (line.startsWith("```")) {
      flush()
      fenced = !fenced
      out.push(line)
      continue
    }
    if (fenced || line.trim() === "" || line.startsWith("#") || line.startsWith("|")) {
      flush()
      out.push(line)
      continue
    }
    const item = /^(\s*)([-*] |\d+\. )(.*)$/.exec(line)
    if (item !== null) {
      flush()
      block = {
        first: item[1]! + item[2]!,
        indent: item[1]! + " ".repeat(item[2]!.length),
        words: words(item[3]!),
      }
    } else if (block !== undefined) {
      block.words.push(...words(line))
    } else {
      block = { first: "", indent: "", words: words(line) }
    }
  }
  flush()
  return out.join("\n")
}

/** Words separated by spaces, a code span (with its spaces) being part of one word. */
const words = (line: string): Array<string> => {
  const result: Array<string> = []
  let current = ""
  let code = false
  for (const ch of line.trim()) {
    if (ch === "`") code = !code
    if (ch === " " && !code) {
      if (current !== "") result.push(current)
      current = ""
    } else {
      current += ch
    }
  }
  if (current !== "") result.push(current)
  return result
}

interface Template {
  readonly manifest: Record<string, unknown>
  readonly source: string
  readonly test: (testKit: string) => string
  readonly readme: string
}

const base = (id: string, kind: ScaffoldKind, description: string) => ({
  id,
  version: "0.1.0",
  name: id,
  description,
  engines: { chorus: "^1.0.0" },
  entry: "index.mjs",
  kind,
})

const testing = (id: string) => `
## Test

\`index.test.mjs\` starts a real plugin host around this directory (the test kit,
\`core/plugins/sdk/TestKit.ts\`: embedded bus, SQLite in a temporary directory) and checks what the
plugin does. From the Chorus checkout:

\`\`\`sh
npx vitest run plugins/${id}
\`\`\`

Run it in a worker thread or in Deno too by passing \`mode: "worker"\` or \`mode: "deno"\` to
\`startTestHost\`. See "Testing your plugin" in docs/plugins.md.
`

// ---------------------------------------------------------------------------------------------
// bot: an echo bot

const bot = (id: string, api: string): Template => ({
  manifest: {
    ...base(id, "bot", "Echoes every customer message on its own stream and counts them."),
    contributes: {
      routes: [{ method: "GET", path: `/plugins/${id}/status`, description: "Counts." }],
      subjects: { publishes: [`plugins.${id}.echoed`], consumes: ["events.message.received"] },
      settings: [{
        key: "prefix",
        type: "string",
        default: "echo: ",
        description: "Put before the customer's text.",
      }],
    },
    permissions: {
      bus: { publish: [`plugins.${id}.>`], subscribe: ["events.message.received"] },
    },
  },
  source: `/**
 * ${id}: an echo bot. For every message a customer sends (event \`message.received\`), it
 * publishes \`plugins.${id}.echoed\` on its own stream \`plugin-${id}\` with the text echoed, and
 * counts it. \`GET /plugins/${id}/status\` reports the count and the last echo.
 *
 * The host API (\`chorus\`) is documented in docs/plugins.md, "Host API reference".
 */

/** @typedef {import("${api}").Chorus} Chorus */

export default {
  /** @param {Chorus} chorus */
  async activate(chorus) {
    const id = chorus.plugin.id
    await chorus.bus.ensureStream({ name: \`plugin-\${id}\`, subjects: [\`plugins.\${id}.>\`] })

    // A durable consumer: kept across restarts and reloads, so no message is echoed twice.
    await chorus.bus.consume(
      { stream: "events", name: "echo", filter: "events.message.received", concurrency: 1 },
      async (message) => {
        const event = message.json()
        if (event.message?.direction !== "in") return
        const echo = {
          conversationId: event.message.conversationId,
          messageId: event.message.id,
          channel: event.message.channel,
          text: \`\${chorus.settings.prefix ?? ""}\${event.message.text}\`,
        }
        // The event id makes the publish idempotent: a redelivery stores one echo.
        await chorus.bus.publish(\`plugins.\${id}.echoed\`, echo, { id: \`echoed-\${event.id}\` })
        const echoed = Number((await chorus.storage.kv.get("echoed")) ?? 0) + 1
        await chorus.storage.kv.set("echoed", echoed)
        await chorus.storage.kv.set("last", echo.text)
        chorus.log.info("echoed", { conversationId: echo.conversationId, text: echo.text })
      },
    )

    await chorus.routes.handle("GET", \`/plugins/\${id}/status\`, async () => ({
      body: {
        echoed: Number((await chorus.storage.kv.get("echoed")) ?? 0),
        last: (await chorus.storage.kv.get("last")) ?? null,
      },
    }))
    chorus.log.info("echo bot ready")
  },
}
`,
  test: (testKit) =>
    `import { afterAll, assert, beforeAll, test } from "vitest"
import { startTestHost } from "${testKit}"

const id = "${id}"

/** @type {import("${testKit}").TestHost} */
let kit
beforeAll(async () => {
  kit = await startTestHost({ plugin: new URL(".", import.meta.url) })
})
afterAll(() => kit?.stop())

/** A \`message.received\` event as the pipeline publishes it (only the fields the bot reads). */
const received = (n, text) => ({
  type: "message.received",
  version: 1,
  id: \`message.received:m\${n}\`,
  occurredAt: new Date().toISOString(),
  message: { id: \`m\${n}\`, conversationId: "c1", direction: "in", channel: "api", text },
})

test("echoes a customer's message on its own stream and counts it", async () => {
  assert.strictEqual((await kit.status()).state, "active")
  await kit.publish("events.message.received", received(1, "hello"), { id: "e1" })
  const [echoed] = await kit.read(\`plugin-\${id}\`, { filter: \`plugins.\${id}.echoed\` })
  assert.deepStrictEqual(echoed.json(), {
    conversationId: "c1",
    messageId: "m1",
    channel: "api",
    text: "echo: hello",
  })
  const status = await kit.waitFor(async () => {
    const response = await kit.request("GET", \`/plugins/\${id}/status\`)
    return response.json().echoed === 1 ? response : undefined
  })
  assert.strictEqual(status.status, 200)
  assert.deepStrictEqual(status.json(), { echoed: 1, last: "echo: hello" })
})
`,
  readme: `# ${id}

An echo bot for Chorus. For every message a customer sends (event \`message.received\`), it
publishes \`plugins.${id}.echoed\` on its own stream \`plugin-${id}\` with the text echoed:

\`\`\`json
{ "conversationId": "01M8…", "messageId": "01M8…", "channel": "api", "text": "echo: hello" }
\`\`\`

and counts it. \`GET /plugins/${id}/status\` answers \`{"echoed": 3, "last": "echo: hello"}\`.

## Files

- \`chorus.plugin.json\`: the manifest: the route, the setting \`prefix\`, and the permissions the
  code needs (consume \`events.message.received\`, publish on \`plugins.${id}.>\`). Anything else
  it tried would be refused with \`PermissionDenied\`.
- \`index.mjs\`: the code, plain JavaScript; \`activate(chorus)\` receives the host API.
- \`index.test.mjs\`: its test.

## Settings

| Key      | Default    | Meaning                        |
| -------- | ---------- | ------------------------------ |
| \`prefix\` | \`"echo: "\` | Put before the customer's text |

Set them in the config file (\`plugins.settings.${id}.prefix\`) or with
\`PUT /api/v1/plugins/${id}/settings\`.
${testing(id)}`,
})

// ---------------------------------------------------------------------------------------------
// channel: replies out through a provider's HTTP API, messages in through a webhook

const channel = (id: string, api: string): Template => ({
  manifest: {
    ...base(
      id,
      "channel",
      "A channel: replies are POSTed to a provider, messages come by webhook.",
    ),
    contributes: {
      channels: [{ name: id, capabilities: { maxTextLength: 4096, attachments: false } }],
      routes: [{
        method: "POST",
        path: `/plugins/${id}/webhook`,
        description: "The provider's webhook: one customer message per request.",
      }],
      settings: [
        {
          key: "sendUrl",
          type: "string",
          default: "http://127.0.0.1:9999/send",
          description: "Where replies are POSTed (the provider's send endpoint).",
        },
        {
          key: "webhookToken",
          type: "string",
          default: "",
          description: "If set, webhook requests must carry it in the X-Webhook-Token header.",
        },
      ],
    },
    permissions: {
      net: ["127.0.0.1", "localhost"],
    },
  },
  source: `/**
 * ${id}: a channel. Replies to customers on channel \`${id}\` are POSTed as JSON to the
 * \`sendUrl\` setting; the provider's webhook, \`POST /plugins/${id}/webhook\`, brings customers'
 * messages in, handed to Chorus with \`chorus.channels.receive\` for the conversation pipeline.
 *
 * Replace the two wire formats below (\`send\`'s request, the webhook's body) by your provider's,
 * and its host in permissions.net.
 */

/** @typedef {import("${api}").Chorus} Chorus */

export default {
  /** @param {Chorus} chorus */
  async activate(chorus) {
    const channel = chorus.plugin.id

    await chorus.channels.register(channel, {
      async send(message) {
        /** @type {import("${api}").GuestResponse} */
        let response
        try {
          response = await chorus.http.fetch(String(chorus.settings.sendUrl), {
            method: "POST",
            // The Chorus message id: the provider can drop a retried send it already took.
            headers: { "content-type": "application/json", "idempotency-key": message.id },
            body: JSON.stringify({
              account: message.account,
              to: message.recipient.externalId,
              text: message.text ?? "",
            }),
          })
        } catch (error) {
          if (error?.name === "PermissionDenied") {
            return { ok: false, retryable: false, code: "permission_denied", reason: error.message }
          }
          return {
            ok: false,
            retryable: true,
            code: "network",
            reason: String(error?.message ?? error),
          }
        }
        if (response.status >= 200 && response.status < 300) {
          const body = safeJson(response)
          return { ok: true, externalId: String(body?.id ?? message.id) }
        }
        const retryable = response.status === 429 || response.status >= 500
        const retryAfter = Number(response.headers["retry-after"])
        return {
          ok: false,
          retryable,
          code: \`http_\${response.status}\`,
          reason: response.text().slice(0, 200) || \`status \${response.status}\`,
          ...(retryable && retryAfter > 0 ? { retryAfterMs: retryAfter * 1000 } : {}),
        }
      },
    })

    await chorus.routes.handle("POST", \`/plugins/\${channel}/webhook\`, async (request) => {
      const token = String(chorus.settings.webhookToken ?? "")
      if (token !== "" && request.headers["x-webhook-token"] !== token) {
        return { status: 401, body: { error: "bad webhook token" } }
      }
      const body = safeJson(request)
      const problem = checkWebhook(body)
      if (problem !== undefined) return { status: 400, body: { error: problem } }
      // Checked against the inbound schema by the host, stored once per messageId however often
      // the webhook is redelivered, in the order each sender wrote. Resolves once durable: only
      // then may the provider be told it arrived.
      const { duplicate } = await chorus.channels.receive(channel, {
        account: body.account,
        sender: { externalId: body.from.id, ...(body.from.name ? { name: body.from.name } : {}) },
        externalId: body.messageId,
        text: body.text,
        ...(body.sentAt !== undefined ? { sentAt: body.sentAt } : {}),
      })
      return { status: 202, body: { accepted: true, duplicate } }
    })
    chorus.log.info("channel ready", { sendUrl: chorus.settings.sendUrl })
  },
}

/** The provider's webhook body: \`{ account, from: { id, name? }, messageId, text, sentAt? }\`. */
const checkWebhook = (body) => {
  if (typeof body !== "object" || body === null) return "expected a JSON object"
  for (const key of ["account", "messageId", "text"]) {
    if (typeof body[key] !== "string" || body[key] === "") return \`\${key}: expected a string\`
  }
  if (typeof body.from?.id !== "string" || body.from.id === "") return "from.id: expected a string"
  if (body.sentAt !== undefined && Number.isNaN(Date.parse(body.sentAt))) {
    return "sentAt: expected an ISO 8601 date-time"
  }
  return undefined
}

const safeJson = (r) => {
  try {
    return r.json()
  } catch {
    return undefined
  }
}
`,
  test: (testKit) =>
    `import * as http from "node:http"
import { afterAll, assert, beforeAll, test } from "vitest"
import { startTestHost } from "${testKit}"

const id = "${id}"
const webhook = \`/plugins/\${id}/webhook\`

// A stand-in for the provider's send endpoint.
const sent = []
const provider = http.createServer((request, response) => {
  let body = ""
  request.on("data", (chunk) => (body += chunk))
  request.on("end", () => {
    sent.push({ headers: request.headers, body: JSON.parse(body) })
    response.writeHead(200, { "content-type": "application/json" })
    response.end(JSON.stringify({ id: \`p\${sent.length}\` }))
  })
})

/** @type {import("${testKit}").TestHost} */
let kit
beforeAll(async () => {
  await new Promise((resolve) => provider.listen(0, "127.0.0.1", resolve))
  const sendUrl = \`http://127.0.0.1:\${provider.address().port}/send\`
  kit = await startTestHost({ plugin: new URL(".", import.meta.url), settings: { sendUrl } })
})
afterAll(async () => {
  await kit?.stop()
  provider.close()
})

test("sends a reply to the provider", async () => {
  const result = await kit.send(id, {
    id: "m1",
    conversationId: "c1",
    channel: id,
    account: "main",
    text: "hello",
    attachments: [],
    recipient: { externalId: "u1" },
  })
  assert.deepStrictEqual(result, { ok: true, externalId: "p1" })
  assert.deepStrictEqual(sent[0].body, { account: "main", to: "u1", text: "hello" })
  assert.strictEqual(sent[0].headers["idempotency-key"], "m1")
})

test("publishes a webhook's message on inbound.<id>, once", async () => {
  const body = { account: "main", from: { id: "u1", name: "Ann" }, messageId: "x1", text: "hi" }
  const first = await kit.request("POST", webhook, { body })
  assert.strictEqual(first.status, 202)
  const again = await kit.request("POST", webhook, { body })
  assert.deepStrictEqual(again.json(), { accepted: true, duplicate: true })
  const [message] = await kit.read("inbound", { filter: \`inbound.\${id}\` })
  assert.strictEqual(message.id, \`\${id}:main:x1\`)
  assert.deepInclude(message.json(), {
    channel: id,
    account: "main",
    sender: { externalId: "u1", name: "Ann", verified: false },
    externalId: "x1",
    text: "hi",
  })
  const bad = await kit.request("POST", webhook, { body: { text: "no sender" } })
  assert.strictEqual(bad.status, 400)
})
`,
  readme: `# ${id}

A Chorus channel named \`${id}\`.

- **Out:** a reply to a customer on channel \`${id}\` is POSTed to the \`sendUrl\` setting as
  \`{"account", "to", "text"}\` with the Chorus message id in \`Idempotency-Key\`. A 2xx answer is a
  success (its JSON \`id\` becomes the message's external id); 429 and 5xx are retried by Chorus
  (honouring \`Retry-After\`); other statuses fail the message.
- **In:** \`POST /plugins/${id}/webhook\` with
  \`{"account": "main", "from": {"id": "u1", "name": "Ann"}, "messageId": "x1", "text": "hi"}\`
  (\`sentAt\` optional) publishes the message on \`inbound.${id}\`, where the pipeline stores it in
  the sender's conversation. A redelivered webhook (same \`messageId\`) is stored once.

To make it a real channel, replace these two wire formats by your provider's and put its host in
\`permissions.net\` (now \`127.0.0.1\` and \`localhost\`: fetching any other host is refused).

## Settings

| Key            | Default                      | Meaning                                            |
| -------------- | ---------------------------- | -------------------------------------------------- |
| \`sendUrl\`      | \`http://127.0.0.1:9999/send\` | Where replies are POSTed                           |
| \`webhookToken\` | \`""\` (none)                  | If set, webhooks must send it in \`X-Webhook-Token\` |

Webhook routes are not behind Chorus's API tokens (a provider has none): set \`webhookToken\` or
check your provider's signature before going live.
${testing(id)}`,
})

// ---------------------------------------------------------------------------------------------
// analytics: events counted by type

const analytics = (id: string, api: string): Template => ({
  manifest: {
    ...base(id, "analytics", "Counts Chorus events by type."),
    contributes: {
      routes: [{ method: "GET", path: `/plugins/${id}/counts`, description: "Counts by type." }],
      subjects: { consumes: ["events.>"] },
    },
    permissions: { bus: { subscribe: ["events.>"] } },
  },
  source: `/**
 * ${id}: counts Chorus events by type (\`message.received\`, \`conversation.opened\`, …) in the
 * plugin's key-value store, where they survive restarts, and in the metric
 * \`chorus_plugin_${id}_events_total{type}\` of \`GET /api/v1/metrics\`.
 * \`GET /plugins/${id}/counts\` answers \`{"message.received": 12, …}\`.
 */

/** @typedef {import("${api}").Chorus} Chorus */

export default {
  /** @param {Chorus} chorus */
  async activate(chorus) {
    const events = chorus.metrics.counter("events_total", "Events seen, by type")

    // One at a time: each count is read, then written.
    await chorus.bus.consume(
      { stream: "events", name: "counter", filter: "events.>", concurrency: 1 },
      async (message) => {
        const type = message.subject.slice("events.".length)
        const count = Number((await chorus.storage.kv.get(\`count:\${type}\`)) ?? 0) + 1
        await chorus.storage.kv.set(\`count:\${type}\`, count)
        events.inc(1, { type })
      },
    )

    await chorus.routes.handle("GET", \`/plugins/\${chorus.plugin.id}/counts\`, async () => {
      const counts = {}
      for (const key of await chorus.storage.kv.list("count:")) {
        counts[key.slice("count:".length)] = Number(await chorus.storage.kv.get(key))
      }
      return { body: counts }
    })
  },
}
`,
  test: (testKit) =>
    `import { afterAll, assert, beforeAll, test } from "vitest"
import { startTestHost } from "${testKit}"

const id = "${id}"

/** @type {import("${testKit}").TestHost} */
let kit
beforeAll(async () => {
  kit = await startTestHost({ plugin: new URL(".", import.meta.url) })
})
afterAll(() => kit?.stop())

const event = (type, n) => ({ type, version: 1, id: \`\${type}:\${n}\` })

test("counts events by type, in its store and its metric", async () => {
  await kit.publish("events.message.received", event("message.received", 1), { id: "e1" })
  await kit.publish("events.message.received", event("message.received", 2), { id: "e2" })
  await kit.publish("events.conversation.opened", event("conversation.opened", 1), { id: "e3" })
  const counts = await kit.waitFor(async () => {
    const body = (await kit.request("GET", \`/plugins/\${id}/counts\`)).json()
    return body["conversation.opened"] === 1 && body["message.received"] === 2 ? body : undefined
  })
  assert.deepStrictEqual(counts, { "conversation.opened": 1, "message.received": 2 })
  assert.include(kit.prometheus(), \`chorus_plugin_\${id}_events_total{type="message.received"} 2\`)
})
`,
  readme: `# ${id}

Counts Chorus events by type (\`message.received\`, \`conversation.opened\`, …):

- in the plugin's key-value store, so the counts survive restarts;
- in the metric \`chorus_plugin_${id}_events_total{type="…"}\` (\`GET /api/v1/metrics\`).

\`GET /plugins/${id}/counts\` answers \`{"message.received": 12, "conversation.opened": 3}\`.

It reads every event (\`permissions.bus.subscribe: ["events.>"]\`) and touches nothing else.
Its durable consumer starts at the oldest event the \`events\` stream keeps (30 days), so a fresh
install counts the past too.
${testing(id)}`,
})

const templates: Record<ScaffoldKind, (id: string, api: string) => Template> = {
  bot,
  channel,
  analytics,
}
