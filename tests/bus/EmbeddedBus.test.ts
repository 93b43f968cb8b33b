/**
 * What is particular to the embedded bus (the shared behaviour is tests/bus/conformance.ts, run
 * by conformance.embedded.test.ts): group commit, restarts over the same database file or
 * schema, the duplicate window and retention in time, the stored stream specs, the migration.
 * Every test runs on SQLite (a file in a temp dir, WAL, commits synced) and on PostgreSQL (a
 * schema of its own, dropped afterwards).
 */
import { join } from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Exit, Schedule, Scope, TestClock } from "effect"
import { Migrator, NO_MIGRATIONS, sql } from "kysely"
import {
  type BusMessage,
  type BusShape,
  type ConsumerSpec,
  Disposition,
  type StreamSpec,
} from "../../core/bus/Bus.ts"
import * as EmbeddedBus from "../../core/bus/EmbeddedBus.ts"
import {
  Database,
  type DatabaseOptions,
  type DatabaseShape,
  makeDatabase,
} from "../../core/storage/Database.ts"
import { coreMigrationSet, migrate } from "../../core/storage/Migrations.ts"
import { tempDir } from "../support/TempDir.ts"
import { uniqueNamespace } from "../support/TestNamespace.ts"
import { testPostgresUrl } from "../support/TestServices.ts"
import { tableNames } from "../support/TestDatabase.ts"

// ---------------------------------------------------------------------------------------------
// Storage: migrated once per test; every `connect` is a new connection, as a restart would open.

interface Storage {
  readonly options: DatabaseOptions
  /** A new connection to the same data; closes with the scope. */
  readonly connect: Effect.Effect<DatabaseShape, unknown, Scope.Scope>
}

const storageAt = (options: DatabaseOptions) =>
  Effect.gen(function* () {
    yield* Effect.scoped(
      Effect.flatMap(makeDatabase(options), (db) => migrate(db, coreMigrationSet)),
    )
    return { options, connect: makeDatabase(options) } satisfies Storage
  })

const onSqlite: Effect.Effect<Storage, unknown, Scope.Scope> = Effect.gen(function* () {
  const dir = yield* tempDir("chorus-embedded-bus-")
  return yield* storageAt({ sqliteFile: join(dir, "chorus.sqlite") })
})

const onPostgres: Effect.Effect<Storage, unknown, Scope.Scope> = Effect.gen(function* () {
  const schema = uniqueNamespace("embedded_bus_")
  const options: DatabaseOptions = { url: testPostgresUrl, schema, sqliteFile: "", poolSize: 4 }
  // Registered first, so it runs after every connection of the test has closed.
  yield* Effect.addFinalizer(() =>
    Effect.scoped(
      Effect.flatMap(
        makeDatabase({ ...options, poolSize: 1 }),
        (db) =>
          db.query("drop schema", (k) => sql`drop schema ${sql.id(schema)} cascade`.execute(k)),
      ),
    ).pipe(Effect.catchAll((e) => Effect.logWarning(`could not drop schema ${schema}`, e)))
  )
  return yield* storageAt(options)
})

/** A connection whose transactions are counted (all bus writes go through transactions). */
const counting = (database: DatabaseShape) => {
  const counter = { transactions: 0 }
  const shape: DatabaseShape = {
    ...database,
    transaction: (operation, run) =>
      Effect.suspend(() => {
        counter.transactions++
        return database.transaction(operation, run)
      }),
  }
  return { database: shape, counter }
}

const openBus = (
  database: DatabaseShape,
  options: Partial<EmbeddedBus.EmbeddedBusOptions> & { readonly namespace: string },
) => EmbeddedBus.make(options).pipe(Effect.provideService(Database, database))

// ---------------------------------------------------------------------------------------------
// Vocabulary

const orders: StreamSpec = { name: "orders", subjects: ["orders.>"] }
const encoder = new TextEncoder()
const decoder = new TextDecoder()
const bytes = (text: string) => encoder.encode(text)
const range = (n: number, prefix: string) => Array.from({ length: n }, (_, i) => `${prefix}-${i}`)
const sorted = (xs: Iterable<string>) => [...xs].sort()

