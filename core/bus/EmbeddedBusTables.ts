/**
 * Tables of the embedded bus, typed for Kysely (created by
 * core/storage/migrations/2026_11_23_0001_embedded_bus.ts). Every row carries the bus namespace.
 *
 * 64-bit columns read back as numbers on SQLite but as strings on PostgreSQL (`bigint`), and
 * blobs as `Buffer` on both; the bus converts on read.
 */
import type { ColumnType, Insertable, Selectable, Updateable } from "kysely"

/** A `bigint` column: a number on SQLite, a decimal string on PostgreSQL. */
export type Int8 = ColumnType<number | string, number, number>
/** An auto-incremented `bigint` key, assigned by the database only. */
export type Serial8 = ColumnType<number | string, never, never>
/** `blob` on SQLite, `bytea` on PostgreSQL; reads back as a `Buffer`. */
export type Bytes = ColumnType<Uint8Array, Uint8Array, Uint8Array>

/** One stream spec per (namespace, name); kept so a restarted bus knows its streams. */
export interface BusStreamsTable {
  namespace: string
  name: string
  /** JSON array of logical subject patterns. */
  subjects: string
  max_age_ms: Int8
  duplicate_window_ms: Int8
  updated_at: Int8
}

/** The log of every stream of every namespace; `seq` is the stream sequence. */
export interface BusMessagesTable {
  seq: Serial8
  namespace: string
  stream: string
  /** Logical subject (no namespace prefix). */
  subject: string
  msg_id: string
  key: string | null
  /** JSON object of string headers. */
  headers: string
  data: Bytes
  /** Epoch milliseconds. */
  published_at: Int8
}

/** A durable consumer: where it is in its stream. */
export interface BusConsumersTable {
  namespace: string
  stream: string
  name: string
  filter: string | null
  /** The last stream sequence examined as new (handed out or skipped by the filter). */
  delivered_seq: Int8
  /** JSON of the resolved consumer options last started with (informational). */
  config: string
  created_at: Int8
}

/** A delivery handed out and not yet acknowledged. */
export interface BusPendingTable {
  namespace: string
  stream: string
  consumer: string
  seq: Int8
  deliveries: number
  /** Epoch milliseconds from which the message may be delivered (again). */
  due_at: Int8
}

export interface BusDeadLettersTable {
  id: Serial8
  namespace: string
  stream: string
  consumer: string
  subject: string
  msg_id: string
  key: string | null
  headers: string
  data: Bytes
  seq: Int8
  deliveries: number
  reason: string
  dead_at: Int8
}

export interface EmbeddedBusTables {
  bus_streams: BusStreamsTable
  bus_messages: BusMessagesTable
  bus_consumers: BusConsumersTable
  bus_pending: BusPendingTable
  bus_dead_letters: BusDeadLettersTable
}

export type BusStreamRow = Selectable<BusStreamsTable>
export type BusMessageRow = Selectable<BusMessagesTable>
export type NewBusMessage = Insertable<BusMessagesTable>
export type BusConsumerRow = Selectable<BusConsumersTable>
export type BusConsumerUpdate = Updateable<BusConsumersTable>
export type BusPendingRow = Selectable<BusPendingTable>
export type NewBusPending = Insertable<BusPendingTable>
export type BusDeadLetterRow = Selectable<BusDeadLettersTable>
export type NewBusDeadLetter = Insertable<BusDeadLettersTable>
