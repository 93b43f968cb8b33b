/** Bodies of the attachments API: a stored file, and why one was refused. */
import { Schema } from "effect"

export const StoredFile = Schema.Struct({
  storageKey: Schema.String.annotations({
    description: "`sha256-<hex>` of the content: put it in a reply's attachments as `storageKey`.",
  }),
  name: Schema.String,
  mimeType: Schema.String.annotations({ description: "The type the content was checked as." }),
  size: Schema.Number,
}).annotations({ identifier: "StoredFile" })
