/** "Olga is typing…" under the timeline while someone (not me) writes in this conversation. */
import { useEffect, useState } from "preact/hooks"
import { t } from "../i18n.ts"
import { useStore } from "../store.ts"

export function Typing(
  { conversationId, customerName }: {
    readonly conversationId: string
    readonly customerName: string
  },
) {
  const typing = useStore((s) => s.typing[conversationId])
  const operators = useStore((s) => s.operators)
  const [now, setNow] = useState(Date.now())
  const who = Object.entries(typing ?? {}).filter(([, until]) => until > now)
  // Re-render when the first one runs out.
  useEffect(() => {
    if (who.length === 0) return
    const next = Math.min(...who.map(([, until]) => until))
    const timer = setTimeout(() => setNow(Date.now()), Math.max(50, next - Date.now()))
    return () => clearTimeout(timer)
  })
  useEffect(() => setNow(Date.now()), [typing])
  if (who.length === 0) return <div class="typing" aria-live="polite" />
  const names = who.map(([id]) =>
    id === "customer" ? customerName : operators.find((o) => o.id === id)?.name ?? "…"
  )
  return (
    <div class="typing" aria-live="polite" data-testid="typing">
      {names.length === 1
        ? t("typing.one", { name: names[0]! })
        : t("typing.many", { names: names.join(", ") })}
    </div>
  )
}
