/**
 * `chorus.plugin.json` checks: one test per kind of mistake a plugin author makes, each reported
 * with its path; every problem at once; a host API version outside `engines.chorus` refused.
 */
import * as NodeFs from "node:fs"
import * as NodePath from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Either } from "effect"
import type { ChannelCapabilities } from "../../core/channels/ChannelAdapter.ts"
import { HOST_API_VERSION } from "../../core/plugins/HostApiVersion.ts"
import {
  decodeManifest,
  loadManifest,
  type ManifestInvalid,
  type ManifestProblem,
} from "../../core/plugins/Manifest.ts"
import type { ChannelCapabilitiesSchema } from "../../schemas/PluginManifest.ts"
import { tempDir } from "../support/TempDir.ts"

// A channel's declared capabilities are the adapter contract's, both ways.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false
const capabilitiesMatch: Same<typeof ChannelCapabilitiesSchema.Type, ChannelCapabilities> = true

const valid = {
  id: "telegram",
  version: "1.0.0",
  engines: { chorus: "^1.0.0" },
  entry: "dist/index.js",
  kind: "channel",
  contributes: {
    channels: [{ name: "telegram", capabilities: { maxTextLength: 4096, attachments: true } }],
    routes: [{ method: "POST", path: "/plugins/telegram/webhook" }],
    subjects: { publishes: ["inbound.telegram"], consumes: ["outbound.telegram"] },
    settings: [{ key: "pollInterval", type: "integer", default: 30 }],
    migrations: "migrations",
    panels: [{
      id: "tg-info",
      title: "Telegram",
      location: "conversation-sidebar",
      entry: "ui/panel.js",
    }],
  },
  permissions: {
    bus: { publish: ["inbound.telegram"], subscribe: ["outbound.telegram"] },
    net: ["api.telegram.org", "*.telegram.org:443", "127.0.0.1:8080"],
    secrets: ["BOT_TOKEN"],
    storage: { tables: ["plugin_telegram_offsets"] },
  },
}

type Json = Record<string, any>

/** `valid` with `path` (dotted) set to `value` (`undefined` removes it). */
const withField = (path: string, value: unknown): Json => {
  const copy = structuredClone(valid) as Json
  const parts = path.split(".")
  let node = copy
  for (const part of parts.slice(0, -1)) node = node[part]
  if (value === undefined) delete node[parts.at(-1)!]
  else node[parts.at(-1)!] = value
  return copy
}

const problems = (raw: unknown, hostApiVersion?: string): ReadonlyArray<ManifestProblem> => {
  const result = decodeManifest(raw, {
    file: "chorus.plugin.json",
    ...(hostApiVersion !== undefined ? { hostApiVersion } : {}),
  })
  assert.isTrue(Either.isLeft(result), "expected the manifest to be refused")
  return (result as Either.Left<ManifestInvalid, unknown>).left.problems
}

/** Exactly one problem, at `path`, whose message contains `text`. */
const refusedAt = (raw: unknown, path: string, text: string) => {
  const found = problems(raw)
  assert.lengthOf(found, 1, JSON.stringify(found))
  assert.strictEqual(found[0]!.path, path)
  assert.include(found[0]!.message, text)
}

