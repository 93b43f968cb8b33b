/**
 * The inbox's API (the `inbox` plugin's web UI uses it; so can any client):
 * - `inbox`: the conversation list as an operator sees it (views mine / unassigned / all, by
 *   status, channel and team, each row with contact and last message), the tab counts, a
 *   contact's conversations, the operators and teams, canned answers;
 * - `conversationActions`: status (open / pending / snoozed / resolved), assignment and
 *   transfer, private notes with mentions, read marks;
 * - `supervision`: the queue with places and each operator's load (supervisors and admins).
 *
 * An operator sees the conversations of their teams and those assigned to them; anything else
 * answers 404 as if it did not exist. API tokens see everything.
 */
import { HttpApiEndpoint, HttpApiGroup, HttpApiSchema, OpenApi } from "@effect/platform"
import { Schema } from "effect"
import { Conversation } from "../../schemas/Conversation.ts"
import { CannedResponseId, ContactId, ConversationId } from "../../schemas/Ids.ts"
import {
  AssignmentChange,
  CannedResponse,
  InboxList,
  InboxListParams,
  NewCannedResponse,
  NoteRequest,
  OperatorLoad,
  QueueView,
  ReadMark,
  StatusChange,
} from "../../schemas/Inbox.ts"
import { Note } from "../../schemas/Message.ts"
import { Team } from "../../schemas/Operator.ts"
import { Authentication, Forbidden, SupervisorAuthentication } from "./Authentication.ts"
import { ContactNotFound, ConversationNotFound } from "./ReadApi.ts"
import { ConversationClosed } from "./RepliesApi.ts"

/** The change is not possible as asked (unknown operator or team, snooze without a time). */
export class ChangeRejected extends Schema.TaggedError<ChangeRejected>()(
  "ChangeRejected",
  { field: Schema.String, message: Schema.String },
  HttpApiSchema.annotations({ status: 422, description: "The change names something unknown." }),
) {}

export class ShortCodeTaken extends Schema.TaggedError<ShortCodeTaken>()(
  "ShortCodeTaken",
  { shortCode: Schema.String, message: Schema.String },
  HttpApiSchema.annotations({ status: 409, description: "That short code is in use." }),
) {}

export class CannedResponseNotFound extends Schema.TaggedError<CannedResponseNotFound>()(
  "CannedResponseNotFound",
  { id: Schema.String, message: Schema.String },
  HttpApiSchema.annotations({ status: 404 }),
) {}

const ConversationPath = Schema.Struct({ id: ConversationId })

export const InboxCounts = Schema.Struct({
  mine: Schema.Int,
  unassigned: Schema.Int,
  all: Schema.Int,
}).annotations({ identifier: "InboxCounts", description: "Open conversations per view." })

export class InboxApi extends HttpApiGroup.make("inbox")
  .add(
    HttpApiEndpoint.get("list", "/inbox/conversations")
      .setUrlParams(InboxListParams)
      .addSuccess(InboxList)
      .annotate(
        OpenApi.Summary,
        "The conversations the caller may see, most recently updated first, with contact " +
          "and last message; page with `cursor` = the previous `nextCursor`.",
      ),
  )
  .add(
    HttpApiEndpoint.get("counts", "/inbox/counts")
      .addSuccess(InboxCounts)
      .annotate(OpenApi.Summary, "Open conversations: mine, unassigned, all."),
  )
  .add(
    HttpApiEndpoint.get("contactConversations", "/contacts/:id/conversations")
      .setPath(Schema.Struct({ id: ContactId }))
      .addSuccess(Schema.Struct({ conversations: Schema.Array(Conversation) }))
      .addError(ContactNotFound)
      .annotate(OpenApi.Summary, "A contact's conversations (that the caller may see)."),
  )
  .add(
    HttpApiEndpoint.get("operators", "/operators")
      .addSuccess(Schema.Struct({ operators: Schema.Array(OperatorLoad) }))
      .annotate(OpenApi.Summary, "Everyone who works in the inbox, with presence and load."),
  )
  .add(
    HttpApiEndpoint.get("teams", "/teams")
      .addSuccess(Schema.Struct({ teams: Schema.Array(Team) }))
      .annotate(OpenApi.Summary, "Teams, their members and the inboxes they own."),
  )
  .add(
    HttpApiEndpoint.get("cannedResponses", "/canned-responses")
      .addSuccess(Schema.Struct({ cannedResponses: Schema.Array(CannedResponse) }))
      .annotate(OpenApi.Summary, "Canned answers: everyone's and the caller's teams'."),
  )
  .add(
    HttpApiEndpoint.post("createCannedResponse", "/canned-responses")
      .setPayload(NewCannedResponse)
      .addSuccess(CannedResponse, { status: 201 })
      .addError(ShortCodeTaken)
      .addError(Forbidden)
      .annotate(
        OpenApi.Summary,
        "Save a canned answer (a team's: its members; everyone's: supervisors).",
      ),
  )
  .add(
    HttpApiEndpoint.del("deleteCannedResponse", "/canned-responses/:id")
      .setPath(Schema.Struct({ id: CannedResponseId }))
      .addSuccess(Schema.Void, { status: 204 })
      .addError(CannedResponseNotFound)
      .addError(Forbidden)
      .annotate(OpenApi.Summary, "Delete a canned answer."),
  )
  .middleware(Authentication)
  .annotate(OpenApi.Description, "The inbox: conversation lists, people, canned answers.") {}

