/**
 * The Profile API: one person across channels. Search contacts by phone, e-mail, external id or
 * name; read and edit a profile; list its identities and signals; its timeline across every
 * conversation and channel; merge, split (undo a merge), and the merge suggestions; import a
 * CRM export (CSV or JSON), which suggests and never merges.
 *
 * Visibility as everywhere (core/accounts/Access.ts): an operator reaches only contacts with a
 * conversation they may see; anything else answers 404. The import is for admins and API tokens.
 * Every change is published on the bus (`contact.updated`, `contact.merged`, `contact.split`,
 * `contact.suggestion_created`) for CRM connectors.
 */
import { HttpApiEndpoint, HttpApiGroup, HttpApiSchema, OpenApi } from "@effect/platform"
import { Schema } from "effect"
import { ContactId } from "../../schemas/Ids.ts"
import {
  ContactProfile,
  ContactProfileWithIdentities,
  CustomFields,
  IdentitySignal,
  ImportContact,
  ImportResult,
  MergeRecord,
  MergeSuggestion,
  SignalKind,
  SuggestionStatus,
  TimelinePage,
} from "../../schemas/Identity.ts"
import { Authentication, Forbidden } from "./Authentication.ts"
import { ContactNotFound } from "./ReadApi.ts"

/** Lost a race with another change, or the contacts' state does not allow it. */
export class ContactConflict extends Schema.TaggedError<ContactConflict>()(
  "ContactConflict",
  { message: Schema.String },
  HttpApiSchema.annotations({
    status: 409,
    description: "Another change won (reload and retry), or the contacts' state forbids it " +
      "(already merged, already split).",
  }),
) {}

export class MergeNotFound extends Schema.TaggedError<MergeNotFound>()(
  "MergeNotFound",
  { id: Schema.String, message: Schema.String },
  HttpApiSchema.annotations({ status: 404, description: "No merge has this id." }),
) {}

export class SuggestionNotFound extends Schema.TaggedError<SuggestionNotFound>()(
  "SuggestionNotFound",
  { id: Schema.String, message: Schema.String },
  HttpApiSchema.annotations({ status: 404, description: "No merge suggestion has this id." }),
) {}

export class SignalRejected extends Schema.TaggedError<SignalRejected>()(
  "SignalRejected",
  { message: Schema.String },
  HttpApiSchema.annotations({ status: 422, description: "Not a phone, e-mail or id." }),
) {}

const Limit = (max: number) =>
  Schema.optionalWith(
    Schema.NumberFromString.pipe(Schema.int(), Schema.between(1, max)),
    { exact: true },
  )

export const ContactSearchParams = Schema.Struct({
  phone: Schema.optionalWith(Schema.String.pipe(Schema.minLength(3)), { exact: true }),
  email: Schema.optionalWith(Schema.String.pipe(Schema.minLength(3)), { exact: true }),
  externalId: Schema.optionalWith(Schema.String.pipe(Schema.minLength(1)), { exact: true }),
  /** A prefix of the name, any case. */
  name: Schema.optionalWith(Schema.String.pipe(Schema.minLength(1)), { exact: true }),
  limit: Limit(100),
}).annotations({ identifier: "ContactSearchParams" })

export const ContactUpdate = Schema.Struct({
  name: Schema.optionalWith(Schema.NullOr(Schema.String.pipe(Schema.maxLength(500))), {
    exact: true,
  }),
  /** Merged into the stored fields; a key set to null is removed. */
  custom: Schema.optionalWith(CustomFields, { exact: true }),
  /** The `version` you read; another change since then answers 409. */
  expectedVersion: Schema.optionalWith(Schema.Int, { exact: true }),
}).annotations({ identifier: "ContactUpdate" })

export const NewSignals = Schema.Struct({
  signals: Schema.Array(Schema.Struct({
    kind: SignalKind,
    value: Schema.String.pipe(Schema.minLength(1), Schema.maxLength(400)),
    /**
     * API tokens only: the value is proven (a signed widget id, an e-mail your system
     * verified). Default false: claimed. Operators' signals are always claimed.
     */
    verified: Schema.optionalWith(Schema.Boolean, { default: () => false }),
  })).pipe(Schema.minItems(1), Schema.maxItems(50)),
}).annotations({ identifier: "NewSignals" })

export const SignalsOutcome = Schema.Struct({
  contact: ContactProfile,
  merges: Schema.Array(MergeRecord),
  suggestions: Schema.Array(MergeSuggestion),
}).annotations({ identifier: "SignalsOutcome" })

