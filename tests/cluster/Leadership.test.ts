/**
 * The cluster lease against the shared nats-server: one leader among contenders, a release hands
 * over without waiting for the ttl, an abandoned lease is taken after its ttl (not before), and a
 * holder whose lease was taken from under it reports the loss and stops its leader tasks.
 * Each test works in a namespace of its own; its bucket (`KV_<ns>_leases`) is deleted afterwards.
 */
import { assert, describe, it } from "@effect/vitest"
import { Kvm } from "@nats-io/kv"
import { connect } from "@nats-io/transport-node"
import { type Duration, Effect, Exit, Ref, Scope } from "effect"
import * as Leadership from "../../core/cluster/mod.ts"
import { freshNamespace } from "../support/NatsCleanup.ts"
import * as NatsServer from "../support/NatsServer.ts"
import { testNatsUrl } from "../support/TestServices.ts"

/** A contender in a scope of its own, so a test can stop it (a clean shutdown) when it likes. */
const contender = (
  namespace: string,
  nodeId: string,
  ttl: Duration.DurationInput,
  servers = testNatsUrl,
) =>
  Effect.gen(function* () {
    const scope = yield* Scope.make()
    yield* Effect.addFinalizer(() => Scope.close(scope, Exit.void))
    const leadership = yield* Leadership.lease({ servers, namespace, nodeId, ttl })
      .pipe(Scope.extend(scope))
    return { leadership, stop: Scope.close(scope, Exit.void) }
  })

/** The ids of the contenders that lead now. */
const leaders = (all: ReadonlyArray<{ readonly leadership: Leadership.LeadershipShape }>) =>
  Effect.forEach(
    all,
    ({ leadership }) => leadership.isLeader.pipe(Effect.map((l) => (l ? [leadership.nodeId] : []))),
  ).pipe(
    Effect.map((ids) => ids.flat()),
  )

/** Poll until `check` holds; fails the test after `withinMs`. Answers the time it took. */
const eventually = (what: string, check: Effect.Effect<boolean>, withinMs: number) =>
  Effect.gen(function* () {
    const start = Date.now()
    while (!(yield* check)) {
      if (Date.now() - start > withinMs) return assert.fail(`not within ${withinMs} ms: ${what}`)
      yield* Effect.sleep("20 millis")
    }
    return Date.now() - start
  })

/** A raw KV client: what a crashed holder or an intruder would have written. */
const rawBucket = (namespace: string) =>
  Effect.acquireRelease(
    Effect.promise(() => connect({ servers: testNatsUrl })),
    (nc) => Effect.promise(() => nc.close()),
  ).pipe(
    Effect.flatMap((nc) =>
      Effect.promise(() => new Kvm(nc).create(Leadership.bucketName(namespace), { history: 1 }))
    ),
  )

const lease = (node: string, until: number) =>
  new TextEncoder().encode(JSON.stringify({ node, until }))

