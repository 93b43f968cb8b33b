/**
 * A webhook receiver on loopback (node:http) standing in for an API client's server: it records
 * every request (headers, raw body, arrival time) and answers as the test says, including not
 * at all (`"hang"`, until the receiver closes with the scope).
 */
import * as NodeHttp from "node:http"
import type { AddressInfo } from "node:net"
import { Effect } from "effect"

export interface ReceivedRequest {
  readonly headers: NodeHttp.IncomingHttpHeaders
  readonly body: string
  // deno-lint-ignore no-explicit-any -- the JSON body, inspected by the test
  readonly json: any
  readonly at: number
}

export type Answer =
  | { readonly status: number; readonly headers?: Record<string, string>; readonly body?: string }
  | "hang"

export interface WebhookReceiver {
  readonly url: string
  readonly received: Array<ReceivedRequest>
  /** How to answer the n-th request (0-based); default 200 `{"id":"ext-<n>"}`. */
  answer: (request: ReceivedRequest, n: number) => Answer
  /** Answer every hanging request with 200 and stop hanging (so a server under test can stop). */
  readonly release: () => void
}

export const webhookReceiver = Effect.acquireRelease(
  Effect.async<{ receiver: WebhookReceiver; server: NodeHttp.Server }>((resume) => {
    const hanging: Array<NodeHttp.ServerResponse> = []
    const receiver: WebhookReceiver = {
      url: "",
      received: [],
      answer: (_request, n) => ({ status: 200, body: JSON.stringify({ id: `ext-${n}` }) }),
      release: () => {
        receiver.answer = () => ({ status: 200 })
        for (const res of hanging.splice(0)) res.writeHead(200).end()
      },
    }
    const server = NodeHttp.createServer((req, res) => {
      const chunks: Array<Buffer> = []
      req.on("data", (c: Buffer) => chunks.push(c))
      req.on("end", () => {
        const body = Buffer.concat(chunks).toString("utf8")
        let json: unknown = undefined
        try {
          json = JSON.parse(body)
        } catch {
          json = undefined
        }
        const request: ReceivedRequest = { headers: req.headers, body, json, at: Date.now() }
        const n = receiver.received.length
        receiver.received.push(request)
        const answer = receiver.answer(request, n)
        if (answer === "hang") {
          hanging.push(res)
          return
        }
        res.writeHead(answer.status, {
          "content-type": "application/json",
          ...(answer.headers ?? {}),
        })
        res.end(answer.body ?? "")
      })
    })
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as AddressInfo
      Object.assign(receiver, { url: `http://127.0.0.1:${port}/chorus-webhook` })
      resume(Effect.succeed({ receiver, server }))
    })
  }),
  ({ server }) =>
    Effect.async<void>((resume) => {
      server.closeAllConnections()
      server.close(() => resume(Effect.void))
    }),
).pipe(Effect.map(({ receiver }) => receiver))
