/** The languages the inbox speaks (the same list as the server's `Locale`). */
import type { Locale } from "./types.ts"

export const LOCALES: ReadonlyArray<Locale> = ["en", "ru"]
export const PRESENCES = ["online", "away", "offline"] as const
