/**
 * A fake WhatsApp Cloud API (Meta Graph API) on loopback (node:http, port 0) for tests of the
 * WhatsApp channel, speaking its wire format: `POST /{version}/{phone-number-id}/messages`
 * (text, media by id, interactive, template; answered with `messages[0].id`, a wamid),
 * `POST /{version}/{phone-number-id}/media` (multipart upload; answered `{ id }`),
 * `GET /{version}/{media-id}` (the media's `url`, `mime_type`, `sha256`, `file_size`) and the
 * download at that URL, each with the number's bearer token (190 `OAuthException` otherwise).
 * Errors are Graph API error objects (`error.code`, `error_data.details`) with Meta's codes;
 * tests arm them (`failNext`) and read what the fake received (`sent`, `uploads`, `calls`).
 *
 * It also sends webhooks the way Meta does: `postWebhook` POSTs a body signed with
 * `X-Hub-Signature-256` (HMAC-SHA256 of the raw bytes with the app secret); `fixture` loads a
 * real payload from `tests/fixtures/providers/whatsapp/` with fresh wamids and timestamps.
 *
 * Where it is simpler than Meta: any `v<major>.<minor>` version is taken; messages are accepted
 * without a delivery (statuses are posted by the test with `statusWebhook`); template names are
 * not checked against approved ones; the 24-hour window is only enforced for numbers a test
 * closed (`closeWindow`).
 *
 * @example
 * ```ts
 * const fake = yield* whatsAppFake({ numbers: [{ phoneNumberId: "106540352242922", token: "t" }] })
 * const body = fake.fixture("text_message")
 * const status = yield* Effect.promise(() => postWebhook(url, body, { appSecret: "s" }))
 * ```
 */
import { createHash, createHmac, randomBytes } from "node:crypto"
import { readFileSync } from "node:fs"
import * as NodeHttp from "node:http"
import type { AddressInfo } from "node:net"
import { fileURLToPath } from "node:url"
import { Effect } from "effect"
import { multipartBoundary, parseMultipart } from "./TelegramFake/MultipartForm.ts"

export interface WhatsAppNumber {
  readonly phoneNumberId: string
  /** The access token requests for this number must carry. */
  readonly token: string
}

export interface WhatsAppFakeOptions {
  readonly numbers?: ReadonlyArray<WhatsAppNumber>
  /** Where `fixture` reads `<name>.json`. Default: `tests/fixtures/providers/whatsapp/`. */
  readonly fixturesDir?: string
}

/** A message the fake accepted: the JSON body as sent, and the wamid it answered. */
export interface SentMessage {
  readonly phoneNumberId: string
  readonly wamid: string
  readonly to: string
  readonly type: string
  readonly body: Record<string, any>
}

export interface Upload {
  readonly phoneNumberId: string
  readonly id: string
  /** The form's `type` field (the MIME type). */
  readonly type: string
  readonly filename: string | undefined
  readonly contentType: string | undefined
  readonly bytes: Uint8Array
}

export interface MarkedRead {
  readonly messageId: string
  /** With `typing_indicator: { type: "text" }`. */
  readonly typing: boolean
}

/** One request to the fake, answered or failed. */
export interface GraphCall {
  readonly method: string
  readonly path: string
  readonly status: number
  /** The Graph error code, for a failure. */
  readonly code: number | undefined
}

/** A failure armed for the next requests to a number's endpoint. */
export interface InjectedFailure {
  /**
   * A Graph error code (130429 throughput, 131056 pair rate, 131047 window closed, 131026
   * undeliverable, 100 invalid parameter, 190 token) or 500 (an internal error, HTTP 500).
   */
  readonly code: number
  /** Default 1. */
  readonly times?: number
  /** `messages` (default), `media` (uploads) or `mediaInfo` (`GET /{media-id}`). */
  readonly endpoint?: "messages" | "media" | "mediaInfo"
}

export interface MediaFile {
  readonly id: string
  readonly mimeType: string
  readonly bytes: Uint8Array
  /** Hex SHA-256 of the bytes. */
  readonly sha256: string
}

