/**
 * The right pane: who the customer is — name, every channel identity with how far it is trusted
 * and whether it can be reached, their other conversations (click to open), and the merge
 * suggestions and history (MergePanel).
 */
import { openConversation } from "../actions.ts"
import { t } from "../i18n.ts"
import { inboxStatus, useStore } from "../store.ts"
import { clock, date } from "../time.ts"
import { ChannelBadge, channelName } from "./ChannelBadge.tsx"
import { MergePanel } from "./MergePanel.tsx"

export function CustomerCard() {
  const id = useStore((s) => s.selectedId)
  const conversation = useStore((s) =>
    s.selectedId === null
      ? undefined
      : s.opened[s.selectedId] ?? s.rows.find((r) => r.id === s.selectedId)
  )
  const contact = useStore((s) => (conversation ? s.contacts[conversation.contactId] : undefined))
  const past = useStore((
    s,
  ) => (conversation ? s.contactConversations[conversation.contactId] : undefined))
  if (id === null || conversation === undefined) return <aside class="card-pane" />
  const name = contact?.name ?? conversation.contact.name ?? t("list.unknownContact")
  return (
    <aside class="card-pane" data-testid="customer-card" aria-label={t("card.title")}>
      <h3>{name}</h3>
      <p class="muted small">{t("card.since", { date: date(conversation.contact.createdAt) })}</p>
      <h4>{t("card.identities")}</h4>
      {contact === undefined ? <p class="muted">{t("list.loading")}</p> : (
        <ul class="identities">
          {contact.identities.map((i) => (
            <li key={i.id} data-identity={i.id}>
              <ChannelBadge channel={i.channel} />
              <span class="identity-main">
                <span>
                  {channelName(i.channel)} · {i.account}
                  {i.name ? ` · ${i.name}` : ""}
                </span>
                <span class="small">
                  {i.phone ? `${i.phone} ` : ""}
                  {i.email ? `${i.email} ` : ""}
                </span>
                <span class="small">
                  <span class={`flag flag-${i.verification}`}>{t(`card.${i.verification}`)}</span>
                  {" "}
                  <span class={`flag ${i.reachable ? "flag-ok" : "flag-bad"}`}>
                    {t(i.reachable ? "card.reachable" : "card.unreachable")}
                  </span>
                  {i.lastSeenAt
                    ? (
                      <span class="muted">
                        · {t("card.lastSeen", { time: clock(i.lastSeenAt) })}
                      </span>
                    )
                    : null}
                </span>
              </span>
            </li>
          ))}
        </ul>
      )}
      <h4>{t("card.conversations")}</h4>
      {past === undefined ? <p class="muted">{t("list.loading")}</p> : (
        <ul class="past">
          {past.map((p) => (
            <li key={p.id}>
              {p.id === id
                ? (
                  <span class="muted">
                    {clock(p.createdAt)} · {t(`status.${inboxStatus(p)}`)} · {t("card.current")}
                  </span>
                )
                : (
                  <button type="button" class="link" onClick={() => void openConversation(p.id)}>
                    {clock(p.createdAt)} · {t(`status.${inboxStatus(p)}`)}
                  </button>
                )}
            </li>
          ))}
        </ul>
      )}
      <MergePanel contactId={conversation.contactId} />
    </aside>
  )
}
