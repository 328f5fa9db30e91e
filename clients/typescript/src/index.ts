// @agentdesk/client: the public surface.
export { checkBaseUrl, createClient } from "./client.js";
export type { AgentdeskClient } from "./client.js";
export type {
  BaseClientOptions,
  ClientOptions,
  EventIterateOptions,
  EventIterator,
  EventListAllQuery,
  EventPage,
  EventStreamEnd,
  EventStreamOptions,
  OrgEventStreamEnd,
  OrgEventStreamOptions,
} from "./client-options.js";
export type { CallOptions, IdempotentCallOptions, IfMatchCallOptions, RequiredIfMatchCallOptions } from "./options.js";
export type { CreateAndWaitOptions, RunOptions, Screenshot, ScreenshotOptions, WaitForOptions } from "./lifecycle.js";
export type { DesktopMode, DesktopOpenOptions, WebSocketConstructor } from "./desktop.js";
export { AgentdeskError, clientProblem, isProblem, toProblem, unwrap } from "./problem.js";
export type { ClientProblemCode, Problem, ProblemCode, ProblemFieldError, Result, ResultPromise, ServerProblemCode } from "./problem.js";
export {
  DEFAULT_LOCK_NAME,
  defaultRefreshLock,
  inProcessRefreshLock,
  indexedDbTokenStore,
  memoryTokenStore,
  storageTokenStore,
} from "./auth.js";
export type {
  IndexedDbFactoryLike,
  IndexedDbTokenStoreOptions,
  LogoutInfo,
  OnLogout,
  OnTokenRefresh,
  RefreshLock,
  StorageLike,
  TokenOut,
  TokenPair,
  TokenStore,
} from "./auth.js";
export {
  DEFAULT_MAX_RETRIES,
  IDEMPOTENT_POST_PATHS,
  MAX_TIMER_MS,
  RETRY_AFTER_MAX_MS,
  RETRY_INITIAL_DELAY_MS,
  RETRY_MAX_DELAY_MS,
  backoffMs,
  isRetryable,
  isRetryableAfterAmbiguousFailure,
  newIdempotencyKey,
  retryAfterMs,
  sleep,
} from "./http.js";
export type { FetchLike } from "./http.js";
export type { CursorPage, PageIterator, SeqPage } from "./pagination.js";
export type { ReconnectOptions, SseMessage } from "./sse.js";
export { canReach, isCommandAction, isCommandResult, isCommandScreenshot, isFinalEvent, isFinalStatus } from "./events.js";
export type {
  ActionEventPayload,
  EventKind,
  EventOf,
  EventPayloads,
  JsonObject,
  ResultEventPayload,
  ScreenshotEventPayload,
  SessionEvent,
  SessionStatus,
  StatusEventPayload,
} from "./events.js";
export type {
  AuditActor,
  AuditActorType,
  AuditEventList,
  AuditOutcome,
  AuditTarget,
  AuditTargetType,
  ProblemCurrentStatus,
  CommandIn,
  CommandKindName,
  CommandList,
  CommandOfKind,
  CommandOut,
  CommandResult,
  CommandResultOf,
  CommandStatusName,
  Loose,
  Query,
  AuditEventOut,
} from "./types.js";
export type { components, operations, paths } from "./generated/v1.js";

import type { components } from "./generated/v1.js";
type S = components["schemas"];
/** Every schema of the spec, by its spec name (as generated: wire types, without the SDK's narrowing). */
export type Schemas = S;
/** An account (`me.get`). */
export type UserOut = S["UserOut"];
/** `auth.signup`'s answer: the same for a new and a taken address. */
export type SignupOut = S["SignupOut"];
/** An organization, with the caller's role in it. */
export type OrgOut = S["OrgOut"];
/** A built-in role's name. */
export type BuiltinRoleName = "owner" | "admin" | "operator" | "viewer";
/**
 * A role's name: built-in ({@link BuiltinRoleName}) or an org's custom role (`roles.list`):
 * an open set by design, hence `string` (the built-in names are suggested by editors).
 */
export type RoleName = BuiltinRoleName | (string & {});
/** A permission of the catalog (`permissions.list`). */
export type PermissionOut = S["PermissionOut"];
/** A role (built-in or custom) with its permissions. */
export type RoleOut = S["RoleOut"];
/** `roles.create`'s body. */
export type RoleIn = S["RoleIn"];
/** `roles.update`'s body. */
export type RoleUpdate = S["RoleUpdate"];
/** An API key as listed (never its secret). */
export type ApiKeyOut = S["ApiKeyOut"];
/** A new API key, with its secret (shown once). */
export type ApiKeyCreatedOut = S["ApiKeyCreatedOut"];
/** An invitation as listed. */
export type InvitationOut = S["InvitationOut"];
/** A new invitation, with its token and accept URL (shown once). */
export type InvitationCreatedOut = S["InvitationCreatedOut"];
/** `invitations.accept`'s answer. */
export type InvitationAccepted = S["InvitationAccepted"];
/** `me.export`'s document. */
export type MeExport = S["MeExport"];
/** A member of an org. */
export type MemberOut = S["MemberOut"];
/** An agent. */
export type AgentOut = S["AgentOut"];
/** An agent capability (closed set). */
export type Capability = S["Capability"];
/** A session. */
export type SessionOut = S["SessionOut"];
/** An event of the org's status stream (`events.streamOrg`). */
export type SessionStatusEvent = S["SessionStatusEvent"];
/** One event to append (`events.append`). */
export type EventIn = S["EventIn"];
/** One event of a session's log as the spec declares it (untyped payload); the SDK hands out {@link SessionEvent}. */
export type EventOut = S["EventOut"];
/** A stored artifact (a screenshot). */
export type ArtifactOut = S["ArtifactOut"];
/** A background job. */
export type JobOut = S["JobOut"];
/** A one-time desktop ticket. */
export type DesktopTicketOut = S["DesktopTicketOut"];
/** The configured single sign-on providers. */
export type OidcProviderList = S["OidcProviderList"];
