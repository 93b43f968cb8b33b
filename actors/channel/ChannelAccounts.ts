/**
 * The channel actors' state: one per channel account (`channel:account`), made on its first reply
 * and kept while the node runs (a node has tens of accounts, not millions). Each owns what must be
 * shared by every send of its account and by nothing else: its delivery policy, circuit breaker,
 * bulkhead, pacing buckets and health figures. A provider that fails or hangs trips only its own
 * breaker and fills only its own bulkhead.
 *
 * A monitor fiber recomputes every account's health every `healthInterval` (and at once when a
 * breaker changes state), and publishes `channel.health_changed` when a status changes, and
 * `channel.alert` when an account goes down or comes back up. The monitor runs on the cluster's
 * leader only (the node that sends); `health` answers on every node from its own figures.
 */
import { Clock, Context, Duration, Effect, Layer, Option, Queue, Schedule } from "effect"
import { Bus } from "../../core/bus/Bus.ts"
import { ChannelAdapters } from "../../core/channels/ChannelAdapter.ts"
import { Leadership } from "../../core/cluster/mod.ts"
import { Config } from "../../core/config/ChorusConfig.ts"
import * as Bulkhead from "../../core/delivery/Bulkhead.ts"
import * as CircuitBreaker from "../../core/delivery/CircuitBreaker.ts"
import * as Pacing from "../../core/delivery/Pacing.ts"
import * as Policy from "../../core/delivery/Policy.ts"
import { newId } from "../../core/ids.ts"
import { publishEvent } from "../../core/pipeline/Events.ts"
import type { ChannelHealth, ChannelStatus } from "../../schemas/ChannelHealth.ts"
import { OutboundStore } from "../conversation/OutboundWrites.ts"

/** Calls kept for the error rate and latency. */
const WINDOW_MS = 5 * 60_000
const MAX_SAMPLES = 1_000
/** The calls whose failure rate decides `degraded`. */
const RECENT_CALLS = 20

interface Sample {
  readonly at: number
  readonly ok: boolean
  readonly latencyMs: number
}

export interface ChannelAccount {
  readonly key: string
  readonly channel: string
  readonly account: string
  readonly policy: Policy.DeliveryPolicy
  readonly breaker: CircuitBreaker.CircuitBreaker
  readonly bulkhead: Bulkhead.Bulkhead
  /** Wait for the account's and the recipient's turn (no-op without pacing). */
  readonly pace: (recipient: string) => Effect.Effect<void>
  /** Count one provider call (`ok` false: a retryable failure). */
  readonly observe: (sample: {
    readonly ok: boolean
    readonly latencyMs: number
    readonly error?: { readonly code: string; readonly reason: string }
  }) => Effect.Effect<void>
  /** Count a reply that ended (`sent` or `failed`). */
  readonly settled: (state: "sent" | "failed") => void
}

export interface ChannelAccountsShape {
  readonly get: (channel: string, account: string) => Effect.Effect<ChannelAccount>
  /** Health of every account this node knows (sending or with replies waiting). */
  readonly health: Effect.Effect<ReadonlyArray<ChannelHealth>>
  /** The policy an account has (or would have). */
  readonly policyOf: (channel: string, account: string) => Policy.DeliveryPolicy
}

export class ChannelAccounts extends Context.Tag("chorus/actors/ChannelAccounts")<
  ChannelAccounts,
  ChannelAccountsShape
>() {}

export interface ChannelAccountsOptions {
  /** Code-level overrides over every layer of settings (tests). */
  readonly overrides?: Policy.DeliverySettingsInput
  /** How often health is recomputed. Default: 2 seconds. */
  readonly healthInterval?: Duration.DurationInput
}

const percentile = (sorted: ReadonlyArray<number>, p: number): number | null =>
  sorted.length === 0 ? null : sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!

/** down: breaker open; degraded: probing, or at least 20% of the latest calls failed. */
export const statusOf = (
  breaker: CircuitBreaker.BreakerState,
  calls: number,
  errorRate: number,
): ChannelStatus =>
  breaker === "open"
    ? "down"
    : breaker === "half_open" || (calls >= 5 && errorRate >= 0.2)
    ? "degraded"
    : "up"

