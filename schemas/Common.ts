/**
 * Small value schemas shared by the domain schemas: timestamps, e-mail addresses, phone
 * numbers, attachments and the channel route of a message.
 */
import { Schema } from "effect"
import { AccountId, AttachmentId, ChannelIdentityId, ChannelName } from "./Ids.ts"

const ISO_8601 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})$/

/**
 * A point in time: a `Date` in code, an ISO 8601 string with a time zone on the wire
 * (`2026-11-23T20:15:00.000Z`). Strings without a zone are refused: their meaning would depend
 * on the server's clock settings.
 */
export const Timestamp = Schema.compose(
  Schema.String.pipe(
    Schema.pattern(ISO_8601, {
      message: () => "expected an ISO 8601 date-time with a time zone, e.g. 2026-11-23T20:15:00Z",
    }),
  ),
  Schema.Date,
).annotations({
  identifier: "Timestamp",
  // Property tests: instants an ISO 8601 string with a four-digit year can carry.
  arbitrary: () => (fc) =>
    fc.date({ min: new Date(0), max: new Date("2199-12-31T23:59:59.999Z"), noInvalidDate: true }),
})

/** An e-mail address (a plausibility check, not RFC 5322). */
export const Email = Schema.String.pipe(
  Schema.pattern(/^[^\s@]+@[^\s@]+\.[^\s@]+$/, { message: () => "expected an e-mail address" }),
  Schema.maxLength(320),
).annotations({ identifier: "Email" })

/** A phone number in E.164 (`+79161234567`); channels normalise before publishing. */
export const Phone = Schema.String.pipe(
  Schema.pattern(/^\+[1-9]\d{6,14}$/, {
    message: () => "expected a phone number in E.164 form, e.g. +79161234567",
  }),
).annotations({ identifier: "Phone" })

const MimeType = Schema.String.pipe(
  Schema.pattern(/^[a-z0-9!#$&^_.+-]+\/[a-z0-9!#$&^_.+-]+(;.*)?$/i, {
    message: () => "expected a MIME type such as image/jpeg",
  }),
)

/** Where a file lives: a URL to fetch it from and/or a key in Chorus's file store. */
const fileFields = {
  name: Schema.String.pipe(Schema.minLength(1), Schema.maxLength(1024)),
  mimeType: MimeType,
  size: Schema.Int.pipe(Schema.nonNegative()).annotations({ description: "Bytes." }),
  url: Schema.optionalWith(Schema.URL, { exact: true }),
  storageKey: Schema.optionalWith(Schema.String.pipe(Schema.minLength(1)), { exact: true }),
}

const hasLocation = (
  a: { readonly url?: URL | undefined; readonly storageKey?: string | undefined },
) =>
  a.url !== undefined || a.storageKey !== undefined ||
  "expected a url or a storageKey (where the file can be read)"

/** A file attached to a stored message. */
export const Attachment = Schema.Struct({ id: AttachmentId, ...fileFields }).pipe(
  Schema.filter(hasLocation),
).annotations({ identifier: "Attachment" })
export type Attachment = typeof Attachment.Type

/** A file as a channel reports it, before Chorus has given it an id. */
export const InboundAttachment = Schema.Struct(fileFields).pipe(
  Schema.filter(hasLocation),
).annotations({ identifier: "InboundAttachment" })
export type InboundAttachment = typeof InboundAttachment.Type

/** A channel account and the customer's identity on it: where a reply goes. */
export const ChannelRoute = Schema.Struct({
  channel: ChannelName,
  account: AccountId,
  identityId: ChannelIdentityId,
}).annotations({ identifier: "ChannelRoute" })
export type ChannelRoute = typeof ChannelRoute.Type

export const MAX_PAYLOAD = 1024

/**
 * Machine-readable data that came with a customer's message: a pressed button's `payload`, a
 * Telegram `/start` deep link's parameter. Bots branch on it; the text stays what the customer
 * saw or typed.
 */
export const MessagePayload = Schema.String.pipe(
  Schema.minLength(1),
  Schema.maxLength(MAX_PAYLOAD),
).annotations({ identifier: "MessagePayload" })

/** A button under a reply: it sends `payload` back when pressed, or opens `url`. */
export const ReplyButton = Schema.Struct({
  text: Schema.String.pipe(Schema.minLength(1), Schema.maxLength(64)),
  /** Comes back as the customer's message's `payload` when pressed (at most 64 bytes). */
  payload: Schema.optionalWith(
    Schema.String.pipe(
      Schema.minLength(1),
      Schema.filter((p) =>
        new TextEncoder().encode(p).length <= 64 || "expected at most 64 bytes (Telegram's limit)"
      ),
    ),
    { exact: true },
  ),
  url: Schema.optionalWith(
    Schema.String.pipe(
      Schema.pattern(/^https?:\/\/\S+$/, { message: () => "expected an http(s) URL" }),
    ),
    { exact: true },
  ),
}).pipe(
  Schema.filter((b) =>
    (b.payload === undefined) !== (b.url === undefined) ||
    "expected exactly one of payload (a button that answers) or url (a link)"
  ),
).annotations({ identifier: "ReplyButton" })
export type ReplyButton = typeof ReplyButton.Type

/** Rows of buttons, as a chat shows them under a message (at most 10 rows of 8). */
export const ReplyButtons = Schema.Array(
  Schema.Array(ReplyButton).pipe(Schema.minItems(1), Schema.maxItems(8)),
)
  .pipe(Schema.minItems(1), Schema.maxItems(10))
  .annotations({ identifier: "ReplyButtons" })
export type ReplyButtons = typeof ReplyButtons.Type
