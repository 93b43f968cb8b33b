/** Bodies of the system endpoints: liveness and readiness. */
import { Schema } from "effect"

export const Health = Schema.Struct({
  status: Schema.Literal("ok"),
  version: Schema.String,
  uptimeSeconds: Schema.Number,
}).annotations({ identifier: "Health", description: "The process is alive." })

export const ComponentState = Schema.Struct({
  backend: Schema.String.annotations({ description: "sqlite, postgres, embedded or jetstream" }),
  ok: Schema.Boolean,
  latencyMs: Schema.optional(Schema.Number),
  error: Schema.optional(Schema.String),
}).annotations({ identifier: "ComponentState" })

export const Readiness = Schema.Struct({
  status: Schema.Literal("ready", "not_ready"),
  store: ComponentState,
  bus: ComponentState,
}).annotations({
  identifier: "Readiness",
  description: "Whether the store and the bus are reachable, and which backends are in use.",
})
export type Readiness = typeof Readiness.Type
