// Credentials, where tokens live (`TokenStore`), the auth middleware, and the token refresh:
// single-flight per client and serialised across tabs (Web Locks), re-reading the shared store
// once the lock is held so a second tab uses the pair the first one already rotated. Manual
// refreshes (`auth.refresh`) and logouts take the same lock.
import createFetchClient, { type Middleware } from "openapi-fetch";
import type { components, paths } from "./generated/v1.js";
import type { FetchLike } from "./http.js";
import { type Problem, type Result, toProblem } from "./problem.js";

/** A token pair as `auth.login`, `auth.refresh` and `auth.oidcExchange` return it. */
export type TokenOut = components["schemas"]["TokenOut"];

/** What a {@link TokenStore} keeps: the access token and, when there is one, the refresh token. */
export interface TokenPair {
  /** The JWT sent as `Authorization: Bearer …`. */
  access_token: string;
  /** The opaque refresh token `auth.refresh` rotates; absent when the pair cannot be refreshed. */
  refresh_token?: string | undefined;
}

/**
 * Called after this client rotated the tokens (on a 401 or by `auth.refresh`; not when another
 * tab did); `tokens` is the new pair, already in the token store. It runs after the refresh
 * lock is released, and is awaited before the calls waiting for the refresh go on; if it throws
 * (or rejects), the error is reported with `console.error` and the calls go on all the same.
 */
export type OnTokenRefresh = (tokens: TokenOut) => void | Promise<void>;

/** What {@link OnLogout} is told. */
export interface LogoutInfo {
  /**
   * Why the client forgot its tokens: `refresh_refused`, the server refused the stored refresh
   * token (401 `invalid_refresh_token`: spent, expired or revoked, e.g. by a logout elsewhere).
   */
  reason: "refresh_refused";
  /** The problem the refresh was answered with. */
  problem: Problem;
}

/**
 * Called when this client forgot both tokens by itself (cleared them in the token store, so
 * every tab sharing it is logged out) because the server refused its refresh token: log in
 * again. Not called for `auth.logout`, `me.logoutAll`, `me.delete` or a password change, whose
 * results say so, nor in the other tabs. Runs after the refresh lock is released; if it throws,
 * the error is reported with `console.error`.
 */
export type OnLogout = (info: LogoutInfo) => void | Promise<void>;

/**
 * Where a client keeps its tokens. The client reads it before every request and after taking
 * the refresh lock, and writes it after a login, a refresh or a logout, so clients in several
 * tabs (or workers) that share one store share one token family: {@link indexedDbTokenStore}
 * is the one for that (a store shared by tabs must be consistent across them, which
 * `localStorage` is not: see {@link storageTokenStore}). Synchronous or asynchronous.
 */
export interface TokenStore {
  /** The current pair, or `undefined` when logged out. */
  get(): TokenPair | undefined | Promise<TokenPair | undefined>;
  /** Replaces the pair; `undefined` forgets it (logout). */
  set(tokens: TokenPair | undefined): void | Promise<void>;
  /**
   * The name of the refresh lock (see {@link RefreshLock}): every client sharing this store
   * must use the same one, clients of different stores should not. Default
   * `"@agentdesk/client:refresh"`.
   */
  readonly lockName?: string | undefined;
}

/**
 * Runs `fn` while holding the exclusive lock `name`, one holder at a time. The default
 * ({@link defaultRefreshLock}) is the Web Locks API (`navigator.locks.request`), which
 * serialises across every tab and worker of an origin; where it is absent, an in-process
 * lock. Pass your own to serialise across processes (e.g. a file or database lock).
 */
export type RefreshLock = <T>(name: string, fn: () => Promise<T>) => Promise<T>;

type LockManagerLike = { request<T>(name: string, options: { mode: "exclusive" }, fn: () => Promise<T>): Promise<T> };

const localLocks = new Map<string, Promise<unknown>>();

/** An exclusive lock within this JavaScript realm only (the fallback where there is no `navigator.locks`). */
export const inProcessRefreshLock: RefreshLock = async <T>(name: string, fn: () => Promise<T>): Promise<T> => {
  const before = localLocks.get(name) ?? Promise.resolve();
  const run = before.then(fn, fn);
  const tail = run.catch(() => undefined);
  localLocks.set(name, tail);
  try {
    return await run;
  } finally {
    if (localLocks.get(name) === tail) localLocks.delete(name);
  }
};

