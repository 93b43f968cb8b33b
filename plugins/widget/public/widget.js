/*
 * Chorus web chat widget. On a page:
 *   <script src="https://chat.example.com/plugins/widget/widget.js" data-site="shop" async></script>
 * Optional: data-user-id and data-user-hash (hex HMAC-SHA256, with the site's secret, of the user
 * id, or of "<user id>:<email>" when data-email is given; made by your server), data-name,
 * data-email. No framework needed; everything is in this file.
 */
;(function () {
  "use strict"
  const script = document.currentScript
  if (!script) return
  const base = new URL(script.src)
  const site = script.getAttribute("data-site") || "default"
  const store = localStorage
  const visitorKey = "chorus-widget-visitor:" + site
  // The last message on screen: a reconnect asks only for what came after it; a new page (no
  // messages on screen yet) gets the whole conversation.
  let lastSeen = ""
  let visitor = store.getItem(visitorKey)
  if (!visitor) {
    const bytes = new Uint8Array(18)
    crypto.getRandomValues(bytes)
    visitor = btoa(String.fromCharCode.apply(null, bytes)).replace(/\+/g, "-").replace(/\//g, "_")
    store.setItem(visitorKey, visitor)
  }
  const pending = {} // clientId -> text, until acknowledged
  const shown = {} // message keys already on screen

  const root = document.createElement("div")
  root.setAttribute("data-chorus-widget", "")
  root.style.cssText =
    "position:fixed;right:16px;bottom:16px;z-index:2147483000;font:14px system-ui,sans-serif"
  root.innerHTML =
    '<button type="button" data-open style="border-radius:24px;padding:10px 16px;border:0;background:#2563eb;color:#fff;cursor:pointer">Chat</button>' +
    '<div data-panel hidden style="width:320px;height:420px;background:#fff;border:1px solid #ddd;border-radius:12px;box-shadow:0 8px 24px rgba(0,0,0,.15);display:flex;flex-direction:column">' +
    '<div data-log style="flex:1;overflow-y:auto;padding:8px"></div>' +
    '<div data-status style="font-size:12px;color:#888;padding:0 8px"></div>' +
    '<form data-form style="display:flex;border-top:1px solid #eee"><input data-input autocomplete="off" placeholder="Type a message" style="flex:1;border:0;padding:10px">' +
    '<button style="border:0;background:none;color:#2563eb;padding:0 12px;cursor:pointer">Send</button></form></div>'
  document.body.appendChild(root)
  const panel = root.querySelector("[data-panel]")
  const log = root.querySelector("[data-log]")
  const status = root.querySelector("[data-status]")
  const input = root.querySelector("[data-input]")
  root.querySelector("[data-open]").addEventListener("click", function () {
    panel.hidden = !panel.hidden
    if (!panel.hidden) input.focus()
  })

  const bubble = (from, text, id) => {
    const row = document.createElement("div")
    row.setAttribute("data-message", from)
    if (id) row.setAttribute("data-id", id)
    row.style.cssText = "margin:4px 0;display:flex;justify-content:" +
      (from === "visitor" ? "flex-end" : "flex-start")
    const b = document.createElement("span")
    b.textContent = text
    b.style.cssText =
      "max-width:80%;padding:6px 10px;border-radius:10px;white-space:pre-wrap;background:" +
      (from === "visitor" ? "#dbeafe" : "#f3f4f6")
    row.appendChild(b)
    log.appendChild(row)
    log.scrollTop = log.scrollHeight
    return row
  }

  let socket
  let attempt = 0
  const connect = () => {
    const params = new URLSearchParams({ visitor: visitor, since: lastSeen })
    ;["user-id:userId", "user-hash:userHash", "name:name", "email:email"].forEach(function (pair) {
      const p = pair.split(":")
      const v = script.getAttribute("data-" + p[0])
      if (v) params.set(p[1], v)
    })
    const url = (base.protocol === "https:" ? "wss:" : "ws:") + "//" + base.host +
      "/plugins/widget/ws/" +
      encodeURIComponent(site) + "?" + params
    socket = new WebSocket(url)
    socket.onopen = function () {
      attempt = 0
      status.textContent = ""
      // What was typed while away goes now; the server stores a clientId once.
      Object.keys(pending).forEach(function (clientId) {
        socket.send(
          JSON.stringify({ type: "message", clientId: clientId, text: pending[clientId] }),
        )
      })
    }
    socket.onmessage = function (event) {
      const frame = JSON.parse(event.data)
      if (frame.type === "message") {
        if (frame.key && shown[frame.key]) return
        if (frame.key) shown[frame.key] = true
        const local = frame.clientId &&
          log.querySelector('[data-client-id="' + frame.clientId + '"]')
        if (local) local.removeAttribute("data-client-id")
        else bubble(frame.from, frame.text, frame.id)
        if (frame.key && frame.key > lastSeen) {
          lastSeen = frame.key
        }
      } else if (frame.type === "ack") {
        delete pending[frame.clientId]
      } else if (frame.type === "error") {
        status.textContent = frame.message
      }
    }
    socket.onclose = function () {
      status.textContent = "Reconnecting…"
      attempt++
      setTimeout(connect, Math.min(30000, 500 * Math.pow(2, attempt)))
    }
  }

  root.querySelector("[data-form]").addEventListener("submit", function (event) {
    event.preventDefault()
    const text = input.value.trim()
    if (!text) return
    input.value = ""
    const clientId = Date.now().toString(36) + Math.random().toString(36).slice(2, 10)
    pending[clientId] = text
    bubble("visitor", text).setAttribute("data-client-id", clientId)
    if (socket && socket.readyState === 1) {
      socket.send(JSON.stringify({ type: "message", clientId: clientId, text: text }))
    }
  })
  connect()
})()
