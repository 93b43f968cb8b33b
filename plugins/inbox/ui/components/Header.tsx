/** The top bar: pages, my presence, language, notifications, sign out (here or everywhere). */
import { changeLocale, changePresence, logout } from "../actions.ts"
import { LOCALE_NAMES, t } from "../i18n.ts"
import { LOCALES, PRESENCES } from "../locales.ts"
import { askNotificationPermission } from "../notify.ts"
import { setState, useStore } from "../store.ts"
import type { Locale, Presence } from "../types.ts"

export function Header() {
  const operator = useStore((s) => s.session?.operator)
  const page = useStore((s) => s.page)
  const permission = useStore((s) => s.notificationPermission)
  if (operator === undefined) return null
  const supervisor = operator.role === "supervisor" || operator.role === "admin"
  return (
    <header class="topbar">
      <strong class="brand">Chorus</strong>
      <nav class="pages">
        <button
          type="button"
          class={page === "inbox" ? "tab active" : "tab"}
          onClick={() => setState({ page: "inbox" })}
        >
          {t("header.inbox")}
        </button>
        {supervisor
          ? (
            <button
              type="button"
              class={page === "queue" ? "tab active" : "tab"}
              data-testid="queue-tab"
              onClick={() => setState({ page: "queue" })}
            >
              {t("header.queue")}
            </button>
          )
          : null}
        {supervisor
          ? (
            <button
              type="button"
              class={page === "delivery" ? "tab active" : "tab"}
              data-testid="delivery-tab"
              onClick={() => setState({ page: "delivery" })}
            >
              {t("header.delivery")}
            </button>
          )
          : null}
        {supervisor
          ? (
            <button
              type="button"
              class={page === "people" ? "tab active" : "tab"}
              data-testid="people-tab"
              onClick={() => setState({ page: "people" })}
            >
              {t("header.people")}
            </button>
          )
          : null}
      </nav>
      <span class="spacer" />
      <span class="me" title={operator.email}>{operator.name}</span>
      <label class="presence" data-presence={operator.presence}>
        <span class="dot" aria-hidden="true" />
        <span class="sr-only">{t("header.presence")}</span>
        <select
          data-testid="presence"
          value={operator.presence}
          onChange={(e) => void changePresence(e.currentTarget.value as Presence)}
        >
          {PRESENCES.map((p) => <option key={p} value={p}>{t(`presence.${p}`)}</option>)}
        </select>
      </label>
      <label>
        <span class="sr-only">{t("header.language")}</span>
        <select
          data-testid="language"
          value={operator.locale}
          onChange={(e) => void changeLocale(e.currentTarget.value as Locale)}
        >
          {LOCALES.map((l) => <option key={l} value={l}>{LOCALE_NAMES[l]}</option>)}
        </select>
      </label>
      {permission === "default"
        ? (
          <button
            type="button"
            onClick={async () =>
              setState({ notificationPermission: await askNotificationPermission() })}
          >
            {t("header.notifications")}
          </button>
        )
        : permission === "denied"
        ? <span class="muted" title={t("header.notificationsBlocked")}>🔕</span>
        : permission === "granted"
        ? <span class="muted" title={t("header.notificationsOn")}>🔔</span>
        : null}
      <button type="button" onClick={() => void logout(false)} data-testid="signout">
        {t("header.signOut")}
      </button>
      <button type="button" class="link" onClick={() => void logout(true)}>
        {t("header.signOutEverywhere")}
      </button>
    </header>
  )
}
