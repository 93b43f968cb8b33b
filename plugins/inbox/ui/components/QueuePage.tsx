/**
 * The supervisor's page: who waits (position per team, waiting time) and each operator's
 * presence and load against capacity, with reassigning. Refreshed on open and as events arrive.
 */
import { useEffect, useState } from "preact/hooks"
import { assign, openConversation } from "../actions.ts"
import { api, ApiError } from "../api.ts"
import { t } from "../i18n.ts"
import { useStore } from "../store.ts"
import { duration, useNow } from "../time.ts"
import type { QueueView } from "../types.ts"

export function QueuePage() {
  const [queue, setQueue] = useState<QueueView | null>(null)
  const [error, setError] = useState<string | null>(null)
  const operators = useStore((s) => s.operators)
  const teams = useStore((s) => s.teams)
  // Any change to the list (events) is a reason to look at the queue again.
  const rows = useStore((s) => s.rows)
  const now = useNow()

  useEffect(() => {
    let stale = false
    const timer = setTimeout(() => {
      api.queue().then(
        (q) => !stale && (setQueue(q), setError(null)),
        (e) =>
          !stale &&
          setError(
            e instanceof ApiError && e.status === 403
              ? t("queue.forbidden")
              : String(e.message ?? e),
          ),
      )
    }, queue === null ? 0 : 300)
    return () => {
      stale = true
      clearTimeout(timer)
    }
  }, [rows, operators])

  // Queue entries carry no contact: names of those not in the list are fetched once.
  const [names, setNames] = useState<Readonly<Record<string, string>>>({})
  useEffect(() => {
    const missing = (queue?.queue ?? []).map((q) => q.conversationId).filter((id) =>
      names[id] === undefined && !rows.some((r) => r.id === id)
    ).slice(0, 50)
    for (const id of missing) {
      api.conversation(id).then(
        (c) => setNames((n) => ({ ...n, [id]: c.contact.name ?? t("list.unknownContact") })),
        () => setNames((n) => ({ ...n, [id]: id })),
      )
    }
  }, [queue])

  const teamName = (id: string | null) =>
    id === null ? t("queue.noTeam") : teams.find((x) => x.id === id)?.name ?? id
  // Live presence and load come with operator.updated events; the queue's answer fills the rest.
  const people = operators.length > 0 ? operators : queue?.operators ?? []

  return (
    <main class="queue-page" data-testid="queue">
      <section>
        <h2>{t("queue.title")}</h2>
        {error !== null ? <p class="form-error">{error}</p> : null}
        {queue === null
          ? <p class="muted">{t("list.loading")}</p>
          : queue.queue.length === 0
          ? <p class="muted">{t("queue.empty")}</p>
          : (
            <table>
              <thead>
                <tr>
                  <th>{t("queue.position")}</th>
                  <th>{t("queue.conversation")}</th>
                  <th>{t("queue.team")}</th>
                  <th>{t("queue.waiting")}</th>
                  <th>{t("queue.reassign")}</th>
                </tr>
              </thead>
              <tbody>
                {queue.queue.map((q) => (
                  <tr key={q.conversationId}>
                    <td>{q.position}</td>
                    <td>
                      <button
                        type="button"
                        class="link"
                        onClick={() => void openConversation(q.conversationId)}
                      >
                        {rows.find((r) => r.id === q.conversationId)?.contact.name ??
                          names[q.conversationId] ?? "…"}
                      </button>
                    </td>
                    <td>{teamName(q.teamId)}</td>
                    <td>{q.waitingSince ? duration(now - Date.parse(q.waitingSince)) : "—"}</td>
                    <td>
                      <select
                        aria-label={t("queue.reassign")}
                        value=""
                        onChange={(e) => {
                          const id = e.currentTarget.value
                          if (id !== "") void assign(q.conversationId, id)
                        }}
                      >
                        <option value="">{t("queue.reassign")}</option>
                        {people.filter((o) => !o.disabled).map((o) => (
                          <option key={o.id} value={o.id}>
                            {o.name} · {o.load}/{o.capacity}
                          </option>
                        ))}
                      </select>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
      </section>
      <section>
        <h2>{t("queue.operators")}</h2>
        <table data-testid="operators">
          <thead>
            <tr>
              <th>{t("queue.operator")}</th>
              <th>{t("queue.presence")}</th>
              <th>{t("queue.load")}</th>
            </tr>
          </thead>
          <tbody>
            {people.map((o) => (
              <tr key={o.id} data-operator={o.id}>
                <td>
                  {o.name} <span class="muted small">{o.role}</span>
                </td>
                <td>
                  <span class="presence" data-presence={o.presence}>
                    <span class="dot" aria-hidden="true" />
                    {t(`presence.${o.presence}`)}
                  </span>
                </td>
                <td>
                  <span class={o.load >= o.capacity ? "load full" : "load"}>
                    {o.load} / {o.capacity}
                  </span>
                  <meter min={0} max={Math.max(1, o.capacity)} value={o.load} />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </section>
    </main>
  )
}
