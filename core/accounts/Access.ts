/**
 * Who is calling and what they may see. Every `/api/v1` request has a principal: an API token
 * (an integration: it sees and does everything, as before operators existed) or an operator
 * signed in with a session cookie, whose role and teams decide:
 *
 * - `admin`: every conversation, and managing people, teams, plugins and tokens;
 * - `supervisor`: the conversations of their teams, the queue and operators' loads; reassigns;
 * - `operator`: the conversations of their teams, and any conversation assigned to them.
 *
 * A conversation no team owns (its inbox is not claimed by a team) is visible to admins only
 * (and to its assignee). Handlers answer 404 for a conversation the caller may not see, so its
 * existence is not revealed.
 */
import type { ApiTokenInfo } from "../../schemas/ApiToken.ts"
import type { OperatorId, TeamId } from "../../schemas/Ids.ts"
import type { Operator, SessionInfo } from "../../schemas/Operator.ts"

export type Principal =
  | { readonly kind: "token"; readonly token: ApiTokenInfo }
  | { readonly kind: "operator"; readonly operator: Operator; readonly session: SessionInfo }

/** The operator behind a principal, if it is one. */
export const operatorOf = (principal: Principal): Operator | undefined =>
  principal.kind === "operator" ? principal.operator : undefined

/** Admins and API tokens see everything. */
export const seesEverything = (principal: Principal): boolean =>
  principal.kind === "token" || principal.operator.role === "admin"

/** Supervisors, admins and API tokens see the queue and operators' loads, and reassign. */
export const supervises = (principal: Principal): boolean =>
  principal.kind === "token" || principal.operator.role !== "operator"

/**
 * The teams whose conversations the principal sees: `"all"`, or a list (with the operator's
 * own id, for the conversations assigned to them whatever their team).
 */
export type Visibility =
  | { readonly all: true }
  | {
    readonly all: false
    readonly teamIds: ReadonlyArray<TeamId>
    readonly operatorId: OperatorId
  }

export const visibilityOf = (principal: Principal): Visibility =>
  seesEverything(principal) ? { all: true } : {
    all: false,
    teamIds: (principal as Extract<Principal, { kind: "operator" }>).operator.teamIds,
    operatorId: (principal as Extract<Principal, { kind: "operator" }>).operator.id,
  }

export const canSee = (
  visibility: Visibility,
  conversation: { readonly teamId?: TeamId | null; readonly assigneeId: OperatorId | null },
): boolean =>
  visibility.all ||
  conversation.assigneeId === visibility.operatorId ||
  (conversation.teamId != null && visibility.teamIds.includes(conversation.teamId))
