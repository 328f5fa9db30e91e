// RFC 9457 problems as values: every error body of the API is an `application/problem+json`
// `Problem` (see the spec); helpers here never throw for an HTTP error.
import type { components } from "./generated/v1.js";

/** The API's error body (RFC 9457), exactly as the spec declares it. */
export type Problem = components["schemas"]["Problem"];
/** One invalid field of a `validation_failed` problem. */
export type ProblemFieldError = components["schemas"]["ProblemFieldError"];

/**
 * The stable `code`s the API documents (switch on `problem.code`). Open-ended: a newer
 * server may send codes this list does not know yet. `unexpected_response` is made up by
 * this client for an error response whose body is not a problem (e.g. a proxy's HTML page).
 */
export type ProblemCode =
  | "malformed_json"
  | "invalid_parameter"
  | "invalid_state"
  | "invalid_grant"
  | "invalid_token"
  | "invalid_credentials"
  | "invalid_refresh_token"
  | "invalid_verification_token"
  | "permission_denied"
  | "capability_denied"
  | "registration_closed"
  | "owner_required"
  | "user_token_required"
  | "invitation_email_mismatch"
  | "email_not_verified"
  | "not_found"
  | "email_taken"
  | "email_already_verified"
  | "last_owner"
  | "already_member"
  | "agent_name_taken"
  | "role_name_taken"
  | "role_limit_reached"
  | "role_read_only"
  | "role_in_use"
  | "invalid_transition"
  | "session_not_live"
  | "session_not_running"
  | "org_has_live_sessions"
  | "agent_has_live_sessions"
  | "command_not_dispatched"
  | "job_not_dead"
  | "idempotency_key_in_use"
  | "idempotency_key_reused"
  | "invitation_used"
  | "invitation_revoked"
  | "invitation_expired"
  | "precondition_failed"
  | "precondition_required"
  | "payload_too_large"
  | "unsupported_media_type"
  | "validation_failed"
  | "rate_limited"
  | "login_throttled"
  | "session_limit_reached"
  | "quota_exceeded"
  | "internal_error"
  | "request_timeout"
  | "unavailable"
  | "idp_unavailable"
  | "blob_store_unavailable"
  | "unexpected_response"
  | (string & {});

/** Whether `value` has the shape of a `Problem` (`type`, `title`, `status`, `detail`, `code`). */
export function isProblem(value: unknown): value is Problem {
  if (typeof value !== "object" || value === null) return false;
  const v = value as Record<string, unknown>;
  return (
    typeof v.type === "string" &&
    typeof v.title === "string" &&
    typeof v.status === "number" &&
    typeof v.detail === "string" &&
    typeof v.code === "string"
  );
}

/**
 * The `Problem` for an error response: its body when it is one, otherwise a synthesized
 * problem with `code: "unexpected_response"` carrying the status and whatever text came back.
 */
export function toProblem(body: unknown, response: Response): Problem {
  if (isProblem(body)) return body;
  const detail =
    typeof body === "string" && body.length > 0
      ? body.slice(0, 2000)
      : `HTTP ${response.status} without a problem body`;
  const url = safePath(response.url);
  const requestId = response.headers.get("x-request-id");
  return {
    type: "about:blank",
    title: response.statusText || `HTTP ${response.status}`,
    status: response.status,
    detail,
    code: "unexpected_response",
    ...(url ? { instance: url } : {}),
    ...(requestId ? { request_id: requestId } : {}),
  };
}

function safePath(url: string): string | undefined {
  try {
    return url ? new URL(url).pathname : undefined;
  } catch {
    return undefined;
  }
}

/**
 * What every helper resolves to: `data` on success, a `Problem` in `error` otherwise
 * (HTTP errors are values; only network failures and aborts reject). `response` is the
 * raw `Response` (headers such as `ETag`, `Location`, `Retry-After`).
 */
export type Result<T> =
  | { data: T; error?: undefined; response: Response }
  | { data?: undefined; error: Problem; response: Response };
