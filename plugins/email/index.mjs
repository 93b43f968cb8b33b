/**
 * E-mail as a Chorus channel: one channel account per mailbox, IMAP in (imapflow), SMTP out
 * (nodemailer), mails read with mailparser. No protocol code of our own.
 *
 * - Settings: `accounts`, a JSON array of mailboxes (accounts.mjs); secrets
 *   `IMAP_PASSWORD_<NAME>` and `SMTP_PASSWORD_<NAME>` (the IMAP one when there is no SMTP one).
 * - Every IMAP and SMTP server must be declared in `permissions.net`: the host cannot see the
 *   plugin's sockets in the worker mode, so the plugin refuses to start with an undeclared one.
 * - Inbound: one IMAP connection per mailbox, IDLE where the server has it (imapflow starts it by
 *   itself; NOOP polling where it has not), plus a check every `pollSeconds`. New mails are
 *   those with a UID above the last one handled (kept in the plugin's key-value store with the
 *   folder's UIDVALIDITY); the first time, or when UIDVALIDITY changed, the UNSEEN ones. A mail is
 *   marked \Seen (or moved) and its UID recorded only after `chorus.channels.receive` resolved
 *   for it, so a crash means it is read again and the Message-ID makes the repeat a duplicate.
 * - Or an SMTP receiver (smtp-server, setting `receiver`) for MX-style delivery: a mail is
 *   answered 250 only once `chorus.channels.receive` resolved, 451 while it cannot be.
 * - Bounces report the failed reply with `chorus.channels.status`; automatic replies that answer
 *   none of our mails are skipped (parse.mjs says why).
 * - Outbound: From the mailbox, To the customer's address, `Re: <their subject>`, In-Reply-To and
 *   References of their latest mail, text and simple HTML, files from the attachment store. The
 *   Message-ID comes from the Chorus message id and the headers are fixed at the first attempt,
 *   so a retry sends the same mail.
 */
import { Buffer } from "node:buffer"
import { createHash } from "node:crypto"
import { readFile } from "node:fs/promises"
import { join } from "node:path"
import { ImapFlow } from "imapflow"
import { simpleParser } from "mailparser"
import nodemailer from "nodemailer"
import { SMTPServer } from "smtp-server"
import { parseAccounts, parseListen, secretName, undeclaredServers } from "./accounts.mjs"
import { failureOf, messageIdFor, replySubject, textToHtml, threadHeaders } from "./compose.mjs"
import { threadRecord, toInbound } from "./parse.mjs"

const CHANNEL = "email"
const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/

/** Ends the IMAP loops of the running version (`deactivate`). */
let stop = async () => {}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/** A secret that may be missing: undefined then (an undeclared one still throws). */
const optionalSecret = async (chorus, name) => {
  try {
    return await chorus.secrets.get(name)
  } catch (error) {
    if (error?.name === "PermissionDenied") throw error
    return undefined
  }
}

const isLoopback = (host) => /^(127\.\d+\.\d+\.\d+|localhost|\[::1\])$/.test(host)