export interface WhatsAppFake {
  /** The Graph API root to configure (`apiRoot`); no trailing slash. */
  readonly apiRoot: string
  readonly addNumber: (number: WhatsAppNumber) => void
  /** A customer's media, to be fetched by id (what a media webhook names). */
  readonly addMedia: (bytes: Uint8Array, mimeType: string, id?: string) => MediaFile
  readonly media: (id: string) => MediaFile | undefined
  readonly sent: (phoneNumberId: string) => ReadonlyArray<SentMessage>
  readonly uploads: (phoneNumberId: string) => ReadonlyArray<Upload>
  /** Received messages the number marked read (`status: "read"`), and whether with typing. */
  readonly reads: (phoneNumberId: string) => ReadonlyArray<MarkedRead>
  readonly calls: () => ReadonlyArray<GraphCall>
  readonly failNext: (phoneNumberId: string, failure: InjectedFailure) => void
  /** Free-form messages to `to` fail with 131047 until `openWindow`. */
  readonly closeWindow: (to: string) => void
  readonly openWindow: (to: string) => void
  /**
   * A payload of `tests/fixtures/providers/whatsapp/<name>.json` with fresh wamids, timestamps
   * moved to `timestamp` (seconds; default now), `MEDIA_SHA256` set from the fake's media, and
   * `edit` applied to the parsed copy.
   */
  readonly fixture: (
    name: string,
    options?: { readonly timestamp?: number; readonly edit?: (body: any) => void },
  ) => any
  readonly close: () => Promise<void>
}

/** The fake as a scoped resource: the server closes with the scope. */
export const whatsAppFake = (options: WhatsAppFakeOptions = {}) =>
  Effect.acquireRelease(
    Effect.promise(() => startWhatsAppFake(options)),
    (fake) => Effect.promise(() => fake.close()),
  )

/** `X-Hub-Signature-256` of a body, as Meta computes it. */
export const hubSignature = (appSecret: string, body: string | Uint8Array): string =>
  `sha256=${createHmac("sha256", appSecret).update(body).digest("hex")}`

/**
 * POST a webhook body to Chorus as Meta does: JSON, signed with the app secret (or with the
 * `signature` given, `null` for none). Resolves the HTTP status and body.
 */
export const postWebhook = async (
  url: string,
  payload: unknown,
  options: { readonly appSecret: string; readonly signature?: string | null },
): Promise<{ readonly status: number; readonly text: string }> => {
  const body = JSON.stringify(payload)
  const headers: Record<string, string> = {
    "content-type": "application/json",
    "user-agent": "facebookexternalua",
  }
  const signature = options.signature === undefined
    ? hubSignature(options.appSecret, body)
    : options.signature
  if (signature !== null) headers["x-hub-signature-256"] = signature
  const response = await fetch(url, { method: "POST", headers, body })
  return { status: response.status, text: await response.text() }
}

/** A status webhook for a message the business sent, shaped as Meta's status reference. */
export const statusWebhook = (
  phoneNumberId: string,
  status: {
    readonly wamid: string
    readonly status: "sent" | "delivered" | "read" | "failed"
    readonly recipient: string
    readonly timestamp?: number
    readonly error?: { readonly code: number; readonly title: string; readonly details?: string }
  },
) => ({
  object: "whatsapp_business_account",
  entry: [{
    id: "102290129340398",
    changes: [{
      field: "messages",
      value: {
        messaging_product: "whatsapp",
        metadata: { display_phone_number: "15550783881", phone_number_id: phoneNumberId },
        statuses: [{
          id: status.wamid,
          status: status.status,
          timestamp: String(status.timestamp ?? Math.floor(Date.now() / 1000)),
          recipient_id: status.recipient,
          ...(status.error !== undefined
            ? {
              errors: [{
                code: status.error.code,
                title: status.error.title,
                message: status.error.title,
                error_data: { details: status.error.details ?? status.error.title },
              }],
            }
            : {}),
        }],
      },
    }],
  }],
})

export const startWhatsAppFake = async (
  options: WhatsAppFakeOptions = {},
): Promise<WhatsAppFake> => {
  const fake = new FakeGraph(options)
  await fake.listen()
  for (const number of options.numbers ?? []) fake.addNumber(number)
  return fake.api()
}

// ---------------------------------------------------------------------------------------------

/** Meta's words for the codes the fake answers (WhatsApp Cloud API error codes reference). */
const ERRORS: Record<number, { status: number; message: string; details: string }> = {
  100: { status: 400, message: "(#100) Invalid parameter", details: "Invalid parameter" },
  190: {
    status: 401,
    message: "Invalid OAuth access token - Cannot parse access token",
    details: "Invalid OAuth access token",
  },
  500: {
    status: 500,
    message: "(#131000) Something went wrong",
    details: "Message failed to send due to an unknown error.",
  },
  130429: {
    status: 400,
    message: "(#130429) Rate limit hit",
    details: "Cloud API message throughput has been reached.",
  },
  131026: {
    status: 400,
    message: "(#131026) Message undeliverable",
    details: "Unable to deliver message.",
  },
  131047: {
    status: 400,
    message: "(#131047) Re-engagement message",
    details:
      "Message failed to send because more than 24 hours have passed since the customer last replied to this number.",
  },
  131056: {
    status: 400,
    message: "(#131056) (Business Account, Consumer Account) pair rate limit hit",
    details:
      "Too many messages sent from the sender phone number to the same recipient phone number in a short period of time.",
  },
}

