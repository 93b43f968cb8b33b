/**
 * The channel actor: one per channel account (key `channel:account`), sending that account's
 * replies through its channel's adapter under the account's delivery policy (core/delivery):
 *
 * 1. The reply is read first; one no longer `queued` is skipped (a late duplicate from the outbox
 *    relay or a redelivery never sends twice).
 * 2. Checks that need no provider: expired (`expireAfter`), no adapter, no recipient, recipient
 *    unreachable — each a permanent failure.
 * 3. The account's **bulkhead** admits it (or it goes back to the bus for later: a hung
 *    provider holds only its own account's places); the **circuit breaker** lets it through
 *    (or, while open, it falls back at once when a fallback is configured, else waits on the bus
 *    for the next probe without spending an attempt); **pacing** waits its turn at the
 *    provider's limits; then one provider call under the **timeout**.
 * 4. Every call is recorded (`delivery_attempts`). A retryable failure is tried again after the
 *    **retry** schedule's delay (short ones slept here, long ones on the bus), at most
 *    `maxAttempts` calls across crashes and redeliveries (the count is stored).
 * 5. It ends `sent` (with the provider's id), or failed for good, which `Failures.ts` turns into
 *    a fallback copy on the customer's next reachable channel or a dead letter for a person.
 *
 * Sends of one account run concurrently up to the bulkhead's size; the order of one
 * conversation's replies is kept by the outbound stream (ordered per conversation).
 */
import { Clock, Context, Duration, Effect, Either, Layer, Option } from "effect"
import {
  ChannelAdapters,
  isRetryable,
  noAdapter,
  ProviderRejected,
  ProviderUnavailable,
  type SendError,
} from "../../core/channels/ChannelAdapter.ts"
import * as Policy from "../../core/delivery/Policy.ts"
import type { DatabaseError } from "../../core/storage/Database.ts"
import type { ChannelIdentity } from "../../schemas/Contact.ts"
import type { MessageId } from "../../schemas/Ids.ts"
import type { OutgoingMessage } from "../../schemas/Message.ts"
import { type AttemptRecord, OutboundStore } from "../conversation/OutboundWrites.ts"
import { type ChannelAccount, ChannelAccounts } from "./ChannelAccounts.ts"
import { Failures } from "./Failures.ts"

export type DeliveryReport =
  /** This delivery sent (or failed) the message and recorded it. */
  | { readonly _tag: "Recorded"; readonly message: OutgoingMessage; readonly attempts: number }
  /** The message was no longer `queued`: nothing sent; its current state. */
  | {
    readonly _tag: "AlreadyRecorded"
    readonly message: OutgoingMessage
    readonly attempts: number
  }
  /** Still `queued`: hand it back to the bus, to be tried again after `delay`. */
  | { readonly _tag: "Deferred"; readonly delay: Duration.Duration; readonly reason: string }
  /** No outgoing message with this id is stored. */
  | { readonly _tag: "Missing" }

export interface ChannelActorsShape {
  /** Send a queued reply (or find it handled already). */
  readonly deliver: (messageId: MessageId) => Effect.Effect<DeliveryReport, DatabaseError>
  /**
   * A reply the provider failed after it took it (a receipt): fall back or dead-letter it, like
   * a send that failed.
   */
  readonly settleLateFailure: (
    messageId: MessageId,
  ) => Effect.Effect<DeliveryReport, DatabaseError>
}

export class ChannelActors extends Context.Tag("chorus/actors/ChannelActors")<
  ChannelActors,
  ChannelActorsShape
>() {}

/** The actor key of a channel account. */
export const channelActorKey = (channel: string, account: string): string => `${channel}:${account}`

/** Retry delays up to this are slept in place; longer ones hand the reply back to the bus. */
export const INLINE_DELAY = Duration.seconds(5)
/** After this long in one handler, the next retry waits on the bus too. */
export const INLINE_BUDGET = Duration.seconds(30)

