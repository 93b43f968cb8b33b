/**
 * Time as the inbox shows it: waiting times ("4 min"), message times, and one shared clock that
 * ticks every few seconds so waiting times move without each row keeping its own timer.
 */
import { useEffect, useState } from "preact/hooks"
import { locale, t } from "./i18n.ts"

/** A duration in words: `45 s`, `4 min`, `2 h 5 min`, `3 d`. */
export const duration = (ms: number): string => {
  const s = Math.max(0, Math.floor(ms / 1000))
  if (s < 60) return t("time.s", { n: s })
  const min = Math.floor(s / 60)
  if (min < 60) return t("time.min", { n: min })
  const h = Math.floor(min / 60)
  if (h < 24) return min % 60 === 0 ? t("time.h", { n: h }) : t("time.hmin", { h, m: min % 60 })
  return t("time.d", { n: Math.floor(h / 24) })
}

/** `14:05` today, `23 Nov, 14:05` otherwise. */
export const clock = (iso: string): string => {
  const d = new Date(iso)
  const today = new Date()
  const sameDay = d.toDateString() === today.toDateString()
  return d.toLocaleString(
    locale(),
    sameDay
      ? { hour: "2-digit", minute: "2-digit" }
      : { day: "numeric", month: "short", hour: "2-digit", minute: "2-digit" },
  )
}

export const date = (iso: string): string =>
  new Date(iso).toLocaleDateString(locale(), { day: "numeric", month: "short", year: "numeric" })

const listeners = new Set<(now: number) => void>()
let timer: ReturnType<typeof setInterval> | undefined

/** The current time, re-rendering the caller every 5 s (one interval for the whole page). */
export const useNow = (): number => {
  const [now, setNow] = useState(Date.now)
  useEffect(() => {
    listeners.add(setNow)
    if (timer === undefined) {
      timer = setInterval(() => {
        const at = Date.now()
        for (const l of listeners) l(at)
      }, 5000)
    }
    return () => {
      listeners.delete(setNow)
      if (listeners.size === 0 && timer !== undefined) {
        clearInterval(timer)
        timer = undefined
      }
    }
  }, [])
  return now
}
