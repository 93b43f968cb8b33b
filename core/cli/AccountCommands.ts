/**
 * `chorus user …` and `chorus team …`: the people who work in the inbox, from the command line
 * of the server's machine (the first admin, recovery when nobody can sign in). They work on the
 * database directly, like `chorus token`: migrations are applied first, so a fresh data dir
 * works, and no server needs to be running.
 *
 *   chorus user add --email E --name N [--role admin|supervisor|operator] [--capacity 6] [--password-stdin]
 *   chorus user list | passwd --email E [--password-stdin] | disable|enable|logout|totp-reset --email E
 *   chorus team add NAME | list
 *   chorus team member add|remove --team NAME --email E
 *   chorus team inbox add|remove --team NAME --inbox channel:account   (account may be *)
 *
 * Passwords are read from standard input with `--password-stdin` (scripts:
 * `printf %s "$PASSWORD" | chorus user add …`), otherwise asked twice on the terminal without
 * echo. They never appear in arguments, where `ps` and shell history would show them.
 */
import { Args, Command, Options, Prompt } from "@effect/cli"
import { Console, Data, Effect, Layer, Option, Redacted } from "effect"
import type { Operator, Team } from "../../schemas/Operator.ts"
import { ROLES } from "../../schemas/Operator.ts"
import { AccountsLive, checkPolicy, Operators, Sessions, Teams } from "../accounts/mod.ts"
import { StorageLive } from "../Chorus.ts"
import type { ChorusConfig } from "../config/ChorusConfig.ts"
import { loadConfig } from "../config/loadConfig.ts"
import * as Logging from "../logging/Logging.ts"

/** Something to tell the user; exit 1. */
export class AccountCommandError extends Data.TaggedError("AccountCommandError")<{
  readonly message: string
}> {}

const configFile = Options.file("config").pipe(
  Options.withAlias("c"),
  Options.withDescription(
    "Config file (default: $CHORUS_CONFIG or ./chorus.config.json if present)",
  ),
  Options.optional,
)

const emailOption = Options.text("email").pipe(Options.withDescription("The operator's e-mail"))
const teamOption = Options.text("team").pipe(Options.withDescription("The team's name"))
const passwordStdin = Options.boolean("password-stdin").pipe(
  Options.withDescription("Read the password from standard input (its first line)"),
)

/** One clear line on stderr and an exit code: 2 for a bad configuration, 1 for the rest. */
const exitWith = (code: number) => (error: unknown) =>
  Console.error(`chorus: ${error instanceof Error ? error.message : String(error)}`).pipe(
    Effect.zipRight(Effect.sync(() => process.exit(code))),
    Effect.zipRight(Effect.never),
  )

/** Run `use` with the accounts services over the configured store (migrated first). */
const withAccounts = <A, E, R>(
  file: Option.Option<string>,
  use: Effect.Effect<A, E, R | Operators | Teams | Sessions>,
) =>
  Effect.gen(function* () {
    const config: ChorusConfig = yield* loadConfig({ file: Option.getOrUndefined(file) }).pipe(
      Effect.catchTag("ConfigError", exitWith(2)),
    )
    return yield* use.pipe(
      Effect.provide(AccountsLive.pipe(Layer.provide(StorageLive(config)))),
      Effect.catchAll(exitWith(1)),
      // Only warnings and errors: the command's own output stays readable.
      Effect.provide(Logging.layer({ ...config.log, level: "warning" })),
    )
  })

/** The first line of standard input, without its line ending. */
const readStdinPassword = Effect.tryPromise({
  try: async () => {
    const chunks: Array<Buffer> = []
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer)
    return Buffer.concat(chunks).toString("utf8").split(/\r?\n/)[0] ?? ""
  },
  catch: (cause) => new AccountCommandError({ message: `cannot read standard input: ${cause}` }),
})

/**
 * Asked twice on the terminal without echo (`Prompt.hidden`: not even asterisks, which would
 * show its length, as `passwd` does); checked against the policy before the second question.
 */
const promptPassword = Effect.gen(function* () {
  if (process.stdin.isTTY !== true) {
    return yield* new AccountCommandError({
      message: "no terminal to ask for the password on: pipe it in with --password-stdin",
    })
  }
  const first = yield* Prompt.hidden({
    message: "Password",
    validate: (value) => {
      const weak = checkPolicy(value)
      return weak === undefined ? Effect.succeed(value) : Effect.fail(weak.message)
    },
  })
  const second = yield* Prompt.hidden({ message: "Password again" })
  if (Redacted.value(first) !== Redacted.value(second)) {
    return yield* new AccountCommandError({ message: "the two passwords differ" })
  }
  return Redacted.value(first)
})

const readPassword = (fromStdin: boolean) => (fromStdin ? readStdinPassword : promptPassword)

