/**
 * Importing a CRM export: 10,000 contacts of which 5% are planted duplicates (the same e-mail in
 * other case, the same phone in national format) yield exactly one suggestion per duplicate and
 * no merge; importing the same export again updates instead of duplicating; CSV is read as a
 * spreadsheet writes it.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { parseCsv } from "../../core/identity/ContactDirectory.ts"
import { tempDir } from "../support/TestDatabase.ts"
import { recordEvents, startReplyServer } from "../api/ReplyServer.ts"
import { api, ofType } from "./IdentityServer.ts"

const pad = (n: number) => String(n).padStart(7, "0")

/** 9,500 distinct people and 500 duplicates of 500 different ones, placed after them. */
export const crmExport = (originals: number, duplicates: number) => {
  const records: Array<Record<string, unknown>> = []
  for (let i = 0; i < originals; i++) {
    records.push({
      externalId: `crm-${i}`,
      name: `Person${i} Surname${i}`,
      phones: [`+7916${pad(i)}`],
      emails: [`user${i}@company${i}.example`],
      custom: { segment: i % 3 === 0 ? "b2b" : "b2c" },
    })
  }
  const planted: Array<[string, string]> = []
  const step = Math.floor(originals / duplicates)
  for (let j = duplicates - 1; j >= 0; j--) {
    const k = j * step
    const duplicate = j % 4 === 0
      ? {
        // The same name at the same company, another address and phone.
        externalId: `dup-${j}`,
        name: `person${k}  SURNAME${k}`,
        phones: [`+7918${pad(j)}`],
        emails: [`sales@company${k}.example`],
      }
      : j % 2 === 0
      ? {
        externalId: `dup-${j}`,
        name: `P. Surname${k}`,
        phones: [`+7917${pad(j)}`],
        emails: [`USER${k}@Company${k}.EXAMPLE`],
      }
      : {
        externalId: `dup-${j}`,
        name: `Someone${j} Else${j}`,
        // National format: read with the default country.
        phones: [`8 (916) ${pad(k).slice(0, 3)}-${pad(k).slice(3, 5)}-${pad(k).slice(5)}`],
        emails: [`other${j}@elsewhere${j}.example`],
      }
    records.splice(Math.min(records.length, k + 1 + (j % 700)), 0, duplicate)
    planted.push([`crm-${k}`, `dup-${j}`])
  }
  return { records, planted }
}

describe("Identity: importing a CRM export", () => {
  it.scopedLive(
    "10,000 contacts with 5% planted duplicates: a suggestion for each duplicate, no merge",
    () =>
      Effect.gen(function* () {
        const server = yield* startReplyServer({ dataDir: yield* tempDir() })
        const events = yield* recordEvents(server.bus)
        const { records, planted } = crmExport(9_500, 500)
        assert.strictEqual(records.length, 10_000)
        const started = Date.now()
        const result = yield* api(server, `/contacts/import`, {
          body: { format: "json", contacts: records, defaultCountry: "RU" },
        })
        const took = Date.now() - started
        console.log(`import of 10,000 contacts: ${took} ms`)
        assert.deepStrictEqual(result, {
          created: 10_000,
          updated: 0,
          problems: [],
          suggestions: 500,
        })

        const state = yield* server.database.query("state", async (db) => ({
          crm: await db.selectFrom("identity_signals").select(["contact_id", "value"])
            .where("kind", "=", "external").execute(),
          live: await db.selectFrom("contacts").select("id").where("merged_into", "is", null)
            .execute(),
          merges: await db.selectFrom("contact_merges").select("id").execute(),
          suggestions: await db.selectFrom("merge_suggestions").selectAll().execute(),
        }))
        assert.strictEqual(state.live.length, 10_000)
        assert.strictEqual(state.merges.length, 0)
        const contactOf = new Map(
          state.crm.map((s) => [s.value.slice("import:".length), s.contact_id]),
        )
        const expected = new Set(
          planted.map(([a, b]) => [contactOf.get(a)!, contactOf.get(b)!].sort().join(",")),
        )
        const actual = new Set(state.suggestions.map((s) => `${s.contact_a},${s.contact_b}`))
        assert.strictEqual(actual.size, 500)
        assert.deepStrictEqual([...actual].filter((p) => !expected.has(p)), [], "wrong suggestions")
        assert.deepStrictEqual([...expected].filter((p) => !actual.has(p)), [], "missed duplicates")
        // The CRM's ids find their contacts.
        const byCrm = (yield* api(server, `/contacts?externalId=crm-42`)).contacts
        assert.deepStrictEqual(byCrm.map((c: any) => c.id), [contactOf.get("crm-42")])
        // Evidence says what matched.
        const rules = new Set(
          state.suggestions.flatMap((s) => JSON.parse(s.evidence).map((e: any) => e.rule)),
        )
        assert.deepStrictEqual([...rules].sort(), ["same_email", "same_name", "same_phone"])
        assert.strictEqual(ofType(events, "contact.suggestion_created").length, 500)

        // The same export again: updates, nothing new.
        const again = yield* api(server, `/contacts/import`, {
          body: { format: "json", contacts: records, defaultCountry: "RU" },
        })
        assert.deepStrictEqual(again, { created: 0, updated: 10_000, problems: [], suggestions: 0 })
        const page = (yield* api(server, `/contacts/suggestions?limit=200`)).suggestions
        assert.strictEqual(page.length, 200)
        const next = (yield* api(server, `/contacts/suggestions?limit=200&after=${page[199].id}`))
          .suggestions
        assert.strictEqual(next.length, 200)
        assert.isTrue(next[0].id > page[199].id)
      }),
    120_000,
  )

  it("reads CSV as spreadsheets write it: quotes, separators, first and last names, custom columns", () => {
    const records = parseCsv(
      "ID,First Name,Last Name,Phone,Email,Company\r\n" +
        '17,Anna,"Petrova, Jr.",+7 916 123-45-67; +49 30 901820,"anna@x.example",ACME\r\n' +
        "18,,,,,\r\n" +
        '19,"Bob ""The Builder""",,"not a phone","b@y.example|B2@Y.example",\n',
    )
    assert.deepStrictEqual(records, [
      {
        externalId: "17",
        name: "Anna Petrova, Jr.",
        phones: ["+7 916 123-45-67", "+49 30 901820"],
        emails: ["anna@x.example"],
        custom: { Company: "ACME" },
      },
      { externalId: "18", phones: [], emails: [], custom: {} },
      {
        externalId: "19",
        name: 'Bob "The Builder"',
        phones: ["not a phone"],
        emails: ["b@y.example", "B2@Y.example"],
        custom: {},
      },
    ])
  })

  it.scopedLive("an invalid phone is reported and dropped from its record, the record is kept", () =>
    Effect.gen(function* () {
      const server = yield* startReplyServer({ dataDir: yield* tempDir() })
      const result = yield* api(server, `/contacts/import`, {
        body: {
          format: "csv",
          csv: "name,phone,email\nZoe Kim,12,zoe@kim.example\n,,\n",
        },
      })
      assert.deepStrictEqual(result, {
        created: 1,
        updated: 0,
        problems: [{ row: 1, reason: "not a phone number: 12" }],
        suggestions: 0,
      })
      const found = (yield* api(server, `/contacts?name=zoe`)).contacts
      assert.deepStrictEqual(found.map((c: any) => [c.name, c.emails[0].verification]), [[
        "Zoe Kim",
        "claimed",
      ]])
    }))
})
