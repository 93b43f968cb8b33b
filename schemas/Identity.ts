/**
 * The identity graph as the Profile API and the events show it: a contact's profile (names,
 * phones, e-mails with how sure we are of each, custom fields), the signals behind it, merge
 * suggestions with their evidence, and the record of every merge (and its split).
 */
import { Schema } from "effect"
import { Timestamp } from "./Common.ts"
import { ChannelIdentity } from "./Contact.ts"
import { ContactId } from "./Ids.ts"
import { Message } from "./Message.ts"

export const SignalKind = Schema.Literal("phone", "email", "external").annotations({
  identifier: "SignalKind",
  description: "What a signal identifies the person by.",
})
export type SignalKind = typeof SignalKind.Type

/**
 * `verified`: proven by the provider or a signature (WhatsApp's sender number, a phone shared
 * with Telegram's contact button, an e-mail that wrote to us, a signed widget or API id).
 * `claimed`: told to us (typed in, imported, entered by an operator). Only two verified signals
 * merge contacts automatically.
 */
export const SignalVerification = Schema.Literal("verified", "claimed").annotations({
  identifier: "SignalVerification",
})
export type SignalVerification = typeof SignalVerification.Type

const Id = Schema.String.pipe(Schema.minLength(1), Schema.maxLength(80))

export const IdentitySignal = Schema.Struct({
  id: Id,
  contactId: ContactId,
  kind: SignalKind,
  /** Normalised: E.164 phone, lower-cased e-mail, `channel:account:id` or `source:id`. */
  value: Schema.String,
  /** Where it came from: `whatsapp:sender`, `telegram:sender`, `api`, `operator`, `import`. */
  source: Schema.String,
  verification: SignalVerification,
  /** The channel identity that produced it, if any. */
  identityId: Schema.NullOr(Schema.String),
  firstSeenAt: Timestamp,
  lastSeenAt: Timestamp,
}).annotations({ identifier: "IdentitySignal" })
export type IdentitySignal = typeof IdentitySignal.Type

/** One phone or e-mail of a contact, with the strongest trust any of its signals gives it. */
export const ContactAttribute = Schema.Struct({
  value: Schema.String,
  verification: SignalVerification,
  sources: Schema.Array(Schema.String),
}).annotations({ identifier: "ContactAttribute" })
export type ContactAttribute = typeof ContactAttribute.Type

export const CustomFields = Schema.Record({ key: Schema.String, value: Schema.Unknown })
  .annotations({ identifier: "CustomFields", description: "Free-form fields (a CRM's)." })

export const ContactProfile = Schema.Struct({
  id: ContactId,
  name: Schema.NullOr(Schema.String),
  phones: Schema.Array(ContactAttribute),
  emails: Schema.Array(ContactAttribute),
  custom: CustomFields,
  /** Bumped by every change; pass it back as `expectedVersion` to change safely. */
  version: Schema.Int,
  /** Set when this contact was merged into another (its survivor). */
  mergedInto: Schema.NullOr(ContactId),
  createdAt: Timestamp,
  updatedAt: Timestamp,
}).annotations({ identifier: "ContactProfile" })
export type ContactProfile = typeof ContactProfile.Type

export const ContactProfileWithIdentities = Schema.Struct({
  ...ContactProfile.fields,
  identities: Schema.Array(ChannelIdentity),
}).annotations({ identifier: "ContactProfileWithIdentities" })

/** Why two contacts may be one person. */
export const MergeEvidence = Schema.Struct({
  /** `same_verified_phone`, `same_phone`, `same_email`, `same_external_id`, `same_name` … */
  rule: Schema.String,
  kind: Schema.Literal("phone", "email", "external", "name"),
  value: Schema.String,
  /** How each side knows it: `verified via whatsapp:sender`, `claimed via import`. */
  a: Schema.String,
  b: Schema.String,
}).annotations({ identifier: "MergeEvidence" })
export type MergeEvidence = typeof MergeEvidence.Type

export const SuggestionStatus = Schema.Literal("open", "accepted", "rejected")

export const MergeSuggestion = Schema.Struct({
  id: Id,
  contactA: ContactId,
  contactB: ContactId,
  evidence: Schema.Array(MergeEvidence),
  status: SuggestionStatus,
  createdAt: Timestamp,
  decidedAt: Schema.NullOr(Timestamp),
  decidedBy: Schema.NullOr(Schema.String),
}).annotations({ identifier: "MergeSuggestion" })
export type MergeSuggestion = typeof MergeSuggestion.Type

export const MergeKind = Schema.Literal("automatic", "manual", "suggestion")

export const MergeRecord = Schema.Struct({
  id: Id,
  /** The contact that remains. */
  targetId: ContactId,
  /** The contact merged into it (kept, pointing at the target, until a split). */
  sourceId: ContactId,
  kind: MergeKind,
  reason: Schema.String,
  /** `operator:<id>`, `token:<id>` or `system`. */
  mergedBy: Schema.String,
  evidence: Schema.Array(MergeEvidence),
  /** How many of each the merge moved to the target. */
  moved: Schema.Struct({
    identities: Schema.Int,
    signals: Schema.Int,
    conversations: Schema.Int,
  }),
  createdAt: Timestamp,
  splitAt: Schema.NullOr(Timestamp),
  splitBy: Schema.NullOr(Schema.String),
  splitReason: Schema.NullOr(Schema.String),
}).annotations({ identifier: "MergeRecord" })
export type MergeRecord = typeof MergeRecord.Type

/** The contact's messages across all its conversations and channels, newest first. */
export const TimelinePage = Schema.Struct({
  messages: Schema.Array(Message),
  /** Pass as `cursor` for the next (older) page; null when there is none. */
  nextCursor: Schema.NullOr(Schema.String),
}).annotations({ identifier: "TimelinePage" })
export type TimelinePage = typeof TimelinePage.Type

/** One contact of a CRM export. Phones and e-mails become claimed signals. */
export const ImportContact = Schema.Struct({
  /** The CRM's id: importing the same export again updates instead of duplicating. */
  externalId: Schema.optionalWith(Schema.String.pipe(Schema.minLength(1), Schema.maxLength(200)), {
    exact: true,
  }),
  name: Schema.optionalWith(Schema.String.pipe(Schema.maxLength(500)), { exact: true }),
  phones: Schema.optionalWith(Schema.Array(Schema.String).pipe(Schema.maxItems(20)), {
    exact: true,
  }),
  emails: Schema.optionalWith(Schema.Array(Schema.String).pipe(Schema.maxItems(20)), {
    exact: true,
  }),
  custom: Schema.optionalWith(CustomFields, { exact: true }),
}).annotations({ identifier: "ImportContact" })
export type ImportContact = typeof ImportContact.Type

export const ImportProblem = Schema.Struct({
  /** 1-based record (CSV: data line) number. */
  row: Schema.Int,
  reason: Schema.String,
})

export const ImportResult = Schema.Struct({
  created: Schema.Int,
  updated: Schema.Int,
  /** Records skipped, each with why (an invalid phone is dropped from its record, not fatal). */
  problems: Schema.Array(ImportProblem),
  /** Suggestions this import created (never merges). */
  suggestions: Schema.Int,
}).annotations({ identifier: "ImportResult" })
export type ImportResult = typeof ImportResult.Type
