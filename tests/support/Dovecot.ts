/**
 * A real IMAP server for tests: Debian's Dovecot (`apt-get install dovecot-imapd`; CI installs
 * it), started per test with a generated configuration in a temp dir: IMAP only, on a free
 * loopback port, plain-text login (no TLS, loopback only), one passwd-file user per mailbox,
 * maildirs in the temp dir. Stopped and removed when the scope closes.
 *
 * `dovecotPath()` is undefined where Dovecot is not installed: tests then skip, saying so.
 *
 * @example
 * ```ts
 * const imap = yield* dovecot({ users: [{ user: "support@example.com", password: "secret" }] })
 * yield* imap.append("support@example.com", rawMail)
 * ```
 */
import { type ChildProcess, spawn } from "node:child_process"
import * as NodeFs from "node:fs"
import * as NodeNet from "node:net"
import * as NodePath from "node:path"
import { Effect } from "effect"
import { ImapFlow } from "imapflow"
import { tempDir } from "./TestDatabase.ts"

/** Where the dovecot binary is, or undefined. */
export const dovecotPath = (): string | undefined =>
  ["/usr/sbin/dovecot", "/usr/local/sbin/dovecot", "/sbin/dovecot"].find((p) =>
    NodeFs.existsSync(p)
  )

const freePort = () =>
  Effect.async<number>((resume) => {
    const probe = NodeNet.createServer()
    probe.listen(0, "127.0.0.1", () => {
      const port = (probe.address() as NodeNet.AddressInfo).port
      probe.close(() => resume(Effect.succeed(port)))
    })
  })

const listening = (port: number) =>
  new Promise<boolean>((resolve) => {
    const socket = NodeNet.connect(port, "127.0.0.1")
    socket.once("connect", () => {
      socket.destroy()
      resolve(true)
    })
    socket.once("error", () => resolve(false))
  })

export interface DovecotUser {
  readonly user: string
  readonly password: string
}

export interface Dovecot {
  readonly host: string
  readonly port: number
  /** Put a mail into a user's folder (IMAP APPEND), as a delivery would; not \Seen. */
  readonly append: (user: string, raw: string | Buffer, folder?: string) => Effect.Effect<void>
  /** The flags of every mail in a folder, by UID. */
  readonly flags: (user: string, folder?: string) => Effect.Effect<Map<number, Set<string>>>
  /** Dovecot's log, for a failing test's message. */
  readonly log: () => string
}

export const dovecot = (options: { readonly users: ReadonlyArray<DovecotUser> }) =>
  Effect.gen(function* () {
    const binary = dovecotPath()
    if (binary === undefined) return yield* Effect.dieMessage("dovecot is not installed")
    const dir = yield* tempDir("chorus-imap-")
    const port = yield* freePort()
    for (const sub of ["run", "state", "mail"]) NodeFs.mkdirSync(NodePath.join(dir, sub))
    // Mail is owned by "nobody" (Dovecot refuses root); the temp dir must let it in.
    NodeFs.chmodSync(dir, 0o755)
    NodeFs.chmodSync(NodePath.join(dir, "mail"), 0o777)
    const passwd = NodePath.join(dir, "passwd")
    NodeFs.writeFileSync(
      passwd,
      options.users.map((u) => `${u.user}:{PLAIN}${u.password}\n`).join(""),
      { mode: 0o644 },
    )
    const logFile = NodePath.join(dir, "dovecot.log")
    const config = NodePath.join(dir, "dovecot.conf")
    NodeFs.writeFileSync(
      config,
      `protocols = imap
listen = 127.0.0.1
base_dir = ${dir}/run
state_dir = ${dir}/state
log_path = ${logFile}
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
default_internal_user = dovecot
default_internal_group = dovecot
default_login_user = dovenull
mail_location = maildir:${dir}/mail/%u
first_valid_uid = 1
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u ${passwd}
}
userdb {
  driver = static
  args = uid=65534 gid=65534 home=${dir}/mail/%u
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = ${port}
  }
  inet_listener imaps {
    port = 0
  }
}
`,
    )
    yield* Effect.acquireRelease(
      Effect.sync(() => spawn(binary, ["-F", "-c", config], { stdio: "ignore" })),
      (child: ChildProcess) =>
        Effect.async<void>((resume) => {
          if (child.exitCode !== null) return resume(Effect.void)
          child.once("exit", () => resume(Effect.void))
          child.kill("SIGTERM")
        }).pipe(Effect.timeout("5 seconds"), Effect.ignore),
    )
    const log = () => (NodeFs.existsSync(logFile) ? NodeFs.readFileSync(logFile, "utf8") : "")
    const deadline = Date.now() + 10_000
    while (!(yield* Effect.promise(() => listening(port)))) {
      if (Date.now() > deadline) {
        return yield* Effect.dieMessage(`dovecot did not start on ${port}:\n${log()}`)
      }
      yield* Effect.sleep("50 millis")
    }
    const session = <A>(user: string, use: (client: ImapFlow) => Promise<A>) =>
      Effect.promise(async () => {
        const account = options.users.find((u) => u.user === user)
        const client = new ImapFlow({
          host: "127.0.0.1",
          port,
          secure: false,
          auth: { user, pass: account?.password ?? "" },
          logger: false,
        })
        await client.connect()
        try {
          return await use(client)
        } finally {
          await client.logout().catch(() => {})
        }
      })
    return {
      host: "127.0.0.1",
      port,
      append: (user, raw, folder = "INBOX") =>
        session(user, async (client) => {
          await client.append(folder, raw)
        }),
      flags: (user, folder = "INBOX") =>
        session(user, async (client) => {
          const lock = await client.getMailboxLock(folder)
          const result = new Map<number, Set<string>>()
          try {
            if ((client.mailbox === false ? 0 : client.mailbox.exists) > 0) {
              for await (const m of client.fetch("1:*", { flags: true, uid: true })) {
                result.set(m.uid, m.flags ?? new Set())
              }
            }
          } finally {
            lock.release()
          }
          return result
        }),
      log,
    } satisfies Dovecot
  })
