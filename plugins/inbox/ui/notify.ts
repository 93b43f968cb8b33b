/**
 * Telling the operator something happened: a short chime made with WebAudio (no sound file), and
 * the browser's notification while the page is hidden, once the operator allowed it (asked from
 * a button, never on load). The in-page toast is the store's (`actions.toast`).
 */

let audio: AudioContext | undefined

/** Browsers start audio only after a gesture: create the context on the first one. */
export const unlockAudio = () => {
  if (audio !== undefined || typeof AudioContext === "undefined") return
  try {
    audio = new AudioContext()
  } catch {
    audio = undefined
  }
}

/** Two short rising tones, quiet. */
export const chime = () => {
  if (audio === undefined) return
  if (audio.state === "suspended") void audio.resume()
  const start = audio.currentTime + 0.01
  for (const [i, frequency] of [660, 880].entries()) {
    const osc = audio.createOscillator()
    const gain = audio.createGain()
    osc.type = "sine"
    osc.frequency.value = frequency
    const at = start + i * 0.12
    gain.gain.setValueAtTime(0.0001, at)
    gain.gain.exponentialRampToValueAtTime(0.15, at + 0.02)
    gain.gain.exponentialRampToValueAtTime(0.0001, at + 0.18)
    osc.connect(gain).connect(audio.destination)
    osc.start(at)
    osc.stop(at + 0.2)
  }
}

export const notificationsSupported = () => typeof Notification !== "undefined"

export const askNotificationPermission = async (): Promise<NotificationPermission> =>
  notificationsSupported() ? await Notification.requestPermission() : "denied"

/** A system notification, only when allowed and the page is not in view. */
export const systemNotification = (title: string, body: string, onClick: () => void) => {
  if (!notificationsSupported() || Notification.permission !== "granted") return
  if (document.visibilityState === "visible") return
  const n = new Notification(title, { body: body.slice(0, 180), tag: title + body.slice(0, 40) })
  n.onclick = () => {
    globalThis.focus()
    onClick()
    n.close()
  }
}
