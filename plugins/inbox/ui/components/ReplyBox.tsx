/**
 * Writing to the customer or the team.
 *
 * - Reply mode: text, files (uploaded as soon as they are picked, sent by `storageKey`), and the
 *   channel to answer on (the customer's identities; default where they wrote last).
 * - Note mode: a private note; `@` opens a colleague picker and the note carries their ids.
 * - `/code` shows canned answers starting with it; Enter (or a click) puts the text in.
 * - Enter sends, Shift+Enter is a new line; each send gets a fresh clientId (actions.send).
 */
import { useEffect, useMemo, useRef, useState } from "preact/hooks"
import { send, toast, typing } from "../actions.ts"
import { api, ApiError } from "../api.ts"
import { t } from "../i18n.ts"
import { useStore } from "../store.ts"
import type { CannedResponse, Conversation, OperatorLoad, StoredFile } from "../types.ts"
import { channelName } from "./ChannelBadge.tsx"
import { fileSize } from "./MessageItem.tsx"

type Mode = "reply" | "note"

interface Picker {
  readonly kind: "canned" | "mention"
  /** Where the trigger (`/` or `@`) is in the text. */
  readonly at: number
  readonly query: string
}

/** The `/code` or `@name` being typed just before the caret, if any. */
const pickerAt = (text: string, caret: number, mode: Mode): Picker | null => {
  const before = text.slice(0, caret)
  const m = mode === "note"
    ? /(^|\s)@([^\s@]*)$/.exec(before)
    : /(^|\s)\/([a-z0-9_-]*)$/i.exec(before)
  if (m === null) return null
  return {
    kind: mode === "note" ? "mention" : "canned",
    at: before.length - m[2]!.length - 1,
    query: m[2]!.toLowerCase(),
  }
}

/** Unsent text per conversation and mode: switching conversations keeps each draft. */
const drafts = new Map<string, string>()

