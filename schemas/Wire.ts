/**
 * The wire form (JSON text) of the two values the pipeline publishes for every message: the
 * inbound envelope and the events.
 *
 * For these schemas the encoded form is the value itself with each `Date` as its ISO 8601 string
 * and each `URL` as its `href`, which is exactly what `JSON.stringify` writes through their
 * `toJSON`. Encoding through the schema first gives the same text at several times the cost
 * (~11 µs and a few dozen kB of short-lived objects per message, most of a message's encoding
 * time). tests/schemas/Wire.test.ts holds every event type and the inbound envelope to that
 * equality over generated values: a schema change that breaks it (a transformation other than
 * `Date` or `URL`, an `Option` field) fails there, and the affected value must then be encoded
 * through its schema.
 *
 * What is given up: encoding also re-checked our own values against the schema's refinements (a
 * bug emitting an invalid date died at the emitter). Such a value now reaches the bus, where every
 * consumer decodes with the schema and dead-letters what does not decode.
 */
import type { ChorusEvent } from "./Events.ts"
import type { InboundMessage } from "./Inbound.ts"

/** `JSON.stringify(Schema.encodeSync(InboundMessage)(m))`, without the encode. */
export const inboundJson = (m: InboundMessage): string => JSON.stringify(m)

/** `JSON.stringify(Schema.encodeSync(ChorusEvent)(e))`, without the encode. */
export const eventJson = (e: ChorusEvent): string => JSON.stringify(e)
