/**
 * The identity graph: signals (phones, e-mails, external ids, each verified or only claimed),
 * merges, splits and merge suggestions.
 *
 * The one rule that keeps different people apart: contacts merge automatically only when a new
 * **verified** signal equals a **verified** signal of another contact (the same WhatsApp number
 * shared through Telegram's contact button). Every weaker match (a claimed phone or e-mail, an
 * imported one, the same name with similar data) becomes a suggestion with its evidence, for an
 * operator to accept or reject.
 *
 * A merge moves the source's identities, signals and conversations to the target and keeps the
 * source row, pointing at the target (`merged_into`); messages never move (each stays in its
 * conversation, numbered by that conversation's actor), and the contact's timeline reads across
 * its conversations. The merge record lists every id it moved and the target's fields before, so
 * a split puts exactly those back. Both run in one transaction that compare-and-sets the two
 * contacts' row versions: of two operators merging the same contacts at once, one wins and the
 * other gets `MergeConflict` (HTTP 409), never a half-merged pair.
 *
 * After a merge or split the conversation store forgets the cached senders and open
 * conversations of both contacts (see `ConversationStore.forgetContacts`); other nodes forget
 * them when the `contact.merged` / `contact.split` event reaches them (`ContactCacheSync`).
 */
import { Context, Data, Effect, Layer, Option } from "effect"
import type { Kysely } from "kysely"
import { ConversationStore } from "../../actors/conversation/ConversationStore.ts"
import type { ResolvedSender } from "../../actors/conversation/ConversationStore.ts"
import { millis } from "../../actors/conversation/ConversationRows.ts"
import type { ContactId } from "../../schemas/Ids.ts"
import type { InboundMessage } from "../../schemas/Inbound.ts"
import type {
  ContactAttribute,
  ContactProfile,
  IdentitySignal,
  MergeEvidence,
  MergeRecord,
  MergeSuggestion,
  SignalKind,
  SignalVerification,
} from "../../schemas/Identity.ts"
import { Bus } from "../bus/Bus.ts"
import { newId, ulid } from "../ids.ts"
import { Lru } from "../lru.ts"
import { publishEvent } from "../pipeline/Events.ts"
import type { ContactRow } from "../storage/ConversationTables.ts"
import { Database, type DatabaseError } from "../storage/Database.ts"
import type { MergeRow, SignalRow, SuggestionRow } from "../storage/IdentityTables.ts"
import type { CoreTables } from "../storage/tables.ts"
import { normalizeEmail, normalizeName, normalizePhone } from "./Normalize.ts"

type Db = Kysely<CoreTables>

// ---------------------------------------------------------------------------------------------
// Errors

export class ContactMissing extends Data.TaggedError("ContactMissing")<{ readonly id: string }> {
  override get message() {
    return `no contact with id ${this.id}`
  }
}

/** The merge or split lost a race, or the contacts are not in a state that allows it. */
export class MergeConflict extends Data.TaggedError("MergeConflict")<{ readonly reason: string }> {
  override get message() {
    return this.reason
  }
}

export class MergeMissing extends Data.TaggedError("MergeMissing")<{ readonly id: string }> {
  override get message() {
    return `no merge with id ${this.id}`
  }
}

export class SuggestionMissing extends Data.TaggedError("SuggestionMissing")<{
  readonly id: string
}> {
  override get message() {
    return `no merge suggestion with id ${this.id}`
  }
}

/** A value that is not what its kind says (not a phone, not an e-mail). */
export class SignalInvalid extends Data.TaggedError("SignalInvalid")<{ readonly reason: string }> {
  override get message() {
    return this.reason
  }
}

/** Thrown inside a transaction callback to roll it back; turned into `MergeConflict`. */
class Rollback extends Error {
  constructor(readonly conflict: MergeConflict) {
    super(conflict.reason)
  }
}

const conflictOf = <A>(
  effect: Effect.Effect<A, DatabaseError>,
): Effect.Effect<A, DatabaseError | MergeConflict> =>
  Effect.catchTag(
    effect,
    "DatabaseError",
    (error): Effect.Effect<never, DatabaseError | MergeConflict> =>
      error.cause instanceof Rollback ? Effect.fail(error.cause.conflict) : Effect.fail(error),
  )

// ---------------------------------------------------------------------------------------------
// Values

export interface SignalInput {
  readonly kind: SignalKind
  /** Raw; normalised here (a phone to E.164, an e-mail to lower case). */
  readonly value: string
  readonly source: string
  readonly verification: SignalVerification
  readonly identityId?: string | null
}

export interface SignalOutcome {
  readonly contactId: ContactId
  readonly merges: ReadonlyArray<MergeRecord>
  readonly suggestions: ReadonlyArray<MergeSuggestion>
}

export interface MergeInput {
  readonly targetId: ContactId
  readonly sourceId: ContactId
  readonly kind: "automatic" | "manual" | "suggestion"
  readonly reason: string
  /** `operator:<id>`, `token:<id>` or `system`. */
  readonly by: string
  readonly evidence?: ReadonlyArray<MergeEvidence>
  /** Compare-and-set: the versions the caller saw; a mismatch is a conflict. */
  readonly expected?: { readonly target?: number; readonly source?: number }
}

export interface ProfileUpdate {
  readonly name?: string | null
  /** Merged into the stored fields; a key set to null is removed. */
  readonly custom?: Readonly<Record<string, unknown>>
  readonly expectedVersion?: number
}

