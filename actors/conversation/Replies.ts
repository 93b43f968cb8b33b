/**
 * Replies: an operator (or an API client) answers a conversation.
 *
 * The reply is stored by the conversation's actor as its next message, `queued` (the actor is
 * the only writer of its conversation's numbering), then `message.sent` is published on the
 * events stream and the reply on the outbound stream (`outbound.<channel>`, bus id = message id,
 * ordering key = conversation), where its channel's actor picks it up.
 *
 * Outbox guarantee: a stored reply always reaches the outbound stream. The publish after the
 * commit is retried; if the process dies first, `relayOutbox` publishes every reply still
 * `queued` again: the leader runs it when it starts leading (`outboxRelay`), and then sweeps
 * every `interval` (30 s) the replies queued for longer than `grace` (30 s) but younger than the
 * bus's duplicate window (10 minutes): a node that died between its commit and its publish
 * leaves such a reply, and another node may hold the leadership meanwhile. Republishing is
 * harmless: the bus drops an id it saw within its duplicate window (so the sweep, which stays
 * inside it, publishes nothing new for a reply that did reach the bus, however often it runs),
 * and the channel actor skips a message no longer `queued`.
 *
 * Idempotency: a reply may carry the client's key (`clientId` / `Idempotency-Key`); posting it
 * again in the same conversation stores nothing and answers the stored reply (`duplicate`).
 */
import {
  Clock,
  Context,
  Data,
  Duration,
  Effect,
  Layer,
  Option,
  Schedule,
  Schema,
  type Scope,
} from "effect"
import type { ActorError } from "../../core/actor/mod.ts"
import { Bus, type BusError, type BusShape } from "../../core/bus/Bus.ts"
import { ChannelAdapters } from "../../core/channels/ChannelAdapter.ts"
import { newId } from "../../core/ids.ts"
import { outboundKey, OutboundStream, outboundSubject } from "../../core/pipeline/Streams.ts"
import type { DatabaseError } from "../../core/storage/Database.ts"
import type { InboundAttachment, ReplyButtons } from "../../schemas/Common.ts"
import type { ChannelIdentityId, ConversationId, OperatorId } from "../../schemas/Ids.ts"
import type { ChannelReason, OutgoingMessage } from "../../schemas/Message.ts"
import { OutboundDelivery } from "../../schemas/Outbound.ts"
import { ConversationActors } from "./ConversationActor.ts"
import { ConversationStore } from "./ConversationStore.ts"
import { publishEvent } from "../../core/pipeline/Events.ts"
import { OutboundStore } from "./OutboundWrites.ts"

export interface ReplyInput {
  readonly conversationId: ConversationId
  readonly text: string
  readonly attachments: ReadonlyArray<InboundAttachment>
  readonly identityId: ChannelIdentityId | undefined
  readonly clientId: string | undefined
  readonly authorId: OperatorId | null
  /** Buttons under the reply; only on channels that declare `buttons`. */
  readonly buttons?: ReplyButtons | undefined
}

export interface ReplyResult {
  readonly message: OutgoingMessage
  /** True when a reply with this client key was stored before; nothing new was stored. */
  readonly duplicate: boolean
}

export class ReplyConversationNotFound extends Data.TaggedError("ReplyConversationNotFound")<{
  readonly conversationId: string
}> {
  override get message() {
    return `no conversation with id ${this.conversationId}`
  }
}

/** The conversation is resolved: it takes no more messages (the customer's next one opens a new one). */
export class ReplyConversationClosed extends Data.TaggedError("ReplyConversationClosed")<{
  readonly conversationId: string
}> {
  override get message() {
    return `conversation ${this.conversationId} is resolved; it takes no more replies`
  }
}

/** The identity to answer on is unknown, not the conversation's contact's, or there is none. */
export class ReplyIdentityInvalid extends Data.TaggedError("ReplyIdentityInvalid")<{
  readonly field: string
  readonly reason: string
}> {
  override get message() {
    return `${this.field}: ${this.reason}`
  }
}

/** The channel cannot carry this reply (too long, attachments on a channel without them). */
export class ReplyNotSendable extends Data.TaggedError("ReplyNotSendable")<{
  readonly field: string
  readonly reason: string
}> {
  override get message() {
    return `${this.field}: ${this.reason}`
  }
}

