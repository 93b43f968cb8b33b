/**
 * Requests on the message path (publish acks, confirmed acks of deliveries), pipelined over one
 * inbox subscription.
 *
 * nats.js's `request`, which `js.publish` and `JsMsg.ackAck` use, builds a request object and a
 * timer per call and, when the call completes, an `Error` it throws away (a stack capture): at
 * thousands of calls a second that was a fifth of the bus's CPU. Here a call is one publish with
 * a reply subject `<inbox>.<n>` and one Map entry; one interval fails the calls that got no answer
 * in time. Answers come in any order: each finds its caller by `n`.
 *
 * Calls made in one turn of the event loop are written together, at the end of the turn
 * (`setImmediate`): nats.js writes to the socket once per microtask checkpoint, and handlers on
 * many fibers would otherwise cost one socket write (a syscall) per message.
 *
 * A call written before the connection drops fails at once (`connectionLost`, called by the bus on
 * a disconnect): its answer would come on the lost connection, so it could only wait out its
 * timeout (a dead server held every publish in flight for 5 s). A call made while disconnected
 * waits for its answer or its timeout, as before.
 *
 * Failures look like nats.js's, so the bus classifies them the same way: a `TimeoutError`; a
 * `RequestError` caused by `NoRespondersError` when nobody listens on the subject (the server
 * answers the reply subject with status 503); a `JetStreamApiError` when JetStream answers with
 * an error.
 */
import { JetStreamApiError } from "@nats-io/jetstream"
import {
  createInbox,
  type Msg,
  type MsgHdrs,
  type NatsConnection,
  NoRespondersError,
  RequestError,
  TimeoutError,
} from "@nats-io/transport-node"

export interface Replies {
  /** Publish `data` to `subject` and wait for the one answer. */
  readonly request: (subject: string, data: Uint8Array, headers?: MsgHdrs) => Promise<Msg>
  /**
   * Publish to JetStream and read its acknowledgement (`{ stream, seq, duplicate }`), as
   * `js.publish` does.
   */
  readonly publish: (
    subject: string,
    data: Uint8Array,
    headers: MsgHdrs,
  ) => Promise<{ readonly stream: string; readonly seq: number; readonly duplicate: boolean }>
  /**
   * The connection dropped: fail every call waiting for an answer (it would come on the lost
   * connection). The bus calls it from its one watch of the connection's status.
   */
  readonly connectionLost: () => void
  /** Fail every call still waiting and stop listening. */
  readonly close: () => void
}

interface Waiting {
  readonly subject: string
  readonly at: number
  readonly resolve: (msg: Msg) => void
  readonly reject: (error: Error) => void
}

const decoder = new TextDecoder()

export const makeReplies = (nc: NatsConnection, timeoutMs: number): Replies => {
  const inbox = createInbox()
  const prefix = `${inbox}.`
  const waiting = new Map<number, Waiting>()
  let next = 0
  let closed = false
  /** Calls of this turn of the event loop, written together by `flush`. */
  let outgoing: Array<
    { subject: string; data: Uint8Array; n: number; headers: MsgHdrs | undefined }
  > = []

  const flush = () => {
    const batch = outgoing
    outgoing = []
    for (const { subject, data, n, headers } of batch) {
      try {
        nc.publish(subject, data, {
          reply: `${prefix}${n}`,
          ...(headers !== undefined ? { headers } : {}),
        })
      } catch (e) {
        const call = waiting.get(n)
        waiting.delete(n)
        call?.reject(e instanceof Error ? e : new RequestError(String(e)))
      }
    }
  }

  nc.subscribe(`${inbox}.*`, {
    callback: (error, msg) => {
      if (error !== null) return
      const call = waiting.get(Number(msg.subject.slice(prefix.length)))
      if (call === undefined) return // answered after its timeout
      waiting.delete(Number(msg.subject.slice(prefix.length)))
      if (msg.headers?.code === 503) {
        call.reject(
          new RequestError(`no responders: '${call.subject}'`, {
            cause: new NoRespondersError(call.subject),
          }),
        )
      } else call.resolve(msg)
    },
  })

  const connectionLost = () => {
    for (const [n, call] of waiting) {
      waiting.delete(n)
      call.reject(new RequestError("the connection was lost before the answer came"))
    }
  }

  // Calls are in the Map in the order they were made, so the oldest come first.
  const sweeper = setInterval(() => {
    const expired = Date.now() - timeoutMs
    for (const [n, call] of waiting) {
      if (call.at > expired) break
      waiting.delete(n)
      call.reject(new TimeoutError())
    }
  }, Math.max(50, Math.min(1_000, timeoutMs / 4)))
  sweeper.unref()

  const request = (subject: string, data: Uint8Array, headers?: MsgHdrs) =>
    new Promise<Msg>((resolve, reject) => {
      if (closed) return reject(new RequestError("the connection's replies are closed"))
      const n = next++
      waiting.set(n, { subject, at: Date.now(), resolve, reject })
      if (outgoing.length === 0) setImmediate(flush)
      outgoing.push({ subject, data, n, headers })
    })

  const publish = async (subject: string, data: Uint8Array, headers: MsgHdrs) => {
    const msg = await request(subject, data, headers)
    const answer = JSON.parse(decoder.decode(msg.data)) as {
      stream?: string
      seq?: number
      duplicate?: boolean
      error?: { code: number; err_code: number; description: string }
    }
    if (answer.error !== undefined) throw new JetStreamApiError(answer.error)
    if (typeof answer.stream !== "string" || answer.stream === "") {
      throw new RequestError("invalid publish acknowledgement")
    }
    return { stream: answer.stream, seq: answer.seq ?? 0, duplicate: answer.duplicate === true }
  }

  const close = () => {
    closed = true
    clearInterval(sweeper)
    outgoing = []
    for (const call of waiting.values()) call.reject(new RequestError("connection closed"))
    waiting.clear()
  }

  return { request, publish, connectionLost, close }
}
