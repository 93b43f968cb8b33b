/**
 * Reading and importing contacts: search by phone, e-mail, external id or name prefix; a
 * contact's timeline across all its conversations and channels; the import of a CRM export.
 *
 * Search and timeline apply the caller's visibility (core/accounts/Access.ts): an operator finds
 * only contacts with a conversation they may see, and reads only those conversations' messages.
 *
 * The import never merges. Each record becomes a contact whose phones and e-mails are
 * **claimed** signals (source `import`); a record whose CRM id was imported before updates that
 * contact instead. Then every phone or e-mail another contact already has, and every same name
 * with the same company e-mail domain, becomes a merge suggestion with its evidence. Records go
 * in batches (one transaction each), with one lookup per batch for the matches.
 */
import { Context, Effect, Layer } from "effect"
import type { Kysely } from "kysely"
import { millis, toMessage } from "../../actors/conversation/ConversationRows.ts"
import type { Visibility } from "../accounts/Access.ts"
import type { ContactId } from "../../schemas/Ids.ts"
import type {
  ContactProfile,
  ImportContact,
  ImportResult,
  MergeEvidence,
  TimelinePage,
} from "../../schemas/Identity.ts"
import { ulid } from "../ids.ts"
import { newId } from "../ids.ts"
import type { ContactRow } from "../storage/ConversationTables.ts"
import { Database, type DatabaseError } from "../storage/Database.ts"
import type { SignalRow, SuggestionRow } from "../storage/IdentityTables.ts"
import type { CoreTables } from "../storage/tables.ts"
import { IdentityGraph, suggestPair, toProfile } from "./IdentityGraph.ts"
import { nameKey, normalizeEmail, normalizeName, normalizePhone } from "./Normalize.ts"

type Db = Kysely<CoreTables>

export type ContactQuery =
  | { readonly by: "phone"; readonly value: string }
  | { readonly by: "email"; readonly value: string }
  | { readonly by: "externalId"; readonly value: string }
  | { readonly by: "name"; readonly value: string }

export interface ContactDirectoryShape {
  /** Live contacts (not merged away) matching the query, at most `limit`. */
  readonly search: (
    query: ContactQuery,
    options: { readonly limit: number; readonly visibility: Visibility },
  ) => Effect.Effect<Array<ContactProfile>, DatabaseError>
  /** Whether the caller may see the contact: one of its conversations is visible to them. */
  readonly visible: (
    contactId: ContactId,
    visibility: Visibility,
  ) => Effect.Effect<boolean, DatabaseError>
  /** The contact's messages across its (visible) conversations, newest first. */
  readonly timeline: (
    contactId: ContactId,
    options: {
      readonly cursor?: string | undefined
      readonly limit: number
      readonly visibility: Visibility
    },
  ) => Effect.Effect<TimelinePage, DatabaseError>
  readonly importContacts: (
    records: ReadonlyArray<ImportContact>,
    options?: { readonly defaultCountry?: string | undefined; readonly batchSize?: number },
  ) => Effect.Effect<ImportResult, DatabaseError>
}

export class ContactDirectory extends Context.Tag("chorus/core/ContactDirectory")<
  ContactDirectory,
  ContactDirectoryShape
>() {}

/** Free e-mail providers: the same domain there says nothing about being the same person. */
const PUBLIC_DOMAINS = new Set([
  "gmail.com",
  "googlemail.com",
  "yahoo.com",
  "outlook.com",
  "hotmail.com",
  "live.com",
  "icloud.com",
  "me.com",
  "aol.com",
  "proton.me",
  "protonmail.com",
  "gmx.de",
  "gmx.net",
  "web.de",
  "mail.ru",
  "yandex.ru",
  "ya.ru",
  "bk.ru",
  "inbox.ru",
  "list.ru",
  "rambler.ru",
  "qq.com",
  "163.com",
])

const emailDomain = (email: string) => email.slice(email.lastIndexOf("@") + 1)

const CURSOR = /^(\d{1,16})\.([0-9A-HJKMNP-TV-Z]{26})$/

/** A visible-conversation filter on `conversations`, for operators. */
const visibleConversations = (db: Db, visibility: Visibility) => {
  let q = db.selectFrom("conversations").select(["conversations.id", "conversations.contact_id"])
  if (!visibility.all) {
    const { teamIds, operatorId } = visibility
    q = q.where((eb) =>
      eb.or([
        eb("conversations.assignee_id", "=", operatorId),
        ...(teamIds.length > 0 ? [eb("conversations.team_id", "in", [...teamIds])] : []),
      ])
    )
  }
  return q
}

