/** The permission decisions on their own: subject coverage, host patterns, names derived from the id. */
import { assert, describe, it } from "@effect/vitest"
import {
  checkSecret,
  checkStream,
  checkTable,
  checkUrl,
  consumerNameOf,
  type Grants,
  hostMatches,
  secretEnvName,
} from "../../core/plugins/Permissions.ts"
import { patternCovers, tablePrefixOf } from "../../schemas/PluginManifest.ts"

const grants = (permissions: Partial<Grants["permissions"]>): Grants => ({
  plugin: "crmsync",
  permissions: {
    attachments: false,
    bus: { publish: [], subscribe: [] },
    net: [],
    secrets: [],
    storage: { tables: [] },
    ...permissions,
  },
})

describe("permission decisions", () => {
  it("a subject pattern covers what it matches, and a wider pattern is not covered", () => {
    assert.isTrue(patternCovers("events.message.*", "events.message.received"))
    assert.isTrue(patternCovers("events.>", "events.message.*"))
    assert.isTrue(patternCovers("events.>", "events.message.>"))
    assert.isFalse(patternCovers("events.message.*", "events.message.>"))
    assert.isFalse(patternCovers("events.message.*", "events.>"))
    assert.isFalse(patternCovers("events.>", "events"))
    assert.isFalse(patternCovers("inbound.telegram", "inbound.*"))
    assert.isFalse(patternCovers("inbound.telegram", "inbound.telegram.x"))
  })

  it("host patterns: exact names, sub-domain wildcards, ports, IP addresses", () => {
    assert.isTrue(hostMatches("api.telegram.org", "api.telegram.org", 443))
    assert.isFalse(hostMatches("api.telegram.org", "telegram.org", 443))
    assert.isFalse(hostMatches("api.telegram.org", "api.telegram.org.evil.com", 443))
    assert.isTrue(hostMatches("*.example.com", "a.example.com", 80))
    assert.isTrue(hostMatches("*.example.com", "a.b.example.com", 80))
    assert.isFalse(hostMatches("*.example.com", "example.com", 80))
    assert.isFalse(hostMatches("*.example.com", "badexample.com", 80))
    assert.isTrue(hostMatches("10.0.0.5:8443", "10.0.0.5", 8443))
    assert.isFalse(hostMatches("10.0.0.5:8443", "10.0.0.5", 443))
    assert.isTrue(hostMatches("[::1]:8080", "[::1]", 8080))
  })

  it("URLs are checked by host and effective port; only http(s)", () => {
    const g = grants({ net: ["api.example.com", "local.test:8080"] })
    assert.isUndefined(checkUrl(g, new URL("https://API.example.com/v1")))
    assert.isUndefined(checkUrl(g, new URL("http://local.test:8080/")))
    assert.strictEqual(checkUrl(g, new URL("http://local.test/"))?.requested, "local.test:80")
    assert.strictEqual(checkUrl(g, new URL("ftp://api.example.com/"))?.capability, "net")
    // A user-info trick does not change the host.
    assert.strictEqual(
      checkUrl(g, new URL("https://api.example.com@evil.com/"))?.requested,
      "evil.com:443",
    )
  })

  it("secrets: by exact name, or by a declared prefix pattern for a family (one per account)", () => {
    const g = grants({ secrets: ["API_KEY", "BOT_TOKEN_*"] })
    assert.isUndefined(checkSecret(g, "API_KEY"))
    assert.isUndefined(checkSecret(g, "BOT_TOKEN_SUPPORT"))
    assert.isUndefined(checkSecret(g, "BOT_TOKEN_"))
    assert.isDefined(checkSecret(g, "API_KEY_2"))
    assert.isDefined(checkSecret(g, "BOT_TOKENX"))
    assert.isDefined(checkSecret(g, "BOT_TOKEN_a"))
    assert.strictEqual(checkSecret(g, "OTHER")!.field, "permissions.secrets")
  })

  it("names derived from the id: secrets, tables, consumers, streams", () => {
    assert.strictEqual(secretEnvName("crmsync", "API_KEY"), "CHORUS_PLUGIN_CRMSYNC_API_KEY")
    assert.strictEqual(tablePrefixOf("crmsync"), "plugin_crmsync_")
    assert.strictEqual(consumerNameOf("crmsync", "writer"), "plugin-crmsync-writer")
    const g = grants({ storage: { tables: ["plugin_crmsync_links"] } })
    assert.isUndefined(checkTable(g, "plugin_crmsync_links"))
    assert.include(checkTable(g, "plugin_crm_links")!.hint, "start with plugin_crmsync_")
    assert.isUndefined(checkStream(g, "plugin-crmsync", ["plugins.crmsync.>"]))
    assert.isUndefined(checkStream(g, "plugin-crmsync-audit", ["plugins.crmsync.audit.>"]))
    assert.isDefined(checkStream(g, "plugin-crm", ["plugins.crmsync.>"]))
    assert.isDefined(checkStream(g, "plugin-crmsync", ["plugins.crm.>"]))
  })

  it("no plugin's names start with another's: ids have no separators", () => {
    // Were "crm-sync" an id (crm_sync in SQL), plugin "crm" could name its tables and secrets.
    const crm: Grants = {
      ...grants({ storage: { tables: ["plugin_crmsync_links"] } }),
      plugin: "crm",
    }
    assert.isDefined(checkTable(crm, "plugin_crmsync_links"))
    assert.notStrictEqual(secretEnvName("crm", "SYNC_API_KEY"), secretEnvName("crmsync", "API_KEY"))
    assert.notStrictEqual(consumerNameOf("crm", "sync-writer"), consumerNameOf("crmsync", "writer"))
  })
})
