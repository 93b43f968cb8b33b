/**
 * The version of the host API given to plugins (`HostApi.ts`). A plugin's `engines.chorus`
 * range must admit it. A minor version adds to the API; a major version changes or removes.
 */
export const HOST_API_VERSION = "1.0.0"
