/**
 * The conversation list: tabs (mine / unassigned / all, with counts), status and channel filters,
 * and the rows, windowed at a fixed height so thousands render at once. Rows move live as events
 * arrive (actions.applyEvent).
 */
import { useCallback, useMemo } from "preact/hooks"
import { openConversation, setFilters } from "../actions.ts"
import { t } from "../i18n.ts"
import { inboxStatus, useStore } from "../store.ts"
import { clock, duration, useNow } from "../time.ts"
import type { InboxConversation, InboxStatus, InboxView, OperatorLoad } from "../types.ts"
import { VirtualList } from "../virtual/VirtualList.tsx"
import { ChannelBadge, channelName } from "./ChannelBadge.tsx"

const VIEWS: ReadonlyArray<InboxView> = ["mine", "unassigned", "all"]
const STATUSES: ReadonlyArray<InboxStatus> = ["open", "pending", "snoozed", "resolved"]
const ROW_HEIGHT = 68

export function ConversationList() {
  const view = useStore((s) => s.view)
  const status = useStore((s) => s.status)
  const channel = useStore((s) => s.channel)
  const counts = useStore((s) => s.counts)
  const rows = useStore((s) => s.rows)
  const loading = useStore((s) => s.listLoading)
  const more = useStore((s) => s.listMore)
  const error = useStore((s) => s.listError)
  const teams = useStore((s) => s.teams)
  const operators = useStore((s) => s.operators)
  const selectedId = useStore((s) => s.selectedId)

  const channels = useMemo(() => {
    const seen = new Set<string>()
    for (const team of teams) for (const inbox of team.inboxes) seen.add(inbox.channel)
    for (const row of rows) if (row.lastChannel) seen.add(row.lastChannel.channel)
    if (channel !== "") seen.add(channel)
    return [...seen].sort()
  }, [teams, rows, channel])
  const names = useMemo(() => new Map(operators.map((o) => [o.id, o] as const)), [operators])

  const itemKey = useCallback((row: InboxConversation) => row.id, [])
  const renderItem = useCallback(
    (row: InboxConversation) => (
      <Row row={row} selected={row.id === selectedId} assignee={names.get(row.assigneeId ?? "")} />
    ),
    [selectedId, names],
  )

  return (
    <section class="list-pane" aria-label={t("header.inbox")}>
      <div class="tabs" role="tablist">
        {VIEWS.map((v) => (
          <button
            type="button"
            role="tab"
            key={v}
            aria-selected={v === view}
            data-testid={`view-${v}`}
            class={v === view ? "tab active" : "tab"}
            onClick={() => setFilters({ view: v })}
          >
            {t(`view.${v}`)}
            {counts !== null ? <span class="count">{counts[v]}</span> : null}
          </button>
        ))}
      </div>
      <div class="filters">
        <select
          aria-label={t("filter.status")}
          data-testid="filter-status"
          value={status}
          onChange={(e) => setFilters({ status: e.currentTarget.value as InboxStatus | "" })}
        >
          <option value="">{t("filter.anyStatus")}</option>
          {STATUSES.map((s) => <option key={s} value={s}>{t(`status.${s}`)}</option>)}
        </select>
        <select
          aria-label={t("filter.channel")}
          data-testid="filter-channel"
          value={channel}
          onChange={(e) => setFilters({ channel: e.currentTarget.value })}
        >
          <option value="">{t("filter.anyChannel")}</option>
          {channels.map((c) => <option key={c} value={c}>{channelName(c)}</option>)}
        </select>
      </div>
      <div class="list-meta muted">
        {loading
          ? t("list.loading")
          : error !== null
          ? <span class="form-error">{t("error.generic", { message: error })}</span>
          : rows.length === 0
          ? t("list.empty")
          : t("list.count", { count: rows.length })}
        {more ? ` · ${t("list.loadingMore")}` : ""}
      </div>
      <VirtualList
        className="conversations"
        items={rows}
        itemKey={itemKey}
        renderItem={renderItem}
        rowHeight={ROW_HEIGHT}
        overscan={ROW_HEIGHT * 6}
        label={t("header.inbox")}
        role="list"
      />
    </section>
  )
}

const previewText = (row: InboxConversation) => {
  const p = row.preview
  if (p === null) return t("list.noMessages")
  if (p.text.trim() !== "") return p.text
  if (p.attachments === 1) return t("list.attachment")
  if (p.attachments > 1) return t("list.attachments", { count: p.attachments })
  return ""
}

function Row(
  { row, selected, assignee }: {
    readonly row: InboxConversation
    readonly selected: boolean
    readonly assignee: OperatorLoad | undefined
  },
) {
  const now = useNow()
  const unread = row.unreadCount ?? 0
  const status = inboxStatus(row)
  return (
    <button
      type="button"
      role="listitem"
      class={`conv-row${selected ? " selected" : ""}${unread > 0 ? " unread" : ""}`}
      data-conversation={row.id}
      data-status={status}
      onClick={() => void openConversation(row.id)}
    >
      <ChannelBadge channel={row.lastChannel?.channel} />
      <span class="conv-main">
        <span class="conv-line">
          <span class="conv-name">{row.contact.name ?? t("list.unknownContact")}</span>
          <span class="conv-time muted">
            {row.waitingSince && status !== "resolved"
              ? (
                <span class="waiting" data-testid="waiting">
                  {t("list.waiting", { time: duration(now - Date.parse(row.waitingSince)) })}
                </span>
              )
              : row.preview
              ? clock(row.preview.at)
              : clock(row.updatedAt)}
          </span>
        </span>
        <span class="conv-line">
          <span class={`conv-preview${row.preview?.direction === "note" ? " note" : ""}`}>
            {row.preview?.direction === "out" ? "↩ " : ""}
            {previewText(row)}
          </span>
          {unread > 0 ? <span class="unread-count" data-testid="unread">{unread}</span> : null}
        </span>
        <span class="conv-line small muted">
          <span>{t(`status.${status}`)}</span>
          <span class="assignee">
            {row.assigneeId === null ? t("list.unassigned") : assignee?.name ?? ""}
          </span>
        </span>
      </span>
    </button>
  )
}
