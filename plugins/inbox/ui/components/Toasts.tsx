/** In-page notices, newest last; one with a conversation opens it on click. */
import { dismissToast, openConversation } from "../actions.ts"
import { t } from "../i18n.ts"
import { useStore } from "../store.ts"

export function Toasts() {
  const toasts = useStore((s) => s.toasts)
  return (
    <div class="toasts" aria-live="polite">
      {toasts.map((x) => (
        <div
          key={x.id}
          class={`toast toast-${x.kind}`}
          role={x.kind === "error" ? "alert" : "status"}
        >
          <span class="toast-text">{x.text}</span>
          {x.conversationId !== undefined
            ? (
              <button
                type="button"
                onClick={() => {
                  void openConversation(x.conversationId!)
                  dismissToast(x.id)
                }}
              >
                {t("notify.open")}
              </button>
            )
            : null}
          <button
            type="button"
            class="toast-close"
            aria-label={t("close")}
            onClick={() => dismissToast(x.id)}
          >
            ×
          </button>
        </div>
      ))}
    </div>
  )
}
