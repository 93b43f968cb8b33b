/** Bodies of the plugins API (`/api/v1/plugins`): a plugin's state, as the host reports it. */
import { Schema } from "effect"

export const PluginState = Schema.Literal(
  "starting",
  "active",
  "reloading",
  "restarting",
  "stopping",
  "disabled",
  "failed",
  "refused",
).annotations({
  description: "starting/reloading/restarting: a version is being started; active: taking work; " +
    "stopping: finishing its work in hand; disabled: stopped by an operator (kept across " +
    "restarts); failed: crashed or failed to start too often, stays stopped until enabled or " +
    "reloaded; refused: its manifest is invalid (see problems).",
})

export const SettingValue = Schema.NullOr(
  Schema.Union(Schema.String, Schema.Number, Schema.Boolean),
)

export const PluginStatus = Schema.Struct({
  id: Schema.String,
  version: Schema.NullOr(Schema.String),
  name: Schema.NullOr(Schema.String),
  kind: Schema.NullOr(Schema.String),
  dir: Schema.String,
  mode: Schema.Literal("inprocess", "worker", "deno"),
  state: PluginState,
  enabled: Schema.Boolean,
  generation: Schema.Number.annotations({
    description: "Versions started since the host started.",
  }),
  restarts: Schema.Number.annotations({
    description: "Restarts after failures since the host started.",
  }),
  activeSince: Schema.NullOr(Schema.String),
  lastError: Schema.NullOr(Schema.Struct({ message: Schema.String, at: Schema.String })),
  problems: Schema.Array(Schema.Struct({ path: Schema.String, message: Schema.String })),
  counters: Schema.Struct({
    delivered: Schema.Number,
    deliveryErrors: Schema.Number,
    requests: Schema.Number,
    requestErrors: Schema.Number,
    sends: Schema.Number,
    sendErrors: Schema.Number,
  }),
  inFlight: Schema.Number,
  consumers: Schema.Array(
    Schema.Struct({
      name: Schema.String,
      stream: Schema.String,
      filter: Schema.NullOr(Schema.String),
    }),
  ),
  routes: Schema.Array(Schema.Struct({ method: Schema.String, path: Schema.String })),
  channels: Schema.Array(Schema.String),
  permissions: Schema.NullOr(Schema.Unknown).annotations({
    description: "The manifest's permissions (what the plugin may touch).",
  }),
  settings: Schema.Record({ key: Schema.String, value: SettingValue }),
  metrics: Schema.Record({ key: Schema.String, value: Schema.Unknown }),
}).annotations({ identifier: "PluginStatus" })
export type PluginStatus = typeof PluginStatus.Type

export const PluginList = Schema.Struct({ plugins: Schema.Array(PluginStatus) }).annotations({
  identifier: "PluginList",
})

export const SettingsUpdate = Schema.Record({ key: Schema.String, value: SettingValue })
  .annotations({
    identifier: "PluginSettingsUpdate",
    description: "Setting values by key; null returns a setting to its default.",
  })
