/**
 * The e-mail plugin's pure parts: mails (read by mailparser, as the plugin reads them) to inbound
 * messages, quotes and signatures trimmed, bounces read, automatic replies told apart, reply
 * headers that thread, SMTP failures classified, the `accounts` setting and the host check.
 *
 * The mails are written here in the formats their specifications show: the reply chain of RFC
 * 5322 Appendix A.2, the delivery status notification of RFC 3464 (its Appendix example, and
 * one as Postfix's bounce(8) writes it, with text/rfc822-headers), the Auto-Submitted header of
 * RFC 3834; the quoting styles are those of Gmail, Outlook and Apple Mail.
 */
import { assert, describe, it } from "@effect/vitest"
import { simpleParser } from "mailparser"
import {
  hostAllowed,
  parseAccounts,
  parseListen,
  secretName,
  undeclaredServers,
} from "./accounts.mjs"
import { failureOf, messageIdFor, replySubject, textToHtml, threadHeaders } from "./compose.mjs"
import {
  autoReplyReason,
  htmlToText,
  parseBounce,
  threadOf,
  threadRecord,
  toInbound,
  trimReply,
} from "./parse.mjs"

const crlf = (text: string) => text.replace(/\r?\n/g, "\r\n")
const parse = (raw: string) => simpleParser(Buffer.from(crlf(raw)))
const options = { account: "support", ownAddress: "support@example.com", fallbackId: "<fb@x>" }

// RFC 5322 Appendix A.2: the third message of the chain.
const RFC5322_REPLY = `To: "Mary Smith: Personal Account" <smith@home.example>
From: John Doe <jdoe@machine.example>
Subject: Re: Saying Hello
Date: Fri, 21 Nov 1997 11:00:00 -0600
Message-ID: <abcd.1234@local.machine.test>
In-Reply-To: <3456@example.net>
References: <1234@local.machine.example> <3456@example.net>

This is a reply to your reply.
`

// A Gmail-style reply: the customer's words, a signature, the quoted reply, a PDF.
const GMAIL_REPLY = `From: Anna Kowalska <Anna.Kowalska@Example.ORG>
To: Example Support <support@example.com>
Subject: Re: Your order 4711
Date: Tue, 24 Nov 2026 09:12:00 +0100
Message-ID: <CAF=abc123@mail.gmail.com>
In-Reply-To: <chorus.msg_01@example.com>
References: <first@mail.gmail.com> <chorus.msg_01@example.com>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="b1"

--b1
Content-Type: text/plain; charset="UTF-8"

The parcel arrived broken, photo of the invoice attached.

--
Anna Kowalska
+48 600 000 000

On Mon, 23 Nov 2026 at 18:00, Example Support <support@example.com> wrote:
> We have sent your order.
>
> Kind regards

--b1
Content-Type: application/pdf; name="invoice.pdf"
Content-Disposition: attachment; filename="invoice.pdf"
Content-Transfer-Encoding: base64

JVBERi0xLjQKJcfsj6IKMSAwIG9iago8PD4+CmVuZG9iagp0cmFpbGVyCjw8Pj4KJSVFT0YK
--b1--
`

const HTML_ONLY = `From: shop@customer.example
To: support@example.com
Subject: =?UTF-8?B?0JfQsNC60LDQtw==?=
Message-ID: <html-1@customer.example>
MIME-Version: 1.0
Content-Type: text/html; charset=UTF-8

<html><head><style>p{color:red}</style></head><body><p>Hello &amp; welcome,</p><p>line two<br>line three</p></body></html>
`