class GraphFailure extends Error {
  constructor(readonly code: number, readonly details?: string) {
    super(ERRORS[code]?.message ?? `(#${code}) error`)
  }
  get status() {
    return ERRORS[this.code]?.status ?? 400
  }
  body() {
    return {
      error: {
        message: this.message,
        type: this.code === 190 ? "OAuthException" : "OAuthException",
        code: this.code === 500 ? 131000 : this.code,
        error_data: {
          messaging_product: "whatsapp",
          details: this.details ?? ERRORS[this.code]?.details ?? this.message,
        },
        fbtrace_id: randomBytes(8).toString("base64url"),
      },
    }
  }
}

const FIXTURES = fileURLToPath(new URL("../../fixtures/providers/whatsapp/", import.meta.url))

const wamid = () => `wamid.${randomBytes(24).toString("base64")}`

class FakeGraph {
  private server: NodeHttp.Server
  private root = ""
  private readonly tokens = new Map<string, string>()
  private readonly mediaFiles = new Map<string, MediaFile & { owner?: string }>()
  private readonly sentBy = new Map<string, Array<SentMessage>>()
  private readonly uploadsBy = new Map<string, Array<Upload>>()
  private readonly readsBy = new Map<string, Array<MarkedRead>>()
  private readonly callLog: Array<GraphCall> = []
  private readonly failures = new Map<string, Array<InjectedFailure & { left: number }>>()
  private readonly closed = new Set<string>()
  private nextMedia = 2_000_000_000_000_000

  constructor(private readonly options: WhatsAppFakeOptions) {
    this.server = NodeHttp.createServer((req, res) => {
      const chunks: Array<Buffer> = []
      req.on("data", (c: Buffer) => chunks.push(c))
      req.on("end", () => this.handle(req, Buffer.concat(chunks), res))
    })
  }

