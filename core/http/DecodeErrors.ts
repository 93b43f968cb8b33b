/**
 * 400 answers that name the wrong field. HttpApi answers a request that does not match its
 * schemas with `HttpApiDecodeError`: `issues` (each with its path) and a `message` that is the
 * schema's error tree (`(Struct (Encoded side) <-> …) └─ ["limit"] └─ …`), which a client can
 * hardly read. This middleware keeps the body's shape and rewrites only `message`, one
 * `path: problem` per wrong field: `limit: expected an integer from 1 to 200`.
 */
import { HttpApp, HttpMiddleware, HttpServerResponse } from "@effect/platform"
import { Effect, Option, Schema } from "effect"

const formatPath = (path: ReadonlyArray<PropertyKey>): string =>
  path.length === 0
    ? "body"
    : path.map((key, i) =>
      typeof key === "number" ? `[${key}]` : i === 0 ? String(key) : `.${String(key)}`
    ).join("")

/** `sender.id: is missing; text: Expected string, actual 42` (problems of one field joined by "or"). */
export const describeIssues = (
  issues: ReadonlyArray<{ readonly path: ReadonlyArray<PropertyKey>; readonly message: string }>,
): string => {
  const byPath = new Map<string, Array<string>>()
  for (const issue of issues) {
    const path = formatPath(issue.path)
    const messages = byPath.get(path) ?? []
    if (!messages.includes(issue.message)) messages.push(issue.message)
    byPath.set(path, messages)
  }
  return [...byPath].map(([path, messages]) => `${path}: ${messages.join(" or ")}`).join("; ")
}

const DecodeErrorBody = Schema.parseJson(Schema.Struct({
  _tag: Schema.Literal("HttpApiDecodeError"),
  issues: Schema.Array(Schema.Struct({
    path: Schema.Array(Schema.Union(Schema.String, Schema.Number)),
    message: Schema.String,
  }, { key: Schema.String, value: Schema.Unknown })),
}, { key: Schema.String, value: Schema.Unknown }))
const decodeBody = Schema.decodeUnknownOption(DecodeErrorBody)

const readable = (response: HttpServerResponse.HttpServerResponse) => {
  if (response.status !== 400 || response.body._tag !== "Uint8Array") return response
  return Option.match(decodeBody(new TextDecoder().decode(response.body.body)), {
    onNone: () => response,
    onSome: (body) =>
      HttpServerResponse.unsafeJson({ ...body, message: describeIssues(body.issues) }, {
        status: 400,
        headers: response.headers,
      }),
  })
}

export const readableDecodeErrors = HttpMiddleware.make((app) =>
  // A pre-response handler also sees the responses made from failures (the 400 is one).
  Effect.zipRight(
    HttpApp.appendPreResponseHandler((_request, response) => Effect.sync(() => readable(response))),
    app,
  )
)
