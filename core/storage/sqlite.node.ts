/**
 * Opens a better-sqlite3 database. Under `npm start` the addon comes from node_modules; inside
 * the single binary it is extracted from the executable's assets (see scripts/build-binary.mjs).
 */
import BetterSqlite3 from "better-sqlite3"
import { nativeBindingPath } from "./nativeAddon.node.ts"

export type SqliteDatabase = BetterSqlite3.Database

export const openSqlite = (file: string): SqliteDatabase => {
  const nativeBinding = nativeBindingPath()
  return nativeBinding === undefined
    ? new BetterSqlite3(file)
    : new BetterSqlite3(file, { nativeBinding })
}
