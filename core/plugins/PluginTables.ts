/** The plugin host's tables (migration 2026_11_24_0005_plugins). Times in epoch ms. */
export interface PluginStateTable {
  plugin: string
  /** 1 enabled, 0 disabled by an operator. */
  enabled: number
  /** JSON object of setting values set through the API. */
  settings: string
  updated_at: number | bigint | string
}

export interface PluginKvTable {
  plugin: string
  key: string
  /** JSON. */
  value: string
  updated_at: number | bigint | string
}

export interface PluginTables {
  chorus_plugin_state: PluginStateTable
  chorus_plugin_kv: PluginKvTable
}