export const MergeRequest = Schema.Struct({
  /** The contact that remains. */
  targetId: ContactId,
  /** The contact merged into it. */
  sourceId: ContactId,
  reason: Schema.String.pipe(Schema.minLength(1), Schema.maxLength(1000)),
  /** The versions you read; another change since then answers 409. */
  expectedVersions: Schema.optionalWith(
    Schema.Struct({
      target: Schema.optionalWith(Schema.Int, { exact: true }),
      source: Schema.optionalWith(Schema.Int, { exact: true }),
    }),
    { exact: true },
  ),
}).annotations({ identifier: "MergeRequest" })

export const SplitRequest = Schema.Struct({
  reason: Schema.String.pipe(Schema.minLength(1), Schema.maxLength(1000)),
}).annotations({ identifier: "SplitRequest" })

export const SuggestionParams = Schema.Struct({
  contactId: Schema.optionalWith(ContactId, { exact: true }),
  status: Schema.optionalWith(SuggestionStatus, { exact: true }),
  /** The last id of the previous page. */
  after: Schema.optionalWith(Schema.String, { exact: true }),
  limit: Limit(200),
}).annotations({ identifier: "SuggestionParams" })

export const AcceptSuggestion = Schema.Struct({
  /** Which of the two remains. Default: the suggestion's `contactA`. */
  targetId: Schema.optionalWith(ContactId, { exact: true }),
}).annotations({ identifier: "AcceptSuggestion" })

export const TimelineParams = Schema.Struct({
  cursor: Schema.optionalWith(Schema.String, { exact: true }),
  limit: Limit(200),
}).annotations({ identifier: "TimelineParams" })

export const ImportRequest = Schema.Union(
  Schema.Struct({
    format: Schema.Literal("json"),
    contacts: Schema.Array(ImportContact).pipe(Schema.maxItems(100_000)),
    /** ISO country for national phone numbers (`DE`, `RU`). */
    defaultCountry: Schema.optionalWith(Schema.String.pipe(Schema.length(2)), { exact: true }),
  }),
  Schema.Struct({
    format: Schema.Literal("csv"),
    /** The CSV text, header first (see docs/identity.md for the columns). */
    csv: Schema.String.pipe(Schema.maxLength(50_000_000)),
    defaultCountry: Schema.optionalWith(Schema.String.pipe(Schema.length(2)), { exact: true }),
  }),
).annotations({ identifier: "ImportRequest" })

export const ConversationModeBody = Schema.Struct({
  mode: Schema.Literal("per_contact", "per_channel"),
}).annotations({ identifier: "ConversationMode" })

const ContactPath = Schema.Struct({ id: ContactId })
const IdPath = Schema.Struct({ id: Schema.String.pipe(Schema.minLength(1), Schema.maxLength(80)) })

