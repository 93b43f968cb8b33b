/**
 * Sign-in: e-mail and password; the code field appears when the server answers `TotpRequired`.
 * Throttling shows a countdown and keeps the button off until it runs out.
 */
import { useEffect, useRef, useState } from "preact/hooks"
import { login } from "../actions.ts"
import { ApiError } from "../api.ts"
import { locale, LOCALE_NAMES, setLocale, t } from "../i18n.ts"
import { LOCALES } from "../locales.ts"
import type { Locale } from "../types.ts"

export function SignIn() {
  const [email, setEmail] = useState("")
  const [password, setPassword] = useState("")
  const [totp, setTotp] = useState("")
  const [needTotp, setNeedTotp] = useState(false)
  const [busy, setBusy] = useState(false)
  const [error, setError] = useState<string | null>(null)
  const [retryAt, setRetryAt] = useState(0)
  const [now, setNow] = useState(Date.now())
  const [, setLang] = useState(locale())
  const totpField = useRef<HTMLInputElement>(null)

  useEffect(() => {
    if (retryAt <= now) return
    const timer = setInterval(() => setNow(Date.now()), 1000)
    return () => clearInterval(timer)
  }, [retryAt, now])
  useEffect(() => {
    if (needTotp) totpField.current?.focus()
  }, [needTotp])

  const waitSeconds = Math.max(0, Math.ceil((retryAt - now) / 1000))

  const submit = async (e: Event) => {
    e.preventDefault()
    if (busy || waitSeconds > 0) return
    setBusy(true)
    setError(null)
    try {
      await login(email.trim(), password, needTotp ? totp.trim() : undefined)
    } catch (err) {
      setBusy(false)
      if (!(err instanceof ApiError)) {
        setError(t("signin.failed", { message: String(err) }))
        return
      }
      switch (err.tag) {
        case "TotpRequired":
          setNeedTotp(true)
          return
        case "InvalidTotpCode":
          setNeedTotp(true)
          setTotp("")
          setError(t("signin.invalidTotp"))
          return
        case "InvalidCredentials":
          setError(t("signin.invalid"))
          return
        case "LoginThrottled": {
          const seconds = Number(err.body["retryAfterSeconds"] ?? 30)
          setRetryAt(Date.now() + seconds * 1000)
          setNow(Date.now())
          return
        }
        default:
          setError(t("signin.failed", { message: err.message }))
      }
    }
  }

  return (
    <div class="signin">
      <form class="signin-form" onSubmit={submit} data-testid="signin">
        <h1>{t("signin.title")}</h1>
        <label>
          {t("signin.email")}
          <input
            type="email"
            name="email"
            autocomplete="username"
            required
            value={email}
            onInput={(e) => setEmail(e.currentTarget.value)}
          />
        </label>
        <label>
          {t("signin.password")}
          <input
            type="password"
            name="password"
            autocomplete="current-password"
            required
            value={password}
            onInput={(e) => setPassword(e.currentTarget.value)}
          />
        </label>
        {needTotp
          ? (
            <label>
              {t("signin.totp")}
              <input
                ref={totpField}
                name="totp"
                inputMode="numeric"
                autocomplete="one-time-code"
                pattern="[0-9]{6,8}"
                required
                value={totp}
                onInput={(e) => setTotp(e.currentTarget.value)}
              />
              <small>{t("signin.totpHint")}</small>
            </label>
          )
          : null}
        {waitSeconds > 0
          ? <p class="form-error" role="alert">{t("signin.throttled", { seconds: waitSeconds })}</p>
          : null}
        {error !== null ? <p class="form-error" role="alert">{error}</p> : null}
        <button type="submit" class="primary" disabled={busy || waitSeconds > 0}>
          {busy ? t("signin.busy") : t("signin.submit")}
        </button>
        <div class="signin-lang">
          {LOCALES.map((l: Locale) => (
            <button
              type="button"
              key={l}
              class={l === locale() ? "link active" : "link"}
              onClick={() => {
                setLocale(l)
                setLang(l)
              }}
            >
              {LOCALE_NAMES[l]}
            </button>
          ))}
        </div>
      </form>
    </div>
  )
}