const operatorByEmail = (email: string) =>
  Effect.gen(function* () {
    const found = yield* (yield* Operators).byEmail(email)
    if (Option.isNone(found)) {
      return yield* new AccountCommandError({
        message: `no operator with the e-mail ${JSON.stringify(email)}`,
      })
    }
    return found.value
  })

const teamByName = (name: string) =>
  Effect.gen(function* () {
    const found = yield* (yield* Teams).byName(name)
    if (Option.isNone(found)) {
      return yield* new AccountCommandError({ message: `no team named ${JSON.stringify(name)}` })
    }
    return found.value
  })

const printOperator = (operator: Operator) => Console.log(JSON.stringify(operator))

// ---------------------------------------------------------------------------------------------
// chorus user

const userAdd = Command.make(
  "add",
  {
    config: configFile,
    email: emailOption,
    name: Options.text("name").pipe(Options.withDescription("The operator's display name")),
    role: Options.choice("role", ROLES).pipe(
      Options.withDescription("What they may do (default: operator)"),
      Options.withDefault("operator" as const),
    ),
    capacity: Options.integer("capacity").pipe(
      Options.withDescription("Conversations routing may give them at once (default: 6)"),
      Options.optional,
    ),
    passwordStdin,
  },
  ({ capacity, config, email, name, passwordStdin, role }) =>
    withAccounts(
      config,
      Effect.gen(function* () {
        const operators = yield* Operators
        // Fail on a taken e-mail before asking for a password.
        if (Option.isSome(yield* operators.byEmail(email))) {
          return yield* new AccountCommandError({
            message: `an operator with the e-mail ${
              JSON.stringify(email.trim().toLowerCase())
            } already exists`,
          })
        }
        const password = yield* readPassword(passwordStdin)
        const operator = yield* operators.add({
          email,
          name,
          role,
          password,
          capacity: Option.getOrUndefined(capacity),
        })
        yield* printOperator(operator)
      }),
    ),
).pipe(Command.withDescription("Add an operator (the first admin, for one) and print it as JSON."))

const userList = Command.make("list", { config: configFile }, ({ config }) =>
  withAccounts(
    config,
    Effect.gen(function* () {
      const operators = yield* (yield* Operators).list()
      for (const operator of operators) yield* printOperator(operator)
      if (operators.length === 0) yield* Console.error("no operators")
    }),
  )).pipe(
    Command.withDescription("List operators, one JSON object per line (never password hashes)."),
  )

const userPasswd = Command.make(
  "passwd",
  { config: configFile, email: emailOption, passwordStdin },
  ({ config, email, passwordStdin }) =>
    withAccounts(
      config,
      Effect.gen(function* () {
        const operator = yield* operatorByEmail(email)
        const password = yield* readPassword(passwordStdin)
        yield* (yield* Operators).setPassword(operator.id, password)
        yield* Console.log(`password set for ${operator.email}; their sessions are ended`)
      }),
    ),
).pipe(Command.withDescription("Set an operator's password (and sign them out everywhere)."))

const userSetDisabled = (disabled: boolean) =>
  Command.make(disabled ? "disable" : "enable", { config: configFile, email: emailOption }, ({
    config,
    email,
  }) =>
    withAccounts(
      config,
      Effect.gen(function* () {
        const operator = yield* operatorByEmail(email)
        yield* (yield* Operators).update(operator.id, { disabled })
        yield* Console.log(`${disabled ? "disabled" : "enabled"} ${operator.email}`)
      }),
    )).pipe(
      Command.withDescription(
        disabled
          ? "Disable an operator: they cannot sign in, and their sessions end at once."
          : "Enable a disabled operator again.",
      ),
    )

const userLogout = Command.make("logout", { config: configFile, email: emailOption }, ({
  config,
  email,
}) =>
  withAccounts(
    config,
    Effect.gen(function* () {
      const operator = yield* operatorByEmail(email)
      const ended = yield* (yield* Sessions).signOutEverywhere(operator.id)
      yield* Console.log(`signed ${operator.email} out everywhere (${ended} sessions)`)
    }),
  )).pipe(Command.withDescription("End every session of an operator."))

const userTotpReset = Command.make("totp-reset", { config: configFile, email: emailOption }, ({
  config,
  email,
}) =>
  withAccounts(
    config,
    Effect.gen(function* () {
      const operator = yield* operatorByEmail(email)
      yield* (yield* Operators).resetTotp(operator.id)
      yield* Console.log(
        `two-factor sign-in turned off for ${operator.email}; they can enrol again`,
      )
    }),
  )).pipe(
    Command.withDescription("Turn off an operator's two-factor sign-in (a lost phone)."),
  )

export const userCommand = Command.make("user").pipe(
  Command.withDescription(
    "Operators: add, list, passwd, disable, enable, logout, totp-reset.",
  ),
  Command.withSubcommands([
    userAdd,
    userList,
    userPasswd,
    userSetDisabled(true),
    userSetDisabled(false),
    userLogout,
    userTotpReset,
  ]),
)

