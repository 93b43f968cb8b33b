/**
 * Fault injection for the Telegram channel (issue #5): the fake Bot API holds 5,000 pending
 * updates (50 chats × 100 messages); `chorus start` runs as a child process with the Telegram
 * plugin polling them, and is killed with SIGKILL while it works through them, then restarted on
 * the same data directory. Afterwards every update is stored exactly once, each chat's messages
 * in the order the customer wrote them, and Telegram has nothing pending: an update is confirmed
 * (the polling offset moves past it) only once Chorus holds it, and the repeat of an update
 * taken but not confirmed before the kill is recognised.
 */
import Sqlite from "better-sqlite3"
import * as NodeFs from "node:fs"
import { tmpdir } from "node:os"
import * as NodePath from "node:path"
import { afterEach, assert, describe, it } from "vitest"
import { type ChorusProcess, startChorus } from "../support/ChorusProcess.ts"
import { startTelegramFake, type TelegramFake } from "../support/fakes/TelegramFake.ts"
import { installRepoPlugins } from "../support/PluginFixtures.ts"

const CHATS = 50
const PER_CHAT = 100
const TOTAL = CHATS * PER_CHAT
const TOKEN = "7002:kill-test-token"

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))
const waitFor = async (check: () => boolean, withinMs: number) => {
  const deadline = Date.now() + withinMs
  while (!check()) {
    if (Date.now() > deadline) return false
    await sleep(50)
  }
  return true
}

const children = new Set<ChorusProcess>()
const cleanups: Array<() => Promise<void> | void> = []
afterEach(async () => {
  for (const c of children) c.child.kill("SIGKILL")
  children.clear()
  for (const f of cleanups.splice(0).reverse()) await f()
})

const start = (config: string) => {
  const chorus = startChorus(["start", "--config", config], {
    env: { CHORUS_PLUGIN_TELEGRAM_BOT_TOKEN_MAIN: TOKEN },
  })
  children.add(chorus)
  return chorus
}

/** How many telegram messages the database holds now (a read-only look, WAL-safe). */
const storedCount = (file: string): number => {
  if (!NodeFs.existsSync(file)) return 0
  const db = new Sqlite(file, { readonly: true, fileMustExist: true })
  try {
    return (db.prepare("select count(*) as n from messages where channel = 'telegram'").get() as {
      n: number
    }).n
  } catch {
    return 0 // not migrated yet
  } finally {
    db.close()
  }
}

describe("telegram channel under kill -9", () => {
  it(
    `${TOTAL} pending updates: chorus killed mid-way and restarted; each stored once, in order`,
    async () => {
      const fake: TelegramFake = await startTelegramFake({ bots: [TOKEN] })
      cleanups.push(() => fake.close())
      const now = Math.floor(Date.now() / 1000)
      // Interleaved as customers write: message n of every chat, then n+1.
      for (let n = 1; n <= PER_CHAT; n++) {
        for (let c = 1; c <= CHATS; c++) {
          const id = 900_000 + c
          fake.pushUpdate(TOKEN, {
            message: {
              message_id: n,
              date: now,
              chat: { id, type: "private", first_name: `C${c}` },
              from: { id, is_bot: false, first_name: `C${c}` },
              text: `c${c}-${n}`,
            },
          } as never)
        }
      }
      assert.strictEqual(fake.pending(TOKEN).length, TOTAL)

      const dir = NodeFs.mkdtempSync(NodePath.join(tmpdir(), "chorus-telegram-kill-"))
      cleanups.push(() => NodeFs.rmSync(dir, { recursive: true, force: true }))
      const plugins = NodePath.join(dir, "plugins")
      installRepoPlugins(plugins, ["telegram"], { net: { telegram: [new URL(fake.apiRoot).host] } })
      const config = NodePath.join(dir, "chorus.config.json")
      NodeFs.writeFileSync(
        config,
        JSON.stringify({
          dataDir: NodePath.join(dir, "data"),
          http: { port: 0 },
          log: { level: "info" },
          plugins: {
            dirs: [plugins],
            settings: { telegram: { accounts: "main", apiRoot: fake.apiRoot, pollTimeout: 1 } },
          },
        }),
      )
      const database = NodePath.join(dir, "data", "chorus.sqlite")

      let chorus = start(config)
      await chorus.ready
      const killAt = Math.floor(TOTAL * 0.3)
      assert.isTrue(
        await waitFor(() => storedCount(database) >= killAt, 120_000),
        `stored ${storedCount(database)} of ${TOTAL} before the kill\n${
          chorus.lines.slice(-20).join("\n")
        }`,
      )
      chorus.child.kill("SIGKILL")
      await chorus.exited
      children.delete(chorus)
      const atKill = { stored: storedCount(database), pending: fake.pending(TOKEN).length }

      chorus = start(config)
      await chorus.ready
      assert.isTrue(
        await waitFor(
          () => fake.pending(TOKEN).length === 0 && storedCount(database) >= TOTAL,
          240_000,
        ),
        `after the restart: stored ${storedCount(database)}, pending ${
          fake.pending(TOKEN).length
        }\n${chorus.lines.slice(-20).join("\n")}`,
      )
      chorus.child.kill("SIGTERM")
      await chorus.exited
      children.delete(chorus)

      const db = new Sqlite(database, { readonly: true })
      try {
        const rows = db.prepare(
          "select conversation_id as conversation, seq, external_id as externalId, text from messages " +
            "where channel = 'telegram' order by conversation_id, seq",
        ).all() as Array<{ conversation: string; seq: number; externalId: string; text: string }>
        assert.strictEqual(rows.length, TOTAL, "every update stored once")
        assert.strictEqual(new Set(rows.map((r) => r.externalId)).size, TOTAL, "no update twice")
        const byConversation = new Map<string, Array<string>>()
        for (const r of rows) {
          byConversation.set(r.conversation, [
            ...(byConversation.get(r.conversation) ?? []),
            r.text,
          ])
        }
        assert.strictEqual(byConversation.size, CHATS)
        for (const texts of byConversation.values()) {
          const chat = texts[0]!.split("-")[0]
          assert.deepStrictEqual(
            texts,
            Array.from({ length: PER_CHAT }, (_, i) => `${chat}-${i + 1}`),
          )
        }
      } finally {
        db.close()
      }
      console.log(
        `telegram kill -9: killed at ${atKill.stored} stored / ${
          TOTAL - atKill.pending
        } confirmed; ` +
          `all ${TOTAL} stored once, in order`,
      )
    },
    420_000,
  )
})
