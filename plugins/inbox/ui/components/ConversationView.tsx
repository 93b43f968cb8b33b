/**
 * The middle pane: the open conversation's header and actions, its whole timeline (windowed,
 * rows measured; opens at the newest message, older pages load while scrolling up without the
 * view jumping), and the reply box.
 */
import { useCallback, useMemo } from "preact/hooks"
import { loadOlder, retry } from "../actions.ts"
import { t } from "../i18n.ts"
import { emptyTimeline, type PendingMessage, useStore } from "../store.ts"
import type { Message } from "../types.ts"
import { VirtualList } from "../virtual/VirtualList.tsx"
import { ChannelBadge } from "./ChannelBadge.tsx"
import { ConversationActions } from "./ConversationActions.tsx"
import { MessageItem, PendingItem } from "./MessageItem.tsx"
import { ReplyBox } from "./ReplyBox.tsx"
import { Typing } from "./Typing.tsx"

export function ConversationView() {
  const id = useStore((s) => s.selectedId)
  if (id === null) {
    return <section class="conv-pane conv-empty muted">{t("conv.pick")}</section>
  }
  return <OpenConversation key={id} id={id} />
}

type Item =
  | { readonly kind: "message"; readonly key: string; readonly message: Message }
  | { readonly kind: "pending"; readonly key: string; readonly pending: PendingMessage }

const itemKey = (item: Item) => item.key

function OpenConversation({ id }: { readonly id: string }) {
  const conversation = useStore((s) => s.opened[id] ?? s.rows.find((r) => r.id === id))
  const timeline = useStore((s) => s.timelines[id] ?? emptyTimeline)
  const operators = useStore((s) => s.operators)
  const me = useStore((s) => s.session?.operator.id)
  const byId = useMemo(() => new Map(operators.map((o) => [o.id, o] as const)), [operators])
  const contactName = conversation?.contact.name ?? t("list.unknownContact")

  const items = useMemo<ReadonlyArray<Item>>(
    () => [
      ...timeline.messages.map((m) => ({ kind: "message" as const, key: m.id, message: m })),
      ...timeline.pending.map((p) => ({
        kind: "pending" as const,
        key: `p:${p.clientId}`,
        pending: p,
      })),
    ],
    [timeline.messages, timeline.pending],
  )
  const channelOf = useCallback(
    (messageId: string) => {
      const m = timeline.messages.find((x) => x.id === messageId)
      return m !== undefined && m.direction !== "note" ? m.channel : undefined
    },
    [timeline.messages],
  )
  const renderItem = useCallback(
    (item: Item) =>
      item.kind === "message"
        ? (
          <MessageItem
            message={item.message}
            contactName={contactName}
            operators={byId}
            me={me}
            fallbackChannel={channelOf}
          />
        )
        : <PendingItem pending={item.pending} onRetry={() => retry(id, item.pending.clientId)} />,
    [contactName, byId, me, id, channelOf],
  )
  const onNearTop = useCallback(() => void loadOlder(id), [id])

  if (timeline.error !== undefined && conversation === undefined) {
    return (
      <section class="conv-pane conv-empty">
        <p class="form-error">{t("conv.notFound", { message: timeline.error })}</p>
      </section>
    )
  }

  return (
    <section class="conv-pane" data-testid="conversation" data-conversation={id}>
      <header class="conv-header">
        <ChannelBadge channel={conversation?.lastChannel?.channel} />
        <h2>{conversation === undefined ? t("conv.loading") : contactName}</h2>
        {conversation !== undefined ? <ConversationActions conversation={conversation} /> : null}
      </header>
      {!timeline.loaded
        ? <div class="timeline timeline-loading muted">{t("conv.loading")}</div>
        : (
          <VirtualList
            className="timeline"
            items={items}
            itemKey={itemKey}
            renderItem={renderItem}
            estimate={72}
            stickToBottom
            onNearTop={timeline.nextBefore !== null ? onNearTop : undefined}
            header={
              <div class="timeline-edge muted">
                {timeline.loadingOlder
                  ? t("conv.loadingOlder")
                  : timeline.nextBefore === null
                  ? t("conv.beginning")
                  : ""}
              </div>
            }
            label={contactName}
            role="log"
          />
        )}
      <Typing conversationId={id} customerName={contactName} />
      {conversation !== undefined ? <ReplyBox conversation={conversation} /> : null}
    </section>
  )
}