export type ReplyError =
  | ReplyConversationNotFound
  | ReplyConversationClosed
  | ReplyIdentityInvalid
  | ReplyNotSendable
  | DatabaseError
  | ActorError

export interface RepliesShape {
  readonly send: (input: ReplyInput) => Effect.Effect<ReplyResult, ReplyError>
  /**
   * Publish every reply still `queued` (created before `createdBefore`, default now, and at or
   * after `createdAfter`, default ever) again, with its `message.sent` event. Returns how many
   * were queued (`relayOutbox`'s number), and how many of them the bus stored anew, i.e. had
   * never reached it or had left its duplicate window (`published`).
   */
  readonly relayOutbox: (
    options?: { readonly createdBefore?: number; readonly createdAfter?: number },
  ) => Effect.Effect<number, DatabaseError | BusError>
  /** `relayOutbox` with both counts: `queued` found, `published` new on the bus. */
  readonly relayOutboxCounted: (
    options?: { readonly createdBefore?: number; readonly createdAfter?: number },
  ) => Effect.Effect<
    { readonly queued: number; readonly published: number },
    DatabaseError | BusError
  >
}

export class Replies extends Context.Tag("chorus/actors/Replies")<Replies, RepliesShape>() {}

const encodeDelivery = Schema.encode(OutboundDelivery)

/**
 * Put a reply on the outbound stream: a queued one to send, or (`after: "failed"`) a follow-up
 * of one a receipt failed. `busId` defaults to the message id (a retry from the dead-letter list
 * needs a fresh one: the bus drops an id it saw within its duplicate window).
 */
export const publishOutbound = (
  bus: BusShape,
  message: OutgoingMessage,
  options: { readonly after?: "failed"; readonly busId?: string } = {},
) =>
  encodeDelivery({ message, ...(options.after !== undefined ? { after: options.after } : {}) })
    .pipe(
      Effect.orDie, // our own value: a failure to encode is a bug
      Effect.flatMap((encoded) =>
        bus.publish(
          outboundSubject(message.channel),
          new TextEncoder().encode(JSON.stringify(encoded)),
          {
            id: options.busId ?? message.id,
            key: outboundKey(message.conversationId),
            headers: { "Content-Type": "application/json" },
          },
        )
      ),
    )

/**
 * Publish `message.sent` for a stored reply, then (while `queued`) the reply itself. Answers
 * whether the bus stored the reply anew (false: not queued, or a duplicate within the window).
 */
export const announce = (bus: BusShape, message: OutgoingMessage) =>
  publishEvent(bus, message.id, {
    type: "message.sent",
    version: 1,
    id: newId.event(),
    occurredAt: new Date(),
    message,
  }).pipe(
    Effect.zipRight(
      message.delivery.state === "queued"
        ? publishOutbound(bus, message).pipe(Effect.map((ack) => !ack.duplicate))
        : Effect.succeed(false),
    ),
  )

/** Retries of the publish after the commit, before the background takes over. */
const publishRetry = Schedule.exponential("50 millis").pipe(
  Schedule.either(Schedule.spaced("2 seconds")),
  Schedule.jittered,
  Schedule.upTo("10 seconds"),
)

export const make: Effect.Effect<
  RepliesShape,
  BusError,
  Bus | ConversationStore | OutboundStore | ConversationActors | ChannelAdapters | Scope.Scope
