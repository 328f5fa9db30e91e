// The options and result types of `createClient` and its event-stream helpers (the helpers
// themselves are in client.ts).
import type { OnLogout, OnTokenRefresh, RefreshLock, TokenStore } from "./auth.js";
import type { SessionEvent } from "./events.js";
import type { components } from "./generated/v1.js";
import type { FetchLike } from "./http.js";
import type { Problem } from "./problem.js";
import type { ReconnectOptions } from "./sse.js";
import type { Query } from "./types.js";

type S = components["schemas"];

/** Options of `createClient` that do not depend on how it authenticates. */
export interface BaseClientOptions {
  /**
   * The server's root URL, e.g. `https://agentdesk.example.com` (or a path prefix it is served
   * under): every path the client calls starts with `/v1`, so a `baseUrl` ending in `/v1` is
   * refused at once with a `TypeError` saying what to pass instead.
   */
  baseUrl: string;
  /**
   * Called after this client rotated the tokens, on a 401 or by `auth.refresh` (not when another
   * tab did); persist them if you keep them yourself. What it throws is reported with
   * `console.error`, never failing the call; see {@link OnTokenRefresh}.
   */
  onTokenRefresh?: OnTokenRefresh | undefined;
  /**
   * Called when the server refused this client's refresh token and the client forgot both
   * tokens (in its token store, so in every tab sharing it): show the login. See {@link OnLogout}.
   */
  onLogout?: OnLogout | undefined;
  /** A `fetch` to use instead of `globalThis.fetch` (tests, proxies, instrumentation). */
  fetch?: FetchLike | undefined;
  /** Headers sent with every request (e.g. `X-Request-Id`). */
  headers?: Record<string, string> | undefined;
  /**
   * How often a request that is safe to repeat is retried after a network error, 429, 502,
   * 503 or 504 (default 2; 0 turns retries off): `GET`, `PUT`, `DELETE`, and the `POST`s that
   * honour `Idempotency-Key`; a `DELETE` or a request with `If-Match` only after 429 and 503.
   * See the README's *Retries and idempotency*.
   */
  maxRetries?: number | undefined;
  /**
   * Serialises token refreshes between clients sharing a token store (default: the Web Locks
   * API where present, else within this process); see {@link RefreshLock}.
   */
  refreshLock?: RefreshLock | undefined;
}

/**
 * Options of `createClient`: the base options, and at most one way to authenticate: tokens
 * (`accessToken`, optionally with its `refreshToken`), a shared `tokenStore`, or an `apiKey`.
 * With none, log in with `client.auth.login` (or use the public operations).
 */
export type ClientOptions = BaseClientOptions &
  (
    | {
        /** The JWT access token from `auth.login`, sent as `Authorization: Bearer …`. */
        accessToken?: string | undefined;
        /** The refresh token: rotated on a 401, then the call is replayed once. */
        refreshToken?: string | undefined;
        tokenStore?: undefined;
        apiKey?: undefined;
      }
    | {
        /**
         * Where the tokens live, read before every request and written after a login, a
         * refresh or a logout. For several tabs sharing one login, use `indexedDbTokenStore()`
         * (consistent across tabs; `storageTokenStore(localStorage)` is not, and can get tabs
         * logged out: see `storageTokenStore`).
         */
        tokenStore: TokenStore;
        accessToken?: undefined;
        refreshToken?: undefined;
        apiKey?: undefined;
      }
    | {
        /** An API key `ad_<prefix>_<secret>` from `apiKeys.create`, sent as `X-API-Key` (org operations only); `undefined` means none. */
        apiKey: string | undefined;
        accessToken?: undefined;
        refreshToken?: undefined;
        tokenStore?: undefined;
      }
  );

/** Options of `events.stream`. */
export interface EventStreamOptions {
  /** Called for each event, in `seq` order, awaited before the next one. */
  onEvent: (event: SessionEvent) => void | Promise<void>;
  /** Start after this seq (default 0: the whole log). */
  afterSeq?: number | undefined;
  /** Stops the stream; the promise then resolves with `reason: "aborted"`. */
  signal?: AbortSignal | undefined;
  /** Reconnect policy after a dropped connection. */
  reconnect?: ReconnectOptions | undefined;
}

/** Options of `events.iterate`. */
export interface EventIterateOptions {
  /** Start after this seq (default 0: the whole log). */
  afterSeq?: number | undefined;
  /** Stops the iteration: the pending `next()` rejects with the signal's reason. */
  signal?: AbortSignal | undefined;
  /** Reconnect policy after a dropped connection. */
  reconnect?: ReconnectOptions | undefined;
}

/**
 * A session's events as an async iterator (`for await`), in `seq` order; it finishes after
 * the session's final `status` event, or when the server closed the stream twice in a row
 * without an event (the session may then still be live: re-read it). `lastSeq` is the last seq
 * delivered (resume from it).
 */
export interface EventIterator extends AsyncIterableIterator<SessionEvent> {
  /** The seq of the last event delivered (the `afterSeq` given until one is). */
  readonly lastSeq: number;
}

/**
 * How `events.stream` finished: `final` (the session's final `status` event was delivered),
 * `ended` (the server closed the stream twice in a row without an event: usually nothing more
 * to send, but the session may be live, e.g. behind a proxy that cuts long connections: re-read
 * it, and stream again from `lastSeq`), `aborted`, or `problem` with the `error` a
 * (re)connect was answered with. `lastSeq` is the last event delivered (resume from it).
 */
export type EventStreamEnd =
  | { reason: "final" | "ended" | "aborted"; lastSeq: number; error?: undefined }
  | { reason: "problem"; lastSeq: number; error: Problem };

/** Options of `events.streamOrg`. */
export interface OrgEventStreamOptions {
  /** Called for each session status change. */
  onEvent: (event: S["SessionStatusEvent"]) => void | Promise<void>;
  /** Called before each reconnect: the stream is live only, so re-read `sessions.list`. */
  onReconnect?: (() => void | Promise<void>) | undefined;
  /** Stops the stream; the promise then resolves with `reason: "aborted"`. */
  signal?: AbortSignal | undefined;
  /** Reconnect policy after a dropped connection. */
  reconnect?: ReconnectOptions | undefined;
}

/** How `events.streamOrg` finished: `ended`, `aborted`, or `problem` with the `error`. */
export type OrgEventStreamEnd = { reason: "ended" | "aborted"; error?: undefined } | { reason: "problem"; error: Problem };

/** A page of the session's log (`events.list`), typed per kind. */
export interface EventPage extends Omit<S["EventPage"], "items"> {
  /** Events with `seq > after_seq`, oldest first. */
  items: SessionEvent[];
}

/** Query of `events.listAll`: `events.list`'s without the cursor (`after_seq` is where to start). */
export type EventListAllQuery = Query<"events.list">;
