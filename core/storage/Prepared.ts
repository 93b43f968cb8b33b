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

type Slot = { readonly name: string } | { readonly constant: unknown }

/** The adapter's class tells SQLite from PostgreSQL: one compilation per dialect. */
const dialectOf = (db: Kysely<any>): unknown => db.getExecutor().adapter.constructor

export const prepare = <P extends string, DB>(
  names: ReadonlyArray<P>,
  build: (db: Kysely<DB>, param: (name: P) => any) => Compilable<unknown>,
): Prepared<P> => {
  // A list query over no items: compiled once per dialect.
  const query = prepareList<P, never, DB>(names, [], (db, param) => build(db, param))
  return { run: (db, values) => query.run(db, values, []) }
}

export interface PreparedList<P extends string, I extends string> {
  readonly run: <DB>(
    db: Kysely<DB>,
    values: Readonly<Record<P, unknown>>,
    items: ReadonlyArray<Readonly<Record<I, unknown>>>,
  ) => Promise<QueryResult<unknown>>
}

/** Lists longer than this are compiled on each run: a batch that big amortizes the cost. */
const LIST_CACHE_MAX = 64

/**
 * `prepare` for a query over a list (a multi-row insert, an `in (…)`): compiled once per dialect
 * and list length, up to 64 items. `build` gets `param` for the values of the whole query and
 * one function per item for that item's values (`items[i]("id")`); `run` takes the values and the
 * list. An empty list is the caller's to avoid (`in ()` is not SQL).
 *
 * @example
 * const byIds = prepareList(["state"], ["id"], (db, param, items) =>
 *   db.selectFrom("messages").selectAll().where("delivery_state", "=", param("state"))
 *     .where("id", "in", items.map((item) => item("id"))))
 * await byIds.run(trx, { state: "queued" }, ids.map((id) => ({ id })))
 */
export const prepareList = <P extends string, I extends string, DB>(
  names: ReadonlyArray<P>,
  itemNames: ReadonlyArray<I>,
  build: (
    db: Kysely<DB>,
    param: (name: P) => any,
    items: ReadonlyArray<(name: I) => any>,
  ) => Compilable<unknown>,
): PreparedList<P, I> => {
  const known = new Set<string>(names)
  const param = (name: P): string => {
    if (!known.has(name)) throw new Error(`prepare: ${name} is not among the declared values`)
    return `${MARK}${name}`
  }
  const knownItem = new Set<string>(itemNames)
  const itemParam = (index: number) => (name: I): string => {
    if (!knownItem.has(name)) throw new Error(`prepare: ${name} is not among the item values`)
    return `${MARK}${index}\u0000${name}`
  }
  /** Compiled with a marker in place of each value; each marker says which value goes there. */
  const compile = (db: Kysely<any>, length: number) => {
    const { sql, parameters } = build(
      db as Kysely<DB>,
      param,
      Array.from({ length }, (_, i) => itemParam(i)),
    ).compile()
    const slots = parameters.map((p): Slot =>
      typeof p === "string" && p.startsWith(MARK) ? { name: p.slice(MARK.length) } : { constant: p }
    )
    const used = new Set(slots.flatMap((s) => ("name" in s ? [s.name] : [])))
    const declared = [
      ...names,
      ...Array.from({ length }, (_, i) => itemNames.map((n) => `${i}\u0000${n}`)).flat(),
    ]
    const missing = declared.filter((n) => !used.has(n))
    if (missing.length > 0) {
      throw new Error(`prepare: ${missing.join(", ")} never used in the query`)
    }
    // Where each value comes from: the query's values, or item i's.
    const from = slots.map((s) => {
      if (!("name" in s)) return s
      const at = s.name.indexOf("\u0000")
      return at < 0
        ? { name: s.name }
        : { item: Number(s.name.slice(0, at)), name: s.name.slice(at + 1) }
    })
    return { sql, from }
  }
  const compiled = new Map<unknown, Map<number, ReturnType<typeof compile>>>()
  return {
    run: (db, values, items) => {
      const key = dialectOf(db)
      let byLength = compiled.get(key)
      if (byLength === undefined) compiled.set(key, byLength = new Map())
      let query = byLength.get(items.length)
      if (query === undefined) {
        query = compile(db, items.length)
        if (items.length <= LIST_CACHE_MAX) byLength.set(items.length, query)
      }
      const parameters = query.from.map((s) =>
        "constant" in s
          ? s.constant
          : "item" in s
          ? items[s.item]![s.name as I]
          : values[s.name as P]
      )
      return db.executeQuery(CompiledQuery.raw(query.sql, parameters))
    },
  }
}