/**
 * `navigator.locks.request(name, { mode: "exclusive" }, fn)` where the Web Locks API exists
 * (browsers in a secure context: https, or http on localhost / 127.0.0.1; Deno), else
 * {@link inProcessRefreshLock}. Without Web Locks, two tabs are not serialised: keep one tab
 * per store there, or pass a `refreshLock` of your own.
 */
export const defaultRefreshLock: RefreshLock = <T>(name: string, fn: () => Promise<T>): Promise<T> => {
  const locks = (globalThis as { navigator?: { locks?: LockManagerLike } }).navigator?.locks;
  if (locks && typeof locks.request === "function") return locks.request(name, { mode: "exclusive" }, fn);
  return inProcessRefreshLock(name, fn);
};

/** The default lock name of a store that names none. */
export const DEFAULT_LOCK_NAME = "@agentdesk/client:refresh";

let memoryStores = 0;

/**
 * A store in memory, for one client (the default: `createClient({ accessToken, refreshToken })`
 * puts them here). Not shared with anything.
 */
export function memoryTokenStore(initial?: TokenPair | undefined): TokenStore {
  let tokens = initial;
  return {
    get: () => tokens,
    set: (next) => {
      tokens = next;
    },
    lockName: `${DEFAULT_LOCK_NAME}:memory:${++memoryStores}`,
  };
}

/** The part of the Web Storage API (`localStorage`, `sessionStorage`) a {@link storageTokenStore} uses. */
export interface StorageLike {
  /** The value under `key`, or `null`. */
  getItem(key: string): string | null;
  /** Stores `value` under `key`. */
  setItem(key: string, value: string): void;
  /** Removes `key`. */
  removeItem(key: string): void;
}

/**
 * A store in Web Storage under `key` (default `"agentdesk.tokens"`), as JSON
 * `{ access_token, refresh_token }`: over `sessionStorage`, one login per tab. Over
 * `localStorage` the tabs of the origin see each other's logins and logouts, but do not use it
 * to share refreshes between tabs: Chromium propagates a `localStorage` write to the other tabs'
 * processes asynchronously, so a tab that takes the refresh lock right after another tab
 * released it can still read the spent pair, refresh it again, and trip the server's reuse
 * detection (seen in about one run in ten of contract-tests/sdk-projects/tabs.test.mjs). For
 * several tabs, use {@link indexedDbTokenStore}. A value that is not such JSON reads as logged out.
 */
export function storageTokenStore(storage: StorageLike, key = "agentdesk.tokens"): TokenStore {
  return {
    get: () => {
      try {
        const parsed: unknown = JSON.parse(storage.getItem(key) ?? "null");
        if (typeof parsed !== "object" || parsed === null) return undefined;
        const { access_token, refresh_token } = parsed as Record<string, unknown>;
        if (typeof access_token !== "string") return undefined;
        return typeof refresh_token === "string" ? { access_token, refresh_token } : { access_token };
      } catch {
        return undefined;
      }
    },
    set: (tokens) => {
      if (tokens === undefined) storage.removeItem(key);
      else storage.setItem(key, JSON.stringify({ access_token: tokens.access_token, refresh_token: tokens.refresh_token }));
    },
    lockName: `${DEFAULT_LOCK_NAME}:${key}`,
  };
}

/** Options of {@link indexedDbTokenStore}. */
export interface IndexedDbTokenStoreOptions {
  /** The database's name (default `"agentdesk"`); it gets one object store, `tokens`. */
  database?: string | undefined;
  /** The record's key in it (default `"tokens"`): one per login you keep apart. */
  key?: string | undefined;
  /** The `IDBFactory` to use instead of `globalThis.indexedDB` (tests, workers). */
  indexedDB?: IndexedDbFactoryLike | undefined;
}

/**
 * An `IDBFactory` (`globalThis.indexedDB` in browsers), declared structurally so that the
 * SDK's types compile in projects without the DOM library (Node).
 */
export interface IndexedDbFactoryLike {
  /** `IDBFactory.open`. */
  open(name: string, version?: number): unknown;
}

