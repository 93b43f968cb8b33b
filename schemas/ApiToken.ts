/**
 * API bearer tokens as the API and the CLI show them: never the secret, only its id, name and
 * a short non-secret prefix to recognise it by.
 */
import { Schema } from "effect"
import { Timestamp } from "./Common.ts"
import { ApiTokenId } from "./Ids.ts"

/** What a token is for, unique among active tokens: `crm-sync`, `Grafana`, `ci bot`. */
export const ApiTokenName = Schema.String.pipe(
  Schema.pattern(/^[A-Za-z0-9][A-Za-z0-9 ._:@-]{0,63}$/, {
    message: () =>
      "expected a token name: a letter or digit, then letters, digits, spaces or . _ : @ - (at most 64)",
  }),
).annotations({ identifier: "ApiTokenName" })

export const ApiTokenInfo = Schema.Struct({
  id: ApiTokenId,
  name: ApiTokenName,
  /** The token's first characters (`chorus_Ab3dE9xQ`), enough to tell tokens apart in a list. */
  prefix: Schema.String,
  createdAt: Timestamp,
  /** Updated at most about once a minute, so it is approximate. */
  lastUsedAt: Schema.NullOr(Timestamp),
  revokedAt: Schema.NullOr(Timestamp),
}).annotations({ identifier: "ApiTokenInfo", description: "An API token, without its secret." })
export type ApiTokenInfo = typeof ApiTokenInfo.Type
