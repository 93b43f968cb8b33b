/**
 * Reads the configuration: defaults < config file < `CHORUS_*` environment variables.
 *
 * A bad value stops start-up with a `ConfigError` that lists every problem with where it came
 * from (file key or env variable), the value given and what was expected.
 */
import * as NodeFs from "node:fs"
import * as NodePath from "node:path"
import { Data, Effect, Either, ParseResult, Schema } from "effect"
import { type ChorusConfig, ChorusConfigSchema, type Setting, settings } from "./ChorusConfig.ts"

export interface ConfigProblem {
  /** Dotted key, e.g. `http.port`. */
  readonly key: string
  /** `CHORUS_HTTP_PORT`, `chorus.config.json` or `default`. */
  readonly source: string
  readonly value: unknown
  readonly expected: string
}

export class ConfigError extends Data.TaggedError("ConfigError")<{
  readonly problems: ReadonlyArray<ConfigProblem>
}> {
  override get message() {
    const lines = this.problems.map((p) => {
      const where = p.source.startsWith("CHORUS_")
        ? `${p.source} (${p.key})`
        : `${p.key} in ${p.source}`
      const given = p.value === undefined ? "missing" : `got ${JSON.stringify(p.value)}`
      return `  - ${where}: ${given}, expected ${p.expected}`
    })
    return `Invalid configuration:\n${lines.join("\n")}`
  }
}

export interface LoadConfigOptions {
  /** Environment to read `CHORUS_*` from. Default: `process.env`. */
  readonly env?: Readonly<Record<string, string | undefined>>
  /** Explicit config file (an error if missing). Default: `$CHORUS_CONFIG` or `./chorus.config.json` if present. */
  readonly file?: string | undefined
  /** Directory relative paths are resolved against. Default: `process.cwd()`. */
  readonly cwd?: string
}

const settingByKey = new Map(settings.map((s) => [s.key, s]))

type Raw = { [key: string]: unknown }

const setPath = (target: Raw, key: string, value: unknown) => {
  const parts = key.split(".")
  let node = target
  for (const part of parts.slice(0, -1)) {
    const next = node[part]
    if (typeof next !== "object" || next === null || Array.isArray(next)) node[part] = {}
    node = node[part] as Raw
  }
  node[parts[parts.length - 1]!] = value
}

const envValue = (setting: Setting, raw: string): unknown => {
  const trimmed = raw.trim()
  if (setting.kind === "list") {
    return trimmed.split(",").map((s) => s.trim()).filter((s) => s !== "")
  }
  if (setting.kind === "boolean" && /^(true|false)$/i.test(trimmed)) {
    return trimmed.toLowerCase() === "true"
  }
  if (setting.kind === "number" && /^-?\d+(\.\d+)?$/.test(trimmed)) return Number(trimmed)
  // Leave a non-integer as the string it was, so the problem names the value given.
  return setting.kind === "integer" && /^-?\d+$/.test(trimmed) ? Number(trimmed) : trimmed
}

const readFile = (path: string, required: boolean) =>
  Effect.gen(function* () {
    if (!NodeFs.existsSync(path)) {
      if (!required) return { raw: {} as Raw, name: undefined }
      return yield* new ConfigError({
        problems: [{
          key: "(file)",
          source: path,
          value: undefined,
          expected: "an existing JSON file",
        }],
      })
    }
    const text = NodeFs.readFileSync(path, "utf8")
    const parsed = yield* Either.try({
      try: () => JSON.parse(text) as unknown,
      catch: (e) =>
        new ConfigError({
          problems: [{
            key: "(file)",
            source: path,
            value: (e as Error).message,
            expected: "valid JSON",
          }],
        }),
    })
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
      return yield* new ConfigError({
        problems: [{ key: "(file)", source: path, value: parsed, expected: "a JSON object" }],
      })
    }
    return { raw: parsed as Raw, name: NodePath.basename(path) }
  })

