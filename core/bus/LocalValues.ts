/**
 * Values handed over inside one process. A publisher that holds the decoded value of what it
 * publishes (`PublishOptions.local`) leaves it with the bus, keyed by where the message landed
 * (stream, sequence); the first delivery or read of that message in this process carries it as
 * `BusMessage.local`, so a consumer here need not decode the bytes the value was encoded to a
 * moment ago. On one node every inbound message and event crosses the bus this way: its decode
 * on the far side (a schema pass of ~11 µs and a few dozen kB of short-lived objects) was a
 * good share of a message's cost.
 *
 * Only what the bus stored as new is kept: a duplicate publish (same id) may carry other
 * content than the message stored under that id, so its value is dropped. A value is handed out
 * once (a redelivery or a second reader decodes as usual) and the most recent `capacity` are
 * kept: one nobody reads soon (no reader in this process, a reader far behind) is forgotten, and
 * its message decodes as usual. Nothing here is needed for correctness; a miss only costs a decode.
 */
export interface LocalValues {
  /** Keep `value` for the message stored at (`stream`, `seq`). */
  readonly put: (stream: string, seq: number, value: unknown) => void
  /** The value kept for (`stream`, `seq`), forgotten as it is handed out; undefined if none. */
  readonly take: (stream: string, seq: number) => unknown
}

export const makeLocalValues = (capacity = 1_024): LocalValues => {
  /** By `<stream> <seq>`, oldest first (a Map keeps insertion order). */
  const values = new Map<string, unknown>()
  return {
    put: (stream, seq, value) => {
      if (value === undefined || capacity <= 0) return
      values.set(`${stream} ${seq}`, value)
      while (values.size > capacity) values.delete(values.keys().next().value!)
    },
    take: (stream, seq) => {
      if (values.size === 0) return undefined
      const key = `${stream} ${seq}`
      const value = values.get(key)
      if (value !== undefined) values.delete(key)
      return value
    },
  }
}