interface Moved {
  readonly identities: ReadonlyArray<string>
  readonly signals: ReadonlyArray<string>
  readonly conversations: ReadonlyArray<string>
  readonly suggestions: ReadonlyArray<string>
  readonly targetBefore: { readonly name: string | null; readonly custom: string }
}

export const normalizeSignal = (
  kind: SignalKind,
  value: string,
  defaultCountry?: string,
): string | undefined =>
  kind === "phone"
    ? normalizePhone(value, defaultCountry)
    : kind === "email"
    ? normalizeEmail(value)
    : value.trim() === "" || value.length > 400
    ? undefined
    : value.trim()

const date = (value: number | string) => new Date(millis(value))

export const toSignal = (row: SignalRow): IdentitySignal => ({
  id: row.id,
  contactId: row.contact_id as ContactId,
  kind: row.kind as SignalKind,
  value: row.value,
  source: row.source,
  verification: row.verification as SignalVerification,
  identityId: row.identity_id,
  firstSeenAt: date(row.first_seen_at),
  lastSeenAt: date(row.last_seen_at),
})

const attributes = (rows: ReadonlyArray<SignalRow>, kind: SignalKind): Array<ContactAttribute> => {
  const byValue = new Map<string, { verified: boolean; sources: Set<string> }>()
  for (const row of rows) {
    if (row.kind !== kind) continue
    const entry = byValue.get(row.value) ?? { verified: false, sources: new Set<string>() }
    entry.verified ||= row.verification === "verified"
    entry.sources.add(row.source)
    byValue.set(row.value, entry)
  }
  return [...byValue].map(([value, { verified, sources }]) => ({
    value,
    verification: verified ? "verified" : "claimed",
    sources: [...sources].sort(),
  }))
}

const parseCustom = (json: string): Record<string, unknown> => {
  try {
    const value: unknown = JSON.parse(json)
    return typeof value === "object" && value !== null && !Array.isArray(value)
      ? value as Record<string, unknown>
      : {}
  } catch {
    return {}
  }
}

export const toProfile = (row: ContactRow, signals: ReadonlyArray<SignalRow>): ContactProfile => ({
  id: row.id as ContactId,
  name: row.name,
  phones: attributes(signals, "phone"),
  emails: attributes(signals, "email"),
  custom: parseCustom(row.custom),
  version: Number(row.version),
  mergedInto: row.merged_into as ContactId | null,
  createdAt: date(row.created_at),
  updatedAt: date(row.updated_at),
})

const toMerge = (row: MergeRow): MergeRecord => {
  const moved = JSON.parse(row.moved) as Moved
  return {
    id: row.id,
    targetId: row.target_id as ContactId,
    sourceId: row.source_id as ContactId,
    kind: row.kind as MergeRecord["kind"],
    reason: row.reason,
    mergedBy: row.merged_by,
    evidence: JSON.parse(row.evidence),
    moved: {
      identities: moved.identities.length,
      signals: moved.signals.length,
      conversations: moved.conversations.length,
    },
    createdAt: date(row.created_at),
    splitAt: row.split_at === null ? null : date(row.split_at),
    splitBy: row.split_by,
    splitReason: row.split_reason,
  }
}

export const toSuggestion = (row: SuggestionRow): MergeSuggestion => ({
  id: row.id,
  contactA: row.contact_a as ContactId,
  contactB: row.contact_b as ContactId,
  evidence: JSON.parse(row.evidence),
  status: row.status as MergeSuggestion["status"],
  createdAt: date(row.created_at),
  decidedAt: row.decided_at === null ? null : date(row.decided_at),
  decidedBy: row.decided_by,
})

const pair = (a: string, b: string): readonly [string, string] => a < b ? [a, b] : [b, a]

const chunks = <A>(items: ReadonlyArray<A>, size = 400): Array<ReadonlyArray<A>> => {
  const out: Array<ReadonlyArray<A>> = []
  for (let at = 0; at < items.length; at += size) out.push(items.slice(at, at + size))
  return out
}

const describe = (row: { verification: string; source: string }) =>
  `${row.verification} via ${row.source}`

// ---------------------------------------------------------------------------------------------
// Work inside one transaction (also used by the import, which batches many contacts)

/**
 * Record signals of `contactId` (insert, or refresh and upgrade an existing one) and find what
 * they match on other live contacts: verified-to-verified matches (to merge) and weaker ones
 * (suggestions, stored here). Returns the contacts to merge with and the suggestions created.
 */
