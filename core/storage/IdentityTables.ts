/**
 * Tables of the identity graph (migration 0012): signals, merges, merge suggestions and the
 * per-inbox conversation settings. Times are epoch milliseconds (strings on PostgreSQL).
 */
import type { Insertable, Selectable } from "kysely"

type Millis = number | string

export interface IdentitySignalsTable {
  id: string
  contact_id: string
  /** phone | email | external */
  kind: string
  /** Normalised: E.164 phone, lower-cased e-mail, `channel:account:id` or `source:id`. */
  value: string
  /** Where it came from: `whatsapp:sender`, `api`, `operator`, `import`, … */
  source: string
  /** verified | claimed */
  verification: string
  /** The channel identity that produced it, if any. */
  identity_id: string | null
  first_seen_at: Millis
  last_seen_at: Millis
}

export interface ContactMergesTable {
  id: string
  target_id: string
  source_id: string
  /** automatic | manual | suggestion */
  kind: string
  reason: string
  merged_by: string
  /** JSON array of evidence items. */
  evidence: string
  /** JSON `MovedRecord`. */
  moved: string
  created_at: Millis
  split_at: Millis | null
  split_by: string | null
  split_reason: string | null
}

export interface MergeSuggestionsTable {
  id: string
  contact_a: string
  contact_b: string
  evidence: string
  /** open | accepted | rejected */
  status: string
  created_at: Millis
  decided_at: Millis | null
  decided_by: string | null
}

export interface InboxSettingsTable {
  channel: string
  account: string
  /** per_contact | per_channel */
  conversation_mode: string
}

export interface IdentityTables {
  identity_signals: IdentitySignalsTable
  contact_merges: ContactMergesTable
  merge_suggestions: MergeSuggestionsTable
  inbox_settings: InboxSettingsTable
}

export type SignalRow = Selectable<IdentitySignalsTable>
export type NewSignal = Insertable<IdentitySignalsTable>
export type MergeRow = Selectable<ContactMergesTable>
export type SuggestionRow = Selectable<MergeSuggestionsTable>
