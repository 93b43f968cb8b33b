/**
 * A plugin's own migrations (`contributes.migrations`): a directory of SQL files run by the host
 * before the plugin's code, in name order, each once, recorded in the plugin's own migration
 * table `chorus_plugin_<id>_migrations` (so plugins migrate independently of the core and of
 * each other, and a reload runs only what is new).
 *
 * - `0001_offsets.sql` runs on both databases; `0002_x.sqlite.sql` and `0002_x.postgres.sql`
 *   each only on theirs (a migration may come as one of each).
 * - One file is one transaction on PostgreSQL; statements are separated by `;`.
 * - Every table, index and reference a statement names must be one of the plugin's declared
 *   tables (`permissions.storage.tables`, all `plugin_<id>_…`); indexes must be named
 *   `plugin_<id>_…`. This is a guardrail checked on the SQL text, like the query guard of the
 *   host API: it keeps honest mistakes out, it is not a sandbox for hostile SQL (run untrusted
 *   plugins with their own database user if that matters).
 */
import * as NodeFs from "node:fs"
import * as NodePath from "node:path"
import { Data, Effect } from "effect"
import { type Migration, sql } from "kysely"
import { tablePrefixOf } from "../../schemas/PluginManifest.ts"
import type { DatabaseShape } from "../storage/Database.ts"
import { migrate, pluginMigrationTable } from "../storage/Migrations.ts"

export class PluginMigrationRefused extends Data.TaggedError("PluginMigrationRefused")<{
  readonly plugin: string
  readonly file: string
  readonly reason: string
}> {
  override get message() {
    return `migration ${this.file} of plugin ${this.plugin} refused: ${this.reason}`
  }
}

/** Split SQL into statements at top-level `;` (not in quotes or comments). */
export const splitStatements = (text: string): Array<string> => {
  const out: Array<string> = []
  let current = ""
  let i = 0
  while (i < text.length) {
    const c = text[i]!
    const next = text[i + 1]
    if (c === "-" && next === "-") {
      const end = text.indexOf("\n", i)
      i = end < 0 ? text.length : end + 1
      current += " "
      continue
    }
    if (c === "/" && next === "*") {
      const end = text.indexOf("*/", i + 2)
      i = end < 0 ? text.length : end + 2
      current += " "
      continue
    }
    if (c === "'" || c === '"') {
      let j = i + 1
      while (j < text.length) {
        if (text[j] === c && text[j + 1] === c) j += 2
        else if (text[j] === c) break
        else j++
      }
      current += text.slice(i, j + 1)
      i = j + 1
      continue
    }
    if (c === ";") {
      if (current.trim() !== "") out.push(current.trim())
      current = ""
      i++
      continue
    }
    current += c
    i++
  }
  if (current.trim() !== "") out.push(current.trim())
  return out
}

const identifier = String.raw`(?:"([^"]+)"|([A-Za-z_][A-Za-z0-9_$]*))`
const IF = String.raw`(?:IF\s+(?:NOT\s+)?EXISTS\s+)?`
const nameAt = (pattern: string) => new RegExp(pattern, "gi")
/** Where a statement names a table, and where it names an index. */
const TABLE_PATTERNS = [
  nameAt(String.raw`\bTABLE\s+${IF}${identifier}(\s*\.\s*${identifier})?`),
  nameAt(
    String.raw`\b(?:INTO|UPDATE|FROM|JOIN|REFERENCES)\s+${identifier}(\s*\.\s*${identifier})?`,
  ),
  nameAt(String.raw`\bON\s+${identifier}(\s*\.\s*${identifier})?\s*\(`),
]
const INDEX_PATTERN = nameAt(String.raw`\bINDEX\s+(?:CONCURRENTLY\s+)?${IF}${identifier}`)

/** What in `statement` is not the plugin's: undeclared tables, foreign index names, schemas. */
export const statementProblems = (
  plugin: string,
  tables: ReadonlyArray<string>,
  statement: string,
): Array<string> => {
  const problems: Array<string> = []
  const declared = new Set(tables)
  for (const pattern of TABLE_PATTERNS) {
    for (const m of statement.matchAll(pattern)) {
      if (m[3] !== undefined) {
        problems.push(`names a schema-qualified table (${m[0].trim()}); use the bare table name`)
        continue
      }
      const name = m[1] ?? m[2]!
      if (!declared.has(name)) {
        problems.push(
          `names table ${name}, which is not in permissions.storage.tables (declared: ${
            tables.join(", ") || "none"
          })`,
        )
      }
    }
  }
  for (const m of statement.matchAll(INDEX_PATTERN)) {
    const name = m[1] ?? m[2]!
    if (name.toUpperCase() === "ON") continue // CREATE INDEX ON t (…): unnamed (PostgreSQL)
    if (!name.startsWith(tablePrefixOf(plugin))) {
      problems.push(`names index ${name}; a plugin's indexes are named ${tablePrefixOf(plugin)}…`)
    }
  }
  if (
    /\b(ATTACH|DETACH|PRAGMA|VACUUM|GRANT|REVOKE|COPY|SET\s+ROLE|SECURITY\s+DEFINER)\b/i.test(
      statement,
    )
  ) {
    problems.push("uses a statement a plugin migration may not (ATTACH, PRAGMA, GRANT, COPY, …)")
  }
  return problems
}

/** The migrations in `dir` that apply to `dialect`, checked, by name. */
export const loadMigrations = (
  plugin: string,
  tables: ReadonlyArray<string>,
  dir: string,
  dialect: "sqlite" | "postgres",
): Effect.Effect<Record<string, Migration>, PluginMigrationRefused> =>
  Effect.gen(function* () {
    const files = yield* Effect.try({
      try: () => NodeFs.readdirSync(dir).filter((f) => f.endsWith(".sql")).sort(),
      catch: (e) =>
        new PluginMigrationRefused({
          plugin,
          file: dir,
          reason: `cannot read the directory: ${(e as Error).message}`,
        }),
    })
    const migrations: Record<string, Migration> = {}
    for (const file of files) {
      const m = /^(.+?)(?:\.(sqlite|postgres))?\.sql$/.exec(file)!
      const name = m[1]!
      const only = m[2]
      if (only !== undefined && only !== dialect) continue
      if (migrations[name] !== undefined) {
        return yield* new PluginMigrationRefused({
          plugin,
          file,
          reason: `two files for migration ${name} on ${dialect}`,
        })
      }
      const text = NodeFs.readFileSync(NodePath.join(dir, file), "utf8")
      const statements = splitStatements(text)
      if (statements.length === 0) {
        return yield* new PluginMigrationRefused({ plugin, file, reason: "no SQL statement in it" })
      }
      for (const statement of statements) {
        const problems = statementProblems(plugin, tables, statement)
        if (problems.length > 0) {
          return yield* new PluginMigrationRefused({ plugin, file, reason: problems.join("; ") })
        }
      }
      migrations[name] = {
        up: async (db) => {
          for (const statement of statements) await sql.raw(statement).execute(db)
        },
      }
    }
    return migrations
  })

/** Run the plugin's pending migrations from `dir`; the names of those applied now. */
export const runPluginMigrations = (
  database: DatabaseShape,
  plugin: string,
  tables: ReadonlyArray<string>,
  dir: string,
) =>
  Effect.gen(function* () {
    const migrations = yield* loadMigrations(plugin, tables, dir, database.dialect)
    const report = yield* migrate(database, { table: pluginMigrationTable(plugin), migrations })
    return report.applied
  })
