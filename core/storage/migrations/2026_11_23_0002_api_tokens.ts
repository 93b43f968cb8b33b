/**
 * API bearer tokens (core/auth/ApiTokens.ts). Only a SHA-256 hash of each token is stored.
 *
 * Why SHA-256 and not a password hash (bcrypt, scrypt, argon2): a token is 32 random bytes
 * (256 bits) chosen by us, not a password chosen by a person, so there is no dictionary to try
 * and brute force over 2^256 is out of reach however fast the hash. A slow hash only protects
 * low-entropy secrets; here it would only make every API request slower. A stolen table still
 * yields no usable token.
 *
 * Times are epoch milliseconds in `bigint`, as in the other core tables.
 */
import { type Kysely, sql } from "kysely"

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable("api_tokens")
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("name", "text", (c) => c.notNull())
    // The token's first characters, shown in lists; not enough to use it (see ApiTokens.ts).
    .addColumn("prefix", "text", (c) => c.notNull())
    // Hex SHA-256 of the whole token.
    .addColumn("hash", "text", (c) => c.notNull().unique())
    .addColumn("created_at", "bigint", (c) => c.notNull())
    .addColumn("last_used_at", "bigint")
    .addColumn("revoked_at", "bigint")
    .execute()
  // A name names one active token; a revoked token's name can be reused. Partial indexes
  // exist on SQLite (3.8+) and PostgreSQL alike.
  await db.schema.createIndex("api_tokens_active_name").on("api_tokens").column("name")
    .unique().where(sql.ref("revoked_at"), "is", null).execute()
  // Verification looks a token up by its prefix, then compares hashes in constant time.
  await db.schema.createIndex("api_tokens_prefix").on("api_tokens").column("prefix").execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable("api_tokens").ifExists().execute()
}