// RFC 3464 Appendix: "Simple DSN", with the original message filled in (one of our replies).
const RFC3464_FAILED_4XX = `Date: Thu, 7 Jul 1994 17:16:05 -0400
From: Mail Delivery Subsystem <MAILER-DAEMON@CS.UTK.EDU>
Message-Id: <199407072116.RAA14128@CS.UTK.EDU>
Subject: Returned mail: Cannot send message for 5 days
To: <owner-info-mime@cs.utk.edu>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
      boundary="RAA14128.773615765/CS.UTK.EDU"

--RAA14128.773615765/CS.UTK.EDU

The original message was received at Sat, 2 Jul 1994 17:10:28 -0400
from root@localhost

   ----- The following addresses had delivery problems -----
<louisl@larry.slip.umd.edu>  (unrecoverable error)

   ----- Transcript of session follows -----
<louisl@larry.slip.umd.edu>... Deferred: Connection timed out
        with larry.slip.umd.edu.
Message could not be delivered for 5 days
Message will be deleted from queue

--RAA14128.773615765/CS.UTK.EDU
content-type: message/delivery-status

Reporting-MTA: dns; cs.utk.edu

Original-Recipient: rfc822;louisl@larry.slip.umd.edu
Final-Recipient: rfc822;louisl@larry.slip.umd.edu
Action: failed
Status: 4.0.0
Diagnostic-Code: smtp; 426 connection timed out
Last-Attempt-Date: Thu, 7 Jul 1994 17:15:49 -0400

--RAA14128.773615765/CS.UTK.EDU
content-type: message/rfc822

From: support@example.com
To: louisl@larry.slip.umd.edu
Subject: Re: hello
Message-ID: <chorus.msg_77@example.com>

Our answer.

--RAA14128.773615765/CS.UTK.EDU--
`

// As Postfix's bounce(8) writes a hard bounce: 5.1.1, the original's headers only.
const POSTFIX_HARD = `Return-Path: <>
From: MAILER-DAEMON@mx.example.com (Mail Delivery System)
Subject: Undelivered Mail Returned to Sender
To: support@example.com
Date: Tue, 24 Nov 2026 10:00:00 +0000 (UTC)
Message-Id: <20261124100000.ABC1@mx.example.com>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
	boundary="ABC1.1700000000/mx.example.com"

--ABC1.1700000000/mx.example.com
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mx.example.com.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients.

<nobody@customer.example>: host mx.customer.example[192.0.2.1] said: 550 5.1.1
    <nobody@customer.example>: Recipient address rejected: User unknown (in
    reply to RCPT TO command)

--ABC1.1700000000/mx.example.com
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.com
X-Postfix-Queue-ID: ABC1
Arrival-Date: Tue, 24 Nov 2026 09:59:59 +0000 (UTC)

Final-Recipient: rfc822; nobody@customer.example
Original-Recipient: rfc822;nobody@customer.example
Action: failed
Status: 5.1.1
Remote-MTA: dns; mx.customer.example
Diagnostic-Code: smtp; 550 5.1.1 <nobody@customer.example>: Recipient address
    rejected: User unknown

--ABC1.1700000000/mx.example.com
Content-Description: Undelivered Message Headers
Content-Type: text/rfc822-headers

From: Example Support <support@example.com>
To: nobody@customer.example
Subject: Re: Where is my parcel
Message-ID: <chorus.msg_88@example.com>

--ABC1.1700000000/mx.example.com--
`

const OUT_OF_OFFICE = (inReplyTo: string) =>
  `From: Anna <anna@example.org>
To: support@example.com
Subject: Automatic reply: Re: Your order
Message-ID: <ooo-1@example.org>
In-Reply-To: ${inReplyTo}
Auto-Submitted: auto-replied

I am out of the office until Monday.
`