  listen(): Promise<void> {
    return new Promise((resolve) => {
      this.server.listen(0, "127.0.0.1", () => {
        this.root = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`
        resolve()
      })
    })
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.closeAllConnections()
      this.server.close(() => resolve())
    })
  }

  addNumber(number: WhatsAppNumber) {
    this.tokens.set(number.phoneNumberId, number.token)
  }

  addMedia(bytes: Uint8Array, mimeType: string, id?: string): MediaFile {
    const file = {
      id: id ?? String(this.nextMedia++),
      mimeType,
      bytes,
      sha256: createHash("sha256").update(bytes).digest("hex"),
    }
    this.mediaFiles.set(file.id, file)
    return file
  }

  api(): WhatsAppFake {
    return {
      apiRoot: this.root,
      addNumber: (n) => this.addNumber(n),
      addMedia: (b, m, id) => this.addMedia(b, m, id),
      media: (id) => this.mediaFiles.get(id),
      sent: (p) => [...(this.sentBy.get(p) ?? [])],
      uploads: (p) => [...(this.uploadsBy.get(p) ?? [])],
      reads: (p) => [...(this.readsBy.get(p) ?? [])],
      calls: () => [...this.callLog],
      failNext: (p, failure) => {
        const list = this.failures.get(p) ?? []
        list.push({ ...failure, left: failure.times ?? 1 })
        this.failures.set(p, list)
      },
      closeWindow: (to) => this.closed.add(to),
      openWindow: (to) => this.closed.delete(to),
      fixture: (name, opts) => this.fixture(name, opts),
      close: () => this.close(),
    }
  }

  private fixture(
    name: string,
    opts: { readonly timestamp?: number; readonly edit?: (body: any) => void } = {},
  ) {
    const dir = this.options.fixturesDir ?? FIXTURES
    const body = JSON.parse(readFileSync(`${dir}/${name}.json`, "utf8"))
    const timestamp = String(opts.timestamp ?? Math.floor(Date.now() / 1000))
    for (const entry of body.entry ?? []) {
      for (const change of entry.changes ?? []) {
        for (const message of change.value?.messages ?? []) {
          message.id = wamid()
          message.timestamp = timestamp
          const media = message[message.type]
          if (media?.sha256 === "MEDIA_SHA256") {
            media.sha256 = this.mediaFiles.get(String(media.id))?.sha256 ?? media.sha256
          }
        }
        for (const status of change.value?.statuses ?? []) status.timestamp = timestamp
      }
    }
    opts.edit?.(body)
    return body
  }

  private owner(req: NodeHttp.IncomingMessage): string | undefined {
    const auth = req.headers.authorization ?? ""
    for (const [phone, token] of this.tokens) {
      if (auth === `Bearer ${token}`) return phone
    }
    return undefined
  }

  private armed(
    phone: string,
    endpoint: "messages" | "media" | "mediaInfo",
  ): InjectedFailure | undefined {
    const list = this.failures.get(phone) ?? []
    const at = list.findIndex((f) => (f.endpoint ?? "messages") === endpoint)
    if (at === -1) return undefined
    const failure = list[at]!
    failure.left -= 1
    if (failure.left <= 0) list.splice(at, 1)
    return failure
  }

  private handle(req: NodeHttp.IncomingMessage, raw: Buffer, res: NodeHttp.ServerResponse) {
    const url = new URL(req.url ?? "/", this.root)
    const method = req.method ?? "GET"
    const answer = (status: number, body: unknown, code?: number) => {
      this.callLog.push({ method, path: url.pathname, status, code })
      if (body instanceof Uint8Array) {
        res.writeHead(status, { "content-type": "application/octet-stream" })
        res.end(body)
        return
      }
      res.writeHead(status, { "content-type": "application/json" })
      res.end(JSON.stringify(body))
    }
    const fail = (failure: GraphFailure) =>
      answer(failure.status, failure.body(), failure.body().error.code)
    try {
      // The media download (Meta's is on lookaside.fbsbx.com): the bearer of any number.
      if (method === "GET" && url.pathname === "/whatsapp_business/attachments/") {
        if (this.owner(req) === undefined) throw new GraphFailure(190)
        const file = this.mediaFiles.get(url.searchParams.get("mid") ?? "")
        if (file === undefined) return answer(404, { error: "not found" })
        return answer(200, file.bytes)
      }
      const parts = url.pathname.split("/").filter((p) => p !== "")
      if (parts.length < 2 || !/^v\d+\.\d+$/.test(parts[0] ?? "")) {
        throw new GraphFailure(100, `unknown path ${url.pathname}`)
      }
      const owner = this.owner(req)
      if (owner === undefined) throw new GraphFailure(190)
      if (method === "GET" && parts.length === 2) {
        const armed = this.armed(owner, "mediaInfo")
        if (armed !== undefined) throw new GraphFailure(armed.code)
        const file = this.mediaFiles.get(parts[1] ?? "")
        if (file === undefined) throw new GraphFailure(100, `media ${parts[1]} not found`)
        return answer(200, {
          messaging_product: "whatsapp",
          url: `${this.root}/whatsapp_business/attachments/?mid=${file.id}&ext=${Date.now()}`,
          mime_type: file.mimeType,
          sha256: file.sha256,
          file_size: file.bytes.length,
          id: file.id,
        })
      }
      const [, phone, endpoint] = parts
      if (
        method !== "POST" || parts.length !== 3 || (endpoint !== "messages" && endpoint !== "media")
      ) {
        throw new GraphFailure(100, `unsupported request ${method} ${url.pathname}`)
      }
      // A token reaches only its own number.
      if (owner !== phone) throw new GraphFailure(190)
      const armed = this.armed(phone, endpoint)
      if (armed !== undefined) throw new GraphFailure(armed.code)
      if (endpoint === "media") return answer(200, this.upload(phone, req, raw))
      if (!/^application\/json\b/i.test(req.headers["content-type"] ?? "")) {
        throw new GraphFailure(100, "expected a JSON body (Content-Type: application/json)")
      }
      return answer(200, this.message(phone, JSON.parse(raw.toString("utf8"))))
    } catch (error) {
      if (error instanceof GraphFailure) return fail(error)
      return fail(new GraphFailure(100, String((error as Error).message ?? error)))
    }
  }

  private upload(phone: string, req: NodeHttp.IncomingMessage, raw: Buffer) {
    const boundary = multipartBoundary(req.headers["content-type"])
    if (boundary === undefined) throw new GraphFailure(100, "expected multipart/form-data")
    const form = parseMultipart(raw, boundary)
    if (form.fields["messaging_product"] !== "whatsapp") {
      throw new GraphFailure(100, "messaging_product must be whatsapp")
    }
    const file = form.files["file"]
    if (file === undefined || file.bytes.length === 0) throw new GraphFailure(100, "no file")
    const type = form.fields["type"] ?? file.contentType ?? ""
    const stored = this.addMedia(file.bytes, type)
    const list = this.uploadsBy.get(phone) ?? []
    list.push({
      phoneNumberId: phone,
      id: stored.id,
      type,
      filename: file.filename,
      contentType: file.contentType,
      bytes: file.bytes,
    })
    this.uploadsBy.set(phone, list)
    return { id: stored.id }
  }

  private message(phone: string, body: Record<string, any>) {
    if (body.messaging_product !== "whatsapp") {
      throw new GraphFailure(100, "messaging_product must be whatsapp")
    }
    if (body.status === "read") {
      // Mark a received message read, with or without the typing indicator.
      if (typeof body.message_id !== "string" || !body.message_id.startsWith("wamid.")) {
        throw new GraphFailure(100, "message_id: expected a wamid")
      }
      const list = this.readsBy.get(phone) ?? []
      list.push({ messageId: body.message_id, typing: body.typing_indicator?.type === "text" })
      this.readsBy.set(phone, list)
      return { success: true }
    }
    // `to` a phone number, or `recipient` a business-scoped user id (`to` wins when both).
    const to = String(body.to ?? body.recipient ?? "")
    if (
      body.to !== undefined
        ? !/^\+?\d{7,15}$/.test(to)
        : !/^[A-Z]{2}\.(ENT\.)?[A-Za-z0-9]+$/.test(to)
    ) throw new GraphFailure(100, `to: invalid recipient ${to}`)
    const type = String(body.type ?? "text")
    if (type !== "template" && this.closed.has(to.replace(/^\+/, ""))) {
      throw new GraphFailure(131047)
    }
    this.check(type, body)
    const id = wamid()
    const list = this.sentBy.get(phone) ?? []
    list.push({ phoneNumberId: phone, wamid: id, to, type, body })
    this.sentBy.set(phone, list)
    return {
      messaging_product: "whatsapp",
      contacts: [
        body.to !== undefined
          ? { input: to, wa_id: to.replace(/^\+/, "") }
          : { input: to, user_id: to },
      ],
      messages: [{ id, ...(type === "template" ? { message_status: "accepted" } : {}) }],
    }
  }

  /** The Cloud API's limits on what a message may hold. */
  private check(type: string, body: Record<string, any>) {
    const invalid = (details: string) => new GraphFailure(100, details)
    switch (type) {
      case "text": {
        const text = body.text?.body
        if (typeof text !== "string" || text.length === 0) throw invalid("text.body is required")
        if (text.length > 4096) throw invalid("text.body is longer than 4096 characters")
        return
      }
      case "image":
      case "video":
      case "audio":
      case "document":
      case "sticker": {
        const media = body[type]
        if (typeof media?.id === "string") {
          if (!this.mediaFiles.has(media.id)) throw invalid(`${type}.id ${media.id} not found`)
        } else if (typeof media?.link !== "string") throw invalid(`${type}.id or .link is required`)
        if (media.caption !== undefined && (type === "audio" || type === "sticker")) {
          throw invalid(`${type} takes no caption`)
        }
        if (typeof media.caption === "string" && media.caption.length > 1024) {
          throw invalid("caption is longer than 1024 characters")
        }
        return
      }
      case "interactive": {
        const i = body.interactive
        const text = i?.body?.text
        if (typeof text !== "string" || text.length === 0) {
          throw invalid("interactive.body.text is required")
        }
        if (i.type === "button") {
          const buttons = i.action?.buttons ?? []
          if (buttons.length < 1 || buttons.length > 3) throw invalid("1 to 3 buttons")
          if (text.length > 1024) throw invalid("body.text is longer than 1024 characters")
          for (const b of buttons) {
            if (b.type !== "reply" || typeof b.reply?.id !== "string") {
              throw invalid("buttons are of type reply, with an id")
            }
            if (String(b.reply.title ?? "").length > 20) {
              throw invalid("a button title is longer than 20 characters")
            }
          }
          return
        }
        if (i.type === "list") {
          const rows = (i.action?.sections ?? []).flatMap((s: any) => s.rows ?? [])
          if (rows.length < 1 || rows.length > 10) throw invalid("1 to 10 rows")
          if (String(i.action?.button ?? "").length > 20) throw invalid("button label > 20")
          for (const r of rows) {
            if (String(r.title ?? "").length > 24) throw invalid("a row title > 24 characters")
          }
          return
        }
        if (i.type === "cta_url") {
          if (typeof i.action?.parameters?.url !== "string") throw invalid("url is required")
          return
        }
        throw invalid(`interactive type ${i?.type}`)
      }
      case "template": {
        if (typeof body.template?.name !== "string") throw invalid("template.name is required")
        if (typeof body.template?.language?.code !== "string") {
          throw invalid("template.language.code is required")
        }
        return
      }
      default:
        throw invalid(`type ${type}`)
    }
  }
}
