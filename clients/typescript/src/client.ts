// `createClient`: openapi-fetch with the auth middleware, plus one thin helper per operation,
// named after the spec's operation ids (`sessions.create` → `client.sessions.create`).
import createFetchClient, {
  type Client as FetchClient,
  createFinalURL,
  createQuerySerializer,
  defaultPathSerializer,
  removeTrailingSlash,
} from "openapi-fetch";
import { Credentials, authMiddleware, type OnTokenRefresh, type TokenOut } from "./auth.js";
import type { components, operations, paths } from "./generated/v1.js";
import { type Result, toProblem } from "./problem.js";
import { type ReconnectOptions, type StreamEnd, runSse, toSseConnect } from "./sse.js";
import { desktopHelpers, desktopViewer } from "./desktop.js";

type S = components["schemas"];
type Query<K extends keyof operations> = NonNullable<operations[K]["parameters"]["query"]>;

/** Options of `createClient`. Give an `accessToken` (optionally with its `refreshToken`), or an `apiKey`, or neither (register/log in first). */
export type ClientOptions = {
  /** The server's origin, e.g. `https://agentdesk.example.com` (paths start with `/v1`). */
  baseUrl: string;
  /** Called after the client rotated its tokens on a 401; store them if you persist sessions. */
  onTokenRefresh?: OnTokenRefresh;
  /** A `fetch` to use instead of `globalThis.fetch`. */
  fetch?: (input: Request) => Promise<Response>;
  /** Headers sent with every request (e.g. `X-Request-Id`). */
  headers?: Record<string, string>;
} & (
  | {
      /** The JWT access token from `auth.login`, sent as `Authorization: Bearer …`. */
      accessToken?: string;
      /** The refresh token: rotated once on a 401, then the call is replayed once. */
      refreshToken?: string;
      apiKey?: undefined;
    }
  | {
      /** An API key `ad_<prefix>_<secret>` from `apiKeys.create`, sent as `X-API-Key` (org operations only). */
      apiKey: string;
      accessToken?: undefined;
      refreshToken?: undefined;
    }
);

/** Per-call options every helper accepts last. */
export interface CallOptions {
  /** Aborts the request (the promise rejects with the abort reason). */
  signal?: AbortSignal;
  /** Extra headers for this call. */
  headers?: Record<string, string>;
}

/** Per-call options of operations that honour `Idempotency-Key`. */
export interface IdempotentCallOptions extends CallOptions {
  /** Makes a retry safe: the same key and body replay the first response for 24 h. */
  idempotencyKey?: string;
}

/** Per-call options of `orgs.update`, `agents.update` and `roles.update`. */
export interface IfMatchCallOptions extends CallOptions {
  /** The `ETag` last read (`"<version>"`); a concurrent change → 412 `precondition_failed`. */
  ifMatch?: string;
}

/** Options of `events.stream`. */
export interface EventStreamOptions {
  /** Called for each event, in `seq` order, awaited before the next one. */
  onEvent: (event: S["EventOut"]) => void | Promise<void>;
  /** Start after this seq (default 0: the whole log). */
  afterSeq?: number;
  /** Stops the stream; the promise then resolves with `reason: "aborted"`. */
  signal?: AbortSignal;
  /** Reconnect policy after a dropped connection. */
  reconnect?: ReconnectOptions;
}

/** How `events.stream` finished; `lastSeq` is the last event delivered (resume from it). */
export type EventStreamEnd =
  | { reason: "final" | "ended" | "aborted"; lastSeq: number; error?: undefined }
  | { reason: "problem"; lastSeq: number; error: S["Problem"] };

/** Options of `events.streamOrg`. */
export interface OrgEventStreamOptions {
  /** Called for each session status change. */
  onEvent: (event: S["SessionStatusEvent"]) => void | Promise<void>;
  /** Called before each reconnect: the stream is live only, so re-read `sessions.list`. */
  onReconnect?: () => void | Promise<void>;
  /** Stops the stream; the promise then resolves with `reason: "aborted"`. */
  signal?: AbortSignal;
  /** Reconnect policy after a dropped connection. */
  reconnect?: ReconnectOptions;
}

/** The success body type, `undefined` for operations that answer 204. */
type Data<D> = [Exclude<D, undefined>] extends [never] ? undefined : Exclude<D, undefined>;

