/**
 * A fake Telegram Bot API server on loopback (node:http, port 0) for tests of the Telegram
 * channel. It speaks the Bot API wire format, so grammY runs unchanged against it:
 * `new Bot(token, { client: { apiRoot: fake.apiRoot } })`. Parameters arrive as JSON,
 * multipart/form-data (grammY's uploads), url-encoded forms or the query string, as Telegram
 * takes them; method names are case-insensitive, as at Telegram.
 *
 * It does: several bots by token (401 for others), `getMe`, `getUpdates` (offset confirms,
 * limit, long-poll timeout, allowed_updates, 409 conflicts), webhooks (`setWebhook`,
 * `deleteWebhook`, `getWebhookInfo`; updates POSTed one at a time in order with the secret
 * header, retried until a 2xx; a Bot API call in the 2xx answer is run), `sendMessage`,
 * `sendPhoto`, `sendDocument` (replies carry `reply_to_message`), `sendChatAction`, `getFile` and
 * the file download endpoint. Tests push updates (or the real payloads in
 * `tests/fixtures/providers/telegram/`), read what the bot sent, and arm failures (429, 403, 400).
 *
 * Where it is simpler than Telegram: `parse_mode` markup is not parsed (text is echoed as sent);
 * a photo is answered with one `PhotoSize` (no thumbnails); webhooks may be plain http on any
 * port; files are shared by all bots of one fake.
 *
 * @example
 * ```ts
 * const fake = yield* telegramFake({ bots: ["123:abc"] })
 * const bot = new Bot("123:abc", { client: { apiRoot: fake.apiRoot } })
 * fake.pushFixture("123:abc", "message")
 * const updates = yield* Effect.promise(() => bot.api.getUpdates({ timeout: 5 }))
 * ```
 */
import { randomBytes } from "node:crypto"
import { readFileSync } from "node:fs"
import * as NodeHttp from "node:http"
import type { AddressInfo } from "node:net"
import { extname } from "node:path"
import { fileURLToPath } from "node:url"
import { Effect } from "effect"
import type {
  Chat,
  Document,
  File,
  Message,
  PhotoSize,
  Update,
  UserFromGetMe,
  WebhookInfo,
} from "grammy/types"
import { imageSize } from "./TelegramFake/ImageSize.ts"
import { type FormFile, multipartBoundary, parseMultipart } from "./TelegramFake/MultipartForm.ts"

// ---------------------------------------------------------------------------------------------
// Public surface

export interface TelegramFakeOptions {
  /** Bots known from the start, by token (`"<bot id>:<secret>"`). Default: none. */
  readonly bots?: ReadonlyArray<string | BotProfile>
  /** Where `pushFixture` reads `<name>.json`. Default: `tests/fixtures/providers/telegram/`. */
  readonly fixturesDir?: string
  /** Wait before a failed webhook delivery is tried again. Default: 100 ms. */
  readonly webhookRetryDelayMs?: number
  /** How long a webhook POST may take before it counts as failed. Default: 5,000 ms. */
  readonly webhookTimeoutMs?: number
}

export interface BotProfile {
  readonly token: string
  /** Default: `"Test Bot <id>"`. */
  readonly first_name?: string
  /** Default: `"test_<id>_bot"`. */
  readonly username?: string
}

/** A message the bot sent successfully, as the fake read the request. */
export interface SentMessage {
  readonly method: string
  readonly chat_id: number | string
  readonly text: string | undefined
  readonly caption: string | undefined
  readonly parse_mode: string | undefined
  readonly reply_markup: unknown
  readonly files: ReadonlyArray<SentFile>
  /** Every parameter as the fake decoded it (uploads as `attach://…` strings). */
  readonly params: Readonly<Record<string, unknown>>
  /** The `Message` the fake answered with. */
  readonly message: Message
}

export interface SentFile {
  /** The parameter the file was given for (`photo`, `document`). */
  readonly field: string
  readonly file_id: string
  /** How the bot gave it: uploaded bytes, an existing file_id, or a URL the fake fetched. */
  readonly source: "upload" | "file_id" | "url"
  readonly filename: string | undefined
  readonly url: string | undefined
  readonly bytes: Uint8Array
}

/** One request to the Bot API, answered or failed. */
export interface ApiCall {
  readonly method: string
  readonly params: Readonly<Record<string, unknown>>
  readonly status: number
  readonly description: string | undefined
}

export interface StoredFile {
  readonly file_id: string
  readonly file_unique_id: string
  readonly file_path: string
  readonly bytes: Uint8Array
  readonly kind: FileKind
  readonly width?: number
  readonly height?: number
  readonly mime_type?: string
  readonly file_name?: string
}

export type FileKind = "photo" | "document" | "other"

/** A failure armed for the next calls of a method. */
export type InjectedFailure =
  /** 429 `Too Many Requests: retry after <n>` with `parameters.retry_after`. */
  | { readonly kind: "tooManyRequests"; readonly retryAfter: number }
  /** 403 `Forbidden: bot was blocked by the user` (or the description given). */
  | { readonly kind: "forbidden"; readonly description?: string }
  /** 400 with this description (`"Bad Request: "` is prefixed when missing). */
  | { readonly kind: "badRequest"; readonly description: string }