/**
 * A store in IndexedDB, shared by every tab and worker of the origin: the store for several
 * tabs. IndexedDB transactions are consistent across tabs (a write committed before one tab
 * releases the refresh lock is what the next holder reads), so exactly one tab refreshes per
 * rotation and the others use its pair; a login or logout in one tab is every tab's. The
 * refresh lock is named after the database and key. Every request reads the record (one
 * short read-only transaction); fails with the `IDBRequest` error if IndexedDB is unavailable
 * (e.g. some private modes).
 */
export function indexedDbTokenStore(options: IndexedDbTokenStoreOptions = {}): TokenStore {
  const database = options.database ?? "agentdesk";
  const key = options.key ?? "tokens";
  const OBJECTS = "tokens";
  let opening: Promise<IDBDatabase> | undefined;
  const open = (): Promise<IDBDatabase> =>
    (opening ??= new Promise<IDBDatabase>((resolve, reject) => {
      const factory = (options.indexedDB ?? globalThis.indexedDB) as IDBFactory | undefined;
      if (factory === undefined) {
        reject(new TypeError("indexedDbTokenStore: there is no indexedDB here; pass one as `indexedDB`, or use another store"));
        return;
      }
      const request = factory.open(database, 1);
      request.onupgradeneeded = () => void request.result.createObjectStore(OBJECTS);
      request.onsuccess = () => {
        const db = request.result;
        db.onversionchange = () => {
          db.close();
          opening = undefined;
        };
        resolve(db);
      };
      request.onerror = () => {
        opening = undefined;
        reject(request.error);
      };
    }));
  /** Runs one transaction; resolves with the request's result once the transaction completed (committed). */
  const transact = async (mode: IDBTransactionMode, act: (objects: IDBObjectStore) => IDBRequest): Promise<unknown> => {
    const db = await open();
    return new Promise((resolve, reject) => {
      const tx = db.transaction(OBJECTS, mode);
      const request = act(tx.objectStore(OBJECTS));
      tx.oncomplete = () => resolve(request.result);
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error);
    });
  };
  return {
    get: async () => {
      const value = await transact("readonly", (objects) => objects.get(key));
      if (typeof value !== "object" || value === null) return undefined;
      const { access_token, refresh_token } = value as Record<string, unknown>;
      if (typeof access_token !== "string") return undefined;
      return typeof refresh_token === "string" ? { access_token, refresh_token } : { access_token };
    },
    set: async (tokens) => {
      await transact("readwrite", (objects) =>
        tokens === undefined ? objects.delete(key) : objects.put({ access_token: tokens.access_token, refresh_token: tokens.refresh_token }, key),
      );
    },
    lockName: `${DEFAULT_LOCK_NAME}:indexeddb:${database}/${key}`,
  };
}

/** A refresh request that was sent: its result, and whether the refused token was cleared from the store. */
type Sent = { sent: true; result: Result<TokenOut>; loggedOut: boolean };
/** What one refresh attempt came to: {@link Sent}, or no request (`rotated`: the store already had a newer pair). */
type Attempt = Sent | { sent: false; rotated: boolean };

/** Where the auth middleware and the SSE helper get credentials from. */
export class Credentials {
  readonly apiKey: string | undefined;
  #cached: TokenPair | undefined;
  #inflight: Promise<Attempt> | undefined;
  readonly #store: TokenStore;
  readonly #lock: RefreshLock;
  readonly #refreshClient;
  readonly #onTokenRefresh: OnTokenRefresh | undefined;
  readonly #onLogout: OnLogout | undefined;

