/**
 * Managing people and teams over the API (admins and API tokens): add operators, change their
 * role, capacity or language, disable them, set a password, sign them out everywhere; add, rename
 * and remove teams, their members and the inboxes they own. `chorus user` / `chorus team` do the
 * same from the server's shell (and add the first admin).
 *
 * An operator changes their own password with `POST /auth/password` (core/http/AuthApi.ts).
 */
import { HttpApiEndpoint, HttpApiGroup, HttpApiSchema, OpenApi } from "@effect/platform"
import { Schema } from "effect"
import { OperatorId, TeamId } from "../../schemas/Ids.ts"
import {
  Capacity,
  Inbox,
  Locale,
  Operator,
  OperatorEmail,
  OperatorName,
  Role,
  Team,
  TeamName,
} from "../../schemas/Operator.ts"
import { AdminAuthentication } from "./Authentication.ts"

export class PersonNotFound extends Schema.TaggedError<PersonNotFound>()(
  "PersonNotFound",
  { id: Schema.String, message: Schema.String },
  HttpApiSchema.annotations({ status: 404, description: "No operator or team has this id." }),
) {}

/** The change conflicts with what exists: the e-mail or name is taken, or the last admin. */
export class PeopleConflict extends Schema.TaggedError<PeopleConflict>()(
  "PeopleConflict",
  { field: Schema.String, message: Schema.String },
  HttpApiSchema.annotations({
    status: 409,
    description: "The e-mail or team name is taken, or the change would leave no admin.",
  }),
) {}

export class PeopleRejected extends Schema.TaggedError<PeopleRejected>()(
  "PeopleRejected",
  { field: Schema.String, message: Schema.String },
  HttpApiSchema.annotations({
    status: 422,
    description: "A weak password or an invalid value.",
  }),
) {}

export const NewOperatorRequest = Schema.Struct({
  email: OperatorEmail,
  name: OperatorName,
  role: Schema.optionalWith(Role, { default: () => "operator" as const }),
  password: Schema.String.pipe(Schema.maxLength(200)),
  capacity: Schema.optionalWith(Capacity, { exact: true }),
  locale: Schema.optionalWith(Locale, { exact: true }),
}).annotations({ identifier: "NewOperatorRequest" })

export const OperatorChange = Schema.Struct({
  name: Schema.optionalWith(OperatorName, { exact: true }),
  role: Schema.optionalWith(Role, { exact: true }),
  capacity: Schema.optionalWith(Capacity, { exact: true }),
  locale: Schema.optionalWith(Locale, { exact: true }),
  disabled: Schema.optionalWith(Schema.Boolean, { exact: true }),
}).annotations({ identifier: "OperatorChange" })

const OperatorPath = Schema.Struct({ id: OperatorId })
const TeamPath = Schema.Struct({ id: TeamId })

export class PeopleApi extends HttpApiGroup.make("people")
  .add(
    HttpApiEndpoint.post("addOperator", "/operators")
      .setPayload(NewOperatorRequest)
      .addSuccess(Operator, { status: 201 })
      .addError(PeopleConflict)
      .addError(PeopleRejected)
      .annotate(OpenApi.Summary, "Add an operator (password at least 10 characters)."),
  )
  .add(
    HttpApiEndpoint.patch("changeOperator", "/operators/:id")
      .setPath(OperatorPath)
      .setPayload(OperatorChange)
      .addSuccess(Operator)
      .addError(PersonNotFound)
      .addError(PeopleConflict)
      .annotate(
        OpenApi.Summary,
        "Change name, role, capacity, language; disable (signs them out) or enable.",
      ),
  )
  .add(
    HttpApiEndpoint.put("setPassword", "/operators/:id/password")
      .setPath(OperatorPath)
      .setPayload(Schema.Struct({ password: Schema.String.pipe(Schema.maxLength(200)) }))
      .addSuccess(Schema.Void, { status: 204 })
      .addError(PersonNotFound)
      .addError(PeopleRejected)
      .annotate(OpenApi.Summary, "Set a new password; every session of theirs ends."),
  )
  .add(
    HttpApiEndpoint.post("signOutOperator", "/operators/:id/logout-everywhere")
      .setPath(OperatorPath)
      .addSuccess(Schema.Void, { status: 204 })
      .addError(PersonNotFound)
      .annotate(OpenApi.Summary, "End every session of the operator."),
  )
  .add(
    HttpApiEndpoint.post("addTeam", "/teams")
      .setPayload(Schema.Struct({ name: TeamName }))
      .addSuccess(Team, { status: 201 })
      .addError(PeopleConflict)
      .annotate(OpenApi.Summary, "Add a team."),
  )
  .add(
    HttpApiEndpoint.patch("renameTeam", "/teams/:id")
      .setPath(TeamPath)
      .setPayload(Schema.Struct({ name: TeamName }))
      .addSuccess(Team)
      .addError(PersonNotFound)
      .addError(PeopleConflict)
      .annotate(OpenApi.Summary, "Rename a team."),
  )
  .add(
    HttpApiEndpoint.del("removeTeam", "/teams/:id")
      .setPath(TeamPath)
      .addSuccess(Schema.Void, { status: 204 })
      .addError(PersonNotFound)
      .annotate(
        OpenApi.Summary,
        "Remove a team with its memberships and inboxes (its conversations keep their " +
          "history and become admins' until transferred).",
      ),
  )
  .add(
    HttpApiEndpoint.put("addMember", "/teams/:id/members/:operatorId")
      .setPath(Schema.Struct({ id: TeamId, operatorId: OperatorId }))
      .addSuccess(Team)
      .addError(PersonNotFound)
      .annotate(OpenApi.Summary, "Add an operator to a team."),
  )
  .add(
    HttpApiEndpoint.del("removeMember", "/teams/:id/members/:operatorId")
      .setPath(Schema.Struct({ id: TeamId, operatorId: OperatorId }))
      .addSuccess(Team)
      .addError(PersonNotFound)
      .annotate(OpenApi.Summary, "Take an operator out of a team."),
  )
  .add(
    HttpApiEndpoint.post("claimInbox", "/teams/:id/inboxes")
      .setPath(TeamPath)
      .setPayload(Inbox)
      .addSuccess(Team)
      .addError(PersonNotFound)
      .addError(PeopleRejected)
      .annotate(
        OpenApi.Summary,
        "Give an inbox (channel account, or `*` for every account) to the team; it leaves its " +
          "previous team. New conversations there are this team's.",
      ),
  )
  .add(
    HttpApiEndpoint.post("releaseInbox", "/teams/:id/inboxes/release")
      .setPath(TeamPath)
      .setPayload(Inbox)
      .addSuccess(Team)
      .addError(PersonNotFound)
      .annotate(OpenApi.Summary, "The inbox no longer belongs to the team."),
  )
  .middleware(AdminAuthentication)
  .annotate(OpenApi.Description, "People and teams (admins).") {}