const eventually = (
  what: () => string,
  done: () => boolean,
  within: Duration.DurationInput = "15 seconds",
) =>
  Effect.suspend(() => (done() ? Effect.void : Effect.fail("not yet" as const))).pipe(
    Effect.retry(Schedule.spaced("10 millis")),
    Effect.timeoutFail({
      duration: within,
      onTimeout: () => new Error(`timed out after ${Duration.format(within)} waiting: ${what()}`),
    }),
  )

const publishAll = (
  bus: BusShape,
  ids: ReadonlyArray<string>,
  concurrency: number | "unbounded" = 1,
) =>
  Effect.forEach(ids, (id) => bus.publish("orders.created", bytes(`body of ${id}`), { id }), {
    concurrency,
    discard: true,
  })

/** Consume in a scope of its own, recording every message; close the scope to stop. */
const recordIn = (
  bus: BusShape,
  spec: ConsumerSpec,
  handle: (m: BusMessage) => Effect.Effect<Disposition | void> = () => Effect.void,
) =>
  Effect.gen(function* () {
    const seen: Array<BusMessage> = []
    /** Handled and decided (acknowledged, nak'd or dead-lettered). */
    const finished: Array<BusMessage> = []
    const scope = yield* Scope.make()
    yield* bus.consume(spec, (m) =>
      Effect.sync(() => seen.push(m)).pipe(
        Effect.zipRight(handle(m)),
        Effect.tap(() => Effect.sync(() => finished.push(m))),
      )).pipe(Scope.extend(scope))
    return { seen, finished, stop: Scope.close(scope, Exit.void) }
  })

const countMessages = (database: DatabaseShape, namespace: string) =>
  database.query(
    "count",
    (db) =>
      db.selectFrom("bus_messages").select((eb) => eb.fn.countAll().as("n"))
        .where("namespace", "=", namespace).executeTakeFirstOrThrow(),
  ).pipe(Effect.map((r) => Number(r.n)))

// ---------------------------------------------------------------------------------------------

