// RFC 9457 problems as values: every error body of the API is an `application/problem+json`
// `Problem` (see the spec); the helpers never throw for an HTTP error. `unwrap` and
// `AgentdeskError` turn a problem into an exception for code that prefers one.
import type { components } from "./generated/v1.js";
import type { ProblemCurrentStatus } from "./types.js";

type S = components["schemas"];

/**
 * Every `code` the server can send, generated from the spec (`ProblemCode`): a closed union,
 * so a misspelt code in a `switch` or a comparison fails to compile. A server release that adds
 * a code adds it to the spec, and the SDK release built from that spec adds it here.
 */
export type ServerProblemCode = S["Problem"]["code"];

/**
 * Codes this client makes up itself (the problem's `status` is then the HTTP status that came
 * with it, or 0 when no response carried it):
 * - `unexpected_response`: an error response whose body is not a problem (e.g. a proxy's HTML
 *   502); `status` is the response's.
 * - `timeout`: a helper's `timeoutMs` (`sessions.waitFor`, `sessions.createAndWait`,
 *   `commands.run`, `screenshot`) passed first; `status: 0`.
 * - `status_unreachable`: `sessions.waitFor` / `createAndWait`: the session reached a status
 *   from which the awaited one can no longer follow (e.g. `failed` while waiting for
 *   `running`); `current_status` says which, `detail` has its `status_reason`; `status: 0`.
 * - `command_failed`: `commands.run` / `screenshot`: the command finished as `failed`,
 *   `cancelled` or `expired`; `detail` is `<error_code>: <error>` (or the status); `status: 0`.
 */
export type ClientProblemCode = "unexpected_response" | "timeout" | "status_unreachable" | "command_failed";

/** Every code a `Problem` from this client can carry: the server's, then the client's own. */
export type ProblemCode = ServerProblemCode | ClientProblemCode;

/**
 * The API's error body (RFC 9457) as the spec declares it, with `code` from {@link ProblemCode}
 * (switch on it): `type`, `title`, `status` (the HTTP status), `detail`, `instance`,
 * `request_id` (quote it to support), and per code `errors` (`validation_failed`),
 * `missing_permission` (`permission_denied`, `capability_denied`), `current_status`
 * (`invalid_transition`, `session_not_live`, `status_unreachable`), `error_id` (5xx),
 * `limit` / `limit_value` (`quota_exceeded`).
 */
export interface Problem extends Omit<S["Problem"], "code" | "current_status"> {
  /** Stable, snake_case, machine-readable: switch on this. */
  code: ProblemCode;
  /** On `invalid_transition`, `session_not_live` and `status_unreachable`: the session's status then. */
  current_status?: ProblemCurrentStatus;
}

/** One invalid field of a `validation_failed` problem: `field` (JSON field or parameter name) and `message`. */
export type ProblemFieldError = S["ProblemFieldError"];

/**
 * What every helper resolves to: `data` on success, a `Problem` in `error` otherwise (HTTP
 * errors are values; only network failures, once the retries are spent, and aborts reject).
 * `response` is the raw `Response` (headers such as `ETag`, `Location`, `Retry-After`).
 */
export type Result<T> =
  | { data: T; error?: undefined; response: Response }
  | { data?: undefined; error: Problem; response: Response };

/**
 * A `Result` on its way, with `.unwrap()`: `await client.orgs.get(id).unwrap()` resolves with
 * the data, or rejects with an {@link AgentdeskError} carrying the problem.
 */
export type ResultPromise<T> = Promise<Result<T>> & {
  /** The data, or a rejection with an {@link AgentdeskError} carrying the `Problem`. */
  unwrap(): Promise<T>;
};

const BRAND = Symbol.for("@agentdesk/client.AgentdeskError");

/**
 * A `Problem` thrown: by {@link unwrap} / `.unwrap()`, and by the async iterators
 * (`events.iterate`, `listAll`) when the server refuses a request. `instanceof` works across
 * the ESM and CommonJS builds of this package.
 */
export class AgentdeskError extends Error {
  /** The problem as the server sent it (or as this client made it up, see {@link ClientProblemCode}). */
  readonly problem: Problem;
  /** `problem.code`: switch on it. */
  readonly code: ProblemCode;
  /** `problem.status`: the HTTP status (0 for a client-made problem without a response). */
  readonly status: number;
  /** The request's `X-Request-Id` (quote it to support), when the server sent one. */
  readonly requestId: string | undefined;
  /** The response that carried the problem, when there was one. */
  readonly response: Response | undefined;

  /** Wraps `problem`; `message` is `<code>: <detail>`. */
  constructor(problem: Problem, response?: Response | undefined) {
    super(`${problem.code}: ${problem.detail}`);
    this.name = "AgentdeskError";
    this.problem = problem;
    this.code = problem.code;
    this.status = problem.status;
    this.requestId = problem.request_id ?? response?.headers.get("x-request-id") ?? undefined;
    this.response = response;
    Object.defineProperty(this, BRAND, { value: true });
  }

  /** True for any `AgentdeskError`, whichever build (ESM or CommonJS) of the SDK made it. */
  static override [Symbol.hasInstance](value: unknown): boolean {
    return typeof value === "object" && value !== null && (value as Record<symbol, unknown>)[BRAND] === true;
  }
}

/**
 * The data of a successful result; for a problem, throws an {@link AgentdeskError} carrying it.
 * `const org = unwrap(await client.orgs.get(id))`, or `await client.orgs.get(id).unwrap()`.
 */
export function unwrap<T>(result: Result<T>): T {
  if (result.error) throw new AgentdeskError(result.error, result.response);
  return result.data;
}

/** Adds `.unwrap()` to a pending result. */
export function pending<T>(promise: Promise<Result<T>>): ResultPromise<T> {
  return Object.assign(promise, { unwrap: () => promise.then(unwrap) });
}

/** Whether `value` has the shape of a `Problem` (`type`, `title`, `status`, `detail`, `code` with their types). */
export function isProblem(value: unknown): value is Problem {
  if (typeof value !== "object" || value === null) return false;
  const v = value as Record<string, unknown>;
  return (
    typeof v["type"] === "string" &&
    typeof v["title"] === "string" &&
    typeof v["status"] === "number" &&
    typeof v["detail"] === "string" &&
    typeof v["code"] === "string"
  );
}

/**
 * The `Problem` for an error response: its body when it is one, otherwise a problem made up
 * with `code: "unexpected_response"` carrying the status and the first 2000 characters of
 * whatever text came back.
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

/** A problem made up by this client (no server sent it); `status` 0 unless given. */
export function clientProblem(
  code: ClientProblemCode,
  title: string,
  detail: string,
  extra: Partial<Pick<Problem, "current_status" | "status">> = {},
): Problem {
  return { type: `urn:agentdesk:problem:${code}`, title, status: 0, detail, code, ...extra };
}

function safePath(url: string): string | undefined {
  try {
    return url ? new URL(url).pathname : undefined;
  } catch {
    return undefined;
  }
}
