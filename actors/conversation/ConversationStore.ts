/**
 * Where conversations live: contacts and their channel identities, conversations, messages.
 *
 * The conversation actor is the only writer of its conversation's messages, so it hands the
 * store the next sequence number itself; the unique index on (conversation, seq) stands guard
 * all the same. Appends from every actor go through one group-commit writer (a batch per
 * transaction, one fsync per batch), and each append is idempotent: an inbound message whose
 * (channel, account, external id) is already stored comes back as `Duplicate` with the stored
 * message, so a bus redelivery after a crash stores nothing twice.
 *
 * The hot path reads nothing it already knows: who a sender is (identities and contacts never
 * move to another key) and which conversation of a contact is open are kept in bounded LRU
 * caches, so a message of a known sender costs no query before its append. The open-conversation
 * cache can only go stale through a status change, and status changes go through the
 * conversation's actor, which refuses an append to a resolved conversation (`Closed`): the
 * consumer then calls `forgetOpenConversation` and opens a new one. With several nodes only the
 * leader runs the inbound consumer; a conversation resolved by another node's actor is refused by
 * the append (`ResolvedMeanwhile`), and contacts merged elsewhere reach these caches through
 * `ContactCacheSync` (README, "Several nodes").
 */
import { Context, Effect, Either, Layer, Option, type Scope } from "effect"
import { type Kysely, sql } from "kysely"
import type { ChannelIdentity, Contact } from "../../schemas/Contact.ts"
import type { Conversation, ConversationStatus } from "../../schemas/Conversation.ts"
import type { ChannelIdentityId, ContactId, ConversationId } from "../../schemas/Ids.ts"
import type { InboundMessage } from "../../schemas/Inbound.ts"
import type { IncomingMessage, Message } from "../../schemas/Message.ts"
import { newId } from "../../core/ids.ts"
import { Lru } from "../../core/lru.ts"
import type {
  ChannelIdentityRow,
  ContactRow,
  ConversationRow,
  MessageRow,
  NewMessage,
} from "../../core/storage/ConversationTables.ts"
import { inboxOwner } from "../../core/accounts/InboxOwner.ts"
import { Database, type DatabaseError, type DatabaseShape } from "../../core/storage/Database.ts"
import * as GroupCommit from "../../core/storage/GroupCommit.ts"
import { prepare, prepareList } from "../../core/storage/Prepared.ts"
import {
  newAttachments,
  newIncomingMessage,
  ResolvedMeanwhile,
  toContact,
  toConversation,
  toIdentity,
  toMessage,
} from "./ConversationRows.ts"
import type { CoreTables } from "../../core/storage/tables.ts"

export interface ResolvedSender {
  readonly contact: Contact
  readonly identity: ChannelIdentity
  readonly contactCreated: boolean
  readonly identityCreated: boolean
}

export interface OpenedConversation {
  readonly conversation: Conversation
  /** True when this call created it. */
  readonly opened: boolean
}

export interface AppendInbound {
  readonly conversationId: ConversationId
  /** The next sequence number, assigned by the conversation's actor. */
  readonly seq: number
  /** The conversation's status as its actor knows it (open or pending; a pending one reopens). */
  readonly status: ConversationStatus
  readonly identityId: ChannelIdentityId
  readonly inbound: InboundMessage
}

export type AppendResult =
  | {
    readonly _tag: "Stored"
    readonly message: IncomingMessage
    /** The conversation's status before this message (a pending one reopens). */
    readonly previousStatus: ConversationStatus
  }
  | { readonly _tag: "Duplicate"; readonly message: IncomingMessage }

export interface MessagePage {
  /** Newest first. */
  readonly messages: ReadonlyArray<Message>
  /** Pass as `before` for the next (older) page; null when there is none. */
  readonly nextBefore: number | null
}

