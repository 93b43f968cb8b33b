/**
 * A fake VK API on loopback (node:http, port 0) for tests of the VK channel (plugins/vk). It
 * speaks VK's wire format, API 5.199: `POST /method/<name>` with form-encoded parameters and
 * the token as `Authorization: Bearer` or `access_token`, answering `{ response }` or
 * `{ error: { error_code, error_msg, request_params } }` with HTTP 200 as VK does.
 *
 * It does: communities by token (error 5 for others), `groups.getById`,
 * `groups.getLongPollServer` and the Bots Long Poll server (`?act=a_check&key&ts&wait`,
 * `failed` 1/2/3 on demand), `messages.send` (a `random_id` already used for that peer answers
 * the first message's id and sends nothing, as VK does), `messages.sendMessageEventAnswer`,
 * `photos.getMessagesUploadServer` → upload → `photos.saveMessagesPhoto`,
 * `docs.getMessagesUploadServer` → upload → `docs.save`, `users.get` (Ivan Petrov<last two
 * digits of the id>), files to download (`addFile`), and a
 * Callback API poster (`postCallback`) that adds the community's `group_id` and `secret`.
 * Tests read what was sent and arm failures (any error code, for the next calls of a method).
 *
 * Where it is simpler than VK: parameters are not validated beyond what the plugin needs; the
 * long poll server answers at once when it has events and waits at most `wait` seconds (capped
 * at 2) when it has none.
 */
import * as NodeHttp from "node:http"
import type { AddressInfo } from "node:net"
import { Effect } from "effect"
import { multipartBoundary, parseMultipart } from "./TelegramFake/MultipartForm.ts"

export interface VkCommunity {
  readonly token: string
  readonly groupId: number
  readonly name?: string
}

/** One call to a VK method, answered or failed. */
export interface VkCall {
  readonly method: string
  readonly token: string | undefined
  readonly params: Readonly<Record<string, string>>
  readonly error?: { readonly error_code: number; readonly error_msg: string }
}

/** A message the community sent (messages.send that VK took). */
export interface VkSent {
  readonly id: number
  readonly peer_id: number
  readonly random_id: number
  readonly message: string
  readonly attachment: string | undefined
  readonly keyboard: unknown
}

export interface VkUpload {
  readonly kind: "photo" | "doc"
  readonly field: string
  readonly filename: string | undefined
  readonly bytes: Uint8Array
}

export interface VkFake {
  /** Give this to the plugin as `apiRoot`. */
  readonly apiRoot: string
  /** Every method call, oldest first. */
  readonly calls: (method?: string) => ReadonlyArray<VkCall>
  readonly sent: () => ReadonlyArray<VkSent>
  readonly uploads: () => ReadonlyArray<VkUpload>
  /** Answer the next `times` (1) calls of `method` with this VK error. */
  readonly failNext: (method: string, error: number, message?: string, times?: number) => void
  /** The person forbade the community's messages: messages.send to them answers 901. */
  readonly deny: (peerId: number) => void
  readonly allow: (peerId: number) => void
  /** Queue a Long Poll event for a community (it gets `group_id`, `event_id`, `v`). */
  readonly pushEvent: (token: string, event: { type: string; object: unknown }) => void
  /** Long Poll events not yet fetched past (`ts` not yet beyond them). */
  readonly pendingEvents: (token: string) => number
  /** The next a_check answers `{ failed: n }` (2 and 3 also expire the key). */
  readonly failLongPoll: (token: string, failed: 1 | 2 | 3) => void
  /** Armed `failed` answers not yet given. */
  readonly longPollFailuresLeft: (token: string) => number
  /** Serve bytes at a URL of the fake (a photo or document VK would host); answers its URL. */
  readonly addFile: (path: string, bytes: Uint8Array) => string
  /** POST a Callback API event as VK would (adds `group_id`, `event_id`, `v`, `secret`). */
  readonly postCallback: (
    url: string,
    event: Record<string, unknown>,
    options?: { readonly secret?: string; readonly groupId?: number },
  ) => Promise<{ readonly status: number; readonly text: string }>
  readonly close: () => Promise<void>
}

const ERRORS: Record<number, string> = {
  1: "Unknown error occurred",
  5: "User authorization failed: invalid access_token (4).",
  6: "Too many requests per second",
  7: "Permission to perform this action is denied",
  9: "Flood control",
  10: "Internal server error",
  15: "Access denied",
  100: "One of the parameters specified was missing or invalid",
  901: "Can't send messages for users without permission",
  902: "Can't send messages to this user due to their privacy settings",
}

class VkApiError extends Error {
  constructor(readonly error_code: number, readonly error_msg: string) {
    super(error_msg)
  }
}

interface LongPollState {
  key: string
  ts: number
  events: Array<{ ts: number; event: Record<string, unknown> }>
  failNext: Array<1 | 2 | 3>
  waiters: Array<() => void>
}

