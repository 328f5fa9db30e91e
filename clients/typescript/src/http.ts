// The transport under every helper: automatic retries (network errors, 429, 502/503/504, and
// 409 `idempotency_key_in_use`) for requests that are safe to repeat, honouring `Retry-After`,
// with bounded, jittered backoff otherwise; and the `Idempotency-Key`s that make a POST safe.

/** A `fetch` as the client calls it: one `Request` in, one `Response` out. */
export type FetchLike = (input: Request) => Promise<Response>;

/** First backoff delay (ms) when the server gave no `Retry-After`; doubled per retry. */
export const RETRY_INITIAL_DELAY_MS = 500;
/** Longest backoff delay (ms) when the server gave no `Retry-After`. */
export const RETRY_MAX_DELAY_MS = 8_000;
/** Longest `Retry-After` (ms) the client waits out by itself; a longer one is the call's result. */
export const RETRY_AFTER_MAX_MS = 60_000;
/** `maxRetries` when neither the client nor the call sets one (as Stripe's SDK). */
export const DEFAULT_MAX_RETRIES = 2;
/** The longest delay `setTimeout` takes (2^31 − 1 ms, about 24.8 days); a longer one fires at once. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * The spec paths of the `POST` operations that honour `Idempotency-Key` (`agents.create`,
 * `sessions.create`, `sessions.stop`, `events.append`, `commands.create`): the server replays
 * the first answer for the same key and body, so these, sent with a key, are retried. Any other
 * `POST` is never retried, with or without the header (the server ignores it there).
 */
export const IDEMPOTENT_POST_PATHS = [
  "/v1/orgs/{org_id}/agents",
  "/v1/orgs/{org_id}/sessions",
  "/v1/orgs/{org_id}/sessions/{session_id}/stop",
  "/v1/orgs/{org_id}/sessions/{session_id}/events",
  "/v1/orgs/{org_id}/sessions/{session_id}/commands",
] as const;

const IDEMPOTENT_POST_URL = new RegExp(
  `(?:${IDEMPOTENT_POST_PATHS.map((p) => p.replace(/\{[^}]+\}/g, "[^/]+")).join("|")})$`,
);

const IDEMPOTENT_METHODS = new Set(["GET", "HEAD", "OPTIONS", "PUT", "DELETE"]);

/**
 * The statuses a request that is safe to repeat is retried after (and an event stream
 * reconnects after): 429, 502, 503, 504.
 */
export const RETRYABLE_STATUSES: ReadonlySet<number> = new Set([429, 502, 503, 504]);
/** The retryable statuses after which the server may still have acted (a gateway lost its reply). */
const AMBIGUOUS_STATUSES: ReadonlySet<number> = new Set([502, 504]);

/**
 * Whether a request may be sent again after a refused attempt (429, 503): idempotent methods
 * (`GET`, `HEAD`, `OPTIONS`, `PUT`, `DELETE`), and a `POST` to one of
 * {@link IDEMPOTENT_POST_PATHS} carrying an `Idempotency-Key`. Never another `POST` (an
 * `Idempotency-Key` there is ignored by the server: `orgs.create` or `auth.refresh` sent twice
 * would act twice), nor a `PATCH`. See {@link isRetryableAfterAmbiguousFailure} for a lost reply.
 */
export function isRetryable(request: Request): boolean {
  const method = request.method.toUpperCase();
  if (IDEMPOTENT_METHODS.has(method)) return true;
  return method === "POST" && request.headers.has("idempotency-key") && IDEMPOTENT_POST_URL.test(new URL(request.url).pathname);
}

/**
 * Whether a retryable request ({@link isRetryable}) may also be sent again after an ambiguous
 * failure, where the server may have acted on it: a network error, a 502 or a 504. Not a
 * `DELETE` (the repeat of a lost success would answer 404 `not_found`, or 401 after
 * `me.delete`), nor a request carrying `If-Match` (it would answer 412 `precondition_failed`
 * after a lost success): those are retried after 429 and 503 only, and an ambiguous failure is
 * the call's result (re-read to find out what happened).
 */
export function isRetryableAfterAmbiguousFailure(request: Request): boolean {
  return isRetryable(request) && request.method.toUpperCase() !== "DELETE" && !request.headers.has("if-match");
}

/**
 * The wait (ms) a `Retry-After` header asks for (delta-seconds or an HTTP date), or undefined
 * when absent or unreadable.
 */
