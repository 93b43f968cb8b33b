/**
 * The read API: conversations (filtered, cursor-paginated), a conversation's message history
 * (newest first, paginated by sequence) and contacts with their channel identities. Bodies are
 * the domain schemas from `schemas/`, encoded as on the bus.
 */
import { HttpApiEndpoint, HttpApiGroup, HttpApiSchema, OpenApi } from "@effect/platform"
import { Schema } from "effect"
import { ContactId, ConversationId } from "../../schemas/Ids.ts"
import {
  ContactWithIdentities,
  ConversationList,
  ConversationListParams,
  ConversationWithContact,
  MessageHistoryPage,
  MessageHistoryParams,
} from "../../schemas/ReadApi.ts"
import { Authentication } from "./Authentication.ts"

export class ConversationNotFound extends Schema.TaggedError<ConversationNotFound>()(
  "ConversationNotFound",
  { id: Schema.String, message: Schema.String },
  HttpApiSchema.annotations({ status: 404, description: "No conversation has this id." }),
) {}

export class ContactNotFound extends Schema.TaggedError<ContactNotFound>()(
  "ContactNotFound",
  { id: Schema.String, message: Schema.String },
  HttpApiSchema.annotations({ status: 404, description: "No contact has this id." }),
) {}

const ConversationPath = Schema.Struct({ id: ConversationId })

export class ConversationsApi extends HttpApiGroup.make("conversations")
  .add(
    HttpApiEndpoint.get("list", "/conversations")
      .setUrlParams(ConversationListParams)
      .addSuccess(ConversationList)
      .annotate(
        OpenApi.Summary,
        "Conversations, most recently updated first; filter by status, assignee (`none`: " +
          "unassigned) and last channel; page with `cursor` = the previous `nextCursor`.",
      ),
  )
  .add(
    HttpApiEndpoint.get("get", "/conversations/:id")
      .setPath(ConversationPath)
      .addSuccess(ConversationWithContact)
      .addError(ConversationNotFound)
      .annotate(OpenApi.Summary, "A conversation, with its contact."),
  )
  .add(
    HttpApiEndpoint.get("messages", "/conversations/:id/messages")
      .setPath(ConversationPath)
      .setUrlParams(MessageHistoryParams)
      .addSuccess(MessageHistoryPage)
      .addError(ConversationNotFound)
      .annotate(
        OpenApi.Summary,
        "A conversation's messages, newest first; page with `before` = the previous " +
          "`nextBefore`.",
      ),
  )
  .middleware(Authentication)
  .annotate(OpenApi.Description, "Conversations and their message history (read-only).") {}

export class ContactsApi extends HttpApiGroup.make("contacts")
  .add(
    HttpApiEndpoint.get("get", "/contacts/:id")
      .setPath(Schema.Struct({ id: ContactId }))
      .addSuccess(ContactWithIdentities)
      .addError(ContactNotFound)
      .annotate(OpenApi.Summary, "A contact, with every channel identity linked to it."),
  )
  .middleware(Authentication)
  .annotate(OpenApi.Description, "Contacts: one person across channels (read-only).") {}