  constructor(init: {
    baseUrl: string;
    fetch: FetchLike;
    store: TokenStore;
    apiKey?: string | undefined;
    headers?: Record<string, string> | undefined;
    refreshLock?: RefreshLock | undefined;
    onTokenRefresh?: OnTokenRefresh | undefined;
    onLogout?: OnLogout | undefined;
  }) {
    this.apiKey = init.apiKey;
    this.#store = init.store;
    this.#lock = init.refreshLock ?? defaultRefreshLock;
    this.#onTokenRefresh = init.onTokenRefresh;
    this.#onLogout = init.onLogout;
    // No middleware and no retries on this one: a refresh never triggers another refresh, and
    // a refresh sent twice spends its token twice (the server then revokes the family). The
    // client's own headers (e.g. `X-Request-Id`) go with it.
    this.#refreshClient = createFetchClient<paths>({ baseUrl: init.baseUrl, fetch: init.fetch, ...(init.headers ? { headers: init.headers } : {}) });
    // A synchronous store fills `cached` at once; an asynchronous one when its first read lands
    // (a failed read surfaces on the first request instead).
    const first = init.store.get();
    if (first instanceof Promise) first.then((t) => void (this.#cached ??= t), () => undefined);
    else this.#cached = first;
  }

  /** The pair as this client last read or wrote it. */
  get cached(): TokenPair | undefined {
    return this.#cached;
  }

  /** Reads the store (and remembers what it read). */
  async current(): Promise<TokenPair | undefined> {
    this.#cached = await this.#store.get();
    return this.#cached;
  }

  /** Sets the headers for the current credentials on `headers`; returns the access token used. */
  async apply(headers: Headers): Promise<string | undefined> {
    if (this.apiKey !== undefined) {
      headers.set("X-API-Key", this.apiKey);
      return undefined;
    }
    const tokens = await this.current();
    if (tokens) headers.set("Authorization", `Bearer ${tokens.access_token}`);
    else headers.delete("Authorization");
    return tokens?.access_token;
  }

  /** Whether a 401 may be answered by a refresh (user tokens, not an API key). */
  get mayRefresh(): boolean {
    return this.apiKey === undefined;
  }

  get #lockName(): string {
    return this.#store.lockName ?? DEFAULT_LOCK_NAME;
  }

  /**
   * After a 401 for a request sent with `usedToken`: true when a newer access token is now in
   * the store (rotated by this call, by a concurrent call or `auth.refresh` of this client, or
   * by another tab), false when there is none and none could be had. Concurrent callers of this
   * client share one attempt; attempts of clients sharing the store are serialised by the
   * refresh lock, and whoever gets the lock re-reads the store first. Network failures reject.
   */
  async refreshAfter(usedToken: string | undefined): Promise<boolean> {
    if (!this.mayRefresh) return false;
    const attempt = await (this.#inflight ?? this.#fly(() => this.#refreshAfterLocked(usedToken), true));
    return attempt.sent ? attempt.result.data !== undefined : attempt.rotated;
  }

  /**
   * Rotates the refresh token now (`auth.refresh`) and stores the new pair, under the same lock
   * and single flight as {@link refreshAfter}: a refresh of this client already under way is
   * joined (its result is this one's), and the token presented is the one in the store once
   * the lock is held, so a concurrent refresh here or in another tab never makes this one
   * present a spent token. `refreshToken` rotates another token instead (not the stored one:
   * that one is always read under the lock); a refused one is cleared only if it is the
   * stored one. `headers` go with the request this call sends (not with one it joins).
   * Network failures reject.
   */
  async refreshNow(refreshToken?: string | undefined, headers?: Record<string, string> | undefined): Promise<Result<TokenOut>> {
    if (refreshToken !== undefined && refreshToken !== this.#cached?.refresh_token) {
      return (await this.#fly(() => this.#send(refreshToken, headers), false)).result;
    }
    // Join this client's refresh under way, if any; one that sent nothing (another tab had
    // rotated) is not a rotation: wait for it, then rotate.
    for (let flight = this.#inflight; flight !== undefined; flight = this.#inflight) {
      const attempt = await flight;
      if (attempt.sent) return attempt.result;
    }
    const attempt = await this.#fly(async () => this.#send((await this.current())?.refresh_token, headers), true);
    return attempt.result;
  }

  /**
   * `auth.logout` under the refresh lock: `send` revokes `refreshToken` (default: the stored
   * one, read under the lock, so no concurrent refresh rotates it under the logout), and a
   * success forgets the tokens if the revoked one is the stored one.
   */
  async logout<R extends { error?: unknown }>(refreshToken: string | undefined, send: (refreshToken: string) => Promise<R>): Promise<R> {
    return this.#lock(this.#lockName, async () => {
      const stored = (await this.current())?.refresh_token;
      const token = refreshToken ?? stored ?? "";
      const result = await send(token);
      if (!result.error && token === stored) await this.write(undefined);
      return result;
    });
  }

  /**
   * Runs one attempt under the lock, then (the lock released) tells `onTokenRefresh` or
   * `onLogout`; `shared`: the attempt is this client's flight, which later callers join until
   * the lock is released (not while the callbacks run: one that makes a call needing a refresh,
   * or calls `auth.refresh`, starts a new one instead of waiting for itself).
   */
  #fly<A extends Attempt>(run: () => Promise<A>, shared: boolean): Promise<A> {
    const locked = this.#lock(this.#lockName, run);
    const flight: Promise<A> = (async () => {
      const attempt = await locked.finally(() => {
        if (this.#inflight === flight) this.#inflight = undefined;
      });
      if (attempt.sent) await this.#notify(attempt);
      return attempt;
    })();
    if (shared) this.#inflight = flight;
    return flight;
  }

  /**
   * The refresh after a 401 for `usedToken`, lock held: nothing is sent when the store already
   * has another access token (someone rotated: use theirs) or no refresh token.
   */
  async #refreshAfterLocked(usedToken: string | undefined): Promise<Attempt> {
    const now = await this.current();
    if (now && now.access_token !== usedToken) return { sent: false, rotated: true };
    if (now?.refresh_token === undefined) return { sent: false, rotated: false };
    return this.#send(now.refresh_token, undefined);
  }

