/**
 * The `accounts` setting → mailboxes (pure: no I/O), and the check of their servers against the
 * manifest's `permissions.net`.
 *
 * The host checks `permissions.net` for `chorus.http.fetch`; IMAP and SMTP are raw TCP/TLS
 * sockets that the plugin opens itself (imapflow, nodemailer), which the host does not see in the
 * `worker` and `inprocess` modes. So the plugin refuses, at activation, a mailbox whose IMAP or
 * SMTP server is not declared there, with the same host-pattern rules as the host (`host`,
 * `*.domain`, optional `:port`). In the `deno` mode Deno's `--allow-net` enforces it as well.
 */

const NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$/
const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/
const HOST = /^(\[[0-9a-f:.]+\]|[A-Za-z0-9.-]{1,253})$/
const SECURITY = ["tls", "starttls", "none"]

const problem = (where, what) => new Error(`setting accounts: ${where}: ${what}`)

const server = (where, raw, defaults) => {
  if (raw === undefined || raw === null || typeof raw !== "object" || Array.isArray(raw)) {
    throw problem(where, "expected an object { host, port, security, user }")
  }
  const host = String(raw.host ?? "").trim().toLowerCase()
  if (!HOST.test(host)) throw problem(where, `host ${JSON.stringify(raw.host)} is not a host name`)
  const security = raw.security ?? "tls"
  if (!SECURITY.includes(security)) {
    throw problem(where, `security must be one of ${SECURITY.join(", ")}, not ${security}`)
  }
  const port = raw.port ?? (security === "tls" ? defaults.tlsPort : defaults.port)
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw problem(where, `port ${JSON.stringify(raw.port)} is not a port number`)
  }
  if (raw.user !== undefined && typeof raw.user !== "string") {
    throw problem(where, "user must be a string")
  }
  return { host, port, security, ...(raw.user !== undefined ? { user: raw.user } : {}) }
}

/**
 * The mailboxes of the `accounts` setting, a JSON array:
 * `[{ "name": "support", "address": "support@example.com", "displayName": "Example Support",
 *     "imap": { "host": "imap.example.com", "port": 993, "security": "tls" },
 *     "smtp": { "host": "smtp.example.com", "port": 465, "security": "tls" } }]`.
 * Defaults: `security` "tls" (993 / 465; "starttls": 143 / 587; "none": plain, for a server on
 * loopback), `user` the address, IMAP `folder` "INBOX", `processed` "seen" (or "move:<folder>"),
 * SMTP `auth` true. Without `imap` the mailbox is fed only by the SMTP receiver. Throws an Error
 * naming the first problem.
 */
export const parseAccounts = (text) => {
  const source = String(text ?? "").trim()
  if (source === "") return []
  let raw
  try {
    raw = JSON.parse(source)
  } catch (error) {
    throw new Error(`setting accounts: not JSON (${error.message})`)
  }
  if (!Array.isArray(raw)) throw new Error("setting accounts: expected a JSON array of mailboxes")
  const seen = new Set()
  return raw.map((a, i) => {
    const where = `mailbox ${i + 1}`
    if (a === null || typeof a !== "object") throw problem(where, "expected an object")
    const name = String(a.name ?? "")
    if (!NAME.test(name)) {
      throw problem(where, `name ${JSON.stringify(a.name)}: letters, digits, '_' or '-' only`)
    }
    if (seen.has(name)) throw problem(where, `name ${name} is used twice`)
    seen.add(name)
    const address = String(a.address ?? "").trim().toLowerCase()
    if (!EMAIL.test(address)) {
      throw problem(name, `address ${JSON.stringify(a.address)} is not an e-mail address`)
    }
    // No `imap`: the mailbox gets its mail only through the SMTP receiver (setting receiver).
    const imap = a.imap === undefined || a.imap === null
      ? undefined
      : server(`${name}.imap`, a.imap, { port: 143, tlsPort: 993 })
    const smtp = server(`${name}.smtp`, a.smtp, { port: 587, tlsPort: 465 })
    const folder = String(a.imap?.folder ?? "INBOX")
    const processed = String(a.imap?.processed ?? "seen")
    if (processed !== "seen" && !/^move:.+$/.test(processed)) {
      throw problem(`${name}.imap`, `processed must be "seen" or "move:<folder>", not ${processed}`)
    }
    return {
      name,
      address,
      ...(typeof a.displayName === "string" && a.displayName.trim() !== ""
        ? { displayName: a.displayName.trim() }
        : {}),
      ...(typeof a.defaultSubject === "string" ? { defaultSubject: a.defaultSubject } : {}),
      ...(imap !== undefined
        ? { imap: { ...imap, user: imap.user ?? address, folder, processed } }
        : {}),
      smtp: { ...smtp, user: smtp.user ?? address, auth: a.smtp.auth !== false },
    }
  })
}

/** `IMAP_PASSWORD_<NAME>`: the account name upper-cased, '-' as '_'. */
export const secretName = (kind, account) =>
  `${kind}_PASSWORD_${account.toUpperCase().replace(/-/g, "_")}`

/** Whether a `permissions.net` pattern (`host`, `*.domain`, either with `:port`) admits host:port. */
export const hostAllowed = (patterns, host, port) =>
  patterns.some((pattern) => {
    const m = /^(.*?)(?::(\d{1,5}))?$/.exec(String(pattern).toLowerCase())
    if (m === null) return false
    if (m[2] !== undefined && Number(m[2]) !== port) return false
    const h = m[1]
    if (h.startsWith("*.")) {
      const domain = h.slice(1)
      return host.endsWith(domain) && host.length > domain.length
    }
    return h === host
  })

/** The servers of `accounts` that `permissions.net` does not declare, as "host:port (what)". */
export const undeclaredServers = (accounts, net) =>
  accounts.flatMap((a) =>
    [["IMAP", a.imap], ["SMTP", a.smtp]].filter(([, s]) =>
      s !== undefined && !hostAllowed(net, s.host, s.port)
    )
      .map(([kind, s]) => `${s.host}:${s.port} (${a.name} ${kind})`)
  )

/**
 * The `receiver` setting: where the SMTP receiver listens, `host:port` (`127.0.0.1:2525`,
 * `0.0.0.0:25`, `[::]:25`); undefined when empty (no receiver).
 */
export const parseListen = (text) => {
  const source = String(text ?? "").trim()
  if (source === "") return undefined
  const m = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(source)
  const port = m === null ? NaN : Number(m[2])
  if (m === null || port < 1 || port > 65535) {
    throw new Error(`setting receiver: expected host:port (e.g. 127.0.0.1:2525), not ${source}`)
  }
  return { host: m[1].replace(/^\[|\]$/g, ""), port }
}
