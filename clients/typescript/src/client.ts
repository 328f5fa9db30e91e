// `createClient`: openapi-fetch with the auth middleware and the retrying transport, plus one
// thin helper per operation, named after the spec's operation ids (`sessions.create` →
// `client.sessions.create`), auto-pagination (`listAll`), the event stream as callbacks
// (`events.stream`) or an async iterator (`events.iterate`), and the lifecycle helpers.
import createFetchClient, {
  type Client as FetchClient,
  createFinalURL,
  createQuerySerializer,
  defaultPathSerializer,
  removeTrailingSlash,
} from "openapi-fetch";
import { Credentials, type TokenPair, authMiddleware, memoryTokenStore } from "./auth.js";
import type {
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
import { desktopViewer } from "./desktop.js";
import { type SessionEvent, isFinalEvent, parseEvent } from "./events.js";
import type { components, operations, paths } from "./generated/v1.js";
import { DEFAULT_MAX_RETRIES, type FetchLike, newIdempotencyKey, retryingFetch } from "./http.js";
import { type CreateAndWaitOptions, type RunOptions, type ScreenshotOptions, type WaitForOptions, lifecycleHelpers } from "./lifecycle.js";
import type { CallOptions, IdempotentCallOptions, IfMatchCallOptions, RequiredIfMatchCallOptions } from "./options.js";
import { type PageIterator, cursorPages, seqPages } from "./pagination.js";
import { AgentdeskError, type Result, type ResultPromise, pending, toProblem } from "./problem.js";
import { type SseConnect, type SseEnd, sseMessages, toSseConnect } from "./sse.js";
import type { AuditEventList, AuditEventOut, CommandIn, CommandList, CommandOut, Loose, Query } from "./types.js";

type S = components["schemas"];
/** An operation's query parameters as sent. */
type WireQuery<K extends keyof operations> = NonNullable<operations[K]["parameters"]["query"]>;

/** The success body type, `undefined` for operations that answer 204. */
type Data<D> = [Exclude<D, undefined>] extends [never] ? undefined : Exclude<D, undefined>;

/** openapi-fetch's `{ data, error, response }` → a `Result` whose error is always a `Problem`. */
async function settle<T>(outcome: Promise<{ data?: unknown; error?: unknown; response: Response }>): Promise<Result<T>> {
  const { data, error, response } = await outcome;
  if (response.ok) return { data: data as T, response };
  return { error: toProblem(error, response), response };
}

/** `settle` with the body type of the openapi-fetch call, and `.unwrap()`. */
function call<D>(outcome: Promise<{ data?: D; error?: unknown; response: Response }>): ResultPromise<Data<D>> {
  return pending(settle<Data<D>>(outcome));
}

/** `settle` with a body type given by the helper (a narrower view of the spec's), and `.unwrap()`. */
function callAs<T>(outcome: Promise<{ data?: unknown; error?: unknown; response: Response }>): ResultPromise<T> {
  return pending(settle<T>(outcome));
}

/**
 * What `start()` resolves to, or a rejection with the signal's reason as soon as `signal` aborts
 * (not started if it already has). Once started, the work goes on: used where cutting it short
 * would lose something, e.g. a refreshed pair.
 */
function untilAborted<T>(start: () => Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return start();
  if (signal.aborted) return Promise.reject(signal.reason);
  const outcome = start();
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    outcome.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

/** Input types accept `undefined` for absent fields; the wire types do not mention it. JSON drops them. */
const wire = <T>(value: Loose<T>): T => value as T;
/** `wire` for an optional query (all of whose fields are optional). */
const wireQuery = <T>(value: Loose<T> | undefined): T => (value ?? {}) as T;

/** The `baseUrl` without trailing slashes; a `TypeError` when it ends in `/v1`. */
export function checkBaseUrl(baseUrl: string): string {
  const root = baseUrl.replace(/\/+$/, "");
  if (/\/v1$/i.test(root)) {
    const fixed = root.slice(0, -3) || "/";
    throw new TypeError(
      `createClient: baseUrl "${baseUrl}" ends in /v1, but every path the client calls already starts with /v1 ` +
        `(it would request ${root}/v1/… and get 404 route_not_found). Pass the server's root instead: baseUrl: "${fixed}"`,
    );
  }
  return baseUrl;
}

/**
 * Creates a client. Every helper resolves to a `Result` (`{ data }` or `{ error: Problem }`,
 * with the `response`) and has `.unwrap()`; see the README for examples of every resource.
 * Throws a `TypeError` at once for a `baseUrl` ending in `/v1`.
 */
export function createClient(options: ClientOptions) {
  const baseUrl = checkBaseUrl(options.baseUrl);
  const fetchImpl: FetchLike = options.fetch ?? ((input: Request) => globalThis.fetch(input));
  const clientRetries = options.maxRetries ?? DEFAULT_MAX_RETRIES;
  const defaultTransport = retryingFetch(fetchImpl, clientRetries);
  const transport = (maxRetries: number | undefined): FetchLike =>
    maxRetries === undefined || maxRetries === clientRetries ? defaultTransport : retryingFetch(fetchImpl, maxRetries);

  const store =
    options.tokenStore ??
    memoryTokenStore(options.accessToken !== undefined ? { access_token: options.accessToken, refresh_token: options.refreshToken } : undefined);
  const credentials = new Credentials({
    baseUrl,
    fetch: fetchImpl,
    store,
    apiKey: options.apiKey,
    headers: options.headers,
    refreshLock: options.refreshLock,
    onTokenRefresh: options.onTokenRefresh,
    onLogout: options.onLogout,
  });
  const raw: FetchClient<paths> = createFetchClient<paths>({
    baseUrl,
    fetch: defaultTransport,
    ...(options.headers ? { headers: options.headers } : {}),
  });
  raw.use(authMiddleware(credentials));

  /** openapi-fetch request options for a call: its headers (undefined ones dropped), signal and transport. */
  function init(opts: CallOptions | undefined, extraHeaders?: Record<string, string | undefined>) {
    const headers: Record<string, string> = { ...opts?.headers };
    for (const [k, v] of Object.entries(extraHeaders ?? {})) if (v !== undefined) headers[k] = v;
    return { headers, fetch: transport(opts?.maxRetries), ...(opts?.signal ? { signal: opts.signal } : {}) };
  }
  /** `init` plus an `Idempotency-Key`: the caller's, or a new one (the same for the SDK's retries of this call). */
  const idem = (opts?: IdempotentCallOptions) => init(opts, { "Idempotency-Key": opts?.idempotencyKey ?? newIdempotencyKey() });

  const auth = {
    /**
     * `auth.signup`: create an account and mail a verification link to the address (202
     * `SignupOut`, `status: "verification_sent"`). A taken address answers exactly the same
     * (its owner gets a notice instead), so the answer never tells which addresses have
     * accounts. Open the link's token with `verifyEmail`; `login` works before that.
     * 422 `validation_failed` for a password under 10 characters or a malformed address.
     */
    signup: (body: Loose<S["RegisterIn"]>, opts?: CallOptions) => call(raw.POST("/v1/auth/signup", { body: wire<S["RegisterIn"]>(body), ...init(opts) })),
    /**
     * `auth.verify_email`: spend the token of a verification link (`ev_…`, the `token` in the
     * link's fragment `…/verify-email#token=ev_…`) and mark the address verified (204). No
     * credential needed; 400 `invalid_verification_token` when it is unknown, used or expired.
     */
    verifyEmail: (body: Loose<S["VerifyEmailIn"]>, opts?: CallOptions) =>
      call(raw.POST("/v1/auth/verify-email", { body: wire<S["VerifyEmailIn"]>(body), ...init(opts) })),
    /**
     * `auth.register`: create an account (201 `UserOut`, address not yet verified: a link was
     * mailed). A taken address answers 409 `email_taken`, which tells anyone who has an account.
     *
     * @deprecated Since 2026-11-29, sunset 2027-06-01 (the server sends `Deprecation`,
     * `Sunset` and `Link` headers): use {@link signup}, which answers 202 the same for a new
     * and a taken address, then `verifyEmail` and `login`.
     */
    register: (body: Loose<S["RegisterIn"]>, opts?: CallOptions) => call(raw.POST("/v1/auth/register", { body: wire<S["RegisterIn"]>(body), ...init(opts) })),
    /** `auth.login`: get a token pair; the client stores it (in its token store) and uses it from now on. 401 `invalid_credentials`, 429 `login_throttled`. */
    login: (body: Loose<S["LoginIn"]>, opts?: CallOptions): ResultPromise<S["TokenOut"]> =>
      pending(
        (async () => {
          const result = await settle<S["TokenOut"]>(raw.POST("/v1/auth/login", { body: wire<S["LoginIn"]>(body), ...init(opts) }));
          if (result.data) await credentials.write(result.data);
          return result;
        })(),
      ),
    /**
     * `auth.refresh`: rotate the refresh token now and store the new pair (normally not needed:
     * a 401 refreshes by itself). It runs under the same refresh lock as those, with the token
     * in the store once the lock is held, so it never presents a token a concurrent refresh (in
     * this client or another tab) just spent; a refresh of this client already under way is
     * joined instead of sending a second one. `onTokenRefresh` is called; a refused refresh
     * token (401 `invalid_refresh_token`) makes the client forget both tokens and call
     * `onLogout`. `body.refresh_token` rotates another token than the stored one. Never
     * retried (`maxRetries` does not apply); `signal` stops the wait, not the refresh itself
     * (its new pair is still stored: a refresh cut short would lose it).
     */
    refresh: (body?: Loose<S["RefreshIn"]>, opts?: CallOptions): ResultPromise<S["TokenOut"]> =>
      pending(untilAborted(() => credentials.refreshNow(body?.refresh_token, opts?.headers), opts?.signal)),
    /**
     * `auth.logout`: revoke the refresh token's family (default: the stored one's, read under
     * the refresh lock, so a concurrent refresh cannot rotate it meanwhile) and forget the
     * tokens (in every tab sharing the store).
     */
    logout: (body?: Loose<S["RefreshIn"]>, opts?: CallOptions): ResultPromise<undefined> =>
      pending(
        credentials.logout(body?.refresh_token, (refresh_token) =>
          settle<undefined>(raw.POST("/v1/auth/logout", { body: { refresh_token }, ...init(opts) })),
        ),
      ),
    /**
     * `auth.oidc_authorize`: the URL to send the browser to (a navigation, not a fetch: it answers
     * 302 to the provider's login). After the login the provider returns through
     * `auth.oidc_callback`, which redirects to `redirectUri` with a one-time `code` for
     * `oidcExchange`, or with `error` and `error_description`. `redirectUri` must exactly match
     * one configured for the provider.
     */
    oidcAuthorizeUrl: (provider: string, redirectUri: string): string =>
      createFinalURL("/v1/auth/oidc/{provider}/authorize" satisfies keyof paths, {
        baseUrl: removeTrailingSlash(baseUrl),
        params: { path: { provider }, query: { redirect_uri: redirectUri } satisfies Query<"auth.oidc_authorize"> },
        querySerializer: createQuerySerializer(),
        pathSerializer: defaultPathSerializer,
      }),
    /** `auth.oidc_providers`: the configured single sign-on providers (no credentials needed); offer one login button each (`oidcAuthorizeUrl`). */
    oidcProviders: (opts?: CallOptions) => call(raw.GET("/v1/auth/oidc/providers", init(opts))),
    /** `auth.oidc_exchange`: trade the callback's one-time `code` for a token pair; the client stores it and uses it from now on. */
    oidcExchange: (body: Loose<S["OidcExchangeIn"]>, opts?: CallOptions): ResultPromise<S["TokenOut"]> =>
      pending(
        (async () => {
          const result = await settle<S["TokenOut"]>(raw.POST("/v1/auth/oidc/exchange", { body: wire<S["OidcExchangeIn"]>(body), ...init(opts) }));
          if (result.data) await credentials.write(result.data);
          return result;
        })(),
      ),
  };

  /** A helper whose success forgets the tokens (the server ended them). */
  const forgetting = <T>(outcome: ResultPromise<T>, when: () => boolean = () => true): ResultPromise<T> =>
    pending(
      outcome.then(async (result) => {
        if (!result.error && when()) await credentials.clear();
        return result;
      }),
    );

  const me = {
    /** `me.get`: the caller's account. */
    get: (opts?: CallOptions) => call(raw.GET("/v1/me", init(opts))),
    /**
     * `me.update`: change the display name and/or password (needs `current_password`; the new
     * one needs 10+ characters). A password change revokes every refresh token and ends every
     * access token of the account, this client's included: the client forgets its tokens (log
     * in again with the new password).
     */
    update: (body: Loose<S["MePatch"]>, opts?: CallOptions) =>
      forgetting(
        call(raw.PATCH("/v1/me", { body: wire<S["MePatch"]>(body), ...init(opts) })),
        () => body.new_password !== undefined,
      ),
    /**
     * `me.logout_all`: revoke every refresh token of the account (all devices) and end every
     * access token at once; the client forgets both.
     */
    logoutAll: (opts?: CallOptions) => forgetting(call(raw.POST("/v1/me/logout-all", init(opts)))),
    /**
     * `me.send_verification`: mail a new verification link to the caller's address (202; spend
     * it with `auth.verifyEmail`). 409 `email_already_verified` when there is nothing to prove;
     * limited per account like logins (429).
     */
    sendVerification: (opts?: CallOptions) => call(raw.POST("/v1/me/email-verification", init(opts))),
    /**
     * `me.leave_org`: end the caller's own membership of an organization (204; no permission
     * needed). 409 `last_owner` for its only owner; 404 `not_found` when not a member.
     */
    leaveOrg: (orgId: string, opts?: CallOptions) =>
      call(raw.DELETE("/v1/me/memberships/{org_id}", { params: { path: { org_id: orgId } }, ...init(opts) })),
    /** `me.export`: everything stored about the caller as one JSON document. */
    export: (opts?: CallOptions) => call(raw.GET("/v1/me/export", init(opts))),
    /** `me.delete`: erase the caller's account (409 `last_owner` while the only owner of an org); the client forgets the tokens. */
    delete: (opts?: CallOptions) => forgetting(call(raw.DELETE("/v1/me", init(opts)))),
  };

  const orgs = {
    /** `orgs.create`: the caller becomes its owner. */
    create: (body: Loose<S["OrgIn"]>, opts?: CallOptions) => call(raw.POST("/v1/orgs", { body: wire<S["OrgIn"]>(body), ...init(opts) })),
    /** `orgs.list`: one page of the caller's organizations, each with the caller's role (`next_cursor` for the next). */
    list: (query?: Query<"orgs.list">, opts?: CallOptions) =>
      call(raw.GET("/v1/orgs", { params: { query: wireQuery<WireQuery<"orgs.list">>(query) }, ...init(opts) })),
    /** Every organization of the caller, page after page (`query.limit` is the page size). */
    listAll: (query?: Omit<Query<"orgs.list">, "cursor">, opts?: CallOptions): PageIterator<S["OrgOut"]> =>
      cursorPages((cursor) => orgs.list({ ...query, cursor }, opts)),
    /** `orgs.get` (`ETag` in `response.headers`). */
    get: (orgId: string, opts?: CallOptions) => call(raw.GET("/v1/orgs/{org_id}", { params: { path: { org_id: orgId } }, ...init(opts) })),
    /** `orgs.update`; pass `ifMatch` (the `ETag` you read) to avoid lost updates (412 `precondition_failed`). */
    update: (orgId: string, body: Loose<S["OrgPatch"]>, opts?: IfMatchCallOptions) =>
      call(
        raw.PATCH("/v1/orgs/{org_id}", {
          params: { path: { org_id: orgId } },
          body: wire<S["OrgPatch"]>(body),
          ...init(opts, { "If-Match": opts?.ifMatch }),
        }),
      ),
    /** `orgs.delete` (owners; 409 `org_has_live_sessions` while a session is live). */
    delete: (orgId: string, opts?: CallOptions) =>
      call(raw.DELETE("/v1/orgs/{org_id}", { params: { path: { org_id: orgId } }, ...init(opts) })),
  };

  const members = {
    /** `members.list`: one page (`next_cursor` for the next). */
    list: (orgId: string, query?: Query<"members.list">, opts?: CallOptions) =>
      call(raw.GET("/v1/orgs/{org_id}/members", { params: { path: { org_id: orgId }, query: wireQuery<WireQuery<"members.list">>(query) }, ...init(opts) })),
    /** Every member, page after page. */
    listAll: (orgId: string, query?: Omit<Query<"members.list">, "cursor">, opts?: CallOptions): PageIterator<S["MemberOut"]> =>
      cursorPages((cursor) => members.list(orgId, { ...query, cursor }, opts)),
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
    add: (orgId: string, body: Loose<S["MemberIn"]>, opts?: CallOptions): ResultPromise<S["InvitationCreatedOut"] | S["MemberOut"]> =>
      callAs<S["InvitationCreatedOut"] | S["MemberOut"]>(raw.POST("/v1/orgs/{org_id}/members", { params: { path: { org_id: orgId } }, body: wire<S["MemberIn"]>(body), ...init(opts) })),
    /** `members.update`: change a member's role. */
    update: (orgId: string, userId: string, body: Loose<S["MemberRoleIn"]>, opts?: CallOptions) =>
      call(
        raw.PUT("/v1/orgs/{org_id}/members/{user_id}", {
          params: { path: { org_id: orgId, user_id: userId } },
          body: wire<S["MemberRoleIn"]>(body),
          ...init(opts),
        }),
      ),
    /** `members.remove`. */
    remove: (orgId: string, userId: string, opts?: CallOptions) =>
      call(raw.DELETE("/v1/orgs/{org_id}/members/{user_id}", { params: { path: { org_id: orgId, user_id: userId } }, ...init(opts) })),
  };

  const audit = {
    /** `audit.list`: one page, newest first; filter with `action`, `actor_id`, `since` (inclusive) and `until` (exclusive). */
    list: (orgId: string, query?: Query<"audit.list">, opts?: CallOptions) =>
      callAs<AuditEventList>(
        raw.GET("/v1/orgs/{org_id}/audit-events", { params: { path: { org_id: orgId }, query: wireQuery<WireQuery<"audit.list">>(query) }, ...init(opts) }),
      ),
    /** Every matching audit event, newest first, page after page. */
    listAll: (orgId: string, query?: Omit<Query<"audit.list">, "cursor">, opts?: CallOptions): PageIterator<AuditEventOut> =>
      cursorPages((cursor) => audit.list(orgId, { ...query, cursor }, opts)),
  };

  const agents = {
    /** `agents.create`: with its desktop capabilities. Sent with an `Idempotency-Key` (a new one unless given), so it is retried safely. */
    create: (orgId: string, body: Loose<S["AgentIn"]>, opts?: IdempotentCallOptions) =>
      call(raw.POST("/v1/orgs/{org_id}/agents", { params: { path: { org_id: orgId } }, body: wire<S["AgentIn"]>(body), ...idem(opts) })),
    /** `agents.list`: one page (`next_cursor` for the next). */
    list: (orgId: string, query?: Query<"agents.list">, opts?: CallOptions) =>
      call(raw.GET("/v1/orgs/{org_id}/agents", { params: { path: { org_id: orgId }, query: wireQuery<WireQuery<"agents.list">>(query) }, ...init(opts) })),
    /** Every agent of the org, page after page. */
    listAll: (orgId: string, query?: Omit<Query<"agents.list">, "cursor">, opts?: CallOptions): PageIterator<S["AgentOut"]> =>
      cursorPages((cursor) => agents.list(orgId, { ...query, cursor }, opts)),
    /** `agents.get` (`ETag` in `response.headers`). */
    get: (orgId: string, agentId: string, opts?: CallOptions) =>
      call(raw.GET("/v1/orgs/{org_id}/agents/{agent_id}", { params: { path: { org_id: orgId, agent_id: agentId } }, ...init(opts) })),
    /** `agents.update`: needs `ifMatch` (`"<version>"`, the `ETag` you read; 412 `precondition_failed` when stale). */
    update: (orgId: string, agentId: string, body: Loose<S["AgentPatch"]>, opts: RequiredIfMatchCallOptions) =>
      call(
        raw.PATCH("/v1/orgs/{org_id}/agents/{agent_id}", {
          params: { path: { org_id: orgId, agent_id: agentId }, header: { "If-Match": opts.ifMatch } },
          body: wire<S["AgentPatch"]>(body),
          ...init(opts, { "If-Match": opts.ifMatch }),
        }),
      ),
    /** `agents.delete` (409 `agent_has_live_sessions` while one of its sessions is live). */
    delete: (orgId: string, agentId: string, opts?: CallOptions) =>
      call(raw.DELETE("/v1/orgs/{org_id}/agents/{agent_id}", { params: { path: { org_id: orgId, agent_id: agentId } }, ...init(opts) })),
  };

  const sessions = {
    /**
     * `sessions.create`: 202 with the session `pending` (wait with `sessions.waitFor`). Sent
     * with an `Idempotency-Key` (a new one unless given), so it is retried safely. 429
     * `session_limit_reached` at the org's limit of live sessions.
     */
    create: (orgId: string, body: Loose<S["SessionIn"]>, opts?: IdempotentCallOptions) =>
      call(raw.POST("/v1/orgs/{org_id}/sessions", { params: { path: { org_id: orgId } }, body: wire<S["SessionIn"]>(body), ...idem(opts) })),
    /** `sessions.list`: one page, newest first; filter by `status` and `agent_id`. */
    list: (orgId: string, query?: Query<"sessions.list">, opts?: CallOptions) =>
      call(raw.GET("/v1/orgs/{org_id}/sessions", { params: { path: { org_id: orgId }, query: wireQuery<WireQuery<"sessions.list">>(query) }, ...init(opts) })),
    /** Every matching session, newest first, page after page. */
    listAll: (orgId: string, query?: Omit<Query<"sessions.list">, "cursor">, opts?: CallOptions): PageIterator<S["SessionOut"]> =>
      cursorPages((cursor) => sessions.list(orgId, { ...query, cursor }, opts)),
    /** `sessions.get`. */
    get: (orgId: string, sessionId: string, opts?: CallOptions) =>
      call(raw.GET("/v1/orgs/{org_id}/sessions/{session_id}", { params: { path: { org_id: orgId, session_id: sessionId } }, ...init(opts) })),
    /** `sessions.stop`: 202 with the session `stopping` (wait for `stopped` with `sessions.waitFor`). Idempotency-keyed like `create`. 409 `invalid_transition` once stopped. */
    stop: (orgId: string, sessionId: string, opts?: IdempotentCallOptions) =>
      call(raw.POST("/v1/orgs/{org_id}/sessions/{session_id}/stop", { params: { path: { org_id: orgId, session_id: sessionId } }, ...idem(opts) })),
  };

  /** The session stream's connect function, resuming with `?after_seq=` (no CORS preflight beyond the credentials' own). */
  const sessionConnect =
    (orgId: string, sessionId: string, afterSeq: () => number) =>
    async (signal: AbortSignal | undefined): Promise<SseConnect> =>
      toSseConnect(
        await raw.GET("/v1/orgs/{org_id}/sessions/{session_id}/events/stream", {
          params: { path: { org_id: orgId, session_id: sessionId }, query: { after_seq: afterSeq() } },
          headers: { Accept: "text/event-stream" },
          parseAs: "stream",
          // The stream reconnects by itself: no transport retries underneath.
          fetch: fetchImpl,
          ...(signal ? { signal } : {}),
        }),
      );

  /**
   * The session's events from `afterSeq` as a generator: in seq order, each once (a reconnect
   * resumes after the last seq delivered), finishing after the final status event or with the
   * stream's end (`ended`, `aborted`, `problem`).
   */
  function follow(orgId: string, sessionId: string, opts: EventIterateOptions) {
    const state = { lastSeq: opts.afterSeq ?? 0 };
    async function* events(): AsyncGenerator<SessionEvent, SseEnd | { reason: "final"; error?: undefined }, undefined> {
      const messages = sseMessages({
        connect: sessionConnect(orgId, sessionId, () => state.lastSeq),
        signal: opts.signal,
        reconnect: opts.reconnect,
      });
      try {
        for (;;) {
          const next = await messages.next();
          if (next.done) return next.value;
          const event = parseEvent(next.value.data);
          if (event.seq <= state.lastSeq) continue;
          state.lastSeq = event.seq;
          yield event;
          if (isFinalEvent(event)) return { reason: "final" };
        }
      } finally {
        await messages.return({ reason: "aborted" });
      }
    }
    return { events: events(), state };
  }

  const events = {
    /**
     * `events.append`: 1–500 events (`action`, `screenshot`, `result`, `message`, `log`; a JSON
     * object payload each); answers their `first_seq..=last_seq`. Idempotency-keyed (a new key
     * unless given), so it is retried safely. 409 `session_not_live` once the session ended.
     */
    append: (orgId: string, sessionId: string, body: Loose<S["EventBatchIn"]>, opts?: IdempotentCallOptions) =>
      call(
        raw.POST("/v1/orgs/{org_id}/sessions/{session_id}/events", {
          params: { path: { org_id: orgId, session_id: sessionId } },
          body: wire<S["EventBatchIn"]>(body),
          ...idem(opts),
        }),
      ),
    /** `events.list`: one page of events after `after_seq`, oldest first, typed per kind; page with `next_after_seq` while `has_more`. */
    list: (orgId: string, sessionId: string, query?: Query<"events.list">, opts?: CallOptions) =>
      callAs<EventPage>(
        raw.GET("/v1/orgs/{org_id}/sessions/{session_id}/events", {
          params: { path: { org_id: orgId, session_id: sessionId }, query: wireQuery<WireQuery<"events.list">>(query) },
          ...init(opts),
        }),
      ),
    /**
     * Every event in the log after `query.after_seq` (default 0), oldest first, page after page
     * (`query.limit` is the page size; `query.kind` filters): what was there when the last page
     * was read. To follow new events as they come, use `iterate`.
     */
    listAll: (orgId: string, sessionId: string, query?: EventListAllQuery, opts?: CallOptions): PageIterator<SessionEvent> =>
      seqPages(query?.after_seq ?? 0, (after) => events.list(orgId, sessionId, { ...query, after_seq: after }, opts)),
    /**
     * `events.stream` as an async iterator: the session's events after `afterSeq` (default 0),
     * typed per kind, in seq order, replaying the log and then following it live; it finishes
     * after the session's final `status` event (or when the server closed the stream twice in
     * a row without an event: the session may then still be live, re-read it). A dropped
     * connection is reopened with `?after_seq=<last seq delivered>` (no gap, no duplicate),
     * backed off as `reconnect` says (also after a 429, 502, 503 or 504, honouring
     * `Retry-After`); once those retries are spent the last network error rejects. A refused
     * (re)connect throws an {@link AgentdeskError} (e.g. 404 `not_found`); aborting `signal`
     * rejects with its reason. Leaving the loop (`break`) closes the connection.
     */
    iterate: (orgId: string, sessionId: string, opts: EventIterateOptions = {}): EventIterator => {
      const { events: source, state } = follow(orgId, sessionId, opts);
      async function* iterator(): AsyncGenerator<SessionEvent, void, undefined> {
        try {
          for (;;) {
            const next = await source.next();
            if (!next.done) {
              yield next.value;
              continue;
            }
            const end = next.value;
            if (end.reason === "problem") throw new AgentdeskError(end.error, end.response);
            if (end.reason === "aborted") throw opts.signal?.reason ?? new DOMException("aborted", "AbortError");
            return;
          }
        } finally {
          await source.return({ reason: "aborted" });
        }
      }
      const it = iterator();
      return Object.defineProperty(it, "lastSeq", { get: () => state.lastSeq, enumerable: true }) as typeof it & { readonly lastSeq: number };
    },
    /**
     * `events.stream` with a callback: calls `onEvent` per event (typed per kind) in seq order,
     * awaited before the next one, replaying from `afterSeq` and then following live; after a
     * dropped connection it resumes with `?after_seq=` (no gap, no duplicate). Resolves after
     * the final `status` event (`final`), when the server closed the stream twice in a row
     * without an event (`ended`: the session may still be live, re-read it), on abort,
     * or with the problem a (re)connect was answered with (`problem`: never rejects for an HTTP
     * error). Once the reconnects are spent, the last network error rejects; so does an
     * exception thrown by `onEvent`.
     */
    stream: async (orgId: string, sessionId: string, opts: EventStreamOptions): Promise<EventStreamEnd> => {
      const { events: source, state } = follow(orgId, sessionId, opts);
      try {
        for (;;) {
          const next = await source.next();
          if (next.done) {
            const end = next.value;
            if (end.reason === "problem") return { reason: "problem", error: end.error, lastSeq: state.lastSeq };
            return { reason: end.reason, lastSeq: state.lastSeq };
          }
          await opts.onEvent(next.value);
        }
      } finally {
        await source.return({ reason: "aborted" });
      }
    },
    /**
     * `events.stream_org`: follows every session status change of the org (live only; after a
     * reconnect, `onReconnect` should re-read `sessions.list`). Runs until aborted, refused
     * (`problem`) or ended by the server twice in a row without an event.
     */
    streamOrg: async (orgId: string, opts: OrgEventStreamOptions): Promise<OrgEventStreamEnd> => {
      const messages = sseMessages({
        signal: opts.signal,
        reconnect: opts.reconnect,
        onReconnect: opts.onReconnect,
        connect: async (signal) =>
          toSseConnect(
            await raw.GET("/v1/orgs/{org_id}/events/stream", {
              params: { path: { org_id: orgId } },
              headers: { Accept: "text/event-stream" },
              parseAs: "stream",
              fetch: fetchImpl,
              ...(signal ? { signal } : {}),
            }),
          ),
      });
      try {
        for (;;) {
          const next = await messages.next();
          if (next.done) {
            const end = next.value;
            return end.reason === "problem" ? { reason: "problem", error: end.error } : { reason: end.reason };
          }
          await opts.onEvent(JSON.parse(next.value.data) as S["SessionStatusEvent"]);
        }
      } finally {
        await messages.return({ reason: "aborted" });
      }
    },
  };

  const commands = {
    /**
     * `commands.create`: 202 queued, or 403 `capability_denied` outside the agent's
     * capabilities. Idempotency-keyed (a new key unless given), so it is retried safely. To
     * wait for its outcome, use `commands.run`.
     */
    create: (orgId: string, sessionId: string, body: Loose<CommandIn>, opts?: IdempotentCallOptions) =>
      callAs<CommandOut>(
        raw.POST("/v1/orgs/{org_id}/sessions/{session_id}/commands", {
          params: { path: { org_id: orgId, session_id: sessionId } },
          body: wire<CommandIn>(body),
          ...idem(opts),
        }),
      ),
    /** `commands.list`: one page, oldest first, typed per kind. */
    list: (orgId: string, sessionId: string, query?: Query<"commands.list">, opts?: CallOptions) =>
      callAs<CommandList>(
        raw.GET("/v1/orgs/{org_id}/sessions/{session_id}/commands", {
          params: { path: { org_id: orgId, session_id: sessionId }, query: wireQuery<WireQuery<"commands.list">>(query) },
          ...init(opts),
        }),
      ),
    /** Every command of the session, oldest first, page after page. */
    listAll: (orgId: string, sessionId: string, query?: Omit<Query<"commands.list">, "cursor">, opts?: CallOptions): PageIterator<CommandOut> =>
      cursorPages((cursor) => commands.list(orgId, sessionId, { ...query, cursor }, opts)),
    /** `commands.get`: typed per kind (`if (c.kind === "shell") c.result?.stdout`). */
    get: (orgId: string, sessionId: string, commandId: string, opts?: CallOptions) =>
      callAs<CommandOut>(
        raw.GET("/v1/orgs/{org_id}/sessions/{session_id}/commands/{command_id}", {
          params: { path: { org_id: orgId, session_id: sessionId, command_id: commandId } },
          ...init(opts),
        }),
      ),
    /** `commands.claim` (an external executor): the next queued command, or `data: undefined` (204) after `wait_s`. */
    claim: (orgId: string, sessionId: string, query?: Query<"commands.claim">, opts?: CallOptions) =>
      callAs<CommandOut | undefined>(
        raw.POST("/v1/orgs/{org_id}/sessions/{session_id}/commands/claim", {
          params: { path: { org_id: orgId, session_id: sessionId }, query: wireQuery<WireQuery<"commands.claim">>(query) },
          ...init(opts),
        }),
      ),
    /** `commands.complete` (an external executor): report a dispatched command's result (`output` is kept verbatim). */
    complete: (orgId: string, sessionId: string, commandId: string, body: Loose<S["CommandResultIn"]>, opts?: CallOptions) =>
      callAs<CommandOut>(
        raw.POST("/v1/orgs/{org_id}/sessions/{session_id}/commands/{command_id}/result", {
          params: { path: { org_id: orgId, session_id: sessionId, command_id: commandId } },
          body: wire<S["CommandResultIn"]>(body),
          ...init(opts),
        }),
      ),
  };

  const artifacts = {
    /** `artifacts.list`: one page of the session's artifacts (screenshots), oldest first. */
    list: (orgId: string, sessionId: string, query?: Query<"artifacts.list">, opts?: CallOptions) =>
      call(
        raw.GET("/v1/orgs/{org_id}/sessions/{session_id}/artifacts", {
          params: { path: { org_id: orgId, session_id: sessionId }, query: wireQuery<WireQuery<"artifacts.list">>(query) },
          ...init(opts),
        }),
      ),
    /** Every artifact of the session, oldest first, page after page. */
    listAll: (orgId: string, sessionId: string, query?: Omit<Query<"artifacts.list">, "cursor">, opts?: CallOptions): PageIterator<S["ArtifactOut"]> =>
      cursorPages((cursor) => artifacts.list(orgId, sessionId, { ...query, cursor }, opts)),
    /** `artifacts.get`: the artifact's bytes (e.g. a PNG); `response.headers` has its `Content-Type` and `ETag`. */
    get: (orgId: string, sessionId: string, artifactId: string, opts?: CallOptions): ResultPromise<Uint8Array> =>
      pending(
        (async () => {
          const r = await settle<ArrayBuffer>(
            raw.GET("/v1/orgs/{org_id}/sessions/{session_id}/artifacts/{artifact_id}", {
              params: { path: { org_id: orgId, session_id: sessionId, artifact_id: artifactId } },
              parseAs: "arrayBuffer",
              ...init(opts),
            }),
          );
          if (r.error) return r;
          return { data: new Uint8Array(r.data), response: r.response };
        })(),
      ),
  };

  const desktop = desktopViewer({
    createTicket: (orgId, sessionId, body, opts) =>
      call(
        raw.POST("/v1/orgs/{org_id}/sessions/{session_id}/desktop/tickets", {
          params: { path: { org_id: orgId, session_id: sessionId } },
          body,
          ...init(opts),
        }),
      ),
  });

  const lifecycle = lifecycleHelpers({
    sessionsCreate: sessions.create,
    sessionsGet: sessions.get,
    commandsCreate: commands.create,
    commandsGet: commands.get,
    artifactBytes: artifacts.get,
    iterate: (orgId, sessionId, opts) => events.iterate(orgId, sessionId, opts),
  });

  const jobs = {
    /** `jobs.list`: one page, newest first; `status: "dead"` is the dead-letter queue. */
    list: (orgId: string, query?: Query<"jobs.list">, opts?: CallOptions) =>
      call(raw.GET("/v1/orgs/{org_id}/jobs", { params: { path: { org_id: orgId }, query: wireQuery<WireQuery<"jobs.list">>(query) }, ...init(opts) })),
    /** Every matching job, newest first, page after page. */
    listAll: (orgId: string, query?: Omit<Query<"jobs.list">, "cursor">, opts?: CallOptions): PageIterator<S["JobOut"]> =>
      cursorPages((cursor) => jobs.list(orgId, { ...query, cursor }, opts)),
    /** `jobs.retry`: put a dead job back to `pending` (409 `job_not_dead` otherwise). */
    retry: (orgId: string, jobId: string, opts?: CallOptions) =>
      call(raw.POST("/v1/orgs/{org_id}/jobs/{job_id}/retry", { params: { path: { org_id: orgId, job_id: jobId } }, ...init(opts) })),
  };

  const permissions = {
    /** `permissions.list`: the permission catalog roles are made of (public: no credentials needed). */
    list: (opts?: CallOptions) => call(raw.GET("/v1/permissions", init(opts))),
  };

  const roles = {
    /** `roles.list`: the four built-in roles, then the org's custom roles (one response, not paged). */
    list: (orgId: string, opts?: CallOptions) => call(raw.GET("/v1/orgs/{org_id}/roles", { params: { path: { org_id: orgId } }, ...init(opts) })),
    /** `roles.get`: a built-in or custom role by name (`ETag` in `response.headers`). */
    get: (orgId: string, role: string, opts?: CallOptions) =>
      call(raw.GET("/v1/orgs/{org_id}/roles/{role}", { params: { path: { org_id: orgId, role } }, ...init(opts) })),
    /** `roles.create`: a custom role from catalog permissions the caller holds (409 `role_name_taken`). */
    create: (orgId: string, body: Loose<S["RoleIn"]>, opts?: CallOptions) =>
      call(raw.POST("/v1/orgs/{org_id}/roles", { params: { path: { org_id: orgId } }, body: wire<S["RoleIn"]>(body), ...init(opts) })),
    /** `roles.update`: replace a custom role's description and permissions; needs `ifMatch` (`"<version>"`, the `ETag` you read; 412 when stale). */
    update: (orgId: string, role: string, body: Loose<S["RoleUpdate"]>, opts: RequiredIfMatchCallOptions) =>
      call(
        raw.PUT("/v1/orgs/{org_id}/roles/{role}", {
          params: { path: { org_id: orgId, role }, header: { "If-Match": opts.ifMatch } },
          body: wire<S["RoleUpdate"]>(body),
          ...init(opts, { "If-Match": opts.ifMatch }),
        }),
      ),
    /** `roles.delete`: a custom role nobody holds (409 `role_in_use`, `role_read_only`). */
    delete: (orgId: string, role: string, opts?: CallOptions) =>
      call(raw.DELETE("/v1/orgs/{org_id}/roles/{role}", { params: { path: { org_id: orgId, role } }, ...init(opts) })),
  };

  const apiKeys = {
    /** `api_keys.create`: `data.secret` (`ad_<prefix>_<secret>`) is shown only in this response. */
    create: (orgId: string, body: Loose<S["ApiKeyIn"]>, opts?: CallOptions) =>
      call(raw.POST("/v1/orgs/{org_id}/api-keys", { params: { path: { org_id: orgId } }, body: wire<S["ApiKeyIn"]>(body), ...init(opts) })),
    /** `api_keys.list`: one page, newest first, revoked and expired keys included, never the secrets. */
    list: (orgId: string, query?: Query<"api_keys.list">, opts?: CallOptions) =>
      call(raw.GET("/v1/orgs/{org_id}/api-keys", { params: { path: { org_id: orgId }, query: wireQuery<WireQuery<"api_keys.list">>(query) }, ...init(opts) })),
    /** Every API key of the org, page after page. */
    listAll: (orgId: string, query?: Omit<Query<"api_keys.list">, "cursor">, opts?: CallOptions): PageIterator<S["ApiKeyOut"]> =>
      cursorPages((cursor) => apiKeys.list(orgId, { ...query, cursor }, opts)),
    /** `api_keys.revoke`: every later request with the key answers 401. */
    revoke: (orgId: string, keyId: string, opts?: CallOptions) =>
      call(raw.DELETE("/v1/orgs/{org_id}/api-keys/{key_id}", { params: { path: { org_id: orgId, key_id: keyId } }, ...init(opts) })),
  };

  const invitations = {
    /** `invitations.create`: `data.token` and `data.accept_url` are shown only in this response (no email is sent). */
    create: (orgId: string, body: Loose<S["InvitationIn"]>, opts?: CallOptions) =>
      call(raw.POST("/v1/orgs/{org_id}/invitations", { params: { path: { org_id: orgId } }, body: wire<S["InvitationIn"]>(body), ...init(opts) })),
    /** `invitations.list`: one page, newest first, with each one's status. */
    list: (orgId: string, query?: Query<"invitations.list">, opts?: CallOptions) =>
      call(raw.GET("/v1/orgs/{org_id}/invitations", { params: { path: { org_id: orgId }, query: wireQuery<WireQuery<"invitations.list">>(query) }, ...init(opts) })),
    /** Every invitation of the org, page after page. */
    listAll: (orgId: string, query?: Omit<Query<"invitations.list">, "cursor">, opts?: CallOptions): PageIterator<S["InvitationOut"]> =>
      cursorPages((cursor) => invitations.list(orgId, { ...query, cursor }, opts)),
    /** `invitations.revoke`: its token then answers 410 `invitation_revoked` (409 `invitation_used` once accepted). */
    revoke: (orgId: string, invitationId: string, opts?: CallOptions) =>
      call(
        raw.DELETE("/v1/orgs/{org_id}/invitations/{invitation_id}", {
          params: { path: { org_id: orgId, invitation_id: invitationId } },
          ...init(opts),
        }),
      ),
    /**
     * `invitations.accept`: by the logged-in invitee (403 `invitation_email_mismatch` for another
     * account, 403 `email_not_verified` before the address is verified); 410 `invitation_used` /
     * `invitation_revoked` / `invitation_expired`.
     */
    accept: (token: string, opts?: CallOptions) => call(raw.POST("/v1/invitations/{token}/accept", { params: { path: { token } }, ...init(opts) })),
  };

  return {
    /** The typed openapi-fetch client (`GET`/`POST`/… on spec paths), with the auth middleware and retries. */
    raw,
    /** Accounts and tokens: `signup`, `verifyEmail`, `login`, `refresh`, `logout`, single sign-on. */
    auth,
    /** The caller's account. */
    me,
    /** Organizations, with `listAll`. */
    orgs,
    /** An org's members, with `listAll`. */
    members,
    /** An org's audit log, with `listAll`. */
    audit,
    /** An org's agents, with `listAll`. */
    agents,
    /**
     * Sessions, with `listAll`, `waitFor` (resolves once the session is in a status, driven by
     * the event stream) and `createAndWait` (`create`, then `waitFor` `running`).
     */
    sessions: {
      ...sessions,
      waitFor: (orgId: string, sessionId: string, status: S["SessionStatus"], opts?: WaitForOptions) =>
        pending(lifecycle.waitFor(orgId, sessionId, status, opts)),
      createAndWait: (orgId: string, body: Loose<S["SessionIn"]>, opts?: CreateAndWaitOptions) =>
        pending(lifecycle.createAndWait(orgId, body, opts)),
    },
    /** A session's event log: `append`, `list`, `listAll`, `iterate` (async iterator over the live stream), `stream` (callback), `streamOrg`. */
    events,
    /** Commands typed per kind, with `listAll` and `run` (resolves with the finished command and its typed `result`). */
    commands: {
      ...commands,
      run: <C extends Loose<CommandIn>>(orgId: string, sessionId: string, command: C, opts?: RunOptions) =>
        pending(lifecycle.run(orgId, sessionId, command, opts)),
    },
    /** A session's artifacts (screenshots), with `listAll`. */
    artifacts,
    /** Takes a screenshot and resolves with its PNG bytes, size and scale. */
    screenshot: (orgId: string, sessionId: string, opts?: ScreenshotOptions) =>
      pending(lifecycle.screenshot(orgId, sessionId, opts)),
    /** A session's live desktop: `ticket` (one-time, for the WebSocket) and `open` (the WebSocket itself, for noVNC). */
    desktop,
    /** An org's background jobs, with `listAll`. */
    jobs,
    /** The permission catalog. */
    permissions,
    /** An org's roles. */
    roles,
    /** An org's API keys, with `listAll`. */
    apiKeys,
    /** An org's invitations, with `listAll`, and accepting one. */
    invitations,
    /** Stores these tokens (e.g. restored from your own storage) and uses them from now on. */
    setTokens: (tokens: TokenPair): Promise<void> => credentials.write(tokens),
    /** The tokens as this client last read or wrote them (the store may hold newer ones another tab wrote). */
    get tokens(): { accessToken: string | undefined; refreshToken: string | undefined } {
      const t = credentials.cached;
      return { accessToken: t?.access_token, refreshToken: t?.refresh_token };
    },
  };
}

/** The client `createClient` returns. */
export type AgentdeskClient = ReturnType<typeof createClient>;
