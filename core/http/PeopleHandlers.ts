/**
 * Handlers of the people group (core/http/PeopleApi.ts): operators and teams managed by admins.
 * Each change that matters to routing or to supervisors' screens announces `operator.updated`
 * for the people it touches.
 */
import { HttpApiBuilder } from "@effect/platform"
import { Effect, Option } from "effect"
import { OperatorEvents } from "../../actors/routing/OperatorEvents.ts"
import type { OperatorId, TeamId } from "../../schemas/Ids.ts"
import type { Team } from "../../schemas/Operator.ts"
import { Operators } from "../accounts/Operators.ts"
import { Sessions } from "../accounts/Sessions.ts"
import { Teams } from "../accounts/Teams.ts"
import { ChorusApi } from "./Api.ts"
import { PeopleConflict, PeopleRejected, PersonNotFound } from "./PeopleApi.ts"

const notFound = (id: string) => new PersonNotFound({ id, message: `no operator or team ${id}` })

export const PeopleHandlers = HttpApiBuilder.group(
  ChorusApi,
  "people",
  (handlers) =>
    Effect.gen(function* () {
      const operators = yield* Operators
      const teams = yield* Teams
      const sessions = yield* Sessions
      const events = yield* OperatorEvents

      /** Announce every member of a team (their teams changed, or the team's inboxes). */
      const announceTeam = (team: Team) => Effect.forEach(team.memberIds, events.changed)

      return handlers
        .handle("addOperator", ({ payload }) =>
          operators.add({
            email: payload.email,
            name: payload.name,
            role: payload.role,
            password: payload.password,
            ...(payload.capacity !== undefined ? { capacity: payload.capacity } : {}),
            ...(payload.locale !== undefined ? { locale: payload.locale } : {}),
          }).pipe(
            Effect.catchTags({
              OperatorEmailTaken: (e) => new PeopleConflict({ field: "email", message: e.message }),
              WeakPassword: (e) => new PeopleRejected({ field: "password", message: e.message }),
              InvalidAccountInput: (e) =>
                new PeopleRejected({ field: e.field, message: e.message }),
            }),
            Effect.orDie,
          ))
        .handle("changeOperator", ({ path, payload }) =>
          Effect.gen(function* () {
            const operator = yield* operators.update(path.id, payload).pipe(
              Effect.catchTags({
                OperatorNotFound: () => notFound(path.id),
                LastAdmin: (e) => new PeopleConflict({ field: "role", message: e.message }),
                InvalidAccountInput: (e) =>
                  new PeopleConflict({ field: e.field, message: e.message }),
              }),
              Effect.orDie,
            )
            yield* events.changed(operator.id)
            return operator
          }))
        .handle("setPassword", ({ path, payload }) =>
          operators.setPassword(path.id, payload.password).pipe(
            Effect.catchTags({
              OperatorNotFound: () => notFound(path.id),
              WeakPassword: (e) => new PeopleRejected({ field: "password", message: e.message }),
            }),
            Effect.orDie,
          ))
        .handle("signOutOperator", ({ path }) =>
          Effect.gen(function* () {
            const found = yield* operators.get(path.id).pipe(Effect.orDie)
            if (Option.isNone(found)) {
              return yield* notFound(path.id)
            }
            yield* sessions.signOutEverywhere(path.id).pipe(Effect.orDie)
          }))
        .handle("addTeam", ({ payload }) =>
          teams.add(payload.name).pipe(
            Effect.catchTags({
              TeamNameTaken: (e) =>
                new PeopleConflict({ field: "name", message: e.message }),
              InvalidAccountInput: (e) =>
                new PeopleConflict({ field: e.field, message: e.message }),
            }),
            Effect.orDie,
          ))
        .handle("renameTeam", ({ path, payload }) =>
          teams.rename(path.id, payload.name).pipe(
            Effect.catchTags({
              TeamNotFound: () => notFound(path.id),
              TeamNameTaken: (e) => new PeopleConflict({ field: "name", message: e.message }),
              InvalidAccountInput: (e) =>
                new PeopleConflict({ field: e.field, message: e.message }),
            }),
            Effect.orDie,
          ))
        .handle("removeTeam", ({ path }) =>
          Effect.gen(function* () {
            const team = yield* teams.get(path.id).pipe(Effect.orDie)
            if (Option.isNone(team)) return yield* notFound(path.id)
            yield* teams.remove(path.id).pipe(
              Effect.catchTag("TeamNotFound", () => notFound(path.id)),
              Effect.orDie,
            )
            yield* announceTeam(team.value)
          }))
        .handle("addMember", ({ path }) =>
          teams.addMember(path.id as TeamId, path.operatorId as OperatorId).pipe(
            Effect.catchTags({
              TeamNotFound: () => notFound(path.id),
              OperatorNotFound: () => notFound(path.operatorId),
            }),
            Effect.orDie,
            Effect.tap(() => events.changed(path.operatorId)),
          ))
        .handle("removeMember", ({ path }) =>
          teams.removeMember(path.id, path.operatorId).pipe(
            Effect.catchTags({
              TeamNotFound: () =>
                notFound(path.id),
            }),
            Effect.orDie,
            Effect.tap(() => events.changed(path.operatorId)),
          ))
        .handle("claimInbox", ({ path, payload }) =>
          teams.claimInbox(path.id, payload).pipe(
            Effect.catchTags({
              TeamNotFound: () => notFound(path.id),
              InvalidAccountInput: (e) =>
                new PeopleRejected({ field: e.field, message: e.message }),
            }),
            Effect.orDie,
            Effect.map((claim) => claim.team),
          ))
        .handle("releaseInbox", ({ path, payload }) =>
          Effect.gen(function* () {
            const team = yield* teams.get(path.id).pipe(Effect.orDie)
            if (Option.isNone(team)) return yield* notFound(path.id)
            const owns = team.value.inboxes.some((i) =>
              i.channel === payload.channel && i.account === payload.account
            )
            if (owns) yield* teams.releaseInbox(payload).pipe(Effect.orDie)
            return (yield* teams.get(path.id).pipe(Effect.orDie)).pipe(Option.getOrThrow)
          }))
    }),
)