const chunks = <A>(items: ReadonlyArray<A>, size = 400): Array<ReadonlyArray<A>> => {
  const out: Array<ReadonlyArray<A>> = []
  for (let at = 0; at < items.length; at += size) out.push(items.slice(at, at + size))
  return out
}

export const make = Effect.gen(function* () {
  const database = yield* Database
  const graph = yield* IdentityGraph

  const profiles = async (db: Db, ids: ReadonlyArray<string>) => {
    if (ids.length === 0) return []
    const rows = await db.selectFrom("contacts").selectAll().where("id", "in", [...ids]).execute()
    const signals = await db.selectFrom("identity_signals").selectAll()
      .where("contact_id", "in", [...ids]).orderBy("id").execute()
    const byContact = new Map<string, Array<SignalRow>>()
    for (const s of signals) {
      const list = byContact.get(s.contact_id) ?? []
      list.push(s)
      byContact.set(s.contact_id, list)
    }
    const byId = new Map(rows.map((r) => [r.id, r]))
    return ids.flatMap((id) => {
      const row = byId.get(id)
      return row === undefined ? [] : [toProfile(row, byContact.get(id) ?? [])]
    })
  }

  const search = Effect.fn("ContactDirectory.search")(function* (
    query: ContactQuery,
    options: { readonly limit: number; readonly visibility: Visibility },
  ) {
    const limit = Math.min(Math.max(1, Math.floor(options.limit)), 100)
    return yield* database.query("search contacts", async (db) => {
      let ids: Array<string>
      const bySignal = async (kind: string, value: string | ReadonlyArray<string> | undefined) =>
        value === undefined ? [] : (await db.selectFrom("identity_signals")
          .innerJoin("contacts", "contacts.id", "identity_signals.contact_id")
          .select("identity_signals.contact_id as id").distinct()
          .where("identity_signals.kind", "=", kind)
          .where("identity_signals.value", "in", typeof value === "string" ? [value] : [...value])
          .where("contacts.merged_into", "is", null)
          .limit(500).execute()).map((r) => r.id)
      switch (query.by) {
        case "phone":
          ids = await bySignal("phone", normalizePhone(query.value))
          break
        case "email":
          ids = await bySignal("email", normalizeEmail(query.value))
          break
        case "externalId": {
          const fromIdentities = await db.selectFrom("channel_identities").select("contact_id")
            .where("external_id", "=", query.value).limit(500).execute()
          // An id given through the API, or a CRM's from an import.
          const id = query.value.trim()
          const fromSignals = await bySignal("external", [id, `import:${id}`])
          ids = [...new Set([...fromIdentities.map((r) => r.contact_id), ...fromSignals])]
          break
        }
        case "name": {
          const prefix = query.value.trim().replace(/\s+/g, " ").toLowerCase()
          if (prefix === "") return []
          // A range on the index (prefix ≤ name < prefix + U+FFFF), checked again in code.
          const rows = await db.selectFrom("contacts").select(["id", "name_lower"])
            .where("name_lower", ">=", prefix)
            .where("name_lower", "<", `${prefix}\uffff`)
            .where("merged_into", "is", null)
            .orderBy("name_lower").orderBy("id")
            .limit(options.visibility.all ? limit : 2000)
            .execute()
          ids = rows.filter((r) => r.name_lower?.startsWith(prefix)).map((r) => r.id)
          break
        }
      }
      if (!options.visibility.all && ids.length > 0) {
        const seen = new Set<string>()
        for (const part of chunks(ids)) {
          const rows = await visibleConversations(db, options.visibility)
            .where("conversations.contact_id", "in", part).execute()
          for (const r of rows) seen.add(r.contact_id)
        }
        ids = ids.filter((id) => seen.has(id))
      }
      return await profiles(db, ids.slice(0, limit))
    })
  })

  const visible = (contactId: ContactId, visibility: Visibility) =>
    visibility.all
      ? Effect.succeed(true)
      : database.query("visible contact", (db) =>
        visibleConversations(db, visibility).where("conversations.contact_id", "=", contactId)
          .limit(1).executeTakeFirst()).pipe(Effect.map((row) =>
            row !== undefined
          ))

  const timeline = Effect.fn("ContactDirectory.timeline")(function* (
    contactId: ContactId,
    options: {
      readonly cursor?: string | undefined
      readonly limit: number
      readonly visibility: Visibility
    },
  ) {
    const limit = Math.min(Math.max(1, Math.floor(options.limit)), 200)
    const cursor = options.cursor === undefined ? undefined : CURSOR.exec(options.cursor)
    return yield* database.query("contact timeline", async (db) => {
      const conversations = await visibleConversations(db, options.visibility)
        .where("conversations.contact_id", "=", contactId).execute()
      if (conversations.length === 0) return { messages: [], nextCursor: null }
      let q = db.selectFrom("messages").selectAll()
        .where("conversation_id", "in", conversations.map((c) => c.id))
      if (cursor != null) {
        const at = Number(cursor[1])
        const id = cursor[2]!
        q = q.where((eb) =>
          eb.or([eb("created_at", "<", at), eb.and([eb("created_at", "=", at), eb("id", "<", id)])])
        )
      }
      const rows = await q.orderBy("created_at", "desc").orderBy("id", "desc").limit(limit + 1)
        .execute()
      const page = rows.slice(0, limit)
      const last = page[page.length - 1]
      return {
        messages: page.map(toMessage),
        nextCursor: rows.length > limit && last !== undefined
          ? `${millis(last.created_at)}.${last.id}`
          : null,
      }
    })
  })

  const importContacts = Effect.fn("ContactDirectory.importContacts")(function* (
    records: ReadonlyArray<ImportContact>,
    options: { readonly defaultCountry?: string | undefined; readonly batchSize?: number } = {},
  ) {
    const batchSize = Math.max(1, options.batchSize ?? 500)
    let created = 0
    let updated = 0
    const problems: Array<{ row: number; reason: string }> = []
    const suggestions: Array<SuggestionRow> = []
    for (let start = 0; start < records.length; start += batchSize) {
      const batch = records.slice(start, start + batchSize)
      const outcome = yield* database.transaction("import contacts", async (trx) => {
        const now = Date.now()
        const out = { created: 0, updated: 0, suggestions: [] as Array<SuggestionRow> }
        // Earlier imports of the same CRM ids.
        const crmIds = batch.flatMap((r) => r.externalId !== undefined ? [r.externalId] : [])
        const known = new Map<string, string>()
        for (const part of chunks(crmIds)) {
          const rows = await trx.selectFrom("identity_signals")
            .innerJoin("contacts", "contacts.id", "identity_signals.contact_id")
            .select(["identity_signals.value", "contacts.id", "contacts.merged_into"])
            .where("identity_signals.kind", "=", "external")
            .where("identity_signals.source", "=", "import")
            .where("identity_signals.value", "in", part.map((id) => `import:${id}`))
            .execute()
          for (const r of rows) known.set(r.value, r.merged_into ?? r.id)
        }
        const newContacts: Array<ContactRow> = []
        const newSignals: Array<SignalRow> = []
        /** The contacts of this batch, with their name key and company domains. */
        const touched: Array<
          { id: string; nameKey?: string; nameLower?: string; domains: Set<string> }
        > = []
        const existingSignals = new Map<string, Set<string>>()
        const knownIds = [...new Set(known.values())]
        for (const part of chunks(knownIds)) {
          const rows = await trx.selectFrom("identity_signals").select([
            "contact_id",
            "kind",
            "value",
            "source",
          ]).where("contact_id", "in", part).execute()
          for (const r of rows) {
            const set = existingSignals.get(r.contact_id) ?? new Set<string>()
            set.add(`${r.kind}\u0000${r.value}\u0000${r.source}`)
            existingSignals.set(r.contact_id, set)
          }
        }
        batch.forEach((record, index) => {
          const row = start + index + 1
          const phones: Array<string> = []
          for (const raw of record.phones ?? []) {
            const phone = normalizePhone(raw, options.defaultCountry)
            if (phone === undefined) problems.push({ row, reason: `not a phone number: ${raw}` })
            else if (!phones.includes(phone)) phones.push(phone)
          }
          const emails: Array<string> = []
          for (const raw of record.emails ?? []) {
            const email = normalizeEmail(raw)
            if (email === undefined) problems.push({ row, reason: `not an e-mail address: ${raw}` })
            else if (!emails.includes(email)) emails.push(email)
          }
          const name = normalizeName(record.name)
          if (
            name === undefined && phones.length === 0 && emails.length === 0 &&
            record.externalId === undefined
          ) {
            problems.push({ row, reason: "no name, phone, e-mail or id: skipped" })
            return
          }
          const crmKey = record.externalId !== undefined ? `import:${record.externalId}` : undefined
          const existing = crmKey !== undefined ? known.get(crmKey) : undefined
          const contactId = existing ?? newId.contact()
          if (existing === undefined) {
            newContacts.push({
              id: contactId,
              name: name ?? null,
              name_lower: name?.toLowerCase() ?? null,
              custom: JSON.stringify(record.custom ?? {}),
              version: 1,
              merged_into: null,
              created_at: now,
              updated_at: now,
            })
            if (crmKey !== undefined) known.set(crmKey, contactId)
            out.created++
          } else {
            out.updated++
          }
          const have = existingSignals.get(contactId) ?? new Set<string>()
          existingSignals.set(contactId, have)
          const add = (kind: string, value: string) => {
            const key = `${kind}\u0000${value}\u0000import`
            if (have.has(key)) return
            have.add(key)
            newSignals.push({
              id: ulid(now),
              contact_id: contactId,
              kind,
              value,
              source: "import",
              verification: "claimed",
              identity_id: null,
              first_seen_at: now,
              last_seen_at: now,
            })
          }
          for (const phone of phones) add("phone", phone)
          for (const email of emails) add("email", email)
          if (crmKey !== undefined) add("external", crmKey)
          const key = nameKey(name)
          touched.push({
            id: contactId,
            ...(key !== undefined ? { nameKey: key, nameLower: name!.toLowerCase() } : {}),
            domains: new Set(
              emails.map(emailDomain).filter((d) => !PUBLIC_DOMAINS.has(d)),
            ),
          })
        })
        for (const part of chunks(newContacts, 200)) {
          await trx.insertInto("contacts").values([...part]).execute()
        }
        for (const part of chunks(newSignals, 200)) {
          await trx.insertInto("identity_signals").values([...part]).execute()
        }
        // Matches: every holder of each new phone or e-mail (this batch's and earlier ones).
        const pairs = new Map<string, { a: string; b: string; evidence: Array<MergeEvidence> }>()
        const addPair = (x: string, y: string, evidence: MergeEvidence) => {
          if (x === y) return
          const [a, b] = x < y ? [x, y] : [y, x]
          const key = `${a}\u0000${b}`
          const entry = pairs.get(key) ?? { a, b, evidence: [] }
          if (!entry.evidence.some((e) => e.rule === evidence.rule && e.value === evidence.value)) {
            entry.evidence.push(evidence)
          }
          pairs.set(key, entry)
        }
        for (const kind of ["phone", "email"] as const) {
          const values = [...new Set(newSignals.filter((s) => s.kind === kind).map((s) => s.value))]
          for (const part of chunks(values)) {
            const holders = await trx.selectFrom("identity_signals")
              .innerJoin("contacts", "contacts.id", "identity_signals.contact_id")
              .select([
                "identity_signals.contact_id as contact_id",
                "identity_signals.value as value",
                "identity_signals.verification as verification",
                "identity_signals.source as source",
              ])
              .where("identity_signals.kind", "=", kind)
              .where("identity_signals.value", "in", [...part])
              .where("contacts.merged_into", "is", null)
              .execute()
            const byValue = new Map<string, Array<(typeof holders)[number]>>()
            for (const h of holders) {
              const list = byValue.get(h.value) ?? []
              if (!list.some((x) => x.contact_id === h.contact_id)) list.push(h)
              byValue.set(h.value, list)
            }
            for (const [value, list] of byValue) {
              for (let i = 0; i < list.length; i++) {
                for (let j = i + 1; j < list.length; j++) {
                  const x = list[i]!
                  const y = list[j]!
                  addPair(x.contact_id, y.contact_id, {
                    rule: `same_${kind}`,
                    kind,
                    value,
                    a: `${x.verification} via ${x.source}`,
                    b: `${y.verification} via ${y.source}`,
                  })
                }
              }
            }
          }
        }
        // The same name with the same company domain.
        const named = touched.filter((t) => t.nameKey !== undefined && t.domains.size > 0)
        for (const part of chunks(named)) {
          const names = [...new Set(part.map((t) => t.nameLower!))]
          // Two indexed lookups: the names, then those contacts' e-mails.
          const sameName = await trx.selectFrom("contacts").select(["id", "name"])
            .where("name_lower", "in", names).where("merged_into", "is", null).execute()
          const emails: Array<{ contact_id: string; value: string }> = []
          for (const ids of chunks(sameName.map((r) => r.id))) {
            emails.push(
              ...await trx.selectFrom("identity_signals").select(["contact_id", "value"])
                .where("contact_id", "in", [...ids])
                .where("kind", "=", "email")
                .execute(),
            )
          }
          const nameOf = new Map(sameName.map((r) => [r.id, r.name]))
          const rows = emails.map((e) => ({
            id: e.contact_id,
            name: nameOf.get(e.contact_id) ?? null,
            value: e.value,
          }))
          for (const t of part) {
            for (const r of rows) {
              if (r.id === t.id || nameKey(r.name) !== t.nameKey) continue
              const domain = emailDomain(r.value)
              if (t.domains.has(domain)) {
                addPair(t.id, r.id, {
                  rule: "same_name",
                  kind: "name",
                  value: `${r.name} @${domain}`,
                  a: "same name and company e-mail domain",
                  b: "same name and company e-mail domain",
                })
              }
            }
          }
        }
        for (const { a, b, evidence } of pairs.values()) {
          const row = await suggestPair(trx, a, b, evidence, now)
          if (row !== undefined) out.suggestions.push(row)
        }
        return out
      })
      created += outcome.created
      updated += outcome.updated
      suggestions.push(...outcome.suggestions)
    }
    yield* graph.announceSuggestions(suggestions)
    return { created, updated, problems, suggestions: suggestions.length } satisfies ImportResult
  })

  return { search, visible, timeline, importContacts } satisfies ContactDirectoryShape
})

