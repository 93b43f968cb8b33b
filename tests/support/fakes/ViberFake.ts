/**
 * A fake Viber REST Bot API on loopback (node:http, port 0) for tests of the Viber channel
 * (plugins/viber). It speaks Viber's wire format: `POST /pa/<method>` with JSON and the
 * `X-Viber-Auth-Token` header, answering HTTP 200 with `{ status, status_message, … }`;
 * `message_token`s are 64-bit integers written as JSON numbers, as Viber writes them.
 *
 * It does: bots by token (status 2 for others), `set_webhook` (Viber posts a signed `webhook`
 * callback to the URL and fails with 1 invalidUrl unless it gets 200), `get_account_info`,
 * `send_message` (only to subscribed users, else 6 receiverNotSubscribed; at most 100 messages
 * an hour to a user who has not replied, else 12; a picture's or file's `media` URL is fetched
 * as Viber does, and refused with 3 badData when it cannot be, or a picture's URL does not end
 * in .jpg/.jpeg/.png), and callbacks to the bot's webhook signed with
 * `X-Viber-Content-Signature` (HMAC-SHA256 hex of the raw body with the token). Tests arm
 * failures (any status, for the next calls) and read what was sent.
 */
import { createHmac } from "node:crypto"
import * as NodeHttp from "node:http"
import type { AddressInfo } from "node:net"
import { Effect } from "effect"

export interface ViberSent {
  readonly message_token: string
  readonly receiver: string
  readonly body: Record<string, any>
  /** The bytes at `media`, as the fake fetched them (pictures, files). */
  readonly media?: Uint8Array
}

export interface ViberCall {
  readonly method: string
  readonly body: Record<string, any>
  readonly status: number
}

export interface ViberFake {
  readonly apiRoot: string
  readonly calls: (method?: string) => ReadonlyArray<ViberCall>
  readonly sent: () => ReadonlyArray<ViberSent>
  /** The webhook a bot set (undefined until set_webhook succeeded). */
  readonly webhook: (token: string) => { url: string; event_types: Array<string> } | undefined
  /** Answer the next `times` (1) calls of `method` with this status. */
  readonly failNext: (method: string, status: number, message?: string, times?: number) => void
  /** Answer the next calls with HTTP `code` (a 5xx of Viber's front). */
  readonly failHttpNext: (method: string, code: number, times?: number) => void
  /** The user may receive messages (they subscribed); `unsubscribe` undoes it. */
  readonly subscribe: (userId: string) => void
  readonly unsubscribe: (userId: string) => void
  /**
   * POST a callback to the bot's webhook, signed (or with `signature` given). `event` is JSON
   * text (a fixture, `message_token` as a bare number) or a value. Answers status and body.
   */
  readonly post: (
    token: string,
    event: string | Record<string, unknown>,
    options?: { readonly signature?: string; readonly messageToken?: string },
  ) => Promise<{ readonly status: number; readonly body: string }>
  /** Serve bytes at a URL of the fake (media a user sent); answers its URL. */
  readonly addFile: (path: string, bytes: Uint8Array) => string
  readonly close: () => Promise<void>
}

const STATUS: Record<number, string> = {
  0: "ok",
  1: "invalidUrl",
  2: "invalidAuthToken",
  3: "badData",
  4: "missingData",
  5: "receiverNotRegistered",
  6: "receiverNotSubscribed",
  10: "webhookNotSet",
  12: "tooManyRequests",
  13: "apiVersionNotSupported",
}

/** JSON text with `message_token` written as a bare 64-bit number, as Viber writes it. */
const viberJson = (value: unknown) =>
  JSON.stringify(value).replace(/"message_token":"(\d+)"/g, '"message_token":$1')

export const signBody = (body: string, token: string) =>
  createHmac("sha256", token).update(body).digest("hex")