  /**
   * Presents `refreshToken` (lock held) and stores the new pair. A refused one (401) is dead
   * (spent, expired or revoked), and so is the login it belonged to: both tokens are forgotten,
   * unless the store moved on meanwhile (a new login). Without a token the server's answer to
   * an empty one is the result.
   */
  async #send(refreshToken: string | undefined, headers: Record<string, string> | undefined): Promise<Sent> {
    const { data, error, response } = await this.#refreshClient.POST("/v1/auth/refresh", {
      body: { refresh_token: refreshToken ?? "" },
      ...(headers ? { headers } : {}),
    });
    if (response.ok && data) {
      await this.write(data);
      return { sent: true, result: { data, response }, loggedOut: false };
    }
    let loggedOut = false;
    if (response.status === 401 && refreshToken !== undefined) {
      const latest = await this.current();
      if (latest?.refresh_token === refreshToken) {
        await this.write(undefined);
        loggedOut = true;
      }
    }
    return { sent: true, result: { error: toProblem(error, response), response }, loggedOut };
  }

  /** `onTokenRefresh` or `onLogout` for a sent attempt; what they throw is reported, never thrown. */
  async #notify(attempt: { result: Result<TokenOut>; loggedOut: boolean }): Promise<void> {
    const { data, error } = attempt.result;
    if (data) {
      try {
        await this.#onTokenRefresh?.(data);
      } catch (thrown) {
        console.error("@agentdesk/client: onTokenRefresh threw (the tokens were rotated and stored all the same):", thrown);
      }
    } else if (error && attempt.loggedOut) {
      try {
        await this.#onLogout?.({ reason: "refresh_refused", problem: error });
      } catch (thrown) {
        console.error("@agentdesk/client: onLogout threw:", thrown);
      }
    }
  }

  /** Writes a pair (or forgets it) in the store. */
  async write(tokens: TokenPair | undefined): Promise<void> {
    this.#cached = tokens === undefined ? undefined : { access_token: tokens.access_token, refresh_token: tokens.refresh_token };
    await this.#store.set(this.#cached);
  }

  /** Forgets both tokens. */
  clear(): Promise<void> {
    return this.write(undefined);
  }
}

/**
 * openapi-fetch middleware: puts `Authorization: Bearer …` (or `X-API-Key`) on each request;
 * on a 401 from anything but `/v1/auth/*` it refreshes (see {@link Credentials.refreshAfter})
 * and replays the request once with the new access token. A second 401, or a refused
 * refresh, leaves the 401 problem as the call's result.
 */
export function authMiddleware(credentials: Credentials): Middleware {
  const replayable = new Map<string, { request: Request; token: string | undefined }>();
  return {
    async onRequest({ request, schemaPath, id }) {
      const token = await credentials.apply(request.headers);
      if (credentials.mayRefresh && !schemaPath.startsWith("/v1/auth/")) {
        replayable.set(id, { request: request.clone(), token });
      }
      return request;
    },
    async onResponse({ response, id, options }) {
      const pending = replayable.get(id);
      replayable.delete(id);
      if (!pending || response.status !== 401) return undefined;
      if (!(await credentials.refreshAfter(pending.token))) return undefined;
      await response.body?.cancel().catch(() => undefined);
      await credentials.apply(pending.request.headers);
      return options.fetch(pending.request);
    },
    onError({ id }) {
      replayable.delete(id);
      return undefined;
    },
  };
}
