/**
 * `whenLogging`: a per-request log line is built (annotations and all) only when its level passes
 * the minimum log level.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Logger, LogLevel } from "effect"
import { whenLogging } from "../../core/logging/Logging.ts"

const lineAt = (minimum: LogLevel.LogLevel) =>
  Effect.gen(function* () {
    const lines: Array<unknown> = []
    let built = 0
    const logger = Logger.make(({ message }) => lines.push(message))
    yield* whenLogging(LogLevel.Info, () => {
      built++
      return Effect.logInfo("Sent HTTP response").pipe(Effect.annotateLogs({ status: 202 }))
    }).pipe(
      Effect.provide(Logger.replace(Logger.defaultLogger, logger)),
      Logger.withMinimumLogLevel(minimum),
    )
    return { lines, built }
  })

describe("whenLogging", () => {
  it.effect("writes the line when its level passes the minimum", () =>
    Effect.gen(function* () {
      const { lines, built } = yield* lineAt(LogLevel.Info)
      assert.strictEqual(built, 1)
      assert.deepStrictEqual(lines, [["Sent HTTP response"]])
    }))

  it.effect("does not even build the line below the minimum", () =>
    Effect.gen(function* () {
      const { lines, built } = yield* lineAt(LogLevel.Error)
      assert.strictEqual(built, 0)
      assert.deepStrictEqual(lines, [])
    }))
})