describe("e-mail in", () => {
  it("a reply: sender lower-cased and verified, Message-ID, thread nearest first, quote and signature trimmed, the full text kept, the PDF a file", async () => {
    const result = toInbound(await parse(GMAIL_REPLY), options)
    assert.strictEqual(result.kind, "message")
    assert.deepStrictEqual(result.inbound.sender, {
      externalId: "anna.kowalska@example.org",
      name: "Anna Kowalska",
      email: "anna.kowalska@example.org",
      verified: true,
    })
    assert.strictEqual(result.inbound.externalId, "<CAF=abc123@mail.gmail.com>")
    assert.deepStrictEqual(result.inbound.inReplyTo, [
      "<chorus.msg_01@example.com>",
      "<first@mail.gmail.com>",
    ])
    assert.strictEqual(
      result.inbound.text,
      "The parcel arrived broken, photo of the invoice attached.",
    )
    assert.strictEqual(result.inbound.sentAt, Date.parse("2026-11-24T08:12:00Z"))
    assert.strictEqual(result.subject, "Re: Your order 4711")
    assert.match(result.original, /Anna Kowalska\n\+48 600 000 000/)
    assert.match(result.original, /> We have sent your order\./)
    assert.match(result.original, /^From: .*Anna\.Kowalska@Example\.ORG/m)
    assert.deepStrictEqual(
      result.files.map((f: { name: string; mimeType: string; bytes: Uint8Array }) => [
        f.name,
        f.mimeType,
        new TextDecoder().decode(f.bytes).slice(0, 5),
      ]),
      [["invoice.pdf", "application/pdf", "%PDF-"]],
    )
  })

  it("RFC 5322's reply chain: In-Reply-To, then References from the nearest back", async () => {
    const parsed = await parse(RFC5322_REPLY)
    assert.deepStrictEqual(threadOf(parsed), [
      "<3456@example.net>",
      "<1234@local.machine.example>",
    ])
    const result = toInbound(parsed, options)
    assert.strictEqual(result.inbound.text, "This is a reply to your reply.")
    assert.isUndefined(result.original) // nothing trimmed, nothing extra kept
    assert.deepStrictEqual(threadRecord(result.inbound, result.subject, parsed), {
      subject: "Re: Saying Hello",
      messageId: "<abcd.1234@local.machine.test>",
      references: [
        "<1234@local.machine.example>",
        "<3456@example.net>",
        "<abcd.1234@local.machine.test>",
      ],
    })
  })

  it("HTML only: text from the HTML; an encoded subject decoded; no name, no thread", async () => {
    const result = toInbound(await parse(HTML_ONLY), options)
    // mailparser writes the text of an HTML-only mail itself.
    assert.strictEqual(result.inbound.text, "Hello & welcome,\n\nline two\nline three")
    assert.strictEqual(result.subject, "Заказ")
    assert.deepStrictEqual(result.inbound.sender, {
      externalId: "shop@customer.example",
      email: "shop@customer.example",
      verified: true,
    })
    assert.notProperty(result.inbound, "inReplyTo")
    assert.strictEqual(htmlToText("a&#x263A;b&nbsp;c<script>x</script>"), "a☺b c")
  })

  it("a mail without Message-ID gets the stable fallback; without From it is left for a person", async () => {
    const noId = toInbound(await parse("From: a@b.example\nSubject: x\n\nhi\n"), options)
    assert.strictEqual(noId.inbound.externalId, "<fb@x>")
    const noFrom = toInbound(await parse("Subject: x\n\nhi\n"), options)
    assert.deepStrictEqual(noFrom, {
      kind: "skip",
      reason: "the mail has no sender address (From)",
      keepUnseen: true,
    })
    const own = toInbound(await parse("From: Support@Example.com\n\ncopy\n"), options)
    assert.strictEqual(own.kind, "skip")
  })

  it("automatic replies: skipped unless they answer one of our mails", async () => {
    const toUs = toInbound(await parse(OUT_OF_OFFICE("<chorus.msg_01@example.com>")), options)
    assert.strictEqual(toUs.kind, "message")
    assert.strictEqual(toUs.automatic, "Auto-Submitted: auto-replied")
    const toOther = toInbound(await parse(OUT_OF_OFFICE("<someone@else.example>")), options)
    assert.strictEqual(toOther.kind, "skip")
    assert.match(toOther.reason, /Auto-Submitted: auto-replied/)
    assert.strictEqual(
      autoReplyReason(await parse("From: a@b.example\nPrecedence: bulk\n\nx\n")),
      "Precedence: bulk",
    )
    assert.strictEqual(
      autoReplyReason(await parse("From: a@b.example\nX-Autoreply: yes\n\nx\n")),
      "x-autoreply is set",
    )
    assert.isUndefined(autoReplyReason(await parse("From: a@b.example\nAuto-Submitted: no\n\nx\n")))
  })
})

