/**
 * The customer card's identity-graph section: suggestions that another customer is the same
 * person (with the evidence: which phone, e-mail or name matched and how each side knows it),
 * to merge into this customer or to reject; and the merge history, where a merge can be undone
 * (split). Reloads the card after every decision.
 */
import { useEffect, useState } from "preact/hooks"
import { api } from "../api.ts"
import { loadContact, openConversation } from "../actions.ts"
import { type MessageKey, t } from "../i18n.ts"
import { useStore } from "../store.ts"
import { clock } from "../time.ts"
import type { MergeRecord, MergeSuggestion } from "../types.ts"

interface Loaded {
  readonly contactId: string
  readonly suggestions: ReadonlyArray<MergeSuggestion>
  readonly merges: ReadonlyArray<MergeRecord>
  /** Names of the other contacts named above. */
  readonly names: Readonly<Record<string, string>>
}

const ruleText = (rule: string) =>
  rule.startsWith("same_") ? t(`card.rule.${rule}` as MessageKey) : rule

export function MergePanel({ contactId }: { readonly contactId: string }) {
  const selectedId = useStore((s) => s.selectedId)
  const [loaded, setLoaded] = useState<Loaded | undefined>(undefined)
  const [error, setError] = useState<string | undefined>(undefined)
  const [busy, setBusy] = useState(false)

  const load = async () => {
    try {
      const [{ suggestions }, { merges }] = await Promise.all([
        api.suggestions(contactId),
        api.merges(contactId),
      ])
      const others = new Set<string>()
      for (const s of suggestions) others.add(s.contactA === contactId ? s.contactB : s.contactA)
      for (const m of merges) others.add(m.targetId === contactId ? m.sourceId : m.targetId)
      const names: Record<string, string> = {}
      await Promise.all([...others].map(async (other) => {
        try {
          const profile = await api.profile(other)
          names[other] = profile.name ?? profile.emails[0]?.value ?? profile.phones[0]?.value ??
            other
        } catch {
          names[other] = other
        }
      }))
      setLoaded({ contactId, suggestions, merges, names })
      setError(undefined)
    } catch (e) {
      setError(String((e as Error).message ?? e))
    }
  }

  useEffect(() => {
    setLoaded(undefined)
    void load()
  }, [contactId])

  const act = async (run: () => Promise<unknown>) => {
    setBusy(true)
    try {
      await run()
      await load()
      await loadContact(contactId)
      // The open conversation may belong to another contact now (after a split).
      if (selectedId !== null) await openConversation(selectedId)
    } catch (e) {
      setError(t("action.failed", { message: String((e as Error).message ?? e) }))
    } finally {
      setBusy(false)
    }
  }

  const split = (merge: MergeRecord) => {
    const reason = globalThis.prompt(t("card.splitReason"))
    if (reason === null || reason.trim() === "") return
    void act(() => api.split(merge.id, reason.trim()))
  }

  const data = loaded?.contactId === contactId ? loaded : undefined
  return (
    <section class="merge-slot" data-testid="merge-suggestions">
      <h4>{t("card.merge")}</h4>
      {error !== undefined ? <p class="form-error small" role="alert">{error}</p> : null}
      {data === undefined ? <p class="muted">{t("list.loading")}</p> : (
        <>
          {data.suggestions.length === 0
            ? <p class="muted small">{t("card.mergeNone")}</p>
            : (
              <ul class="suggestions">
                {data.suggestions.map((s) => {
                  const other = s.contactA === contactId ? s.contactB : s.contactA
                  const mine = s.contactA === contactId
                  return (
                    <li key={s.id} data-suggestion={s.id}>
                      <span>{t("card.mergeWith", { name: data.names[other] ?? other })}</span>
                      <ul class="evidence small">
                        {s.evidence.map((e, i) => (
                          <li key={i}>
                            {ruleText(e.rule)}: <b>{e.value}</b>{" "}
                            <span class="muted">
                              ({mine ? e.a : e.b} / {mine ? e.b : e.a})
                            </span>
                          </li>
                        ))}
                      </ul>
                      <button
                        type="button"
                        disabled={busy}
                        onClick={() => void act(() => api.acceptSuggestion(s.id, contactId))}
                      >
                        {t("card.mergeAccept")}
                      </button>{" "}
                      <button
                        type="button"
                        class="link"
                        disabled={busy}
                        onClick={() => void act(() => api.rejectSuggestion(s.id))}
                      >
                        {t("card.mergeReject")}
                      </button>
                    </li>
                  )
                })}
              </ul>
            )}
          {data.merges.length === 0 ? null : (
            <>
              <h4>{t("card.mergeHistory")}</h4>
              <ul class="merges small">
                {data.merges.map((m) => {
                  const into = m.targetId === contactId
                  const other = data.names[into ? m.sourceId : m.targetId] ??
                    (into ? m.sourceId : m.targetId)
                  return (
                    <li key={m.id} data-merge={m.id}>
                      <span>
                        {t(into ? "card.mergeIn" : "card.mergeOut", { name: other })} ·{" "}
                        {t("card.mergeEntry", {
                          kind: t(`card.mergeKind.${m.kind}` as MessageKey),
                          time: clock(m.createdAt),
                          by: m.mergedBy,
                        })}
                      </span>
                      <span class="muted">— {m.reason}</span>
                      {m.splitAt !== null
                        ? (
                          <span class="muted">
                            · {t("card.splitDone", {
                              time: clock(m.splitAt),
                              reason: m.splitReason ?? "",
                            })}
                          </span>
                        )
                        : (
                          <button
                            type="button"
                            class="link"
                            disabled={busy}
                            onClick={() => split(m)}
                          >
                            {t("card.split")}
                          </button>
                        )}
                    </li>
                  )
                })}
              </ul>
            </>
          )}
        </>
      )}
    </section>
  )
}