export interface TelegramFake {
  /** Give this to grammY: `{ client: { apiRoot } }`. No trailing slash. */
  readonly apiRoot: string
  /** Make a token valid; answers the bot's `getMe` user. */
  readonly addBot: (bot: string | BotProfile) => UserFromGetMe
  /** Make a chat known to a bot, so it may send there without the chat writing first. */
  readonly addChat: (token: string, chat: Chat) => void
  /**
   * Queue an update for the bot. `update_id` is assigned when absent (ids only increase). Chats,
   * message ids and files in it become known. As at Telegram, an update of a type the bot's
   * current `allowed_updates` excludes is not stored. Answers the update as queued.
   */
  readonly pushUpdate: (token: string, update: NewUpdate) => Update
  /**
   * Queue a fixture `<name>.json` with a fresh update_id, fresh message ids (per chat), dates
   * moved to now, and fresh file ids whose files get generated bytes of the fixture's file_size.
   */
  readonly pushFixture: (token: string, name: string) => Update
  /** Updates not yet confirmed (by a getUpdates offset or a 2xx webhook answer), in order. */
  readonly pending: (token: string) => ReadonlyArray<Update>
  /** Messages the bot sent, oldest first. */
  readonly sent: (token: string) => ReadonlyArray<SentMessage>
  /** Every request the bot made, oldest first. */
  readonly calls: (token: string) => ReadonlyArray<ApiCall>
  /**
   * Fail the next `times` calls (default 1) of `method`, or only those for `chatId`.
   */
  readonly failNext: (
    token: string,
    method: string,
    failure: InjectedFailure,
    options?: { readonly times?: number; readonly chatId?: number | string },
  ) => void
  /** The user blocked the bot: every send to this chat answers 403 until `unblockChat`. */
  readonly blockChat: (token: string, chatId: number | string) => void
  readonly unblockChat: (token: string, chatId: number | string) => void
  /** Register a file for `getFile` and download. Default path: `documents/<file_id>`. */
  readonly addFile: (
    fileId: string,
    bytes: Uint8Array,
    options?: { readonly path?: string; readonly kind?: FileKind },
  ) => StoredFile
  /** A file the fake knows (registered, from a pushed update, or sent by a bot). */
  readonly file: (fileId: string) => StoredFile | undefined
  readonly close: () => Promise<void>
}

export type NewUpdate = Omit<Update, "update_id"> & { readonly update_id?: number }

/** The fake as a scoped resource: the server closes with the scope. */
export const telegramFake = (options: TelegramFakeOptions = {}) =>
  Effect.acquireRelease(
    Effect.promise(() => startTelegramFake(options)),
    (fake) => Effect.promise(() => fake.close()),
  )

/** The fake for code outside Effect; call `close()` when done. */
export const startTelegramFake = async (
  options: TelegramFakeOptions = {},
): Promise<TelegramFake> => {
  const fake = new FakeServer(options)
  await fake.listen()
  for (const bot of options.bots ?? []) fake.addBot(bot)
  return fake.api()
}

// ---------------------------------------------------------------------------------------------
// Telegram's answers

class ApiFailure extends Error {
  constructor(
    readonly error_code: number,
    readonly description: string,
    readonly parameters?: { readonly retry_after?: number },
  ) {
    super(description)
  }
}

const badRequest = (description: string) =>
  new ApiFailure(
    400,
    description.startsWith("Bad Request: ") ? description : `Bad Request: ${description}`,
  )

const fromInjected = (failure: InjectedFailure): ApiFailure => {
  switch (failure.kind) {
    case "tooManyRequests":
      return new ApiFailure(429, `Too Many Requests: retry after ${failure.retryAfter}`, {
        retry_after: failure.retryAfter,
      })
    case "forbidden":
      return new ApiFailure(403, failure.description ?? "Forbidden: bot was blocked by the user")
    case "badRequest":
      return badRequest(failure.description)
  }
}

const UNAUTHORIZED = () => new ApiFailure(401, "Unauthorized")
const METHOD_NOT_FOUND = () => new ApiFailure(404, "Not Found: method not found")

/** Update types delivered when a bot never said which it wants (Telegram's default). */
const NOT_BY_DEFAULT = new Set(["chat_member", "message_reaction", "message_reaction_count"])

const MAX_TEXT = 4096
const MAX_CAPTION = 1024
/** getFile refuses files over 20 MB, as the public Bot API does. */
const MAX_DOWNLOAD = 20 * 1024 * 1024

const now = () => Math.floor(Date.now() / 1000)

const randomId = (length: number) => randomBytes(length).toString("base64url").slice(0, length)

const updateType = (update: Update): string | undefined =>
  Object.keys(update).find((key) => key !== "update_id")

const MIME_BY_EXTENSION: Record<string, string> = {
  ".pdf": "application/pdf",
  ".txt": "text/plain",
  ".csv": "text/csv",
  ".html": "text/html",
  ".json": "application/json",
  ".zip": "application/zip",
  ".png": "image/png",
  ".jpg": "image/jpeg",
  ".jpeg": "image/jpeg",
  ".gif": "image/gif",
  ".webp": "image/webp",
  ".mp3": "audio/mpeg",
  ".ogg": "audio/ogg",
  ".mp4": "video/mp4",
  ".doc": "application/msword",
  ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
  ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}

// ---------------------------------------------------------------------------------------------
// Parameters: whatever the transport, a value may be a string that Telegram reads as a number,
// a boolean or JSON.

type Params = Record<string, unknown>

const stringParam = (params: Params, key: string): string | undefined => {
  const value = params[key]
  if (value === undefined || value === null) return undefined
  return typeof value === "string" ? value : String(value)
}

const intParam = (params: Params, key: string): number | undefined => {
  const value = params[key]
  if (value === undefined || value === null || value === "") return undefined
  const n = typeof value === "number" ? value : Number(value)
  if (!Number.isInteger(n)) throw badRequest(`invalid ${key} specified`)
  return n
}

const boolParam = (params: Params, key: string): boolean => {
  const value = params[key]
  return value === true || value === "true" || value === "1" || value === 1
}

const jsonParam = (params: Params, key: string, what: string): unknown => {
  const value = params[key]
  if (typeof value !== "string") return value
  try {
    return JSON.parse(value)
  } catch {
    throw badRequest(`can't parse ${what} JSON object`)
  }
}