describe("trimming quotes and signatures", () => {
  const cases: Array<[string, string, string]> = [
    ["Gmail", "Thanks!\n\nOn Mon, 23 Nov 2026 at 18:00, Bob <b@x.example> wrote:\n> hi", "Thanks!"],
    [
      "Gmail, the header over two lines",
      "Yes please.\n\nOn Mon, 23 Nov 2026 at 18:00, Example Support\n<support@example.com> wrote:\n> hi",
      "Yes please.",
    ],
    [
      "Outlook",
      "See below.\n\n________________________________\nFrom: Support <s@x.example>\nSent: Monday, 23 November 2026 18:00\nTo: me\nSubject: x\n\nold",
      "See below.",
    ],
    [
      "Outlook without a rule",
      "Fine.\n\nFrom: Support <s@x.example>\nSent: Monday\nSubject: x\n\nold",
      "Fine.",
    ],
    ["German", "Danke.\n\nAm 23.11.2026 um 18:00 schrieb Support <s@x.example>:\n> alt", "Danke."],
    ["the signature delimiter", "Call me.\n-- \nAnna\n+48 600", "Call me."],
    ["a phone's signature", "ok\n\nSent from my iPhone", "ok"],
    ["a trailing quote without a header", "Agreed.\n\n> earlier\n> text\n", "Agreed."],
    [
      "an interleaved answer keeps the quotes before the last words",
      "> question 1\nanswer 1\n> question 2\nanswer 2",
      "> question 1\nanswer 1\n> question 2\nanswer 2",
    ],
  ]
  for (const [name, input, expected] of cases) {
    it(name, () => {
      const result = trimReply(input)
      assert.strictEqual(result.text, expected)
      assert.strictEqual(result.trimmed, expected !== input)
    })
  }

  it("a mail that is only a quote keeps all of it", () => {
    assert.deepStrictEqual(trimReply("> only a quote\n> here"), {
      text: "> only a quote\n> here",
      trimmed: false,
    })
  })
})

describe("bounces", () => {
  it("RFC 3464's example: failed after days with 4.0.0 is a failure, not unreachable; the original's Message-ID", async () => {
    const parsed = await parse(RFC3464_FAILED_4XX)
    const result = toInbound(parsed, options)
    assert.strictEqual(result.kind, "bounce")
    assert.deepStrictEqual(result.bounce, {
      originalMessageId: "<chorus.msg_77@example.com>",
      recipient: "louisl@larry.slip.umd.edu",
      action: "failed",
      status: "4.0.0",
      reason: "426 connection timed out",
      failed: true,
      hard: false,
    })
  })

  it("Postfix's 5.1.1 with the original's headers: a hard failure", async () => {
    const bounce = parseBounce(await parse(POSTFIX_HARD))
    assert.strictEqual(bounce.originalMessageId, "<chorus.msg_88@example.com>")
    assert.strictEqual(bounce.status, "5.1.1")
    assert.strictEqual(bounce.recipient, "nobody@customer.example")
    assert.isTrue(bounce.failed)
    assert.isTrue(bounce.hard)
    assert.match(
      bounce.reason,
      /^550 5\.1\.1 <nobody@customer\.example>: Recipient address rejected/,
    )
  })

  it("a delayed notice is no failure; a mailer daemon's plain-text bounce is read from its words", async () => {
    const delayed = parseBounce(
      await parse(
        POSTFIX_HARD.replace("Action: failed", "Action: delayed").replace(
          "Status: 5.1.1",
          "Status: 4.4.1",
        ),
      ),
    )
    assert.isFalse(delayed.failed)
    const plain = await parse(`From: Mail Delivery Subsystem <mailer-daemon@mx.example.com>
To: support@example.com
Subject: Delivery Status Notification (Failure)
Message-ID: <plain-bounce@mx.example.com>

Delivery to the following recipient failed permanently:

     gone@customer.example

Technical details of permanent failure:
The email account that you tried to reach does not exist. 550 5.1.1 gone

----- Original message -----
From: support@example.com
Message-ID: <chorus.msg_99@example.com>
Subject: Re: hi
`)
    const result = toInbound(plain, options)
    assert.strictEqual(result.kind, "bounce")
    assert.strictEqual(result.bounce.originalMessageId, "<chorus.msg_99@example.com>")
    assert.strictEqual(result.bounce.status, "5.1.1")
    assert.isTrue(result.bounce.hard)
    assert.isTrue(result.bounce.failed)
  })
})