export const recordSignals = async (
  trx: Db,
  contactId: string,
  inputs: ReadonlyArray<SignalInput & { readonly value: string }>,
  now: number,
): Promise<{
  readonly mergeWith: Map<string, Array<MergeEvidence>>
  readonly suggestions: Array<SuggestionRow>
  /** How many signals are new or newly verified. */
  readonly fresh: number
  /** The new or newly verified signals that are verified (what may merge). */
  readonly freshVerified: ReadonlyArray<{ readonly kind: string; readonly value: string }>
}> => {
  const mine = await trx.selectFrom("identity_signals").selectAll()
    .where("contact_id", "=", contactId).execute()
  const fresh: Array<SignalRow> = []
  for (const input of inputs) {
    const same = mine.find((s) =>
      s.kind === input.kind && s.value === input.value && s.source === input.source
    )
    if (same === undefined) {
      const row: SignalRow = {
        id: ulid(now),
        contact_id: contactId,
        kind: input.kind,
        value: input.value,
        source: input.source,
        verification: input.verification,
        identity_id: input.identityId ?? null,
        first_seen_at: now,
        last_seen_at: now,
      }
      await trx.insertInto("identity_signals").values(row).execute()
      mine.push(row)
      fresh.push(row)
    } else {
      const upgrade = same.verification === "claimed" && input.verification === "verified"
      await trx.updateTable("identity_signals").set({
        last_seen_at: now,
        ...(upgrade ? { verification: "verified" } : {}),
      }).where("id", "=", same.id).execute()
      if (upgrade) {
        same.verification = "verified"
        fresh.push(same)
      }
    }
  }
  const mergeWith = new Map<string, Array<MergeEvidence>>()
  const suggest = new Map<string, Array<MergeEvidence>>()
  for (const signal of fresh) {
    const others = await trx.selectFrom("identity_signals")
      .innerJoin("contacts", "contacts.id", "identity_signals.contact_id")
      .select([
        "identity_signals.contact_id as contact_id",
        "identity_signals.verification as verification",
        "identity_signals.source as source",
      ])
      .where("identity_signals.kind", "=", signal.kind)
      .where("identity_signals.value", "=", signal.value)
      .where("identity_signals.contact_id", "!=", contactId)
      .where("contacts.merged_into", "is", null)
      .execute()
    for (const other of others) {
      const strong = signal.verification === "verified" && other.verification === "verified"
      const evidence: MergeEvidence = {
        rule: strong ? `same_verified_${signal.kind}` : `same_${signal.kind}`,
        kind: signal.kind as SignalKind,
        value: signal.value,
        a: describe(signal),
        b: describe(other),
      }
      const target = strong ? mergeWith : suggest
      const list = target.get(other.contact_id) ?? []
      if (!list.some((e) => e.rule === evidence.rule && e.value === evidence.value)) {
        list.push(evidence)
      }
      target.set(other.contact_id, list)
    }
  }
  const suggestions: Array<SuggestionRow> = []
  for (const [other, evidence] of suggest) {
    if (mergeWith.has(other)) continue
    const created = await suggestPair(trx, contactId, other, evidence, now)
    if (created !== undefined) suggestions.push(created)
  }
  return {
    mergeWith,
    suggestions,
    fresh: fresh.length,
    freshVerified: fresh.filter((f) => f.verification === "verified")
      .map((f) => ({ kind: f.kind, value: f.value })),
  }
}

/**
 * Store a suggestion for the pair unless one exists (whatever its status: a rejected pair is not
 * suggested again). Returns the new row, or undefined.
 */
export const suggestPair = async (
  trx: Db,
  one: string,
  other: string,
  evidence: ReadonlyArray<MergeEvidence>,
  now: number,
): Promise<SuggestionRow | undefined> => {
  const [a, b] = pair(one, other)
  const existing = await trx.selectFrom("merge_suggestions").select("id")
    .where("contact_a", "=", a).where("contact_b", "=", b).executeTakeFirst()
  if (existing !== undefined) return undefined
  const row: SuggestionRow = {
    id: ulid(now),
    contact_a: a,
    contact_b: b,
    // From a's side: the evidence was written from `one`'s point of view.
    evidence: JSON.stringify(
      a === one ? evidence : evidence.map((e) => ({ ...e, a: e.b, b: e.a })),
    ),
    status: "open",
    created_at: now,
    decided_at: null,
    decided_by: null,
  }
  await trx.insertInto("merge_suggestions").values(row)
    .onConflict((oc) => oc.columns(["contact_a", "contact_b"]).doNothing()).execute()
  return row
}

// ---------------------------------------------------------------------------------------------
// The service

export interface IdentityGraphShape {
  /**
   * Record what an inbound message says about its sender (phone, e-mail, verified or claimed)
   * and merge or suggest as the rule says. Returns the sender's contact id now (another one if
   * the sender's contact was merged into an older one). Cheap for a sender whose signals are
   * unchanged: no query.
   */
  readonly observe: (
    sender: ResolvedSender,
    inbound: InboundMessage,
  ) => Effect.Effect<ContactId, DatabaseError>
  /** Add signals to a contact (API, operator), with the same merge rule. */
  readonly addSignals: (
    contactId: ContactId,
    signals: ReadonlyArray<SignalInput>,
    by: string,
  ) => Effect.Effect<SignalOutcome, ContactMissing | SignalInvalid | DatabaseError>
  readonly merge: (
    input: MergeInput,
  ) => Effect.Effect<MergeRecord, ContactMissing | MergeConflict | DatabaseError>
  readonly split: (
    mergeId: string,
    by: string,
    reason: string,
  ) => Effect.Effect<MergeRecord, MergeMissing | MergeConflict | DatabaseError>
  readonly profile: (
    contactId: ContactId,
  ) => Effect.Effect<Option.Option<ContactProfile>, DatabaseError>
  readonly update: (
    contactId: ContactId,
    update: ProfileUpdate,
    by: string,
  ) => Effect.Effect<ContactProfile, ContactMissing | MergeConflict | DatabaseError>
  readonly signals: (contactId: ContactId) => Effect.Effect<Array<IdentitySignal>, DatabaseError>
  readonly mergeRecord: (id: string) => Effect.Effect<Option.Option<MergeRecord>, DatabaseError>
  /** Merges into or out of the contact, newest first. */
  readonly merges: (contactId: ContactId) => Effect.Effect<Array<MergeRecord>, DatabaseError>
  /** Suggestions (of one contact, or all), oldest first; both contacts still live. */
  readonly suggestions: (options: {
    readonly contactId?: ContactId | undefined
    readonly status?: "open" | "accepted" | "rejected" | undefined
    readonly after?: string | undefined
    readonly limit: number
  }) => Effect.Effect<Array<MergeSuggestion>, DatabaseError>
  readonly suggestion: (id: string) => Effect.Effect<Option.Option<MergeSuggestion>, DatabaseError>
  /** Accept (merge b into a, or into `targetId`) or reject a suggestion. */
  readonly decide: (
    id: string,
    decision: { readonly accept: boolean; readonly targetId?: ContactId | undefined },
    by: string,
  ) => Effect.Effect<
    { readonly suggestion: MergeSuggestion; readonly merge: MergeRecord | null },
    SuggestionMissing | ContactMissing | MergeConflict | DatabaseError
  >
  /** Publish `contact.suggestion_created` for suggestions stored elsewhere (the import). */
  readonly announceSuggestions: (rows: ReadonlyArray<SuggestionRow>) => Effect.Effect<void>
}

