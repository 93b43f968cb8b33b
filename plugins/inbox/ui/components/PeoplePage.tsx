/**
 * The admin's page: operators (add one, change role, capacity, active, sign them out
 * everywhere), teams (add one, members, the inboxes they own) and canned answers. Supervisors
 * see it for canned answers only; everything goes through the people API, which checks roles
 * again.
 */
import { useState } from "preact/hooks"
import { loadDirectory } from "../actions.ts"
import { api, ApiError } from "../api.ts"
import { t } from "../i18n.ts"
import { useStore } from "../store.ts"
import type { Role } from "../types.ts"

const ROLES: ReadonlyArray<Role> = ["operator", "supervisor", "admin"]

/** Run a change, then refresh operators, teams and canned answers; errors shown on the page. */
const useChange = () => {
  const [error, setError] = useState<string | null>(null)
  const run = async (change: () => Promise<unknown>) => {
    try {
      await change()
      setError(null)
    } catch (e) {
      setError(e instanceof ApiError ? e.message : String(e))
    }
    await loadDirectory()
  }
  return { error, run }
}

export function PeoplePage() {
  const me = useStore((s) => s.session?.operator)
  const operators = useStore((s) => s.operators)
  const teams = useStore((s) => s.teams)
  const canned = useStore((s) => s.canned)
  const { error, run } = useChange()
  const [added, setAdded] = useState<string | null>(null)
  const admin = me?.role === "admin"
  const nameOf = (id: string) => operators.find((o) => o.id === id)?.name ?? id

  return (
    <main class="queue-page people-page" data-testid="people">
      {error !== null ? <p class="form-error" data-testid="people-error">{error}</p> : null}
      {admin
        ? (
          <section>
            <h2>{t("people.title")}</h2>
            <table>
              <thead>
                <tr>
                  <th>{t("people.name")}</th>
                  <th>{t("people.email")}</th>
                  <th>{t("people.role")}</th>
                  <th>{t("people.capacity")}</th>
                  <th>{t("people.active")}</th>
                  <th />
                </tr>
              </thead>
              <tbody>
                {operators.map((o) => (
                  <tr key={o.id} data-operator={o.email}>
                    <td>{o.name}</td>
                    <td>{o.email}</td>
                    <td>
                      <select
                        value={o.role}
                        data-testid="role"
                        onChange={(e) => {
                          const role = e.currentTarget.value as Role
                          void run(() => api.changeOperator(o.id, { role }))
                        }}
                      >
                        {ROLES.map((r) => <option key={r} value={r}>{t(`role.${r}`)}</option>)}
                      </select>
                    </td>
                    <td>
                      <input
                        type="number"
                        min={0}
                        max={100}
                        value={o.capacity}
                        data-testid="capacity"
                        onChange={(e) => {
                          const capacity = Number(e.currentTarget.value)
                          void run(() => api.changeOperator(o.id, { capacity }))
                        }}
                      />
                    </td>
                    <td>
                      <input
                        type="checkbox"
                        checked={!o.disabled}
                        data-testid="active"
                        onChange={(e) => {
                          const disabled = !e.currentTarget.checked
                          void run(() => api.changeOperator(o.id, { disabled }))
                        }}
                      />
                    </td>
                    <td>
                      <button
                        type="button"
                        onClick={() => void run(() => api.signOutOperator(o.id))}
                      >
                        {t("people.signOut")}
                      </button>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
            <form
              class="people-form"
              data-testid="add-operator"
              onSubmit={(e) => {
                e.preventDefault()
                const form = e.currentTarget
                const data = new FormData(form)
                const name = String(data.get("name") ?? "")
                void run(async () => {
                  await api.addOperator({
                    email: String(data.get("email") ?? ""),
                    name,
                    role: String(data.get("role") ?? "operator") as Role,
                    password: String(data.get("password") ?? ""),
                  })
                  form.reset()
                  setAdded(t("people.added", { name }))
                })
              }}
            >
              <h3>{t("people.add")}</h3>
              <input name="name" required placeholder={t("people.name")} />
              <input name="email" type="email" required placeholder={t("people.email")} />
              <select name="role">
                {ROLES.map((r) => <option key={r} value={r}>{t(`role.${r}`)}</option>)}
              </select>
              <input
                name="password"
                type="password"
                required
                minLength={10}
                autocomplete="new-password"
                placeholder={t("people.password")}
              />
              <button type="submit">{t("people.submit")}</button>
              {added !== null ? <span class="muted" role="status">{added}</span> : null}
            </form>
          </section>
        )
        : null}
      {admin
        ? (
          <section>
            <h2>{t("people.teams")}</h2>
            {teams.map((team) => (
              <div class="team" key={team.id} data-team={team.name}>
                <h3>{team.name}</h3>
                <div>
                  <strong>{t("people.members")}:</strong>{" "}
                  {team.memberIds.map((m) => (
                    <span class="chip" key={m}>
                      {nameOf(m)}{" "}
                      <button
                        type="button"
                        title={t("people.remove")}
                        onClick={() => void run(() => api.removeMember(team.id, m))}
                      >
                        ×
                      </button>
                    </span>
                  ))}
                  <select
                    value=""
                    data-testid="add-member"
                    onChange={(e) => {
                      const operatorId = e.currentTarget.value
                      if (operatorId !== "") void run(() => api.addMember(team.id, operatorId))
                    }}
                  >
                    <option value="">{t("people.addMember")}</option>
                    {operators.filter((o) => !team.memberIds.includes(o.id)).map((o) => (
                      <option key={o.id} value={o.id}>{o.name}</option>
                    ))}
                  </select>
                </div>
                <div>
                  <strong>{t("people.inboxes")}:</strong>{" "}
                  {team.inboxes.map((i) => (
                    <span class="chip" key={`${i.channel}:${i.account}`}>
                      {i.channel}:{i.account}{" "}
                      <button
                        type="button"
                        title={t("people.remove")}
                        onClick={() => void run(() => api.releaseInbox(team.id, i))}
                      >
                        ×
                      </button>
                    </span>
                  ))}
                  <form
                    class="inline-form"
                    data-testid="claim-inbox"
                    onSubmit={(e) => {
                      e.preventDefault()
                      const form = e.currentTarget
                      const raw = String(new FormData(form).get("inbox") ?? "").trim()
                      const at = raw.indexOf(":")
                      if (at <= 0) return
                      const inbox = { channel: raw.slice(0, at), account: raw.slice(at + 1) }
                      void run(async () => {
                        await api.claimInbox(team.id, inbox)
                        form.reset()
                      })
                    }}
                  >
                    <input name="inbox" placeholder={t("people.inboxHint")} />
                    <button type="submit">{t("people.claim")}</button>
                  </form>
                </div>
              </div>
            ))}
            <form
              class="inline-form"
              data-testid="add-team"
              onSubmit={(e) => {
                e.preventDefault()
                const form = e.currentTarget
                const name = String(new FormData(form).get("team") ?? "").trim()
                if (name === "") return
                void run(async () => {
                  await api.addTeam(name)
                  form.reset()
                })
              }}
            >
              <input name="team" placeholder={t("people.newTeam")} />
              <button type="submit">{t("people.submit")}</button>
            </form>
          </section>
        )
        : <p class="muted">{t("people.forbidden")}</p>}
      <section>
        <h2>{t("people.canned")}</h2>
        <table>
          <tbody>
            {canned.map((c) => (
              <tr key={c.id} data-canned={c.shortCode}>
                <td>/{c.shortCode}</td>
                <td>{c.text}</td>
                <td>
                  {c.teamId === null
                    ? t("people.everyone")
                    : teams.find((x) => x.id === c.teamId)?.name ?? c.teamId}
                </td>
                <td>
                  <button type="button" onClick={() => void run(() => api.deleteCanned(c.id))}>
                    {t("people.remove")}
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
        <form
          class="inline-form"
          data-testid="add-canned"
          onSubmit={(e) => {
            e.preventDefault()
            const form = e.currentTarget
            const data = new FormData(form)
            const teamId = String(data.get("teamId") ?? "")
            void run(async () => {
              await api.addCanned({
                shortCode: String(data.get("shortCode") ?? "").trim(),
                text: String(data.get("text") ?? ""),
                teamId: teamId === "" ? null : teamId,
              })
              form.reset()
            })
          }}
        >
          <input name="shortCode" required placeholder={t("people.shortCode")} />
          <input name="text" required placeholder={t("people.cannedText")} />
          <select name="teamId">
            <option value="">{t("people.everyone")}</option>
            {teams.filter((x) => admin || (me?.teamIds ?? []).includes(x.id)).map((x) => (
              <option key={x.id} value={x.id}>{x.name}</option>
            ))}
          </select>
          <button type="submit">{t("people.submit")}</button>
        </form>
      </section>
    </main>
  )
}
