// Credentials, the auth middleware and the single-flight token refresh.
import createFetchClient, { type Middleware } from "openapi-fetch";
import type { components, paths } from "./generated/v1.js";

/** A token pair as `auth.login` and `auth.refresh` return it. */
export type TokenOut = components["schemas"]["TokenOut"];

/** Called after the client rotated its tokens; persist them if you keep sessions across restarts. */
export type OnTokenRefresh = (tokens: TokenOut) => void | Promise<void>;

/** Where the auth middleware and the SSE helper get credentials from. */
export class Credentials {
  accessToken: string | undefined;
  refreshToken: string | undefined;
  apiKey: string | undefined;
  #inflight: Promise<boolean> | undefined;
  readonly #refreshClient;
  readonly #onTokenRefresh: OnTokenRefresh | undefined;

  constructor(init: {
    baseUrl: string;
    fetch: (input: Request) => Promise<Response>;
    accessToken?: string | undefined;
    refreshToken?: string | undefined;
    apiKey?: string | undefined;
    onTokenRefresh?: OnTokenRefresh | undefined;
  }) {
    this.accessToken = init.accessToken;
    this.refreshToken = init.refreshToken;
    this.apiKey = init.apiKey;
    this.#onTokenRefresh = init.onTokenRefresh;
    // No middleware on this one: a refresh never triggers another refresh.
    this.#refreshClient = createFetchClient<paths>({ baseUrl: init.baseUrl, fetch: init.fetch });
  }

  /** Sets the headers for the current credentials on `headers`. */
  apply(headers: Headers): void {
    if (this.accessToken) headers.set("Authorization", `Bearer ${this.accessToken}`);
    else if (this.apiKey) headers.set("X-API-Key", this.apiKey);
  }

  /** Whether a 401 can be answered by rotating the refresh token. */
  get canRefresh(): boolean {
    return this.refreshToken !== undefined && this.apiKey === undefined;
  }

  /**
   * After a 401 for a request sent with `usedToken`: true when a newer access token is now
   * in place (rotated by this call or by a concurrent one), false when it could not be.
   * Concurrent callers share one `auth.refresh` call, since presenting a spent refresh token
   * revokes its whole family. Network failures reject.
   */
  async refreshAfter(usedToken: string | undefined): Promise<boolean> {
    if (this.#inflight) return this.#inflight;
    if (this.accessToken !== undefined && this.accessToken !== usedToken) return true;
    if (!this.canRefresh) return false;
    this.#inflight = this.#refresh().finally(() => {
      this.#inflight = undefined;
    });
    return this.#inflight;
  }

  async #refresh(): Promise<boolean> {
    const refreshToken = this.refreshToken;
    if (refreshToken === undefined) return false;
    const { data, response } = await this.#refreshClient.POST("/v1/auth/refresh", {
      body: { refresh_token: refreshToken },
    });
    if (!data) {
      // A refused refresh token is dead (spent, expired or revoked): stop presenting it.
      if (response.status === 401 && this.refreshToken === refreshToken) this.refreshToken = undefined;
      return false;
    }
    this.setTokens(data);
    await this.#onTokenRefresh?.(data);
    return true;
  }

  setTokens(tokens: { access_token: string; refresh_token?: string | undefined }): void {
    this.accessToken = tokens.access_token;
    if (tokens.refresh_token !== undefined) this.refreshToken = tokens.refresh_token;
  }

  clearTokens(): void {
    this.accessToken = undefined;
    this.refreshToken = undefined;
  }
}

/**
 * openapi-fetch middleware: puts `Authorization: Bearer …` (or `X-API-Key`) on each request;
 * on a 401 from anything but `/v1/auth/*` it rotates the refresh token once (shared by
 * concurrent calls) and replays the request once with the new access token. A second 401, or
 * a refused refresh, leaves the 401 problem as the call's result.
 */
export function authMiddleware(credentials: Credentials): Middleware {
  const replayable = new Map<string, { request: Request; token: string | undefined }>();
  return {
    onRequest({ request, schemaPath, id }) {
      credentials.apply(request.headers);
      if (credentials.canRefresh && !schemaPath.startsWith("/v1/auth/")) {
        replayable.set(id, { request: request.clone(), token: credentials.accessToken });
      }
      return request;
    },
    async onResponse({ response, id, options }) {
      const pending = replayable.get(id);
      replayable.delete(id);
      if (!pending || response.status !== 401) return undefined;
      if (!(await credentials.refreshAfter(pending.token))) return undefined;
      await response.body?.cancel().catch(() => undefined);
      credentials.apply(pending.request.headers);
      return options.fetch(pending.request);
    },
    onError({ id }) {
      replayable.delete(id);
      return undefined;
    },
  };
}
