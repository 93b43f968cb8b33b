/**
 * With several nodes, the conversation store's caches (who a sender is, which conversation of a
 * contact is open) live on every node, but a merge, a split or a profile edit runs on the node
 * that served the request and forgets only that node's entries. This reader keeps the other nodes
 * in step: it follows the `events` stream from now on (`events.contact.>`) and forgets the
 * contacts each `contact.merged`, `contact.split` or `contact.updated` names, as the node that
 * made the change did. The window in which another node can still use a stale entry is the time
 * the event takes to reach it (milliseconds on a healthy bus).
 *
 * Only needed on JetStream (the embedded bus has one process); the server wires it there.
 */
import { Effect, Layer, Schema, Stream } from "effect"
import { Bus } from "../../core/bus/Bus.ts"
import { EventsStream } from "../../core/pipeline/Streams.ts"
import { ConversationStore } from "./ConversationStore.ts"

/** The part of the contact events this reader needs: which contacts they concern. */
const ContactEvent = Schema.Union(
  Schema.Struct({
    type: Schema.Literal("contact.merged"),
    merge: Schema.Struct({ targetId: Schema.String, sourceId: Schema.String }),
  }),
  Schema.Struct({
    type: Schema.Literal("contact.split"),
    contact: Schema.Struct({ id: Schema.String }),
    restored: Schema.Struct({ id: Schema.String }),
  }),
  Schema.Struct({
    type: Schema.Literal("contact.updated"),
    contact: Schema.Struct({ id: Schema.String }),
  }),
)

const decode = Schema.decodeUnknownOption(Schema.parseJson(ContactEvent))

/** The contacts an event's data names (none for other or unreadable data). */
export const contactsOf = (data: Uint8Array): ReadonlyArray<string> => {
  const event = decode(new TextDecoder().decode(data))
  if (event._tag === "None") return []
  const e = event.value
  return e.type === "contact.merged"
    ? [e.merge.targetId, e.merge.sourceId]
    : e.type === "contact.split"
    ? [e.contact.id, e.restored.id]
    : [e.contact.id]
}

export const layer = Layer.scopedDiscard(Effect.gen(function* () {
  const bus = yield* Bus
  const store = yield* ConversationStore
  yield* bus.ensureStream(EventsStream)
  const from = (yield* bus.lastSeq(EventsStream.name)) + 1
  yield* bus.read(EventsStream.name, { fromSeq: from, filter: "events.contact.>" }).pipe(
    Stream.runForEach((message) => {
      const contacts = contactsOf(message.data)
      return contacts.length === 0 ? Effect.void : store.forgetContacts(contacts)
    }),
    Effect.catchAllCause((cause) =>
      Effect.logWarning("contact cache sync stopped").pipe(Effect.annotateLogs({ cause }))
    ),
    Effect.forkScoped,
  )
}))
