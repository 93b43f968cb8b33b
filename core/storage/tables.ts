/**
 * The core's tables, one interface per table, typed for Kysely. Plugins declare their own.
 */
import type { AccountTables } from "../accounts/AccountTables.ts"
import type { AttachmentTables } from "../attachments/AttachmentTables.ts"
import type { ApiTokensTables } from "../auth/ApiTokensTable.ts"
import type { EmbeddedBusTables } from "../bus/EmbeddedBusTables.ts"
import type { PluginTables } from "../plugins/PluginTables.ts"
import type { ConversationTables } from "./ConversationTables.ts"
import type { IdentityTables } from "./IdentityTables.ts"

export interface CoreTables
  extends
    EmbeddedBusTables,
    ApiTokensTables,
    ConversationTables,
    PluginTables,
    AttachmentTables,
    AccountTables,
    IdentityTables {}
