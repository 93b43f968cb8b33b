/** The core's migrations, in the order they run. Names are dated; never rename one that shipped. */
import type { Migration } from "kysely"
import * as embeddedBus from "./2026_11_23_0001_embedded_bus.ts"
import * as apiTokens from "./2026_11_23_0002_api_tokens.ts"
import * as conversations from "./2026_11_23_0003_conversations.ts"
import * as outbound from "./2026_11_23_0004_outbound.ts"
import * as plugins from "./2026_11_24_0005_plugins.ts"
import * as attachments from "./2026_11_24_0006_attachments.ts"
import * as accounts from "./2026_11_24_0007_accounts.ts"
import * as sessionIds from "./2026_11_24_0008_session_ids_totp_steps.ts"
import * as queueAnnouncements from "./2026_11_24_0009_queue_announcements.ts"
import * as buttonsPayload from "./2026_11_24_0010_buttons_payload.ts"
import * as delivery from "./2026_11_24_0011_delivery.ts"
import * as identityGraph from "./2026_11_24_0012_identity_graph.ts"

export const coreMigrations: Record<string, Migration> = {
  "2026_11_23_0001_embedded_bus": embeddedBus,
  "2026_11_23_0002_api_tokens": apiTokens,
  "2026_11_23_0003_conversations": conversations,
  "2026_11_23_0004_outbound": outbound,
  "2026_11_24_0005_plugins": plugins,
  "2026_11_24_0006_attachments": attachments,
  "2026_11_24_0007_accounts": accounts,
  "2026_11_24_0008_session_ids_totp_steps": sessionIds,
  "2026_11_24_0009_queue_announcements": queueAnnouncements,
  "2026_11_24_0010_buttons_payload": buttonsPayload,
  "2026_11_24_0011_delivery": delivery,
  "2026_11_24_0012_identity_graph": identityGraph,
}