export interface ConversationStoreShape {
  /** Find the identity that wrote this message, or create it (and its contact). Idempotent. */
  readonly resolveSender: (inbound: InboundMessage) => Effect.Effect<ResolvedSender, DatabaseError>
  /** The contact's open (or pending) conversation, or a new one opened on `route`. */
  readonly openConversation: (
    contactId: ContactId,
    identity: ChannelIdentity,
  ) => Effect.Effect<OpenedConversation, DatabaseError>
  /**
   * The cached open conversation of `contactId` was found closed by its actor: drop it from the
   * cache (if it is still `conversationId`), so the next `openConversation` asks the database.
   */
  readonly forgetOpenConversation: (
    contactId: ContactId,
    conversationId: ConversationId,
  ) => Effect.Effect<void>
  /**
   * Contacts were merged or split: forget every cached sender of these contacts and their open
   * conversations, so the next message reads where its identity belongs now.
   */
  readonly forgetContacts: (contactIds: ReadonlyArray<string>) => Effect.Effect<void>
  /**
   * The open (or pending) conversation of `contactId` holding a message that `inbound` answers
   * (its `inReplyTo`, on the same channel account), if any.
   */
  readonly threadConversation: (
    contactId: ContactId,
    inbound: InboundMessage,
  ) => Effect.Effect<Option.Option<Conversation>, DatabaseError>
  /**
   * The identity the contact last wrote from, across all its conversations (after a merge, the
   * customer's last channel may be another conversation's).
   */
  readonly lastInboundIdentity: (
    contactId: ContactId,
    options?: { readonly reachableOnly?: boolean },
  ) => Effect.Effect<Option.Option<ChannelIdentityId>, DatabaseError>
  readonly conversation: (
    id: ConversationId,
  ) => Effect.Effect<Option.Option<Conversation>, DatabaseError>
  /** Whether `conversationId` is the only conversation `contactId` has ever had. */
  readonly isFirstConversation: (
    contactId: ContactId,
    conversationId: ConversationId,
  ) => Effect.Effect<boolean, DatabaseError>
  /** Store an inbound message with the given seq, or return the stored one if it is a duplicate. */
  readonly appendInbound: (input: AppendInbound) => Effect.Effect<AppendResult, DatabaseError>
  /** A page of history, newest first; `before` is an exclusive seq bound. */
  readonly messages: (
    conversationId: ConversationId,
    options?: { readonly before?: number; readonly limit?: number },
  ) => Effect.Effect<MessagePage, DatabaseError>
  /**
   * How an inbox (channel account, or `*` for every account of the channel) keeps
   * conversations: `per_contact` (default: one open conversation per contact, whatever the
   * channel) or `per_channel` (one per contact on this inbox).
   */
  readonly setConversationMode: (
    channel: string,
    account: string,
    mode: ConversationMode,
  ) => Effect.Effect<void, DatabaseError>
  readonly stats: () => GroupCommit.GroupCommitStats
}

export type ConversationMode = "per_contact" | "per_channel"

export class ConversationStore extends Context.Tag("chorus/actors/ConversationStore")<
  ConversationStore,
  ConversationStoreShape
>() {}

// ---------------------------------------------------------------------------------------------
// The append, group-committed

type Trx = Kysely<CoreTables>

/** A conversation's new last message (one statement per conversation of a batch). */
const touchConversation = prepare(
  ["id", "seq", "now", "channel", "account", "identity", "count"],
  (db: Trx, param) =>
    db.updateTable("conversations").set((eb) => ({
      last_seq: param("seq"),
      last_message_at: param("now"),
      updated_at: param("now"),
      last_channel: param("channel"),
      last_account: param("account"),
      last_identity_id: param("identity"),
      // The customer answered: a pending (or snoozed) conversation is open again.
      status: "open",
      snoozed_until: null,
      unread_count: eb("unread_count", "+", param("count")),
      waiting_since: eb.fn.coalesce("waiting_since", eb.val(param("now"))),
    })).where("id", "=", param("id")).where("status", "!=", "resolved"),
)

/** A contact's conversations still open or pending. */
const openConversations = (db: Trx, contact: string) =>
  db.selectFrom("conversations").selectAll()
    .where("contact_id", "=", contact)
    .where("status", "in", ["open", "pending"])

/**
 * A contact's open (or pending) conversation, newest first, as `openConversation` looks for it:
 * compiled once (a new sender looks twice, and building this query with its subquery cost more
 * than running it).
 */
const openOfContact = prepare(
  ["contact"],
  (db: Trx, param) =>
    openConversations(db, param("contact"))
      // Not a conversation a per-channel inbox keeps to itself.
      .where(({ exists, not, selectFrom }) =>
        not(exists(
          selectFrom("inbox_settings").select("inbox_settings.channel")
            .where("inbox_settings.conversation_mode", "=", "per_channel")
            .whereRef("inbox_settings.channel", "=", "conversations.last_channel")
            .where((eb) =>
              eb.or([
                eb("inbox_settings.account", "=", "*"),
                eb("inbox_settings.account", "=", eb.ref("conversations.last_account")),
              ])
            ),
        ))
      )
      .orderBy("created_at", "desc"),
)

