/**
 * Opens a better-sqlite3 database. Under `npm start` the addon comes from node_modules; inside
 * the single binary it is extracted from the executable's assets next to the database (see
 * nativeAddon.node.ts and scripts/build-binary.mjs).
 */
import * as path from "node:path"
import BetterSqlite3 from "better-sqlite3"
import { Lru } from "../lru.ts"
import { nativeBinding } from "./nativeAddon.node.ts"

export type SqliteDatabase = BetterSqlite3.Database

/** The directory that holds the database file; undefined for in-memory databases and URIs. */
const databaseDir = (file: string): string | undefined => {
  const name = file.trim()
  return name === "" || name === ":memory:" || name.startsWith("file:")
    ? undefined
    : path.dirname(path.resolve(name))
}

export const openSqlite = (file: string): SqliteDatabase => {
  const addon = nativeBinding(databaseDir(file))
  if (addon === undefined) return new BetterSqlite3(file)
  // @types/better-sqlite3 7.6 types `nativeBinding` as a path only; v12 also takes the loaded
  // addon object (lib/database.js), which is what a SEA needs since its `require` cannot load it.
  return new BetterSqlite3(file, { nativeBinding: addon as unknown as string })
}

/**
 * The database as Kysely's SQLite dialect sees it, with prepared statements kept: Kysely asks
 * for `prepare(sql)` on every query, and preparing is a good part of a small query's cost. The
 * SQL text of a query shape is stable (values are parameters), so a bounded map of the most
 * recently used statements serves nearly every call. A statement still iterating (`busy`) is
 * never handed out twice: that call gets a fresh one.
 */
export const withStatementCache = (
  db: SqliteDatabase,
  options: {
    readonly capacity?: number
    /** Called before a statement that changes the database runs (see WalSync.node.ts). */
    readonly onWrite?: () => void
  } = {},
) => {
  const capacity = options.capacity ?? 512
  const onWrite = options.onWrite
  const statements = new Lru<string, BetterSqlite3.Statement>(capacity)
  return {
    close: () => {
      statements.clear()
      db.close()
    },
    prepare: (sql: string): BetterSqlite3.Statement => {
      const cached = statements.get(sql)
      const statement = cached !== undefined && !cached.busy ? cached : db.prepare(sql)
      if (cached === undefined) statements.set(sql, statement)
      // Kysely prepares each statement right before running it.
      if (onWrite !== undefined && !statement.readonly) onWrite()
      return statement
    },
  }
}
