/**
 * `chorus plugin …`: operate the plugins of a running server through its HTTP API
 * (`list`, `enable`, `disable`, `reload`, with an API token), and start a new plugin from a
 * template (`new`, on the local disk).
 *
 *   chorus plugin list [--json]
 *   chorus plugin enable|disable|reload <id> [--json]
 *   chorus plugin new <name> --kind bot|channel|analytics [--dir plugins]
 *
 * The server is `--url`, else `$CHORUS_URL`, else `http://127.0.0.1:<http.port>` of the local
 * configuration; the token is `--token`, else `$CHORUS_TOKEN` (`chorus token create`).
 */
import * as NodeFs from "node:fs"
import * as NodePath from "node:path"
import { fileURLToPath } from "node:url"
import { Args, Command, Options } from "@effect/cli"
import { Console, Data, Effect, Either, Option, Schema } from "effect"
import { PluginList, PluginStatus } from "../../schemas/Plugins.ts"
import { loadConfig } from "../config/loadConfig.ts"
import { scaffold, scaffoldKinds } from "../plugins/sdk/Scaffold.ts"

/** The server could not be reached (not running, wrong URL). */
export class ServerUnreachable extends Data.TaggedError("ServerUnreachable")<{
  readonly url: string
  readonly reason: string
}> {
  override get message() {
    return `cannot reach the Chorus server at ${this.url} (${this.reason}); is it running? ` +
      "Point at it with --url or CHORUS_URL"
  }
}

/** The server answered with an error: its message, made readable. */
export class ApiRefused extends Data.TaggedError("ApiRefused")<{
  readonly status: number
  readonly message: string
}> {}

/** Something to tell the user (bad option, existing directory); exit 1. */
export class PluginCommandError extends Data.TaggedError("PluginCommandError")<{
  readonly message: string
}> {}

// ---------------------------------------------------------------------------------------------
// Options

const configFile = Options.file("config").pipe(
  Options.withAlias("c"),
  Options.withDescription(
    "Config file, for the default URL (default: $CHORUS_CONFIG or ./chorus.config.json if present)",
  ),
  Options.optional,
)

const urlOption = Options.text("url").pipe(
  Options.withDescription(
    "The server's base URL (default: $CHORUS_URL, else http://127.0.0.1:<http.port of the config>)",
  ),
  Options.optional,
)

const tokenOption = Options.text("token").pipe(
  Options.withDescription(
    "API token (default: $CHORUS_TOKEN); create one with `chorus token create`",
  ),
  Options.optional,
)

const jsonOption = Options.boolean("json").pipe(
  Options.withDescription("Print the server's answer as JSON"),
)

const idArg = Args.text({ name: "id" }).pipe(Args.withDescription("Plugin id"))

interface Target {
  readonly config: Option.Option<string>
  readonly url: Option.Option<string>
  readonly token: Option.Option<string>
}

const nonEmpty = (value: string | undefined) =>
  value === undefined || value === "" ? Option.none() : Option.some(value)

/** Where the server is: --url, $CHORUS_URL, or the local configuration's HTTP port. */
const serverUrl = (target: Target) =>
  Effect.gen(function* () {
    const given = Option.orElse(target.url, () => nonEmpty(process.env["CHORUS_URL"]))
    if (Option.isSome(given)) return given.value.replace(/\/+$/, "")
    const config = yield* loadConfig({ file: Option.getOrUndefined(target.config) }).pipe(
      Effect.mapError((e) => new PluginCommandError({ message: e.message })),
    )
    return `http://127.0.0.1:${config.http.port}`
  })

const apiToken = (target: Target) =>
  Option.orElse(target.token, () => nonEmpty(process.env["CHORUS_TOKEN"])).pipe(
    Option.match({
      onNone: () =>
        Effect.fail(
          new PluginCommandError({
            message: "no API token: pass --token or set CHORUS_TOKEN " +
              "(create one on the server with `chorus token create --name <name>`)",
          }),
        ),
      onSome: Effect.succeed,
    }),
  )

// ---------------------------------------------------------------------------------------------
// The plugins API

const errorMessage = (body: string): string | undefined => {
  try {
    const parsed = JSON.parse(body)
    return typeof parsed?.message === "string" ? parsed.message : undefined
  } catch {
    return undefined
  }
}

