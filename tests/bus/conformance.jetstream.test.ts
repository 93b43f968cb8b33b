/**
 * The bus conformance suite against `JetStreamBus` on the shared nats-server. Each test gets its
 * own namespace; its streams (`${namespace}_*`) are deleted when the test ends.
 */
import { describe } from "@effect/vitest"
import { jetstreamManager } from "@nats-io/jetstream"
import { connect } from "@nats-io/transport-node"
import { Effect } from "effect"
import { type BusBackend, openBus } from "../support/BusBackend.ts"
import { uniqueNamespace } from "../support/TestNamespace.ts"
import { testNatsUrl } from "../support/TestServices.ts"
import { busConformance, type BusSetup } from "./conformance.ts"

/** Delete every stream of the namespace (`${namespace}_*`, and any KV bucket named after it). */
const deleteNamespace = (namespace: string) =>
  Effect.acquireUseRelease(
    Effect.tryPromise(() => connect({ servers: testNatsUrl })),
    (nc) =>
      Effect.tryPromise(async () => {
        const jsm = await jetstreamManager(nc)
        const doomed: Array<string> = []
        for await (const name of jsm.streams.names()) {
          if (name.startsWith(`${namespace}_`) || name.includes(`_${namespace}_`)) doomed.push(name)
        }
        for (const name of doomed) await jsm.streams.delete(name)
      }),
    (nc) => Effect.promise(() => nc.close()),
  ).pipe(
    Effect.catchAll((e) => Effect.logWarning(`could not delete the streams of ${namespace}`, e)),
  )

const setup: BusSetup = Effect.gen(function* () {
  const namespace = uniqueNamespace()
  yield* Effect.addFinalizer(() => deleteNamespace(namespace))
  const backend: BusBackend = { kind: "jetstream", servers: testNatsUrl, namespace }
  return { backend, open: openBus(backend) }
})

describe("JetStreamBus conformance", () => {
  busConformance(setup)
})
