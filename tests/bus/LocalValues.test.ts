import { assert, describe, it } from "@effect/vitest"
import { makeLocalValues } from "../../core/bus/LocalValues.ts"

describe("LocalValues", () => {
  it("hands a value out once, by stream and sequence", () => {
    const values = makeLocalValues(8)
    const a = { a: 1 }
    values.put("inbound", 1, a)
    assert.isUndefined(values.take("events", 1))
    assert.isUndefined(values.take("inbound", 2))
    assert.strictEqual(values.take("inbound", 1), a)
    assert.isUndefined(values.take("inbound", 1))
  })

  it("keeps the most recent `capacity` values across streams, forgetting the oldest", () => {
    const values = makeLocalValues(2)
    values.put("inbound", 1, "i1")
    values.put("events", 1, "e1")
    values.put("inbound", 2, "i2")
    assert.isUndefined(values.take("inbound", 1))
    assert.strictEqual(values.take("events", 1), "e1")
    assert.strictEqual(values.take("inbound", 2), "i2")
    // Taking made room: two more fit.
    values.put("events", 2, "e2")
    values.put("events", 3, "e3")
    assert.strictEqual(values.take("events", 2), "e2")
    assert.strictEqual(values.take("events", 3), "e3")
  })

  it("keeps nothing for an absent value or a zero capacity", () => {
    const values = makeLocalValues(4)
    values.put("inbound", 1, undefined)
    assert.isUndefined(values.take("inbound", 1))
    const none = makeLocalValues(0)
    none.put("inbound", 1, "x")
    assert.isUndefined(none.take("inbound", 1))
  })
})
