/*
 * Chorus web chat widget. On a page:
 *   <script src="https://chat.example.com/plugins/widget/widget.js" data-site="shop" async></script>
 * Optional: data-user-id and data-user-hash (hex HMAC-SHA256, with the site's secret, of the user
 * id, or of "<user id>:<email>" when data-email is given, or of "<user id>:<email or
 * nothing>:<phone>" when data-phone (E.164) is given; made by your server), data-name, data-email,
 * data-phone. No framework needed; everything is in this file.
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
    '<div data-typing hidden style="font-size:12px;color:#888;padding:0 8px">The operator is typing…</div>' +
    '<div data-status style="font-size:12px;color:#888;padding:0 8px"></div>' +
    '<div data-offline hidden style="padding:8px;border-top:1px solid #eee;font-size:13px;color:#444">' +
    "<div>Nobody is online right now. Leave a message (and your e-mail, to get the answer there too); we will answer here.</div>" +
    '<input data-email type="email" autocomplete="email" placeholder="Your e-mail" style="width:100%;box-sizing:border-box;margin-top:6px;padding:6px;border:1px solid #ddd;border-radius:6px"></div>' +
    '<form data-form style="display:flex;border-top:1px solid #eee">' +
    '<label title="Send a file" style="padding:10px;cursor:pointer">&#128206;<input data-file type="file" hidden></label>' +
    '<input data-input autocomplete="off" placeholder="Type a message" style="flex:1;border:0;padding:10px">' +
    '<button style="border:0;background:none;color:#2563eb;padding:0 12px;cursor:pointer">Send</button></form></div>'
  document.body.appendChild(root)
  const panel = root.querySelector("[data-panel]")
  const log = root.querySelector("[data-log]")
  const status = root.querySelector("[data-status]")
  const input = root.querySelector("[data-input]")
  const typingNote = root.querySelector("[data-typing]")
  let typingTimer = 0
  let typingSent = 0
  const offline = root.querySelector("[data-offline]")
  const emailInput = root.querySelector("[data-email]")
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
    ;["user-id:userId", "user-hash:userHash", "name:name", "email:email", "phone:phone"].forEach(
      function (pair) {
        const p = pair.split(":")
        const v = script.getAttribute("data-" + p[0])
        if (v) params.set(p[1], v)
      },
    )
    const url = (base.protocol === "https:" ? "wss:" : "ws:") + "//" + base.host +
      "/plugins/widget/ws/" +
      encodeURIComponent(site) + "?" + params
    socket = new WebSocket(url)
    socket.onopen = function () {
      attempt = 0
      status.textContent = ""
      // What was typed while away goes now; the server stores a clientId once.
      Object.keys(pending).forEach(function (clientId) {
        sendPending(clientId)
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
        else {
          const row = bubble(frame.from, frame.text || "", frame.id) // Files: a link (a signed one from Chorus, valid a day) or, while none, the name.
          ;(frame.files || []).forEach(function (f) {
            const item = document.createElement(f.url ? "a" : "span")
            item.textContent = "\u{1F4CE} " + f.name
            item.setAttribute("data-file-name", f.name)
            if (f.url) {
              item.href = new URL(f.url, base).toString()
              item.target = "_blank"
              item.rel = "noopener"
            }
            item.style.cssText = "display:block"
            row.firstChild.appendChild(item)
          })
        }
        if (frame.key && frame.key > lastSeen) {
          lastSeen = frame.key
        }
      } else if (frame.type === "ack") {
        delete pending[frame.clientId]
      } else if (frame.type === "typing") {
        typingNote.hidden = false
        clearTimeout(typingTimer)
        typingTimer = setTimeout(function () {
          typingNote.hidden = true
        }, 4000)
      } else if (frame.type === "welcome") {
        // Nobody can answer now: the offline form asks for an address to answer to.
        offline.hidden = frame.available !== false || frame.verified === true
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

  const newClientId = () => Date.now().toString(36) + Math.random().toString(36).slice(2, 10)

  /** A message or a file: a file is its `file` frame, then its bytes as a binary frame. */
  const sendPending = (clientId) => {
    const item = pending[clientId]
    if (!item) return
    if (item.file) {
      socket.send(JSON.stringify({
        type: "file",
        clientId: clientId,
        name: item.file.name,
        mimeType: item.file.type,
        text: item.text,
      }))
      socket.send(item.bytes)
    } else {
      socket.send(JSON.stringify(
        item.email
          ? { type: "message", clientId: clientId, text: item.text, email: item.email }
          : { type: "message", clientId: clientId, text: item.text },
      ))
    }
  }

  root.querySelector("[data-file]").addEventListener("change", function (event) {
    const file = event.target.files[0]
    event.target.value = ""
    if (!file) return
    file.arrayBuffer().then(function (bytes) {
      const clientId = newClientId()
      pending[clientId] = { file: file, bytes: bytes, text: "" }
      bubble("visitor", "\u{1F4CE} " + file.name).setAttribute("data-client-id", clientId)
      if (socket && socket.readyState === 1) sendPending(clientId)
    })
  })

  // The visitor is typing: said at most every two seconds (the inbox shows it).
  input.addEventListener("input", function () {
    const now = Date.now()
    if (now - typingSent < 2000 || !socket || socket.readyState !== 1) return
    typingSent = now
    socket.send(JSON.stringify({ type: "typing" }))
  })

  root.querySelector("[data-form]").addEventListener("submit", function (event) {
    event.preventDefault()
    const text = input.value.trim()
    if (!text) return
    input.value = ""
    // Offline: the address is asked for, not required (the reply also waits here).
    const email = offline.hidden ? "" : emailInput.value.trim()
    const clientId = newClientId()
    pending[clientId] = email ? { text: text, email: email } : { text: text }
    bubble("visitor", text).setAttribute("data-client-id", clientId)
    if (socket && socket.readyState === 1) {
      sendPending(clientId)
    }
  })
  connect()
})()