const chatIdParam = (params: Params): number | string => {
  const value = params["chat_id"]
  if (value === undefined || value === null || value === "") throw badRequest("chat_id is empty")
  if (typeof value === "number") return value
  const text = String(value)
  return /^-?\d+$/.test(text) ? Number(text) : text
}

const allowedUpdatesParam = (params: Params): ReadonlyArray<string> | undefined => {
  const value = jsonParam(params, "allowed_updates", "allowed updates")
  if (value === undefined || value === null) return undefined
  if (!Array.isArray(value) || value.some((v) => typeof v !== "string")) {
    throw badRequest("can't parse allowed updates JSON object")
  }
  return value as ReadonlyArray<string>
}

// ---------------------------------------------------------------------------------------------
// One bot's state

interface Webhook {
  readonly url: string
  readonly secretToken: string | undefined
  readonly maxConnections: number
  lastErrorDate?: number
  lastErrorMessage?: string
}

interface Poller {
  readonly limit: number
  readonly answer: (updates: Array<Update>) => void
  readonly refuse: (failure: ApiFailure) => void
}

interface ArmedFailure {
  readonly method: string
  readonly chatId: string | undefined
  readonly failure: InjectedFailure
  remaining: number
}

class BotState {
  readonly queue: Array<Update> = []
  readonly sent: Array<SentMessage> = []
  readonly calls: Array<ApiCall> = []
  readonly armed: Array<ArmedFailure> = []
  readonly blocked = new Set<string>()
  readonly chats = new Map<string, Chat>()
  readonly lastMessageId = new Map<string, number>()
  /** Messages by `<chat id>:<message id>`, for `reply_to_message`. */
  readonly messages = new Map<string, Message>()
  /** Telegram starts a bot's update ids at an arbitrary positive number. */
  lastUpdateId = 100_000_000 + Math.floor(Math.random() * 800_000_000)
  allowedUpdates: ReadonlyArray<string> | undefined = undefined
  webhook: Webhook | undefined = undefined
  poller: Poller | undefined = undefined
  delivering = false

  constructor(readonly token: string, readonly user: UserFromGetMe) {}

  allows(type: string | undefined): boolean {
    if (type === undefined) return false
    const allowed = this.allowedUpdates
    if (allowed === undefined || allowed.length === 0) return !NOT_BY_DEFAULT.has(type)
    return allowed.includes(type)
  }

  nextMessageId(chatId: number | string): number {
    const key = String(chatId)
    const next = (this.lastMessageId.get(key) ?? 0) + 1
    this.lastMessageId.set(key, next)
    return next
  }

  rememberChat(chat: Chat) {
    this.chats.set(String(chat.id), chat)
    if ("username" in chat && chat.username !== undefined) this.chats.set(`@${chat.username}`, chat)
  }

  rememberMessage(message: Message) {
    const { reply_to_message: _, ...stored } = message
    this.messages.set(
      `${message.chat.id}:${message.message_id}`,
      structuredClone(stored) as Message,
    )
  }

  /** Forget (confirm) every queued update with an id below `offset`. */
  confirmBelow(offset: number) {
    while (this.queue.length > 0 && this.queue[0]!.update_id < offset) this.queue.shift()
  }
}

// ---------------------------------------------------------------------------------------------
// The server

class FakeServer {
  private readonly bots = new Map<string, BotState>()
  private readonly files = new Map<string, StoredFile>()
  private readonly filesByPath = new Map<string, StoredFile>()
  private readonly closing = new AbortController()
  private readonly server: NodeHttp.Server
  private readonly fixturesDir: string
  private readonly retryDelayMs: number
  private readonly webhookTimeoutMs: number
  private fileCount = 0
  apiRoot = ""

  constructor(options: TelegramFakeOptions) {
    this.fixturesDir = options.fixturesDir ??
      fileURLToPath(new URL("../../fixtures/providers/telegram/", import.meta.url))
    this.retryDelayMs = options.webhookRetryDelayMs ?? 100
    this.webhookTimeoutMs = options.webhookTimeoutMs ?? 5_000
    this.server = NodeHttp.createServer((req, res) => {
      const chunks: Array<Buffer> = []
      req.on("data", (chunk: Buffer) => chunks.push(chunk))
      req.on("end", () => {
        this.route(req, res, Buffer.concat(chunks)).catch((cause: unknown) => {
          // a bug in the fake itself: say so loudly rather than hang the client
          if (!res.headersSent) res.writeHead(500, { "content-type": "text/plain" })
          res.end(`TelegramFake failed: ${String(cause)}`)
        })
      })
    })
  }

  listen(): Promise<void> {
    return new Promise((resolve) => {
      this.server.listen(0, "127.0.0.1", () => {
        const { port } = this.server.address() as AddressInfo
        this.apiRoot = `http://127.0.0.1:${port}`
        resolve()
      })
    })
  }

  close(): Promise<void> {
    this.closing.abort()
    for (const bot of this.bots.values()) bot.poller?.answer([])
    return new Promise((resolve) => {
      this.server.closeAllConnections()
      this.server.close(() => resolve())
    })
  }