export const layer = Layer.effect(ContactDirectory, make)

// ---------------------------------------------------------------------------------------------
// CSV

/**
 * Records of a CSV export (RFC 4180: quoted fields, doubled quotes, CRLF or LF). The header
 * names the columns: `id`/`externalId`, `name` (or `first_name` + `last_name`), `phone`/`phones`,
 * `email`/`emails` (several values split by `;` or `|`); every other column is a custom field.
 */
export const parseCsv = (text: string): Array<ImportContact> => {
  const rows: Array<Array<string>> = []
  let field = ""
  let row: Array<string> = []
  let quoted = false
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!
    if (quoted) {
      if (c === '"') {
        if (text[i + 1] === '"') {
          field += '"'
          i++
        } else quoted = false
      } else field += c
    } else if (c === '"' && field === "") quoted = true
    else if (c === ",") {
      row.push(field)
      field = ""
    } else if (c === "\n" || c === "\r") {
      if (c === "\r" && text[i + 1] === "\n") i++
      row.push(field)
      field = ""
      if (row.some((f) => f !== "")) rows.push(row)
      row = []
    } else field += c
  }
  row.push(field)
  if (row.some((f) => f !== "")) rows.push(row)
  const [header, ...data] = rows
  if (header === undefined) return []
  const names = header.map((h) => h.trim().toLowerCase().replace(/[\s-]+/g, "_"))
  const split = (value: string) => value.split(/[;|]/).map((v) => v.trim()).filter((v) => v !== "")
  return data.map((cells) => {
    const record: {
      externalId?: string
      name?: string
      phones: Array<string>
      emails: Array<string>
      custom: Record<string, unknown>
    } = { phones: [], emails: [], custom: {} }
    let first = ""
    let last = ""
    names.forEach((column, index) => {
      const value = (cells[index] ?? "").trim()
      if (value === "") return
      switch (column) {
        case "id":
        case "externalid":
        case "external_id":
          record.externalId = value
          break
        case "name":
        case "full_name":
          record.name = value
          break
        case "first_name":
          first = value
          break
        case "last_name":
          last = value
          break
        case "phone":
        case "phones":
        case "mobile":
          record.phones.push(...split(value))
          break
        case "email":
        case "emails":
          record.emails.push(...split(value))
          break
        default:
          record.custom[header[index]!.trim()] = value
      }
    })
    if (record.name === undefined && (first !== "" || last !== "")) {
      record.name = `${first} ${last}`.trim()
    }
    return record
  })
}