export class ConversationActionsApi extends HttpApiGroup.make("conversationActions")
  .add(
    HttpApiEndpoint.post("status", "/conversations/:id/status")
      .setPath(ConversationPath)
      .setPayload(StatusChange)
      .addSuccess(Conversation)
      .addError(ConversationNotFound)
      .addError(ConversationClosed)
      .addError(ChangeRejected)
      .annotate(
        OpenApi.Summary,
        "Open, pending, snoozed (until `snoozedUntil`) or resolved. Resolved is final: the " +
          "customer's next message opens a new conversation.",
      ),
  )
  .add(
    HttpApiEndpoint.post("assignment", "/conversations/:id/assignment")
      .setPath(ConversationPath)
      .setPayload(AssignmentChange)
      .addSuccess(Conversation)
      .addError(ConversationNotFound)
      .addError(ConversationClosed)
      .addError(ChangeRejected)
      .annotate(
        OpenApi.Summary,
        "Assign to an operator, transfer to a team (its queue), or give back to the queue.",
      ),
  )
  .add(
    HttpApiEndpoint.post("note", "/conversations/:id/notes")
      .setPath(ConversationPath)
      .setPayload(NoteRequest)
      .addSuccess(Note, { status: 201 })
      .addError(ConversationNotFound)
      .addError(ConversationClosed)
      .addError(ChangeRejected)
      .annotate(
        OpenApi.Summary,
        "A private note (never sent to the customer); mentioned operators are notified.",
      ),
  )
  .add(
    HttpApiEndpoint.post("typing", "/conversations/:id/typing")
      .setPath(ConversationPath)
      .addSuccess(Schema.Void, { status: 204 })
      .addError(ConversationNotFound)
      .annotate(
        OpenApi.Summary,
        "I am typing: the customer sees it where their channel can show it (at most one every " +
          "two seconds is passed on; send while typing).",
      ),
  )
  .add(
    HttpApiEndpoint.post("read", "/conversations/:id/read")
      .setPath(ConversationPath)
      .setPayload(ReadMark)
      .addSuccess(Schema.Void, { status: 204 })
      .addError(ConversationNotFound)
      .annotate(OpenApi.Summary, "Seen up to `seq`: the unread count restarts from there."),
  )
  .middleware(Authentication)
  .annotate(OpenApi.Description, "What operators do to a conversation.") {}

export class SupervisionApi extends HttpApiGroup.make("supervision")
  .add(
    HttpApiEndpoint.get("queue", "/queue")
      .addSuccess(QueueView)
      .annotate(
        OpenApi.Summary,
        "Unassigned open conversations in order with their places per team, and every " +
          "operator's presence and load.",
      ),
  )
  .middleware(SupervisorAuthentication)
  .annotate(OpenApi.Description, "The queue and operators' loads (supervisors, admins).") {}
