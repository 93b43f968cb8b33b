import { assert, describe, it } from "@effect/vitest"
import { Either, ParseResult, Schema } from "effect"
import { newId, ulid, ulidTime } from "../../core/ids.ts"
import {
  ChannelIdentity,
  ChorusEvent,
  ContactId,
  Conversation,
  EVENT_VERSIONS,
  InboundMessage,
  inboundMessageId,
  Message,
} from "../../schemas/mod.ts"

const T = "2026-11-23T20:15:00.000Z"

/** Decode, encode again and compare with the input: the wire form survives unchanged. */
const roundTrip = <A, I>(schema: Schema.Schema<A, I>, wire: I) => {
  const decoded = Schema.decodeUnknownSync(schema)(wire)
  assert.deepStrictEqual(Schema.encodeSync(schema)(decoded), wire)
  return decoded
}

/** The error message of a failed decode. */
const refusal = <A, I>(schema: Schema.Schema<A, I>, input: unknown): string => {
  const result = Schema.decodeUnknownEither(schema)(input)
  if (Either.isRight(result)) assert.fail(`expected ${JSON.stringify(input)} to be refused`)
  return result.left.message
}

/** The failing fields of a refused decode, as `a.b[0].c: message` lines. */
const failingFields = <A, I>(schema: Schema.Schema<A, I>, input: unknown): Array<string> => {
  const result = Schema.decodeUnknownEither(schema)(input, { errors: "all" })
  if (Either.isRight(result)) assert.fail(`expected ${JSON.stringify(input)} to be refused`)
  return ParseResult.ArrayFormatter.formatErrorSync(result.left).map((issue) =>
    `${issue.path.map(String).join(".")}: ${issue.message}`
  )
}

/** Assert the decode is refused and some failing field starts with `path: `. */
const assertRefused = <A, I>(
  schema: Schema.Schema<A, I>,
  input: unknown,
  path: string,
  message = "",
) => {
  const fields = failingFields(schema, input)
  assert.isTrue(
    fields.some((f) => f.startsWith(`${path}: `) && f.includes(message)),
    `expected a failure at ${path} (${message}), got:\n${fields.join("\n")}`,
  )
}

const conversationWire = {
  id: ulid(),
  contactId: ulid(),
  status: "open",
  assigneeId: null,
  lastChannel: { channel: "telegram", account: "chorus_bot", identityId: ulid() },
  lastSeq: 3,
  createdAt: T,
  updatedAt: T,
  lastMessageAt: T,
  resolvedAt: null,
} as const

const incomingWire = {
  id: ulid(),
  conversationId: conversationWire.id,
  seq: 1,
  text: "Hello, my order is late",
  attachments: [{
    id: ulid(),
    name: "receipt.jpg",
    mimeType: "image/jpeg",
    size: 48213,
    storageKey: "files/2026/11/receipt.jpg",
  }],
  createdAt: T,
  direction: "in",
  channel: "telegram",
  account: "chorus_bot",
  identityId: ulid(),
  externalId: "1234:77",
  sentAt: "2026-11-23T20:14:59.000Z",
  receivedAt: T,
} as const

const outgoingWire = {
  id: ulid(),
  conversationId: conversationWire.id,
  seq: 2,
  text: "Sorry! It ships today.",
  attachments: [],
  createdAt: T,
  direction: "out",
  channel: "telegram",
  account: "chorus_bot",
  identityId: incomingWire.identityId,
  externalId: null,
  authorId: ulid(),
  delivery: {
    state: "failed",
    at: T,
    error: { code: "403", message: "bot was blocked by the user", retryable: false },
  },
} as const

describe("ids", () => {
  it("ULIDs are 26 characters, sort in creation order and carry their time", () => {
    const ids = Array.from({ length: 1000 }, () => ulid(1_800_000_000_000))
    assert.deepStrictEqual([...ids].sort(), ids)
    assert.strictEqual(new Set(ids).size, ids.length)
    assert.strictEqual(ulidTime(ids[0]!), 1_800_000_000_000)
    const later = ulid(Date.now())
    assert.isTrue(later > ids[999]!)
    assert.strictEqual(Schema.decodeUnknownSync(ContactId)(newId.contact()).length, 26)
  })

  it("an id that is not a ULID is refused with the reason", () => {
    assert.include(refusal(ContactId, "contact-1"), "expected a ULID")
    assert.include(refusal(ContactId, "01J0000000000000000000000I"), "expected a ULID")
  })
})

describe("domain schemas", () => {
  it("a conversation round-trips between its wire form and Dates", () => {
    const conversation = roundTrip(Conversation, conversationWire)
    assert.instanceOf(conversation.createdAt, Date)
    assert.strictEqual(conversation.createdAt.toISOString(), T)
  })

  it("a conversation with an unknown status is refused, naming status", () => {
    assertRefused(Conversation, { ...conversationWire, status: "snoozed" }, "status", "snoozed")
  })

  it("a channel identity records verification and reachability", () => {
    const wire = {
      id: ulid(),
      contactId: ulid(),
      channel: "whatsapp",
      account: "+74950000000",
      externalId: "79161234567",
      name: "Anna",
      phone: "+79161234567",
      email: null,
      verification: "verified",
      reachable: true,
      createdAt: T,
      lastSeenAt: null,
    } as const
    roundTrip(ChannelIdentity, wire)
    assertRefused(ChannelIdentity, { ...wire, phone: "8 916 123" }, "phone", "E.164")
    assertRefused(ChannelIdentity, { ...wire, verification: "maybe" }, "verification")
  })

  it("incoming, outgoing messages and notes round-trip", () => {
    const incoming = roundTrip(Message, incomingWire)
    assert.strictEqual(incoming.direction, "in")
    const outgoing = roundTrip(Message, outgoingWire)
    assert.strictEqual(outgoing.direction === "out" && outgoing.delivery.state, "failed")
    roundTrip(Message, {
      id: ulid(),
      conversationId: conversationWire.id,
      seq: 3,
      text: "VIP customer",
      attachments: [],
      createdAt: T,
      direction: "note",
      authorId: null,
    })
  })

  it("bad messages are refused with the failing field named", () => {
    assertRefused(Message, { ...incomingWire, seq: 0 }, "seq", "positive")
    assertRefused(Message, { ...incomingWire, sentAt: "yesterday" }, "sentAt", "ISO 8601")
    assertRefused(
      Message,
      { ...incomingWire, sentAt: "2026-11-23T20:14:59" },
      "sentAt",
      "with a time zone",
    )
    assertRefused(
      Message,
      {
        ...incomingWire,
        attachments: [{ id: ulid(), name: "a.pdf", mimeType: "application/pdf", size: 1 }],
      },
      "attachments.0",
      "expected a url or a storageKey",
    )
    // A failure without the provider's error is not a failure we can explain.
    assertRefused(
      Message,
      { ...outgoingWire, delivery: { state: "failed", at: T } },
      "delivery.error",
      "missing",
    )
  })
})

