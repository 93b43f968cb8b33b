/** Remove what a bench run left on the shared nats-server: every stream named with a prefix. */
import { jetstreamManager } from "@nats-io/jetstream"
import { connect } from "@nats-io/transport-node"
import { Effect } from "effect"

export const deleteStreams = (natsUrl: string, prefix: string): Effect.Effect<void> =>
  Effect.acquireUseRelease(
    Effect.tryPromise(() => connect({ servers: natsUrl })),
    (nc) =>
      Effect.tryPromise(async () => {
        const jsm = await jetstreamManager(nc)
        const doomed: Array<string> = []
        for await (const name of jsm.streams.names()) if (name.startsWith(prefix)) doomed.push(name)
        for (const name of doomed) await jsm.streams.delete(name)
      }),
    (nc) => Effect.promise(() => nc.close()),
  ).pipe(Effect.catchAll((e) => Effect.logWarning(`could not delete streams ${prefix}*`, e)))
