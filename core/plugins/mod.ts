/**
 * The plugin host, as far as it is built: manifests (`Manifest.ts`), discovery
 * (`Discovery.ts`), the permission model (`Permissions.ts`) and Host API v1 (`HostApi.ts`).
 * See docs/plugins.md.
 */
export {
  discover,
  DiscoveredPlugins,
  type DiscoveryOptions,
  type DiscoveryResult,
  layer as discoveryLayer,
  type RefusedPlugin,
} from "./Discovery.ts"
export {
  type HostApi,
  type HostApiOptions,
  make as makeHostApi,
  type PluginBus,
  type PluginLogger,
  type PluginSecrets,
  type PluginStorage,
  SecretMissing,
} from "./HostApi.ts"
export { HOST_API_VERSION } from "./HostApiVersion.ts"
export {
  decodeManifest,
  type LoadedManifest,
  loadManifest,
  ManifestInvalid,
  type ManifestProblem,
} from "./Manifest.ts"
export { type Capability, PermissionDenied, secretEnvName } from "./Permissions.ts"
