/**
 * Delivery receipts: what a provider says became of a reply after it took it (WhatsApp's and
 * Viber's status webhooks, a read receipt, an e-mail bounce), reported by the channel plugin
 * with `chorus.channels.status` and naming the reply by its provider id on the account.
 *
 * States only move forward (sent → delivered → read); a late `delivered` after `read` changes
 * nothing, and a failure is taken only before delivery. Every change is recorded and announced
 * as `message.delivery_changed` (event id derived from the message and the state, so a repeated
 * receipt is one event). A failed receipt also marks the identity unreachable when the provider
 * says nothing can arrive, and hands the reply to the outbound side like any failed send (the
 * fallback policy or the dead-letter list, `Failures.ts`).
 *
 * A status can overtake our own record of the send (the provider answers the webhook before the
 * send's result is committed): an unknown id is looked up again for a few seconds before the
 * receipt is answered `found: false`.
 */
import { sql } from "kysely"
import { Effect, Option, Schedule } from "effect"
import type { BusError, BusShape } from "../../core/bus/Bus.ts"
import { publishDeliveryChanged } from "../../core/pipeline/Events.ts"
import type { DatabaseError, DatabaseShape } from "../../core/storage/Database.ts"
import type { OutgoingMessage } from "../../schemas/Message.ts"
import type { DeliveryReceipt } from "../../schemas/Outbound.ts"
import { toMessage } from "../conversation/ConversationRows.ts"
import { publishOutbound } from "../conversation/Replies.ts"

const RANK: Record<string, number> = { queued: 0, sent: 1, delivered: 2, read: 3 }

export interface ReceiptResult {
  /** A reply with this provider id is stored. */
  readonly found: boolean
  /** Its state changed. */
  readonly changed: boolean
  /** The reply as it is now (when found). */
  readonly message?: OutgoingMessage
}

/** Whether `next` moves a reply in state `current` forward. */
export const advances = (current: string, next: DeliveryReceipt["state"]): boolean =>
  next === "failed"
    ? current === "queued" || current === "sent"
    : current !== "failed" && (RANK[next] ?? 0) > (RANK[current] ?? 0)

export const record = (
  database: DatabaseShape,
  bus: BusShape,
  channel: string,
  receipt: DeliveryReceipt,
  options: { readonly lookFor?: Schedule.Schedule<unknown> } = {},
): Effect.Effect<ReceiptResult, DatabaseError | BusError> =>
  Effect.gen(function* () {
    const find = database.query("receipt: find reply", (db) =>
      db.selectFrom("messages").selectAll()
        .where("channel", "=", channel)
        .where("account", "=", receipt.account)
        .where("external_id", "=", receipt.externalId)
        .where("direction", "=", sql.lit("out"))
        .executeTakeFirst()).pipe(
        Effect.flatMap((row) =>
          row === undefined ? Effect.fail("missing" as const) : Effect.succeed(row)
        ),
      )
    const found = yield* find.pipe(
      Effect.retry(
        options.lookFor ?? Schedule.spaced("250 millis").pipe(Schedule.upTo("3 seconds")),
      ),
      Effect.option,
    )
    if (Option.isNone(found)) return { found: false, changed: false } satisfies ReceiptResult
    const row = found.value
    const current = row.delivery_state ?? "queued"
    if (!advances(current, receipt.state)) {
      return {
        found: true,
        changed: false,
        message: toMessage(row) as OutgoingMessage,
      } satisfies ReceiptResult
    }
    const at = (receipt.at ?? new Date()).getTime()
    const error = receipt.state === "failed"
      ? {
        code: receipt.error?.code ?? "failed",
        message: receipt.error?.reason ?? "the provider reported the message as not delivered",
        retryable: false,
      }
      : undefined
    const updated = yield* database.query("receipt: advance", (db) =>
      db.updateTable("messages")
        .set({
          delivery_state: receipt.state,
          delivery_at: at,
          ...(error !== undefined ? { delivery_error: JSON.stringify(error) } : {}),
        })
        .where("id", "=", row.id)
        // Compare-and-set: a concurrent receipt or send record wins, this one is re-read. The
        // state inline (one of a few), not bound: see `ConversationStore`'s duplicate check.
        .where("delivery_state", "=", sql.lit(current))
        .executeTakeFirst())
    if (Number(updated.numUpdatedRows) === 0) {
      return yield* record(database, bus, channel, receipt, { lookFor: Schedule.stop })
    }
    if (receipt.state === "failed" && receipt.unreachable === true && row.identity_id !== null) {
      const identityId = row.identity_id
      yield* database.query("receipt: unreachable", (db) =>
        db.updateTable("channel_identities").set({ reachable: 0 }).where("id", "=", identityId)
          .execute())
    }
    const message = toMessage({
      ...row,
      delivery_state: receipt.state,
      delivery_at: at,
      ...(error !== undefined ? { delivery_error: JSON.stringify(error) } : {}),
    }) as OutgoingMessage
    yield* publishDeliveryChanged(bus, `${message.id}:${message.delivery.state}`, message)
    if (receipt.state === "failed") {
      // The channel side falls back or dead-letters it, like a send that failed.
      yield* publishOutbound(bus, message, { after: "failed", busId: `${message.id}:failed` })
    }
    return { found: true, changed: true, message } satisfies ReceiptResult
  })