  api(): TelegramFake {
    return {
      apiRoot: this.apiRoot,
      addBot: (bot) => this.addBot(bot),
      addChat: (token, chat) => this.bot(token).rememberChat(structuredClone(chat)),
      pushUpdate: (token, update) => this.pushUpdate(this.bot(token), update),
      pushFixture: (token, name) => this.pushFixture(this.bot(token), name),
      pending: (token) => structuredClone(this.bot(token).queue),
      sent: (token) => [...this.bot(token).sent],
      calls: (token) => [...this.bot(token).calls],
      failNext: (token, method, failure, options) =>
        this.bot(token).armed.push({
          method: method.toLowerCase(),
          chatId: options?.chatId === undefined ? undefined : String(options.chatId),
          failure,
          remaining: options?.times ?? 1,
        }),
      blockChat: (token, chatId) => this.bot(token).blocked.add(String(chatId)),
      unblockChat: (token, chatId) => this.bot(token).blocked.delete(String(chatId)),
      addFile: (fileId, bytes, options) =>
        this.storeFile({
          file_id: fileId,
          bytes,
          kind: options?.kind ?? "other",
          file_path: options?.path ?? `documents/${fileId}`,
        }),
      file: (fileId) => this.files.get(fileId),
      close: () => this.close(),
    }
  }

  addBot(profile: string | BotProfile): UserFromGetMe {
    const token = typeof profile === "string" ? profile : profile.token
    const existing = this.bots.get(token)
    if (existing !== undefined) return existing.user
    const prefix = token.split(":")[0] ?? ""
    const id = /^\d+$/.test(prefix) ? Number(prefix) : 1_000_000 + this.bots.size
    const user: UserFromGetMe = {
      id,
      is_bot: true,
      first_name: (typeof profile === "string" ? undefined : profile.first_name) ??
        `Test Bot ${id}`,
      username: (typeof profile === "string" ? undefined : profile.username) ?? `test_${id}_bot`,
      can_join_groups: true,
      can_read_all_group_messages: false,
      supports_inline_queries: false,
      can_connect_to_business: false,
      has_main_web_app: false,
      has_topics_enabled: false,
      allows_users_to_create_topics: false,
      can_manage_bots: false,
      supports_join_request_queries: false,
    }
    this.bots.set(token, new BotState(token, user))
    return user
  }

  private bot(token: string): BotState {
    const bot = this.bots.get(token)
    if (bot === undefined) throw new Error(`TelegramFake: no bot with token ${token}`)
    return bot
  }

  // --- updates ---------------------------------------------------------------------------------

  private pushUpdate(bot: BotState, input: NewUpdate): Update {
    const update = structuredClone(input) as Update
    if (update.update_id === undefined) {
      update.update_id = bot.lastUpdateId + 1
    } else if (update.update_id <= bot.lastUpdateId) {
      throw new Error(
        `TelegramFake: update_id ${update.update_id} is not above the last one (${bot.lastUpdateId})`,
      )
    }
    bot.lastUpdateId = update.update_id
    this.learn(bot, update)
    if (bot.allows(updateType(update))) {
      bot.queue.push(update)
      this.wake(bot)
    }
    return structuredClone(update)
  }

  private pushFixture(bot: BotState, name: string): Update {
    const raw = JSON.parse(readFileSync(`${this.fixturesDir}/${name}.json`, "utf8")) as Update
    const { update_id: _, ...update } = raw
    // move every date so that the latest one is now, keeping the gaps (date → edit_date)
    const dates: Array<number> = []
    walk(update, (node) => {
      for (const key of ["date", "edit_date", "forward_date"]) {
        if (typeof node[key] === "number") dates.push(node[key] as number)
      }
    })
    const shift = dates.length > 0 ? now() - Math.max(...dates) : 0
    walk(update, (node, key) => {
      for (const field of ["date", "edit_date", "forward_date"]) {
        if (typeof node[field] === "number") node[field] = (node[field] as number) + shift
      }
      if (typeof node["message_id"] === "number" && isChat(node["chat"])) {
        node["message_id"] = bot.nextMessageId(node["chat"].id)
      }
      if (typeof node["file_id"] === "string") {
        const kind = fileKindOf(key)
        node["file_id"] = newFileId(kind)
        if (typeof node["file_unique_id"] === "string") node["file_unique_id"] = newUniqueId()
      }
    })
    return this.pushUpdate(bot, update)
  }

  /** Chats, message ids and files an update mentions become known to the fake. */
  private learn(bot: BotState, update: Update) {
    walk(update, (node, key) => {
      if (key === "chat" && isChat(node)) bot.rememberChat(structuredClone(node))
      if (typeof node["message_id"] === "number" && isChat(node["chat"])) {
        const chatKey = String(node["chat"].id)
        const last = bot.lastMessageId.get(chatKey) ?? 0
        if (node["message_id"] > last) bot.lastMessageId.set(chatKey, node["message_id"])
        if (typeof node["date"] === "number") bot.rememberMessage(node as unknown as Message)
      }
      const fileId = node["file_id"]
      if (typeof fileId === "string" && !this.files.has(fileId)) {
        const kind = fileKindOf(key)
        const size = typeof node["file_size"] === "number" ? node["file_size"] : 1024
        const name = typeof node["file_name"] === "string" ? node["file_name"] : undefined
        this.storeFile({
          file_id: fileId,
          ...(typeof node["file_unique_id"] === "string"
            ? { file_unique_id: node["file_unique_id"] }
            : {}),
          bytes: new Uint8Array(randomBytes(size)),
          kind,
          file_path: this.newFilePath(kind, name !== undefined ? extname(name) : ".jpg"),
          ...(typeof node["width"] === "number" ? { width: node["width"] } : {}),
          ...(typeof node["height"] === "number" ? { height: node["height"] } : {}),
          ...(typeof node["mime_type"] === "string" ? { mime_type: node["mime_type"] } : {}),
          ...(name !== undefined ? { file_name: name } : {}),
        })
      }
    })
  }

  /** A new update may answer a waiting long poll or start a webhook delivery. */
  private wake(bot: BotState) {
    if (bot.poller !== undefined && bot.queue.length > 0) {
      const poller = bot.poller
      bot.poller = undefined
      poller.answer(bot.queue.slice(0, poller.limit))
    }
    if (bot.webhook !== undefined && !bot.delivering && bot.queue.length > 0) {
      bot.delivering = true
      void this.deliver(bot).finally(() => {
        bot.delivering = false
        // an update pushed while the last POST was answered is delivered too
        if (bot.webhook !== undefined && bot.queue.length > 0 && !this.closing.signal.aborted) {
          this.wake(bot)
        }
      })
    }
  }

