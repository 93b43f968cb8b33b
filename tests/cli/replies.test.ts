/**
 * Replies in `chorus start` as an integrator runs it: the api channel's webhook configured by
 * environment, a customer's message in, an operator's reply out to a receiver on loopback.
 * And `chorus config` never prints the webhook secret.
 */
import { createHmac } from "node:crypto"
import * as NodeFs from "node:fs"
import * as NodeHttp from "node:http"
import type { AddressInfo } from "node:net"
import * as NodeOs from "node:os"
import * as NodePath from "node:path"
import { afterEach, assert, describe, it } from "vitest"
import { startChorus } from "../support/ChorusProcess.ts"

const tmp = () => NodeFs.mkdtempSync(NodePath.join(NodeOs.tmpdir(), "chorus-replies-"))

const run = async (args: ReadonlyArray<string>, cwd: string, env: Record<string, string> = {}) => {
  const chorus = startChorus(args, { cwd, env: { CHORUS_LOG_LEVEL: "error", ...env } })
  const code = await chorus.exited
  return { code, stdout: chorus.lines, stderr: chorus.stderr.join("") }
}

const until = async <A>(
  what: string,
  get: () => A | undefined | Promise<A | undefined>,
  ms = 15_000,
) => {
  const deadline = Date.now() + ms
  while (Date.now() < deadline) {
    const value = await get()
    if (value !== undefined) return value
    await new Promise((r) => setTimeout(r, 50))
  }
  throw new Error(`timed out waiting for ${what}`)
}

const cleanups: Array<() => void> = []
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup()
})

describe("chorus start: replies", () => {
  it(
    "a reply to an api conversation reaches the configured webhook, signed; chorus config hides the secret",
    async () => {
      const posts: Array<{ headers: NodeHttp.IncomingHttpHeaders; body: string }> = []
      const receiver = NodeHttp.createServer((req, res) => {
        let body = ""
        req.on("data", (c: Buffer) => (body += c.toString()))
        req.on("end", () => {
          posts.push({ headers: req.headers, body })
          res.writeHead(200, { "content-type": "application/json" }).end('{"id":"crm-1"}')
        })
      })
      await new Promise<void>((r) => receiver.listen(0, "127.0.0.1", r))
      cleanups.push(() => receiver.close())
      const webhook = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`
      const env = {
        CHORUS_API_WEBHOOK_URL: webhook,
        CHORUS_API_WEBHOOK_SECRET: "s3cret-never-printed",
      }
      const cwd = tmp()

      const shown = await run(["config"], cwd, env)
      assert.strictEqual(shown.code, 0, shown.stderr)
      const printed = shown.stdout.join("\n")
      assert.notInclude(printed, "s3cret-never-printed")
      assert.deepStrictEqual(JSON.parse(printed).channels.api, {
        webhookUrl: webhook,
        webhookSecret: "<redacted>",
      })

      const created = await run(["token", "create", "--name", "replies"], cwd)
      assert.strictEqual(created.code, 0, created.stderr)
      const token = created.stdout[0]!
      const server = startChorus(["start"], { cwd, env: { CHORUS_HTTP_PORT: "0", ...env } })
      cleanups.push(() => server.child.kill("SIGKILL"))
      const url = await server.ready
      const api = async (path: string, body?: unknown) => {
        const response = await fetch(`${url}${path}`, {
          method: body === undefined ? "GET" : "POST",
          headers: {
            authorization: `Bearer ${token}`,
            ...(body !== undefined ? { "content-type": "application/json" } : {}),
          },
          ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        })
        return { status: response.status, body: await response.json() }
      }

      const inbound = await api("/api/v1/inbound", {
        account: "shop",
        sender: { id: "customer-42", name: "Ann" },
        externalId: "form-1",
        text: "Where is my parcel?",
      })
      assert.strictEqual(inbound.status, 202)
      const conversation = await until("the conversation", async () => {
        const list = await api("/api/v1/conversations?channel=api")
        return list.body.conversations[0] as { id: string } | undefined
      })
      const reply = await api(`/api/v1/conversations/${conversation.id}/messages`, {
        text: "It left the warehouse today.",
      })
      assert.strictEqual(reply.status, 202, JSON.stringify(reply.body))

      const post = await until("the webhook POST", () => posts[0])
      const timestamp = post.headers["x-chorus-timestamp"] as string
      assert.strictEqual(
        post.headers["x-chorus-signature"],
        `sha256=${
          createHmac("sha256", "s3cret-never-printed").update(`${timestamp}.${post.body}`).digest(
            "hex",
          )
        }`,
      )
      assert.strictEqual(JSON.parse(post.body).recipient.id, "customer-42")
      const sent = await until("state sent", async () => {
        const history = await api(`/api/v1/conversations/${conversation.id}/messages`)
        const out = history.body.messages[0]
        return out?.delivery?.state === "sent" ? out : undefined
      })
      assert.strictEqual(sent.externalId, "crm-1")
      assert.lengthOf(posts, 1)
      assert.notInclude(server.lines.join("\n"), "s3cret-never-printed")

      server.child.kill("SIGTERM")
      assert.strictEqual(await server.exited, 0)
    },
    60_000,
  )
})
