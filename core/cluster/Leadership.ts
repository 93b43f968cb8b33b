/**
 * Leadership: one node per namespace runs what assumes a single owner (the ordered inbound and
 * outbound consumers, the router's loop, the outbox relay and sweep, the channel health alerts);
 * every node serves HTTP.
 *
 * On JetStream the leader holds a lease in the KV bucket `<namespace>_leases` (history 1), key
 * `leader`, value `{ node, until }`:
 *
 * - a node takes a lease nobody holds with `create` (fails if a live value is there; a deleted
 *   one is taken over at its revision), or one whose holder stopped renewing with `update` at the
 *   revision it saw (compare-and-set: of several standbys only one wins);
 * - the holder renews every ttl/3 with `update` at its last revision. A renew that fails (the
 *   revision moved: someone took the lease) or does not succeed in time means the lease is LOST at
 *   once: `isLeader` turns false and everything run by `whileLeader` is interrupted;
 * - on a clean shutdown the holder deletes the key at its revision, and a standby (looking every
 *   min(ttl/3, 1 s)) takes over at its next look.
 *
 * Clocks: `until` is written with the holder's clock and is only informational (logs, operators
 * reading the bucket). A standby never compares it with its own clock: it takes over a lease only
 * after it has seen the SAME revision for a full ttl by its own clock. The holder counts its ttl
 * from the moment it sent its last successful renew, which is before any standby can have seen
 * that revision, so the holder's lease always ends (by its own clock) before a standby's wait
 * does — whatever the clocks read; only their rates must roughly agree.
 *
 * The embedded bus has one process (it owns the SQLite file): that node is always the leader.
 */
import * as NodeOs from "node:os"
import { randomBytes } from "node:crypto"
import {
  Clock,
  Context,
  Duration,
  Effect,
  Fiber,
  Layer,
  Option,
  Schedule,
  Schema,
  type Scope,
  Stream,
  SubscriptionRef,
} from "effect"
import * as LeaseBucket from "./LeaseBucket.ts"
import type { LeaseUnavailable } from "./LeaseBucket.ts"

export interface LeadershipShape {
  /** This node's id (config `cluster.nodeId`, else host name, pid and a random suffix). */
  readonly nodeId: string
  /** Leader for its whole life, with no lease (one process: the embedded bus, tests). */
  readonly alone: boolean
  /** Whether this node holds the lease now. */
  readonly isLeader: Effect.Effect<boolean>
  /** The current value, then every change. */
  readonly changes: Stream.Stream<boolean>
  /**
   * Run `effect` (with a scope of its own) while this node leads: started when it becomes the
   * leader, interrupted (its scope closed) as soon as the lease is lost or the caller's scope
   * closes, started again when the lease comes back. A failure is logged and the effect started
   * again after a pause while the node still leads. Returns at once (runs in the background of the
   * caller's scope).
   *
   * @example
   * yield* leadership.whileLeader("outbound consumer", Layer.build(OutboundConsumer.layer()))
   */
  readonly whileLeader: <A, E, R>(
    name: string,
    effect: Effect.Effect<A, E, R>,
  ) => Effect.Effect<void, never, Exclude<R, Scope.Scope> | Scope.Scope>
}

export class Leadership extends Context.Tag("chorus/core/cluster/Leadership")<
  Leadership,
  LeadershipShape
>() {}

export { LeaseConflict, LeaseUnavailable } from "./LeaseBucket.ts"

/** The value stored under `leader`. */
export const LeaseValue = Schema.Struct({
  node: Schema.String,
  /** Epoch ms by the holder's clock: informational only (see the module comment). */
  until: Schema.Number,
})
export type LeaseValue = typeof LeaseValue.Type

const decodeLease = Schema.decodeUnknownOption(Schema.parseJson(LeaseValue))

/** `<hostname>-<pid>-<random>`: unique per process, readable in logs. */
export const defaultNodeId = (): string =>
  `${NodeOs.hostname()}-${process.pid}-${randomBytes(3).toString("hex")}`