export const viberFake = (tokens: ReadonlyArray<string>) =>
  Effect.acquireRelease(
    Effect.promise(() => startViberFake(tokens)),
    (fake) => Effect.promise(() => fake.close()),
  )

export const startViberFake = async (tokens: ReadonlyArray<string>): Promise<ViberFake> => {
  const known = new Set(tokens)
  const calls: Array<ViberCall> = []
  const sent: Array<ViberSent> = []
  const webhooks = new Map<string, { url: string; event_types: Array<string> }>()
  const failures = new Map<string, Array<{ status: number; message: string } | { http: number }>>()
  const subscribed = new Set<string>()
  const unanswered = new Map<string, Array<number>>()
  const files = new Map<string, Uint8Array>()
  let tokenSeq = 5741311803571730000n
  let root = ""

  const postWebhook = async (
    token: string,
    body: string,
    signature = signBody(body, token),
    url = webhooks.get(token)?.url,
  ) => {
    if (url === undefined) throw new Error("no webhook set for this bot")
    const response = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", "x-viber-content-signature": signature },
      body,
    })
    return { status: response.status, body: await response.text() }
  }

  const fetchMedia = async (url: string): Promise<Uint8Array | undefined> => {
    try {
      const response = await fetch(url)
      return response.status === 200 ? new Uint8Array(await response.arrayBuffer()) : undefined
    } catch {
      return undefined
    }
  }

  const method = async (
    name: string,
    token: string | undefined,
    body: Record<string, any>,
  ): Promise<Record<string, any>> => {
    if (token === undefined || !known.has(token)) return { status: 2, status_message: STATUS[2] }
    const armed = failures.get(name)?.shift()
    if (armed !== undefined && "status" in armed) {
      return { status: armed.status, status_message: armed.message }
    }
    switch (name) {
      case "set_webhook": {
        const url = String(body["url"] ?? "")
        if (url === "") {
          webhooks.delete(token)
          return { status: 0, status_message: "ok" }
        }
        const check = viberJson({
          event: "webhook",
          timestamp: Date.now(),
          chat_hostname: "SN-CHAT-05_",
          message_token: String(tokenSeq++),
        })
        const answer = await postWebhook(token, check, undefined, url).catch(() => undefined)
        if (answer?.status !== 200) return { status: 1, status_message: STATUS[1] }
        const event_types = body["event_types"] ??
          ["delivered", "seen", "failed", "subscribed", "unsubscribed", "conversation_started"]
        webhooks.set(token, { url, event_types })
        return { status: 0, status_message: "ok", event_types }
      }
      case "get_account_info":
        return {
          status: 0,
          status_message: "ok",
          id: "pa:75346594275468546724",
          name: "Test bot",
          uri: "testbot",
          webhook: webhooks.get(token)?.url ?? "",
          event_types: webhooks.get(token)?.event_types ?? [],
          subscribers_count: subscribed.size,
        }
      case "send_message": {
        if (!webhooks.has(token)) return { status: 10, status_message: STATUS[10] }
        const receiver = String(body["receiver"] ?? "")
        if (receiver === "" || typeof body["sender"]?.name !== "string") {
          return { status: 4, status_message: STATUS[4] }
        }
        if (!subscribed.has(receiver)) return { status: 6, status_message: STATUS[6] }
        const hour = Date.now() - 3600_000
        const times = (unanswered.get(receiver) ?? []).filter((t) => t > hour)
        if (times.length >= 100) return { status: 12, status_message: STATUS[12] }
        let media: Uint8Array | undefined
        if (body["type"] === "picture" || body["type"] === "file") {
          const url = String(body["media"] ?? "")
          if (body["type"] === "picture" && !/\.(jpe?g|png)$/i.test(new URL(url).pathname)) {
            return { status: 3, status_message: STATUS[3] }
          }
          media = await fetchMedia(url)
          if (media === undefined) return { status: 3, status_message: STATUS[3] }
        } else if (body["type"] === "text") {
          if (typeof body["text"] !== "string" || body["text"].length > 7000) {
            return { status: 3, status_message: STATUS[3] }
          }
        }
        times.push(Date.now())
        unanswered.set(receiver, times)
        const message_token = String(tokenSeq++)
        sent.push({ message_token, receiver, body, ...(media ? { media } : {}) })
        return { status: 0, status_message: "ok", message_token, chat_hostname: "SN-CHAT-05_" }
      }
      default:
        return { status: 3, status_message: STATUS[3] }
    }
  }

  const readAll = (req: NodeHttp.IncomingMessage) =>
    new Promise<Buffer>((resolve, reject) => {
      const chunks: Array<Buffer> = []
      req.on("data", (c: Buffer) => chunks.push(c))
      req.on("end", () => resolve(Buffer.concat(chunks)))
      req.on("error", reject)
    })

  const server = NodeHttp.createServer(async (req, res) => {
    const url = new URL(req.url ?? "/", root)
    const raw = await readAll(req)
    if (url.pathname.startsWith("/pa/")) {
      const name = url.pathname.slice(4)
      const armed = failures.get(name)?.[0]
      if (armed !== undefined && "http" in armed) {
        failures.get(name)!.shift()
        calls.push({ method: name, body: {}, status: -armed.http })
        res.writeHead(armed.http)
        return res.end("upstream error")
      }
      let body: Record<string, any>
      try {
        body = JSON.parse(raw.toString("utf8"))
      } catch {
        return res.end(viberJson({ status: 3, status_message: STATUS[3] }))
      }
      const token = req.headers["x-viber-auth-token"] as string | undefined
      const answer = await method(name, token, body)
      calls.push({ method: name, body, status: answer["status"] })
      res.writeHead(200, { "content-type": "application/json" })
      return res.end(viberJson(answer))
    }
    if (url.pathname.startsWith("/files/")) {
      const bytes = files.get(url.pathname)
      res.writeHead(bytes === undefined ? 404 : 200)
      return res.end(bytes)
    }
    res.writeHead(404)
    res.end()
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  root = `http://127.0.0.1:${(server.address() as AddressInfo).port}`

  return {
    apiRoot: root,
    calls: (m) => calls.filter((c) => m === undefined || c.method === m),
    sent: () => [...sent],
    webhook: (token) => webhooks.get(token),
    failNext: (m, status, message, times = 1) => {
      const list = failures.get(m) ?? []
      for (let i = 0; i < times; i++) {
        list.push({ status, message: message ?? STATUS[status] ?? "generalError" })
      }
      failures.set(m, list)
    },
    failHttpNext: (m, code, times = 1) => {
      const list = failures.get(m) ?? []
      for (let i = 0; i < times; i++) list.push({ http: code })
      failures.set(m, list)
    },
    subscribe: (user) => subscribed.add(user),
    unsubscribe: (user) => subscribed.delete(user),
    post: (token, event, options = {}) => {
      let body = typeof event === "string" ? event : viberJson(event)
      if (options.messageToken !== undefined) {
        body = body.replace(/"message_token"\s*:\s*\d+/, `"message_token":${options.messageToken}`)
      }
      // A user's message subscribes them and answers the bot.
      const parsed = JSON.parse(
        body.replace(/"message_token"\s*:\s*(\d+)/g, '"message_token":"$1"'),
      )
      if (parsed.event === "message" && typeof parsed.sender?.id === "string") {
        subscribed.add(parsed.sender.id)
        unanswered.delete(parsed.sender.id)
      }
      if (parsed.event === "unsubscribed") subscribed.delete(parsed.user_id)
      if (parsed.event === "subscribed") subscribed.add(parsed.user?.id)
      return postWebhook(token, body, options.signature)
    },
    addFile: (path, bytes) => {
      const p = `/files/${path}`
      files.set(p, bytes)
      return `${root}${p}`
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}
