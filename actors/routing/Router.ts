/**
 * Routing: the queue and auto-assignment. One supervised fiber that, every second (and at once
 * when woken: a new conversation, an operator coming online, a conversation let go):
 *
 * (The loop runs on the cluster's leader only; `runOnce` and `wake` work on every node.)
 *
 * 1. opens snoozed conversations whose time has come;
 * 2. gives back to the queue what an assignee left unanswered for `answerTimeout` since they
 *    got it (the customer still waiting), remembering them: it goes to someone else, never
 *    automatically back to them (they can still take it by hand);
 * 3. assigns queued conversations (open, unassigned), longest waiting first, each to an online
 *    operator of its team with room under their capacity: the least loaded, and among equals
 *    the one who got a conversation longest ago. A conversation no team owns goes to online
 *    admins. Away, offline and disabled operators get nothing new.
 *
 * Every change goes through the conversation's actor with a compare-and-set on the assignee,
 * so an operator who takes a conversation by hand meanwhile keeps it, and two nodes routing at
 * once cannot both assign it.
 */
import { Context, Duration, Effect, Layer, Option, Queue, Schedule } from "effect"
import { Leadership } from "../../core/cluster/mod.ts"
import { Database, type DatabaseError } from "../../core/storage/Database.ts"
import type { ConversationId, OperatorId } from "../../schemas/Ids.ts"
import { type CommandError, ConversationCommands } from "../conversation/ConversationCommands.ts"
import { millis } from "../conversation/ConversationRows.ts"
import { Replies } from "../conversation/Replies.ts"
import { InboxQueries } from "../conversation/InboxQueries.ts"

export interface RouterOptions {
  /** Assign queued conversations automatically. Default true. */
  readonly autoAssign?: boolean
  /** Unanswered this long after assignment: back to the queue. Zero: never. Default 5 minutes. */
  readonly answerTimeout?: Duration.DurationInput
  /** How often the router looks, besides being woken. Default 1 second. */
  readonly interval?: Duration.DurationInput
  /**
   * Told once to a customer whose conversation waits in the queue after a pass; `{position}`
   * is their place in their team's line. Empty (the default): nothing is sent.
   */
  readonly queueMessage?: string
}

/** What one pass did. */
export interface RoutingPass {
  readonly woken: number
  readonly requeued: number
  readonly assigned: number
  /** Customers told their place in line. */
  readonly announced: number
}

export interface RouterShape {
  /** Route now (also called every `interval`). */
  readonly runOnce: Effect.Effect<RoutingPass, DatabaseError>
  /** Ask for a pass soon (presence changes, conversations let go); never blocks. */
  readonly wake: Effect.Effect<void>
}

export class Router extends Context.Tag("chorus/actors/Router")<Router, RouterShape>() {}

interface Candidate {
  readonly id: OperatorId
  readonly role: string
  readonly capacity: number
  load: number
  lastAssignedAt: number
  readonly teams: ReadonlySet<string>
}

/** Conflicts and closed conversations are expected races: skip them, keep routing. */
const tolerant = <A>(effect: Effect.Effect<A, CommandError>) =>
  effect.pipe(
    Effect.map(Option.some),
    Effect.catchTags({
      CommandConversationNotFound: () => Effect.succeed(Option.none<A>()),
      CommandConversationClosed: () => Effect.succeed(Option.none<A>()),
    }),
    Effect.catchAll((error) =>
      Effect.logWarning("routing change failed; retried on the next pass").pipe(
        Effect.annotateLogs({ error: error.message }),
        Effect.as(Option.none<A>()),
      )
    ),
  )