/** The same in a per-channel inbox: the contact's open conversation on this channel account. */
const openOnChannel = prepare(
  ["contact", "channel", "account"],
  (db: Trx, param) =>
    openConversations(db, param("contact"))
      .where("last_channel", "=", param("channel"))
      .where("last_account", "=", param("account"))
      .orderBy("created_at", "desc"),
)

/** The stored customer messages among `externalId`s of one channel account (duplicates). */
const inboundStored = prepareList(
  ["channel", "account"],
  ["externalId"],
  (db: Trx, param, items) =>
    // `direction` inline, not bound: the index this uses is partial (direction = 'in'), and a
    // statement binding a value of a partial index's column is planned again on every run
    // (SQLite cannot know from the text that the index applies). That made this lookup cost
    // more than the commit; the same holds for `delivery_state` (the outbox index).
    db.selectFrom("messages").selectAll()
      .where("direction", "=", sql.lit("in"))
      .where("channel", "=", param("channel"))
      .where("account", "=", param("account"))
      .where("external_id", "in", items.map((item) => item("externalId"))),
)

/** Every column of a new message row, in the order a multi-row insert lists them. */
const MESSAGE_COLUMNS = [
  "id",
  "conversation_id",
  "seq",
  "direction",
  "channel",
  "account",
  "identity_id",
  "external_id",
  "author_id",
  "text",
  "attachments",
  "delivery_state",
  "delivery_at",
  "delivery_error",
  "sent_at",
  "received_at",
  "created_at",
  "payload",
] as const satisfies ReadonlyArray<keyof NewMessage>

/** A new customer message's row: every column given, as the multi-row insert needs. */
type InboundRow = { [K in (typeof MESSAGE_COLUMNS)[number]]-?: Exclude<NewMessage[K], undefined> }

const insertMessages = prepareList(
  [],
  MESSAGE_COLUMNS,
  (db: Trx, _param, items) =>
    db.insertInto("messages").values(
      items.map((item) =>
        Object.fromEntries(MESSAGE_COLUMNS.map((column) => [column, item(column)])) as NewMessage
      ),
    ),
)

/** Identities a provider had called unreachable are reachable again. */
const markReachable = prepareList(
  [],
  ["id"],
  (db: Trx, _param, items) =>
    db.updateTable("channel_identities").set({ reachable: 1 })
      .where("id", "in", items.map((item) => item("id")))
      .where("reachable", "=", 0),
)

