/**
 * The plugins API: list the plugins with their state, errors and permissions; enable, disable
 * and reload one; set its settings. `chorus plugin list|enable|disable|reload` call it. And
 * `GET /api/v1/metrics`: Prometheus text of what plugins record.
 */
import { HttpApiEndpoint, HttpApiGroup, HttpApiSchema, OpenApi } from "@effect/platform"
import { Schema } from "effect"
import { PluginList, PluginStatus, SettingsUpdate } from "../../schemas/Plugins.ts"
import { AdminAuthentication } from "./Authentication.ts"

export class PluginNotFound extends Schema.TaggedError<PluginNotFound>()(
  "PluginNotFound",
  { id: Schema.String, message: Schema.String },
  HttpApiSchema.annotations({ status: 404, description: "No plugin with this id was discovered." }),
) {}

export class PluginConflict extends Schema.TaggedError<PluginConflict>()(
  "PluginConflict",
  { id: Schema.String, message: Schema.String },
  HttpApiSchema.annotations({
    status: 409,
    description: "The operation does not apply now (e.g. reloading a disabled plugin).",
  }),
) {}

export class PluginSettingsInvalid extends Schema.TaggedError<PluginSettingsInvalid>()(
  "PluginSettingsInvalid",
  { id: Schema.String, problems: Schema.Array(Schema.String), message: Schema.String },
  HttpApiSchema.annotations({
    status: 400,
    description: "Values that do not fit the manifest's settings.",
  }),
) {}

const PluginPath = Schema.Struct({ id: Schema.String })

export class PluginsApi extends HttpApiGroup.make("plugins")
  .add(
    HttpApiEndpoint.get("list", "/plugins")
      .addSuccess(PluginList)
      .annotate(OpenApi.Summary, "Every discovered plugin: state, version, errors, permissions."),
  )
  .add(
    HttpApiEndpoint.get("get", "/plugins/:id")
      .setPath(PluginPath)
      .addSuccess(PluginStatus)
      .addError(PluginNotFound)
      .annotate(OpenApi.Summary, "One plugin's state, counters, metrics and last error."),
  )
  .add(
    HttpApiEndpoint.post("enable", "/plugins/:id/enable")
      .setPath(PluginPath)
      .addSuccess(PluginStatus)
      .addError(PluginNotFound)
      .annotate(
        OpenApi.Summary,
        "Enable and start a plugin (also clears `failed`); kept across restarts.",
      ),
  )
  .add(
    HttpApiEndpoint.post("disable", "/plugins/:id/disable")
      .setPath(PluginPath)
      .addSuccess(PluginStatus)
      .addError(PluginNotFound)
      .annotate(
        OpenApi.Summary,
        "Stop a plugin once its work in hand is done; kept across restarts. Its messages wait on the bus.",
      ),
  )
  .add(
    HttpApiEndpoint.post("reload", "/plugins/:id/reload")
      .setPath(PluginPath)
      .addSuccess(PluginStatus)
      .addError(PluginNotFound)
      .addError(PluginConflict)
      .annotate(
        OpenApi.Summary,
        "Replace the running version by the one on disk: the old one finishes its work in hand, " +
          "the new one takes over the same consumers; no message lost or handled twice.",
      ),
  )
  .add(
    HttpApiEndpoint.put("settings", "/plugins/:id/settings")
      .setPath(PluginPath)
      .setPayload(SettingsUpdate)
      .addSuccess(PluginStatus)
      .addError(PluginNotFound)
      .addError(PluginConflict)
      .addError(PluginSettingsInvalid)
      .annotate(
        OpenApi.Summary,
        "Set settings (checked against the manifest), then reload with them.",
      ),
  )
  .add(
    HttpApiEndpoint.get("metrics", "/metrics")
      .addSuccess(HttpApiSchema.Text({ contentType: "text/plain; version=0.0.4; charset=utf-8" }))
      .annotate(OpenApi.Summary, "Prometheus text exposition of plugin metrics."),
  )
  .middleware(AdminAuthentication)
  .annotate(OpenApi.Description, "Plugins: state and control of the plugin host.") {}