describe("e-mail out", () => {
  it("the Message-ID is the Chorus id at the mailbox's domain, the same every time", () => {
    assert.strictEqual(
      messageIdFor("msg_01JD5", "Support@Example.com"),
      "<chorus.msg_01JD5@example.com>",
    )
    assert.strictEqual(messageIdFor("a b", "s@x.example"), messageIdFor("a b", "s@x.example"))
    assert.match(messageIdFor("a b", "s@x.example"), /^<chorus\.[0-9a-f]+@x\.example>$/)
  })

  it("Re: once, whatever the language; a default when the thread has no subject", () => {
    assert.strictEqual(replySubject("Your order", "d"), "Re: Your order")
    assert.strictEqual(replySubject("RE: Your order", "d"), "RE: Your order")
    assert.strictEqual(replySubject("AW: Bestellung", "d"), "AW: Bestellung")
    assert.strictEqual(replySubject("", "Message from Support"), "Message from Support")
    assert.strictEqual(replySubject(undefined, "d"), "d")
  })

  it("In-Reply-To the customer's latest mail, References its chain, shortened keeping the first", () => {
    assert.deepStrictEqual(
      threadHeaders({ subject: "s", messageId: "<b@x>", references: ["<a@x>", "<b@x>"] }),
      { inReplyTo: "<b@x>", references: "<a@x> <b@x>" },
    )
    const long = Array.from({ length: 30 }, (_, i) => `<${i}@x>`)
    const headers = threadHeaders({ subject: "s", messageId: "<29@x>", references: long })
    const ids = headers.references!.split(" ")
    assert.lengthOf(ids, 20)
    assert.strictEqual(ids[0], "<0@x>")
    assert.strictEqual(ids.at(-1), "<29@x>")
    assert.deepStrictEqual(threadHeaders(undefined), {})
  })

  it("simple HTML: escaped, paragraphs, line breaks, links", () => {
    assert.strictEqual(
      textToHtml("Hi <Anna> & co,\nsee https://x.example/a?b=1\n\nBye"),
      '<!doctype html><html><body><p>Hi &lt;Anna&gt; &amp; co,<br>\nsee <a href="https://x.example/a?b=1">https://x.example/a?b=1</a></p>\n<p>Bye</p></body></html>',
    )
  })

  it("SMTP failures: 4xx and the network retry, 5xx is final, a mailbox 5xx unreachable, 5.7.x not", () => {
    const smtp = (responseCode: number, response: string, code = "EENVELOPE") =>
      failureOf(Object.assign(new Error("x"), { code, responseCode, response }))
    assert.deepStrictEqual(smtp(451, "451 4.3.0 Try again later"), {
      ok: false,
      retryable: true,
      code: "451",
      reason: "451 4.3.0 Try again later",
    })
    assert.deepStrictEqual(smtp(550, "550 5.1.1 <x@y>: Recipient address rejected: User unknown"), {
      ok: false,
      retryable: false,
      code: "5.1.1",
      reason: "550 5.1.1 <x@y>: Recipient address rejected: User unknown",
      unreachable: true,
    })
    assert.deepStrictEqual(smtp(550, "550 mailbox unavailable"), {
      ok: false,
      retryable: false,
      code: "550",
      reason: "550 mailbox unavailable",
      unreachable: true,
    })
    const spam = smtp(550, "550 5.7.1 Message rejected as spam")
    assert.isFalse(spam.retryable)
    assert.notProperty(spam, "unreachable")
    assert.isFalse(smtp(552, "552 5.3.4 Message too big").retryable)
    assert.isTrue(smtp(503, "503 5.5.1 Bad sequence of commands").retryable)
    assert.deepStrictEqual(smtp(535, "535 5.7.8 Authentication failed", "EAUTH").code, "auth")
    assert.isFalse(smtp(535, "535 5.7.8 Authentication failed", "EAUTH").retryable)
    const refused = failureOf(
      Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:1"), { code: "ESOCKET" }),
    )
    assert.deepStrictEqual([refused.retryable, refused.code], [true, "esocket"])
    assert.isTrue(failureOf(Object.assign(new Error("t"), { code: "ETIMEDOUT" })).retryable)
  })
})

