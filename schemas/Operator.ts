/**
 * The people who work in the inbox: operators (with a role, a presence and a capacity), the
 * teams they belong to (a team owns inboxes: channel accounts), and what sign-in answers.
 *
 * Roles: `admin` sees and manages everything (people, teams, plugins, tokens); `supervisor` sees
 * their teams' conversations, the queue and each operator's load, and can reassign; `operator`
 * sees their teams' conversations and works on them.
 */
import { Schema } from "effect"
import { Timestamp } from "./Common.ts"
import { AccountId, ChannelName, OperatorId, SessionId, TeamId } from "./Ids.ts"

export const ROLES = ["admin", "supervisor", "operator"] as const
export const Role = Schema.Literal(...ROLES).annotations({
  identifier: "Role",
  description: "admin: everything; supervisor: their teams, the queue, reassigning; operator: " +
    "their teams' conversations.",
})
export type Role = typeof Role.Type

export const PRESENCES = ["online", "away", "offline"] as const
export const Presence = Schema.Literal(...PRESENCES).annotations({
  identifier: "Presence",
  description: "online: routing may assign new conversations; away and offline: it does not.",
})
export type Presence = typeof Presence.Type

export const LOCALES = ["en", "ru"] as const
export const Locale = Schema.Literal(...LOCALES).annotations({ identifier: "Locale" })
export type Locale = typeof Locale.Type

/** Default for `capacity`: conversations routing may assign to one operator at a time. */
export const DEFAULT_CAPACITY = 6

export const Capacity = Schema.Int.pipe(Schema.between(0, 100)).annotations({
  identifier: "Capacity",
  description:
    `Open conversations routing may assign at once (0 to 100; default ${DEFAULT_CAPACITY}).`,
})

export const OperatorEmail = Schema.Lowercase.pipe(
  Schema.compose(Schema.Trim),
  Schema.compose(
    Schema.String.pipe(
      Schema.pattern(/^[^\s@]+@[^\s@]+$/, { message: () => "expected an e-mail address" }),
      Schema.maxLength(320),
    ),
  ),
).annotations({ identifier: "OperatorEmail", description: "Lower-cased and trimmed." })

export const OperatorName = Schema.Trim.pipe(
  Schema.compose(Schema.String.pipe(Schema.minLength(1), Schema.maxLength(120))),
).annotations({ identifier: "OperatorName" })

export const Operator = Schema.Struct({
  id: OperatorId,
  email: Schema.String,
  name: Schema.String,
  role: Role,
  presence: Presence,
  capacity: Capacity,
  locale: Locale,
  totpEnabled: Schema.Boolean,
  disabled: Schema.Boolean,
  teamIds: Schema.Array(TeamId),
  createdAt: Timestamp,
}).annotations({ identifier: "Operator", description: "A person who works in the inbox." })
export type Operator = typeof Operator.Type

/** A channel account a team owns; account `*` is every account of the channel. */
export const Inbox = Schema.Struct({
  channel: ChannelName,
  account: Schema.Union(AccountId, Schema.Literal("*")),
}).annotations({ identifier: "Inbox" })
export type Inbox = typeof Inbox.Type

export const TeamName = Schema.Trim.pipe(
  Schema.compose(Schema.String.pipe(Schema.minLength(1), Schema.maxLength(80))),
).annotations({ identifier: "TeamName" })

export const Team = Schema.Struct({
  id: TeamId,
  name: Schema.String,
  memberIds: Schema.Array(OperatorId),
  inboxes: Schema.Array(Inbox),
  createdAt: Timestamp,
}).annotations({ identifier: "Team" })
export type Team = typeof Team.Type

/** What `POST /auth/login` and `GET /auth/session` answer (the cookie carries the token). */
export const SessionInfo = Schema.Struct({
  sessionId: SessionId,
  operator: Operator,
  /** Send it as `X-CSRF-Token` on every request that changes something. */
  csrfToken: Schema.String,
  expiresAt: Timestamp,
}).annotations({ identifier: "SessionInfo" })
export type SessionInfo = typeof SessionInfo.Type
