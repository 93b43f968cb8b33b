/**
 * A fake SMTP submission server on loopback (smtp-server, port 0) for tests of the e-mail
 * channel: it speaks real SMTP, so nodemailer sends to it unchanged, and keeps every mail it
 * accepted (envelope, raw bytes, and the mail as mailparser reads it). It asks for AUTH PLAIN or
 * LOGIN with one user and password (535 for others) and offers no STARTTLS (tests connect with
 * `security: "none"`).
 *
 * Tests arm failures for the next transactions: a reply code and text at RCPT TO or at the end
 * of DATA (`451 4.3.0 …` to be retried, `550 5.1.1 …` for a mailbox that does not exist), and
 * read which attempts were made (`attempts`), accepted or not.
 *
 * @example
 * ```ts
 * const smtp = yield* mailFake({ user: "support@example.com", password: "secret" })
 * smtp.failNext({ stage: "rcpt", code: 451, message: "4.3.0 Try again later" })
 * // … nodemailer.createTransport({ host: "127.0.0.1", port: smtp.port, ignoreTLS: true, auth })
 * yield* eventually("delivered", () => smtp.received.length === 1)
 * ```
 */
import type { AddressInfo } from "node:net"
import { Effect } from "effect"
import { type ParsedMail, simpleParser } from "mailparser"
import { SMTPServer } from "smtp-server"

export interface ReceivedMail {
  readonly envelope: { readonly from: string; readonly to: ReadonlyArray<string> }
  readonly raw: Buffer
  readonly parsed: ParsedMail
}

export interface Failure {
  /** Where the server answers with the failure: the recipient, or the end of the data. */
  readonly stage: "rcpt" | "data"
  /** The SMTP reply code, e.g. 451 or 550. */
  readonly code: number
  /** The text after the code, e.g. "4.3.0 Try again later". */
  readonly message: string
}

export interface Attempt {
  readonly stage: "rcpt" | "data"
  readonly recipient: string
  /** The reply code sent: 250 for accepted. */
  readonly code: number
  /** For `data`: the mail's Message-ID header (to tell a resend of the same mail). */
  readonly messageId?: string
}

export interface MailFake {
  readonly host: string
  readonly port: number
  /** Mails accepted, in order. */
  readonly received: ReadonlyArray<ReceivedMail>
  /** Every RCPT TO and end of DATA, with the code answered. */
  readonly attempts: ReadonlyArray<Attempt>
  /** Answer the next transaction at `stage` with this failure (queued, one per transaction). */
  readonly failNext: (failure: Failure) => void
}

const smtpError = (code: number, message: string) =>
  Object.assign(new Error(message), { responseCode: code })

export const mailFake = (
  options: { readonly user: string; readonly password: string },
) =>
  Effect.gen(function* () {
    const received: Array<ReceivedMail> = []
    const attempts: Array<Attempt> = []
    const failures: Array<Failure> = []
    const take = (stage: Failure["stage"]) => {
      const i = failures.findIndex((f) => f.stage === stage)
      return i === -1 ? undefined : failures.splice(i, 1)[0]
    }
    const server = new SMTPServer({
      secure: false,
      disabledCommands: ["STARTTLS"],
      authMethods: ["PLAIN", "LOGIN"],
      allowInsecureAuth: true,
      logger: false,
      onAuth(auth, _session, callback) {
        if (auth.username === options.user && auth.password === options.password) {
          return callback(null, { user: auth.username })
        }
        return callback(smtpError(535, "5.7.8 Authentication credentials invalid"))
      },
      onRcptTo(address, _session, callback) {
        const failure = take("rcpt")
        attempts.push({
          stage: "rcpt",
          recipient: address.address,
          code: failure?.code ?? 250,
        })
        if (failure !== undefined) return callback(smtpError(failure.code, failure.message))
        return callback()
      },
      onData(stream, session, callback) {
        const chunks: Array<Buffer> = []
        stream.on("data", (chunk: Buffer) => chunks.push(chunk))
        stream.on("end", () => {
          const raw = Buffer.concat(chunks)
          const recipient = session.envelope.rcptTo.map((r) => r.address).join(",")
          const failure = take("data")
          const messageId = /^Message-ID:\s*(<[^>]+>)/im.exec(raw.toString("latin1"))?.[1]
          attempts.push({
            stage: "data",
            recipient,
            code: failure?.code ?? 250,
            ...(messageId !== undefined ? { messageId } : {}),
          })
          if (failure !== undefined) return callback(smtpError(failure.code, failure.message))
          simpleParser(raw).then(
            (parsed) => {
              received.push({
                envelope: {
                  from: session.envelope.mailFrom === false
                    ? ""
                    : session.envelope.mailFrom.address,
                  to: session.envelope.rcptTo.map((r) => r.address),
                },
                raw,
                parsed,
              })
              callback(null, "2.0.0 Ok: queued")
            },
            (error: Error) => callback(error),
          )
        })
      },
    })
    const port = yield* Effect.acquireRelease(
      Effect.async<number>((resume) => {
        server.listen(0, "127.0.0.1", () => {
          resume(Effect.succeed((server.server.address() as AddressInfo).port))
        })
      }),
      () => Effect.async<void>((resume) => server.close(() => resume(Effect.void))),
    )
    return {
      host: "127.0.0.1",
      port,
      received,
      attempts,
      failNext: (failure) => failures.push(failure),
    } satisfies MailFake
  })