describe("plugin manifest", () => {
  it("accepts a complete manifest and fills in what is optional", () => {
    const result = decodeManifest(valid, { file: "chorus.plugin.json" })
    assert.isTrue(Either.isRight(result), JSON.stringify(result))
    const minimal = decodeManifest(
      {
        id: "echo",
        version: "0.1.0",
        engines: { chorus: "^1.0.0" },
        entry: "index.js",
        kind: "bot",
      },
      { file: "chorus.plugin.json" },
    )
    assert.isTrue(Either.isRight(minimal))
    const manifest = Either.getOrThrow(minimal)
    // Deny by default: nothing declared, nothing granted.
    assert.deepStrictEqual(manifest.permissions, {
      attachments: false,
      bus: { publish: [], subscribe: [] },
      net: [],
      secrets: [],
      storage: { tables: [] },
    })
  })

  it("the example manifest of docs/plugins.md is valid", () => {
    const doc = NodeFs.readFileSync(NodePath.join(__dirname, "../../docs/plugins.md"), "utf8")
    const example = /## The manifest\s+```json\n([\s\S]*?)\n```/.exec(doc)
    assert.isNotNull(example)
    const result = decodeManifest(JSON.parse(example![1]!), { file: "docs/plugins.md" })
    assert.isTrue(Either.isRight(result), JSON.stringify(result))
    assert.isTrue(capabilitiesMatch)
  })

  it("a missing field is named", () => refusedAt(withField("entry", undefined), "entry", "missing"))

  it("a field of the wrong type is named", () =>
    refusedAt(
      withField("contributes.channels", { name: "x" }),
      "contributes.channels",
      "expected a list",
    ))

  it("a bad id says what an id looks like", () => {
    refusedAt(withField("id", "Telegram_Bot"), "id", "expected a plugin id")
    refusedAt(withField("id", "t"), "id", "2 to 40")
    refusedAt(withField("id", "a".repeat(41)), "id", "2 to 40")
    // A separator in the id would let one plugin's names start with another's.
    refusedAt(withField("id", "crm-sync"), "id", "no '-' or '_'")
    refusedAt(withField("id", "crm_sync"), "id", "no '-' or '_'")
  })

  it("a bad version is refused", () =>
    refusedAt(withField("version", "1.0"), "version", "expected a semantic version"))

  it("a bad engines range is refused", () =>
    refusedAt(withField("engines.chorus", "latest"), "engines.chorus", "expected a version range"))

  it("an entry outside the plugin directory is refused", () => {
    refusedAt(withField("entry", "../other/index.js"), "entry", "no '..'")
    refusedAt(withField("entry", "/usr/lib/x.js"), "entry", "not absolute")
    refusedAt(withField("entry", "index.py"), "entry", "JavaScript or TypeScript module")
  })

  it("an unknown kind lists the kinds", () =>
    refusedAt(
      withField("kind", "widget"),
      "kind",
      "expected one of channel, bot, analytics, ui, integration",
    ))

  it("an unknown key is refused, also deep inside", () => {
    refusedAt(withField("permisions", {}), "permisions", "unknown key")
    refusedAt(withField("permissions.bus.publsh", ["a.b"]), "permissions.bus.publsh", "unknown key")
  })

  it("a bad host pattern names its index", () => {
    refusedAt(
      withField("permissions.net", ["api.telegram.org", "ok.example.com", "https://x.com/path"]),
      "permissions.net[2]",
      "expected a host name",
    )
    refusedAt(withField("permissions.net", ["API.example.com"]), "permissions.net[0]", "lower-case")
    refusedAt(withField("permissions.net", ["x.com:99999"]), "permissions.net[0]", "host name")
    refusedAt(withField("permissions.net", ["*"]), "permissions.net[0]", "host name")
  })

  it("a bad subject pattern is refused, and so is one that reaches every stream", () => {
    refusedAt(
      withField("permissions.bus.publish", ["inbound..telegram"]),
      "permissions.bus.publish[0]",
      "expected a subject pattern",
    )
    refusedAt(
      withField("permissions.bus.subscribe", [">"]),
      "permissions.bus.subscribe[0]",
      "first",
    )
    refusedAt(
      withField("permissions.bus.subscribe", ["*.created"]),
      "permissions.bus.subscribe[0]",
      "the first token literal",
    )
    refusedAt(
      withField("permissions.bus.publish", ["inbound.>.x"]),
      "permissions.bus.publish[0]",
      "subject pattern",
    )
  })

  it("another plugin's subjects are refused", () => {
    const raw = withField("permissions.bus.subscribe", ["outbound.telegram", "plugins.crm.>"])
    refusedAt(raw, "permissions.bus.subscribe[1]", "reaches other plugins' subjects")
  })

  it("a bad secret name is refused", () =>
    refusedAt(
      withField("permissions.secrets", ["bot-token"]),
      "permissions.secrets[0]",
      "BOT_TOKEN",
    ))

  it("a table without the plugin's prefix is refused", () =>
    refusedAt(
      withField("permissions.storage.tables", ["contacts"]),
      "permissions.storage.tables[0]",
      "starting with plugin_telegram_",
    ))

  it("a route outside the plugin's prefix is refused", () =>
    refusedAt(
      withField("contributes.routes", [{ method: "POST", path: "/api/v1/inbound" }]),
      "contributes.routes[0].path",
      "/plugins/telegram/",
    ))

  it("a contributed subject not covered by the permissions is refused", () =>
    refusedAt(
      withField("contributes.subjects", { publishes: ["events.message.received"] }),
      "contributes.subjects.publishes[0]",
      "permissions.bus.publish",
    ))

  it("a setting default of the wrong type is refused", () =>
    refusedAt(
      withField("contributes.settings", [{ key: "pollInterval", type: "integer", default: "30" }]),
      "contributes.settings[0].default",
      "integer",
    ))

  it("reports problems between fields in the same round as the others", () => {
    const raw = {
      ...withField("permissions.storage.tables", ["contacts", 7]),
      version: "one",
      contributes: {
        routes: [{ method: "POST", path: "/api/v1/x" }],
        subjects: { publishes: ["events.message.received"] },
      },
    }
    const found = problems(raw)
    assert.deepStrictEqual(found.map((p) => p.path).sort(), [
      "contributes.routes[0].path",
      "contributes.subjects.publishes[0]",
      "permissions.storage.tables[0]",
      "permissions.storage.tables[1]",
      "version",
    ])
    assert.include(
      found.find((p) => p.path === "permissions.storage.tables[1]")!.message,
      "Expected string, actual 7",
    )
  })

  it("reports every problem at once, each with its path", () => {
    const raw = {
      ...withField("permissions.net", ["ok.example.com", "bad host", "http://x"]),
      id: "X",
      version: "one",
      entry: "../escape.js",
      extra: true,
    }
    delete (raw as Json)["kind"]
    const found = problems(raw)
    const paths = found.map((p) => p.path).sort()
    assert.deepStrictEqual(paths, [
      "entry",
      "extra",
      "id",
      "kind",
      "permissions.net[1]",
      "permissions.net[2]",
      "version",
    ])
  })

  it("refuses a plugin made for another host API version, naming this host's", () => {
    const found = problems(withField("engines.chorus", "^2.0.0"))
    assert.lengthOf(found, 1)
    assert.strictEqual(found[0]!.path, "engines.chorus")
    assert.include(found[0]!.message, "needs host API ^2.0.0")
    assert.include(found[0]!.message, `provides host API ${HOST_API_VERSION}`)
    // Also when other fields are wrong too.
    const both = problems({ ...withField("engines.chorus", "^2.0.0"), version: "x" })
    assert.sameMembers(both.map((p) => p.path), ["version", "engines.chorus"])
    // And the same manifest is fine on a host that provides 2.1.0.
    const later = decodeManifest(withField("engines.chorus", "^2.0.0"), {
      file: "chorus.plugin.json",
      hostApiVersion: "2.1.0",
    })
    assert.isTrue(Either.isRight(later))
  })

  it.scoped("loading from a directory checks the file, the JSON and the entry module", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir("chorus-manifest-")
      const missing = yield* loadManifest(dir).pipe(Effect.flip)
      assert.include(missing.problems[0]!.message, "no chorus.plugin.json")

      NodeFs.writeFileSync(NodePath.join(dir, "chorus.plugin.json"), "{ not json")
      const broken = yield* loadManifest(dir).pipe(Effect.flip)
      assert.strictEqual(broken.problems[0]!.path, "(file)")
      assert.include(broken.problems[0]!.message, "not valid JSON")

      const manifest = { ...withField("contributes.migrations", undefined) }
      NodeFs.writeFileSync(NodePath.join(dir, "chorus.plugin.json"), JSON.stringify(manifest))
      const noEntry = yield* loadManifest(dir).pipe(Effect.flip)
      assert.strictEqual(noEntry._tag, "ManifestInvalid")
      assert.strictEqual(noEntry.problems[0]!.path, "entry")
      assert.include(noEntry.message, "entry: no such file")

      NodeFs.mkdirSync(NodePath.join(dir, "dist"))
      NodeFs.writeFileSync(NodePath.join(dir, "dist/index.js"), "export default {}\n")
      const loaded = yield* loadManifest(dir)
      assert.strictEqual(loaded.manifest.id, "telegram")
      assert.strictEqual(loaded.entry, NodePath.join(dir, "dist/index.js"))
    }))
})
