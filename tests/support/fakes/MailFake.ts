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

/** A hard bounce of `messageId` (sent from `mailbox` to `recipient`), as Postfix's bounce(8) writes it (RFC 3464). */
export const postfixBounce = (
  mailbox: string,
  recipient: string,
  messageId: string,
  subject = "Re: Hello",
) =>
  `Return-Path: <>
From: MAILER-DAEMON@mx.customer.example (Mail Delivery System)
Subject: Undelivered Mail Returned to Sender
To: ${mailbox}
Date: ${new Date().toUTCString()}
Message-Id: <bounce-${Date.now()}@mx.customer.example>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
\tboundary="B1/mx.customer.example"

--B1/mx.customer.example
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mx.customer.example.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients.

<${recipient}>: host mx.customer.example said: 550 5.1.1 <${recipient}>:
    Recipient address rejected: User unknown (in reply to RCPT TO command)

--B1/mx.customer.example
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.customer.example

Final-Recipient: rfc822; ${recipient}
Action: failed
Status: 5.1.1
Diagnostic-Code: smtp; 550 5.1.1 <${recipient}>: Recipient address rejected:
    User unknown

--B1/mx.customer.example
Content-Description: Undelivered Message Headers
Content-Type: text/rfc822-headers

From: Example Support <${mailbox}>
To: ${recipient}
Subject: ${subject}
Message-ID: ${messageId}

--B1/mx.customer.example--
`.replace(/\r?\n/g, "\r\n")
