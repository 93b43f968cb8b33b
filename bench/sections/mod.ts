/**
 * Every benchmark section, in the order they run. Raw limits come before the measurements that
 * are compared with them. A new benchmark (HTTP ingest, …) is a file here and a line below.
 */
import type { BenchSection } from "../Benchmark.ts"
import { actorsMemory } from "./ActorsMemory.ts"
import { deliveryLoad } from "./DeliveryLoad.ts"
import { embeddedBus } from "./EmbeddedBus.ts"
import { eventsFanout } from "./EventsFanout.ts"
import { history } from "./History.ts"
import { identity } from "./Identity.ts"
import { ingest } from "./Ingest.ts"
import { jetStreamBus } from "./JetStreamBus.ts"
import { jetStreamRaw } from "./JetStreamRaw.ts"
import { pipeline } from "./Pipeline.ts"
import { plugins } from "./Plugins.ts"
import { replies } from "./Replies.ts"
import { sqliteRaw } from "./SqliteRaw.ts"

export const sections: ReadonlyArray<BenchSection> = [
  jetStreamRaw,
  sqliteRaw,
  jetStreamBus,
  embeddedBus,
  ingest,
  pipeline,
  eventsFanout,
  actorsMemory,
  history,
  replies,
  deliveryLoad,
  plugins,
  identity,
]