  /** POST queued updates to the webhook one at a time, oldest first, retrying failures. */
  private async deliver(bot: BotState): Promise<void> {
    while (!this.closing.signal.aborted) {
      const hook = bot.webhook
      const update = bot.queue[0]
      if (hook === undefined || update === undefined) return
      let error: string | undefined
      try {
        const response = await fetch(hook.url, {
          method: "POST",
          headers: {
            "content-type": "application/json",
            ...(hook.secretToken !== undefined
              ? { "X-Telegram-Bot-Api-Secret-Token": hook.secretToken }
              : {}),
          },
          body: JSON.stringify(update),
          signal: AbortSignal.any([
            this.closing.signal,
            AbortSignal.timeout(this.webhookTimeoutMs),
          ]),
        })
        const answer = await response.text().catch(() => "")
        if (response.status < 200 || response.status > 299) {
          error = `Wrong response from the webhook: ${response.status} ${response.statusText}`
        } else {
          await this.webhookReply(bot, response.headers.get("content-type"), answer)
        }
      } catch (cause) {
        error = describeFetchError(cause)
      }
      if (this.closing.signal.aborted) return
      if (error === undefined) {
        // confirmed, unless the queue changed under the POST (deleteWebhook dropped it)
        if (bot.queue[0] === update) bot.queue.shift()
        continue
      }
      hook.lastErrorDate = now()
      hook.lastErrorMessage = error
      await sleep(this.retryDelayMs, this.closing.signal)
    }
  }

  /**
   * A 2xx answer to a webhook may carry one Bot API call (`{"method":"sendMessage",...}`), which
   * Telegram runs without telling the bot how it went (grammY's `canUseWebhookReply`).
   */
  private async webhookReply(bot: BotState, contentType: string | null, body: string) {
    if (contentType === null || !/application\/json/i.test(contentType)) return
    let call: unknown
    try {
      call = JSON.parse(body)
    } catch {
      return
    }
    if (typeof call !== "object" || call === null || !("method" in call)) return
    const { method, ...params } = call as Params
    if (typeof method !== "string") return
    await this.callMethod(bot, method, params, {}, undefined)
  }

  // --- files -----------------------------------------------------------------------------------

  private storeFile(
    file: Omit<StoredFile, "file_unique_id"> & { readonly file_unique_id?: string },
  ): StoredFile {
    const stored: StoredFile = { ...file, file_unique_id: file.file_unique_id ?? newUniqueId() }
    const previous = this.files.get(stored.file_id)
    if (previous !== undefined) this.filesByPath.delete(previous.file_path)
    this.files.set(stored.file_id, stored)
    this.filesByPath.set(stored.file_path, stored)
    return stored
  }

  private newFilePath(kind: FileKind, extension: string): string {
    const folder = kind === "photo" ? "photos" : "documents"
    return `${folder}/file_${this.fileCount++}${extension}`
  }

  // --- HTTP ------------------------------------------------------------------------------------

  private async route(req: NodeHttp.IncomingMessage, res: NodeHttp.ServerResponse, body: Buffer) {
    const url = new URL(req.url ?? "/", "http://fake")
    const download = /^\/file\/bot([^/]+)\/(.+)$/.exec(url.pathname)
    if (download !== null) return this.download(res, download[1]!, download[2]!)
    const call = /^\/bot([^/]+)\/([A-Za-z0-9_]+)$/.exec(url.pathname)
    if (call === null) return reply(res, METHOD_NOT_FOUND())
    const bot = this.bots.get(decodeURIComponent(call[1]!))
    if (bot === undefined) return reply(res, UNAUTHORIZED())
    const method = call[2]!
    let params: Params = Object.fromEntries(url.searchParams)
    let uploads: Record<string, FormFile> = {}
    try {
      const read = readBody(req.headers["content-type"], body)
      params = { ...params, ...read.params }
      uploads = read.files
    } catch (cause) {
      return reply(res, cause instanceof ApiFailure ? cause : badRequest("invalid request body"))
    }
    reply(res, await this.callMethod(bot, method, params, uploads, res))
  }

  /** Runs one Bot API call and logs it in `calls`. */
  private async callMethod(
    bot: BotState,
    method: string,
    params: Params,
    uploads: Record<string, FormFile>,
    res: NodeHttp.ServerResponse | undefined,
  ): Promise<{ result: unknown } | ApiFailure> {
    let outcome: { result: unknown } | ApiFailure
    try {
      outcome = { result: await this.dispatch(bot, method, params, uploads, res) }
    } catch (cause) {
      if (!(cause instanceof ApiFailure)) throw cause
      outcome = cause
    }
    bot.calls.push({
      method,
      params,
      status: outcome instanceof ApiFailure ? outcome.error_code : 200,
      description: outcome instanceof ApiFailure ? outcome.description : undefined,
    })
    return outcome
  }

  private download(res: NodeHttp.ServerResponse, token: string, path: string) {
    const file = this.bots.has(decodeURIComponent(token))
      ? this.filesByPath.get(decodeURIComponent(path))
      : undefined
    if (file === undefined) return reply(res, new ApiFailure(404, "Not Found"))
    res.writeHead(200, {
      "content-type": file.mime_type ?? "application/octet-stream",
      "content-length": file.bytes.byteLength,
    })
    res.end(file.bytes)
  }

