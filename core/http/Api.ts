/**
 * The Chorus HTTP API, declared once with HttpApi: the server is built from it and the OpenAPI
 * document (`GET /api/openapi.json`) is generated from the same schemas. Later groups (inbound,
 * conversations, plugins) are added here.
 *
 * `/health`, `/ready` and `/api/openapi.json` are public. Every `/api/v1/...` group requires a
 * bearer token: declare it with `.middleware(Authentication)` and end with `.prefix(API_V1)`
 * (a prefix only applies to the endpoints added before it).
 */
import { HttpApi, HttpApiEndpoint, HttpApiGroup, HttpApiSchema, OpenApi } from "@effect/platform"
import { Schema } from "effect"
import { ApiTokenInfo } from "../../schemas/ApiToken.ts"
import { Health, Readiness } from "../../schemas/System.ts"
import { VERSION } from "../version.ts"
import { Authentication } from "./Authentication.ts"
import { AttachmentsReadApi, AttachmentsUploadApi } from "./AttachmentsApi.ts"
import { AuthApi, AuthLoginApi } from "./AuthApi.ts"
import { ChannelsApi, DeadLettersApi, MessageDeliveryApi, MetricsApi } from "./DeliveryApi.ts"
import { EventsApi } from "./EventsApi.ts"
import { ConversationActionsApi, InboxApi, SupervisionApi } from "./InboxApi.ts"
import { InboundApi } from "./InboundApi.ts"
import { PeopleApi } from "./PeopleApi.ts"
import { PluginsApi } from "./PluginsApi.ts"
import { ProfileApi } from "./ProfileApi.ts"
import { ContactsApi, ConversationsApi } from "./ReadApi.ts"
import { RepliesApi } from "./RepliesApi.ts"

export class NotReady extends Schema.TaggedError<NotReady>()(
  "NotReady",
  { readiness: Readiness },
  HttpApiSchema.annotations({ status: 503, description: "The store or the bus is unreachable." }),
) {}

export class SystemApi extends HttpApiGroup.make("system")
  .add(
    HttpApiEndpoint.get("health", "/health")
      .addSuccess(Health)
      .annotate(OpenApi.Summary, "Liveness: the process answers."),
  )
  .add(
    HttpApiEndpoint.get("ready", "/ready")
      .addSuccess(Readiness)
      .addError(NotReady)
      .annotate(OpenApi.Summary, "Readiness: store and bus reachable, with the backends in use."),
  )
  .annotate(OpenApi.Description, "Health and readiness for load balancers and orchestrators.") {}

export const API_V1 = "/api/v1"

export class TokensApi extends HttpApiGroup.make("tokens")
  .add(
    HttpApiEndpoint.get("me", "/tokens/me")
      .addSuccess(ApiTokenInfo)
      .annotate(
        OpenApi.Summary,
        "The token this request is authenticated with (never its secret).",
      ),
  )
  .middleware(Authentication)
  .prefix(API_V1)
  .annotate(OpenApi.Description, "API tokens: who am I.") {}

export class ChorusApi extends HttpApi.make("chorus")
  .add(SystemApi)
  .add(TokensApi)
  .add(EventsApi.prefix(API_V1))
  .add(InboundApi.prefix(API_V1))
  .add(ConversationsApi.prefix(API_V1))
  .add(RepliesApi.prefix(API_V1))
  .add(ContactsApi.prefix(API_V1))
  .add(ProfileApi.prefix(API_V1))
  .add(PluginsApi.prefix(API_V1))
  .add(AttachmentsUploadApi.prefix(API_V1))
  .add(AttachmentsReadApi.prefix(API_V1))
  .add(AuthLoginApi.prefix(API_V1))
  .add(AuthApi.prefix(API_V1))
  .add(InboxApi.prefix(API_V1))
  .add(ConversationActionsApi.prefix(API_V1))
  .add(SupervisionApi.prefix(API_V1))
  .add(PeopleApi.prefix(API_V1))
  .add(ChannelsApi.prefix(API_V1))
  .add(DeadLettersApi.prefix(API_V1))
  .add(MessageDeliveryApi.prefix(API_V1))
  .add(MetricsApi)
  .annotate(OpenApi.Title, "Chorus API")
  .annotate(OpenApi.Version, VERSION)
  .annotate(
    OpenApi.Description,
    "Omnichannel customer communication: channels, conversations, contacts, plugins.",
  ) {}
