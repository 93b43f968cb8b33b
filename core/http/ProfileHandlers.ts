/**
 * Handlers of the Profile API (ProfileApi.ts). Each checks that the caller may see the contacts
 * it names (404 otherwise), maps the identity graph's errors to HTTP ones (a lost race is 409),
 * and leaves store failures to become a 500.
 */
import { HttpApiBuilder } from "@effect/platform"
import { Effect, Option } from "effect"
import { ConversationQueries } from "../../actors/conversation/ConversationQueries.ts"
import { ConversationStore } from "../../actors/conversation/ConversationStore.ts"
import type { ContactId } from "../../schemas/Ids.ts"
import { type Principal, seesEverything, visibilityOf } from "../accounts/Access.ts"
import { ContactDirectory, type ContactQuery, parseCsv } from "../identity/ContactDirectory.ts"
import { IdentityGraph } from "../identity/IdentityGraph.ts"
import { ChorusApi } from "./Api.ts"
import { CurrentPrincipal, Forbidden } from "./Authentication.ts"
import { ContactConflict, MergeNotFound, SignalRejected, SuggestionNotFound } from "./ProfileApi.ts"
import { contactNotFound } from "./Visibility.ts"

/** Who did it, as merge records and events name them. */
export const actorOf = (principal: Principal): string =>
  principal.kind === "token" ? `token:${principal.token.id}` : `operator:${principal.operator.id}`

const conflict = (error: { readonly message: string }) =>
  new ContactConflict({ message: error.message })