// ---------------------------------------------------------------------------------------------
// chorus team

/** A team as printed: members by e-mail, inboxes as `channel:account`. */
const printTeam = (team: Team, emails: ReadonlyMap<string, string>) =>
  Console.log(
    JSON.stringify({
      id: team.id,
      name: team.name,
      members: team.memberIds.map((id) => emails.get(id) ?? id),
      inboxes: team.inboxes.map((i) => `${i.channel}:${i.account}`),
      createdAt: team.createdAt.toISOString(),
    }),
  )

const emailsById = Effect.gen(function* () {
  const operators = yield* (yield* Operators).list()
  return new Map(operators.map((o) => [o.id as string, o.email]))
})

const teamAdd = Command.make(
  "add",
  { config: configFile, name: Args.text({ name: "name" }).pipe(Args.withDescription("Team name")) },
  ({ config, name }) =>
    withAccounts(
      config,
      Effect.gen(function* () {
        const team = yield* (yield* Teams).add(name)
        yield* printTeam(team, new Map())
      }),
    ),
).pipe(Command.withDescription("Add a team and print it as JSON."))

const teamList = Command.make("list", { config: configFile }, ({ config }) =>
  withAccounts(
    config,
    Effect.gen(function* () {
      const teams = yield* (yield* Teams).list()
      const emails = yield* emailsById
      for (const team of teams) yield* printTeam(team, emails)
      if (teams.length === 0) yield* Console.error("no teams")
    }),
  )).pipe(
    Command.withDescription("List teams with their members and inboxes, one JSON per line."),
  )

const memberCommand = (adding: boolean) =>
  Command.make(adding ? "add" : "remove", {
    config: configFile,
    team: teamOption,
    email: emailOption,
  }, ({ config, email, team: name }) =>
    withAccounts(
      config,
      Effect.gen(function* () {
        const teams = yield* Teams
        const team = yield* teamByName(name)
        const operator = yield* operatorByEmail(email)
        if (adding) yield* teams.addMember(team.id, operator.id)
        else yield* teams.removeMember(team.id, operator.id)
        yield* Console.log(
          `${adding ? "added" : "removed"} ${operator.email} ${
            adding ? "to" : "from"
          } ${team.name}`,
        )
      }),
    )).pipe(
      Command.withDescription(
        adding ? "Add an operator to a team." : "Take an operator off a team.",
      ),
    )

const inboxOption = Options.text("inbox").pipe(
  Options.withDescription("channel:account, e.g. telegram:@acme_bot; account * for all of them"),
)

const parseInbox = (text: string) => {
  const colon = text.indexOf(":")
  return colon <= 0 || colon === text.length - 1
    ? Effect.fail(
      new AccountCommandError({
        message: `expected --inbox channel:account (e.g. telegram:*), got ${JSON.stringify(text)}`,
      }),
    )
    : Effect.succeed({ channel: text.slice(0, colon), account: text.slice(colon + 1) })
}

const inboxCommand = (adding: boolean) =>
  Command.make(adding ? "add" : "remove", {
    config: configFile,
    team: teamOption,
    inbox: inboxOption,
  }, ({ config, inbox: text, team: name }) =>
    withAccounts(
      config,
      Effect.gen(function* () {
        const teams = yield* Teams
        const team = yield* teamByName(name)
        const inbox = yield* parseInbox(text)
        const label = `${inbox.channel}:${inbox.account}`
        if (adding) {
          const claim = yield* teams.claimInbox(team.id, inbox)
          const from = Option.isSome(claim.movedFrom)
            ? yield* teams.get(claim.movedFrom.value)
            : Option.none()
          yield* Console.log(
            Option.isSome(from)
              ? `${team.name} now owns ${label} (moved from ${from.value.name})`
              : `${team.name} now owns ${label}`,
          )
          return
        }
        const owned = team.inboxes.some((i) =>
          i.channel === inbox.channel && i.account === inbox.account
        )
        if (!owned) {
          return yield* new AccountCommandError({
            message: `${label} does not belong to ${team.name}`,
          })
        }
        yield* teams.releaseInbox(inbox)
        yield* Console.log(`${team.name} no longer owns ${label}`)
      }),
    )).pipe(
      Command.withDescription(
        adding
          ? "Give a team an inbox (taking it from the team that had it)."
          : "Take an inbox from a team.",
      ),
    )

export const teamCommand = Command.make("team").pipe(
  Command.withDescription("Teams: add, list, member add|remove, inbox add|remove."),
  Command.withSubcommands([
    teamAdd,
    teamList,
    Command.make("member").pipe(
      Command.withDescription("A team's operators: add, remove."),
      Command.withSubcommands([memberCommand(true), memberCommand(false)]),
    ),
    Command.make("inbox").pipe(
      Command.withDescription("A team's inboxes (channel accounts): add, remove."),
      Command.withSubcommands([inboxCommand(true), inboxCommand(false)]),
    ),
  ]),
)
