/**
 * Operators' typing shown to customers: follows the events stream from its end (typing is only
 * worth showing now; nothing is replayed) and hands each operator's `conversation.typing` to
 * the channel plugin of the customer's channel (`chorus.channels.register(…, { typing })`).
 * Every node does it for its own plugins: a web chat visitor is connected to one of them.
 */
import { Effect, Layer, Schedule, Schema, Stream } from "effect"
import { ChorusEvent } from "../../schemas/Events.ts"
import { Bus } from "../bus/Bus.ts"
import { EventsStream, eventSubject } from "../pipeline/Streams.ts"
import { PluginHost } from "./PluginHost.ts"

const decode = Schema.decodeUnknownOption(Schema.parseJson(ChorusEvent))
const decoder = new TextDecoder()
/** A typing event older than this is not shown (the reader fell behind). */
const STALE_MS = 5_000

export const layer = Layer.scopedDiscard(Effect.gen(function* () {
  const bus = yield* Bus
  const host = yield* PluginHost
  yield* bus.ensureStream(EventsStream)
  const follow = Effect.gen(function* () {
    const from = (yield* bus.lastSeq(EventsStream.name)) + 1
    yield* bus.read(EventsStream.name, {
      fromSeq: from,
      filter: eventSubject("conversation.typing"),
    }).pipe(
      Stream.runForEach((message) => {
        const event = decode(decoder.decode(message.data))
        if (event._tag === "None" || event.value.type !== "conversation.typing") return Effect.void
        const typing = event.value
        if (typing.by !== "operator" || typing.to === null) return Effect.void
        if (Date.now() - typing.occurredAt.getTime() > STALE_MS) return Effect.void
        return host.typing(typing.to.channel, {
          account: typing.to.account,
          externalId: typing.to.externalId,
          conversationId: typing.conversationId,
        })
      }),
    )
  })
  // A broken read starts again from the (new) end: missed typing is not worth catching up.
  yield* follow.pipe(
    Effect.catchAll((error) =>
      Effect.logDebug("typing relay restarts").pipe(Effect.annotateLogs({ error: String(error) }))
    ),
    Effect.repeat(Schedule.spaced("1 second")),
    Effect.forkScoped,
  )
}))