> = Effect.gen(function* () {
  const bus = yield* Bus
  const store = yield* ConversationStore
  const outbound = yield* OutboundStore
  const actors = yield* ConversationActors
  const adapters = yield* ChannelAdapters
  const scope = yield* Effect.scope
  yield* bus.ensureStream(OutboundStream)

  const send = Effect.fn("Replies.send")(function* (input: ReplyInput) {
    const conversation = yield* store.conversation(input.conversationId)
    if (Option.isNone(conversation)) {
      return yield* new ReplyConversationNotFound({ conversationId: input.conversationId })
    }
    // The customer's last channel (across the contact's conversations), unless the operator
    // chose one; the reply records which it was.
    const contactId = conversation.value.contactId
    let channelReason: ChannelReason = input.identityId !== undefined
      ? "operator_choice"
      : "last_used"
    let lastUsed = input.identityId === undefined
      ? Option.getOrUndefined(yield* store.lastInboundIdentity(contactId))
      : undefined
    if (lastUsed !== undefined) {
      const last = yield* outbound.identity(lastUsed)
      if (Option.isSome(last) && !last.value.reachable) {
        // Blocked, bounced: the most recent channel that can still reach them, if any.
        const reachable = yield* store.lastInboundIdentity(contactId, { reachableOnly: true })
        if (Option.isSome(reachable)) {
          lastUsed = reachable.value
          channelReason = "last_reachable"
        }
      }
    }
    const identityId = input.identityId ?? lastUsed ?? conversation.value.lastChannel?.identityId
    if (identityId === undefined) {
      return yield* new ReplyIdentityInvalid({
        field: "identityId",
        reason: "the conversation has no channel yet; name the identity to answer on",
      })
    }
    const recipient = yield* outbound.identity(identityId)
    if (Option.isNone(recipient) || recipient.value.contactId !== conversation.value.contactId) {
      return yield* new ReplyIdentityInvalid({
        field: "identityId",
        reason: `${identityId} is not a channel identity of this conversation's contact`,
      })
    }
    const adapter = adapters.get(recipient.value.channel)
    if (Option.isSome(adapter)) {
      const { capabilities } = adapter.value
      if (input.text.length > capabilities.maxTextLength) {
        return yield* new ReplyNotSendable({
          field: "text",
          reason:
            `channel ${recipient.value.channel} takes at most ${capabilities.maxTextLength} ` +
            `characters`,
        })
      }
      if (input.buttons !== undefined && capabilities.buttons !== true) {
        return yield* new ReplyNotSendable({
          field: "buttons",
          reason: `channel ${recipient.value.channel} cannot show buttons`,
        })
      }
      if (input.attachments.length > 0 && !capabilities.attachments) {
        return yield* new ReplyNotSendable({
          field: "attachments",
          reason: `channel ${recipient.value.channel} cannot send attachments`,
        })
      }
    }
    const result = yield* actors.ask(input.conversationId, {
      _tag: "AppendOutbound",
      reply: {
        recipient: recipient.value,
        text: input.text,
        attachments: input.attachments,
        clientId: input.clientId,
        authorId: input.authorId,
        channelReason,
        ...(input.buttons !== undefined ? { buttons: input.buttons } : {}),
      },
    }).pipe(
      Effect.catchTag(
        "ConversationMissing",
        () => new ReplyConversationNotFound({ conversationId: input.conversationId }),
      ),
    )
    // The actor owns the status: a resolved conversation takes no more messages.
    if (result._tag === "Closed") {
      return yield* new ReplyConversationClosed({ conversationId: input.conversationId })
    }
    // A repeat of a reply the channel already handled was announced before: nothing to do.
    // Otherwise it is the outbox's from here on (a repeat may follow a crash between the commit
    // and the publish). Publish now; if the bus is down, keep trying in the background (and the
    // next start relays it in any case).
    const settled = result._tag === "Duplicate" && result.message.delivery.state !== "queued"
    yield* (settled ? Effect.void : Effect.asVoid(announce(bus, result.message))).pipe(
      Effect.retry(publishRetry),
      Effect.catchAll((error) =>
        Effect.logWarning("reply stored but not yet published; retrying in the background").pipe(
          Effect.annotateLogs({ messageId: result.message.id, error: error.message }),
          Effect.zipRight(
            announce(bus, result.message).pipe(
              Effect.retry(
                Schedule.exponential("1 second").pipe(
                  Schedule.either(Schedule.spaced("30 seconds")),
                ),
              ),
              Effect.forkIn(scope),
            ),
          ),
        )
      ),
    )
    return { message: result.message, duplicate: result._tag === "Duplicate" } satisfies ReplyResult
  })

  const relayOutboxCounted = Effect.fn("Replies.relayOutbox")(function* (
    options: { readonly createdBefore?: number; readonly createdAfter?: number } = {},
  ) {
    const createdBefore = options.createdBefore ?? (yield* Clock.currentTimeMillis) + 1
    let after: readonly [number, string] | undefined = undefined
    let queued = 0
    let published = 0
    while (true) {
      const page: ReadonlyArray<OutgoingMessage> = yield* outbound.queued({
        createdBefore,
        limit: 200,
        ...(options.createdAfter !== undefined ? { createdAfter: options.createdAfter } : {}),
        ...(after !== undefined ? { after } : {}),
      })
      for (const message of page) if (yield* announce(bus, message)) published++
      queued += page.length
      const last = page[page.length - 1]
      if (last === undefined || page.length < 200) break
      after = [last.createdAt.getTime(), last.id]
    }
    return { queued, published }
  })

  const relayOutbox = (
    options: { readonly createdBefore?: number; readonly createdAfter?: number } = {},
  ) => relayOutboxCounted(options).pipe(Effect.map((r) => r.queued))

  return { send, relayOutbox, relayOutboxCounted } satisfies RepliesShape
})