export const layer = Layer.effect(
  ChannelActors,
  Effect.gen(function* () {
    const outbound = yield* OutboundStore
    const adapters = yield* ChannelAdapters
    const accounts = yield* ChannelAccounts
    const failures = yield* Failures

    const attemptOf = (
      message: OutgoingMessage,
      startedAt: number,
      durationMs: number,
      result: Either.Either<unknown, SendError>,
    ): AttemptRecord => ({
      messageId: message.id,
      channel: message.channel,
      account: message.account,
      startedAt,
      durationMs,
      outcome: Either.isRight(result)
        ? "sent"
        : result.left._tag === "ProviderRejected"
        ? "rejected"
        : result.left.code === "timeout"
        ? "timeout"
        : "unavailable",
      ...(Either.isLeft(result) ? { code: result.left.code, reason: result.left.reason } : {}),
    })

    /** Calls until sent, failed for good, or handed back to the bus. */
    const sendLoop = (
      acct: ChannelAccount,
      message: OutgoingMessage,
      recipient: ChannelIdentity,
      send: Effect.Effect<{ readonly externalId: string }, SendError>,
      done: number,
    ): Effect.Effect<DeliveryReport, DatabaseError> =>
      Effect.gen(function* () {
        const policy = acct.policy
        let calls = done
        const began = yield* Clock.currentTimeMillis
        while (true) {
          const permit = yield* acct.breaker.acquire.pipe(Effect.either)
          if (Either.isLeft(permit)) {
            const open = permit.left
            if (policy.fallback.length > 0) {
              return yield* failures.fail(message, {
                error: new ProviderUnavailable({ code: "circuit_open", reason: open.message }),
                attempts: calls,
              })
            }
            return {
              _tag: "Deferred",
              delay: Duration.max(open.retryAfter, Duration.millis(250)),
              reason: open.message,
            } satisfies DeliveryReport
          }
          yield* acct.pace(recipient.externalId)
          const startedAt = yield* Clock.currentTimeMillis
          const result = yield* send.pipe(
            Effect.timeoutFail({
              duration: policy.timeout,
              onTimeout: () =>
                new ProviderUnavailable({
                  code: "timeout",
                  reason: `no answer within ${Duration.format(policy.timeout)}`,
                }),
            }),
            Effect.either,
            // A probe interrupted (shutdown) must not leave the breaker waiting for it forever.
            Effect.onInterrupt(() => acct.breaker.record(permit.right, "failure")),
          )
          const durationMs = (yield* Clock.currentTimeMillis) - startedAt
          calls += 1
          const attempt = attemptOf(message, startedAt, durationMs, result)
          // The provider answered (even "no"): only unavailability says it is unwell; a rate
          // limit is pacing's business, not the breaker's.
          const unwell = Either.isLeft(result) && isRetryable(result.left) &&
            result.left.code !== "429"
          yield* acct.breaker.record(permit.right, unwell ? "failure" : "success")
          yield* acct.observe({
            ok: !unwell,
            latencyMs: durationMs,
            ...(Either.isLeft(result)
              ? { error: { code: result.left.code, reason: result.left.reason } }
              : {}),
          })
          if (Either.isRight(result)) {
            acct.settled("sent")
            const recorded = yield* outbound.recordDelivery({
              messageId: message.id,
              outcome: { state: "sent", externalId: result.right.externalId },
              attempts: calls,
              attempt,
            })
            if (Option.isNone(recorded)) return { _tag: "Missing" } satisfies DeliveryReport
            return {
              _tag: recorded.value.changed ? "Recorded" : "AlreadyRecorded",
              message: recorded.value.message,
              attempts: calls,
            } satisfies DeliveryReport
          }
          const error = result.left
          if (!isRetryable(error) || calls >= policy.maxAttempts) {
            return yield* failures.fail(message, {
              error: isRetryable(error)
                ? new ProviderUnavailable({
                  code: error.code,
                  reason: `gave up after ${calls} attempts: ${error.reason}`,
                })
                : error,
              attempts: calls,
              attempt,
            })
          }
          yield* outbound.recordAttempt({ ...attempt, attempts: calls })
          const delay = yield* Policy.retryDelay(policy, calls, error.retryAfter)
          yield* Effect.logDebug("send attempt failed; will retry").pipe(
            Effect.annotateLogs({
              messageId: message.id,
              attempt: calls,
              error: error.message,
              delay: Duration.format(delay),
            }),
          )
          // A long delay, or a handler busy for long already, goes back to the bus: a worker
          // is not held by one reply, and the bus's handler timeout is never reached.
          const busy = (yield* Clock.currentTimeMillis) - began
          if (
            Duration.greaterThan(delay, INLINE_DELAY) || busy > Duration.toMillis(INLINE_BUDGET)
          ) {
            return { _tag: "Deferred", delay, reason: error.message } satisfies DeliveryReport
          }
          yield* Effect.sleep(delay)
        }
      })

    const deliver = Effect.fn("ChannelActor.deliver")(function* (messageId: MessageId) {
      const stored = yield* outbound.reply(messageId)
      if (Option.isNone(stored)) return { _tag: "Missing" } satisfies DeliveryReport
      const { message, attempts: done } = stored.value
      if (message.delivery.state !== "queued") {
        return { _tag: "AlreadyRecorded", message, attempts: done } satisfies DeliveryReport
      }
      const acct = yield* accounts.get(message.channel, message.account)
      const policy = acct.policy
      const now = yield* Clock.currentTimeMillis
      const permanent = (code: string, reason: string, unreachable?: boolean) =>
        failures.fail(message, {
          error: new ProviderRejected({ code, reason, ...(unreachable ? { unreachable } : {}) }),
          attempts: done,
        })
      if (now - message.createdAt.getTime() > Duration.toMillis(policy.expireAfter)) {
        return yield* permanent(
          "expired",
          `not sent within ${Duration.format(policy.expireAfter)} of being written`,
        )
      }
      const adapter = adapters.get(message.channel)
      if (Option.isNone(adapter)) {
        return yield* failures.fail(message, { error: noAdapter(message.channel), attempts: done })
      }
      const recipient = yield* outbound.identity(message.identityId)
      if (Option.isNone(recipient)) {
        return yield* permanent(
          "no_recipient",
          `channel identity ${message.identityId} no longer exists`,
        )
      }
      if (!recipient.value.reachable) {
        return yield* permanent(
          "unreachable",
          `the customer cannot be reached on ${message.channel} (blocked, left, or the address bounces)`,
        )
      }
      if (done >= policy.maxAttempts) {
        return yield* failures.fail(message, {
          error: new ProviderUnavailable({
            code: "exhausted",
            reason: `gave up after ${done} attempts`,
          }),
          attempts: done,
        })
      }
      return yield* acct.bulkhead.run(
        sendLoop(
          acct,
          message,
          recipient.value,
          adapter.value.send(message, recipient.value),
          done,
        ),
      ).pipe(
        Effect.catchTag("BulkheadFull", (full) =>
          Effect.succeed(
            {
              _tag: "Deferred",
              delay: Duration.millis(500 + Math.floor(Math.random() * 500)),
              reason: full.message,
            } satisfies DeliveryReport,
          )),
      )
    })

    const settleLateFailure = Effect.fn("ChannelActor.settleLateFailure")(function* (
      messageId: MessageId,
    ) {
      const stored = yield* outbound.reply(messageId)
      if (Option.isNone(stored)) return { _tag: "Missing" } satisfies DeliveryReport
      return yield* failures.afterReceipt(stored.value.message, stored.value.attempts)
    })

    return { deliver, settleLateFailure } satisfies ChannelActorsShape
  }),
)
