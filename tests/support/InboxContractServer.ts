/**
 * A stand-in for the inbox's HTTP API, in memory, speaking the contract of issue #6 (the bodies
 * of schemas/Inbox.ts, Operator.ts, ReadApi.ts, Message.ts; errors `{_tag, message}`; the
 * session cookie and `X-CSRF-Token`; `/api/v1/events` as numbered Server-Sent Events that
 * replay after `Last-Event-ID`). It serves the inbox plugin's page through the plugin's own
 * route handlers (plugins/inbox/index.mjs), so the browser loads the UI exactly as built.
 *
 * It exists so the UI can be driven in Chromium before the real endpoints are on main; it is not
 * Chorus and proves nothing about the server. Tests with the real server are in
 * plugins/inbox/inbox.browser.test.ts. Hooks (`customerWrites`, `dropStreams`, …) stand for
 * what a channel or another operator would do.
 */
import { randomUUID } from "node:crypto"
import * as NodeHttp from "node:http"
import type { AddressInfo } from "node:net"
import * as NodePath from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"

const REPO = NodePath.resolve(NodePath.dirname(fileURLToPath(import.meta.url)), "../..")

type Json = Record<string, any>

export interface FakeOperator {
  readonly id: string
  readonly email: string
  readonly name: string
  readonly role: "admin" | "supervisor" | "operator"
  readonly password: string
  /** When set, sign-in needs this code after the password. */
  readonly totp?: string
}

let counter = 0
/** Ids that sort by creation, like the server's ULIDs (26 characters). */
const ulid = () => `01J${String(Date.now()).padStart(15, "0")}${String(++counter).padStart(8, "0")}`

const iso = (ms = Date.now()) => new Date(ms).toISOString()