  private dispatch(
    bot: BotState,
    method: string,
    params: Params,
    uploads: Record<string, FormFile>,
    res: NodeHttp.ServerResponse | undefined,
  ): unknown {
    const name = method.toLowerCase()
    this.checkArmed(bot, name, params)
    switch (name) {
      case "getme":
        return bot.user
      case "getupdates":
        return this.getUpdates(bot, params, res)
      case "setwebhook":
        return this.setWebhook(bot, params)
      case "deletewebhook":
        return this.deleteWebhook(bot, params)
      case "getwebhookinfo":
        return this.webhookInfo(bot)
      case "sendmessage":
        return this.sendMessage(bot, params)
      case "sendphoto":
        return this.sendFile(bot, "sendPhoto", "photo", params, uploads)
      case "senddocument":
        return this.sendFile(bot, "sendDocument", "document", params, uploads)
      case "sendchataction":
        this.targetChat(bot, params)
        return true
      case "answercallbackquery":
        // Any id the fake gave out in a pushed callback query; real Telegram checks it too.
        if (stringParam(params, "callback_query_id") === undefined) {
          throw badRequest(
            "Bad Request: query is too old and response timeout expired or query ID is invalid",
          )
        }
        return true
      case "getfile":
        return this.getFile(params)
      default:
        throw METHOD_NOT_FOUND()
    }
  }

  private checkArmed(bot: BotState, method: string, params: Params) {
    const chatId = stringParam(params, "chat_id")
    const armed = bot.armed.find((a) =>
      a.method === method && a.remaining > 0 && (a.chatId === undefined || a.chatId === chatId)
    )
    if (armed === undefined) return
    armed.remaining -= 1
    if (armed.remaining === 0) bot.armed.splice(bot.armed.indexOf(armed), 1)
    throw fromInjected(armed.failure)
  }

  // --- getUpdates and webhooks -----------------------------------------------------------------

  private getUpdates(
    bot: BotState,
    params: Params,
    res: NodeHttp.ServerResponse | undefined,
  ): Array<Update> | Promise<Array<Update>> {
    if (bot.webhook !== undefined) {
      throw new ApiFailure(
        409,
        "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first",
      )
    }
    const offset = intParam(params, "offset") ?? 0
    const limit = Math.min(100, Math.max(1, intParam(params, "limit") ?? 100))
    const timeout = Math.max(0, intParam(params, "timeout") ?? 0)
    const allowed = allowedUpdatesParam(params)
    if (allowed !== undefined) bot.allowedUpdates = allowed
    if (offset > 0) bot.confirmBelow(offset)
    // a negative offset keeps only the last -offset updates
    if (offset < 0) bot.queue.splice(0, Math.max(0, bot.queue.length + offset))
    // only one getUpdates at a time: the newer request ends the older one
    bot.poller?.refuse(
      new ApiFailure(
        409,
        "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running",
      ),
    )
    bot.poller = undefined
    const ready = bot.queue.slice(0, limit)
    if (ready.length > 0 || timeout === 0) return ready
    return new Promise((resolve, reject) => {
      const finish = () => {
        clearTimeout(timer)
        res?.off("close", gone)
        if (bot.poller === poller) bot.poller = undefined
      }
      const poller: Poller = {
        limit,
        answer: (updates) => {
          finish()
          resolve(updates)
        },
        refuse: (failure) => {
          finish()
          reject(failure)
        },
      }
      const timer = setTimeout(() => poller.answer([]), timeout * 1000)
      // the client gave up (grammY's bot.stop() aborts its poll): stop holding for it
      const gone = () => poller.answer([])
      res?.on("close", gone)
      bot.poller = poller
    })
  }

  private setWebhook(bot: BotState, params: Params): true {
    const url = stringParam(params, "url") ?? ""
    if (url === "") return this.deleteWebhook(bot, params)
    let parsed: URL
    try {
      parsed = new URL(url)
    } catch {
      throw badRequest("invalid webhook URL specified")
    }
    if (parsed.protocol !== "https:" && parsed.protocol !== "http:") {
      throw badRequest("bad webhook: An HTTPS URL must be provided for webhook")
    }
    const secretToken = stringParam(params, "secret_token")
    if (secretToken !== undefined && !/^[A-Za-z0-9_-]{1,256}$/.test(secretToken)) {
      throw badRequest("secret token contains unallowed characters")
    }
    const allowed = allowedUpdatesParam(params)
    if (allowed !== undefined) bot.allowedUpdates = allowed
    if (boolParam(params, "drop_pending_updates")) bot.queue.length = 0
    bot.poller?.refuse(new ApiFailure(409, "Conflict: terminated by setWebhook request"))
    bot.poller = undefined
    bot.webhook = {
      url,
      secretToken,
      maxConnections: intParam(params, "max_connections") ?? 40,
    }
    this.wake(bot)
    return true
  }

  private deleteWebhook(bot: BotState, params: Params): true {
    bot.webhook = undefined
    if (boolParam(params, "drop_pending_updates")) bot.queue.length = 0
    return true
  }

  private webhookInfo(bot: BotState): WebhookInfo {
    const hook = bot.webhook
    return {
      url: hook?.url ?? "",
      has_custom_certificate: false,
      pending_update_count: bot.queue.length,
      ...(hook !== undefined ? { max_connections: hook.maxConnections } : {}),
      ...(hook?.lastErrorDate !== undefined ? { last_error_date: hook.lastErrorDate } : {}),
      ...(hook?.lastErrorMessage !== undefined
        ? { last_error_message: hook.lastErrorMessage }
        : {}),
      ...(bot.allowedUpdates !== undefined && bot.allowedUpdates.length > 0
        ? { allowed_updates: [...bot.allowedUpdates] }
        : {}),
    } as WebhookInfo
  }

  // --- sending ---------------------------------------------------------------------------------