export function retryAfterMs(response: Response, now = Date.now()): number | undefined {
  const value = response.headers.get("retry-after")?.trim();
  if (!value) return undefined;
  if (/^\d+$/.test(value)) return Number(value) * 1000;
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

/** The backoff before retry `attempt` (1-based): 0.5 s, 1 s, 2 s… up to 8 s, with full jitter on the upper half. */
export function backoffMs(attempt: number, random = Math.random): number {
  const ceiling = Math.min(RETRY_MAX_DELAY_MS, RETRY_INITIAL_DELAY_MS * 2 ** Math.max(0, attempt - 1));
  return ceiling / 2 + random() * (ceiling / 2);
}

/**
 * Wraps `fetch` with retries: a retryable request ({@link isRetryable}) is sent again, up to
 * `maxRetries` times, after a 429 or 503, a 409 `idempotency_key_in_use` (the first request
 * with that key is still running), and, unless it is a `DELETE` or carries `If-Match`
 * ({@link isRetryableAfterAmbiguousFailure}), after a network error (a rejected `fetch` that is
 * not an abort), a 502 or a 504. The wait is the response's `Retry-After` when it has one (a
 * wait longer than {@link RETRY_AFTER_MAX_MS} is not waited out: that response is the result),
 * else {@link backoffMs}. Aborting the request's signal ends the wait and rejects with its
 * reason. Once the retries are spent, the last response is the result, or the last network
 * error rejects.
 */
export function retryingFetch(fetchImpl: FetchLike, maxRetries: number): FetchLike {
  return async (request) => {
    if (maxRetries <= 0 || !isRetryable(request)) return fetchImpl(request);
    const afterAmbiguous = isRetryableAfterAmbiguousFailure(request);
    for (let attempt = 0; ; attempt++) {
      const last = attempt >= maxRetries;
      let response: Response;
      try {
        response = await fetchImpl(last ? request : request.clone());
      } catch (error) {
        if (last || !afterAmbiguous || request.signal.aborted || isAbort(error)) throw error;
        await sleep(backoffMs(attempt + 1), request.signal);
        if (request.signal.aborted) throw request.signal.reason;
        continue;
      }
      if (last || !(await shouldRetry(request, response, afterAmbiguous))) return response;
      const asked = retryAfterMs(response);
      if (asked !== undefined && asked > RETRY_AFTER_MAX_MS) return response;
      await response.body?.cancel().catch(() => undefined);
      await sleep(asked ?? backoffMs(attempt + 1), request.signal);
      if (request.signal.aborted) throw request.signal.reason;
    }
  };
}

async function shouldRetry(request: Request, response: Response, afterAmbiguous: boolean): Promise<boolean> {
  if (RETRYABLE_STATUSES.has(response.status)) return afterAmbiguous || !AMBIGUOUS_STATUSES.has(response.status);
  if (response.status !== 409 || !request.headers.has("idempotency-key")) return false;
  try {
    const body: unknown = await response.clone().json();
    return typeof body === "object" && body !== null && (body as { code?: unknown }).code === "idempotency_key_in_use";
  } catch {
    return false;
  }
}

function isAbort(error: unknown): boolean {
  return error instanceof Error && (error.name === "AbortError" || error.name === "TimeoutError");
}

/**
 * A new `Idempotency-Key`: a random UUID (v4). Uses `crypto.randomUUID` where the platform
 * has it and `crypto.getRandomValues` otherwise (a browser page served over plain http has
 * only the latter).
 */
export function newIdempotencyKey(): string {
  const c = globalThis.crypto;
  if (typeof c?.randomUUID === "function") return c.randomUUID();
  const b = c.getRandomValues(new Uint8Array(16));
  b[6] = ((b[6] ?? 0) & 0x0f) | 0x40;
  b[8] = ((b[8] ?? 0) & 0x3f) | 0x80;
  const hex = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/**
 * Resolves after `ms` milliseconds, or at once when `signal` aborts (it never rejects: check
 * `signal.aborted` afterwards). `Infinity` waits for the signal only; a finite wait longer than
 * {@link MAX_TIMER_MS} is cut to it. Used by the helpers' backoffs; exported for apps (the console).
 */
export function sleep(ms: number, signal?: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    if (ms <= 0 || signal?.aborted) return resolve();
    const timer = ms === Infinity ? undefined : setTimeout(done, Math.min(ms, MAX_TIMER_MS));
    signal?.addEventListener("abort", done, { once: true });
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
  });
}