export default {
  async activate(chorus) {
    const settings = chorus.settings
    const accounts = new Map(parseAccounts(settings.accounts).map((a) => [a.name, a]))
    const pollMs = Math.max(5, Number(settings.pollSeconds ?? 60)) * 1000
    const maxMailBytes = Math.max(1, Number(settings.maxMailMb ?? 30)) * 1024 * 1024

    // The host checks chorus.http against permissions.net; IMAP and SMTP sockets it cannot
    // see, so the servers are checked here, against the same list, before any is opened.
    const manifest = JSON.parse(
      await readFile(join(chorus.plugin.dir, "chorus.plugin.json"), "utf8"),
    )
    const net = manifest.permissions?.net ?? []
    const undeclared = undeclaredServers([...accounts.values()], net)
    if (undeclared.length > 0) {
      throw new Error(
        `mail servers not declared in permissions.net of chorus.plugin.json: ${
          undeclared.join(", ")
        }; add each host (or host:port) there`,
      )
    }

    const secrets = new Map()
    for (const account of accounts.values()) {
      const imapName = secretName("IMAP", account.name)
      const smtpName = secretName("SMTP", account.name)
      const imap = account.imap !== undefined
        ? await chorus.secrets.get(imapName)
        : await optionalSecret(chorus, imapName)
      // The SMTP password is the IMAP one unless set apart, as most providers have it.
      const smtp = account.smtp.auth ? (await optionalSecret(chorus, smtpName)) ?? imap : undefined
      if (account.smtp.auth && smtp === undefined) {
        throw new Error(`mailbox ${account.name}: set the secret ${smtpName} (or ${imapName})`)
      }
      secrets.set(account.name, { imap, smtp })
      for (const [kind, s] of [["IMAP", account.imap], ["SMTP", account.smtp]]) {
        if (s !== undefined && s.security === "none" && !isLoopback(s.host)) {
          chorus.log.warn("mail server without TLS: the password crosses the network in clear", {
            account: account.name,
            server: `${kind} ${s.host}:${s.port}`,
          })
        }
      }
    }
    if (accounts.size === 0) chorus.log.warn("no mailboxes configured (setting accounts)")

    const received = chorus.metrics.counter("mails_received", "Customer mails handed to Chorus")
    const skipped = chorus.metrics.counter("mails_skipped", "Mails not taken, by reason")
    const bounces = chorus.metrics.counter("bounces", "Bounces of our replies")
    const sent = chorus.metrics.counter("mails_sent", "Replies accepted by the SMTP server")

    /** Store a file of a mail; a file the store refuses is named in the text instead. */
    const store = async (file) => {
      try {
        return {
          attachment: await chorus.attachments.put(file.bytes, {
            name: file.name,
            mimeType: file.mimeType,
          }),
        }
      } catch (error) {
        if (error?.name === "AttachmentRefused") {
          return { note: `[${file.name} not accepted: ${error.message}]` }
        }
        throw error // the store is unreachable: the mail is read again later
      }
    }

    /**
     * One mail, as bytes: hand it to Chorus (or report the bounce). Resolves with whether the
     * mail may be marked handled in the mailbox; throws when it should be read again.
     */
    const handleMail = async (account, source, internalDate, senderVerified = true) => {
      let parsed
      try {
        parsed = await simpleParser(source, { skipImageLinks: true, skipTextToHtml: true })
      } catch (error) {
        chorus.log.error("a mail mailparser cannot read; left unseen in the mailbox", {
          account: account.name,
          error: String(error?.message ?? error),
        })
        return { handled: false }
      }
      const digest = createHash("sha256").update(source).digest("hex").slice(0, 40)
      const result = toInbound(parsed, {
        account: account.name,
        ownAddress: account.address,
        fallbackId: `<sha256.${digest}@${account.address.split("@")[1]}>`,
        ...(internalDate instanceof Date ? { receivedAt: internalDate.getTime() } : {}),
        senderVerified,
      })
      if (result.kind === "skip") {
        skipped.inc(1, { account: account.name })
        const log = result.keepUnseen ? chorus.log.warn : chorus.log.info
        log("mail not taken", {
          account: account.name,
          reason: result.reason,
          messageId: parsed.messageId,
          from: parsed.from?.text,
          left: result.keepUnseen ? "unseen in the mailbox" : "marked handled",
        })
        return { handled: !result.keepUnseen }
      }
      if (result.kind === "bounce") return reportBounce(account, parsed, result.bounce)

      const attachments = []
      const notes = []
      for (const file of result.files) {
        const got = await store(file)
        if (got.attachment) attachments.push(got.attachment)
        else notes.push(got.note)
      }
      if (result.original !== undefined) {
        const got = await store({
          name: "original.txt",
          mimeType: "text/plain",
          bytes: new TextEncoder().encode(result.original),
        })
        if (got.attachment) attachments.push(got.attachment)
        else notes.push("[the full mail could not be kept: " + got.note + "]")
      }
      const text = [result.inbound.text, ...notes].filter((t) => t !== "").join("\n")
      try {
        await chorus.channels.receive(CHANNEL, { ...result.inbound, text, attachments })
      } catch (error) {
        // A mail Chorus refuses as it is will be refused every time: a person must look at it.
        // Anything else (the bus away) throws, and the mail is read again.
        if (error?.name !== "InboundInvalid") throw error
        skipped.inc(1, { account: account.name })
        chorus.log.error("a mail Chorus refused; left unseen in the mailbox", {
          account: account.name,
          messageId: result.inbound.externalId,
          from: result.inbound.sender.externalId,
          error: String(error.message),
          problems: error.problems,
        })
        return { handled: false }
      }
      received.inc(1, { account: account.name })
      // What the next reply to this customer threads on (an automatic reply does not change it).
      if (result.automatic === undefined) {
        await chorus.storage.kv.set(
          `thread:${account.name}:${result.inbound.sender.externalId}`,
          threadRecord(result.inbound, result.subject, parsed),
        )
      }
      return { handled: true }
    }

    const reportBounce = async (account, parsed, bounce) => {
      bounces.inc(1, { account: account.name })
      const fields = {
        account: account.name,
        messageId: parsed.messageId,
        original: bounce.originalMessageId,
        status: bounce.status,
        recipient: bounce.recipient,
      }
      if (!bounce.failed) {
        chorus.log.info("delivery delayed (the server keeps trying)", fields)
        return { handled: true }
      }
      if (bounce.originalMessageId === undefined) {
        chorus.log.warn("a bounce that names no message; left unseen in the mailbox", fields)
        return { handled: false }
      }
      if (typeof chorus.channels.status !== "function") {
        chorus.log.error("this Chorus cannot take delivery statuses; bounce left unseen", fields)
        return { handled: false }
      }
      const outcome = await chorus.channels.status(CHANNEL, {
        account: account.name,
        externalId: bounce.originalMessageId,
        state: "failed",
        error: { code: bounce.status, reason: bounce.reason.slice(0, 1000) },
        ...(bounce.hard ? { unreachable: true } : {}),
        ...(parsed.date instanceof Date ? { at: parsed.date.getTime() } : {}),
      })
      if (!outcome.found) chorus.log.info("a bounce of a mail Chorus did not send", fields)
      return { handled: true }
    }

    // -- inbound: IMAP ---------------------------------------------------------------------------
    let stopped = false
    const clients = new Set()
    const wakers = new Set()

    /** Read every new mail of the selected folder, in UID order. */
    const drain = async (account, client) => {
      const stateKey = `imap:${account.name}:${account.imap.folder}`
      const state = await chorus.storage.kv.get(stateKey)
      const validity = String(client.mailbox.uidValidity)
      const uidNext = Number(client.mailbox.uidNext ?? 1)
      const known = state !== null && state !== undefined && state.uidValidity === validity
      let lastUid = known ? Number(state.lastUid) : 0
      const found = known
        ? await client.search({ uid: `${lastUid + 1}:*` }, { uid: true })
        : await client.search({ seen: false }, { uid: true })
      const uids = (found || []).filter((u) => u > lastUid).sort((a, b) => a - b)
      for (const uid of uids) {
        if (stopped) return
        const head = await client.fetchOne(String(uid), { size: true }, { uid: true })
        const tooBig = head && typeof head.size === "number" && head.size > maxMailBytes
        if (tooBig) {
          skipped.inc(1, { account: account.name })
          chorus.log.error("a mail over maxMailMb; left unseen in the mailbox", {
            account: account.name,
            uid,
            size: head.size,
          })
        }
        const mail = tooBig
          ? undefined
          : await client.fetchOne(String(uid), { source: true, internalDate: true }, { uid: true })
        if (mail && mail.source) {
          const { handled } = await handleMail(account, mail.source, mail.internalDate)
          if (handled) {
            if (account.imap.processed === "seen") {
              await client.messageFlagsAdd(String(uid), ["\\Seen"], { uid: true })
            } else {
              await client.messageMove(String(uid), account.imap.processed.slice(5), { uid: true })
            }
          }
        }
        lastUid = uid
        await chorus.storage.kv.set(stateKey, { uidValidity: validity, lastUid })
      }
      // The first time, mails already read are not history to import: start after them.
      if (!known) {
        await chorus.storage.kv.set(stateKey, {
          uidValidity: validity,
          lastUid: Math.max(lastUid, uidNext - 1),
        })
      }
    }

    const watch = async (account) => {
      let failures = 0
      while (!stopped) {
        const { imap } = account
        const client = new ImapFlow({
          host: imap.host,
          port: imap.port,
          secure: imap.security === "tls",
          doSTARTTLS: imap.security === "starttls"
            ? true
            : imap.security === "none"
            ? false
            : undefined,
          auth: { user: imap.user, pass: secrets.get(account.name).imap },
          logger: false,
          connectionTimeout: 30_000,
          greetingTimeout: 16_000,
          // IDLE soon after each round (imapflow's default waits 15 s), so a new mail is seen
          // at once; where IDLE is missing, imapflow polls with NOOP every maxIdleTime.
          autoIdleDelay: 1_000,
          // Restart IDLE (or NOOP where it is missing) this often.
          maxIdleTime: pollMs,
        })
        clients.add(client)
        // A new mail (EXISTS) wakes the loop; a dropped connection too, to reconnect.
        let pending = true
        let wake = () => {}
        const signal = () => {
          pending = true
          wake()
        }
        wakers.add(signal)
        client.on("exists", signal)
        client.on("close", signal)
        client.on("error", (error) =>
          chorus.log.warn("IMAP connection error", {
            account: account.name,
            error: String(error?.message ?? error),
          }))
        try {
          await client.connect()
          if (imap.processed !== "seen") {
            // The folder handled mail moves to; an existing one answers an error, ignored.
            await client.mailboxCreate(imap.processed.slice(5)).catch(() => {})
          }
          await client.mailboxOpen(imap.folder)
          failures = 0
          while (!stopped && client.usable) {
            if (pending) {
              pending = false
              // The lock only while reading: imapflow starts IDLE only when no lock is held.
              const lock = await client.getMailboxLock(imap.folder)
              try {
                await drain(account, client)
              } finally {
                lock.release()
              }
              continue
            }
            await new Promise((resolve) => {
              wake = resolve
              const timer = setTimeout(() => {
                pending = true
                resolve()
              }, pollMs)
              timer.unref?.()
            })
            wake = () => {}
          }
        } catch (error) {
          if (stopped) break
          failures++
          chorus.log.warn("IMAP failed; reconnecting", {
            account: account.name,
            error: String(error?.responseText ?? error?.message ?? error),
            retryInMs: Math.min(60_000, 500 * 2 ** Math.min(failures, 7)),
          })
        } finally {
          wakers.delete(signal)
          clients.delete(client)
          if (client.usable) await client.logout().catch(() => {})
          client.close()
        }
        if (!stopped) {
          await sleep(failures === 0 ? 200 : Math.min(60_000, 500 * 2 ** Math.min(failures, 7)))
        }
      }
    }
    const loops = [...accounts.values()].filter((a) => a.imap !== undefined).map(watch)

    // -- inbound: SMTP receiver (MX-style delivery) ----------------------------------------------
    const listen = parseListen(settings.receiver)
    let receiver
    if (listen !== undefined) {
      const byAddress = new Map([...accounts.values()].map((a) => [a.address, a]))
      const senderVerified = settings.receiverVerifiesSenders === true
      const reply = (code, text) => Object.assign(new Error(text), { responseCode: code })
      receiver = new SMTPServer({
        // An MX takes no login; TLS is for the MTA in front of it (see the README).
        authOptional: true,
        disabledCommands: ["AUTH", "STARTTLS"],
        size: maxMailBytes,
        rejectOversized: true,
        logger: false,
        onRcptTo(address, _session, callback) {
          if (byAddress.has(address.address.toLowerCase())) return callback()
          return callback(reply(550, "5.1.1 No such mailbox here"))
        },
        onData(stream, session, callback) {
          const chunks = []
          stream.on("data", (chunk) => chunks.push(chunk))
          stream.on("end", () => {
            if (stream.sizeExceeded) return callback(reply(552, "5.3.4 Message too big"))
            const source = Buffer.concat(chunks)
            const targets = [
              ...new Set(
                session.envelope.rcptTo.map((r) => byAddress.get(r.address.toLowerCase())),
              ),
            ].filter((a) => a !== undefined)
            // Accepted (250) only once Chorus holds the mail: else the sending server keeps it
            // and tries again (4xx), or returns it to its sender (5xx), never lost in between.
            const deliver = async () => {
              for (const account of targets) {
                const { handled } = await handleMail(account, source, new Date(), senderVerified)
                if (!handled) return false
              }
              return true
            }
            deliver().then(
              (ok) =>
                ok
                  ? callback(null, "2.0.0 Ok: stored")
                  : callback(reply(554, "5.6.0 This mail cannot be taken (see the server's log)")),
              (error) => {
                chorus.log.warn("SMTP receiver: a mail not stored yet; the sender will retry", {
                  error: String(error?.message ?? error),
                })
                callback(reply(451, "4.3.0 Not stored, try again later"))
              },
            )
          })
        },
      })
      receiver.on(
        "error",
        (error) =>
          chorus.log.warn("SMTP receiver error", { error: String(error?.message ?? error) }),
      )
      await new Promise((resolve, reject) => {
        receiver.server.once("error", reject)
        receiver.listen(listen.port, listen.host, resolve)
      })
      chorus.log.info("SMTP receiver listening", { host: listen.host, port: listen.port })
    }

    // -- outbound: SMTP --------------------------------------------------------------------------
    const transports = new Map(
      [...accounts.values()].map((account) => {
        const { smtp } = account
        return [
          account.name,
          nodemailer.createTransport({
            host: smtp.host,
            port: smtp.port,
            secure: smtp.security === "tls",
            requireTLS: smtp.security === "starttls",
            ignoreTLS: smtp.security === "none",
            ...(smtp.auth
              ? { auth: { user: smtp.user, pass: secrets.get(account.name).smtp } }
              : {}),
            connectionTimeout: 15_000,
            greetingTimeout: 15_000,
            socketTimeout: 60_000,
            logger: false,
          }),
        ]
      }),
    )

    await chorus.channels.register(CHANNEL, {
      async send(message) {
        const account = accounts.get(message.account)
        const transport = transports.get(message.account)
        if (account === undefined || transport === undefined) {
          return {
            ok: false,
            retryable: false,
            code: "no_account",
            reason: `no mailbox ${message.account} is configured (setting accounts)`,
          }
        }
        const to = String(message.recipient.externalId).toLowerCase()
        if (!EMAIL.test(to)) {
          return {
            ok: false,
            retryable: false,
            code: "bad_address",
            reason: `${to} is not an e-mail address`,
          }
        }
        const files = message.attachments.filter((a) => typeof a?.storageKey === "string")
        const text = message.text ?? ""
        if (text.trim() === "" && files.length === 0) {
          return { ok: false, retryable: false, code: "empty", reason: "nothing to send" }
        }
        // The headers are fixed at the first attempt: a retry sends the very same mail.
        const planKey = `sent:${message.id}`
        let plan = await chorus.storage.kv.get(planKey)
        if (plan === null || plan === undefined) {
          const thread = await chorus.storage.kv.get(`thread:${account.name}:${to}`)
          const remembered = await chorus.storage.kv.get(`subject:${message.conversationId}`)
          const subject = thread?.subject || remembered || ""
          plan = {
            messageId: messageIdFor(message.id, account.address),
            subject: replySubject(
              subject,
              account.defaultSubject ?? `Message from ${account.displayName ?? account.address}`,
            ),
            date: new Date().toUTCString(),
            ...threadHeaders(thread),
          }
          await chorus.storage.kv.set(planKey, plan)
          if (subject !== "") {
            await chorus.storage.kv.set(`subject:${message.conversationId}`, subject)
          }
        }
        const attachments = []
        for (const file of files) {
          const stored = await chorus.attachments.get(file.storageKey)
          attachments.push({
            filename: file.name,
            content: Buffer.from(stored.bytes),
            contentType: stored.mimeType,
          })
        }
        try {
          await transport.sendMail({
            from: account.displayName !== undefined
              ? { name: account.displayName, address: account.address }
              : account.address,
            to: message.recipient.displayName
              ? { name: message.recipient.displayName, address: to }
              : to,
            subject: plan.subject,
            messageId: plan.messageId,
            date: plan.date,
            ...(plan.inReplyTo !== undefined
              ? { inReplyTo: plan.inReplyTo, references: plan.references }
              : {}),
            text,
            html: textToHtml(text),
            attachments,
          })
        } catch (error) {
          return failureOf(error)
        }
        sent.inc(1, { account: account.name })
        return { ok: true, externalId: plan.messageId }
      },
    })

    stop = async () => {
      stopped = true
      for (const signal of wakers) signal()
      for (const client of clients) client.close()
      for (const transport of transports.values()) transport.close()
      if (receiver !== undefined) await new Promise((resolve) => receiver.close(resolve))
      await Promise.race([Promise.allSettled(loops), sleep(2_000)])
    }
  },
  async deactivate() {
    await stop()
  },
}