export const ProfileHandlers = HttpApiBuilder.group(
  ChorusApi,
  "profiles",
  (handlers) =>
    Effect.gen(function* () {
      const graph = yield* IdentityGraph
      const directory = yield* ContactDirectory
      const queries = yield* ConversationQueries
      const store = yield* ConversationStore

      /** The contact, if it exists and the caller may see it; else 404. */
      const visibleContact = (id: ContactId) =>
        Effect.gen(function* () {
          const principal = yield* CurrentPrincipal
          const profile = yield* graph.profile(id).pipe(Effect.orDie)
          if (Option.isNone(profile)) return yield* contactNotFound(id)
          const visible = yield* directory.visible(id, visibilityOf(principal)).pipe(Effect.orDie)
          if (!visible) return yield* contactNotFound(id)
          return profile.value
        })

      return handlers
        .handle("search", ({ urlParams }) =>
          Effect.gen(function* () {
            const principal = yield* CurrentPrincipal
            const given: Array<ContactQuery> = []
            if (urlParams.phone !== undefined) given.push({ by: "phone", value: urlParams.phone })
            if (urlParams.email !== undefined) given.push({ by: "email", value: urlParams.email })
            if (urlParams.externalId !== undefined) {
              given.push({ by: "externalId", value: urlParams.externalId })
            }
            if (urlParams.name !== undefined) given.push({ by: "name", value: urlParams.name })
            if (given.length !== 1) {
              return yield* new SignalRejected({
                message: "give exactly one of phone, email, externalId, name",
              })
            }
            const contacts = yield* directory.search(given[0]!, {
              limit: urlParams.limit ?? 20,
              visibility: visibilityOf(principal),
            }).pipe(Effect.orDie)
            return { contacts }
          }))
        .handle("profile", ({ path }) =>
          Effect.gen(function* () {
            const profile = yield* visibleContact(path.id)
            const found = yield* queries.contactWithIdentities(path.id).pipe(Effect.orDie)
            return {
              ...profile,
              identities: Option.match(found, {
                onNone: () => [],
                onSome: (f) => f.identities,
              }),
            }
          }))
        .handle("update", ({ path, payload }) =>
          Effect.gen(function* () {
            yield* visibleContact(path.id)
            const principal = yield* CurrentPrincipal
            return yield* graph.update(path.id, {
              ...(payload.name !== undefined ? { name: payload.name } : {}),
              ...(payload.custom !== undefined ? { custom: payload.custom } : {}),
              ...(payload.expectedVersion !== undefined
                ? { expectedVersion: payload.expectedVersion }
                : {}),
            }, actorOf(principal)).pipe(
              Effect.catchTags({
                ContactMissing: () => contactNotFound(path.id),
                MergeConflict: (e) => conflict(e),
              }),
              Effect.orDie,
            )
          }))
        .handle("signals", ({ path }) =>
          Effect.gen(function* () {
            yield* visibleContact(path.id)
            return { signals: yield* graph.signals(path.id).pipe(Effect.orDie) }
          }))
        .handle("addSignals", ({ path, payload }) =>
          Effect.gen(function* () {
            yield* visibleContact(path.id)
            const principal = yield* CurrentPrincipal
            const token = principal.kind === "token"
            const outcome = yield* graph.addSignals(
              path.id,
              payload.signals.map((s) => ({
                kind: s.kind,
                value: s.value,
                source: token ? "api" : "operator",
                verification: token && s.verified ? "verified" : "claimed",
              })),
              actorOf(principal),
            ).pipe(
              Effect.catchTags({
                ContactMissing: () => contactNotFound(path.id),
                SignalInvalid: (e) => new SignalRejected({ message: e.reason }),
              }),
              Effect.orDie,
            )
            const contact = yield* graph.profile(outcome.contactId).pipe(Effect.orDie)
            if (Option.isNone(contact)) return yield* contactNotFound(outcome.contactId)
            return {
              contact: contact.value,
              merges: outcome.merges,
              suggestions: outcome.suggestions,
            }
          }))
        .handle("timeline", ({ path, urlParams }) =>
          Effect.gen(function* () {
            yield* visibleContact(path.id)
            const principal = yield* CurrentPrincipal
            return yield* directory.timeline(path.id, {
              cursor: urlParams.cursor,
              limit: urlParams.limit ?? 50,
              visibility: visibilityOf(principal),
            }).pipe(Effect.orDie)
          }))
        .handle("merges", ({ path }) =>
          Effect.gen(function* () {
            yield* visibleContact(path.id)
            return { merges: yield* graph.merges(path.id).pipe(Effect.orDie) }
          }))
        .handle("merge", ({ payload }) =>
          Effect.gen(function* () {
            yield* visibleContact(payload.targetId)
            yield* visibleContact(payload.sourceId)
            const principal = yield* CurrentPrincipal
            return yield* graph.merge({
              targetId: payload.targetId,
              sourceId: payload.sourceId,
              kind: "manual",
              reason: payload.reason,
              by: actorOf(principal),
              ...(payload.expectedVersions !== undefined
                ? { expected: payload.expectedVersions }
                : {}),
            }).pipe(
              Effect.catchTags({
                ContactMissing: (e) => contactNotFound(e.id),
                MergeConflict: (e) => conflict(e),
              }),
              Effect.orDie,
            )
          }))
        .handle("split", ({ path, payload }) =>
          Effect.gen(function* () {
            const principal = yield* CurrentPrincipal
            const notFound = new MergeNotFound({
              id: path.id,
              message: `no merge with id ${path.id}`,
            })
            const found = yield* graph.mergeRecord(path.id).pipe(Effect.orDie)
            if (Option.isNone(found)) return yield* notFound
            // The survivor holds both's conversations until the split: the caller must see it.
            yield* visibleContact(found.value.targetId).pipe(Effect.mapError(() => notFound))
            return yield* graph.split(path.id, actorOf(principal), payload.reason).pipe(
              Effect.catchTags({
                MergeMissing: () => notFound,
                MergeConflict: (e) => conflict(e),
              }),
              Effect.orDie,
            )
          }))
        .handle("suggestions", ({ urlParams }) =>
          Effect.gen(function* () {
            const principal = yield* CurrentPrincipal
            const visibility = visibilityOf(principal)
            const found = yield* graph.suggestions({
              contactId: urlParams.contactId,
              status: urlParams.status,
              after: urlParams.after,
              limit: urlParams.limit ?? 50,
            }).pipe(Effect.orDie)
            if (visibility.all) return { suggestions: found }
            const suggestions = yield* Effect.filter(found, (s) =>
              Effect.zipWith(
                directory.visible(s.contactA, visibility),
                directory.visible(s.contactB, visibility),
                (a, b) => a && b,
              ).pipe(Effect.orDie))
            return { suggestions }
          }))
        .handle("accept", ({ path, payload }) =>
          Effect.gen(function* () {
            const principal = yield* CurrentPrincipal
            const found = yield* graph.suggestion(path.id).pipe(Effect.orDie)
            const notFound = new SuggestionNotFound({
              id: path.id,
              message: `no merge suggestion with id ${path.id}`,
            })
            if (Option.isNone(found)) return yield* notFound
            yield* visibleContact(found.value.contactA).pipe(Effect.mapError(() => notFound))
            yield* visibleContact(found.value.contactB).pipe(Effect.mapError(() => notFound))
            const decided = yield* graph.decide(
              path.id,
              { accept: true, targetId: payload.targetId },
              actorOf(principal),
            ).pipe(
              Effect.catchTags({
                SuggestionMissing: () => notFound,
                ContactMissing: () => notFound,
                MergeConflict: (e) => conflict(e),
              }),
              Effect.orDie,
            )
            return { suggestion: decided.suggestion, merge: decided.merge! }
          }))
        .handle("reject", ({ path }) =>
          Effect.gen(function* () {
            const principal = yield* CurrentPrincipal
            const found = yield* graph.suggestion(path.id).pipe(Effect.orDie)
            const notFound = new SuggestionNotFound({
              id: path.id,
              message: `no merge suggestion with id ${path.id}`,
            })
            if (Option.isNone(found)) return yield* notFound
            yield* visibleContact(found.value.contactA).pipe(Effect.mapError(() => notFound))
            yield* visibleContact(found.value.contactB).pipe(Effect.mapError(() => notFound))
            const decided = yield* graph.decide(path.id, { accept: false }, actorOf(principal))
              .pipe(
                Effect.catchTags({
                  SuggestionMissing: () => notFound,
                  ContactMissing: () => notFound,
                  MergeConflict: (e) => conflict(e),
                }),
                Effect.orDie,
              )
            return { suggestion: decided.suggestion }
          }))
        .handle("conversationMode", ({ path, payload }) =>
          Effect.gen(function* () {
            const principal = yield* CurrentPrincipal
            if (!seesEverything(principal)) {
              return yield* new Forbidden({ message: "inbox settings are for admins" })
            }
            yield* store.setConversationMode(path.channel, path.account, payload.mode)
              .pipe(Effect.orDie)
            return payload
          }))
        .handle("import", ({ payload }) =>
          Effect.gen(function* () {
            const principal = yield* CurrentPrincipal
            if (!seesEverything(principal)) {
              return yield* new Forbidden({ message: "importing contacts is for admins" })
            }
            const records = payload.format === "csv" ? parseCsv(payload.csv) : payload.contacts
            return yield* directory.importContacts(records, {
              defaultCountry: payload.defaultCountry,
            }).pipe(Effect.orDie)
          }))
    }),
)
