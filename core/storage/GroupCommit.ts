/**
 * Group commit: writes are queued to one writer fiber, which takes everything queued (up to
 * `maxBatch`), runs it in one transaction and only then answers each caller. With SQLite's WAL
 * synced at every commit (see WalSync.node.ts) that is one fsync per batch instead of one per
 * write, and because one fiber does all of its writes, reads-then-writes inside a job never race
 * each other.
 * Used by the embedded bus (publishes, acks, dead letters) and by stores with hot write paths.
 *
 * Jobs of one `WriteKind` are handed to the kind together, so a kind can turn 500 publishes into
 * a few multi-row statements. If a batch fails, its jobs are retried one per transaction, so one
 * bad job cannot fail the others.
 */
import {
  Cause,
  Chunk,
  Clock,
  Deferred,
  Effect,
  Either,
  Exit,
  Fiber,
  FiberId,
  Queue,
  Schedule,
  type Scope,
} from "effect"
import { type Kysely, sql } from "kysely"
import { retryAfterFailure } from "../effect/retry.ts"
import { registerWriter } from "../metrics/CoreMetrics.ts"
import { DatabaseError, type DatabaseShape, isStatementTimeout, toError } from "./Database.ts"
import type { CoreTables } from "./tables.ts"

export type Trx = Kysely<CoreTables>

/**
 * One kind of write. `execute` runs every queued input of the kind inside the batch's
 * transaction and answers one result per input, in order: `Left` for a failure of that input
 * alone (nothing written for it), `Right` otherwise. It must use only `trx`.
 */
export interface WriteKind<I, A, E> {
  /** Operation name for errors and spans. */
  readonly name: string
  /** A more precise name for one input's errors (default: `name`). */
  readonly operation?: (input: I) => string
  /** Kinds with a lower rank run first within a batch (all jobs of a batch were concurrent). */
  readonly rank: number
  readonly execute: (
    trx: Trx,
    inputs: ReadonlyArray<I>,
    now: number,
  ) => Promise<ReadonlyArray<Either.Either<A, E>>>
  /** Runs after the commit, before the caller is answered (signals, in-memory caches). */
  readonly afterCommit?: (input: I, result: A) => void
}

/**
 * A kind whose inputs are written one by one, each under a savepoint of the batch's transaction:
 * a failing input rolls back only its own writes and answers its own `DatabaseError`, while the
 * others commit together — one fsync for a burst of new senders instead of one each. `write` may
 * read what earlier inputs of the batch wrote (one transaction, one writer).
 */
export const eachInSavepoint = <I, A>(options: {
  readonly name: string
  readonly rank: number
  readonly write: (trx: Trx, input: I, now: number) => Promise<A>
}): WriteKind<I, A, DatabaseError> => ({
  name: options.name,
  rank: options.rank,
  execute: async (trx, inputs, now) => {
    const results: Array<Either.Either<A, DatabaseError>> = []
    for (const input of inputs) {
      await sql`savepoint chorus_write`.execute(trx)
      try {
        const result = await options.write(trx, input, now)
        await sql`release savepoint chorus_write`.execute(trx)
        results.push(Either.right(result))
      } catch (cause) {
        // A failure here fails the batch, whose jobs are then retried one per transaction.
        await sql`rollback to savepoint chorus_write`.execute(trx)
        await sql`release savepoint chorus_write`.execute(trx)
        results.push(Either.left(toError(options.name)(cause)))
      }
    }
    return results
  },
})

interface Job {
  readonly kind: WriteKind<any, any, any>
  readonly input: unknown
  /**
   * Told the outcome once the batch is committed (or failed). A plain callback: the writer
   * answers a batch of hundreds without an Effect operation per job.
   */
  readonly done: (exit: Exit.Exit<any, any>) => void
  /** Nobody waits for it (`send`): a failure is only logged. */
  readonly detached: boolean
}

export interface GroupCommitStats {
  /** Transactions committed (or attempted), batches and their retries included. */
  readonly transactions: number
  readonly jobs: number
  readonly largestBatch: number
}

export interface GroupCommit {
  /**
   * Queue a write and wait until its transaction committed. With `timeoutMillis`, stop waiting
   * after that long with a retryable `DatabaseError` (a Node timer, no forked fiber): the write
   * stays queued and may still commit.
   */
  readonly submit: <I, A, E>(
    kind: WriteKind<I, A, E>,
    input: I,
    timeoutMillis?: number,
  ) => Effect.Effect<A, E | DatabaseError>
  /** Queue a write; the Deferred completes after the commit. */
  readonly enqueue: <I, A, E>(
    kind: WriteKind<I, A, E>,
    input: I,
  ) => Effect.Effect<Deferred.Deferred<A, E | DatabaseError>, DatabaseError>
  /**
   * Queue a write without waiting for its commit: it is committed in the writer's next batch,
   * before anything queued after it (so before this process's next read of it) and before the writer
   * closes; a crash before that loses it. A failure is logged.
   */
  readonly send: <I, A, E>(
    kind: WriteKind<I, A, E>,
    input: I,
  ) => Effect.Effect<void, DatabaseError>
  readonly stats: () => GroupCommitStats
}

