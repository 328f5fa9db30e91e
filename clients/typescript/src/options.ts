// Per-call options every helper takes last.

/** Per-call options every helper accepts last. */
export interface CallOptions {
  /** Aborts the request, and any retry wait (the promise rejects with the signal's reason). */
  signal?: AbortSignal | undefined;
  /** Extra headers for this call (e.g. `X-Request-Id`). */
  headers?: Record<string, string> | undefined;
  /**
   * Retries of this call after a network error, 429, 502, 503 or 504 (default: the client's
   * `maxRetries`, 2 unless set); only requests that are safe to repeat are ever retried (a
   * `DELETE` or a request with `If-Match` only after 429 and 503: see `isRetryable`).
   */
  maxRetries?: number | undefined;
}

/** Per-call options of the operations that honour `Idempotency-Key` (`agents.create`, `sessions.create`, `sessions.stop`, `events.append`, `commands.create`). */
export interface IdempotentCallOptions extends CallOptions {
  /**
   * The request's `Idempotency-Key` (1–255 visible ASCII characters). Default: a new random
   * UUID per call, the same for the SDK's own retries of it. Pass your own to make retries of
   * your own safe too (the same key and body replay the first response for 24 h, with
   * `Idempotent-Replayed: true`).
   */
  idempotencyKey?: string | undefined;
}

/** Per-call options of `orgs.update`. */
export interface IfMatchCallOptions extends CallOptions {
  /** The `ETag` last read (`"<version>"`); a concurrent change → 412 `precondition_failed`. */
  ifMatch?: string | undefined;
}

/** Per-call options of `agents.update` and `roles.update`, which require `If-Match`. */
export interface RequiredIfMatchCallOptions extends CallOptions {
  /** The `ETag` last read (`"<version>"`); a concurrent change → 412 `precondition_failed`. */
  ifMatch: string;
}