export function ReplyBox({ conversation: c }: { readonly conversation: Conversation }) {
  const contact = useStore((s) => s.contacts[c.contactId])
  const canned = useStore((s) => s.canned)
  const operators = useStore((s) => s.operators)
  const me = useStore((s) => s.session?.operator.id)
  const [mode, setMode] = useState<Mode>("reply")
  const [text, setTextState] = useState(() => drafts.get(`${c.id}:reply`) ?? "")
  const [files, setFiles] = useState<ReadonlyArray<StoredFile>>([])
  const [uploading, setUploading] = useState<ReadonlyArray<string>>([])
  const [identityId, setIdentityId] = useState<string>(c.lastChannel?.identityId ?? "")
  const [picker, setPicker] = useState<Picker | null>(null)
  const [choice, setChoice] = useState(0)
  const [mentions, setMentions] = useState<ReadonlyArray<OperatorLoad>>([])
  const area = useRef<HTMLTextAreaElement>(null)
  const setText = (value: string) => {
    setTextState(value)
    if (value === "") drafts.delete(`${c.id}:${mode}`)
    else drafts.set(`${c.id}:${mode}`, value)
  }
  const fileInput = useRef<HTMLInputElement>(null)

  const identities = contact?.identities ?? []
  const chosenIdentity = identityId !== "" ? identityId : c.lastChannel?.identityId ?? ""

  const options = useMemo<ReadonlyArray<CannedResponse | OperatorLoad>>(() => {
    if (picker === null) return []
    if (picker.kind === "canned") {
      return canned.filter((x) => x.shortCode.toLowerCase().startsWith(picker.query)).slice(0, 8)
    }
    return operators.filter((o) =>
      o.id !== me && !o.disabled &&
      (o.name.toLowerCase().startsWith(picker.query) || o.email.startsWith(picker.query))
    ).slice(0, 8)
  }, [picker, canned, operators, me])

  const track = (value: string, caret: number) => {
    setText(value)
    // Notes are private: only a reply's typing is told.
    if (mode === "reply" && value.trim() !== "") typing(c.id)
    const next = pickerAt(value, caret, mode)
    setPicker(next)
    if (next?.query !== picker?.query) setChoice(0)
  }

  const pick = (option: CannedResponse | OperatorLoad) => {
    if (picker === null) return
    const caret = area.current?.selectionStart ?? text.length
    const insert = "shortCode" in option ? option.text : `@${option.name} `
    const value = text.slice(0, picker.at) + insert + text.slice(caret)
    if (!("shortCode" in option)) {
      setMentions((list) => (list.some((o) => o.id === option.id) ? list : [...list, option]))
    }
    // The field now, not after the next render: what is typed next goes after the insertion.
    const at = picker.at + insert.length
    if (area.current !== null) {
      area.current.value = value
      area.current.focus()
      area.current.setSelectionRange(at, at)
    }
    setText(value)
    setPicker(null)
  }

  // Enter pressed while files were still uploading: send once they are all in.
  const [sendAfterUpload, setSendAfterUpload] = useState(false)
  useEffect(() => {
    if (sendAfterUpload && uploading.length === 0) {
      setSendAfterUpload(false)
      submit()
    }
  }, [sendAfterUpload, uploading])

  const upload = async (list: FileList | null) => {
    for (const file of Array.from(list ?? [])) {
      setUploading((u) => [...u, file.name])
      try {
        const stored = await api.upload(file)
        setFiles((f) => [...f, stored])
      } catch (error) {
        toast(
          t("reply.uploadFailed", {
            name: file.name,
            message: error instanceof ApiError ? error.message : String(error),
          }),
          "error",
        )
      } finally {
        setUploading((u) => {
          const i = u.indexOf(file.name)
          return i < 0 ? u : [...u.slice(0, i), ...u.slice(i + 1)]
        })
      }
    }
    if (fileInput.current !== null) fileInput.current.value = ""
  }

  const submit = () => {
    const body = text.trim()
    if (mode === "note") {
      if (body === "") return
      void send(c.id, {
        direction: "note",
        text: body,
        attachments: [],
        // Only colleagues still named in the text.
        mentions: mentions.filter((o) => body.includes(`@${o.name}`)).map((o) => o.id),
      })
    } else {
      if (uploading.length > 0) {
        // Sent as soon as the files are in the store (the effect below), not dropped.
        if (body !== "" || files.length > 0 || uploading.length > 0) setSendAfterUpload(true)
        return
      }
      if (body === "" && files.length === 0) return
      void send(c.id, {
        direction: "out",
        text: body,
        attachments: files.map((f) => ({
          name: f.name,
          mimeType: f.mimeType,
          size: f.size,
          storageKey: f.storageKey,
        })),
        ...(chosenIdentity !== "" ? { identityId: chosenIdentity } : {}),
        mentions: [],
      })
      setFiles([])
    }
    setText("")
    setMentions([])
    setPicker(null)
  }

  const onKeyDown = (e: KeyboardEvent) => {
    if (picker !== null && options.length > 0) {
      if (e.key === "ArrowDown" || e.key === "ArrowUp") {
        e.preventDefault()
        setChoice((i) => (i + (e.key === "ArrowDown" ? 1 : options.length - 1)) % options.length)
        return
      }
      if (e.key === "Enter" || e.key === "Tab") {
        e.preventDefault()
        pick(options[Math.min(choice, options.length - 1)]!)
        return
      }
      if (e.key === "Escape") {
        setPicker(null)
        return
      }
    }
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault()
      submit()
    }
  }

  return (
    <div class={`reply reply-${mode}`} data-testid="reply">
      <div class="reply-modes" role="tablist">
        {(["reply", "note"] as const).map((m) => (
          <button
            type="button"
            role="tab"
            key={m}
            aria-selected={mode === m}
            data-testid={`mode-${m}`}
            class={mode === m ? "tab active" : "tab"}
            onClick={() => {
              setMode(m)
              setTextState(drafts.get(`${c.id}:${m}`) ?? "")
              setPicker(null)
            }}
          >
            {t(m === "reply" ? "reply.modeReply" : "reply.modeNote")}
          </button>
        ))}
        {mode === "reply"
          ? (
            <label class="reply-channel">
              {t("reply.channel")}
              {identities.length === 0 && contact !== undefined
                ? <span class="form-error">{t("reply.noIdentities")}</span>
                : (
                  <select
                    data-testid="reply-channel"
                    value={chosenIdentity}
                    onChange={(e) => setIdentityId(e.currentTarget.value)}
                  >
                    {identities.length === 0 && c.lastChannel !== null
                      ? (
                        <option value={c.lastChannel.identityId}>
                          {channelName(c.lastChannel.channel)} · {c.lastChannel.account}
                        </option>
                      )
                      : null}
                    {identities.map((i) => (
                      <option key={i.id} value={i.id} disabled={!i.reachable}>
                        {channelName(i.channel)} · {i.account}
                        {i.name ? ` · ${i.name}` : ""}
                        {!i.reachable ? ` (${t("reply.unreachable")})` : ""}
                      </option>
                    ))}
                  </select>
                )}
            </label>
          )
          : null}
      </div>
      {picker !== null
        ? (
          <ul class="picker" role="listbox" data-testid={`picker-${picker.kind}`}>
            {options.length === 0
              ? (
                <li class="muted">
                  {picker.kind === "canned" ? t("reply.noCanned", { code: picker.query }) : "—"}
                </li>
              )
              : options.map((o, i) => (
                <li
                  key={o.id}
                  role="option"
                  aria-selected={i === choice}
                  class={i === choice ? "active" : ""}
                  onMouseDown={(e) => {
                    e.preventDefault()
                    pick(o)
                  }}
                >
                  {"shortCode" in o
                    ? (
                      <>
                        <strong>/{o.shortCode}</strong>{" "}
                        <span class="muted">{o.text.slice(0, 80)}</span>
                      </>
                    )
                    : (
                      <>
                        <strong>{o.name}</strong> <span class="muted">{o.email}</span>
                      </>
                    )}
                </li>
              ))}
          </ul>
        )
        : null}
      <textarea
        ref={area}
        data-testid="reply-text"
        rows={3}
        value={text}
        placeholder={mode === "note" ? t("reply.notePlaceholder") : t("reply.placeholder")}
        onInput={(e) => track(e.currentTarget.value, e.currentTarget.selectionStart)}
        onKeyDown={onKeyDown}
        onBlur={() => setPicker(null)}
      />
      {files.length > 0 || uploading.length > 0
        ? (
          <div class="chips">
            {files.map((f) => (
              <span key={f.storageKey} class="chip">
                📎 {f.name} <span class="muted">{fileSize(f.size)}</span>
                <button
                  type="button"
                  class="link"
                  aria-label={t("reply.remove")}
                  onClick={() =>
                    setFiles((list) => list.filter((x) => x.storageKey !== f.storageKey))}
                >
                  ×
                </button>
              </span>
            ))}
            {uploading.map((name, i) => (
              <span key={`u${i}`} class="chip muted">{t("reply.uploading", { name })}</span>
            ))}
          </div>
        )
        : null}
      <div class="reply-bar">
        {mode === "reply"
          ? (
            <>
              <input
                ref={fileInput}
                type="file"
                multiple
                hidden
                data-testid="reply-files"
                onChange={(e) => void upload(e.currentTarget.files)}
              />
              <button
                type="button"
                onClick={() => fileInput.current?.click()}
                data-testid="attach"
              >
                {t("reply.attach")}
              </button>
            </>
          )
          : null}
        <span class="spacer" />
        <button type="button" class="primary" data-testid="send" onClick={submit}>
          {mode === "note" ? t("reply.addNote") : t("reply.send")}
        </button>
      </div>
    </div>
  )
}