/** Decode an already-merged raw config; `sources` says where each key's value came from. */
export const decodeConfig = (
  raw: unknown,
  sources: ReadonlyMap<string, string> = new Map(),
): Either.Either<ChorusConfig, ConfigError> =>
  Schema.decodeUnknownEither(ChorusConfigSchema, { onExcessProperty: "error", errors: "all" })(raw)
    .pipe(
      Either.mapLeft((error) => {
        // Optional-with-default fields decode as unions, so one bad value yields an issue per
        // branch plus one on its parent object: keep one issue per key, the deepest only.
        const all = ParseResult.ArrayFormatter.formatErrorSync(error)
        const keys = all.map((i) => i.path.map(String).join("."))
        const seen = new Set<string>()
        const issues = all.filter((_, n) => {
          const key = keys[n]!
          if (seen.has(key) || keys.some((k) => k.startsWith(`${key}.`))) return false
          seen.add(key)
          return true
        })
        const problems = issues.map((issue): ConfigProblem => {
          const key = issue.path.map(String).join(".")
          const setting = settingByKey.get(key)
          const value = issue.path.reduce<unknown>(
            (node, part) =>
              typeof node === "object" && node !== null ? (node as Raw)[String(part)] : undefined,
            raw,
          )
          if (issue._tag === "Unexpected") {
            return {
              key,
              source: sources.get(key) ?? "the config file",
              value,
              expected: `no such key (known keys: ${settings.map((s) => s.key).join(", ")})`,
            }
          }
          return {
            key,
            source: sources.get(key) ?? "the config file",
            value,
            expected: setting?.expected ?? issue.message,
          }
        })
        return new ConfigError({ problems })
      }),
    )

export const loadConfig = (
  options: LoadConfigOptions = {},
): Effect.Effect<ChorusConfig, ConfigError> =>
  Effect.gen(function* () {
    const env = options.env ?? process.env
    const cwd = options.cwd ?? process.cwd()
    const explicit = options.file ?? env["CHORUS_CONFIG"]
    const path = NodePath.resolve(cwd, explicit ?? "chorus.config.json")
    const file = yield* readFile(path, explicit !== undefined)
    const merged: Raw = structuredClone(file.raw)
    const sources = new Map<string, string>()
    const walk = (node: Raw, prefix: string) => {
      for (const [k, v] of Object.entries(node)) {
        const key = prefix ? `${prefix}.${k}` : k
        sources.set(key, file.name ?? path)
        if (typeof v === "object" && v !== null && !Array.isArray(v)) walk(v as Raw, key)
      }
    }
    walk(file.raw, "")
    for (const setting of settings) {
      const value = env[setting.env]
      if (value === undefined || value === "") continue
      setPath(merged, setting.key, envValue(setting, value))
      sources.set(setting.key, setting.env)
    }
    const config = yield* decodeConfig(merged, sources)
    // Relative paths are relative to where Chorus was started.
    return {
      ...config,
      dataDir: NodePath.resolve(cwd, config.dataDir),
      database: {
        ...config.database,
        ...(config.database.sqliteFile !== undefined && config.database.sqliteFile !== ":memory:"
          ? { sqliteFile: NodePath.resolve(cwd, config.database.sqliteFile) }
          : {}),
      },
      plugins: {
        ...config.plugins,
        dirs: config.plugins.dirs.map((d) => NodePath.resolve(cwd, d)),
      },
    }
  })

/**
 * Unknown `CHORUS_*` variables: probably typos; start-up warns about them. Plugin secrets
 * (`CHORUS_PLUGIN_<ID>_<NAME>`) are not settings and are not reported.
 */
export const unknownEnvVariables = (
  env: Readonly<Record<string, string | undefined>> = process.env,
): ReadonlyArray<string> => {
  // CHORUS_URL and CHORUS_TOKEN are the `chorus plugin …` client's (the server to call, as whom).
  const known = new Set([
    ...settings.map((s) => s.env),
    "CHORUS_CONFIG",
    "CHORUS_URL",
    "CHORUS_TOKEN",
  ])
  return Object.keys(env).filter((k) =>
    k.startsWith("CHORUS_") && !k.startsWith("CHORUS_PLUGIN_") && !known.has(k)
  )
}