export const make = (options: RouterOptions = {}) =>
  Effect.gen(function* () {
    const database = yield* Database
    const commands = yield* ConversationCommands
    const replies = yield* Replies
    const queries = yield* InboxQueries
    const leadership = yield* Leadership
    const autoAssign = options.autoAssign ?? true
    const answerTimeoutMs = Duration.toMillis(options.answerTimeout ?? "5 minutes")
    const wakeups = yield* Queue.sliding<void>(1)

    const wakeSnoozed = (now: number) =>
      Effect.gen(function* () {
        const due = yield* database.query("snoozed due", (db) =>
          db.selectFrom("conversations").select("id")
            .where("status", "=", "pending")
            .where("snoozed_until", "<=", now)
            .limit(500)
            .execute())
        let woken = 0
        for (const { id } of due) {
          const result = yield* tolerant(
            commands.change(id as ConversationId, { status: "open" }),
          )
          if (Option.isSome(result) && result.value._tag === "Changed") woken++
        }
        return woken
      })

    const requeueUnanswered = (now: number) =>
      Effect.gen(function* () {
        if (answerTimeoutMs <= 0) {
          return 0
        }
        const stale = yield* database.query("unanswered assignments", (db) =>
          db.selectFrom("conversations").select(["id", "assignee_id"])
            .where("status", "=", "open")
            .where("assignee_id", "is not", null)
            .where("assignee_replied_at", "is", null)
            .where("waiting_since", "is not", null)
            .where("assigned_at", "<=", now - answerTimeoutMs)
            .limit(500)
            .execute())
        let requeued = 0
        for (const { id, assignee_id } of stale) {
          const assignee = assignee_id as OperatorId
          const result = yield* tolerant(
            commands.change(id as ConversationId, {
              assignee: { id: null, expect: assignee, requeuedFrom: assignee },
            }),
          )
          if (Option.isSome(result) && result.value._tag === "Changed") {
            requeued++
            yield* Effect.logInfo("conversation back to the queue: unanswered").pipe(
              Effect.annotateLogs({ conversationId: id, operatorId: assignee }),
            )
          }
        }
        return requeued
      })

    const candidates = Effect.gen(function* () {
      const [operators, members, loadOf] = yield* Effect.all([
        database.query("routable operators", (db) =>
          db.selectFrom("chorus_operators")
            .select(["id", "role", "capacity", "last_assigned_at"])
            .where("presence", "=", "online")
            .where("disabled", "=", 0)
            .execute()),
        database.query("team members", (db) =>
          db.selectFrom("chorus_team_members").select(["team_id", "operator_id"]).execute()),
        queries.loads(),
      ])
      const teamsOf = new Map<string, Set<string>>()
      for (const m of members) {
        const set = teamsOf.get(m.operator_id) ?? new Set<string>()
        set.add(m.team_id)
        teamsOf.set(m.operator_id, set)
      }
      return operators.map((o): Candidate => ({
        id: o.id as OperatorId,
        role: o.role,
        capacity: Number(o.capacity),
        load: loadOf.get(o.id as OperatorId) ?? 0,
        lastAssignedAt: o.last_assigned_at === null ? 0 : millis(o.last_assigned_at),
        teams: teamsOf.get(o.id) ?? new Set(),
      }))
    })

    /**
     * The best operator for a conversation of `teamId`. Never `avoid`: the one who left it
     * unanswered does not get it back automatically (they may take it by hand); if nobody else
     * has room it waits at the head of the queue, where supervisors see it.
     */
    const pick = (
      pool: ReadonlyArray<Candidate>,
      teamId: string | null,
      avoid: string | null,
    ): Candidate | undefined => {
      const eligible = pool.filter((c) =>
        c.id !== avoid && c.load < c.capacity &&
        (teamId === null ? c.role === "admin" : c.teams.has(teamId))
      )
      return [...eligible].sort((a, b) =>
        a.load - b.load || a.lastAssignedAt - b.lastAssignedAt || (a.id < b.id ? -1 : 1)
      )[0]
    }

    const assignQueued = Effect.gen(function* () {
      if (!autoAssign) {
        return 0
      }
      const pool = yield* candidates
      if (
        pool.every((c) =>
          c.load >= c.capacity
        )
      ) {
        return 0
      }
      const queued = yield* database.query("queue", (db) =>
        db.selectFrom("conversations")
          .select(["id", "team_id", "requeued_from", "waiting_since", "created_at"])
          .where("status", "=", "open")
          .where("assignee_id", "is", null)
          .orderBy("waiting_since")
          .orderBy("created_at")
          .limit(1000)
          .execute())
      // Longest waiting first; never-waiting ones last (NULL sorts differently per dialect).
      const ordered = [...queued].sort((a, b) =>
        (a.waiting_since === null ? Infinity : millis(a.waiting_since)) -
          (b.waiting_since === null ? Infinity : millis(b.waiting_since)) ||
        millis(a.created_at) - millis(b.created_at)
      )
      let assigned = 0
      for (const conversation of ordered) {
        const chosen = pick(pool, conversation.team_id, conversation.requeued_from)
        if (chosen === undefined) {
          continue
        }
        const result = yield* tolerant(
          commands.change(conversation.id as ConversationId, {
            assignee: { id: chosen.id, expect: null },
          }),
        )
        if (Option.isSome(result) && result.value._tag === "Changed") {
          chosen.load++
          chosen.lastAssignedAt = Date.now()
          assigned++
        }
      }
      return assigned
    })

    /** Tell each newly queued customer their place, once (`queue_announced_at`). */
    const announcePlaces = Effect.gen(function* () {
      const template = options.queueMessage ?? ""
      if (template.trim() === "") {
        return 0
      }
      // The places as supervisors see them (InboxQueries.queue); only customers who wrote.
      const queue = (yield* queries.queue({ all: true })).filter((q) =>
        q.waitingSince !== null
      )
      if (queue.length === 0) return 0
      const untold = new Set(
        (yield* database.query("queue to announce", (db) =>
          db.selectFrom("conversations").select("id")
            .where(
              "id",
              "in",
              queue.map((q) =>
                q.conversationId
              ),
            )
            .where("queue_announced_at", "is", null)
            .execute())).map((r) => r.id),
      )
      let announced = 0
      for (const { conversationId, position } of queue) {
        if (!untold.has(conversationId)) continue
        // Marked first: a crash between the two loses one notice, never sends two.
        const marked = yield* database.query("mark queue announced", (db) =>
          db.updateTable("conversations").set({ queue_announced_at: Date.now() })
            .where("id", "=", conversationId).where("queue_announced_at", "is", null)
            .executeTakeFirst())
        if (Number(marked.numUpdatedRows) === 0) {
          continue
        }
        yield* replies.send({
          conversationId,
          text: template.replaceAll("{position}", String(position)),
          attachments: [],
          identityId: undefined,
          clientId: `queue-place:${conversationId}`,
          authorId: null,
        }).pipe(
          Effect.tap(() => {
            announced++
          }),
          Effect.catchAll((error) =>
            Effect.logWarning("could not tell the customer their place in line").pipe(
              Effect.annotateLogs({ conversationId, error: error.message }),
            )
          ),
        )
      }
      return announced
    })

    // One pass at a time (the loop's and any caller's), so loads are counted once.
    const oneAtATime = yield* Effect.makeSemaphore(1)
    const runOnce = Effect.gen(function* () {
      const now = Date.now()
      const woken = yield* wakeSnoozed(now)
      const requeued = yield* requeueUnanswered(now)
      const assigned = yield* assignQueued
      const announced = yield* announcePlaces
      return { woken, requeued, assigned, announced } satisfies RoutingPass
    }).pipe(oneAtATime.withPermits(1), Effect.withSpan("Router.runOnce"))

    const interval = options.interval ?? "1 second"
    // One pass at a time: every interval, or sooner when woken; on the leader only (its
    // compare-and-sets make a second router harmless, but only one should do the work).
    yield* leadership.whileLeader(
      "router",
      Effect.raceFirst(Queue.take(wakeups), Effect.sleep(interval)).pipe(
        Effect.zipRight(runOnce),
        Effect.catchAllCause((cause) =>
          Effect.logWarning("routing pass failed; next one soon").pipe(
            Effect.annotateLogs({ cause: String(cause) }),
          )
        ),
        Effect.repeat(Schedule.forever),
      ),
    )

    return {
      runOnce,
      wake: Queue.offer(wakeups, undefined).pipe(Effect.asVoid),
    } satisfies RouterShape
  })

export const layer = (options: RouterOptions = {}) => Layer.scoped(Router, make(options))
