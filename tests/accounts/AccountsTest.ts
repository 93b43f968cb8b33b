/**
 * Support for the accounts tests: the services over a fresh database (SQLite or a PostgreSQL
 * schema of its own), with a cheap scrypt cost so sign-ins stay quick.
 */
import { Context, Effect, Exit, Layer, type Scope } from "effect"
import {
  accountsLayer,
  type AccountsOptions,
  LoginThrottle,
  Operators,
  Sessions,
  Teams,
} from "../../core/accounts/mod.ts"
import { Database, type DatabaseShape } from "../../core/storage/Database.ts"
import { postgresDatabase, sqliteDatabase } from "../support/TestDatabase.ts"

export type OpenDatabase = () => Effect.Effect<DatabaseShape, unknown, Scope.Scope>

/** Each suite runs once per store. */
export const stores: ReadonlyArray<readonly [string, OpenDatabase]> = [
  ["SQLite", () => sqliteDatabase()],
  ["PostgreSQL", () => postgresDatabase("acc")],
]

/** The accounts services over `db` (a second call over one db is another "process"). */
export const accountsOver = (db: DatabaseShape, options: AccountsOptions = {}) =>
  Effect.gen(function* () {
    const context = yield* Layer.build(
      accountsLayer({ passwords: { N: 1024 }, ...options }).pipe(
        Layer.provide(Layer.succeed(Database, db)),
      ),
    )
    return {
      db,
      operators: Context.get(context, Operators),
      teams: Context.get(context, Teams),
      sessions: Context.get(context, Sessions),
      throttle: Context.get(context, LoginThrottle),
    }
  })

/** The accounts services over a fresh database. */
export const openAccounts = (database: OpenDatabase, options: AccountsOptions = {}) =>
  Effect.flatMap(database(), (db) => accountsOver(db, options))

/** The tag of the error `effect` fails with, or "no failure". */
export const failureTag = <A, E extends { _tag: string }, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.exit(effect).pipe(
    Effect.map((exit) =>
      Exit.isFailure(exit) && exit.cause._tag === "Fail" ? exit.cause.error._tag : "no failure"
    ),
  )

/** The error `effect` fails with (a test failure if it succeeds). */
export const failure = <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.flip(effect)

export const PASSWORD = "correct horse battery"
