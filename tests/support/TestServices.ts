/**
 * Where the shared test services listen. Defaults are the loopback services of the development
 * machine; CI may point elsewhere with the environment variables.
 */
export const testNatsUrl: string = process.env["CHORUS_TEST_NATS_URL"] ?? "nats://127.0.0.1:4222"

export const testPostgresUrl: string = process.env["CHORUS_TEST_PG_URL"] ??
  "postgres://postgres@127.0.0.1:5432/test"