describe("inbound envelope", () => {
  const wire = {
    channel: "telegram",
    account: "chorus_bot",
    sender: { externalId: "1234", name: "Anna", verified: false },
    externalId: "1234:77",
    text: "Hi",
    attachments: [{
      name: "photo.jpg",
      mimeType: "image/jpeg",
      size: 1024,
      url: "https://files.example/photo.jpg",
    }],
    sentAt: "2026-11-23T20:14:59.000Z",
    receivedAt: T,
  } as const

  it("round-trips its wire form (dates as ISO strings)", () => {
    const inbound = roundTrip(InboundMessage, wire)
    assert.instanceOf(inbound.sentAt, Date)
    assert.instanceOf(inbound.attachments[0]!.url, URL)
  })

  it("defaults attachments to none and the sender to unverified", () => {
    const { attachments: _, ...bare } = wire
    const inbound = Schema.decodeUnknownSync(InboundMessage)({
      ...bare,
      sender: { externalId: "1234" },
    })
    assert.deepStrictEqual(inbound.attachments, [])
    assert.isFalse(inbound.sender.verified)
  })

  it("refuses bad input, naming the field", () => {
    assertRefused(InboundMessage, { ...wire, channel: "Telegram!" }, "channel", "channel name")
    assertRefused(
      InboundMessage,
      { ...wire, sender: { externalId: "1", email: "nope" } },
      "sender.email",
      "expected an e-mail address",
    )
    assertRefused(InboundMessage, { ...wire, externalId: "" }, "externalId", "non-empty")
    const { receivedAt: _, ...noReceivedAt } = wire
    assertRefused(InboundMessage, noReceivedAt, "receivedAt", "missing")
  })

  it("de-duplication ids cannot collide across account and message id", () => {
    const a = Schema.decodeUnknownSync(InboundMessage)({ ...wire, account: "a:b", externalId: "c" })
    const b = Schema.decodeUnknownSync(InboundMessage)({ ...wire, account: "a", externalId: "b:c" })
    assert.notStrictEqual(inboundMessageId(a), inboundMessageId(b))
  })
})

describe("events", () => {
  const header = (type: string, version = 1) => ({ type, version, id: ulid(), occurredAt: T })

  it("every known event round-trips", () => {
    const events = [
      {
        ...header("contact.created"),
        contact: { id: ulid(), name: "Anna", createdAt: T, updatedAt: T },
      },
      { ...header("conversation.opened"), conversation: conversationWire },
      {
        ...header("conversation.updated"),
        conversation: { ...conversationWire, status: "resolved", resolvedAt: T },
        changed: ["status", "resolvedAt"],
      },
      { ...header("message.received"), message: incomingWire },
      {
        ...header("message.sent"),
        message: { ...outgoingWire, delivery: { state: "queued", at: T } },
      },
      {
        ...header("message.delivery_changed"),
        conversationId: conversationWire.id,
        messageId: outgoingWire.id,
        seq: 2,
        channel: "telegram",
        account: "chorus_bot",
        externalId: "1234:78",
        delivery: { state: "read", at: T },
      },
    ]
    for (const event of events) roundTrip(ChorusEvent, event as never)
  })

  it("a message.received carrying an outgoing message is refused", () => {
    assertRefused(
      ChorusEvent,
      { ...header("message.received"), message: outgoingWire },
      "message.direction",
      `"out"`,
    )
    // The tree message names the event and the path too.
    assert.include(
      refusal(ChorusEvent, { ...header("message.received"), message: outgoingWire }),
      "MessageReceivedV1",
    )
  })

  it("an unknown type fails with an error naming it", () => {
    const message = refusal(ChorusEvent, { ...header("message.exploded") })
    assert.include(message, `unknown event type "message.exploded"`)
    assert.include(message, "message.received")
  })

  it("an unknown version fails with an error naming it and the known ones", () => {
    const message = refusal(ChorusEvent, {
      ...header("message.received", 7),
      message: incomingWire,
    })
    assert.strictEqual(message, `unknown version 7 of event type "message.received" (known: 1)`)
    assert.include(refusal(ChorusEvent, { type: "message.received" }), "unknown version undefined")
  })

  it("lists the known versions of every type", () => {
    assert.deepStrictEqual(EVENT_VERSIONS["message.delivery_changed"], [1])
    assert.includeMembers(Object.keys(EVENT_VERSIONS), [
      "message.received",
      "message.sent",
      "message.delivery_changed",
      "conversation.opened",
      "conversation.updated",
      "contact.created",
    ])
  })
})