export class IdentityGraph extends Context.Tag("chorus/core/IdentityGraph")<
  IdentityGraph,
  IdentityGraphShape
>() {}

export interface IdentityGraphOptions {
  /** Senders whose signals are known to be recorded, kept in memory. Default 20,000. */
  readonly cacheSize?: number
}

export const make = (options: IdentityGraphOptions = {}) =>
  Effect.gen(function* () {
    const database = yield* Database
    const bus = yield* Bus
    const store = yield* ConversationStore
    /** identity id → the signals last recorded from it (`phone|email|verified`). */
    const recorded = new Lru<string, string>(Math.max(1, options.cacheSize ?? 20_000))

    const stamp = () => ({ id: newId.event(), occurredAt: new Date() })

    /** Events are published after the commit; a failed publish is logged, the change stands. */
    const announce = (dedupeId: string, event: Parameters<typeof publishEvent>[2]) =>
      publishEvent(bus, dedupeId, event).pipe(
        Effect.retry({ times: 3 }),
        Effect.catchAll((error) =>
          Effect.logError("identity change stored but its event not published").pipe(
            Effect.annotateLogs({ event: event.type, error: error.message }),
          )
        ),
      )

    const loadProfile = async (db: Db, contactId: string) => {
      const row = await db.selectFrom("contacts").selectAll().where("id", "=", contactId)
        .executeTakeFirst()
      if (row === undefined) return undefined
      const signals = await db.selectFrom("identity_signals").selectAll()
        .where("contact_id", "=", contactId).orderBy("id").execute()
      return toProfile(row, signals)
    }

    const profile = (contactId: ContactId) =>
      database.query("contact profile", (db) => loadProfile(db, contactId)).pipe(
        Effect.map(Option.fromNullable),
      )

    const announceSuggestions = (rows: ReadonlyArray<SuggestionRow>) =>
      Effect.forEach(rows, (row) =>
        announce(row.id, {
          type: "contact.suggestion_created",
          version: 1,
          ...stamp(),
          suggestion: toSuggestion(row),
        }), { discard: true, concurrency: 32 })

    // --- merge -----------------------------------------------------------------------------

    const mergeIn = async (trx: Db, input: MergeInput, now: number) => {
      if (input.targetId === input.sourceId) {
        throw new Rollback(new MergeConflict({ reason: "a contact cannot be merged into itself" }))
      }
      const [target, source] = await Promise.all([
        trx.selectFrom("contacts").selectAll().where("id", "=", input.targetId).executeTakeFirst(),
        trx.selectFrom("contacts").selectAll().where("id", "=", input.sourceId).executeTakeFirst(),
      ])
      if (target === undefined) return { missing: input.targetId } as const
      if (source === undefined) return { missing: input.sourceId } as const
      for (const contact of [target, source]) {
        if (contact.merged_into !== null) {
          throw new Rollback(
            new MergeConflict({
              reason: `contact ${contact.id} was merged into ${contact.merged_into}`,
            }),
          )
        }
      }
      const stale = (expected: number | undefined, row: ContactRow) =>
        expected !== undefined && expected !== Number(row.version)
      if (stale(input.expected?.target, target) || stale(input.expected?.source, source)) {
        throw new Rollback(
          new MergeConflict({ reason: "a contact changed since you looked; reload and retry" }),
        )
      }
      const ids = (rows: ReadonlyArray<{ id: string }>) => rows.map((r) => r.id)
      const identities = ids(
        await trx.selectFrom("channel_identities").select("id")
          .where("contact_id", "=", source.id).execute(),
      )
      const signals = ids(
        await trx.selectFrom("identity_signals").select("id")
          .where("contact_id", "=", source.id).execute(),
      )
      const conversations = ids(
        await trx.selectFrom("conversations").select("id")
          .where("contact_id", "=", source.id).execute(),
      )
      const [a, b] = pair(target.id, source.id)
      const suggestions = ids(
        await trx.selectFrom("merge_suggestions").select("id")
          .where("contact_a", "=", a).where("contact_b", "=", b).where("status", "=", "open")
          .execute(),
      )
      const custom = { ...parseCustom(source.custom), ...parseCustom(target.custom) }
      const name = target.name ?? source.name
      const updatedTarget = await trx.updateTable("contacts").set({
        version: Number(target.version) + 1,
        updated_at: now,
        name,
        name_lower: name?.toLowerCase() ?? null,
        custom: JSON.stringify(custom),
      }).where("id", "=", target.id).where("version", "=", Number(target.version))
        .where("merged_into", "is", null).executeTakeFirst()
      const updatedSource = await trx.updateTable("contacts").set({
        version: Number(source.version) + 1,
        updated_at: now,
        merged_into: target.id,
      }).where("id", "=", source.id).where("version", "=", Number(source.version))
        .where("merged_into", "is", null).executeTakeFirst()
      if (updatedTarget.numUpdatedRows !== 1n || updatedSource.numUpdatedRows !== 1n) {
        throw new Rollback(
          new MergeConflict({ reason: "another change to these contacts won; reload and retry" }),
        )
      }
      for (const part of chunks(identities)) {
        await trx.updateTable("channel_identities").set({ contact_id: target.id })
          .where("id", "in", part).execute()
      }
      for (const part of chunks(signals)) {
        await trx.updateTable("identity_signals").set({ contact_id: target.id })
          .where("id", "in", part).execute()
      }
      for (const part of chunks(conversations)) {
        await trx.updateTable("conversations").set({ contact_id: target.id, updated_at: now })
          .where("id", "in", part).execute()
      }
      if (suggestions.length > 0) {
        await trx.updateTable("merge_suggestions").set({
          status: "accepted",
          decided_at: now,
          decided_by: input.by,
        }).where("id", "in", suggestions).execute()
      }
      const moved: Moved = {
        identities,
        signals,
        conversations,
        suggestions,
        targetBefore: { name: target.name, custom: target.custom },
      }
      const row: MergeRow = {
        id: ulid(now),
        target_id: target.id,
        source_id: source.id,
        kind: input.kind,
        reason: input.reason,
        merged_by: input.by,
        evidence: JSON.stringify(input.evidence ?? []),
        moved: JSON.stringify(moved),
        created_at: now,
        split_at: null,
        split_by: null,
        split_reason: null,
      }
      await trx.insertInto("contact_merges").values(row).execute()
      return { merge: toMerge(row), contact: (await loadProfile(trx, target.id))! } as const
    }

    const afterMerge = (merge: MergeRecord, contact: ContactProfile) =>
      Effect.gen(function* () {
        yield* store.forgetContacts([merge.targetId, merge.sourceId])
        yield* announce(merge.id, {
          type: "contact.merged",
          version: 1,
          ...stamp(),
          merge,
          contact,
        })
      })

    const merge = Effect.fn("IdentityGraph.merge")(function* (input: MergeInput) {
      const now = Date.now()
      const result = yield* conflictOf(
        database.transaction("merge contacts", (trx) => mergeIn(trx, input, now)),
      )
      if ("missing" in result) return yield* new ContactMissing({ id: result.missing! })
      yield* afterMerge(result.merge, result.contact)
      return result.merge
    })

    // --- split -----------------------------------------------------------------------------

    const split = Effect.fn("IdentityGraph.split")(function* (
      mergeId: string,
      by: string,
      reason: string,
    ) {
      const now = Date.now()
      const result = yield* conflictOf(database.transaction("split contacts", async (trx) => {
        const merge = await trx.selectFrom("contact_merges").selectAll()
          .where("id", "=", mergeId).executeTakeFirst()
        if (merge === undefined) return undefined
        if (merge.split_at !== null) {
          throw new Rollback(new MergeConflict({ reason: `merge ${mergeId} was already split` }))
        }
        const [target, source] = await Promise.all([
          trx.selectFrom("contacts").selectAll().where("id", "=", merge.target_id)
            .executeTakeFirstOrThrow(),
          trx.selectFrom("contacts").selectAll().where("id", "=", merge.source_id)
            .executeTakeFirstOrThrow(),
        ])
        if (source.merged_into !== target.id) {
          throw new Rollback(
            new MergeConflict({ reason: `contact ${source.id} is not merged into ${target.id}` }),
          )
        }
        if (target.merged_into !== null) {
          throw new Rollback(
            new MergeConflict({
              reason: `contact ${target.id} was merged into ${target.merged_into} since; ` +
                `split that merge first`,
            }),
          )
        }
        const moved = JSON.parse(merge.moved) as Moved
        for (const part of chunks(moved.identities)) {
          await trx.updateTable("channel_identities").set({ contact_id: source.id })
            .where("id", "in", part).where("contact_id", "=", target.id).execute()
          // Signals its identities produced since the merge go back with them.
          await trx.updateTable("identity_signals").set({ contact_id: source.id })
            .where("identity_id", "in", part).where("contact_id", "=", target.id).execute()
        }
        for (const part of chunks(moved.signals)) {
          await trx.updateTable("identity_signals").set({ contact_id: source.id })
            .where("id", "in", part).where("contact_id", "=", target.id).execute()
        }
        for (const part of chunks(moved.conversations)) {
          await trx.updateTable("conversations").set({ contact_id: source.id, updated_at: now })
            .where("id", "in", part).where("contact_id", "=", target.id).execute()
        }
        if (moved.suggestions.length > 0) {
          // The operator says they are two people: the suggestion is answered, no.
          await trx.updateTable("merge_suggestions").set({
            status: "rejected",
            decided_at: now,
            decided_by: by,
          }).where("id", "in", moved.suggestions).execute()
        }
        const restored = await trx.updateTable("contacts").set({
          merged_into: null,
          version: Number(source.version) + 1,
          updated_at: now,
        }).where("id", "=", source.id).where("version", "=", Number(source.version))
          .executeTakeFirst()
        const reverted = await trx.updateTable("contacts").set({
          name: moved.targetBefore.name,
          name_lower: moved.targetBefore.name?.toLowerCase() ?? null,
          custom: moved.targetBefore.custom,
          version: Number(target.version) + 1,
          updated_at: now,
        }).where("id", "=", target.id).where("version", "=", Number(target.version))
          .executeTakeFirst()
        if (restored.numUpdatedRows !== 1n || reverted.numUpdatedRows !== 1n) {
          throw new Rollback(
            new MergeConflict({ reason: "another change to these contacts won; reload and retry" }),
          )
        }
        const splitRow: MergeRow = { ...merge, split_at: now, split_by: by, split_reason: reason }
        await trx.updateTable("contact_merges").set({
          split_at: now,
          split_by: by,
          split_reason: reason,
        }).where("id", "=", mergeId).execute()
        return {
          merge: toMerge(splitRow),
          contact: (await loadProfile(trx, target.id))!,
          restored: (await loadProfile(trx, source.id))!,
        }
      }))
      if (result === undefined) return yield* new MergeMissing({ id: mergeId })
      yield* store.forgetContacts([result.contact.id, result.restored.id])
      recorded.clear()
      yield* announce(`${mergeId}:split`, {
        type: "contact.split",
        version: 1,
        ...stamp(),
        merge: result.merge,
        contact: result.contact,
        restored: result.restored,
      })
      return result.merge
    })

    // --- signals ---------------------------------------------------------------------------

    /**
     * Record normalised signals on a contact, then merge every contact a verified signal matches
     * into the oldest of them (the contact that has been around longest keeps its id).
     */
    const applySignals = (
      contactId: ContactId,
      signals: ReadonlyArray<SignalInput>,
      by: string,
    ) =>
      Effect.gen(function* () {
        const now = Date.now()
        const recordedSignals = yield* database.transaction(
          "record signals",
          (trx) => recordSignals(trx, contactId, signals, now),
        )
        // Looked at again after the commit: on PostgreSQL two first messages of one person on
        // two channels may commit at once, neither seeing the other's verified signal inside its
        // own transaction; after both commits, at least one sees the other (and if both do, one
        // merge wins and the other is a harmless conflict).
        for (const { kind, value } of recordedSignals.freshVerified) {
          const others = yield* database.query("verified matches", (db) =>
            db.selectFrom("identity_signals")
              .innerJoin("contacts", "contacts.id", "identity_signals.contact_id")
              .select(["identity_signals.contact_id as contact_id", "identity_signals.source"])
              .where("identity_signals.kind", "=", kind)
              .where("identity_signals.value", "=", value)
              .where("identity_signals.verification", "=", "verified")
              .where("identity_signals.contact_id", "!=", contactId)
              .where("contacts.merged_into", "is", null)
              .execute())
          for (const other of others) {
            if (recordedSignals.mergeWith.has(other.contact_id)) continue
            recordedSignals.mergeWith.set(other.contact_id, [{
              rule: `same_verified_${kind}`,
              kind: kind as SignalKind,
              value,
              a: "verified",
              b: `verified via ${other.source}`,
            }])
          }
        }
        if (recordedSignals.fresh > 0) {
          // A new phone or e-mail (or one now verified) is a profile change for CRMs.
          const after = yield* profile(contactId)
          if (Option.isSome(after)) {
            yield* announce(`${contactId}:signals:${ulid(now)}`, {
              type: "contact.updated",
              version: 1,
              ...stamp(),
              contact: after.value,
              changed: ["signals"],
            })
          }
        }
        yield* announceSuggestions(recordedSignals.suggestions)
        const merges: Array<MergeRecord> = []
        let current: ContactId = contactId
        for (const [other, evidence] of recordedSignals.mergeWith) {
          const created = yield* database.query(
            "contact ages",
            (db) =>
              db.selectFrom("contacts").select(["id", "created_at", "merged_into"])
                .where("id", "in", [current, other]).execute(),
          )
          const mine = created.find((c) =>
            c.id === current
          )
          const theirs = created.find((c) => c.id === other)
          if (mine === undefined || theirs === undefined || theirs.merged_into !== null) continue
          const older = millis(theirs.created_at) < millis(mine.created_at) ||
              (millis(theirs.created_at) === millis(mine.created_at) && other < current)
            ? other
            : current
          const younger = older === current ? other : current
          const result = yield* merge({
            targetId: older as ContactId,
            sourceId: younger as ContactId,
            kind: "automatic",
            reason: `verified ${evidence.map((e) => `${e.kind} ${e.value}`).join(", ")} ` +
              `on both contacts`,
            by,
            evidence,
          }).pipe(
            Effect.map(Option.some),
            // Merged meanwhile by someone else: the state is consistent; nothing to add.
            Effect.catchTag("MergeConflict", (conflict) =>
              Effect.logInfo("automatic merge skipped").pipe(
                Effect.annotateLogs({ reason: conflict.reason }),
                Effect.as(Option.none<MergeRecord>()),
              )),
            Effect.catchTag("ContactMissing", () => Effect.succeed(Option.none<MergeRecord>())),
          )
          if (Option.isSome(result)) {
            merges.push(result.value)
            current = result.value.targetId
          }
        }
        return {
          contactId: current,
          merges,
          suggestions: recordedSignals.suggestions.map(toSuggestion),
        } satisfies SignalOutcome
      })

    const observe = (sender: ResolvedSender, inbound: InboundMessage) => {
      const { identity } = sender
      const verified = inbound.sender.verified
      const phone = inbound.sender.phone !== undefined
        ? normalizePhone(inbound.sender.phone)
        : undefined
      const email = inbound.sender.email !== undefined
        ? normalizeEmail(inbound.sender.email)
        : undefined
      const signature = `${phone ?? ""}|${email ?? ""}|${verified}`
      if (recorded.get(identity.id) === signature) {
        return Effect.succeed(sender.contact.id)
      }
      return Effect.gen(function* () {
        const signals: Array<SignalInput> = []
        const verification = verified ? "verified" : "claimed"
        const source = `${inbound.channel}:sender`
        if (phone !== undefined) {
          signals.push({
            kind: "phone",
            value: phone,
            source,
            verification,
            identityId: identity.id,
          })
        }
        if (email !== undefined) {
          signals.push({
            kind: "email",
            value: email,
            source,
            verification,
            identityId: identity.id,
          })
        }
        // The identity learns what this message proves (a phone shared later, now verified).
        const upgrade = (phone !== undefined && phone !== identity.phone) ||
          (email !== undefined && email !== identity.email) ||
          (verified && identity.verification !== "verified" &&
            (phone !== undefined || email !== undefined))
        if (upgrade) {
          yield* database.query(
            "update identity",
            (db) =>
              db.updateTable("channel_identities").set({
                ...(phone !== undefined ? { phone } : {}),
                ...(email !== undefined ? { email } : {}),
                ...(verified ? { verification: "verified" } : {}),
                last_seen_at: Date.now(),
              }).where("id", "=", identity.id).execute(),
          )
          yield* store.forgetContacts([sender.contact.id])
        }
        let contactId = sender.contact.id
        if (signals.length > 0) {
          // The identity's contact as stored now (the cached one may predate a merge).
          const stored = yield* database.query(
            "identity contact",
            (db) =>
              db.selectFrom("channel_identities").select("contact_id")
                .where("id", "=", identity.id).executeTakeFirst(),
          )
          contactId = (stored?.contact_id ?? contactId) as ContactId
          const outcome = yield* applySignals(contactId, signals, "system")
          contactId = outcome.contactId
        }
        recorded.set(identity.id, signature)
        return contactId
      })
    }

    const addSignals = Effect.fn("IdentityGraph.addSignals")(function* (
      contactId: ContactId,
      inputs: ReadonlyArray<SignalInput>,
      by: string,
    ) {
      const normalised: Array<SignalInput> = []
      for (const input of inputs) {
        const value = normalizeSignal(input.kind, input.value)
        if (value === undefined) {
          return yield* new SignalInvalid({
            reason: `${JSON.stringify(input.value)} is not a valid ${input.kind}`,
          })
        }
        normalised.push({ ...input, value })
      }
      const contact = yield* database.query(
        "find contact",
        (db) =>
          db.selectFrom("contacts").select(["id", "merged_into"]).where("id", "=", contactId)
            .executeTakeFirst(),
      )
      if (contact === undefined) return yield* new ContactMissing({ id: contactId })
      const live = (contact.merged_into ?? contact.id) as ContactId
      const outcome = yield* applySignals(live, normalised, by)
      return outcome
    })

    const update = Effect.fn("IdentityGraph.update")(function* (
      contactId: ContactId,
      change: ProfileUpdate,
      _by: string,
    ) {
      const now = Date.now()
      const result = yield* conflictOf(database.transaction("update contact", async (trx) => {
        const row = await trx.selectFrom("contacts").selectAll().where("id", "=", contactId)
          .executeTakeFirst()
        if (row === undefined) return undefined
        if (row.merged_into !== null) {
          throw new Rollback(
            new MergeConflict({
              reason: `contact ${contactId} was merged into ${row.merged_into}; edit that one`,
            }),
          )
        }
        if (
          change.expectedVersion !== undefined && change.expectedVersion !== Number(row.version)
        ) {
          throw new Rollback(
            new MergeConflict({
              reason: `contact ${contactId} is at version ${row.version}, not ` +
                `${change.expectedVersion}; reload and retry`,
            }),
          )
        }
        const changed: Array<string> = []
        const name = change.name === undefined ? row.name : normalizeName(change.name) ?? null
        if (name !== row.name) changed.push("name")
        let custom = parseCustom(row.custom)
        if (change.custom !== undefined) {
          custom = { ...custom }
          for (const [key, value] of Object.entries(change.custom)) {
            if (value === null) delete custom[key]
            else custom[key] = value
          }
          if (JSON.stringify(custom) !== row.custom) changed.push("custom")
        }
        if (changed.length === 0) return { profile: (await loadProfile(trx, contactId))!, changed }
        const done = await trx.updateTable("contacts").set({
          name,
          name_lower: name?.toLowerCase() ?? null,
          custom: JSON.stringify(custom),
          version: Number(row.version) + 1,
          updated_at: now,
        }).where("id", "=", contactId).where("version", "=", Number(row.version))
          .executeTakeFirst()
        if (done.numUpdatedRows !== 1n) {
          throw new Rollback(new MergeConflict({ reason: "the contact changed meanwhile; retry" }))
        }
        return { profile: (await loadProfile(trx, contactId))!, changed }
      }))
      if (result === undefined) return yield* new ContactMissing({ id: contactId })
      if (result.changed.length > 0) {
        yield* store.forgetContacts([contactId])
        yield* announce(`${contactId}:${result.profile.version}`, {
          type: "contact.updated",
          version: 1,
          ...stamp(),
          contact: result.profile,
          changed: result.changed,
        })
      }
      return result.profile
    })

    const signals = (contactId: ContactId) =>
      database.query(
        "contact signals",
        (db) =>
          db.selectFrom("identity_signals").selectAll().where("contact_id", "=", contactId)
            .orderBy("kind").orderBy("value").orderBy("id").execute(),
      ).pipe(
        Effect.map((rows) => rows.map(toSignal)),
      )

    const merges = (contactId: ContactId) =>
      database.query("contact merges", (db) =>
        db.selectFrom("contact_merges").selectAll()
          .where((eb) => eb.or([eb("target_id", "=", contactId), eb("source_id", "=", contactId)]))
          .orderBy("created_at", "desc").orderBy("id", "desc").limit(200).execute()).pipe(
          Effect.map((rows) => rows.map(toMerge)),
        )

    const mergeRecord = (id: string) =>
      database.query("merge record", (db) =>
        db.selectFrom("contact_merges").selectAll().where("id", "=", id)
          .executeTakeFirst()).pipe(
          Effect.map((row) =>
            Option.fromNullable(row).pipe(Option.map(toMerge))
          ),
        )

    const suggestions = (options: {
      readonly contactId?: ContactId | undefined
      readonly status?: "open" | "accepted" | "rejected" | undefined
      readonly after?: string | undefined
      readonly limit: number
    }) =>
      database.query("merge suggestions", (db) => {
        let q = db.selectFrom("merge_suggestions")
          .innerJoin("contacts as ca", "ca.id", "merge_suggestions.contact_a")
          .innerJoin("contacts as cb", "cb.id", "merge_suggestions.contact_b")
          .selectAll("merge_suggestions")
        const status = options.status ?? "open"
        q = q.where("merge_suggestions.status", "=", status)
        if (status === "open") {
          q = q.where("ca.merged_into", "is", null).where("cb.merged_into", "is", null)
        }
        if (options.contactId !== undefined) {
          const id = options.contactId
          q = q.where((eb) =>
            eb.or([
              eb("merge_suggestions.contact_a", "=", id),
              eb("merge_suggestions.contact_b", "=", id),
            ])
          )
        }
        if (options.after !== undefined) {
          q = q.where("merge_suggestions.id", ">", options.after)
        }
        return q.orderBy("merge_suggestions.id").limit(options.limit).execute()
      }).pipe(Effect.map((rows) =>
        rows.map(toSuggestion)
      ))

    const suggestion = (id: string) =>
      database.query("merge suggestion", (db) =>
        db.selectFrom("merge_suggestions").selectAll().where("id", "=", id)
          .executeTakeFirst()).pipe(
          Effect.map((row) =>
            Option.fromNullable(row).pipe(Option.map(toSuggestion))
          ),
        )

    const decide = Effect.fn("IdentityGraph.decide")(function* (
      id: string,
      decision: { readonly accept: boolean; readonly targetId?: ContactId | undefined },
      by: string,
    ) {
      const found = yield* suggestion(id)
      if (Option.isNone(found)) {
        return yield* new SuggestionMissing({ id })
      }
      const current = found.value
      if (current.status !== "open") {
        return yield* new MergeConflict({
          reason: `suggestion ${id} was already ${current.status}`,
        })
      }
      if (!decision.accept) {
        const now = Date.now()
        const done = yield* database.query(
          "reject suggestion",
          (db) =>
            db.updateTable("merge_suggestions").set({
              status: "rejected",
              decided_at: now,
              decided_by: by,
            }).where("id", "=", id).where("status", "=", "open").executeTakeFirst(),
        )
        if (done.numUpdatedRows !== 1n) {
          return yield* new MergeConflict({ reason: `suggestion ${id} was decided meanwhile` })
        }
        return {
          suggestion: { ...current, status: "rejected", decidedAt: new Date(now), decidedBy: by },
          merge: null,
        } as const
      }
      const target = decision.targetId ?? current.contactA
      if (target !== current.contactA && target !== current.contactB) {
        return yield* new MergeConflict({
          reason: `targetId must be one of the suggestion's contacts`,
        })
      }
      const source = target === current.contactA ? current.contactB : current.contactA
      const record = yield* merge({
        targetId: target,
        sourceId: source,
        kind: "suggestion",
        reason: `suggestion ${id} accepted`,
        by,
        evidence: current.evidence,
      })
      const after = yield* suggestion(id)
      return {
        suggestion: Option.getOrElse(after, () => current),
        merge: record,
      } as const
    })

    return {
      observe,
      addSignals,
      merge,
      split,
      profile,
      update,
      signals,
      merges,
      mergeRecord,
      suggestions,
      suggestion,
      decide,
      announceSuggestions,
    } satisfies IdentityGraphShape
  })

export const layer = (options: IdentityGraphOptions = {}) =>
  Layer.effect(IdentityGraph, make(options))
