/**
 * The clients of the `events-fanout` section, in a child process so the server's event loop is its
 * own: `clients` SSE connections to `GET /api/v1/events`, each counting the `message.delivery_changed`
 * events it receives. Prints `ready` once every connection is open, then one JSON line
 * `{ "ms": … }` once every connection has `expected` events (measured from the `go` line on stdin).
 *
 * Usage (by bench/sections/EventsFanout.ts): `EventsClients.ts '<json: url, token, clients, expected>'`.
 */
import { Agent, request } from "node:http"

const { url, token, clients, expected } = JSON.parse(process.argv[2] ?? "{}") as {
  url: string
  token: string
  clients: number
  expected: number
}
const agent = new Agent({ keepAlive: true, maxSockets: clients })
const counts = new Array<number>(clients).fill(0)
let started = 0

const open = (i: number) =>
  new Promise<void>((resolve, reject) => {
    const req = request(
      `${url}/api/v1/events?types=message.delivery_changed`,
      { headers: { authorization: `Bearer ${token}` }, agent },
      (res) => {
        if (res.statusCode !== 200) return reject(new Error(`events: HTTP ${res.statusCode}`))
        res.setEncoding("utf8")
        let buffer = ""
        res.on("data", (chunk: string) => {
          buffer += chunk
          let end: number
          while ((end = buffer.indexOf("\n\n")) >= 0) {
            const frame = buffer.slice(0, end)
            buffer = buffer.slice(end + 2)
            if (frame.startsWith(": connected")) resolve()
            else if (frame.includes("\nevent: ")) counts[i]!++
          }
          if (started > 0 && counts.every((c) => c >= expected)) {
            process.stdout.write(`${JSON.stringify({ ms: performance.now() - started })}\n`)
            process.exit(0)
          }
        })
      },
    )
    req.on("error", reject)
    req.end()
  })

await Promise.all(Array.from({ length: clients }, (_, i) => open(i)))
process.stdin.setEncoding("utf8").on("data", (line: string) => {
  if (line.includes("go")) started = performance.now()
})
process.stdout.write("ready\n")
