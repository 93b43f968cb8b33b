/**
 * The `api_tokens` table, typed for Kysely (created by
 * core/storage/migrations/2026_11_23_0002_api_tokens.ts).
 */
import type { ColumnType, Selectable } from "kysely"

/** A `bigint` of epoch milliseconds: a number on SQLite, a decimal string on PostgreSQL. */
type Millis = ColumnType<number | string, number, number>

export interface ApiTokensTable {
  id: string
  name: string
  prefix: string
  hash: string
  created_at: Millis
  last_used_at: Millis | null
  revoked_at: Millis | null
}

export type ApiTokenRow = Selectable<ApiTokensTable>

export interface ApiTokensTables {
  api_tokens: ApiTokensTable
}
