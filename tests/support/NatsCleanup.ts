/**
 * Remove what a test or a bench run left on the shared nats-server: the streams of a namespace
 * (`<ns>_*`, and KV buckets named after it), or every stream with a prefix.
 */
import { jetstreamManager } from "@nats-io/jetstream"
import { connect } from "@nats-io/transport-node"
import { Effect, type Scope } from "effect"
import { uniqueNamespace } from "./TestNamespace.ts"
import { testNatsUrl } from "./TestServices.ts"

/** Delete every stream whose name starts with `prefix` (or satisfies `match`). Never fails. */
export const deleteStreams = (
  natsUrl: string,
  match: string | ((name: string) => boolean),
): Effect.Effect<void> =>
  Effect.acquireUseRelease(
    Effect.tryPromise(() => connect({ servers: natsUrl })),
    (nc) =>
      Effect.tryPromise(async () => {
        const matches = typeof match === "string" ? (n: string) => n.startsWith(match) : match
        const jsm = await jetstreamManager(nc)
        const doomed: Array<string> = []
        for await (const name of jsm.streams.names()) if (matches(name)) doomed.push(name)
        for (const name of doomed) await jsm.streams.delete(name)
      }),
    (nc) => Effect.promise(() => nc.close()),
  ).pipe(
    Effect.catchAll((e) => Effect.logWarning(`could not delete streams (${String(match)})`, e)),
  )

/** The streams a bus namespace owns on the server, KV buckets (`KV_<ns>_…`) included. */
export const deleteNamespaceStreams = (namespace: string, natsUrl = testNatsUrl) =>
  deleteStreams(
    natsUrl,
    (name) => name.startsWith(`${namespace}_`) || name.includes(`_${namespace}_`),
  )

/** A fresh bus namespace whose streams are deleted when the scope closes. */
export const freshNamespace = (prefix = "t"): Effect.Effect<string, never, Scope.Scope> =>
  Effect.gen(function* () {
    const namespace = uniqueNamespace(prefix)
    yield* Effect.addFinalizer(() => deleteNamespaceStreams(namespace))
    return namespace
  })