export const layer = Layer.scoped(Replies, make)

/** Replies the outbox relay put on the bus anew (they had never reached it): this process. */
let republishedTotal = 0

/** `chorus_outbox_republished_total` for `GET /metrics`. */
export const outboxPrometheus = (): string =>
  "# HELP chorus_outbox_republished_total Replies the outbox relay published anew " +
  "(stored but never published: a crash between commit and publish).\n" +
  "# TYPE chorus_outbox_republished_total counter\n" +
  `chorus_outbox_republished_total ${republishedTotal}\n`

export interface OutboxRelayOptions {
  /** How often the outbox is swept for stranded replies. Default: 30 seconds. */
  readonly interval?: Duration.DurationInput
  /** A reply queued for less than this is left to its own publish. Default: 30 seconds. */
  readonly grace?: Duration.DurationInput
  /**
   * The sweep looks no further back than this, so it stays inside the bus's duplicate window
   * (10 minutes) and a reply that is on the bus is never stored there twice. Default: 9 minutes.
   */
  readonly horizon?: Duration.DurationInput
}

/**
 * The outbox relay, for the leader: at once, every reply left `queued` (by a previous run, or by
 * a node that died between its commit and its publish); then every `interval`, the replies
 * queued for longer than `grace` within `horizon`. Logs how many were queued and how many the bus
 * stored anew (those had been stranded). Runs until interrupted; a failed pass is retried later.
 */
export const outboxRelay = (options: OutboxRelayOptions = {}) =>
  Effect.gen(function* () {
    const replies = yield* Replies
    const interval = options.interval ?? "30 seconds"
    const grace = Duration.toMillis(options.grace ?? "30 seconds")
    const horizon = Duration.toMillis(options.horizon ?? "9 minutes")
    const report = (pass: "start" | "sweep") => (r: { queued: number; published: number }) =>
      Effect.sync(() => {
        republishedTotal += r.published
      }).pipe(Effect.zipRight(
        r.published > 0
          ? Effect.logInfo("outbox relayed").pipe(
            Effect.annotateLogs({ pass, queued: r.queued, republished: r.published }),
          )
          : Effect.logDebug("outbox checked").pipe(
            Effect.annotateLogs({ pass, queued: r.queued, republished: 0 }),
          ),
      ))
    yield* replies.relayOutboxCounted().pipe(
      Effect.tap(report("start")),
      Effect.retry(
        Schedule.exponential("1 second").pipe(Schedule.either(Schedule.spaced("30 seconds"))),
      ),
    )
    const sweep = Effect.gen(function* () {
      const now = yield* Clock.currentTimeMillis
      return yield* replies.relayOutboxCounted({
        createdBefore: now - grace,
        createdAfter: now - horizon,
      })
    }).pipe(
      Effect.tap(report("sweep")),
      Effect.catchAll((error) =>
        Effect.logWarning("outbox sweep failed; trying again at the next one").pipe(
          Effect.annotateLogs({ error: error.message }),
        )
      ),
    )
    yield* Effect.sleep(interval).pipe(Effect.zipRight(sweep), Effect.forever)
  })