/**
 * The batch failed for a reason that is not in its writes: the database was unreachable or busy
 * through every retry, or a statement ran out of time (waiting for a lock, say).
 */
const notTheWrites = (cause: Cause.Cause<DatabaseError>): boolean => {
  const failure = Cause.failureOption(cause)
  return failure._tag === "Some" && (failure.value.retryable || isStatementTimeout(failure.value))
}

/** Resumes after the event loop's current turn (I/O callbacks included), not on a timer. */
const nextTurn = Effect.async<void>((resume) => {
  const handle = setImmediate(() => resume(Effect.void))
  return Effect.sync(() => clearImmediate(handle))
})

/** A retryable failure (busy, connection lost) is tried again after 20, 40, 80 and 160 ms. */
const FIRST_RETRY = "20 millis"
const laterRetries = Schedule.exponential("40 millis").pipe(Schedule.intersect(Schedule.recurs(3)))

export const make = (
  database: DatabaseShape,
  options: {
    readonly maxBatch: number
    readonly drainTimeout?: number
    /** First statement of every transaction (see EmbeddedBus: takes SQLite's write lock). */
    readonly begin?: (trx: Trx) => Promise<unknown>
    /** Names this writer in logs and transaction spans, e.g. `bus`. */
    readonly label: string
  },
): Effect.Effect<GroupCommit, never, Scope.Scope> =>
  Effect.gen(function* () {
    const queue = yield* Queue.unbounded<Job>()
    let closed = false
    let busy = false
    let transactions = 0
    let jobCount = 0
    let largestBatch = 0

    const operationOf = (job: Job): string => job.kind.operation?.(job.input) ?? job.kind.name

    const failJob = (job: Job, error: unknown) =>
      Effect.suspend(() => {
        job.done(Exit.fail(error))
        return job.detached
          ? Effect.logWarning(`${options.label} ${operationOf(job)} failed`, error)
          : Effect.void
      })

    const commit = (jobs: ReadonlyArray<Job>): Effect.Effect<void> =>
      Effect.gen(function* () {
        const now = yield* Clock.currentTimeMillis
        const kinds = new Map<WriteKind<any, any, any>, Array<Job>>()
        for (const job of jobs) {
          const list = kinds.get(job.kind)
          if (list) list.push(job)
          else kinds.set(job.kind, [job])
        }
        const ordered = [...kinds].sort(([a], [b]) => a.rank - b.rank)
        const operation = jobs.length === 1
          ? `${options.label} ${operationOf(jobs[0]!)}`
          : `${options.label} write`
        const attempt = Effect.suspend(() => {
          transactions++
          return database.transaction(operation, async (trx) => {
            await options.begin?.(trx)
            const results = new Map<Job, Either.Either<unknown, unknown>>()
            for (const [kind, list] of ordered) {
              const answers = await kind.execute(trx, list.map((j) => j.input), now)
              list.forEach((job, i) => results.set(job, answers[i]!))
            }
            return results
          })
        })
        // A batch is often one message: its retry is built only after a failure.
        const exit = yield* retryAfterFailure(attempt, {
          first: FIRST_RETRY,
          later: laterRetries,
          while: (e) => e.retryable,
        }).pipe(Effect.exit)
        if (Exit.isSuccess(exit)) {
          for (const job of jobs) {
            const result = exit.value.get(job)!
            if (Either.isRight(result)) {
              job.kind.afterCommit?.(job.input, result.right)
              job.done(Exit.succeed(result.right))
            } else yield* failJob(job, result.left)
          }
        } else if (jobs.length > 1 && !notTheWrites(exit.cause)) {
          yield* Effect.logWarning(`${options.label} batch failed; retrying its writes one by one`)
            .pipe(
              Effect.annotateLogs({ jobs: jobs.length }),
            )
          for (const job of jobs) yield* commit([job])
        } else {
          // One write, or a failure of the database rather than of the writes (one by one, each
          // would only fail again, one statement limit or retry schedule after the other).
          const failure = Cause.failureOption(exit.cause)
          for (const job of jobs) {
            yield* failJob(
              job,
              failure._tag === "Some" ? failure.value : new DatabaseError({
                operation: operationOf(job),
                cause: Cause.squash(exit.cause),
                retryable: true,
              }),
            )
          }
        }
      })

    // Only the wait for work is interruptible: a batch once taken is committed and answered,
    // even while the bus closes.
    const writer = Effect.uninterruptibleMask((restore) =>
      Effect.gen(function* () {
        let batch = Chunk.toReadonlyArray(
          yield* restore(Queue.takeBetween(queue, 1, options.maxBatch)),
        )
        busy = true
        // Linger one turn of the event loop before committing: the fibers that are about to
        // write (a burst of handlers, each a step behind the other) queue their writes meanwhile
        // and share this batch's fsync, instead of each waiting for a commit of its own.
        if (batch.length < options.maxBatch) {
          yield* nextTurn
          const more = yield* Queue.takeUpTo(queue, options.maxBatch - batch.length)
          if (more.length > 0) batch = batch.concat(Chunk.toReadonlyArray(more))
        }
        jobCount += batch.length
        largestBatch = Math.max(largestBatch, batch.length)
        yield* commit(batch)
        busy = false
      })
    ).pipe(Effect.forever)

    const fiber = yield* Effect.forkDaemon(writer)
    const stats = (): GroupCommitStats => ({ transactions, jobs: jobCount, largestBatch })
    // For GET /metrics (core/metrics/CoreMetrics.ts), until the writer stops.
    const unregister = registerWriter(options.label, stats)
    yield* Effect.addFinalizer(() => Effect.sync(unregister))

    yield* Effect.addFinalizer(() =>
      Effect.gen(function* () {
        closed = true
        // Finish what callers already queued, then stop the (idle) writer.
        // Polled once per event-loop turn, not on Effect's Clock: a batch in hand lingers a turn
        // (see `nextTurn`), and under a TestClock a Clock-timed poll would never come back.
        yield* Effect.suspend(() =>
          busy ? Effect.fail("busy") : Queue.size(queue).pipe(
            Effect.flatMap((n) => (n > 0 ? Effect.fail("busy") : Effect.void)),
          )
        ).pipe(
          Effect.catchAll(() => nextTurn.pipe(Effect.zipRight(Effect.fail("busy")))),
          Effect.retry({ while: () => true }),
          // Finalizers are uninterruptible: without this the timeout could never end the wait.
          Effect.interruptible,
          Effect.timeout(options.drainTimeout ?? 10_000),
          Effect.ignore,
        )
        yield* Fiber.interrupt(fiber)
        const left = yield* Queue.takeAll(queue)
        for (const job of left) {
          yield* failJob(
            job,
            writerClosed(operationOf(job)),
          )
        }
        yield* Queue.shutdown(queue)
        yield* Effect.logDebug(`${options.label} writer stopped`).pipe(
          Effect.annotateLogs({ transactions, jobs: jobCount, largestBatch }),
        )
      })
    )

    const writerClosed = (operation: string) =>
      new DatabaseError({
        operation,
        cause: `the ${options.label} writer closed`,
        retryable: true,
      })

    /** Queue a job; `false` when the writer has closed (the job will never be answered). */
    const offer = (job: Job) => !closed && Queue.unsafeOffer(queue, job)

    const enqueue = <I, A, E>(kind: WriteKind<I, A, E>, input: I) =>
      Effect.suspend(() => {
        const done = Deferred.unsafeMake<A, E | DatabaseError>(FiberId.none)
        const job: Job = {
          kind,
          input,
          done: (exit) => Deferred.unsafeDone(done, exit),
          detached: false,
        }
        return offer(job) ? Effect.succeed(done) : Effect.fail(writerClosed(kind.name))
      })

    const submit = <I, A, E>(
      kind: WriteKind<I, A, E>,
      input: I,
      timeoutMillis?: number,
    ): Effect.Effect<A, E | DatabaseError> =>
      Effect.async<A, E | DatabaseError>((resume) => {
        let answered = false
        let timer: ReturnType<typeof setTimeout> | undefined
        const answer = (exit: Exit.Exit<A, E | DatabaseError>) => {
          if (answered) return
          answered = true
          clearTimeout(timer)
          resume(exit)
        }
        if (!offer({ kind, input, done: answer, detached: false })) {
          return answer(Exit.fail(writerClosed(kind.name)))
        }
        if (timeoutMillis !== undefined && Number.isFinite(timeoutMillis)) {
          timer = setTimeout(() =>
            answer(Exit.fail(
              new DatabaseError({
                operation: kind.operation?.(input) ?? kind.name,
                cause: `not committed within ${timeoutMillis} ms (it may still be)`,
                retryable: true,
              }),
            )), timeoutMillis)
        }
        // The caller went away: the write stays queued and is committed all the same.
        return Effect.sync(() => {
          answered = true
          clearTimeout(timer)
        })
      })

    const send = <I, A, E>(
      kind: WriteKind<I, A, E>,
      input: I,
    ): Effect.Effect<void, DatabaseError> =>
      Effect.suspend(() =>
        offer({ kind, input, done: () => {}, detached: true })
          ? Effect.void
          : Effect.fail(writerClosed(kind.name))
      )

    return {
      submit,
      enqueue,
      send,
      stats,
    } satisfies GroupCommit
  })
