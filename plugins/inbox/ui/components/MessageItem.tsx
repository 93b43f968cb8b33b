/**
 * One message of the timeline: the customer's, an operator's (with its delivery state) or a
 * private note, each styled apart; its channel, time and attachments (images as previews).
 */
import { useState } from "preact/hooks"
import { toast } from "../actions.ts"
import { api, attachmentUrl } from "../api.ts"
import { t } from "../i18n.ts"
import type { PendingMessage } from "../store.ts"
import { clock } from "../time.ts"
import type { Attachment, DeliveryState, Message, OperatorLoad } from "../types.ts"
import { ChannelBadge, channelName } from "./ChannelBadge.tsx"

export const fileSize = (bytes: number) =>
  bytes < 1024
    ? `${bytes} B`
    : bytes < 1024 * 1024
    ? `${(bytes / 1024).toFixed(bytes < 10 * 1024 ? 1 : 0)} KB`
    : `${(bytes / 1024 / 1024).toFixed(1)} MB`

const DELIVERY_ICON: Record<DeliveryState["state"], string> = {
  // A clock that every font has (the stopwatch emoji is missing from many Linux fonts).
  queued: "◷",
  sent: "✓",
  delivered: "✓✓",
  read: "✓✓",
  failed: "✗",
}

function Delivery(
  { delivery, onResend }: { readonly delivery: DeliveryState; readonly onResend?: () => void },
) {
  const [open, setOpen] = useState(false)
  const label = t(`delivery.${delivery.state}`)
  if (delivery.state !== "failed") {
    return (
      <span
        class={`delivery delivery-${delivery.state}`}
        title={`${label} · ${clock(delivery.at)}`}
        data-delivery={delivery.state}
      >
        {DELIVERY_ICON[delivery.state]}
      </span>
    )
  }
  const detail = t("delivery.error", { code: delivery.error.code, message: delivery.error.message })
  return (
    <span class="delivery delivery-failed" data-delivery="failed">
      <button
        type="button"
        class="link"
        title={detail}
        aria-expanded={open}
        onClick={() => setOpen(!open)}
      >
        {DELIVERY_ICON.failed} {label}
      </button>
      {open ? <span class="delivery-error" role="note">{detail}</span> : null}
      {onResend !== undefined
        ? (
          <button type="button" class="link" data-testid="resend" onClick={onResend}>
            {t("msg.resend")}
          </button>
        )
        : null}
    </span>
  )
}

type FileLike = Pick<Attachment, "name" | "mimeType" | "size"> & {
  readonly storageKey?: string
  readonly url?: string
}

function Files({ files }: { readonly files: ReadonlyArray<FileLike> }) {
  if (files.length === 0) return null
  return (
    <div class="files">
      {files.map((f, i) => {
        const href = f.storageKey !== undefined ? attachmentUrl(f.storageKey) : f.url
        if (href !== undefined && f.storageKey !== undefined && f.mimeType.startsWith("image/")) {
          return (
            <a key={i} href={href} target="_blank" rel="noopener" class="file-image" title={f.name}>
              <img src={href} alt={f.name} />
            </a>
          )
        }
        return (
          <a key={i} href={href} target="_blank" rel="noopener" class="file" download={f.name}>
            📎 {f.name} <span class="muted">({fileSize(f.size)})</span>
          </a>
        )
      })}
    </div>
  )
}

export function MessageItem(
  { message: m, contactName, operators, me, fallbackChannel }: {
    readonly message: Message
    readonly contactName: string
    readonly operators: ReadonlyMap<string, OperatorLoad>
    readonly me: string | undefined
    /** The channel of a message of this timeline, by id (where a fallback copy went). */
    readonly fallbackChannel?: (id: string) => string | undefined
  },
) {
  const author = m.direction === "in"
    ? contactName
    : m.authorId === null
    ? t("msg.bot")
    : operators.get(m.authorId)?.name ?? t("msg.operator")
  const mentionsMe = m.direction === "note" && me !== undefined && (m.mentions ?? []).includes(me)
  return (
    <article
      class={`msg msg-${m.direction}${mentionsMe ? " mentions-me" : ""}`}
      data-message={m.direction}
      data-seq={m.seq}
      data-id={m.id}
    >
      <header class="msg-meta">
        {m.direction === "note" ? <span class="note-label">{t("msg.note")}</span> : null}
        <span class="msg-author">{author}</span>
        {m.direction !== "note"
          ? (
            <span class="msg-channel" title={t("msg.via", { channel: channelName(m.channel) })}>
              <ChannelBadge channel={m.channel} />
              {m.direction === "out" && m.channelReason !== undefined
                ? (
                  <span class="muted small" data-channel-reason={m.channelReason}>
                    {" "}
                    {t(`msg.reason.${m.channelReason}`)}
                  </span>
                )
                : null}
            </span>
          )
          : null}
        <time class="muted" dateTime={m.createdAt}>{clock(m.createdAt)}</time>
        {m.direction === "out"
          ? (
            <Delivery
              delivery={m.delivery}
              {...(m.delivery.state === "failed" && m.fallbackTo === undefined
                ? {
                  onResend: () =>
                    void api.resend(m.conversationId, m.id).catch((e) =>
                      toast(t("msg.resendFailed", { message: String(e?.message ?? e) }))
                    ),
                }
                : {})}
            />
          )
          : null}
      </header>
      {m.direction === "out" && m.fallbackTo !== undefined
        ? (
          <div class="msg-fallback muted small" data-testid="fell-back">
            ↪ {t("msg.fellBack", {
              channel: channelName(fallbackChannel?.(m.fallbackTo) ?? ""),
            })}
          </div>
        )
        : null}
      {m.text !== "" ? <div class="msg-text">{m.text}</div> : null}
      <Files files={m.attachments} />
      {m.direction === "in" && m.payload !== undefined
        ? <div class="msg-payload muted small">{t("msg.pressed", { payload: m.payload })}</div>
        : null}
      {m.direction === "out" && m.buttons !== undefined
        ? (
          <div class="msg-buttons" data-testid="buttons">
            {m.buttons.map((row, i) => (
              <div key={i} class="msg-button-row">
                {row.map((b, j) =>
                  b.url !== undefined
                    ? (
                      <a key={j} class="msg-button" href={b.url} target="_blank" rel="noopener">
                        {b.text} ↗
                      </a>
                    )
                    : <span key={j} class="msg-button" title={b.payload}>{b.text}</span>
                )}
              </div>
            ))}
          </div>
        )
        : null}
    </article>
  )
}

export function PendingItem(
  { pending: p, onRetry }: { readonly pending: PendingMessage; readonly onRetry: () => void },
) {
  return (
    <article
      class={`msg msg-${p.direction} pending`}
      data-message={p.direction}
      data-pending={p.clientId}
    >
      <header class="msg-meta">
        {p.direction === "note" ? <span class="note-label">{t("msg.note")}</span> : null}
        <time class="muted" dateTime={p.createdAt}>{clock(p.createdAt)}</time>
        {p.error === undefined
          ? <span class="delivery muted" data-delivery="sending">{t("msg.sending")}</span>
          : (
            <span class="delivery delivery-failed" role="alert">
              {t("msg.sendFailed", { message: p.error })}{" "}
              <button type="button" class="link" onClick={onRetry}>{t("msg.retry")}</button>
            </span>
          )}
      </header>
      {p.text !== "" ? <div class="msg-text">{p.text}</div> : null}
      <Files files={p.attachments} />
    </article>
  )
}