export class ProfileApi extends HttpApiGroup.make("profiles")
  .add(
    HttpApiEndpoint.get("search", "/contacts")
      .setUrlParams(ContactSearchParams)
      .addSuccess(Schema.Struct({ contacts: Schema.Array(ContactProfile) }))
      .addError(SignalRejected)
      .annotate(
        OpenApi.Summary,
        "Find contacts by exactly one of: phone (any format; matched in E.164), email, " +
          "externalId (a provider's or CRM's id), name (a prefix, any case).",
      ),
  )
  .add(
    HttpApiEndpoint.get("suggestions", "/contacts/suggestions")
      .setUrlParams(SuggestionParams)
      .addSuccess(Schema.Struct({ suggestions: Schema.Array(MergeSuggestion) }))
      .annotate(
        OpenApi.Summary,
        "Merge suggestions (default: open), oldest first, each with its evidence; page with " +
          "`after` = the last id.",
      ),
  )
  .add(
    HttpApiEndpoint.post("accept", "/contacts/suggestions/:id/accept")
      .setPath(IdPath)
      .setPayload(AcceptSuggestion)
      .addSuccess(Schema.Struct({ suggestion: MergeSuggestion, merge: MergeRecord }))
      .addError(SuggestionNotFound)
      .addError(ContactConflict)
      .annotate(OpenApi.Summary, "Accept a suggestion: merge the two contacts."),
  )
  .add(
    HttpApiEndpoint.post("reject", "/contacts/suggestions/:id/reject")
      .setPath(IdPath)
      .addSuccess(Schema.Struct({ suggestion: MergeSuggestion }))
      .addError(SuggestionNotFound)
      .addError(ContactConflict)
      .annotate(OpenApi.Summary, "Reject a suggestion: the pair is not suggested again."),
  )
  .add(
    HttpApiEndpoint.post("merge", "/contacts/merge")
      .setPayload(MergeRequest)
      .addSuccess(MergeRecord)
      .addError(ContactNotFound)
      .addError(ContactConflict)
      .annotate(
        OpenApi.Summary,
        "Merge `sourceId` into `targetId`: identities, signals and conversations move; the " +
          "record keeps what moved, so a split undoes it.",
      ),
  )
  .add(
    HttpApiEndpoint.post("split", "/contacts/merges/:id/split")
      .setPath(IdPath)
      .setPayload(SplitRequest)
      .addSuccess(MergeRecord)
      .addError(MergeNotFound)
      .addError(ContactConflict)
      .annotate(
        OpenApi.Summary,
        "Undo a merge: the merged contact comes back with its identities, signals and " +
          "conversations; the survivor's name and custom fields return to before the merge.",
      ),
  )
  .add(
    HttpApiEndpoint.post("import", "/contacts/import")
      .setPayload(ImportRequest)
      .addSuccess(ImportResult)
      .addError(Forbidden)
      .annotate(
        OpenApi.Summary,
        "Import a CRM export (CSV or JSON). Phones and e-mails become claimed signals; matches " +
          "become suggestions, never merges. Re-importing the same ids updates.",
      ),
  )
  .add(
    HttpApiEndpoint.get("profile", "/contacts/:id/profile")
      .setPath(ContactPath)
      .addSuccess(ContactProfileWithIdentities)
      .addError(ContactNotFound)
      .annotate(
        OpenApi.Summary,
        "A contact's profile: name, phones and e-mails with their trust, custom fields, " +
          "version, identities.",
      ),
  )
  .add(
    HttpApiEndpoint.patch("update", "/contacts/:id")
      .setPath(ContactPath)
      .setPayload(ContactUpdate)
      .addSuccess(ContactProfile)
      .addError(ContactNotFound)
      .addError(ContactConflict)
      .annotate(OpenApi.Summary, "Edit name and custom fields (optionally compare-and-set)."),
  )
  .add(
    HttpApiEndpoint.get("signals", "/contacts/:id/signals")
      .setPath(ContactPath)
      .addSuccess(Schema.Struct({ signals: Schema.Array(IdentitySignal) }))
      .addError(ContactNotFound)
      .annotate(OpenApi.Summary, "Every signal: kind, value, source, verified or claimed."),
  )
  .add(
    HttpApiEndpoint.post("addSignals", "/contacts/:id/signals")
      .setPath(ContactPath)
      .setPayload(NewSignals)
      .addSuccess(SignalsOutcome)
      .addError(ContactNotFound)
      .addError(SignalRejected)
      .annotate(
        OpenApi.Summary,
        "Add phones, e-mails or ids. A verified one (API tokens) equal to another contact's " +
          "verified one merges them; any other match becomes a suggestion.",
      ),
  )
  .add(
    HttpApiEndpoint.get("timeline", "/contacts/:id/timeline")
      .setPath(ContactPath)
      .setUrlParams(TimelineParams)
      .addSuccess(TimelinePage)
      .addError(ContactNotFound)
      .annotate(
        OpenApi.Summary,
        "The contact's messages across all its conversations and channels, newest first; " +
          "page with `cursor` = the previous `nextCursor`.",
      ),
  )
  .add(
    HttpApiEndpoint.get("merges", "/contacts/:id/merges")
      .setPath(ContactPath)
      .addSuccess(Schema.Struct({ merges: Schema.Array(MergeRecord) }))
      .addError(ContactNotFound)
      .annotate(OpenApi.Summary, "Merges into or out of the contact, newest first."),
  )
  .add(
    HttpApiEndpoint.put("conversationMode", "/inboxes/:channel/:account/conversation-mode")
      .setPath(Schema.Struct({
        channel: Schema.String.pipe(Schema.minLength(1), Schema.maxLength(64)),
        /** An account, or `*` for every account of the channel. */
        account: Schema.String.pipe(Schema.minLength(1), Schema.maxLength(200)),
      }))
      .setPayload(ConversationModeBody)
      .addSuccess(ConversationModeBody)
      .addError(Forbidden)
      .annotate(
        OpenApi.Summary,
        "How an inbox keeps conversations (admins): `per_contact` (default; one open " +
          "conversation per contact across channels) or `per_channel` (one per contact here).",
      ),
  )
  .middleware(Authentication)
  .annotate(
    OpenApi.Description,
    "Profiles: one person across channels, merging and splitting, CRM import.",
  ) {}