/** `method path` on the server with the token; the decoded body, or a readable error. */
const callApi = <A, I>(
  target: Target,
  method: "GET" | "POST",
  path: string,
  schema: Schema.Schema<A, I>,
) =>
  Effect.gen(function* () {
    const base = yield* serverUrl(target)
    const token = yield* apiToken(target)
    const url = `${base}/api/v1${path}`
    const response = yield* Effect.tryPromise({
      try: (signal) =>
        fetch(url, { method, headers: { authorization: `Bearer ${token}` }, signal }),
      catch: (e) =>
        new ServerUnreachable({
          url: base,
          reason: String((e as { cause?: { code?: string } }).cause?.code ?? e),
        }),
    }).pipe(
      Effect.timeoutFail({
        duration: "60 seconds",
        onTimeout: () => new ServerUnreachable({ url: base, reason: "no answer within 60 s" }),
      }),
    )
    const text = yield* Effect.tryPromise({
      try: () => response.text(),
      catch: (e) => new ServerUnreachable({ url: base, reason: String(e) }),
    })
    if (response.status === 401) {
      return yield* new ApiRefused({
        status: 401,
        message: `the server at ${base} refused the API token (401): pass a valid token with ` +
          "--token or CHORUS_TOKEN (`chorus token create --name <name>` on the server)",
      })
    }
    if (response.status === 404 && path !== "/plugins") {
      return yield* new ApiRefused({
        status: 404,
        message: `${errorMessage(text) ?? "not found"} on the server at ${base}`,
      })
    }
    if (response.status < 200 || response.status >= 300) {
      return yield* new ApiRefused({
        status: response.status,
        message: errorMessage(text) ??
          `the server at ${base} answered ${response.status} to ${method} ${url} ` +
            `(is it a Chorus server?): ${JSON.stringify(oneLine(text).slice(0, 120))}`,
      })
    }
    return yield* Schema.decodeUnknown(Schema.parseJson(schema))(text).pipe(
      Effect.mapError(() =>
        new ApiRefused({
          status: response.status,
          message: `the server at ${base} answered ${method} ${url} with an unexpected body ` +
            "(is it a Chorus server of this version?)",
        })
      ),
    )
  })

// ---------------------------------------------------------------------------------------------
// Output

const oneLine = (s: string) => s.replace(/\s*\n\s*/g, " ").trim()

const lastErrorOf = (p: PluginStatus): string =>
  p.lastError !== null
    ? oneLine(p.lastError.message)
    : p.problems.length > 0
    ? oneLine(p.problems.map((q) => `${q.path}: ${q.message}`).join("; "))
    : "-"

/** A plain-text table: one line per plugin, columns padded to their widest cell. */
export const pluginTable = (plugins: ReadonlyArray<PluginStatus>): string => {
  const rows = [
    ["ID", "VERSION", "MODE", "STATE", "RESTARTS", "LAST ERROR"],
    ...plugins.map((p) => [
      p.id,
      p.version ?? "-",
      p.mode,
      p.state,
      String(p.restarts),
      lastErrorOf(p),
    ]),
  ]
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)))
  return rows
    .map((r) =>
      r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!))).join("  ")
    )
    .join("\n")
}

const summary = (p: PluginStatus): string =>
  `${p.id}${p.version !== null ? ` ${p.version}` : ""}: ${p.state}` +
  (p.lastError !== null && p.state !== "active" ? ` (last error: ${lastErrorOf(p)})` : "")

/** One clear line on stderr and exit code 1 for what the user must act on. */
const orExit = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  effect.pipe(
    Effect.catchAll((error) =>
      Console.error(`chorus: ${error instanceof Error ? error.message : String(error)}`).pipe(
        Effect.zipRight(Effect.sync(() => process.exit(1))),
        Effect.zipRight(Effect.never),
      )
    ),
  )

// ---------------------------------------------------------------------------------------------
// Commands

const target = { config: configFile, url: urlOption, token: tokenOption }

const list = Command.make(
  "list",
  { ...target, json: jsonOption },
  ({ json, ...t }) =>
    orExit(
      callApi(t, "GET", "/plugins", PluginList).pipe(
        Effect.flatMap(({ plugins }) =>
          Console.log(
            json
              ? JSON.stringify(plugins, null, 2)
              : plugins.length === 0
              ? "no plugins (put one in a directory of plugins.dirs, e.g. ./plugins/<id>/)"
              : pluginTable(plugins),
          )
        ),
      ),
    ),
).pipe(
  Command.withDescription("List the server's plugins: version, mode, state, restarts, last error."),
)

