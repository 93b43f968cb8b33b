/**
 * The NATS KV bucket that holds the cluster lease, wrapped once: every call of @nats-io/kv becomes
 * an Effect failing with `LeaseConflict` (the compare-and-set lost: the key is not at the revision
 * given, or exists already) or `LeaseUnavailable` (the server did not answer). Leadership.ts holds
 * the protocol; this file only speaks to the server.
 */
import { JetStreamApiCodes, JetStreamApiError } from "@nats-io/jetstream"
import { type KV, type KvEntry, Kvm } from "@nats-io/kv"
import { connect, type NatsConnection } from "@nats-io/transport-node"
import { Data, Effect, Option, type Scope } from "effect"

/** The bucket could not be reached (or made), or a request went unanswered. */
export class LeaseUnavailable extends Data.TaggedError("LeaseUnavailable")<{
  readonly operation: string
  readonly cause: unknown
}> {
  override get message() {
    const detail = this.cause instanceof Error ? this.cause.message : String(this.cause)
    return `lease ${this.operation} failed: ${detail}`
  }
}

/** A compare-and-set lost: someone else wrote the key since the revision given. */
export class LeaseConflict extends Data.TaggedError("LeaseConflict")<{
  readonly operation: string
  readonly key: string
}> {
  override get message() {
    return `lease ${this.operation} of ${this.key} lost: the key moved on`
  }
}

export type LeaseBucketError = LeaseUnavailable | LeaseConflict

export interface LeaseBucketShape {
  /** The key's last entry (a `DEL` one after a release), if any. */
  readonly get: (key: string) => Effect.Effect<Option.Option<KvEntry>, LeaseUnavailable>
  /** Write the key if nobody holds it; its new revision. */
  readonly create: (key: string, value: Uint8Array) => Effect.Effect<number, LeaseBucketError>
  /** Write the key if it is still at `revision`; its new revision. */
  readonly update: (
    key: string,
    value: Uint8Array,
    revision: number,
  ) => Effect.Effect<number, LeaseBucketError>
  /** Delete the key if it is still at `revision`. */
  readonly release: (key: string, revision: number) => Effect.Effect<void, LeaseBucketError>
}

const REQUEST_TIMEOUT_MS = 5_000

const isConflict = (e: unknown) =>
  e instanceof JetStreamApiError &&
  (e.code === JetStreamApiCodes.StreamWrongLastSequence ||
    e.code === JetStreamApiCodes.StreamWrongLastSequenceUnknown)

const call = <A>(operation: string, key: string, f: () => Promise<A>) =>
  Effect.tryPromise({
    try: f,
    catch: (cause): LeaseBucketError =>
      isConflict(cause)
        ? new LeaseConflict({ operation, key })
        : new LeaseUnavailable({ operation, cause }),
  })

/**
 * Connect (reconnecting forever afterwards) and open the bucket, creating it if missing (history
 * 1: only the last value matters). Closed with the scope.
 */
export const open = (options: {
  readonly servers: string | ReadonlyArray<string>
  readonly bucket: string
  readonly replicas: number
  readonly connectionName: string
}): Effect.Effect<LeaseBucketShape, LeaseUnavailable, Scope.Scope> =>
  Effect.gen(function* () {
    const servers = typeof options.servers === "string" ? [options.servers] : [...options.servers]
    const nc: NatsConnection = yield* Effect.acquireRelease(
      Effect.tryPromise({
        try: () =>
          connect({
            servers,
            name: options.connectionName,
            maxReconnectAttempts: -1,
            reconnectTimeWait: 250,
            timeout: REQUEST_TIMEOUT_MS,
          }),
        catch: (cause) => new LeaseUnavailable({ operation: "connect", cause }),
      }),
      (nc) => Effect.promise(() => (nc.isClosed() ? Promise.resolve() : nc.close())),
    )
    const kv: KV = yield* Effect.tryPromise({
      try: () => new Kvm(nc).create(options.bucket, { history: 1, replicas: options.replicas }),
      catch: (cause) => new LeaseUnavailable({ operation: "open bucket", cause }),
    })
    return {
      get: (key) =>
        Effect.tryPromise({
          try: () => kv.get(key),
          catch: (cause) => new LeaseUnavailable({ operation: "get", cause }),
        }).pipe(Effect.map(Option.fromNullable)),
      create: (key, value) => call("create", key, () => kv.create(key, value)),
      update: (key, value, revision) =>
        call("update", key, () => kv.update(key, value, revision, REQUEST_TIMEOUT_MS)),
      release: (key, revision) =>
        call("release", key, () => kv.delete(key, { previousSeq: revision })),
    } satisfies LeaseBucketShape
  })
