/**
 * The supervisor's delivery page: every channel account's live health (up / degraded / down,
 * breaker, errors, latency, waiting replies, last error) and the replies that could not be
 * delivered and had no fallback, each retried or discarded by a person. Health follows
 * `channel.health_changed` events; both lists are read again on open and every few seconds.
 */
import { useEffect, useState } from "preact/hooks"
import { openConversation, toast } from "../actions.ts"
import { api, ApiError } from "../api.ts"
import { type MessageKey, t } from "../i18n.ts"
import { useStore } from "../store.ts"
import { clock } from "../time.ts"
import type { ChannelHealth, OutboundDeadLetter } from "../types.ts"
import { channelName } from "./ChannelBadge.tsx"

const REFRESH_MS = 5_000

export function DeliveryPage() {
  const [channels, setChannels] = useState<ReadonlyArray<ChannelHealth> | null>(null)
  const [dead, setDead] = useState<ReadonlyArray<OutboundDeadLetter> | null>(null)
  const [next, setNext] = useState<string | null>(null)
  const [error, setError] = useState<string | null>(null)
  const [tick, setTick] = useState(0)
  // Health changes arrive as events; a change is a reason to look again at once.
  const healthEvents = useStore((s) => s.healthEvents)

  useEffect(() => {
    const timer = setInterval(() => setTick((n) => n + 1), REFRESH_MS)
    return () => clearInterval(timer)
  }, [])
  useEffect(() => {
    let stale = false
    const failed = (e: unknown) => {
      if (stale) return
      setError(
        e instanceof ApiError && e.status === 403
          ? t("delivery.forbidden")
          : String((e as Error)?.message ?? e),
      )
    }
    api.channelHealth().then((r) => !stale && setChannels(r.channels), failed)
    api.deadLetters().then((r) => {
      if (stale) return
      setDead(r.deadLetters)
      setNext(r.next)
      setError(null)
    }, failed)
    return () => {
      stale = true
    }
  }, [tick, healthEvents])

  const act = (letter: OutboundDeadLetter, action: "retry" | "discard") =>
    (action === "retry"
      ? api.retryDeadLetter(letter.messageId)
      : api.discardDeadLetter(letter.messageId)).then(
        () => setDead((list) => (list ?? []).filter((d) => d.messageId !== letter.messageId)),
        (e) => toast(String(e?.message ?? e), "error"),
      )

  return (
    <main class="delivery-page" data-testid="delivery">
      {error !== null ? <p class="form-error">{error}</p> : null}
      <section>
        <h2>{t("delivery.title")}</h2>
        {channels === null
          ? <p class="muted">{t("list.loading")}</p>
          : channels.length === 0
          ? <p class="muted">{t("delivery.noChannels")}</p>
          : (
            <table data-testid="channel-health">
              <thead>
                <tr>
                  <th>{t("delivery.channel")}</th>
                  <th>{t("delivery.status")}</th>
                  <th>{t("delivery.errorRate")}</th>
                  <th>{t("delivery.latency")}</th>
                  <th>{t("delivery.queue")}</th>
                  <th>{t("delivery.lastError")}</th>
                </tr>
              </thead>
              <tbody>
                {channels.map((c) => (
                  <tr key={`${c.channel}:${c.account}`} data-channel={`${c.channel}:${c.account}`}>
                    <td>{channelName(c.channel)} · {c.account}</td>
                    <td>
                      <span class={`health health-${c.status}`} data-status={c.status}>
                        {t(`delivery.status.${c.status}` as MessageKey)}
                      </span>
                    </td>
                    <td>{Math.round(c.errorRate * 100)}% · {c.calls}</td>
                    <td>
                      {c.latencyMs.p50 === null ? "—" : `${Math.round(c.latencyMs.p50)} ms`} /{" "}
                      {c.latencyMs.p95 === null ? "—" : `${Math.round(c.latencyMs.p95)} ms`}
                    </td>
                    <td>{c.queueDepth}</td>
                    <td class="small">
                      {c.lastError === null
                        ? "—"
                        : `${c.lastError.code}: ${c.lastError.reason} (${clock(c.lastError.at)})`}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
      </section>
      <section>
        <h2>{t("delivery.deadLetters")}</h2>
        {dead === null
          ? <p class="muted">{t("list.loading")}</p>
          : dead.length === 0
          ? <p class="muted">{t("delivery.noDeadLetters")}</p>
          : (
            <table data-testid="dead-letters">
              <thead>
                <tr>
                  <th>{t("delivery.at")}</th>
                  <th>{t("delivery.channel")}</th>
                  <th>{t("delivery.reason")}</th>
                  <th>{t("delivery.attempts")}</th>
                  <th />
                </tr>
              </thead>
              <tbody>
                {dead.map((d) => (
                  <tr key={d.messageId} data-dead-letter={d.messageId}>
                    <td>{clock(d.deadAt)}</td>
                    <td>{channelName(d.channel)} · {d.account}</td>
                    <td class="small">
                      <strong>{d.code}</strong> {d.reason}
                      {d.message !== undefined
                        ? <div class="muted">“{d.message.text.slice(0, 120)}”</div>
                        : null}
                    </td>
                    <td>{d.attempts}</td>
                    <td class="actions">
                      <button type="button" onClick={() => void act(d, "retry")}>
                        {t("delivery.retry")}
                      </button>
                      <button type="button" onClick={() => void act(d, "discard")}>
                        {t("delivery.discard")}
                      </button>
                      <button
                        type="button"
                        class="link"
                        onClick={() => void openConversation(d.conversationId)}
                      >
                        {t("delivery.open")}
                      </button>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        {next !== null
          ? (
            <button
              type="button"
              class="link"
              onClick={() =>
                void api.deadLetters(next).then((r) => {
                  setDead((list) => [...(list ?? []), ...r.deadLetters])
                  setNext(r.next)
                })}
            >
              {t("delivery.more")}
            </button>
          )
          : null}
      </section>
    </main>
  )
}