/** Builds the shape from a SubscriptionRef the lease (or nothing) drives. */
const makeShape = (
  nodeId: string,
  leading: SubscriptionRef.SubscriptionRef<boolean>,
  alone = false,
) => {
  const awaitState = (wanted: boolean) =>
    leading.changes.pipe(
      Stream.filter((l) => l === wanted),
      Stream.take(1),
      Stream.runDrain,
    )
  const whileLeader = <A, E, R>(name: string, effect: Effect.Effect<A, E, R>) => {
    // Runs until interrupted: a completed effect keeps its scope (what it built) open.
    // Defects too (sandboxed): a task that dies is started again after a pause, never in a
    // tight loop.
    const guarded = Effect.scoped(Effect.zipRight(effect, Effect.never)).pipe(
      Effect.sandbox,
      Effect.tapError((cause) =>
        Effect.logWarning("leader task failed; starting it again").pipe(
          Effect.annotateLogs({ task: name, nodeId, cause: String(cause) }),
        )
      ),
      Effect.retry(
        Schedule.exponential("500 millis").pipe(Schedule.either(Schedule.spaced("10 seconds"))),
      ),
    )
    const cycle = Effect.gen(function* () {
      yield* awaitState(true)
      const fiber = yield* Effect.fork(guarded)
      yield* Effect.raceFirst(awaitState(false), Fiber.await(fiber)).pipe(
        Effect.ensuring(Fiber.interrupt(fiber)),
      )
    })
    return cycle.pipe(Effect.forever, Effect.interruptible, Effect.forkScoped, Effect.asVoid)
  }
  return {
    nodeId,
    alone,
    isLeader: SubscriptionRef.get(leading),
    changes: leading.changes,
    whileLeader,
  } satisfies LeadershipShape
}

/** Always the leader: the embedded bus (one process) and tests. */
export const single = (nodeId: string = defaultNodeId()): Layer.Layer<Leadership> =>
  Layer.effect(
    Leadership,
    SubscriptionRef.make(true).pipe(Effect.map((leading) => makeShape(nodeId, leading, true))),
  )

export interface LeaseOptions {
  readonly servers: string | ReadonlyArray<string>
  /** The bus namespace: the bucket is `<namespace>_leases`. */
  readonly namespace: string
  /** Default: {@link defaultNodeId}. */
  readonly nodeId?: string
  /** How long a lease lasts without a renew. Default: 10 seconds. */
  readonly ttl?: Duration.DurationInput
  /** How often a standby looks at the lease. Default: min(ttl/3, 1 second). */
  readonly pollInterval?: Duration.DurationInput
  /** KV replicas (as the streams'). Default 1. */
  readonly replicas?: number
}

export const LEASE_KEY = "leader"

export const bucketName = (namespace: string) => `${namespace}_leases`

/** What the node knows of the lease. */
type Standing =
  | { readonly _tag: "Holding"; readonly revision: number; readonly validUntil: number }
  | {
    readonly _tag: "Standby"
    /** The revision last seen under `leader` and since when (local clock), if any. */
    readonly seen: { readonly revision: number; readonly since: number } | undefined
  }

/**
 * Leadership over a NATS KV lease, for as long as the current scope: releases the lease when the
 * scope closes. Fails with `LeaseUnavailable` if the bucket cannot be reached or made now; later
 * losses of the server only cost the lease (standbys take over), never the process.
 */
