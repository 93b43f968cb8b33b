/**
 * What can be done to a conversation: its status (open, pending, snooze until…, resolve),
 * taking it, or transferring it to a colleague or a team's queue.
 */
import { useState } from "preact/hooks"
import { assign, assignToMe, changeStatus } from "../actions.ts"
import { t } from "../i18n.ts"
import { inboxStatus, useStore } from "../store.ts"
import { clock } from "../time.ts"
import type { Conversation } from "../types.ts"

/** Tomorrow at 9:00 local time. */
const tomorrowNine = () => {
  const d = new Date()
  d.setDate(d.getDate() + 1)
  d.setHours(9, 0, 0, 0)
  return d
}

/** `yyyy-mm-ddThh:mm` in local time, for a datetime-local input. */
const localInput = (d: Date) => {
  const pad = (n: number) => String(n).padStart(2, "0")
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${
    pad(d.getMinutes())
  }`
}

export function ConversationActions({ conversation: c }: { readonly conversation: Conversation }) {
  const me = useStore((s) => s.session?.operator.id)
  const operators = useStore((s) => s.operators)
  const teams = useStore((s) => s.teams)
  const [snoozing, setSnoozing] = useState(false)
  const [custom, setCustom] = useState(() => localInput(tomorrowNine()))
  const status = inboxStatus(c)
  const assignee = operators.find((o) => o.id === c.assigneeId)

  const snooze = (until: Date) => {
    setSnoozing(false)
    void changeStatus(c.id, "snoozed", until)
  }

  return (
    <div class="actions">
      <span class="muted small" data-testid="assignee">
        {c.assigneeId === null
          ? t("action.unassigned")
          : t("action.assignedTo", { name: assignee?.name ?? "…" })}
        {status === "snoozed" && c.snoozedUntil
          ? ` · ${t("action.snoozedUntil", { time: clock(c.snoozedUntil) })}`
          : ` · ${t(`status.${status}`)}`}
      </span>
      {c.assigneeId !== me
        ? (
          <button type="button" data-testid="assign-me" onClick={() => void assignToMe(c.id)}>
            {t("action.assignMe")}
          </button>
        )
        : null}
      <select
        aria-label={t("action.transfer")}
        data-testid="transfer"
        value=""
        onChange={(e) => {
          const value = e.currentTarget.value
          e.currentTarget.value = ""
          if (value.startsWith("op:")) void assign(c.id, value.slice(3))
          else if (value.startsWith("team:")) void assign(c.id, null, value.slice(5))
        }}
      >
        <option value="">{t("action.transferTo")}</option>
        <optgroup label={t("action.operators")}>
          {operators.filter((o) => o.id !== c.assigneeId && !o.disabled).map((o) => (
            <option key={o.id} value={`op:${o.id}`}>
              {o.name} · {t(`presence.${o.presence}`)} · {o.load}/{o.capacity}
            </option>
          ))}
        </optgroup>
        <optgroup label={t("action.teams")}>
          {teams.map((team) => <option key={team.id} value={`team:${team.id}`}>{team.name}
          </option>)}
        </optgroup>
      </select>
      {status !== "open"
        ? (
          <button
            type="button"
            data-testid="status-open"
            onClick={() => void changeStatus(c.id, "open")}
          >
            {t("action.open")}
          </button>
        )
        : null}
      {status !== "pending"
        ? (
          <button
            type="button"
            data-testid="status-pending"
            onClick={() => void changeStatus(c.id, "pending")}
          >
            {t("action.pending")}
          </button>
        )
        : null}
      <span class="menu">
        <button
          type="button"
          data-testid="snooze"
          aria-expanded={snoozing}
          onClick={() => setSnoozing(!snoozing)}
        >
          {t("action.snooze")} ▾
        </button>
        {snoozing
          ? (
            <div class="menu-popup" role="menu">
              <button
                type="button"
                role="menuitem"
                onClick={() => snooze(new Date(Date.now() + 3600_000))}
              >
                {t("action.snooze1h")}
              </button>
              <button type="button" role="menuitem" onClick={() => snooze(tomorrowNine())}>
                {t("action.snoozeTomorrow")}
              </button>
              <form
                class="snooze-custom"
                onSubmit={(e) => {
                  e.preventDefault()
                  const until = new Date(custom)
                  if (!Number.isNaN(until.getTime()) && until.getTime() > Date.now()) snooze(until)
                }}
              >
                <label>
                  {t("action.snoozeCustom")}
                  <input
                    type="datetime-local"
                    value={custom}
                    min={localInput(new Date())}
                    onInput={(e) => setCustom(e.currentTarget.value)}
                  />
                </label>
                <button type="submit">{t("action.snoozeApply")}</button>
              </form>
            </div>
          )
          : null}
      </span>
      {status !== "resolved"
        ? (
          <button
            type="button"
            class="primary"
            data-testid="resolve"
            onClick={() => void changeStatus(c.id, "resolved")}
          >
            {t("action.resolve")}
          </button>
        )
        : null}
    </div>
  )
}