const suite = (name: string, storage: Effect.Effect<Storage, unknown, Scope.Scope>) =>
  describe(`EmbeddedBus on ${name}`, () => {
    it.scopedLive(
      "group commit: concurrent publishes share transactions, and each is durable once it resolves",
      () =>
        Effect.gen(function* () {
          const s = yield* storage
          const n = 2_000
          const rate = (maxBatch: number) =>
            Effect.scoped(Effect.gen(function* () {
              const namespace = uniqueNamespace()
              const { database, counter } = counting(yield* s.connect)
              const bus = yield* openBus(database, { namespace, maxBatch })
              yield* bus.ensureStream(orders)
              const before = counter.transactions
              const start = performance.now()
              yield* publishAll(bus, range(n, "m"), 100)
              const ms = performance.now() - start
              assert.strictEqual(yield* countMessages(database, namespace), n)
              return {
                perSecond: Math.round((n / ms) * 1_000),
                transactions: counter.transactions - before,
              }
            }))
          const grouped = yield* rate(500)
          const single = yield* rate(1)
          yield* Effect.logInfo(
            `${name}: ${n} publishes, 100 at a time: group commit ${grouped.perSecond}/s in ` +
              `${grouped.transactions} transactions; one transaction each ${single.perSecond}/s ` +
              `in ${single.transactions}`,
          )
          assert.isAtLeast(single.transactions, n)
          assert.isAtMost(grouped.transactions, n / 10, "publishes are committed in batches")

          // Resolved means committed: another connection sees the message at once.
          const namespace = uniqueNamespace()
          const bus = yield* openBus(yield* s.connect, { namespace })
          const observer = yield* s.connect
          yield* bus.ensureStream(orders)
          for (const i of [1, 2, 3]) {
            yield* Effect.forEach(range(20, `burst${i}`), (id) =>
              bus.publish("orders.created", bytes(id), { id }).pipe(
                Effect.zipRight(
                  observer.query("observe", (db) =>
                    db.selectFrom("bus_messages").select("seq").where("namespace", "=", namespace)
                      .where("msg_id", "=", id).executeTakeFirst()),
                ),
                Effect.tap((row) =>
                  assert.isDefined(row, `${id} is visible once published`)
                ),
              ), { concurrency: "unbounded" })
          }
        }),
      60_000,
    )

    it.scopedLive(
      "a restart (bus and database closed, then reopened) resumes consumers: nothing lost, nothing acknowledged repeated",
      () =>
        Effect.gen(function* () {
          const s = yield* storage
          const namespace = uniqueNamespace()
          const spec: ConsumerSpec = {
            stream: "orders",
            name: "worker",
            concurrency: 4,
            ackWait: "2 seconds",
          }
          const early = range(300, "early")
          const offline = range(50, "offline")
          const first = yield* Effect.scoped(Effect.gen(function* () {
            const bus = yield* openBus(yield* s.connect, { namespace })
            yield* bus.ensureStream(orders)
            yield* publishAll(bus, early, 16)
            const run = yield* recordIn(bus, spec, () =>
              Effect.sleep("10 millis").pipe(Effect.asVoid))
            yield* eventually(() =>
              "100 handled before the restart", () =>
              run.finished.length >= 100)
            yield* run.stop
            yield* Effect.logInfo(`stopped after ${run.finished.length}`)
            // Published while nothing consumes; then the whole process "exits".
            yield* publishAll(bus, offline, 16)
            return run
          }))
          const acked = new Set(first.finished.map((m) =>
            m.id
          ))
          assert.strictEqual(
            acked.size,
            first.finished.length,
            "no message handled twice in the first run",
          )
          assert.isBelow(acked.size, early.length, "the restart happens midway")

          const database = yield* s.connect
          // No ensureStream: the bus remembers its streams.
          const bus = yield* openBus(database, { namespace })
          const late = range(50, "late")
          yield* publishAll(bus, late, 16)
          const again = yield* bus.publish("orders.created", bytes("dup"), { id: "early-7" })
          assert.isTrue(again.duplicate, "the duplicate window survives the restart")
          const second = yield* recordIn(bus, spec)
          const all = [...early, ...offline, ...late]
          yield* eventually(
            () =>
              `all handled across both runs, ${acked.size} + ${second.finished.length}`,
            () => acked.size + new Set(second.finished.map((m) => m.id)).size >= all.length,
          )
          yield* Effect.sleep("2500 millis") // past ackWait: a lost acknowledgement would show now
          const secondIds = second.seen.map((m) => m.id)
          assert.deepStrictEqual(
            secondIds.filter((id) => acked.has(id)),
            [],
            "nothing acknowledged is repeated",
          )
          assert.strictEqual(
            new Set(secondIds).size,
            secondIds.length,
            "nothing is handled twice after the restart",
          )
          assert.deepStrictEqual(sorted([...acked, ...secondIds]), sorted(all), "nothing is lost")
          const pending = yield* database.query("pending", (db) =>
            db.selectFrom("bus_pending").selectAll().where("namespace", "=", namespace).execute())
          assert.deepStrictEqual(pending, [], "every delivery was acknowledged")
        }),
      60_000,
    )

    it.scopedLive(
      "after a restart a keyed consumer gets what it held first, before later messages of the same key",
      () =>
        Effect.gen(function* () {
          const s = yield* storage
          const namespace = uniqueNamespace()
          const publishKeyed = (bus: BusShape, ids: ReadonlyArray<string>) =>
            Effect.forEach(ids, (id) =>
              bus.publish("orders.created", bytes(id), { id, key: "customer-1" }), {
              discard: true,
            })
          const spec: ConsumerSpec = {
            stream: "orders",
            name: "keyed",
            ordering: "key",
            handlerTimeout: "200 millis",
            // The failed first message waits an hour for its retry: only the restart brings it back.
            retry: Schedule.spaced("1 hour"),
          }
          yield* Effect.scoped(Effect.gen(function* () {
            const bus = yield* openBus(yield* s.connect, { namespace })
            yield* bus.ensureStream(orders)
            yield* publishKeyed(bus, ["k-0", "k-1", "k-2"])
            const run = yield* recordIn(
              bus,
              spec,
              (m) => (m.id === "k-0" ? Effect.never : Effect.void),
            )
            yield* eventually(() =>
              "k-0 is attempted", () =>
              run.seen.length >= 1)
            yield* Effect.sleep("600 millis") // times out and is nak'd for an hour
            assert.deepStrictEqual(
              run.seen.map((m) => m.id),
              ["k-0"],
              "the key is blocked behind k-0",
            )
            yield* run.stop
          }))

          const bus = yield* openBus(yield* s.connect, { namespace })
          yield* publishKeyed(bus, ["k-3"])
          const run = yield* recordIn(bus, { ...spec, name: "keyed" })
          yield* eventually(() =>
            `4 handled, saw ${run.seen.map((m) => m.id)}`, () =>
            run.finished.length >= 4)
          assert.deepStrictEqual(
            run.seen.map((m) =>
              m.id
            ),
            ["k-0", "k-1", "k-2", "k-3"],
          )
          assert.strictEqual(run.seen[0]!.deliveryCount, 2)
        }),
      30_000,
    )

    it.scopedLive(
      "holds back new messages while maxAckPending deliveries are outstanding, nak'd ones included",
      () =>
        Effect.gen(function* () {
          const s = yield* storage
          const bus = yield* openBus(yield* s.connect, { namespace: uniqueNamespace() })
          yield* bus.ensureStream(orders)
          yield* publishAll(bus, range(10, "m"))
          const run = yield* recordIn(
            bus,
            { stream: "orders", name: "worker", maxAckPending: 3 },
            (m) =>
              m.deliveryCount === 1
                ? Effect.succeed(Disposition.Nak({ delay: "600 millis", reason: "later" }))
                : Effect.void,
          )
          yield* eventually(() => "3 first deliveries", () => run.seen.length >= 3)
          yield* Effect.sleep("400 millis")
          assert.deepStrictEqual(
            run.seen.map((m) => m.id),
            ["m-0", "m-1", "m-2"],
            "nothing new while 3 wait for their redelivery",
          )
          yield* eventually(
            () => `every message acknowledged, saw ${run.seen.length}`,
            () =>
              new Set(run.finished.filter((m) => m.deliveryCount === 2).map((m) => m.id)).size ===
                10,
          )
        }),
      30_000,
    )

    it.scoped(
      "the duplicate window expires: the same id is stored again once the window has passed",
      () =>
        Effect.gen(function* () {
          const s = yield* storage
          const namespace = uniqueNamespace()
          const database = yield* s.connect
          const bus = yield* openBus(database, { namespace })
          yield* bus.ensureStream({ ...orders, duplicateWindow: "1 minute" })
          const first = yield* bus.publish("orders.created", bytes("a"), { id: "same" })
          yield* TestClock.adjust("59 seconds")
          const within = yield* bus.publish("orders.created", bytes("a"), { id: "same" })
          assert.deepStrictEqual(within, { stream: "orders", seq: first.seq, duplicate: true })
          yield* TestClock.adjust("2 seconds")
          const after = yield* bus.publish("orders.created", bytes("a"), { id: "same" })
          assert.isFalse(after.duplicate)
          assert.isAbove(after.seq, first.seq)
          // The new copy opens a window of its own.
          const again = yield* bus.publish("orders.created", bytes("a"), { id: "same" })
          assert.deepStrictEqual(again, { stream: "orders", seq: after.seq, duplicate: true })
          assert.strictEqual(yield* countMessages(database, namespace), 2)
        }),
      30_000,
    )

    it.scopedLive(
      "retention deletes messages older than maxAge; consumers never see them",
      () =>
        Effect.gen(function* () {
          const s = yield* storage
          const namespace = uniqueNamespace()
          const database = yield* s.connect
          const bus = yield* openBus(database, { namespace })
          yield* bus.ensureStream({ ...orders, maxAge: "500 millis" })
          yield* publishAll(bus, range(5, "old"))
          yield* countMessages(database, namespace).pipe(
            Effect.repeat({ until: (n) => n === 0, schedule: Schedule.spaced("50 millis") }),
            Effect.timeoutFail({ duration: "5 seconds", onTimeout: () => new Error("not purged") }),
          )
          yield* publishAll(bus, ["fresh-1"])
          const run = yield* recordIn(bus, { stream: "orders", name: "late-reader" })
          yield* eventually(() => "fresh-1 delivered", () => run.finished.length >= 1)
          yield* Effect.sleep("200 millis")
          assert.deepStrictEqual(run.seen.map((m) => m.id), ["fresh-1"])
        }),
      30_000,
    )

    it.scopedLive(
      "streams are kept per namespace: stored specs route publishes after a restart, overlapping subjects are refused",
      () =>
        Effect.gen(function* () {
          const s = yield* storage
          const a = uniqueNamespace()
          const b = uniqueNamespace()
          yield* Effect.scoped(Effect.gen(function* () {
            const bus = yield* openBus(yield* s.connect, { namespace: a })
            yield* bus.ensureStream(orders)
            const clash = yield* Effect.flip(
              bus.ensureStream({ name: "paid", subjects: ["orders.*.paid"] }),
            )
            assert.strictEqual(clash._tag, "BusRejected")
            const reserved = yield* Effect.flip(
              bus.publish("orders.created", bytes("x"), {
                id: "h",
                headers: { "Chorus-Key": "k" },
              }),
            )
            assert.strictEqual(reserved._tag, "BusRejected")
            const wildcard = yield* Effect.flip(bus.publish("orders.*", bytes("x"), { id: "w" }))
            assert.strictEqual(wildcard._tag, "BusRejected")
          }))
          const database = yield* s.connect
          const busA = yield* openBus(database, { namespace: a })
          const busB = yield* openBus(database, { namespace: b })
          const ack = yield* busA.publish("orders.created", bytes("x"), { id: "x-1" })
          assert.isFalse(ack.duplicate)
          const other = yield* Effect.flip(
            busB.publish("orders.created", bytes("x"), { id: "x-1" }),
          )
          assert.strictEqual(other._tag, "BusRejected", "namespace b has no streams")
          yield* busB.ensureStream(orders)
          const separate = yield* busB.publish("orders.created", bytes("x"), { id: "x-1" })
          assert.isFalse(separate.duplicate, "ids are de-duplicated per namespace")
          const readB = yield* recordIn(busB, { stream: "orders", name: "reader" })
          yield* eventually(() => "b's message delivered", () => readB.finished.length >= 1)
          assert.strictEqual(decoder.decode(readB.seen[0]!.data), "x")
          assert.strictEqual(readB.seen[0]!.seq, separate.seq)
        }),
      30_000,
    )

    it.scopedLive(
      "the migration creates the bus tables and its down step removes them",
      () =>
        Effect.gen(function* () {
          const s = yield* storage
          const database = yield* s.connect
          const migrator = new Migrator({
            db: database.db,
            provider: { getMigrations: () => Promise.resolve({ ...coreMigrationSet.migrations }) },
            migrationTableName: coreMigrationSet.table,
            migrationLockTableName: `${coreMigrationSet.table}_lock`,
            ...(database.schema !== undefined ? { migrationTableSchema: database.schema } : {}),
          })
          const tables = tableNames(database).pipe(
            Effect.map((names) => names.filter((n) => n.startsWith("bus_"))),
          )
          assert.deepStrictEqual(yield* tables, [
            "bus_consumers",
            "bus_dead_letters",
            "bus_messages",
            "bus_pending",
            "bus_streams",
          ])
          // Undo every core migration, however many there are by now.
          const down = yield* Effect.promise(() => migrator.migrateTo(NO_MIGRATIONS))
          assert.isUndefined(down.error)
          assert.deepStrictEqual(yield* tables, [])
          yield* migrate(database, coreMigrationSet)
          assert.strictEqual((yield* tables).length, 5)
        }),
      30_000,
    )
  })

suite("SQLite", onSqlite)
suite("PostgreSQL", onPostgres)