  /** The chat a send goes to: known to the bot, and not one that blocked it. */
  private targetChat(bot: BotState, params: Params): Chat {
    const chatId = chatIdParam(params)
    const chat = bot.chats.get(String(chatId))
    if (chat === undefined) throw badRequest("chat not found")
    if (bot.blocked.has(String(chat.id)) || bot.blocked.has(String(chatId))) {
      throw new ApiFailure(403, "Forbidden: bot was blocked by the user")
    }
    return chat
  }

  private baseMessage(bot: BotState, chat: Chat, params: Params): Message {
    const markup = jsonParam(params, "reply_markup", "reply keyboard markup")
    const message: Record<string, unknown> = {
      message_id: bot.nextMessageId(chat.id),
      from: {
        id: bot.user.id,
        is_bot: true,
        first_name: bot.user.first_name,
        username: bot.user.username,
      },
      chat,
      date: now(),
    }
    // Telegram echoes only inline keyboards in the sent message
    if (typeof markup === "object" && markup !== null && "inline_keyboard" in markup) {
      message["reply_markup"] = markup
    }
    const replyTo = this.replyTo(bot, chat, params)
    if (replyTo !== undefined) message["reply_to_message"] = replyTo
    return message as unknown as Message
  }

  /** The message a send answers (`reply_parameters`, or the older `reply_to_message_id`). */
  private replyTo(bot: BotState, chat: Chat, params: Params): Message | undefined {
    const reply = jsonParam(params, "reply_parameters", "reply parameters") as
      | { message_id?: unknown; allow_sending_without_reply?: unknown }
      | undefined
    const messageId = reply?.message_id ?? intParam(params, "reply_to_message_id")
    if (messageId === undefined || messageId === null) return undefined
    const found = bot.messages.get(`${chat.id}:${Number(messageId)}`)
    const mayGoWithout = reply?.allow_sending_without_reply === true ||
      boolParam(params, "allow_sending_without_reply")
    if (found === undefined && !mayGoWithout) throw badRequest("message to be replied not found")
    return found === undefined ? undefined : structuredClone(found)
  }

  private sendMessage(bot: BotState, params: Params): Message {
    const chat = this.targetChat(bot, params)
    const text = stringParam(params, "text") ?? ""
    if (text.trim() === "") throw badRequest("message text is empty")
    if (text.length > MAX_TEXT) throw badRequest("message is too long")
    const entities = jsonParam(params, "entities", "message entities")
    const message = {
      ...this.baseMessage(bot, chat, params),
      text,
      ...(Array.isArray(entities) ? { entities } : {}),
    } as Message
    this.record(bot, "sendMessage", params, message, [])
    return message
  }

  private async sendFile(
    bot: BotState,
    method: "sendPhoto" | "sendDocument",
    field: "photo" | "document",
    params: Params,
    uploads: Record<string, FormFile>,
  ): Promise<Message> {
    const chat = this.targetChat(bot, params)
    const caption = stringParam(params, "caption")
    if (caption !== undefined && caption.length > MAX_CAPTION) {
      throw badRequest("message caption is too long")
    }
    const input = await this.inputFile(params, field, uploads)
    const kind: FileKind = field
    let stored: StoredFile
    if (input.source === "file_id") {
      stored = input.file
      if (stored.kind !== "other" && stored.kind !== kind) {
        throw badRequest(`can't use file of type ${titleCase(stored.kind)} as ${titleCase(kind)}`)
      }
    } else if (kind === "photo") {
      const size = imageSize(input.bytes)
      if (size === undefined) throw badRequest("IMAGE_PROCESS_FAILED")
      if (Math.max(size.width, size.height) / Math.max(1, Math.min(size.width, size.height)) > 20) {
        throw badRequest("PHOTO_INVALID_DIMENSIONS")
      }
      stored = this.storeFile({
        file_id: newFileId("photo"),
        bytes: input.bytes,
        kind,
        file_path: this.newFilePath("photo", size.format === "jpeg" ? ".jpg" : `.${size.format}`),
        width: size.width,
        height: size.height,
        mime_type: `image/${size.format}`,
      })
    } else {
      const fileName = input.filename ?? "document"
      stored = this.storeFile({
        file_id: newFileId("document"),
        bytes: input.bytes,
        kind,
        file_path: this.newFilePath("document", extname(fileName)),
        file_name: fileName,
        mime_type: MIME_BY_EXTENSION[extname(fileName).toLowerCase()] ??
          "application/octet-stream",
      })
    }
    const captionEntities = jsonParam(params, "caption_entities", "caption entities")
    const media: Record<string, unknown> = field === "photo"
      ? { photo: [photoSize(stored)] }
      : { document: documentOf(stored) }
    const message = {
      ...this.baseMessage(bot, chat, params),
      ...media,
      ...(caption !== undefined && caption !== "" ? { caption } : {}),
      ...(Array.isArray(captionEntities) ? { caption_entities: captionEntities } : {}),
    } as Message
    this.record(bot, method, params, message, [{
      field,
      file_id: stored.file_id,
      source: input.source,
      filename: input.source === "file_id" ? stored.file_name : input.filename,
      url: input.source === "url" ? input.url : undefined,
      bytes: stored.bytes,
    }])
    return message
  }