describe("cluster leadership over a NATS KV lease", () => {
  it.scopedLive("elects exactly one leader among three contenders, and keeps it", () =>
    Effect.gen(function* () {
      const namespace = yield* freshNamespace("lead")
      const all = yield* Effect.all(
        ["a", "b", "c"].map((id) => contender(namespace, id, "3 seconds")),
        { concurrency: "unbounded" },
      )
      yield* eventually("someone leads", leaders(all).pipe(Effect.map((l) => l.length > 0)), 5_000)
      const first = yield* leaders(all)
      assert.strictEqual(first.length, 1)
      // Through several renew periods (1 s each) and standby looks: still that one, alone.
      for (let i = 0; i < 8; i++) {
        yield* Effect.sleep("500 millis")
        assert.deepStrictEqual(yield* leaders(all), first)
      }
    }))

  it.scopedLive("hands over at once when the leader stops cleanly (no ttl wait)", () =>
    Effect.gen(function* () {
      const namespace = yield* freshNamespace("lead")
      // A long ttl: a handover that waited for it would take 20 s.
      const all = yield* Effect.all(
        ["a", "b"].map((id) => contender(namespace, id, "20 seconds")),
        { concurrency: "unbounded" },
      )
      yield* eventually("someone leads", leaders(all).pipe(Effect.map((l) => l.length > 0)), 5_000)
      const [leaderId] = yield* leaders(all)
      const holder = all.find((c) => c.leadership.nodeId === leaderId)!
      const standby = all.find((c) => c.leadership.nodeId !== leaderId)!
      yield* holder.stop
      assert.isFalse(yield* holder.leadership.isLeader)
      const took = yield* eventually("the standby leads", standby.leadership.isLeader, 3_000)
      assert.isBelow(took, 3_000)
    }))

  it.scopedLive("takes over a lease its holder stopped renewing only after a full ttl", () =>
    Effect.gen(function* () {
      const namespace = yield* freshNamespace("lead")
      const kv = yield* rawBucket(namespace)
      // A holder that wrote its lease and died; its `until` (its clock) says an hour from now,
      // which a standby must not trust: it waits a ttl of an unchanged revision instead.
      yield* Effect.promise(() => kv.create("leader", lease("dead", Date.now() + 3_600_000)))
      const start = Date.now()
      const standby = yield* contender(namespace, "standby", "3 seconds")
      yield* Effect.sleep("2 seconds")
      assert.isFalse(yield* standby.leadership.isLeader, "took the lease before its ttl")
      yield* eventually("the standby leads", standby.leadership.isLeader, 4_000)
      const waited = Date.now() - start
      assert.isAtLeast(waited, 3_000)
      assert.isBelow(waited, 3_000 + 2_500)
      const entry = yield* Effect.promise(() => kv.get("leader"))
      assert.strictEqual(entry?.json<{ node: string }>().node, "standby")
    }))

  it.scopedLive(
    "a holder whose server hangs gives the lease up before its ttl ends, and leads again after",
    () =>
      Effect.gen(function* () {
        const server = yield* NatsServer.start()
        const holder = yield* contender("hang", "holder", "3 seconds", server.url)
        const running = yield* Ref.make(false)
        yield* holder.leadership.whileLeader(
          "test task",
          Effect.acquireRelease(Ref.set(running, true), () => Ref.set(running, false)),
        )
        yield* eventually("the holder leads", holder.leadership.isLeader, 5_000)
        yield* eventually("its task runs", Ref.get(running), 1_000)
        // A hung server answers nothing: no renew can succeed. The holder must stop leading
        // before its lease (3 s from its last renew, at most 1 s ago) could be taken over.
        yield* server.freeze
        const gaveUp = yield* eventually(
          "the holder gives up",
          holder.leadership.isLeader.pipe(Effect.map((l) => !l)),
          3_000,
        )
        assert.isBelow(gaveUp, 2_500)
        assert.isFalse(yield* Ref.get(running))
        // The server back (same store): nobody renewed the lease, so after a ttl it leads again.
        yield* server.restart
        yield* eventually("the holder leads again", holder.leadership.isLeader, 10_000)
        yield* eventually("its task runs again", Ref.get(running), 1_000)
        yield* holder.stop
      }),
  )

  it.scopedLive(
    "a holder whose lease was taken reports the loss at once, stops its tasks, and leads again later",
    () =>
      Effect.gen(function* () {
        const namespace = yield* freshNamespace("lead")
        const kv = yield* rawBucket(namespace)
        const holder = yield* contender(namespace, "holder", "3 seconds")
        const starts = yield* Ref.make(0)
        const running = yield* Ref.make(false)
        yield* holder.leadership.whileLeader(
          "test task",
          Effect.acquireRelease(
            Ref.update(starts, (n) => n + 1).pipe(Effect.zipRight(Ref.set(running, true))),
            () => Ref.set(running, false),
          ),
        )
        yield* eventually("the holder leads", holder.leadership.isLeader, 5_000)
        yield* eventually("its task runs", Ref.get(running), 1_000)
        // Someone else writes the key: the holder's next renew (at its revision) must fail.
        const entry = yield* Effect.promise(() => kv.get("leader"))
        yield* Effect.promise(() =>
          kv.update("leader", lease("intruder", Date.now() + 60_000), entry!.revision)
        )
        const noticed = yield* eventually(
          "the holder knows it lost",
          holder.leadership.isLeader.pipe(Effect.map((l) => !l)),
          2_000,
        )
        assert.isBelow(noticed, 1_500) // one renew period (1 s) and its answer
        yield* eventually("its task is stopped", Ref.get(running).pipe(Effect.map((r) => !r)), 500)
        // The intruder never renews: a ttl later the holder takes the lease back, task restarted.
        yield* eventually("the holder leads again", holder.leadership.isLeader, 6_000)
        yield* eventually("its task runs again", Ref.get(running), 1_000)
        assert.strictEqual(yield* Ref.get(starts), 2)
      }),
  )
})
