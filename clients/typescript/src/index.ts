// @agentdesk/client: the public surface.
export { createClient } from "./client.js";
export type {
  AgentdeskClient,
  CallOptions,
  ClientOptions,
  EventStreamEnd,
  EventStreamOptions,
  IdempotentCallOptions,
  IfMatchCallOptions,
  OrgEventStreamOptions,
} from "./client.js";
export type {
  CreateAndWaitOptions,
  DesktopMode,
  DesktopOpenOptions,
  RunOptions,
  Screenshot,
  ScreenshotOptions,
  WebSocketConstructor,
} from "./desktop.js";
export { isProblem, toProblem } from "./problem.js";
export type { Problem, ProblemCode, ProblemFieldError, Result } from "./problem.js";
export type { OnTokenRefresh, TokenOut } from "./auth.js";
export { SseParser } from "./sse.js";
export type { ReconnectOptions, SseMessage, StreamEnd } from "./sse.js";
export type { components, operations, paths } from "./generated/v1.js";

import type { components } from "./generated/v1.js";
type S = components["schemas"];
/** Every schema of the spec, by its spec name. */
export type Schemas = S;
export type UserOut = S["UserOut"];
export type SignupOut = S["SignupOut"];
export type OrgOut = S["OrgOut"];
/** A role's name: built-in (`owner`, `admin`, `operator`, `viewer`) or an org's custom role (`roles.list`). */
export type RoleName = "owner" | "admin" | "operator" | "viewer" | (string & {});
export type PermissionOut = S["PermissionOut"];
export type RoleOut = S["RoleOut"];
export type RoleIn = S["RoleIn"];
export type RoleUpdate = S["RoleUpdate"];
export type ApiKeyOut = S["ApiKeyOut"];
export type ApiKeyCreatedOut = S["ApiKeyCreatedOut"];
export type InvitationOut = S["InvitationOut"];
export type InvitationCreatedOut = S["InvitationCreatedOut"];
export type InvitationAccepted = S["InvitationAccepted"];
export type MeExport = S["MeExport"];
export type MemberOut = S["MemberOut"];
export type AuditEventOut = S["AuditEventOut"];
export type AgentOut = S["AgentOut"];
export type Capability = S["Capability"];
export type SessionOut = S["SessionOut"];
export type SessionStatus = S["SessionStatus"];
export type SessionStatusEvent = S["SessionStatusEvent"];
export type EventIn = S["EventIn"];
export type EventOut = S["EventOut"];
export type EventKind = S["EventKind"];
export type CommandIn = S["CommandIn"];
export type CommandOut = S["CommandOut"];
export type CommandResult = S["CommandResult"];
export type ArtifactOut = S["ArtifactOut"];
export type CommandKindName = S["CommandKindName"];
export type JobOut = S["JobOut"];
export type DesktopTicketOut = S["DesktopTicketOut"];
export type OidcProviderList = S["OidcProviderList"];
