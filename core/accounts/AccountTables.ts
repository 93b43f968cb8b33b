/**
 * Tables of operators, teams, sign-in sessions, login throttling and canned answers
 * (migration 2026_11_24_0007_accounts.ts). Times are epoch milliseconds; flags are 0/1.
 */
import type { ColumnType, Insertable, Selectable } from "kysely"

type Millis = number | string
type Flag = number

export interface OperatorsTable {
  id: string
  email: string
  name: string
  /** admin | supervisor | operator */
  role: string
  /** `scrypt$N$r$p$salt$hash` (base64). */
  password_hash: string
  /** Base32 TOTP secret, set while enrolling and once enabled. */
  totp_secret: string | null
  totp_enabled: ColumnType<Flag, Flag | undefined, Flag>
  /** The last TOTP time step accepted, so a code is used once (migration 0008). */
  totp_last_step: ColumnType<Millis | null, Millis | null | undefined, Millis | null>
  /** online | away | offline */
  presence: ColumnType<string, string | undefined, string>
  capacity: ColumnType<number, number | undefined, number>
  /** en | ru */
  locale: ColumnType<string, string | undefined, string>
  disabled: ColumnType<Flag, Flag | undefined, Flag>
  created_at: Millis
  updated_at: Millis
  last_assigned_at: Millis | null
}

export interface TeamsTable {
  id: string
  name: string
  created_at: Millis
}

export interface TeamMembersTable {
  team_id: string
  operator_id: string
}

export interface TeamInboxesTable {
  channel: string
  /** A channel account, or `*` for every account of the channel. */
  account: string
  team_id: string
}

export interface SessionsTable {
  /** Hex SHA-256 of the cookie's token. */
  id: string
  /** The session's public id (a ULID, `SessionId`), safe to show and to sign out by (0008). */
  public_id: string
  operator_id: string
  csrf_token: string
  created_at: Millis
  last_seen_at: Millis
  expires_at: Millis
  user_agent: string | null
  address: string | null
}

export interface LoginFailuresTable {
  key: string
  failures: number
  first_failed_at: Millis
  locked_until: Millis | null
}

export interface CannedResponsesTable {
  id: string
  short_code: string
  text: string
  team_id: string | null
  created_by: string | null
  created_at: Millis
  updated_at: Millis
}

export interface AccountTables {
  chorus_operators: OperatorsTable
  chorus_teams: TeamsTable
  chorus_team_members: TeamMembersTable
  chorus_team_inboxes: TeamInboxesTable
  chorus_sessions: SessionsTable
  chorus_login_failures: LoginFailuresTable
  chorus_canned_responses: CannedResponsesTable
}

export type OperatorRow = Selectable<OperatorsTable>
export type NewOperator = Insertable<OperatorsTable>
export type SessionRow = Selectable<SessionsTable>
export type CannedResponseRow = Selectable<CannedResponsesTable>
