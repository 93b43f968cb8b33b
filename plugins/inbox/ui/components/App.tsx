/** The page: sign-in, or the inbox (list, conversation, customer card) or the queue. */
import { useEffect } from "preact/hooks"
import { openConversation } from "../actions.ts"
import { t } from "../i18n.ts"
import { useStore } from "../store.ts"
import { ConversationList } from "./ConversationList.tsx"
import { ConversationView } from "./ConversationView.tsx"
import { CustomerCard } from "./CustomerCard.tsx"
import { DeliveryPage } from "./DeliveryPage.tsx"
import { Header } from "./Header.tsx"
import { PeoplePage } from "./PeoplePage.tsx"
import { QueuePage } from "./QueuePage.tsx"
import { SignIn } from "./SignIn.tsx"
import { Toasts } from "./Toasts.tsx"

const conversationInHash = () => {
  const m = /^#\/c\/([^/]+)$/.exec(location.hash)
  return m === null ? null : decodeURIComponent(m[1]!)
}

export function App() {
  const phase = useStore((s) => s.phase)
  const locale = useStore((s) => s.session?.operator.locale)
  useEffect(() => {
    document.title = t("app.title")
  }, [phase, locale])
  if (phase === "booting") return <div class="splash" aria-busy="true">Chorus</div>
  if (phase === "signedOut") return <SignIn />
  // A new language re-renders everything (strings are read while rendering).
  return <Inbox key={locale} />
}

function Inbox() {
  const page = useStore((s) => s.page)
  const live = useStore((s) => s.live)
  const everLive = useStore((s) => s.everLive)
  useEffect(() => {
    const open = () => {
      const id = conversationInHash()
      if (id !== null) void openConversation(id)
    }
    open()
    addEventListener("hashchange", open)
    return () => removeEventListener("hashchange", open)
  }, [])
  return (
    <div class="shell">
      <Header />
      {everLive && !live
        ? (
          <div class="banner" role="status" data-testid="reconnecting">
            {t("banner.reconnecting")}
          </div>
        )
        : null}
      {page === "queue"
        ? <QueuePage />
        : page === "people"
        ? <PeoplePage />
        : page === "delivery"
        ? <DeliveryPage />
        : (
          <main class="panes">
            <ConversationList />
            <ConversationView />
            <CustomerCard />
          </main>
        )}
      <Toasts />
    </div>
  )
}
