/**
 * Structured logs: one JSON object per line by default (for log shippers), or a readable
 * format for people (`CHORUS_LOG_FORMAT=pretty`). Levels from `CHORUS_LOG_LEVEL`.
 */
import { Layer, Logger, LogLevel } from "effect"
import type { ChorusConfig } from "../config/ChorusConfig.ts"

const levels = {
  debug: LogLevel.Debug,
  info: LogLevel.Info,
  warning: LogLevel.Warning,
  error: LogLevel.Error,
} as const

export const layer = (log: ChorusConfig["log"]) =>
  Layer.merge(
    // Logger.json / Logger.pretty replace the default logger and print to the console
    // (Logger.jsonLogger alone only formats).
    log.format === "json" ? Logger.json : Logger.pretty,
    Logger.minimumLogLevel(levels[log.level]),
  )
