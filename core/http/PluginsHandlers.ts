/** Handlers of the plugins group: the plugin host's status and control, and its metrics. */
import { HttpApiBuilder } from "@effect/platform"
import { Effect } from "effect"
import * as Host from "../plugins/PluginHost.ts"
import { PluginHost, type PluginStatus } from "../plugins/PluginHost.ts"
import { ChorusApi } from "./Api.ts"
import { PluginConflict, PluginNotFound, PluginSettingsInvalid } from "./PluginsApi.ts"

/** Settings as JSON (undefined is not a JSON value). */
const wire = (s: PluginStatus) => ({
  ...s,
  settings: Object.fromEntries(Object.entries(s.settings).map(([k, v]) => [k, v ?? null])),
})

type HostError = Host.PluginNotFound | Host.PluginConflict | Host.SettingsInvalid

function api(e: Host.PluginNotFound): PluginNotFound
function api(e: Host.PluginNotFound | Host.PluginConflict): PluginNotFound | PluginConflict
function api(e: HostError): PluginNotFound | PluginConflict | PluginSettingsInvalid
function api(e: HostError): PluginNotFound | PluginConflict | PluginSettingsInvalid {
  switch (e._tag) {
    case "PluginNotFound":
      return new PluginNotFound({ id: e.id, message: e.message })
    case "PluginConflict":
      return new PluginConflict({ id: e.id, message: e.message })
    case "SettingsInvalid":
      return new PluginSettingsInvalid({ id: e.id, problems: e.problems, message: e.message })
  }
}

export const PluginsHandlers = HttpApiBuilder.group(
  ChorusApi,
  "plugins",
  (handlers) =>
    Effect.gen(function* () {
      const host = yield* PluginHost
      return handlers
        .handle("list", () =>
          host.list.pipe(Effect.map((plugins) => ({ plugins: plugins.map(wire) }))))
        .handle("get", ({ path }) =>
          host.status(path.id).pipe(
            Effect.map(wire),
            Effect.mapError((e) =>
              api(e)
            ),
          ))
        .handle("enable", ({ path }) =>
          host.enable(path.id).pipe(
            Effect.map(wire),
            Effect.mapError((e) => api(e)),
          ))
        .handle("disable", ({ path }) =>
          host.disable(path.id).pipe(Effect.map(wire), Effect.mapError((e) => api(e))))
        .handle("reload", ({ path }) =>
          host.reload(path.id).pipe(
            Effect.map(wire),
            Effect.mapError((e) =>
              api(e)
            ),
          ))
        .handle("settings", ({ path, payload }) =>
          host.setSettings(path.id, payload).pipe(
            Effect.map(wire),
            Effect.mapError((e) => api(e)),
          ))
        .handle("metrics", () => Effect.sync(() => host.prometheus()))
    }),
)
