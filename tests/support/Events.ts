/** Valid events for tests and benchmarks that publish on the events stream themselves. */
import { newId } from "../../core/ids.ts"

/** A `message.delivery_changed` of reply `n` (its seq is `n + 1`), as the channel actors publish it. */
export const deliveryChanged = (n: number, account = "acme") => ({
  type: "message.delivery_changed",
  version: 1,
  id: newId.event(),
  occurredAt: new Date().toISOString(),
  conversationId: newId.conversation(),
  messageId: newId.message(),
  seq: n + 1,
  channel: "api",
  account,
  externalId: null,
  delivery: { state: "sent", at: new Date().toISOString() },
})
