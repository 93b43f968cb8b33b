/**
 * Structured logs: one JSON object per line by default (for log shippers), or a readable
 * format for people (`CHORUS_LOG_FORMAT=pretty`). Levels from `CHORUS_LOG_LEVEL`.
 */
import { Effect, FiberRef, Layer, Logger, LogLevel } from "effect"
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

/**
 * Run `log()` only when `level` passes the minimum log level. For a line written per request or
 * per message: its `annotateLogs` costs some twenty Effect operations even when the line is
 * then dropped by the level.
 */
export const whenLogging = (level: LogLevel.LogLevel, log: () => Effect.Effect<void>) =>
  Effect.withFiberRuntime<void>((fiber) =>
    LogLevel.lessThan(level, fiber.getFiberRef(FiberRef.currentMinimumLogLevel))
      ? Effect.void
      : log()
  )