export const startInboxContractServer = async (options: {
  readonly operators: ReadonlyArray<FakeOperator>
  readonly pluginDir?: string
}) => {
  const pluginDir = options.pluginDir ?? NodePath.join(REPO, "plugins/inbox")
  // The plugin's own handlers serve its page and assets.
  const routes = new Map<string, (request: Json) => Json | Promise<Json>>()
  const plugin = (await import(pathToFileURL(NodePath.join(pluginDir, "index.mjs")).href)).default
  await plugin.activate({
    plugin: { id: "inbox", version: "0.1.0", dir: pluginDir },
    settings: {},
    routes: {
      handle: (method: string, path: string, handler: (r: Json) => Json) => {
        routes.set(`${method} ${path}`, handler)
        return Promise.resolve()
      },
    },
  })

  const teams = [{
    id: ulid(),
    name: "Support",
    memberIds: options.operators.map((o) => o.id),
    inboxes: [{ channel: "telegram", account: "*" }, { channel: "widget", account: "*" }],
    createdAt: iso(),
  }]
  const operators = new Map(
    options.operators.map((o) => [o.id, {
      id: o.id,
      email: o.email,
      name: o.name,
      role: o.role,
      presence: "online" as string,
      capacity: 6,
      locale: "en" as string,
      totpEnabled: o.totp !== undefined,
      disabled: false,
      teamIds: [teams[0]!.id],
      createdAt: iso(),
    }]),
  )
  const secrets = new Map(options.operators.map((o) => [o.id, o]))
  const sessions = new Map<string, { id: string; operatorId: string; csrf: string }>()
  const contacts = new Map<string, Json>()
  const identities = new Map<string, Json>()
  const conversations = new Map<string, Json>()
  const messages = new Map<string, Array<Json>>()
  const canned = [{
    id: ulid(),
    shortCode: "hello",
    text: "Hello! How can I help you today?",
    teamId: null,
    createdAt: iso(),
  }, {
    id: ulid(),
    shortCode: "hours",
    text: "We are open 9:00–18:00, Monday to Friday.",
    teamId: null,
    createdAt: iso(),
  }]
  const events: Array<{ id: number; type: string; data: string }> = []
  const streams = new Set<NodeHttp.ServerResponse>()
  let refuseStreams = 0
  const requests: Array<{ method: string; path: string; body: any; headers: Json }> = []

  const loadOf = (operatorId: string) =>
    [...conversations.values()].filter((c) => c.assigneeId === operatorId && c.status === "open")
      .length
  const operatorLoad = (id: string) => ({ ...operators.get(id)!, load: loadOf(id) })

  const publish = (type: string, payload: Json) => {
    const id = events.length + 1
    const event = { type, version: 1, id: ulid(), occurredAt: iso(), ...payload }
    const entry = { id, type, data: JSON.stringify(event) }
    events.push(entry)
    for (const res of streams) res.write(`id: ${id}\nevent: ${type}\ndata: ${entry.data}\n\n`)
  }

  const conversationUpdated = (c: Json, changed: Array<string>) => {
    c.updatedAt = iso()
    publish("conversation.updated", { conversation: { ...c }, changed })
    for (const id of changed.includes("assigneeId") ? operators.keys() : []) {
      publish("operator.updated", { operator: operatorLoad(id) })
    }
  }

  // ----------------------------------------------------------------------------------------------
  // What channels and other people do

  /** A customer writes (a new contact and conversation when `conversationId` is absent). */
  const customerWrites = (
    text: string,
    opts: {
      conversationId?: string
      name?: string
      channel?: string
      assigneeId?: string | null
      publish?: boolean
    } = {},
  ) => {
    let c = opts.conversationId === undefined ? undefined : conversations.get(opts.conversationId)
    const at = iso()
    const send = opts.publish ?? true
    if (c === undefined) {
      const contact = { id: ulid(), name: opts.name ?? "Ann Petrova", createdAt: at, updatedAt: at }
      contacts.set(contact.id, contact)
      const channel = opts.channel ?? "telegram"
      const identity = {
        id: ulid(),
        contactId: contact.id,
        channel,
        account: channel === "telegram" ? "shopbot" : "shop",
        externalId: String(++counter),
        name: contact.name,
        phone: null,
        email: null,
        verification: "unverified",
        reachable: true,
        createdAt: at,
        lastSeenAt: at,
      }
      identities.set(identity.id, identity)
      c = {
        id: ulid(),
        contactId: contact.id,
        status: "open",
        assigneeId: opts.assigneeId ?? null,
        lastChannel: { channel, account: identity.account, identityId: identity.id },
        lastSeq: 0,
        createdAt: at,
        updatedAt: at,
        lastMessageAt: null,
        resolvedAt: null,
        teamId: teams[0]!.id,
        assignedAt: opts.assigneeId ? at : null,
        waitingSince: at,
        snoozedUntil: null,
        unreadCount: 0,
      }
      conversations.set(c.id, c)
      messages.set(c.id, [])
      if (send) publish("conversation.opened", { conversation: { ...c } })
    }
    const list = messages.get(c.id)!
    const m = {
      id: ulid(),
      conversationId: c.id,
      seq: list.length + 1,
      text,
      attachments: [],
      createdAt: at,
      direction: "in",
      channel: c.lastChannel.channel,
      account: c.lastChannel.account,
      identityId: c.lastChannel.identityId,
      externalId: `ext-${counter}`,
      sentAt: at,
      receivedAt: at,
    }
    list.push(m)
    c.lastSeq = m.seq
    c.lastMessageAt = at
    c.unreadCount = (c.unreadCount ?? 0) + 1
    c.waitingSince ??= at
    if (send) {
      publish("message.received", { message: m })
      conversationUpdated(c, ["lastSeq", "unreadCount"])
    } else c.updatedAt = at
    return { conversationId: c.id as string, message: m }
  }

  /** Many messages in one conversation, without events (a long history). */
  const seedHistory = (conversationId: string, count: number) => {
    const c = conversations.get(conversationId)!
    const list = messages.get(conversationId)!
    const start = Date.now() - count * 60_000
    for (let i = 0; i < count; i++) {
      const at = iso(start + i * 60_000)
      const inbound = i % 3 !== 2
      const text = i % 7 === 0
        ? `Message ${list.length + 1}: a longer one, to make rows of different heights. `
          .repeat(1 + (i % 4))
        : `Message ${list.length + 1}`
      const base = {
        id: ulid(),
        conversationId,
        seq: list.length + 1,
        text,
        attachments: [],
        createdAt: at,
        channel: c.lastChannel.channel,
        account: c.lastChannel.account,
        identityId: c.lastChannel.identityId,
      }
      list.push(
        inbound
          ? { ...base, direction: "in", externalId: `x${base.seq}`, sentAt: at, receivedAt: at }
          : {
            ...base,
            direction: "out",
            externalId: null,
            authorId: null,
            delivery: { state: "delivered", at },
          },
      )
    }
    c.lastSeq = list.length
    c.lastMessageAt = list[list.length - 1]!.createdAt
  }

  /** A bot's reply with buttons under it (as an API client or bot plugin would send). */
  const botReplies = (conversationId: string, text: string, buttons: Array<Array<Json>>) => {
    const c = conversations.get(conversationId)!
    const list = messages.get(conversationId)!
    const at = iso()
    const m = {
      id: ulid(),
      conversationId,
      seq: list.length + 1,
      text,
      attachments: [],
      createdAt: at,
      direction: "out",
      channel: c.lastChannel.channel,
      account: c.lastChannel.account,
      identityId: c.lastChannel.identityId,
      externalId: null,
      authorId: null,
      delivery: { state: "queued", at },
      buttons,
    }
    list.push(m)
    c.lastSeq = m.seq
    publish("message.sent", { message: m })
  }

  /** The customer is typing (their channel told us). */
  const customerTypes = (conversationId: string) =>
    publish("conversation.typing", { conversationId, by: "customer", operatorId: null, to: null })

  /** End every open event stream (the browser reconnects with Last-Event-ID). */
  const dropStreams = () => {
    for (const res of streams) res.destroy()
    streams.clear()
  }

  // ----------------------------------------------------------------------------------------------
  // HTTP

  const send = (res: NodeHttp.ServerResponse, status: number, body?: unknown) => {
    if (body === undefined) {
      res.writeHead(status).end()
      return
    }
    res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body))
  }
  const fail = (res: NodeHttp.ServerResponse, status: number, tag: string, extra: Json = {}) =>
    send(res, status, { _tag: tag, message: extra["message"] ?? tag, ...extra })

  const cookieSession = (req: NodeHttp.IncomingMessage) => {
    const m = /(?:^|;\s*)chorus_session=([^;]+)/.exec(req.headers.cookie ?? "")
    return m === null ? undefined : sessions.get(m[1]!)
  }

  const sessionInfo = (token: string) => {
    const s = sessions.get(token)!
    return {
      sessionId: s.id,
      operator: operators.get(s.operatorId)!,
      csrfToken: s.csrf,
      expiresAt: iso(Date.now() + 12 * 3600_000),
    }
  }

  const inboxRow = (c: Json) => {
    const list = messages.get(c.id)!
    const last = list[list.length - 1]
    return {
      ...c,
      contact: contacts.get(c.contactId),
      preview: last === undefined ? null : {
        direction: last.direction,
        text: String(last.text).slice(0, 200),
        attachments: last.attachments.length,
        at: last.createdAt,
      },
    }
  }

  const statusOf = (c: Json) =>
    c.status === "pending" && c.snoozedUntil !== null ? "snoozed" : c.status

  const readBody = (req: NodeHttp.IncomingMessage) =>
    new Promise<Buffer>((resolve) => {
      const chunks: Array<Buffer> = []
      req.on("data", (c: Buffer) => chunks.push(c))
      req.on("end", () => resolve(Buffer.concat(chunks)))
    })

  /** Wrong passwords per e-mail: the fourth attempt is throttled (as the server's login limit). */
  const failedLogins = new Map<string, number>()
  const attachments = new Map<string, { bytes: Buffer; mimeType: string; name: string }>()

  const handleApi = async (
    req: NodeHttp.IncomingMessage,
    res: NodeHttp.ServerResponse,
    url: URL,
  ) => {
    const path = url.pathname.slice("/api/v1".length)
    const method = req.method ?? "GET"
    const raw = method === "GET" ? Buffer.alloc(0) : await readBody(req)
    const isJson = (req.headers["content-type"] ?? "").startsWith("application/json")
    const body = isJson && raw.length > 0 ? JSON.parse(raw.toString("utf8")) : undefined
    requests.push({ method, path: url.pathname + url.search, body, headers: { ...req.headers } })

    if (method === "POST" && path === "/auth/login") {
      const o = [...secrets.values()].find((x) => x.email === body?.email)
      const failures = failedLogins.get(body?.email) ?? 0
      if (failures >= 3) {
        return fail(res, 429, "LoginThrottled", { retryAfterSeconds: 30 })
      }
      if (o === undefined || o.password !== body?.password) {
        failedLogins.set(body?.email, failures + 1)
        return fail(res, 401, "InvalidCredentials")
      }
      if (o.totp !== undefined && body.totp === undefined) return fail(res, 401, "TotpRequired")
      if (o.totp !== undefined && body.totp !== o.totp) return fail(res, 401, "InvalidTotpCode")
      const token = randomUUID()
      sessions.set(token, { id: ulid(), operatorId: o.id, csrf: randomUUID() })
      res.setHeader("set-cookie", `chorus_session=${token}; HttpOnly; Path=/; SameSite=Lax`)
      return send(res, 200, sessionInfo(token))
    }
    const token = /(?:^|;\s*)chorus_session=([^;]+)/.exec(req.headers.cookie ?? "")?.[1]
    const session = cookieSession(req)
    if (session === undefined || token === undefined) return fail(res, 401, "Unauthorized")
    if (method !== "GET" && req.headers["x-csrf-token"] !== session.csrf) {
      return fail(res, 403, "CsrfRejected")
    }
    const me = operators.get(session.operatorId)!

    if (method === "GET" && path === "/events") {
      if (refuseStreams > 0) {
        refuseStreams--
        return fail(res, 503, "EventsUnavailable")
      }
      res.writeHead(200, {
        "content-type": "text/event-stream",
        "cache-control": "no-cache",
        connection: "keep-alive",
      })
      res.write(": connected\n\n")
      const after = Number(req.headers["last-event-id"] ?? events.length)
      for (const e of events.slice(Number.isFinite(after) ? after : events.length)) {
        res.write(`id: ${e.id}\nevent: ${e.type}\ndata: ${e.data}\n\n`)
      }
      streams.add(res)
      req.on("close", () => streams.delete(res))
      return
    }
    if (method === "GET" && path === "/auth/session") return send(res, 200, sessionInfo(token))
    if (method === "POST" && path === "/auth/logout") {
      sessions.delete(token)
      return send(res, 204)
    }
    if (method === "POST" && path === "/auth/logout-everywhere") {
      for (const [k, s] of sessions) if (s.operatorId === me.id) sessions.delete(k)
      return send(res, 204)
    }
    if (method === "PUT" && path === "/auth/presence") {
      me.presence = body.presence
      publish("operator.updated", { operator: operatorLoad(me.id) })
      return send(res, 200, me)
    }
    if (method === "PUT" && path === "/auth/locale") {
      me.locale = body.locale
      return send(res, 200, me)
    }
    if (method === "GET" && path === "/inbox/counts") {
      const open = [...conversations.values()].filter((c) => c.status === "open")
      return send(res, 200, {
        mine: open.filter((c) => c.assigneeId === me.id).length,
        unassigned: open.filter((c) => c.assigneeId === null).length,
        all: open.length,
      })
    }
    if (method === "GET" && path === "/inbox/conversations") {
      const q = url.searchParams
      const view = q.get("view") ?? "all"
      const limit = Math.min(1000, Number(q.get("limit") ?? 100))
      const all = [...conversations.values()].filter((c) =>
        (view !== "mine" || c.assigneeId === me.id) &&
        (view !== "unassigned" || c.assigneeId === null) &&
        (!q.get("status") || statusOf(c) === q.get("status")) &&
        (!q.get("channel") || c.lastChannel?.channel === q.get("channel"))
      ).sort((a, b) => (a.updatedAt < b.updatedAt ? 1 : a.updatedAt > b.updatedAt ? -1 : 0))
      const from = Number(q.get("cursor") ?? 0)
      const page = all.slice(from, from + limit)
      return send(res, 200, {
        conversations: page.map(inboxRow),
        nextCursor: from + limit < all.length ? String(from + limit) : null,
      })
    }
    if (method === "GET" && path === "/operators") {
      return send(res, 200, { operators: [...operators.keys()].map(operatorLoad) })
    }
    if (method === "GET" && path === "/teams") return send(res, 200, { teams })
    if (method === "GET" && path === "/canned-responses") {
      return send(res, 200, { cannedResponses: canned })
    }
    if (method === "GET" && path === "/queue") {
      if (me.role === "operator") return fail(res, 403, "Forbidden")
      const waiting = [...conversations.values()].filter((c) =>
        c.assigneeId === null && c.status === "open"
      ).sort((a, b) => (a.waitingSince < b.waitingSince ? -1 : 1))
      return send(res, 200, {
        queue: waiting.map((c, i) => ({
          conversationId: c.id,
          teamId: c.teamId,
          position: i + 1,
          waitingSince: c.waitingSince,
        })),
        operators: [...operators.keys()].map(operatorLoad),
      })
    }
    if (method === "POST" && path === "/attachments") {
      const storageKey = randomUUID()
      const name = url.searchParams.get("name") ?? "file"
      const mimeType = String(req.headers["content-type"] ?? "application/octet-stream")
      attachments.set(storageKey, { bytes: raw, mimeType, name })
      return send(res, 201, { storageKey, name, mimeType, size: raw.length })
    }
    let m = /^\/attachments\/([^/]+)$/.exec(path)
    if (method === "GET" && m !== null) {
      const file = attachments.get(decodeURIComponent(m[1]!))
      if (file === undefined) return fail(res, 404, "NotFound")
      res.writeHead(200, { "content-type": file.mimeType }).end(file.bytes)
      return
    }
    // The identity graph's card panels: no suggestions or merges in these scenarios.
    if (method === "GET" && path === "/contacts/suggestions") {
      return send(res, 200, { suggestions: [] })
    }
    m = /^\/contacts\/([^/]+)\/merges$/.exec(path)
    if (method === "GET" && m !== null) {
      return contacts.has(m[1]!) ? send(res, 200, { merges: [] }) : fail(res, 404, "NotFound")
    }
    m = /^\/contacts\/([^/]+)(\/conversations)?$/.exec(path)
    if (method === "GET" && m !== null) {
      const contact = contacts.get(m[1]!)
      if (contact === undefined) return fail(res, 404, "NotFound")
      if (m[2] !== undefined) {
        return send(res, 200, {
          conversations: [...conversations.values()].filter((c) => c.contactId === contact.id),
        })
      }
      return send(res, 200, {
        ...contact,
        identities: [...identities.values()].filter((i) => i.contactId === contact.id),
      })
    }
    m = /^\/conversations\/([^/]+)(?:\/(messages|notes|status|assignment|read|typing))?$/.exec(path)
    const c = m === null ? undefined : conversations.get(m[1]!)
    if (m === null || c === undefined) return fail(res, 404, "NotFound")
    const list = messages.get(c.id)!
    const action = m[2]
    if (method === "GET" && action === undefined) {
      return send(res, 200, { ...c, contact: contacts.get(c.contactId) })
    }
    if (method === "GET" && action === "messages") {
      const before = Number(url.searchParams.get("before") ?? list.length + 1)
      const limit = Math.min(200, Number(url.searchParams.get("limit") ?? 50))
      const end = Math.min(list.length, before - 1)
      const page = list.slice(Math.max(0, end - limit), end).reverse()
      const oldest = page[page.length - 1]
      return send(res, 200, {
        messages: page,
        nextBefore: oldest !== undefined && oldest.seq > 1 ? oldest.seq : null,
      })
    }
    if (method === "POST" && (action === "messages" || action === "notes")) {
      const known = list.find((x) => x.clientId !== undefined && x.clientId === body.clientId)
      if (known !== undefined) return send(res, action === "notes" ? 201 : 202, strip(known))
      const at = iso()
      const identity = identities.get(body.identityId ?? c.lastChannel.identityId)!
      const stored: Json = action === "notes"
        ? {
          id: ulid(),
          conversationId: c.id,
          seq: list.length + 1,
          text: body.text,
          attachments: [],
          createdAt: at,
          direction: "note",
          authorId: me.id,
          mentions: body.mentions ?? [],
        }
        : {
          id: ulid(),
          conversationId: c.id,
          seq: list.length + 1,
          text: body.text,
          attachments: (body.attachments ?? []).map((a: Json) => ({ id: ulid(), ...a })),
          createdAt: at,
          direction: "out",
          channel: identity.channel,
          account: identity.account,
          identityId: identity.id,
          externalId: null,
          authorId: me.id,
          delivery: { state: "queued", at },
        }
      list.push({ ...stored, clientId: body.clientId })
      c.lastSeq = stored.seq
      if (action === "notes") publish("message.note_added", { message: stored })
      else {
        publish("message.sent", { message: stored })
        c.waitingSince = null
        conversationUpdated(c, ["lastSeq", "waitingSince"])
        // The channel accepts it a moment later.
        setTimeout(() => {
          const sentAt = iso()
          const kept = list.find((x) => x.id === stored.id)!
          // "[fail]" in the text stands for a provider that refuses the message.
          kept.delivery = String(stored.text).includes("[fail]")
            ? {
              state: "failed",
              at: sentAt,
              error: {
                code: "403",
                message: "Forbidden: bot was blocked by the user",
                retryable: false,
              },
            }
            : { state: "sent", at: sentAt }
          publish("message.delivery_changed", {
            conversationId: c.id,
            messageId: stored.id,
            seq: stored.seq,
            channel: stored.channel,
            account: stored.account,
            externalId: `p-${stored.seq}`,
            delivery: kept.delivery,
          })
        }, 150)
      }
      return send(res, action === "notes" ? 201 : 202, stored)
    }
    if (method === "POST" && action === "status") {
      if (body.status === "snoozed") {
        c.status = "pending"
        c.snoozedUntil = body.snoozedUntil
      } else {
        c.status = body.status
        c.snoozedUntil = null
      }
      c.resolvedAt = body.status === "resolved" ? iso() : null
      conversationUpdated(c, ["status", "snoozedUntil"])
      return send(res, 200, { ...c })
    }
    if (method === "POST" && action === "assignment") {
      c.assigneeId = body.assigneeId
      if (body.teamId !== undefined) c.teamId = body.teamId
      c.assignedAt = body.assigneeId === null ? null : iso()
      conversationUpdated(c, ["assigneeId", "teamId"])
      return send(res, 200, { ...c })
    }
    if (method === "POST" && action === "typing") {
      publish("conversation.typing", {
        conversationId: c.id,
        by: "operator",
        operatorId: me.id,
        to: null,
      })
      return send(res, 204)
    }
    if (method === "POST" && action === "read") {
      c.unreadCount = 0
      conversationUpdated(c, ["unreadCount"])
      return send(res, 204)
    }
    return fail(res, 404, "NotFound")
  }

  const strip = (m: Json) => {
    const { clientId: _, ...rest } = m
    return rest
  }

  const server = NodeHttp.createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://inbox.test")
    if (url.pathname.startsWith("/api/v1/")) {
      handleApi(req, res, url).catch((error) =>
        fail(res, 500, "Defect", { message: String(error) })
      )
      return
    }
    const asset = /^\/plugins\/inbox\/([^/]+)$/.exec(url.pathname)
    const key = url.pathname === "/plugins/inbox/" || url.pathname === "/plugins/inbox"
      ? `GET ${url.pathname}`
      : asset !== null
      ? "GET /plugins/inbox/{asset}"
      : undefined
    const handler = key === undefined ? undefined : routes.get(key)
    if (req.method !== "GET" || handler === undefined) {
      res.writeHead(404).end()
      return
    }
    Promise.resolve(handler({
      method: "GET",
      path: url.pathname,
      params: asset !== null ? { asset: asset[1] } : {},
      query: Object.fromEntries(url.searchParams),
      headers: req.headers,
      body: new Uint8Array(0),
    })).then((r) => {
      res.writeHead(r.status ?? 200, r.headers ?? {}).end(
        typeof r.body === "string" ? r.body : Buffer.from(r.body ?? new Uint8Array(0)),
      )
    })
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`

  return {
    url,
    conversations,
    messages,
    requests,
    operators,
    customerWrites,
    customerTypes,
    botReplies,
    seedHistory,
    dropStreams,
    /** The next `n` requests for the event stream are answered 503. */
    refuseNextStreams: (n: number) => {
      refuseStreams = n
    },
    /** Publish without a stream open: what a client reconnecting must catch up on. */
    eventCount: () => events.length,
    close: () =>
      new Promise<void>((resolve) => {
        dropStreams()
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}

export type InboxContractServer = Awaited<ReturnType<typeof startInboxContractServer>>
