/**
 * Durable SQLite commits without an fsync on the event loop.
 *
 * With `synchronous=FULL` SQLite fsyncs the WAL inside every `COMMIT`, and better-sqlite3 runs
 * `COMMIT` on the event loop: every commit stalled the whole process for the length of an fsync.
 * Here SQLite runs with `synchronous=NORMAL` (a commit writes the WAL but does not sync it) and
 * this module makes the commit durable before anyone hears of it: after a statement, once the
 * connection is out of a transaction (a `COMMIT`, or a write in autocommit mode), the query's
 * promise waits for an `fdatasync` of the WAL file that started after the commit, run on libuv's
 * thread pool. So a caller is answered only once its rows are on disk, as with `FULL`, while the
 * process serves everything else meanwhile.
 *
 * Commits waiting together share one fdatasync; one that commits while a sync is running waits
 * for the next. A failed fdatasync fails every write it covered (a `DatabaseError` for the
 * caller): the data may not be on disk, and nobody is told otherwise. Checkpoints are SQLite's
 * own (with `NORMAL` it syncs the WAL before copying it into the database, and the database
 * after).
 */
import { closeSync, fdatasync, fsyncSync, openSync } from "node:fs"
import * as path from "node:path"
import type {
  CompiledQuery,
  DatabaseConnection,
  Driver,
  QueryResult,
  SqliteDialectConfig,
} from "kysely"
import { SqliteDialect, SqliteDriver } from "kysely"

export interface WalSync {
  /** A statement that changes the database is about to run. */
  readonly wrote: () => void
  /** How many such statements ran so far. */
  readonly writes: () => number
  /** Resolves once every change so far is on disk; undefined when they already are. */
  readonly durable: () => Promise<void> | undefined
  readonly close: () => void
}

interface Waiter {
  readonly target: number
  readonly resolve: () => void
  readonly reject: (error: Error) => void
}

export const makeWalSync = (
  databaseFile: string,
  /** Replaced by tests, to hold a sync or fail it. */
  sync: (fd: number, done: (error: Error | null) => void) => void = fdatasync,
): WalSync => {
  const file = path.resolve(databaseFile)
  let fd: number | undefined
  /** Changes seen (statements that write), and how many of them are known to be on disk. */
  let writes = 0
  let synced = 0
  let running = false
  let waiting: Array<Waiter> = []

  const open = (): number => {
    if (fd !== undefined) return fd
    // The WAL's directory entry, made when the database opened, is made durable once.
    const dir = openSync(path.dirname(file), "r")
    try {
      fsyncSync(dir)
    } finally {
      closeSync(dir)
    }
    fd = openSync(`${file}-wal`, "r")
    return fd
  }

  const settle = (covers: number, error: Error | undefined) => {
    const still: Array<Waiter> = []
    for (const w of waiting) {
      if (w.target > covers) still.push(w)
      else if (error) w.reject(error)
      else w.resolve()
    }
    waiting = still
  }

  const start = () => {
    if (running || waiting.length === 0) return
    const covers = writes
    let handle: number
    try {
      handle = open()
    } catch (cause) {
      settle(covers, cause instanceof Error ? cause : new Error(String(cause)))
      return
    }
    running = true
    sync(handle, (error) => {
      running = false
      if (!error) synced = Math.max(synced, covers)
      settle(covers, error ?? undefined)
      start()
    })
  }

  return {
    wrote: () => {
      writes++
    },
    writes: () => writes,
    durable: () => {
      if (synced >= writes) return undefined
      const target = writes
      return new Promise<void>((resolve, reject) => {
        waiting.push({ target, resolve, reject })
        start()
      })
    },
    close: () => {
      if (fd !== undefined) closeSync(fd)
      fd = undefined
    },
  }
}

/** The one connection of Kysely's SQLite driver, answering a write only once it is durable. */
class DurableConnection implements DatabaseConnection {
  /** The open transaction changed something: its COMMIT must wait for a sync. */
  private transactionWrote = false

  constructor(
    private readonly inner: DatabaseConnection,
    private readonly wal: WalSync,
    private readonly inTransaction: () => boolean,
  ) {}

  async executeQuery<R>(query: CompiledQuery): Promise<QueryResult<R>> {
    const before = this.wal.writes()
    // SQLite runs the statement synchronously: nothing else runs on the connection meanwhile.
    const result = await this.inner.executeQuery<R>(query)
    const wrote = this.wal.writes() !== before
    if (this.inTransaction()) {
      // Nothing is committed yet; the COMMIT, a statement of its own, waits for the sync.
      if (wrote) this.transactionWrote = true
    } else if (wrote || this.transactionWrote) {
      // A write in autocommit mode, or the end of a transaction that wrote. (A read waits for
      // nobody's sync; a rolled-back transaction's sync is one fsync too many, nothing worse.)
      this.transactionWrote = false
      await this.wal.durable()
    }
    return result
  }

  streamQuery<R>(query: CompiledQuery, chunkSize?: number): AsyncIterableIterator<QueryResult<R>> {
    return this.inner.streamQuery<R>(query, chunkSize)
  }
}

/** Kysely's SQLite driver, handing out its one connection wrapped as a `DurableConnection`. */
class DurableDriver extends SqliteDriver {
  private connection: DurableConnection | undefined
  constructor(
    config: SqliteDialectConfig,
    private readonly wal: WalSync,
    private readonly inTransaction: () => boolean,
  ) {
    super(config)
  }
  override async acquireConnection(): Promise<DatabaseConnection> {
    const inner = await super.acquireConnection()
    this.connection ??= new DurableConnection(inner, this.wal, this.inTransaction)
    return this.connection
  }
}

/** Kysely's SQLite dialect whose writes are answered once `wal` has them on disk. */
export class DurableSqliteDialect extends SqliteDialect {
  constructor(
    private readonly config: SqliteDialectConfig,
    private readonly wal: WalSync,
    private readonly inTransaction: () => boolean,
  ) {
    super(config)
  }
  override createDriver(): Driver {
    return new DurableDriver(this.config, this.wal, this.inTransaction)
  }
}