  /** A file parameter: an upload (`attach://name` or the field itself), a file_id, or a URL. */
  private async inputFile(
    params: Params,
    field: string,
    uploads: Record<string, FormFile>,
  ): Promise<
    | { source: "upload"; bytes: Uint8Array; filename: string | undefined }
    | { source: "url"; bytes: Uint8Array; filename: string | undefined; url: string }
    | { source: "file_id"; file: StoredFile }
  > {
    const value = stringParam(params, field)
    const attached = value?.startsWith("attach://") ? uploads[value.slice(9)] : uploads[field]
    if (attached !== undefined) {
      return { source: "upload", bytes: attached.bytes, filename: attached.filename }
    }
    if (value === undefined || value === "" || value.startsWith("attach://")) {
      throw badRequest(`there is no ${field} in the request`)
    }
    if (/^https?:\/\//i.test(value)) {
      const response = await fetch(value, { signal: this.closing.signal }).catch(() => undefined)
      if (response === undefined || !response.ok) {
        throw badRequest("failed to get HTTP URL content")
      }
      const bytes = new Uint8Array(await response.arrayBuffer())
      const filename = new URL(value).pathname.split("/").pop() || undefined
      return { source: "url", bytes, filename, url: value }
    }
    const file = this.files.get(value)
    if (file === undefined) throw badRequest("wrong file identifier/HTTP URL specified")
    return { source: "file_id", file }
  }

  private record(
    bot: BotState,
    method: string,
    params: Params,
    message: Message,
    files: Array<SentFile>,
  ) {
    bot.rememberMessage(message)
    const markup = params["reply_markup"]
    bot.sent.push({
      method,
      chat_id: chatIdParam(params),
      text: "text" in message ? message.text : undefined,
      caption: "caption" in message ? message.caption : undefined,
      parse_mode: stringParam(params, "parse_mode"),
      reply_markup: markup === undefined
        ? undefined
        : jsonParam(params, "reply_markup", "reply keyboard markup"),
      files,
      params,
      message: structuredClone(message),
    })
  }

  // --- files -----------------------------------------------------------------------------------

  private getFile(params: Params): File {
    const fileId = stringParam(params, "file_id")
    if (fileId === undefined || fileId === "") throw badRequest("file_id not specified")
    const file = this.files.get(fileId)
    if (file === undefined) throw badRequest("invalid file_id")
    if (file.bytes.byteLength > MAX_DOWNLOAD) throw badRequest("file is too big")
    return {
      file_id: file.file_id,
      file_unique_id: file.file_unique_id,
      file_size: file.bytes.byteLength,
      file_path: file.file_path,
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Small pieces

const reply = (res: NodeHttp.ServerResponse, outcome: { result: unknown } | ApiFailure) => {
  if (res.writableEnded || res.destroyed) return
  const failed = outcome instanceof ApiFailure
  const body = failed
    ? {
      ok: false,
      error_code: outcome.error_code,
      description: outcome.description,
      ...(outcome.parameters !== undefined ? { parameters: outcome.parameters } : {}),
    }
    : { ok: true, result: outcome.result }
  res.writeHead(failed ? outcome.error_code : 200, { "content-type": "application/json" })
  res.end(JSON.stringify(body))
}

const readBody = (
  contentType: string | undefined,
  body: Buffer,
): { params: Params; files: Record<string, FormFile> } => {
  if (body.length === 0) return { params: {}, files: {} }
  const boundary = multipartBoundary(contentType)
  if (boundary !== undefined) {
    const form = parseMultipart(body, boundary)
    return { params: form.fields, files: form.files }
  }
  if (contentType !== undefined && /application\/x-www-form-urlencoded/i.test(contentType)) {
    return { params: Object.fromEntries(new URLSearchParams(body.toString("utf8"))), files: {} }
  }
  let json: unknown
  try {
    json = JSON.parse(body.toString("utf8"))
  } catch {
    throw badRequest("can't parse JSON encoded request body")
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw badRequest("can't parse JSON encoded request body")
  }
  return { params: json as Params, files: {} }
}

type Node = Record<string, unknown>

/** Visits every object in a JSON value with the key it sits under (array items: the array's). */
const walk = (value: unknown, visit: (node: Node, key: string | undefined) => void) => {
  const go = (v: unknown, key: string | undefined) => {
    if (Array.isArray(v)) {
      for (const item of v) go(item, key)
    } else if (typeof v === "object" && v !== null) {
      visit(v as Node, key)
      for (const [k, child] of Object.entries(v)) go(child, k)
    }
  }
  go(value, undefined)
}

const isChat = (value: unknown): value is Chat =>
  typeof value === "object" && value !== null && typeof (value as Node)["id"] === "number" &&
  typeof (value as Node)["type"] === "string"

const fileKindOf = (key: string | undefined): FileKind =>
  key === "photo" ? "photo" : key === "document" ? "document" : "other"

/** File ids look like Telegram's: a type prefix and a long url-safe tail. */
const newFileId = (kind: FileKind) =>
  `${kind === "photo" ? "AgACAgIAAxkBAAI" : "BQACAgIAAxkBAAI"}${randomId(56)}`

const newUniqueId = () => `AQAD${randomId(12)}`

const titleCase = (word: string) => word.charAt(0).toUpperCase() + word.slice(1)

const photoSize = (file: StoredFile): PhotoSize => ({
  file_id: file.file_id,
  file_unique_id: file.file_unique_id,
  width: file.width ?? 0,
  height: file.height ?? 0,
  file_size: file.bytes.byteLength,
})

const documentOf = (file: StoredFile): Document => ({
  file_id: file.file_id,
  file_unique_id: file.file_unique_id,
  ...(file.file_name !== undefined ? { file_name: file.file_name } : {}),
  ...(file.mime_type !== undefined ? { mime_type: file.mime_type } : {}),
  file_size: file.bytes.byteLength,
})

const describeFetchError = (cause: unknown): string => {
  const code = (cause as { cause?: { code?: string } })?.cause?.code
  if (code === "ECONNREFUSED") return "Connection refused"
  if (cause instanceof Error && cause.name === "TimeoutError") return "Read timeout expired"
  return cause instanceof Error ? cause.message : String(cause)
}

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    const timer = setTimeout(done, ms)
    function done() {
      clearTimeout(timer)
      signal.removeEventListener("abort", done)
      resolve()
    }
    signal.addEventListener("abort", done)
  })