const appendKind: GroupCommit.WriteKind<AppendInbound, AppendResult, never> = {
  name: "append inbound",
  rank: 0,
  execute: async (trx: Trx, inputs, now) => {
    // Duplicates first: one indexed lookup per (channel, account) in the batch.
    const keyOf = (channel: string | null, account: string | null, externalId: string | null) =>
      `${channel}\u0000${account}\u0000${externalId}`
    const byRoute = new Map<string, { channel: string; account: string; ids: Set<string> }>()
    for (const { inbound } of inputs) {
      const route = `${inbound.channel}\u0000${inbound.account}`
      const group = byRoute.get(route) ??
        { channel: inbound.channel, account: inbound.account, ids: new Set<string>() }
      group.ids.add(inbound.externalId)
      byRoute.set(route, group)
    }
    const stored = new Map<string, MessageRow>()
    for (const { channel, account, ids } of byRoute.values()) {
      const { rows } = await inboundStored.run(
        trx,
        { channel, account },
        [...ids].map((externalId) => ({ externalId })),
      )
      for (const row of rows as Array<MessageRow>) {
        stored.set(keyOf(row.channel, row.account, row.external_id), row)
      }
    }

    const results: Array<Either.Either<AppendResult, never>> = []
    const rows: Array<InboundRow> = []
    const touched = new Map<string, { input: AppendInbound; row: InboundRow; count: number }>()
    for (const input of inputs) {
      const m = input.inbound
      const key = keyOf(m.channel, m.account, m.externalId)
      const existing = stored.get(key)
      if (existing !== undefined) {
        results.push(
          Either.right({ _tag: "Duplicate", message: toMessage(existing) as IncomingMessage }),
        )
        continue
      }
      const attachments = newAttachments(m.attachments)
      const row: InboundRow = {
        id: newId.message(),
        conversation_id: input.conversationId,
        seq: input.seq,
        direction: "in",
        channel: m.channel,
        account: m.account,
        identity_id: input.identityId,
        external_id: m.externalId,
        author_id: null,
        text: m.text,
        attachments: attachments.json,
        delivery_state: null,
        delivery_at: null,
        delivery_error: null,
        sent_at: m.sentAt.getTime(),
        received_at: m.receivedAt.getTime(),
        created_at: now,
        payload: m.payload ?? null,
      }
      // The same message twice in one batch: the second is a duplicate of the first.
      stored.set(key, row as MessageRow)
      rows.push(row)
      touched.set(input.conversationId, {
        input,
        row,
        count: (touched.get(input.conversationId)?.count ?? 0) + 1,
      })
      results.push(
        Either.right({
          _tag: "Stored",
          message: newIncomingMessage(row, m, attachments.list),
          previousStatus: input.status,
        }),
      )
    }
    if (rows.length === 0) return results

    for (let at = 0; at < rows.length; at += 200) {
      await insertMessages.run(trx, {}, rows.slice(at, at + 200))
    }
    // The customer wrote from an identity a provider had called unreachable (blocked the bot,
    // bounced): it is reachable again. One indexed update per batch, touching only those rows.
    const identityIds = [...new Set(rows.map((r) => r.identity_id!))]
    for (let at = 0; at < identityIds.length; at += 500) {
      await markReachable.run(trx, {}, identityIds.slice(at, at + 500).map((id) => ({ id })))
    }
    for (const [conversationId, { input, row, count }] of touched) {
      const updated = await touchConversation.run(trx, {
        id: conversationId,
        seq: row.seq,
        now,
        channel: input.inbound.channel,
        account: input.inbound.account,
        identity: input.identityId,
        count,
      })
      // The actor only appends to a conversation it knows as not resolved; resolved here means
      // another node's actor resolved it since (see `ResolvedMeanwhile`).
      if (Number(updated.numAffectedRows ?? 0) === 0) throw new ResolvedMeanwhile(conversationId)
    }
    return results
  },
}

// ---------------------------------------------------------------------------------------------

export interface ConversationStoreOptions {
  /** Most appends per transaction. Default 500. */
  readonly maxBatch?: number
  /** Senders (and contacts' open conversations) kept in memory. Default 20,000 each. */
  readonly cacheSize?: number
}

const senderKey = (channel: string, account: string, externalId: string) =>
  `${channel}\u0000${account}\u0000${externalId}`

