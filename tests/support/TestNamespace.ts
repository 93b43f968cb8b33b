/**
 * Unique bus namespaces for tests: many test files (and helpers) share one nats-server and one
 * PostgreSQL, so every test works under a name nobody else uses and removes it afterwards.
 */
import { randomBytes } from "node:crypto"

/** A fresh namespace like `t5kq2x9a7f3c1`: lowercase letters and digits, valid in NATS and SQL. */
export const uniqueNamespace = (prefix = "t"): string =>
  `${prefix}${Date.now().toString(36)}${randomBytes(4).toString("hex")}`
