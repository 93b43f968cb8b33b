/**
 * A signed-in operator for tests: the session cookie and CSRF token a browser would hold, and
 * calls that send them (`csrf: false` leaves the header out, to test the refusal). Also people
 * and teams set up through the services, as `chorus user add` / `chorus team` would.
 */
import { Effect } from "effect"
import type { OperatorsShape } from "../../core/accounts/Operators.ts"
import type { TeamsShape } from "../../core/accounts/Teams.ts"
import type { Role } from "../../schemas/Operator.ts"
import type { Operator, SessionInfo } from "../../schemas/Operator.ts"

export const PASSWORD = "correct horse battery"

export interface Answer {
  readonly status: number
  readonly headers: Headers
  readonly body: any
}

const call = (
  url: string,
  init: { method: string; headers: Record<string, string>; body?: string },
): Effect.Effect<Answer> =>
  Effect.promise(async () => {
    const response = await fetch(url, init)
    const text = await response.text()
    let body: unknown = undefined
    try {
      body = text.length > 0 ? JSON.parse(text) : undefined
    } catch {
      body = text
    }
    return { status: response.status, headers: response.headers, body }
  })

export const login = (
  baseUrl: string,
  credentials: { readonly email: string; readonly password?: string; readonly totp?: string },
) =>
  call(`${baseUrl}/api/v1/auth/login`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ password: PASSWORD, ...credentials }),
  })

export interface SignedIn {
  readonly operator: Operator
  readonly session: SessionInfo
  readonly cookie: string
  readonly api: (
    method: string,
    path: string,
    body?: unknown,
    options?: { readonly csrf?: boolean; readonly origin?: string },
  ) => Effect.Effect<Answer>
}

/** Sign in and keep the cookie; fails the test if sign-in does. */
export const signIn = (baseUrl: string, email: string) =>
  Effect.gen(function* () {
    const answer = yield* login(baseUrl, { email })
    if (answer.status !== 200) {
      return yield* Effect.dieMessage(
        `sign-in of ${email}: ${answer.status} ${JSON.stringify(answer.body)}`,
      )
    }
    const setCookie = answer.headers.get("set-cookie") ?? ""
    const cookie = /chorus_session=[^;]+/.exec(setCookie)?.[0]
    if (cookie === undefined) return yield* Effect.dieMessage(`no session cookie: ${setCookie}`)
    const session = answer.body as SessionInfo
    const api: SignedIn["api"] = (method, path, body, options = {}) =>
      call(`${baseUrl}/api/v1${path}`, {
        method,
        headers: {
          cookie,
          ...(body !== undefined ? { "content-type": "application/json" } : {}),
          ...(options.csrf === false ? {} : { "x-csrf-token": session.csrfToken }),
          ...(options.origin !== undefined ? { origin: options.origin } : {}),
        },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      })
    return { operator: session.operator, session, cookie, api } satisfies SignedIn
  })

/** An operator (with the test password), in the given teams. */
export const addOperator = (
  services: { readonly operators: OperatorsShape; readonly teams: TeamsShape },
  options: {
    readonly email: string
    readonly role?: Role
    readonly teamIds?: ReadonlyArray<string>
    readonly capacity?: number
    readonly presence?: "online" | "away" | "offline"
  },
) =>
  Effect.gen(function* () {
    const operator = yield* services.operators.add({
      email: options.email,
      name: options.email.split("@")[0]!,
      role: options.role ?? "operator",
      password: PASSWORD,
      ...(options.capacity !== undefined ? { capacity: options.capacity } : {}),
    })
    for (const teamId of options.teamIds ?? []) {
      yield* services.teams.addMember(teamId as never, operator.id)
    }
    if (options.presence !== undefined) {
      yield* services.operators.update(operator.id, { presence: options.presence })
    }
    return operator
  }).pipe(Effect.orDie)

/** A team owning the `api` channel's account `account`. */
export const addTeam = (teams: TeamsShape, name: string, account: string) =>
  Effect.gen(function* () {
    const team = yield* teams.add(name)
    yield* teams.claimInbox(team.id, { channel: "api", account })
    return team
  }).pipe(Effect.orDie)
