/** Chorus's domain schemas: branded ids, contacts, conversations, messages, events, inbound. */
export * from "./Common.ts"
export * from "./Contact.ts"
export * from "./Conversation.ts"
export * from "./Events.ts"
export * from "./Ids.ts"
export * from "./Inbound.ts"
export * from "./Message.ts"
export * from "./System.ts"