export const layer = (options: ChannelAccountsOptions = {}) =>
  Layer.scoped(
    ChannelAccounts,
    Effect.gen(function* () {
      const config = yield* Config
      const adapters = yield* ChannelAdapters
      const outbound = yield* OutboundStore
      const bus = yield* Bus
      const leadership = yield* Leadership
      const wake = yield* Queue.sliding<void>(1)
      const accounts = new Map<
        string,
        {
          readonly runtime: ChannelAccount
          samples: Array<Sample>
          lastError: { code: string; reason: string; at: number } | null
          sent: number
          failed: number
        }
      >()

      const policyOf = (channel: string, account: string) =>
        Policy.forAccount(
          config.delivery,
          adapters.get(channel).pipe(
            Option.flatMap((a) => Option.fromNullable(a.delivery)),
            Option.getOrUndefined,
          ),
          channel,
          account,
          options.overrides,
        )

      const get = (channel: string, account: string): Effect.Effect<ChannelAccount> =>
        Effect.suspend(() => {
          const key = `${channel}:${account}`
          const known = accounts.get(key)
          if (known !== undefined) return Effect.succeed(known.runtime)
          return Effect.gen(function* () {
            const policy = policyOf(channel, account)
            const breaker = yield* CircuitBreaker.make({
              ...Policy.breakerOptions(policy),
              onChange: (from, to) =>
                Effect.logInfo("circuit breaker changed").pipe(
                  Effect.annotateLogs({ channel, account, from, to }),
                  Effect.zipRight(wake.offer(undefined)),
                  Effect.asVoid,
                ),
            })
            const bulkhead = yield* Bulkhead.make(policy.bulkhead)
            const accountPace = policy.pacing.account === undefined
              ? undefined
              : yield* Pacing.bucket(policy.pacing.account)
            const recipientPace = policy.pacing.recipient === undefined
              ? undefined
              : Pacing.keyed(policy.pacing.recipient)
            // Made twice at once? The first one stored wins; both are equivalent and empty.
            const again = accounts.get(key)
            if (again !== undefined) return again.runtime
            const entry = {
              samples: [] as Array<Sample>,
              lastError: null as { code: string; reason: string; at: number } | null,
              sent: 0,
              failed: 0,
              runtime: undefined as unknown as ChannelAccount,
            }
            const runtime: ChannelAccount = {
              key,
              channel,
              account,
              policy,
              breaker,
              bulkhead,
              pace: (recipient) =>
                Effect.zipRight(
                  recipientPace === undefined ? Effect.void : recipientPace.take(recipient),
                  accountPace === undefined ? Effect.void : accountPace.take,
                ),
              observe: (sample) =>
                Clock.currentTimeMillis.pipe(Effect.map((now) => {
                  entry.samples.push({ at: now, ok: sample.ok, latencyMs: sample.latencyMs })
                  if (entry.samples.length > MAX_SAMPLES) entry.samples.splice(0, 100)
                  if (sample.error !== undefined) entry.lastError = { ...sample.error, at: now }
                })),
              settled: (state) => {
                if (state === "sent") entry.sent += 1
                else entry.failed += 1
              },
            }
            entry.runtime = runtime
            accounts.set(key, entry)
            return runtime
          })
        })

      const snapshot = (
        now: number,
        backlog: ReadonlyMap<string, { queued: number; oldest: number }>,
      ) =>
        Effect.gen(function* () {
          const out: Array<Omit<ChannelHealth, "since">> = []
          for (const key of new Set([...accounts.keys(), ...backlog.keys()])) {
            const [channel, ...rest] = key.split(":")
            const account = rest.join(":")
            const runtime = yield* get(channel!, account)
            const entry = accounts.get(key)!
            entry.samples = entry.samples.filter((s) => now - s.at < WINDOW_MS)
            const calls = entry.samples.length
            const failures = entry.samples.filter((s) => !s.ok).length
            const latencies = entry.samples.map((s) => s.latencyMs).sort((a, b) => a - b)
            const breaker = yield* runtime.breaker.snapshot
            const load = yield* runtime.bulkhead.load
            const errorRate = calls === 0 ? 0 : failures / calls
            // The status follows the latest calls: an outage an hour ago is not "degraded" now.
            const latest = entry.samples.slice(-RECENT_CALLS)
            const latestRate = latest.length === 0
              ? 0
              : latest.filter((s) => !s.ok).length / latest.length
            const waiting = backlog.get(key)
            out.push({
              channel: channel!,
              account,
              status: statusOf(breaker.state, latest.length, latestRate),
              breaker: {
                state: breaker.state,
                probeAt: breaker.probeAt === undefined ? null : new Date(breaker.probeAt),
                consecutiveFailures: breaker.consecutiveFailures,
                trips: breaker.trips,
              },
              calls,
              errorRate,
              latencyMs: { p50: percentile(latencies, 0.5), p95: percentile(latencies, 0.95) },
              queueDepth: waiting?.queued ?? 0,
              oldestQueued: waiting === undefined ? null : new Date(waiting.oldest),
              inFlight: load.running,
              waiting: load.waiting,
              sent: entry.sent,
              failed: entry.failed,
              lastError: entry.lastError === null
                ? null
                : { ...entry.lastError, at: new Date(entry.lastError.at) },
            })
          }
          return out
        })

      /** Status per account as last published, and since when. */
      const published = new Map<string, { status: ChannelStatus; since: number }>()

      const readBacklog = outbound.backlog.pipe(
        Effect.map((rows) => new Map(rows.map((r) => [`${r.channel}:${r.account}`, r] as const))),
        Effect.orElseSucceed(() => new Map<string, { queued: number; oldest: number }>()),
      )

      const health = Effect.gen(function* () {
        const now = yield* Clock.currentTimeMillis
        const list = yield* snapshot(now, yield* readBacklog)
        return list.map((h): ChannelHealth => ({
          ...h,
          since: new Date(published.get(`${h.channel}:${h.account}`)?.since ?? now),
        }))
      })

      const monitor = Effect.gen(function* () {
        const now = yield* Clock.currentTimeMillis
        const list = yield* snapshot(now, yield* readBacklog)
        for (const h of list) {
          const key = `${h.channel}:${h.account}`
          const before = published.get(key)
          if (before !== undefined && before.status === h.status) continue
          // A first sight of a healthy account is not news.
          published.set(key, { status: h.status, since: now })
          if (before === undefined && h.status === "up") continue
          yield* publishEvent(bus, newId.event(), {
            type: "channel.health_changed",
            version: 1,
            id: newId.event(),
            occurredAt: new Date(now),
            health: { ...h, since: new Date(now) },
          })
          const alert = h.status === "down"
            ? "down" as const
            : before?.status === "down"
            ? "recovered" as const
            : undefined
          if (alert !== undefined) {
            const reason = alert === "down"
              ? `circuit breaker open after ${h.breaker.consecutiveFailures} failures in a row` +
                (h.lastError === null
                  ? ""
                  : `; last error ${h.lastError.code}: ${h.lastError.reason}`)
              : "the provider answers again"
            yield* Effect.logWarning(`channel ${alert}`).pipe(
              Effect.annotateLogs({ channel: h.channel, account: h.account, reason }),
            )
            yield* publishEvent(bus, newId.event(), {
              type: "channel.alert",
              version: 1,
              id: newId.event(),
              occurredAt: new Date(now),
              kind: alert,
              channel: h.channel,
              account: h.account,
              reason,
            })
          }
        }
      }).pipe(
        Effect.catchAllCause((cause) =>
          Effect.logWarning("channel health not published").pipe(Effect.annotateLogs({ cause }))
        ),
      )

      const interval = Duration.decode(options.healthInterval ?? "2 seconds")
      // On the leader only: it is the node that sends, so its breakers are the ones that matter,
      // and one node's alerts are enough.
      yield* leadership.whileLeader(
        "channel health monitor",
        Effect.raceFirst(Effect.sleep(interval), Queue.take(wake)).pipe(
          Effect.zipRight(monitor),
          Effect.repeat(Schedule.forever),
          Effect.interruptible,
        ),
      )

      return { get, health, policyOf } satisfies ChannelAccountsShape
    }),
  )