describe("the accounts setting and permissions.net", () => {
  const one = {
    name: "support",
    address: "Support@Example.com",
    imap: { host: "imap.example.com" },
    smtp: { host: "smtp.example.com", port: 587, security: "starttls" },
  }

  it("defaults: TLS ports, the address as user, INBOX, marked seen", () => {
    assert.deepStrictEqual(parseAccounts(JSON.stringify([one])), [{
      name: "support",
      address: "support@example.com",
      imap: {
        host: "imap.example.com",
        port: 993,
        security: "tls",
        user: "support@example.com",
        folder: "INBOX",
        processed: "seen",
      },
      smtp: {
        host: "smtp.example.com",
        port: 587,
        security: "starttls",
        user: "support@example.com",
        auth: true,
      },
    }])
    assert.deepStrictEqual(parseAccounts(""), [])
    assert.strictEqual(secretName("IMAP", "sales-eu"), "IMAP_PASSWORD_SALES_EU")
  })

  it("says what is wrong", () => {
    assert.throws(() => parseAccounts("{"), /not JSON/)
    assert.throws(() => parseAccounts("{}"), /JSON array/)
    assert.throws(
      () => parseAccounts(JSON.stringify([{ ...one, address: "nope" }])),
      /address "nope"/,
    )
    assert.throws(
      () => parseAccounts(JSON.stringify([{ ...one, imap: { host: "x", security: "ssl" } }])),
      /security must be one of tls, starttls, none/,
    )
    assert.throws(() => parseAccounts(JSON.stringify([one, one])), /used twice/)
    assert.throws(
      () => parseAccounts(JSON.stringify([{ ...one, imap: { host: "x", processed: "delete" } }])),
      /processed must be/,
    )
  })

  it("a mailbox without imap is fed by the receiver; the receiver's host:port", () => {
    const [fed] = parseAccounts(JSON.stringify([{ ...one, imap: undefined }]))
    assert.notProperty(fed, "imap")
    assert.deepStrictEqual(undeclaredServers([fed!], ["smtp.example.com"]), [])
    assert.deepStrictEqual(parseListen("127.0.0.1:2525"), { host: "127.0.0.1", port: 2525 })
    assert.deepStrictEqual(parseListen("[::]:25"), { host: "::", port: 25 })
    assert.isUndefined(parseListen(""))
    assert.throws(() => parseListen("2525"), /host:port/)
    assert.throws(() => parseListen("x:70000"), /host:port/)
  })

  it("servers are checked against permissions.net with the host's pattern rules", () => {
    assert.isTrue(hostAllowed(["imap.example.com"], "imap.example.com", 993))
    assert.isTrue(hostAllowed(["*.example.com"], "imap.example.com", 993))
    assert.isFalse(hostAllowed(["*.example.com"], "example.com", 993))
    assert.isTrue(hostAllowed(["smtp.example.com:587"], "smtp.example.com", 587))
    assert.isFalse(hostAllowed(["smtp.example.com:465"], "smtp.example.com", 587))
    const accounts = parseAccounts(JSON.stringify([one]))
    assert.deepStrictEqual(undeclaredServers(accounts, ["imap.example.com"]), [
      "smtp.example.com:587 (support SMTP)",
    ])
    assert.deepStrictEqual(undeclaredServers(accounts, ["*.example.com"]), [])
  })
})