export const vkFake = (communities: ReadonlyArray<VkCommunity>) =>
  Effect.acquireRelease(
    Effect.promise(() => startVkFake(communities)),
    (fake) => Effect.promise(() => fake.close()),
  )

export const startVkFake = async (communities: ReadonlyArray<VkCommunity>): Promise<VkFake> => {
  const byToken = new Map(communities.map((c) => [c.token, c]))
  const calls: Array<VkCall> = []
  const sent: Array<VkSent> = []
  const uploads: Array<VkUpload> = []
  const failures = new Map<string, Array<{ code: number; message: string }>>()
  const denied = new Set<number>()
  const randomIds = new Map<string, number>()
  const files = new Map<string, Uint8Array>()
  const polls = new Map<string, LongPollState>()
  const savedPhotos = new Map<string, { id: number; owner_id: number }>()
  let messageId = 1000
  let eventSeq = 0
  let fileSeq = 0
  let root = ""

  const pollOf = (token: string): LongPollState => {
    let state = polls.get(token)
    if (state === undefined) {
      state = { key: `key-${++fileSeq}`, ts: 1, events: [], failNext: [], waiters: [] }
      polls.set(token, state)
    }
    return state
  }

  const method = (name: string, token: string | undefined, p: Record<string, string>): unknown => {
    const community = token === undefined ? undefined : byToken.get(token)
    if (community === undefined) throw new VkApiError(5, ERRORS[5]!)
    const armed = failures.get(name)
    if (armed !== undefined && armed.length > 0) {
      const f = armed.shift()!
      throw new VkApiError(f.code, f.message)
    }
    switch (name) {
      case "groups.getById":
        return {
          groups: [{ id: community.groupId, name: community.name ?? "Community", type: "group" }],
          profiles: [],
        }
      case "groups.getLongPollServer": {
        if (Number(p["group_id"]) !== community.groupId) {
          throw new VkApiError(100, `${ERRORS[100]}: group_id is not ${community.groupId}`)
        }
        const state = pollOf(community.token)
        return { key: state.key, server: `${root}/lp/${community.groupId}`, ts: String(state.ts) }
      }
      case "messages.send": {
        const peer = Number(p["peer_id"])
        const randomId = Number(p["random_id"])
        if (!Number.isInteger(peer) || !Number.isInteger(randomId)) {
          throw new VkApiError(100, `${ERRORS[100]}: peer_id and random_id`)
        }
        if (denied.has(peer)) throw new VkApiError(901, ERRORS[901]!)
        if ((p["message"] ?? "").length > 4096) {
          throw new VkApiError(914, "Message is too long")
        }
        const dedupe = `${community.token}|${peer}|${randomId}`
        const earlier = randomIds.get(dedupe)
        if (earlier !== undefined) return earlier
        const id = ++messageId
        randomIds.set(dedupe, id)
        sent.push({
          id,
          peer_id: peer,
          random_id: randomId,
          message: p["message"] ?? "",
          attachment: p["attachment"],
          keyboard: p["keyboard"] === undefined ? undefined : JSON.parse(p["keyboard"]),
        })
        return id
      }
      case "users.get":
        return String(p["user_ids"] ?? "").split(",").filter((id) => id !== "").map((id) => ({
          id: Number(id),
          first_name: "Ivan",
          last_name: `Petrov${id.slice(-2)}`,
          can_access_closed: true,
          is_closed: false,
        }))
      case "messages.setActivity":
      case "messages.sendMessageEventAnswer":
        return 1
      case "photos.getMessagesUploadServer":
        return { upload_url: `${root}/upload/photo`, album_id: -64, group_id: community.groupId }
      case "docs.getMessagesUploadServer":
        return { upload_url: `${root}/upload/doc` }
      case "photos.saveMessagesPhoto": {
        const upload = savedPhotos.get(p["photo"] ?? "")
        if (upload === undefined || p["hash"] !== "hash-" + p["photo"]) {
          throw new VkApiError(100, `${ERRORS[100]}: photo`)
        }
        return [{
          id: upload.id,
          owner_id: -community.groupId,
          access_key: `ak${upload.id}`,
          sizes: [],
        }]
      }
      case "docs.save": {
        const upload = savedPhotos.get(p["file"] ?? "")
        if (upload === undefined) throw new VkApiError(100, `${ERRORS[100]}: file`)
        return {
          type: "doc",
          doc: { id: upload.id, owner_id: -community.groupId, title: p["title"] ?? "" },
        }
      }
      default:
        throw new VkApiError(3, "Unknown method passed")
    }
  }

  const readAll = (req: NodeHttp.IncomingMessage) =>
    new Promise<Buffer>((resolve, reject) => {
      const chunks: Array<Buffer> = []
      req.on("data", (c: Buffer) => chunks.push(c))
      req.on("end", () => resolve(Buffer.concat(chunks)))
      req.on("error", reject)
    })

  const json = (res: NodeHttp.ServerResponse, value: unknown, status = 200) => {
    res.writeHead(status, { "content-type": "application/json" })
    res.end(JSON.stringify(value))
  }

  const server = NodeHttp.createServer(async (req, res) => {
    const url = new URL(req.url ?? "/", root)
    const body = await readAll(req)
    if (url.pathname.startsWith("/method/")) {
      const name = url.pathname.slice("/method/".length)
      const params: Record<string, string> = Object.fromEntries(url.searchParams)
      if ((req.headers["content-type"] ?? "").includes("application/x-www-form-urlencoded")) {
        Object.assign(params, Object.fromEntries(new URLSearchParams(body.toString("utf8"))))
      }
      const auth = /^Bearer (.+)$/.exec(req.headers.authorization ?? "")?.[1]
      const token = auth ?? params["access_token"]
      delete params["access_token"]
      try {
        const response = method(name, token, params)
        calls.push({ method: name, token, params })
        return json(res, { response })
      } catch (error) {
        const e = error as VkApiError
        calls.push({
          method: name,
          token,
          params,
          error: { error_code: e.error_code, error_msg: e.error_msg },
        })
        return json(res, {
          error: {
            error_code: e.error_code,
            error_msg: e.error_msg,
            request_params: Object.entries(params).map(([key, value]) => ({ key, value })),
          },
        })
      }
    }
    if (url.pathname.startsWith("/upload/")) {
      const kind = url.pathname.endsWith("photo") ? "photo" : "doc"
      const boundary = multipartBoundary(req.headers["content-type"])
      if (boundary === undefined) return json(res, { error: "no multipart" })
      const form = parseMultipart(body, boundary)
      const field = kind === "photo" ? "photo" : "file"
      const file = form.files[field]
      if (file === undefined) return json(res, { error: `no ${field}` })
      uploads.push({ kind, field, filename: file.filename, bytes: file.bytes })
      const handle = `upl${++fileSeq}`
      savedPhotos.set(handle, { id: 457239000 + fileSeq, owner_id: 0 })
      return json(
        res,
        kind === "photo"
          ? { server: 1234, photo: handle, hash: `hash-${handle}` }
          : { file: handle },
      )
    }
    if (url.pathname.startsWith("/lp/")) {
      const groupId = Number(url.pathname.slice("/lp/".length))
      const community = communities.find((c) => c.groupId === groupId)
      if (community === undefined) return json(res, { failed: 2 })
      const state = pollOf(community.token)
      const failed = state.failNext.shift()
      if (failed !== undefined) {
        if (failed !== 1) state.key = `key-${++fileSeq}`
        return json(res, failed === 1 ? { failed: 1, ts: String(state.ts) } : { failed })
      }
      if (url.searchParams.get("key") !== state.key) return json(res, { failed: 2 })
      const ts = Number(url.searchParams.get("ts"))
      const ready = () => state.events.filter((e) => e.ts >= ts)
      if (ready().length === 0) {
        const wait = Math.min(2, Number(url.searchParams.get("wait") ?? 25)) * 1000
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, wait)
          state.waiters.push(() => {
            clearTimeout(timer)
            resolve()
          })
        })
      }
      const events = ready()
      // Events the client moved past are forgotten.
      state.events = state.events.filter((e) => e.ts >= ts)
      return json(res, { ts: String(state.ts), updates: events.map((e) => e.event) })
    }
    if (url.pathname.startsWith("/files/")) {
      const bytes = files.get(url.pathname)
      if (bytes === undefined) {
        res.writeHead(404)
        return res.end()
      }
      res.writeHead(200, { "content-type": "application/octet-stream" })
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
    uploads: () => [...uploads],
    failNext: (m, code, message, times = 1) => {
      const list = failures.get(m) ?? []
      for (let i = 0; i < times; i++) {
        list.push({ code, message: message ?? ERRORS[code] ?? "Error" })
      }
      failures.set(m, list)
    },
    deny: (peer) => denied.add(peer),
    allow: (peer) => denied.delete(peer),
    pushEvent: (token, event) => {
      const community = byToken.get(token)!
      const state = pollOf(token)
      state.events.push({
        ts: state.ts,
        event: {
          group_id: community.groupId,
          event_id: `ev${++eventSeq}`,
          v: "5.199",
          ...event,
        },
      })
      state.ts++
      for (const wake of state.waiters.splice(0)) wake()
    },
    pendingEvents: (token) => pollOf(token).events.length,
    failLongPoll: (token, failed) => pollOf(token).failNext.push(failed),
    longPollFailuresLeft: (token) => pollOf(token).failNext.length,
    addFile: (path, bytes) => {
      const p = `/files/${path}`
      files.set(p, bytes)
      return `${root}${p}`
    },
    postCallback: async (url, event, options = {}) => {
      const community = communities[0]!
      const response = await fetch(url, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          group_id: options.groupId ?? community.groupId,
          event_id: `ev${++eventSeq}`,
          v: "5.199",
          ...event,
          ...(options.secret !== undefined ? { secret: options.secret } : {}),
        }),
      })
      return { status: response.status, text: await response.text() }
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const state of polls.values()) for (const wake of state.waiters.splice(0)) wake()
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}
