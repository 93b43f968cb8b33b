/**
 * Queries built and compiled by Kysely once, then run with new values each time: for statements
 * that run per message inside a batch, where building Kysely's (immutable, frozen) operation tree
 * and compiling it anew on every call cost more than SQLite running the statement.
 *
 * `prepare` takes the names of the values and a builder that uses `param(name)` wherever a value
 * goes. It is compiled on first use for each SQL dialect (SQLite `?`, PostgreSQL `$1`), with a
 * marker in place of each value; running it puts the values where their markers were. Constants
 * in the builder (`"open"`, `null`) stay as compiled. Use it only for queries whose shape does
 * not depend on the values (no `in` lists of varying length).
 *
 * @example
 * const touch = prepare(["id", "now"], (db, param) =>
 *   db.updateTable("conversations").set({ updated_at: param("now") }).where("id", "=", param("id")))
 * const result = await touch.run(trx, { id, now: Date.now() })
 * Number(result.numAffectedRows) // rows updated
 */
import { type Compilable, CompiledQuery, type Kysely, type QueryResult } from "kysely"

const MARK = "\u0000chorus-param:"

export interface Prepared<P extends string> {
  readonly run: <DB>(
    db: Kysely<DB>,
    values: Readonly<Record<P, unknown>>,
  ) => Promise<QueryResult<unknown>>
}

type Slot<P> = { readonly name: P } | { readonly constant: unknown }

export const prepare = <P extends string, DB>(
  names: ReadonlyArray<P>,
  build: (db: Kysely<DB>, param: (name: P) => any) => Compilable<unknown>,
): Prepared<P> => {
  const known = new Set<string>(names)
  // One compilation per dialect: the adapter's class tells SQLite from PostgreSQL.
  const compiled = new Map<
    unknown,
    { readonly sql: string; readonly slots: ReadonlyArray<Slot<P>> }
  >()
  const compile = (db: Kysely<any>) => {
    const { sql, parameters } = build(db as Kysely<DB>, (name) => {
      if (!known.has(name)) throw new Error(`prepare: ${name} is not among the declared values`)
      return `${MARK}${name}`
    }).compile()
    const slots = parameters.map((p): Slot<P> =>
      typeof p === "string" && p.startsWith(MARK)
        ? { name: p.slice(MARK.length) as P }
        : { constant: p }
    )
    const used = new Set(slots.flatMap((s) => ("name" in s ? [s.name] : [])))
    const missing = names.filter((n) => !used.has(n))
    if (missing.length > 0) {
      throw new Error(`prepare: ${missing.join(", ")} never used in the query`)
    }
    return { sql, slots }
  }
  return {
    run: (db, values) => {
      const key = db.getExecutor().adapter.constructor
      let query = compiled.get(key)
      if (query === undefined) {
        query = compile(db)
        compiled.set(key, query)
      }
      const parameters = query.slots.map((s) => ("name" in s ? values[s.name] : s.constant))
      return db.executeQuery(CompiledQuery.raw(query.sql, parameters))
    },
  }
}
