// Credentials, where tokens live (`TokenStore`), the auth middleware, and the token refresh:
// single-flight per client and serialised across tabs (Web Locks), re-reading the shared store
// once the lock is held so a second tab uses the pair the first one already rotated.
import createFetchClient, { type Middleware } from "openapi-fetch";
import type { components, paths } from "./generated/v1.js";
import type { FetchLike } from "./http.js";

/** A token pair as `auth.login`, `auth.refresh` and `auth.oidcExchange` return it. */
export type TokenOut = components["schemas"]["TokenOut"];

/** What a {@link TokenStore} keeps: the access token and, when there is one, the refresh token. */
export interface TokenPair {
  /** The JWT sent as `Authorization: Bearer …`. */
  access_token: string;
  /** The opaque refresh token `auth.refresh` rotates; absent when the pair cannot be refreshed. */
  refresh_token?: string | undefined;
}

/** Called after this client rotated the tokens (not when another tab did); `tokens` is the new pair. */
export type OnTokenRefresh = (tokens: TokenOut) => void | Promise<void>;

/**
 * Where a client keeps its tokens. The client reads it before every request and after taking
 * the refresh lock, and writes it after a login, a refresh or a logout, so clients in several
 * tabs (or workers) that share one store (e.g. {@link storageTokenStore} over `localStorage`)
 * share one token family. Synchronous or asynchronous.
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

/** Where the auth middleware and the SSE helper get credentials from. */
export class Credentials {
  readonly apiKey: string | undefined;
  #cached: TokenPair | undefined;
  #inflight: Promise<boolean> | undefined;
  readonly #store: TokenStore;
  readonly #lock: RefreshLock;
  readonly #refreshClient;
  readonly #onTokenRefresh: OnTokenRefresh | undefined;

  constructor(init: {
    baseUrl: string;
    fetch: FetchLike;
    store: TokenStore;
    apiKey?: string | undefined;
    refreshLock?: RefreshLock | undefined;
    onTokenRefresh?: OnTokenRefresh | undefined;
  }) {
    this.apiKey = init.apiKey;
    this.#store = init.store;
    this.#lock = init.refreshLock ?? defaultRefreshLock;
    this.#onTokenRefresh = init.onTokenRefresh;
    // No middleware and no retries on this one: a refresh never triggers another refresh, and
    // a refresh sent twice spends its token twice (the server then revokes the family).
    this.#refreshClient = createFetchClient<paths>({ baseUrl: init.baseUrl, fetch: init.fetch });
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

  /**
   * After a 401 for a request sent with `usedToken`: true when a newer access token is now in
   * the store (rotated by this call, by a concurrent call of this client, or by another tab),
   * false when there is none and none could be had. Concurrent callers of this client share one
   * attempt; attempts of clients sharing the store are serialised by the refresh lock, and
   * whoever gets the lock re-reads the store first. Network failures reject.
   */
  refreshAfter(usedToken: string | undefined): Promise<boolean> {
    if (!this.mayRefresh) return Promise.resolve(false);
    this.#inflight ??= this.#lock(this.#store.lockName ?? DEFAULT_LOCK_NAME, () => this.#refreshLocked(usedToken)).finally(() => {
      this.#inflight = undefined;
    });
    return this.#inflight;
  }

  async #refreshLocked(usedToken: string | undefined): Promise<boolean> {
    const now = await this.current();
    if (now && now.access_token !== usedToken) return true; // someone else rotated: use theirs
    const refreshToken = now?.refresh_token;
    if (refreshToken === undefined) return false;
    const { data, response } = await this.#refreshClient.POST("/v1/auth/refresh", {
      body: { refresh_token: refreshToken },
    });
    if (!data) {
      // A refused refresh token is dead (spent, expired or revoked): stop presenting it.
      if (response.status === 401) {
        const latest = await this.current();
        if (latest?.refresh_token === refreshToken) await this.write({ access_token: latest.access_token });
      }
      return false;
    }
    await this.write(data);
    await this.#onTokenRefresh?.(data);
    return true;
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