export const make = (
  options: ConversationStoreOptions = {},
): Effect.Effect<ConversationStoreShape, never, Database | Scope.Scope> =>
  Effect.gen(function* () {
    const database: DatabaseShape = yield* Database
    const writer = yield* GroupCommit.make(database, {
      label: "store",
      maxBatch: Math.max(1, options.maxBatch ?? 500),
    })
    const cacheSize = Math.max(1, options.cacheSize ?? 20_000)
    /** Known senders: identity and contact by (channel, account, external id). */
    const senders = new Lru<string, { contact: Contact; identity: ChannelIdentity }>(cacheSize)
    /** Each contact's open (or pending) conversation, as found or created here. */
    const openByContact = new Lru<string, Conversation>(cacheSize)
    /** Bumped by `forgetContacts`: a read that started before it must not fill the caches. */
    let generation = 0

    // The per-message operations carry no span: a span per call costs a stack capture, which
    // at thousands of messages a second is a measurable share of the CPU.
    const resolveSender = (
      inbound: InboundMessage,
    ): Effect.Effect<ResolvedSender, DatabaseError> => {
      const key = senderKey(inbound.channel, inbound.account, inbound.sender.externalId)
      const known = senders.get(key)
      if (known !== undefined) {
        return Effect.succeed({ ...known, contactCreated: false, identityCreated: false })
      }
      // A merge or split while this reads would leave a stale entry: cache only if none ran.
      const seen = generation
      return findOrCreateSender(inbound).pipe(
        Effect.tap((sender) =>
          Effect.sync(() => {
            if (seen === generation) {
              senders.set(key, { contact: sender.contact, identity: sender.identity })
            }
          })
        ),
      )
    }

    const findIdentity = (db: Trx, inbound: InboundMessage) =>
      db.selectFrom("channel_identities").selectAll()
        .where("channel", "=", inbound.channel)
        .where("account", "=", inbound.account)
        .where("external_id", "=", inbound.sender.externalId)
        .executeTakeFirst()

    // A new sender's contact and identity, group-committed: a burst of first messages (a
    // campaign's answers) costs one fsync per batch, not one per sender.
    const createSender = GroupCommit.eachInSavepoint({
      name: "create identity",
      rank: -2,
      write: async (trx: Trx, inbound: InboundMessage, now: number) => {
        // Created meanwhile, by an earlier write of this batch or another node? Then use theirs.
        const raced = await findIdentity(trx, inbound)
        if (raced !== undefined) {
          const contact = await trx.selectFrom("contacts").selectAll()
            .where("id", "=", raced.contact_id).executeTakeFirstOrThrow()
          return {
            contact: toContact(contact),
            identity: toIdentity(raced),
            contactCreated: false,
            identityCreated: false,
          } satisfies ResolvedSender
        }
        const sender = inbound.sender
        const verification = sender.verified
          ? "verified"
          : sender.phone !== undefined || sender.email !== undefined
          ? "claimed"
          : "unverified"
        const contact: ContactRow = {
          id: newId.contact(),
          name: sender.name ?? null,
          created_at: now,
          updated_at: now,
          version: 1,
          merged_into: null,
          name_lower: sender.name?.toLowerCase() ?? null,
          custom: "{}",
        }
        const identity: ChannelIdentityRow = {
          id: newId.channelIdentity(),
          contact_id: contact.id,
          channel: inbound.channel,
          account: inbound.account,
          external_id: sender.externalId,
          name: sender.name ?? null,
          phone: sender.phone ?? null,
          email: sender.email ?? null,
          verification,
          reachable: 1,
          created_at: now,
          last_seen_at: now,
        }
        await trx.insertInto("contacts").values(contact).execute()
        await trx.insertInto("channel_identities").values(identity).execute()
        return {
          contact: toContact(contact),
          identity: toIdentity(identity),
          contactCreated: true,
          identityCreated: true,
        } satisfies ResolvedSender
      },
    })

    const findOrCreateSender = Effect.fnUntraced(function* (inbound: InboundMessage) {
      const found = yield* database.query("find identity", (db) => findIdentity(db, inbound))
      if (found !== undefined) {
        const contact = yield* database.query("find contact", (db) =>
          db.selectFrom("contacts").selectAll().where("id", "=", found.contact_id)
            .executeTakeFirstOrThrow())
        return {
          contact: toContact(contact),
          identity: toIdentity(found),
          contactCreated: false,
          identityCreated: false,
        } satisfies ResolvedSender
      }
      return yield* writer.submit(createSender, inbound)
    })

    /** Each inbox's conversation mode, read once (inbox_settings is small and rarely set). */
    const modes = new Map<string, ConversationMode>()
    const modeOf = (channel: string, account: string) => {
      const key = `${channel}\u0000${account}`
      const known = modes.get(key)
      if (known !== undefined) {
        return Effect.succeed(known)
      }
      return database.query("inbox conversation mode", (db) =>
        db.selectFrom("inbox_settings").select(["account", "conversation_mode"])
          .where("channel", "=", channel).where("account", "in", [account, "*"]).execute()).pipe(
          Effect.map((rows) => {
            const row = rows.find((r) =>
              r.account === account
            ) ??
              rows.find((r) =>
                r.account === "*"
              )
            const mode = (row?.conversation_mode ?? "per_contact") as ConversationMode
            modes.set(key, mode)
            return mode
          }),
        )
    }
    /** The open-conversation cache key: the contact, or the contact on this inbox. */
    const openKey = (contactId: ContactId, identity: ChannelIdentity, mode: ConversationMode) =>
      mode === "per_channel"
        ? `${contactId}\u0000${identity.channel}\u0000${identity.account}`
        : contactId
    const contactOfKey = (key: string) =>
      key.split("\u0000", 1)[0]!

    const openConversation = (
      contactId: ContactId,
      identity: ChannelIdentity,
    ): Effect.Effect<OpenedConversation, DatabaseError> =>
      Effect.flatMap(modeOf(identity.channel, identity.account), (mode) => {
        const key = openKey(contactId, identity, mode)
        const known = openByContact.get(key)
        if (known !== undefined) {
          return Effect.succeed({ conversation: known, opened: false })
        }
        const seen = generation
        return findOrOpenConversation(contactId, identity, mode).pipe(
          Effect.tap((found) =>
            Effect.sync(() => {
              if (seen === generation) openByContact.set(key, found.conversation)
            })
          ),
        )
      })

    const forgetOpenConversation = (contactId: ContactId, conversationId: ConversationId) =>
      Effect.sync(() => {
        if (openByContact.get(contactId)?.id === conversationId) {
          openByContact.delete(contactId)
        } else {
          // A per-channel inbox's entry (rare: only when the actor found it closed).
          openByContact.deleteWhere((conversation, key) =>
            conversation.id === conversationId && contactOfKey(key) === contactId
          )
        }
      })

    const forgetContacts = (contactIds: ReadonlyArray<string>) =>
      Effect.sync(() => {
        generation++
        const ids = new Set(contactIds)
        senders.deleteWhere((sender) => ids.has(sender.contact.id))
        openByContact.deleteWhere((_, key) => ids.has(contactOfKey(key)))
      })

    const setConversationMode = (channel: string, account: string, mode: ConversationMode) =>
      database.query("set inbox conversation mode", (db) =>
        db.insertInto("inbox_settings")
          .values({ channel, account, conversation_mode: mode })
          .onConflict((oc) =>
            oc.columns(["channel", "account"]).doUpdateSet({ conversation_mode: mode })
          )
          .execute()).pipe(
          Effect.zipRight(Effect.sync(() => {
            generation++
            modes.clear()
            openByContact.clear()
          })),
        )

    const findOpen = async (
      db: Trx,
      { contactId, identity, mode }: {
        readonly contactId: ContactId
        readonly identity: ChannelIdentity
        readonly mode: ConversationMode
      },
    ): Promise<ConversationRow | undefined> => {
      const result = mode === "per_channel"
        ? await openOnChannel.run(db, {
          contact: contactId,
          channel: identity.channel,
          account: identity.account,
        })
        : await openOfContact.run(db, { contact: contactId })
      return result.rows[0] as ConversationRow | undefined
    }

    // Group-committed like `createSender`: a burst of new conversations shares its fsyncs.
    const openNew = GroupCommit.eachInSavepoint({
      name: "open conversation",
      rank: -1,
      write: async (trx: Trx, input: Parameters<typeof findOpen>[1], now: number) => {
        // Opened meanwhile, by an earlier write of this batch or another node? Then use theirs.
        const current = await findOpen(trx, input)
        if (current !== undefined) {
          return {
            conversation: toConversation(current),
            opened: false,
          } satisfies OpenedConversation
        }
        const { contactId, identity } = input
        // The inbox's team owns the conversation: the account's own entry, else the channel's `*`.
        const owner = await inboxOwner(trx, identity.channel, identity.account)
        const row: ConversationRow = {
          id: newId.conversation(),
          contact_id: contactId,
          status: "open",
          assignee_id: null,
          last_channel: identity.channel,
          last_account: identity.account,
          last_identity_id: identity.id,
          last_seq: 0,
          created_at: now,
          updated_at: now,
          last_message_at: null,
          resolved_at: null,
          team_id: owner ?? null,
          assigned_at: null,
          waiting_since: null,
          snoozed_until: null,
          assignee_replied_at: null,
          requeued_from: null,
          queue_announced_at: null,
          unread_count: 0,
        }
        await trx.insertInto("conversations").values(row).execute()
        return { conversation: toConversation(row), opened: true } satisfies OpenedConversation
      },
    })

    const findOrOpenConversation = Effect.fnUntraced(function* (
      contactId: ContactId,
      identity: ChannelIdentity,
      mode: ConversationMode,
    ) {
      const input = { contactId, identity, mode }
      // The common case (every message after a conversation's first) is a read, not a transaction.
      const existing = yield* database.query("find open conversation", (db) => findOpen(db, input))
      if (existing !== undefined) {
        return {
          conversation: toConversation(existing),
          opened: false,
        } satisfies OpenedConversation
      }
      return yield* writer.submit(openNew, input)
    })

    const threadConversation = (contactId: ContactId, inbound: InboundMessage) => {
      const ids = inbound.inReplyTo ?? []
      if (ids.length === 0) return Effect.succeed(Option.none<Conversation>())
      return database.query("thread conversation", (db) =>
        db.selectFrom("messages")
          .innerJoin("conversations", "conversations.id", "messages.conversation_id")
          .selectAll("conversations")
          .where("messages.channel", "=", inbound.channel)
          .where("messages.account", "=", inbound.account)
          .where("messages.external_id", "in", [...ids])
          .where("conversations.contact_id", "=", contactId)
          .where("conversations.status", "in", ["open", "pending"])
          .orderBy("messages.created_at", "desc")
          .limit(1)
          .executeTakeFirst()).pipe(
          Effect.map((row) => Option.fromNullable(row).pipe(Option.map(toConversation))),
        )
    }

    const lastInboundIdentity = (
      contactId: ContactId,
      options: { readonly reachableOnly?: boolean } = {},
    ) =>
      database.query("last inbound identity", async (db) => {
        // Each conversation's last customer message, by the conversations' own bookkeeping.
        const rows = await db.selectFrom("conversations")
          .select(["id", "last_identity_id"])
          .where("contact_id", "=", contactId)
          .where("last_identity_id", "is not", null)
          .execute()
        if (rows.length === 0) return Option.none<ChannelIdentityId>()
        // The identity must still be the contact's (a split can leave another's messages here).
        const last = await db.selectFrom("messages")
          .innerJoin("channel_identities", "channel_identities.id", "messages.identity_id")
          .select("messages.identity_id as identity_id")
          .where("messages.conversation_id", "in", rows.map((r) => r.id))
          .where("messages.direction", "=", "in")
          .where("channel_identities.contact_id", "=", contactId)
          .$if(
            options.reachableOnly === true,
            (q) => q.where("channel_identities.reachable", "=", 1),
          )
          .orderBy("messages.created_at", "desc").orderBy("messages.id", "desc")
          .limit(1).executeTakeFirst()
        return Option.fromNullable(last?.identity_id as ChannelIdentityId | null | undefined)
      })

    const conversation = Effect.fnUntraced(function* (
      id: ConversationId,
    ) {
      const row = yield* database.query(
        "get conversation",
        (db) => db.selectFrom("conversations").selectAll().where("id", "=", id).executeTakeFirst(),
      )
      return Option.fromNullable(row).pipe(Option.map(toConversation))
    })

    const isFirstConversation = (contactId: ContactId, conversationId: ConversationId) =>
      database.query("other conversations of the contact", (db) =>
        db.selectFrom("conversations").select("id")
          .where("contact_id", "=", contactId)
          .where("id", "!=", conversationId)
          .limit(1)
          .executeTakeFirst()).pipe(Effect.map((other) =>
            other === undefined
          ))

    const appendInbound = (input: AppendInbound) =>
      writer.submit(appendKind, input)

    const messages = Effect.fn("ConversationStore.messages")(function* (
      conversationId: ConversationId,
      options: { readonly before?: number; readonly limit?: number } = {},
    ) {
      const limit = Math.min(Math.max(options.limit ?? 50, 1), 500)
      const rows = yield* database.query("history page", (db) => {
        let q = db.selectFrom("messages").selectAll().where("conversation_id", "=", conversationId)
        if (options.before !== undefined) {
          q = q.where("seq", "<", options.before)
        }
        return q.orderBy("seq", "desc").limit(limit + 1).execute()
      })
      const page = rows.slice(0, limit).map(toMessage)
      const last = page[page.length - 1]
      return {
        messages: page,
        nextBefore: rows.length > limit && last !== undefined ? last.seq : null,
      } satisfies MessagePage
    })

    return {
      resolveSender,
      openConversation,
      forgetOpenConversation,
      forgetContacts,
      threadConversation,
      lastInboundIdentity,
      setConversationMode,
      conversation,
      isFirstConversation,
      appendInbound,
      messages,
      stats: writer.stats,
    } satisfies ConversationStoreShape
  })

export const layer = (options: ConversationStoreOptions = {}) =>
  Layer.scoped(ConversationStore, make(options))
