/**
 * Reads and checks a plugin's `chorus.plugin.json` before any of its code runs: JSON, the
 * `PluginManifest` schema (every problem at once, each with its path), the entry module present
 * in the directory, and `engines.chorus` admitting this host's API version. Anything wrong is
 * one `ManifestInvalid` listing every problem, so a plugin author fixes them in one go.
 */
import * as NodeFs from "node:fs"
import * as NodePath from "node:path"
import { Data, Effect, Either, ParseResult, Schema } from "effect"
import {
  crossChecks,
  MANIFEST_FILE,
  PluginManifest,
  rawCrossView,
} from "../../schemas/PluginManifest.ts"
import { parseRange, parseVersion, satisfies } from "../../schemas/Semver.ts"
import { HOST_API_VERSION } from "./HostApiVersion.ts"

export interface ManifestProblem {
  /** Where in the manifest: `permissions.net[2]`, `engines.chorus`; `(file)` for the file itself. */
  readonly path: string
  readonly message: string
}

/** The manifest cannot be used: every problem found, each with its path. Fix the file and reload. */
export class ManifestInvalid extends Data.TaggedError("ManifestInvalid")<{
  /** The manifest file. */
  readonly file: string
  readonly problems: ReadonlyArray<ManifestProblem>
}> {
  override get message() {
    const lines = this.problems.map((p) => `  - ${p.path}: ${p.message}`)
    return `Invalid plugin manifest ${this.file}:\n${lines.join("\n")}`
  }
}

/** A manifest that passed every check, with where it was found. */
export interface LoadedManifest {
  readonly manifest: PluginManifest
  /** The plugin's directory (absolute). */
  readonly dir: string
  /** The entry module (absolute). */
  readonly entry: string
}

/** `["permissions", "net", 2]` → `permissions.net[2]`. */
export const formatPath = (path: ReadonlyArray<PropertyKey>): string =>
  path.reduce<string>(
    (out, part) =>
      typeof part === "number"
        ? `${out}[${part}]`
        : out === ""
        ? String(part)
        : `${out}.${String(part)}`,
    "",
  ) || "(manifest)"

const decode = Schema.decodeUnknownEither(PluginManifest, {
  errors: "all",
  onExcessProperty: "error",
})

const problemsOf = (error: ParseResult.ParseError): ReadonlyArray<ManifestProblem> => {
  const all = ParseResult.ArrayFormatter.formatErrorSync(error)
  // Optional fields with defaults decode as unions, so one bad value also yields an issue on
  // each enclosing optional object ("Expected undefined"): keep the deepest issue only.
  const paths = all.map((i) => formatPath(i.path))
  const issues = all.filter((_, n) =>
    !paths.some((other) => other.startsWith(`${paths[n]}.`) || other.startsWith(`${paths[n]}[`))
  )
  // One problem per path; the "absent" branch of an optional field says nothing useful.
  const byPath = new Map<string, Array<string>>()
  for (const issue of issues) {
    const path = formatPath(issue.path)
    const message = issue._tag === "Unexpected"
      ? "unknown key (not part of the manifest; check its spelling)"
      : issue._tag === "Missing"
      ? "missing (required)"
      : issue.message
    const messages = byPath.get(path) ?? []
    if (!messages.includes(message)) messages.push(message)
    byPath.set(path, messages)
  }
  return [...byPath].map(([path, messages]) => {
    const useful = messages.filter((m) => !m.startsWith("Expected undefined"))
    return { path, message: (useful.length > 0 ? useful : messages).join("; or ") }
  })
}

/** The compatibility problem of `range` with the host API version, if any. */
export const engineProblem = (
  range: string,
  hostApiVersion: string = HOST_API_VERSION,
): ManifestProblem | undefined => {
  const parsed = parseRange(range)
  const version = parseVersion(hostApiVersion)
  if (parsed === undefined || version === undefined) return undefined
  return satisfies(version, parsed) ? undefined : {
    path: "engines.chorus",
    message: `this plugin needs host API ${range}, but this Chorus provides host API ` +
      `${hostApiVersion}; install a version of the plugin made for host API ${hostApiVersion}`,
  }
}