export const lease = (
  options: LeaseOptions,
): Effect.Effect<LeadershipShape, LeaseUnavailable, Scope.Scope> =>
  Effect.gen(function* () {
    const nodeId = options.nodeId ?? defaultNodeId()
    const ttl = Duration.toMillis(options.ttl ?? "10 seconds")
    const renewEvery = Math.max(1, Math.floor(ttl / 3))
    const poll = options.pollInterval === undefined
      ? Math.min(renewEvery, 1000)
      : Duration.toMillis(options.pollInterval)
    const kv = yield* LeaseBucket.open({
      servers: options.servers,
      bucket: bucketName(options.namespace),
      replicas: options.replicas ?? 1,
      connectionName: `chorus-lease-${nodeId}`,
    })
    const leading = yield* SubscriptionRef.make(false)
    const ours = (now: number) =>
      new TextEncoder().encode(JSON.stringify({ node: nodeId, until: now + ttl }))
    let standing: Standing = { _tag: "Standby", seen: undefined }

    const become = (revision: number, validUntil: number, how: string, previous?: string) =>
      Effect.gen(function* () {
        standing = { _tag: "Holding", revision, validUntil }
        yield* SubscriptionRef.set(leading, true)
        yield* Effect.logInfo("became leader").pipe(
          Effect.annotateLogs({
            nodeId,
            how,
            revision,
            ...(previous !== undefined ? { previousLeader: previous } : {}),
          }),
        )
      })

    const lose = (reason: string) =>
      Effect.gen(function* () {
        standing = { _tag: "Standby", seen: undefined }
        yield* SubscriptionRef.set(leading, false)
        yield* Effect.logInfo("lost leadership").pipe(Effect.annotateLogs({ nodeId, reason }))
      })

    /** One renew; the lease is lost if it fails or cannot end before the lease does. */
    const renew = (held: { readonly revision: number; readonly validUntil: number }) =>
      Effect.gen(function* () {
        const start = yield* Clock.currentTimeMillis
        const left = held.validUntil - start
        if (left <= 0) return yield* lose("the lease ran out before it could be renewed")
        const renewed = yield* kv.update(LEASE_KEY, ours(start), held.revision).pipe(
          Effect.timeout(Duration.millis(Math.min(left, renewEvery))),
          Effect.either,
        )
        if (renewed._tag === "Left") {
          return yield* lose(`renew failed: ${renewed.left.message}`)
        }
        standing = { _tag: "Holding", revision: renewed.right, validUntil: start + ttl }
      })

    /** One look at the lease as a standby: take it if free or abandoned. */
    const contend = (seen: { readonly revision: number; readonly since: number } | undefined) =>
      Effect.gen(function* () {
        const now = yield* Clock.currentTimeMillis
        const entry = yield* kv.get(LEASE_KEY)
        if (Option.isNone(entry) || entry.value.operation !== "PUT") {
          // Nobody holds it (never held, or released): `create` lets one standby win.
          const created = yield* kv.create(LEASE_KEY, ours(now)).pipe(Effect.option)
          if (Option.isSome(created)) {
            return yield* become(created.value, now + ttl, "free")
          }
          standing = { _tag: "Standby", seen: undefined }
          return
        }
        const { revision } = entry.value
        if (seen === undefined || seen.revision !== revision) {
          standing = { _tag: "Standby", seen: { revision, since: now } }
          return
        }
        if (now - seen.since < ttl) return
        // Unchanged for a whole ttl by our clock: its holder stopped renewing.
        const previous = Option.match(decodeLease(entry.value.value), {
          onNone: () => "unknown",
          onSome: (v) => v.node,
        })
        const taken = yield* kv.update(LEASE_KEY, ours(now), revision).pipe(Effect.option)
        if (Option.isSome(taken)) {
          return yield* become(taken.value, now + ttl, "expired", previous)
        }
        standing = { _tag: "Standby", seen: undefined }
      })

    const step = Effect.suspend(() => {
      const current = standing
      return current._tag === "Holding"
        ? Effect.sleep(Duration.millis(renewEvery)).pipe(Effect.zipRight(renew(current)))
        : contend(current.seen).pipe(
          Effect.catchAll((error) =>
            Effect.logDebug("lease not reachable; looking again").pipe(
              Effect.annotateLogs({ nodeId, error: error.message }),
            )
          ),
          // Just became the leader: its first renew is due a renew period from now.
          Effect.zipRight(
            Effect.suspend(() =>
              standing._tag === "Holding" ? Effect.void : Effect.sleep(Duration.millis(poll))
            ),
          ),
        )
    })

    const loop = yield* step.pipe(Effect.forever, Effect.interruptible, Effect.forkDaemon)
    yield* Effect.addFinalizer(() =>
      Effect.gen(function* () {
        yield* Fiber.interrupt(loop)
        const last = standing
        if (last._tag !== "Holding") return
        standing = { _tag: "Standby", seen: undefined }
        yield* SubscriptionRef.set(leading, false)
        // A standby takes over at its next look instead of after a ttl.
        yield* kv.release(LEASE_KEY, last.revision).pipe(
          Effect.timeout("2 seconds"),
          Effect.tap(() =>
            Effect.logInfo("released leadership").pipe(Effect.annotateLogs({ nodeId }))
          ),
          Effect.catchAll((error) =>
            Effect.logWarning("could not release the lease; it expires after its ttl").pipe(
              Effect.annotateLogs({ nodeId, error: String(error) }),
            )
          ),
        )
      })
    )
    return makeShape(nodeId, leading)
  })

export const leaseLayer = (options: LeaseOptions): Layer.Layer<Leadership, LeaseUnavailable> =>
  Layer.scoped(Leadership, lease(options))

/** `chorus_cluster_leader` for `GET /metrics`. */
export const prometheus = (leadership: LeadershipShape): Effect.Effect<string> =>
  leadership.isLeader.pipe(
    Effect.map((leader) =>
      "# HELP chorus_cluster_leader 1 if this node holds the cluster lease (runs the consumers).\n" +
      "# TYPE chorus_cluster_leader gauge\n" +
      `chorus_cluster_leader{node=${JSON.stringify(leadership.nodeId)}} ${leader ? 1 : 0}\n`
    ),
  )

/**
 * A layer built only while this node leads (and torn down when it stops leading): how the
 * single-owner parts (consumers, relays) are started without knowing about leadership. A node
 * that is `alone` builds it in place, as part of the server (its errors are the server's).
 *
 * On a lease, the parts are built in the background when leadership comes, so the server can
 * answer (ingest, reads, SSE) before they run.
 *
 * @example
 * leaderOnly("inbound consumer", InboundConsumer.layer())
 */
export const leaderOnly = <E, R>(
  name: string,
  layer: Layer.Layer<never, E, R>,
): Layer.Layer<never, E, Exclude<R, Scope.Scope> | Leadership> =>
  Layer.scopedDiscard(
    Effect.flatMap(Leadership, (leadership) =>
      // Alone, the parts are built in place, before the layers after them, as on one node.
      leadership.alone
        ? Effect.asVoid(Layer.build(layer))
        : leadership.whileLeader(name, Layer.build(layer))),
  )
