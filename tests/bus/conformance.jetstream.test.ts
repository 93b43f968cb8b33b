/**
 * The bus conformance suite against `JetStreamBus` on the shared nats-server. Each test gets its
 * own namespace; its streams (`${namespace}_*`) are deleted when the test ends.
 */
import { describe } from "@effect/vitest"
import { Effect } from "effect"
import { type BusBackend, openBus } from "../support/BusBackend.ts"
import { freshNamespace } from "../support/NatsCleanup.ts"
import { testNatsUrl } from "../support/TestServices.ts"
import { busConformance, type BusSetup } from "./conformance.ts"

const setup: BusSetup = Effect.gen(function* () {
  const namespace = yield* freshNamespace()
  const backend: BusBackend = { kind: "jetstream", servers: testNatsUrl, namespace }
  return { backend, open: openBus(backend) }
})

describe("JetStreamBus conformance", () => {
  busConformance(setup)
})