/** openapi-fetch's `{ data, error, response }` → a `Result` whose error is always a `Problem`. */
async function wrap<D>(
  pending: Promise<{ data?: D; error?: unknown; response: Response }>,
): Promise<Result<Data<D>>> {
  const { data, error, response } = await pending;
  if (response.ok) return { data: data as Data<D>, response };
  return { error: toProblem(error, response), response };
}

function init(opts: CallOptions | undefined, extraHeaders?: Record<string, string | undefined>) {
  const headers: Record<string, string> = { ...opts?.headers };
  for (const [k, v] of Object.entries(extraHeaders ?? {})) if (v !== undefined) headers[k] = v;
  return { headers, ...(opts?.signal ? { signal: opts.signal } : {}) };
}

const idem = (opts?: IdempotentCallOptions) => init(opts, { "Idempotency-Key": opts?.idempotencyKey });

function isFinalStatus(event: S["EventOut"]): boolean {
  if (event.kind !== "status") return false;
  const status = event.payload["status"];
  return status === "stopped" || status === "failed";
}

/** Creates a client. See the README for examples of every resource. */
export function createClient(options: ClientOptions) {
  const fetchImpl = options.fetch ?? ((input: Request) => globalThis.fetch(input));
  const credentials = new Credentials({
    baseUrl: options.baseUrl,
    fetch: fetchImpl,
    accessToken: options.accessToken,
    refreshToken: options.refreshToken,
    apiKey: options.apiKey,
    onTokenRefresh: options.onTokenRefresh,
  });
  const raw: FetchClient<paths> = createFetchClient<paths>({
    baseUrl: options.baseUrl,
    fetch: fetchImpl,
    ...(options.headers ? { headers: options.headers } : {}),
  });
  raw.use(authMiddleware(credentials));

  const auth = {
    /**
     * `auth.signup`: create an account and mail a verification link to the address (202
     * `SignupOut`, `status: "verification_sent"`). A taken address answers exactly the same
     * (its owner gets a notice instead), so the answer never tells which addresses have
     * accounts. Open the link's token with `verifyEmail`, then `login`.
     */
    signup: (body: S["RegisterIn"], opts?: CallOptions): Promise<Result<S["SignupOut"]>> =>
      wrap(raw.POST("/v1/auth/signup", { body, ...init(opts) })),
    /**
     * `auth.verify_email`: spend the token of a verification link (`ev_…`, the `token` in the
     * link's fragment `…/verify-email#token=ev_…`) and mark the address verified (204). No
     * credential needed; 400 `invalid_verification_token` when it is unknown, used or expired.
     */
    verifyEmail: (body: S["VerifyEmailIn"], opts?: CallOptions): Promise<Result<undefined>> =>
      wrap(raw.POST("/v1/auth/verify-email", { body, ...init(opts) })),
    /**
     * `auth.register`: create an account (201 `UserOut`, address not yet verified: a link was
     * mailed). A taken address answers 409 `email_taken`, which tells anyone who has an account.
     *
     * @deprecated Since 2026-11-29, sunset 2027-06-01 (the server sends `Deprecation`,
     * `Sunset` and `Link` headers): use {@link signup}, which answers 202 the same for a new
     * and a taken address, then `verifyEmail` and `login`.
     */
    register: (body: S["RegisterIn"], opts?: CallOptions): Promise<Result<S["UserOut"]>> =>
      wrap(raw.POST("/v1/auth/register", { body, ...init(opts) })),
    /** `auth.login`: get a token pair; the client uses it from now on. */
    login: async (body: S["LoginIn"], opts?: CallOptions): Promise<Result<S["TokenOut"]>> => {
      const result = await wrap(raw.POST("/v1/auth/login", { body, ...init(opts) }));
      if (result.data) credentials.setTokens(result.data);
      return result;
    },
    /** `auth.refresh`: rotate the refresh token (default: the client's); the client uses the new pair. */
    refresh: async (body?: S["RefreshIn"], opts?: CallOptions): Promise<Result<S["TokenOut"]>> => {
      const refresh_token = body?.refresh_token ?? credentials.refreshToken ?? "";
      const result = await wrap(raw.POST("/v1/auth/refresh", { body: { refresh_token }, ...init(opts) }));
      if (result.data) credentials.setTokens(result.data);
      return result;
    },
    /** `auth.logout`: revoke the refresh token's family (default: the client's) and forget the tokens. */
    logout: async (body?: S["RefreshIn"], opts?: CallOptions): Promise<Result<undefined>> => {
      const refresh_token = body?.refresh_token ?? credentials.refreshToken ?? "";
      const result = await wrap(raw.POST("/v1/auth/logout", { body: { refresh_token }, ...init(opts) }));
      if (!result.error && refresh_token === credentials.refreshToken) credentials.clearTokens();
      return result;
    },
    /**
     * `auth.oidc_authorize`: the URL to send the browser to (a navigation, not a fetch: it answers
     * 302 to the provider's login). After the login the provider returns through
     * `auth.oidc_callback`, which redirects to `redirectUri` with a one-time `code` for
     * `oidcExchange`, or with `error` and `error_description`. `redirectUri` must exactly match
     * one configured for the provider.
     */
    oidcAuthorizeUrl: (provider: string, redirectUri: string): string =>
      createFinalURL("/v1/auth/oidc/{provider}/authorize" satisfies keyof paths, {
        baseUrl: removeTrailingSlash(options.baseUrl),
        params: { path: { provider }, query: { redirect_uri: redirectUri } satisfies Query<"auth.oidc_authorize"> },
        querySerializer: createQuerySerializer(),
        pathSerializer: defaultPathSerializer,
      }),
    /** `auth.oidc_providers`: the configured single sign-on providers (no credentials needed); offer one login button each (`oidcAuthorizeUrl`). */
    oidcProviders: (opts?: CallOptions): Promise<Result<S["OidcProviderList"]>> =>
      wrap(raw.GET("/v1/auth/oidc/providers", init(opts))),
    /** `auth.oidc_exchange`: trade the callback's one-time `code` for a token pair; the client uses it from now on. */
    oidcExchange: async (body: S["OidcExchangeIn"], opts?: CallOptions): Promise<Result<S["TokenOut"]>> => {
      const result = await wrap(raw.POST("/v1/auth/oidc/exchange", { body, ...init(opts) }));
      if (result.data) credentials.setTokens(result.data);
      return result;
    },
  };

  const me = {
    /** `me.get`: the caller's account. */
    get: (opts?: CallOptions): Promise<Result<S["UserOut"]>> => wrap(raw.GET("/v1/me", init(opts))),
    /**
     * `me.update`: change the display name and/or password (needs `current_password`). A
     * password change revokes every refresh token and ends every access token of the account,
     * this client's included: the client forgets its tokens (log in again with the new password).
     */
    update: async (body: S["MePatch"], opts?: CallOptions): Promise<Result<S["UserOut"]>> => {
      const result = await wrap(raw.PATCH("/v1/me", { body, ...init(opts) }));
      if (!result.error && body.new_password !== undefined) credentials.clearTokens();
      return result;
    },
    /**
     * `me.logout_all`: revoke every refresh token of the account (all devices) and end every
     * access token at once; the client forgets both.
     */
    logoutAll: async (opts?: CallOptions): Promise<Result<undefined>> => {
      const result = await wrap(raw.POST("/v1/me/logout-all", init(opts)));
      if (!result.error) credentials.clearTokens();
      return result;
    },
    /**
     * `me.send_verification`: mail a new verification link to the caller's address (202; spend
     * it with `auth.verifyEmail`). 409 `email_already_verified` when there is nothing to prove;
     * limited per account like logins (429).
     */
    sendVerification: (opts?: CallOptions): Promise<Result<undefined>> =>
      wrap(raw.POST("/v1/me/email-verification", init(opts))),
    /**
     * `me.leave_org`: end the caller's own membership of an organization (204; no permission
     * needed). 409 `last_owner` for its only owner; 404 `not_found` when not a member.
     */
    leaveOrg: (orgId: string, opts?: CallOptions): Promise<Result<undefined>> =>
      wrap(raw.DELETE("/v1/me/memberships/{org_id}", { params: { path: { org_id: orgId } }, ...init(opts) })),
    /** `me.export`: everything stored about the caller as one JSON document. */
    export: (opts?: CallOptions): Promise<Result<S["MeExport"]>> => wrap(raw.GET("/v1/me/export", init(opts))),
    /** `me.delete`: erase the caller's account (409 `last_owner` while the only owner of an org); the client forgets the tokens. */
    delete: async (opts?: CallOptions): Promise<Result<undefined>> => {
      const result = await wrap(raw.DELETE("/v1/me", init(opts)));
      if (!result.error) credentials.clearTokens();
      return result;
    },
  };

  const orgs = {
    /** `orgs.create`: the caller becomes its owner. */
    create: (body: S["OrgIn"], opts?: CallOptions): Promise<Result<S["OrgOut"]>> =>
      wrap(raw.POST("/v1/orgs", { body, ...init(opts) })),
    /** `orgs.list`: the caller's organizations, each with the caller's role. */
    list: (query?: Query<"orgs.list">, opts?: CallOptions): Promise<Result<S["OrgList"]>> =>
      wrap(raw.GET("/v1/orgs", { params: { query }, ...init(opts) })),
    /** `orgs.get`. */
    get: (orgId: string, opts?: CallOptions): Promise<Result<S["OrgOut"]>> =>
      wrap(raw.GET("/v1/orgs/{org_id}", { params: { path: { org_id: orgId } }, ...init(opts) })),
    /** `orgs.update`; pass `ifMatch` (the `ETag` you read) to avoid lost updates. */
    update: (orgId: string, body: S["OrgPatch"], opts?: IfMatchCallOptions): Promise<Result<S["OrgOut"]>> =>
      wrap(
        raw.PATCH("/v1/orgs/{org_id}", {
          params: { path: { org_id: orgId } },
          body,
          ...init(opts, { "If-Match": opts?.ifMatch }),
        }),
      ),
    /** `orgs.delete` (owners; 409 `org_has_live_sessions` while a session is live). */
    delete: (orgId: string, opts?: CallOptions): Promise<Result<undefined>> =>
      wrap(raw.DELETE("/v1/orgs/{org_id}", { params: { path: { org_id: orgId } }, ...init(opts) })),
  };

  const members = {
    /** `members.list`. */
    list: (orgId: string, query?: Query<"members.list">, opts?: CallOptions): Promise<Result<S["MemberList"]>> =>
      wrap(raw.GET("/v1/orgs/{org_id}/members", { params: { path: { org_id: orgId }, query }, ...init(opts) })),
    /**
     * `members.add`: no longer adds anyone. Joining takes the person's consent, so it creates an
     * invitation exactly as `invitations.create` does (any address, default lifetime) and
     * answers 202 `InvitationCreatedOut`; the person becomes a member when they accept it
     * (`invitations.accept`, with a verified address). 409 `already_member` when a member has
     * the email. `MemberOut` stays in the type only because the contract keeps the earlier 201,
     * which current servers never send.
     *
     * @deprecated Since 2026-11-29, sunset 2027-06-01: use `invitations.create`.
     */
    add: (orgId: string, body: S["MemberIn"], opts?: CallOptions): Promise<Result<S["InvitationCreatedOut"] | S["MemberOut"]>> =>
      wrap(raw.POST("/v1/orgs/{org_id}/members", { params: { path: { org_id: orgId } }, body, ...init(opts) })),
    /** `members.update`: change a member's role. */
    update: (orgId: string, userId: string, body: S["MemberRoleIn"], opts?: CallOptions): Promise<Result<S["MemberOut"]>> =>
      wrap(
        raw.PUT("/v1/orgs/{org_id}/members/{user_id}", {
          params: { path: { org_id: orgId, user_id: userId } },
          body,
          ...init(opts),
        }),
      ),
    /** `members.remove`. */
    remove: (orgId: string, userId: string, opts?: CallOptions): Promise<Result<undefined>> =>
      wrap(
        raw.DELETE("/v1/orgs/{org_id}/members/{user_id}", {
          params: { path: { org_id: orgId, user_id: userId } },
          ...init(opts),
        }),
      ),
  };

  const audit = {
    /** `audit.list`: newest first; filter with `action`, `actor_id`, `since` (inclusive) and `until` (exclusive). */
    list: (orgId: string, query?: Query<"audit.list">, opts?: CallOptions): Promise<Result<S["AuditEventList"]>> =>
      wrap(raw.GET("/v1/orgs/{org_id}/audit-events", { params: { path: { org_id: orgId }, query }, ...init(opts) })),
  };

  const agents = {
    /** `agents.create`: with its desktop capabilities. */
    create: (orgId: string, body: S["AgentIn"], opts?: IdempotentCallOptions): Promise<Result<S["AgentOut"]>> =>
      wrap(raw.POST("/v1/orgs/{org_id}/agents", { params: { path: { org_id: orgId } }, body, ...idem(opts) })),
    /** `agents.list`. */
    list: (orgId: string, query?: Query<"agents.list">, opts?: CallOptions): Promise<Result<S["AgentList"]>> =>
      wrap(raw.GET("/v1/orgs/{org_id}/agents", { params: { path: { org_id: orgId }, query }, ...init(opts) })),
    /** `agents.get` (`ETag` in `response.headers`). */
    get: (orgId: string, agentId: string, opts?: CallOptions): Promise<Result<S["AgentOut"]>> =>
      wrap(
        raw.GET("/v1/orgs/{org_id}/agents/{agent_id}", {
          params: { path: { org_id: orgId, agent_id: agentId } },
          ...init(opts),
        }),
      ),
    /** `agents.update`: needs `ifMatch` (`"<version>"`, the `ETag` you read). */
    update: (
      orgId: string,
      agentId: string,
      body: S["AgentPatch"],
      opts: IfMatchCallOptions & { ifMatch: string },
    ): Promise<Result<S["AgentOut"]>> =>
      wrap(
        raw.PATCH("/v1/orgs/{org_id}/agents/{agent_id}", {
          params: { path: { org_id: orgId, agent_id: agentId }, header: { "If-Match": opts.ifMatch } },
          body,
          ...init(opts, { "If-Match": opts.ifMatch }),
        }),
      ),
    /** `agents.delete` (409 `agent_has_live_sessions` while one of its sessions is live). */
    delete: (orgId: string, agentId: string, opts?: CallOptions): Promise<Result<undefined>> =>
      wrap(
        raw.DELETE("/v1/orgs/{org_id}/agents/{agent_id}", {
          params: { path: { org_id: orgId, agent_id: agentId } },
          ...init(opts),
        }),
      ),
  };

  const sessions = {
    /** `sessions.create`: 202 with the session `pending`; follow it with `get` or `events.stream`. */
    create: (orgId: string, body: S["SessionIn"], opts?: IdempotentCallOptions): Promise<Result<S["SessionOut"]>> =>
      wrap(raw.POST("/v1/orgs/{org_id}/sessions", { params: { path: { org_id: orgId } }, body, ...idem(opts) })),
    /** `sessions.list`: newest first; filter by `status` and `agent_id`. */
    list: (orgId: string, query?: Query<"sessions.list">, opts?: CallOptions): Promise<Result<S["SessionList"]>> =>
      wrap(raw.GET("/v1/orgs/{org_id}/sessions", { params: { path: { org_id: orgId }, query }, ...init(opts) })),
    /** `sessions.get`. */
    get: (orgId: string, sessionId: string, opts?: CallOptions): Promise<Result<S["SessionOut"]>> =>
      wrap(
        raw.GET("/v1/orgs/{org_id}/sessions/{session_id}", {
          params: { path: { org_id: orgId, session_id: sessionId } },
          ...init(opts),
        }),
      ),
    /** `sessions.stop`: 202 with the session `stopping`. */
    stop: (orgId: string, sessionId: string, opts?: IdempotentCallOptions): Promise<Result<S["SessionOut"]>> =>
      wrap(
        raw.POST("/v1/orgs/{org_id}/sessions/{session_id}/stop", {
          params: { path: { org_id: orgId, session_id: sessionId } },
          ...idem(opts),
        }),
      ),
  };

  const events = {
    /** `events.append`: 1–500 events; answers their `first_seq..=last_seq`. */
    append: (orgId: string, sessionId: string, body: S["EventBatchIn"], opts?: IdempotentCallOptions): Promise<Result<S["AppendedOut"]>> =>
      wrap(
        raw.POST("/v1/orgs/{org_id}/sessions/{session_id}/events", {
          params: { path: { org_id: orgId, session_id: sessionId } },
          body,
          ...idem(opts),
        }),
      ),
    /** `events.list`: events after `after_seq`, oldest first; page with `next_after_seq`. */
    list: (orgId: string, sessionId: string, query?: Query<"events.list">, opts?: CallOptions): Promise<Result<S["EventPage"]>> =>
      wrap(
        raw.GET("/v1/orgs/{org_id}/sessions/{session_id}/events", {
          params: { path: { org_id: orgId, session_id: sessionId }, query },
          ...init(opts),
        }),
      ),
    /**
     * `events.stream`: follows the session's log over SSE, calling `onEvent` per event in seq
     * order. Replays from `afterSeq`, then follows live; after a dropped connection it resumes
     * with `Last-Event-ID` (no gap, no duplicate). Resolves after the final `status` event
     * (`stopped`/`failed`), on abort, or with the problem a (re)connect was answered with.
     */
    stream: async (orgId: string, sessionId: string, opts: EventStreamOptions): Promise<EventStreamEnd> => {
      let lastSeq = opts.afterSeq ?? 0;
      let connects = 0;
      const end: StreamEnd = await runSse({
        signal: opts.signal,
        reconnect: opts.reconnect,
        connect: async (_lastEventId, signal) => {
          // The first request starts after `afterSeq`; reconnects resume after the last seq seen.
          const resume = connects++ > 0;
          return toSseConnect(
            await raw.GET("/v1/orgs/{org_id}/sessions/{session_id}/events/stream", {
              params: {
                path: { org_id: orgId, session_id: sessionId },
                ...(resume ? { header: { "Last-Event-ID": String(lastSeq) } } : { query: { after_seq: lastSeq } }),
              },
              headers: { Accept: "text/event-stream" },
              parseAs: "stream",
              ...(signal ? { signal } : {}),
            }),
          );
        },
        onMessage: async (message) => {
          const event = JSON.parse(message.data) as S["EventOut"];
          if (event.seq <= lastSeq) return "continue";
          lastSeq = event.seq;
          await opts.onEvent(event);
          return isFinalStatus(event) ? "stop" : "continue";
        },
      });
      if (end.reason === "problem") return { reason: "problem", error: end.error, lastSeq };
      return { reason: end.reason, lastSeq };
    },
    /**
     * `events.stream_org`: follows every session status change of the org (live only; after a
     * reconnect, `onReconnect` should re-read `sessions.list`). Runs until aborted or refused.
     */
    streamOrg: async (orgId: string, opts: OrgEventStreamOptions): Promise<StreamEnd> =>
      runSse({
        signal: opts.signal,
        reconnect: opts.reconnect,
        onReconnect: opts.onReconnect,
        connect: async (_lastEventId, signal) =>
          toSseConnect(
            await raw.GET("/v1/orgs/{org_id}/events/stream", {
              params: { path: { org_id: orgId } },
              headers: { Accept: "text/event-stream" },
              parseAs: "stream",
              ...(signal ? { signal } : {}),
            }),
          ),
        onMessage: async (message) => {
          await opts.onEvent(JSON.parse(message.data) as S["SessionStatusEvent"]);
          return "continue" as const;
        },
      }),
  };

  const commands = {
    /** `commands.create`: 202 queued, or 403 `capability_denied` outside the agent's capabilities. */
    create: (orgId: string, sessionId: string, body: S["CommandIn"], opts?: IdempotentCallOptions): Promise<Result<S["CommandOut"]>> =>
      wrap(
        raw.POST("/v1/orgs/{org_id}/sessions/{session_id}/commands", {
          params: { path: { org_id: orgId, session_id: sessionId } },
          body,
          ...idem(opts),
        }),
      ),
    /** `commands.list`: oldest first. */
    list: (orgId: string, sessionId: string, query?: Query<"commands.list">, opts?: CallOptions): Promise<Result<S["CommandList"]>> =>
      wrap(
        raw.GET("/v1/orgs/{org_id}/sessions/{session_id}/commands", {
          params: { path: { org_id: orgId, session_id: sessionId }, query },
          ...init(opts),
        }),
      ),
    /** `commands.get`. */
    get: (orgId: string, sessionId: string, commandId: string, opts?: CallOptions): Promise<Result<S["CommandOut"]>> =>
      wrap(
        raw.GET("/v1/orgs/{org_id}/sessions/{session_id}/commands/{command_id}", {
          params: { path: { org_id: orgId, session_id: sessionId, command_id: commandId } },
          ...init(opts),
        }),
      ),
    /** `commands.claim` (executor): the next queued command, or `data: undefined` (204) after `wait_s`. */
    claim: (
      orgId: string,
      sessionId: string,
      query?: Query<"commands.claim">,
      opts?: CallOptions,
    ): Promise<Result<S["CommandOut"] | undefined>> =>
      wrap(
        raw.POST("/v1/orgs/{org_id}/sessions/{session_id}/commands/claim", {
          params: { path: { org_id: orgId, session_id: sessionId }, query },
          ...init(opts),
        }),
      ),
    /** `commands.complete` (executor): report a dispatched command's result. */
    complete: (
      orgId: string,
      sessionId: string,
      commandId: string,
      body: S["CommandResultIn"],
      opts?: CallOptions,
    ): Promise<Result<S["CommandOut"]>> =>
      wrap(
        raw.POST("/v1/orgs/{org_id}/sessions/{session_id}/commands/{command_id}/result", {
          params: { path: { org_id: orgId, session_id: sessionId, command_id: commandId } },
          body,
          ...init(opts),
        }),
      ),
  };

  const artifacts = {
    /** `artifacts.list`: the session's artifacts (screenshots), oldest first. */
    list: (orgId: string, sessionId: string, query?: Query<"artifacts.list">, opts?: CallOptions): Promise<Result<S["ArtifactList"]>> =>
      wrap(
        raw.GET("/v1/orgs/{org_id}/sessions/{session_id}/artifacts", {
          params: { path: { org_id: orgId, session_id: sessionId }, query },
          ...init(opts),
        }),
      ),
    /** `artifacts.get`: the artifact's bytes (e.g. a PNG); `response.headers` has its `Content-Type` and `ETag`. */
    get: async (orgId: string, sessionId: string, artifactId: string, opts?: CallOptions): Promise<Result<Uint8Array>> => {
      const r = await wrap(
        raw.GET("/v1/orgs/{org_id}/sessions/{session_id}/artifacts/{artifact_id}", {
          params: { path: { org_id: orgId, session_id: sessionId, artifact_id: artifactId } },
          parseAs: "arrayBuffer",
          ...init(opts),
        }),
      );
      if (r.error) return r;
      return { data: new Uint8Array(r.data as unknown as ArrayBuffer), response: r.response };
    },
  };

  const desktop = desktopViewer({
    createTicket: (orgId, sessionId, body, opts) =>
      wrap(
        raw.POST("/v1/orgs/{org_id}/sessions/{session_id}/desktop/tickets", {
          params: { path: { org_id: orgId, session_id: sessionId } },
          body,
          ...init(opts),
        }),
      ),
  });

  const agentLoop = desktopHelpers({
    sessionsCreate: sessions.create,
    sessionsGet: sessions.get,
    commandsCreate: commands.create,
    commandsGet: commands.get,
    artifactBytes: artifacts.get,
    stream: events.stream,
  });

  const jobs = {
    /** `jobs.list`: newest first; `status: "dead"` is the dead-letter queue. */
    list: (orgId: string, query?: Query<"jobs.list">, opts?: CallOptions): Promise<Result<S["JobList"]>> =>
      wrap(raw.GET("/v1/orgs/{org_id}/jobs", { params: { path: { org_id: orgId }, query }, ...init(opts) })),
    /** `jobs.retry`: put a dead job back to `pending`. */
    retry: (orgId: string, jobId: string, opts?: CallOptions): Promise<Result<S["JobOut"]>> =>
      wrap(
        raw.POST("/v1/orgs/{org_id}/jobs/{job_id}/retry", {
          params: { path: { org_id: orgId, job_id: jobId } },
          ...init(opts),
        }),
      ),
  };

  const permissions = {
    /** `permissions.list`: the permission catalog roles are made of (public: no credentials needed). */
    list: (opts?: CallOptions): Promise<Result<S["PermissionList"]>> => wrap(raw.GET("/v1/permissions", init(opts))),
  };

  const roles = {
    /** `roles.list`: the four built-in roles, then the org's custom roles. */
    list: (orgId: string, opts?: CallOptions): Promise<Result<S["RoleList"]>> =>
      wrap(raw.GET("/v1/orgs/{org_id}/roles", { params: { path: { org_id: orgId } }, ...init(opts) })),
    /** `roles.get`: a built-in or custom role by name (`ETag` in `response.headers`). */
    get: (orgId: string, role: string, opts?: CallOptions): Promise<Result<S["RoleOut"]>> =>
      wrap(raw.GET("/v1/orgs/{org_id}/roles/{role}", { params: { path: { org_id: orgId, role } }, ...init(opts) })),
    /** `roles.create`: a custom role from catalog permissions the caller holds. */
    create: (orgId: string, body: S["RoleIn"], opts?: CallOptions): Promise<Result<S["RoleOut"]>> =>
      wrap(raw.POST("/v1/orgs/{org_id}/roles", { params: { path: { org_id: orgId } }, body, ...init(opts) })),
    /** `roles.update`: replace a custom role's description and permissions; needs `ifMatch` (`"<version>"`, the `ETag` you read). */
    update: (
      orgId: string,
      role: string,
      body: S["RoleUpdate"],
      opts: IfMatchCallOptions & { ifMatch: string },
    ): Promise<Result<S["RoleOut"]>> =>
      wrap(
        raw.PUT("/v1/orgs/{org_id}/roles/{role}", {
          params: { path: { org_id: orgId, role }, header: { "If-Match": opts.ifMatch } },
          body,
          ...init(opts, { "If-Match": opts.ifMatch }),
        }),
      ),
    /** `roles.delete`: a custom role nobody holds (409 `role_in_use`, `role_read_only`). */
    delete: (orgId: string, role: string, opts?: CallOptions): Promise<Result<undefined>> =>
      wrap(raw.DELETE("/v1/orgs/{org_id}/roles/{role}", { params: { path: { org_id: orgId, role } }, ...init(opts) })),
  };

  const apiKeys = {
    /** `api_keys.create`: `data.secret` (`ad_<prefix>_<secret>`) is shown only in this response. */
    create: (orgId: string, body: S["ApiKeyIn"], opts?: CallOptions): Promise<Result<S["ApiKeyCreatedOut"]>> =>
      wrap(raw.POST("/v1/orgs/{org_id}/api-keys", { params: { path: { org_id: orgId } }, body, ...init(opts) })),
    /** `api_keys.list`: newest first, revoked and expired keys included, never the secrets. */
    list: (orgId: string, query?: Query<"api_keys.list">, opts?: CallOptions): Promise<Result<S["ApiKeyList"]>> =>
      wrap(raw.GET("/v1/orgs/{org_id}/api-keys", { params: { path: { org_id: orgId }, query }, ...init(opts) })),
    /** `api_keys.revoke`: every later request with the key answers 401. */
    revoke: (orgId: string, keyId: string, opts?: CallOptions): Promise<Result<undefined>> =>
      wrap(
        raw.DELETE("/v1/orgs/{org_id}/api-keys/{key_id}", {
          params: { path: { org_id: orgId, key_id: keyId } },
          ...init(opts),
        }),
      ),
  };

  const invitations = {
    /** `invitations.create`: `data.token` and `data.accept_url` are shown only in this response (no email is sent). */
    create: (orgId: string, body: S["InvitationIn"], opts?: CallOptions): Promise<Result<S["InvitationCreatedOut"]>> =>
      wrap(raw.POST("/v1/orgs/{org_id}/invitations", { params: { path: { org_id: orgId } }, body, ...init(opts) })),
    /** `invitations.list`: newest first, with each one's status. */
    list: (orgId: string, query?: Query<"invitations.list">, opts?: CallOptions): Promise<Result<S["InvitationList"]>> =>
      wrap(raw.GET("/v1/orgs/{org_id}/invitations", { params: { path: { org_id: orgId }, query }, ...init(opts) })),
    /** `invitations.revoke`: its token then answers 410 `invitation_revoked`. */
    revoke: (orgId: string, invitationId: string, opts?: CallOptions): Promise<Result<undefined>> =>
      wrap(
        raw.DELETE("/v1/orgs/{org_id}/invitations/{invitation_id}", {
          params: { path: { org_id: orgId, invitation_id: invitationId } },
          ...init(opts),
        }),
      ),
    /**
     * `invitations.accept`: by the logged-in invitee (403 `invitation_email_mismatch` for another
     * account); 410 `invitation_used` / `invitation_revoked` / `invitation_expired`.
     */
    accept: (token: string, opts?: CallOptions): Promise<Result<S["InvitationAccepted"]>> =>
      wrap(raw.POST("/v1/invitations/{token}/accept", { params: { path: { token } }, ...init(opts) })),
  };

  return {
    /** The typed openapi-fetch client (`GET`/`POST`/… on spec paths), with the auth middleware. */
    raw,
    auth,
    me,
    orgs,
    members,
    audit,
    agents,
    /** Sessions, plus `createAndWait` (resolves once the desktop runs). */
    sessions: { ...sessions, createAndWait: agentLoop.createAndWait },
    events,
    /** Commands, plus `run` (resolves with the finished command and its typed `result`). */
    commands: { ...commands, run: agentLoop.run },
    artifacts,
    /** Takes a screenshot and resolves with its PNG bytes, size and scale. */
    screenshot: agentLoop.screenshot,
    /** A session's live desktop: `ticket` (one-time, for the WebSocket) and `open` (the WebSocket itself, for noVNC). */
    desktop,
    jobs,
    permissions,
    roles,
    apiKeys,
    invitations,
    /** Use these tokens from now on (e.g. restored from storage). */
    setTokens: (tokens: Pick<TokenOut, "access_token"> & { refresh_token?: string }) =>
      credentials.setTokens(tokens),
    /** The tokens in use (they change when the client refreshes them). */
    get tokens(): { accessToken: string | undefined; refreshToken: string | undefined } {
      return { accessToken: credentials.accessToken, refreshToken: credentials.refreshToken };
    },
  };
}

/** The client `createClient` returns. */
export type AgentdeskClient = ReturnType<typeof createClient>;