/**
 * Decode a manifest already parsed from JSON; `dir` (when given) is where the entry must exist.
 * Pure apart from the entry check.
 */
export const decodeManifest = (
  raw: unknown,
  options: { readonly file: string; readonly dir?: string; readonly hostApiVersion?: string },
): Either.Either<PluginManifest, ManifestInvalid> =>
  decode(raw).pipe(
    Either.mapLeft((error) => {
      // The schema checks fields against each other only once all are valid: do it on the raw
      // JSON here, so those problems come in the same round.
      const problems = [...problemsOf(error)]
      const view = rawCrossView(raw)
      for (const issue of view === undefined ? [] : crossChecks(view)) {
        const path = formatPath(issue.path)
        const taken = problems.some((p) =>
          p.path === path || path.startsWith(`${p.path}.`) || path.startsWith(`${p.path}[`)
        )
        if (!taken) problems.push({ path, message: issue.message })
      }
      // A plugin for another host API is worth knowing before fixing anything else.
      const range = (raw as { engines?: { chorus?: unknown } } | null)?.engines?.chorus
      const engine = typeof range === "string"
        ? engineProblem(range, options.hostApiVersion)
        : undefined
      if (engine !== undefined && !problems.some((p) => p.path === "engines.chorus")) {
        problems.push(engine)
      }
      return new ManifestInvalid({ file: options.file, problems })
    }),
    Either.flatMap((manifest) => {
      const problems: Array<ManifestProblem> = []
      const engine = engineProblem(manifest.engines.chorus, options.hostApiVersion)
      if (engine !== undefined) problems.push(engine)
      if (options.dir !== undefined) {
        const entry = NodePath.join(options.dir, manifest.entry)
        if (!NodeFs.existsSync(entry)) {
          problems.push({ path: "entry", message: `no such file: ${entry}` })
        }
        const migrations = manifest.contributes.migrations
        if (
          migrations !== undefined && !NodeFs.existsSync(NodePath.join(options.dir, migrations))
        ) {
          problems.push({
            path: "contributes.migrations",
            message: `no such directory: ${NodePath.join(options.dir, migrations)}`,
          })
        }
      }
      return problems.length === 0
        ? Either.right(manifest)
        : Either.left(new ManifestInvalid({ file: options.file, problems }))
    }),
  )

/** Read `<dir>/chorus.plugin.json` and check it. */
export const loadManifest = Effect.fn("Manifest.load")(function* (
  dir: string,
  options: { readonly hostApiVersion?: string } = {},
) {
  const absolute = NodePath.resolve(dir)
  const file = NodePath.join(absolute, MANIFEST_FILE)
  const fail = (message: string) =>
    Effect.fail(new ManifestInvalid({ file, problems: [{ path: "(file)", message }] }))
  const text = yield* Effect.try({
    try: () => NodeFs.readFileSync(file, "utf8"),
    catch: (e) => e as NodeJS.ErrnoException,
  }).pipe(
    Effect.catchAll((e) =>
      fail(e.code === "ENOENT" ? `no ${MANIFEST_FILE} in ${absolute}` : `cannot read: ${e.message}`)
    ),
  )
  const raw = yield* Either.try({
    try: () => JSON.parse(text) as unknown,
    catch: (e) => (e as Error).message,
  }).pipe(Effect.catchAll((reason) => fail(`not valid JSON: ${reason}`)))
  const manifest = yield* decodeManifest(raw, {
    file,
    dir: absolute,
    ...(options.hostApiVersion !== undefined ? { hostApiVersion: options.hostApiVersion } : {}),
  })
  return {
    manifest,
    dir: absolute,
    entry: NodePath.join(absolute, manifest.entry),
  } satisfies LoadedManifest
})
