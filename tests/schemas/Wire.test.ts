import { assert, describe, it } from "@effect/vitest"
import { Arbitrary, Either, FastCheck, Schema } from "effect"
import { ChorusEvent, EVENT_VERSIONS } from "../../schemas/Events.ts"
import { InboundMessage } from "../../schemas/Inbound.ts"
import { eventJson, inboundJson } from "../../schemas/Wire.ts"

/** For every generated value: the shortcut writes the same text as the schema's encode. */
const sameAsEncode = <A, I>(
  schema: Schema.Schema<A, I>,
  toJson: (a: A) => string,
  seen?: (a: A) => void,
) => {
  const encode = Schema.encodeEither(schema)
  FastCheck.assert(
    FastCheck.property(Arbitrary.make(schema), (value) => {
      const encoded = encode(value)
      // Timestamp's arbitrary keeps to encodable instants: nothing is skipped.
      assert.isTrue(Either.isRight(encoded), "generated a value the schema cannot encode")
      const text = toJson(value)
      assert.strictEqual(text, JSON.stringify(Either.getOrThrow(encoded)))
      seen?.(value)
    }),
    { numRuns: 1_500, seed: 20261124 },
  )
}

describe("wire JSON (schemas/Wire.ts)", () => {
  it("an InboundMessage's JSON is its encoded form", () => {
    sameAsEncode(InboundMessage, inboundJson)
  })

  it("an InboundMessage decodes from its JSON to itself (what a local handoff skips)", () => {
    const decode = Schema.decodeUnknownSync(Schema.parseJson(InboundMessage))
    FastCheck.assert(
      FastCheck.property(Arbitrary.make(InboundMessage), (m) => {
        assert.deepStrictEqual(decode(inboundJson(m)), m)
      }),
      { numRuns: 1_000, seed: 20261124 },
    )
  })

  it("every event type's JSON is its encoded form", () => {
    const types = new Set<string>()
    sameAsEncode(ChorusEvent, eventJson, (e) => types.add(e.type))
    // The property covered every member of the union, not just a few of them.
    assert.deepStrictEqual([...types].sort(), Object.keys(EVENT_VERSIONS).sort())
  })

  it("a value whose JSON differs from its encoding is caught (Option field)", () => {
    const WithOption = Schema.Struct({ at: Schema.OptionFromNullOr(Schema.String) })
    const encode = Schema.encodeSync(WithOption)
    const value = Schema.decodeUnknownSync(WithOption)({ at: "x" })
    assert.notStrictEqual(JSON.stringify(value), JSON.stringify(encode(value)))
  })
})