const control = (action: "enable" | "disable" | "reload", description: string) =>
  Command.make(
    action,
    { ...target, json: jsonOption, id: idArg },
    ({ id, json, ...t }) =>
      orExit(
        callApi(t, "POST", `/plugins/${encodeURIComponent(id)}/${action}`, PluginStatus).pipe(
          Effect.flatMap((status) =>
            Console.log(json ? JSON.stringify(status, null, 2) : summary(status))
          ),
        ),
      ),
  ).pipe(Command.withDescription(description))

const TEST_KIT = "plugins/sdk/TestKit.ts"

/**
 * Chorus's `core/` directory, which a new plugin's test imports the test kit from: this CLI's
 * own checkout, else `./core`. `found` is false when neither has the test kit (the single
 * binary run outside a checkout): the test then needs its import fixed.
 */
const coreDir = (): { readonly dir: string; readonly found: boolean } => {
  const candidates = [
    NodePath.resolve(NodePath.dirname(fileURLToPath(import.meta.url)), ".."),
    NodePath.resolve("core"),
  ]
  const dir = candidates.find((d) => NodeFs.existsSync(NodePath.join(d, TEST_KIT)))
  return dir !== undefined ? { dir, found: true } : { dir: candidates[1]!, found: false }
}

const newPlugin = Command.make(
  "new",
  {
    name: Args.text({ name: "name" }).pipe(
      Args.withDescription("The plugin's id and directory name (e.g. echo)"),
    ),
    kind: Options.choice("kind", scaffoldKinds).pipe(
      Options.withDescription("bot (an echo bot), channel, or analytics (counts events)"),
    ),
    dir: Options.text("dir").pipe(
      Options.withDescription("Where to create it"),
      Options.withDefault("plugins"),
    ),
  },
  ({ dir, kind, name }) =>
    orExit(
      Effect.gen(function* () {
        const target = NodePath.resolve(dir, name)
        const kit = coreDir()
        const core = NodePath.relative(target, kit.dir).split(NodePath.sep).join("/")
        const files = yield* Either.mapLeft(
          scaffold({ name, kind, core }),
          (e) => new PluginCommandError({ message: e.message }),
        )
        if (NodeFs.existsSync(target)) {
          return yield* new PluginCommandError({
            message: `${NodePath.join(dir, name)} already exists; nothing was written ` +
              "(choose another name, or remove it first)",
          })
        }
        yield* Effect.try({
          try: () => {
            NodeFs.mkdirSync(target, { recursive: true })
            for (const file of files) {
              NodeFs.writeFileSync(NodePath.join(target, file.path), file.content, { flag: "wx" })
            }
          },
          catch: (e) =>
            new PluginCommandError({ message: `cannot write ${target}: ${(e as Error).message}` }),
        })
        const shown = NodePath.join(dir, name)
        // vitest finds plugins/**/*.test.mjs from the checkout; elsewhere it is pointed at the plugin.
        const inPlugins = NodePath.relative(NodePath.resolve("plugins"), target) === name
        const test = inPlugins ? `npx vitest run ${shown}` : `npx vitest run --root ${shown}`
        yield* Console.log(
          [
            `Created ${kind} plugin ${name} in ${shown}/:`,
            ...files.map((f) => `  ${NodePath.join(shown, f.path)}`),
            "",
            "Next:",
            `  ${test}`,
            "      run its test",
            "  npm start -- --dev",
            "      start Chorus (plugins from plugins.dirs); a plugin reloads when you save",
          ].join("\n"),
        )
        if (!kit.found) {
          yield* Console.error(
            `chorus: note: no Chorus checkout found here, so ${shown}/index.test.mjs imports the ` +
              `test kit from ${core}/${TEST_KIT}; point that import at your checkout's core/${TEST_KIT}`,
          )
        }
      }),
    ),
).pipe(
  Command.withDescription(
    "Create a working plugin from a template: manifest, code, README and test.",
  ),
)

export const pluginCommand = Command.make("plugin").pipe(
  Command.withDescription(
    "Plugins: list, enable, disable, reload on a running server (API token); new from a template.",
  ),
  Command.withSubcommands([
    list,
    control("enable", "Enable a plugin and start it (also after `failed`); kept across restarts."),
    control("disable", "Stop a plugin once its work in hand is done; kept across restarts."),
    control("reload", "Replace the running version by the files on disk, losing no message."),
    newPlugin,
  ]),
)
