// What an agent runner needs on top of the per-operation helpers, all driven by the session's
// event stream (no polling): wait until a session reaches a status, start one and wait until
// its desktop runs, run a command and get its typed outcome, take a screenshot as PNG bytes.
// Every failure is a `Problem` value, like the rest of the client.
import { type SessionEvent, type SessionStatus, canReach, isCommandResult } from "./events.js";
import type { components } from "./generated/v1.js";
import { AgentdeskError, type Problem, type Result, clientProblem } from "./problem.js";
import type { CommandIn, CommandOut, Loose } from "./types.js";
import type { CallOptions, IdempotentCallOptions } from "./options.js";

type S = components["schemas"];

/** Options of `sessions.waitFor`. */
export interface WaitForOptions extends CallOptions {
  /** Give up after this long (ms, default 60 000): resolves with a `timeout` problem. */
  timeoutMs?: number | undefined;
}

/** Options of `sessions.createAndWait`: `sessions.create`'s, and how long to wait for `running`. */
export interface CreateAndWaitOptions extends IdempotentCallOptions {
  /** Give up waiting after this long (ms, default 60 000): resolves with a `timeout` problem (the session may still start). */
  timeoutMs?: number | undefined;
}

/** Options of `commands.run`. */
export interface RunOptions extends IdempotentCallOptions {
  /** Give up waiting after this long (ms, default 120 000): resolves with a `timeout` problem (the command may still finish). */
  timeoutMs?: number | undefined;
}

/** Options of `screenshot`. */
export interface ScreenshotOptions extends RunOptions {
  /** Downscale so the image is at most this wide (pixels; aspect kept, never up). */
  maxWidth?: number | undefined;
  /** Downscale so the image is at most this high (pixels). */
  maxHeight?: number | undefined;
}

/** A screenshot: the PNG bytes and what the server said of them. */
export interface Screenshot {
  /** The PNG file. */
  png: Uint8Array;
  /** Image width (pixels). */
  width: number;
  /** Image height (pixels). */
  height: number;
  /** Image size ÷ desktop size (1 unless downscaled). */
  scale: number;
  /** The stored artifact (`artifacts.get`). */
  artifactId: string;
  /** The command that took it. */
  command: CommandOut<"screenshot">;
}

/** The operations the helpers are built on (a subset of the client). */
export interface LifecycleDeps {
  sessionsCreate(orgId: string, body: Loose<S["SessionIn"]>, opts?: IdempotentCallOptions): Promise<Result<S["SessionOut"]>>;
  sessionsGet(orgId: string, sessionId: string, opts?: CallOptions): Promise<Result<S["SessionOut"]>>;
  commandsCreate(orgId: string, sessionId: string, body: Loose<CommandIn>, opts?: IdempotentCallOptions): Promise<Result<CommandOut>>;
  commandsGet(orgId: string, sessionId: string, commandId: string, opts?: CallOptions): Promise<Result<CommandOut>>;
  artifactBytes(orgId: string, sessionId: string, artifactId: string, opts?: CallOptions): Promise<Result<Uint8Array>>;
  iterate(orgId: string, sessionId: string, opts: { afterSeq: number; signal: AbortSignal }): AsyncIterable<SessionEvent>;
}

/** Aborts with the caller's signal or after `timeoutMs`; `timedOut()` says which. */
function deadline(timeoutMs: number, signal: AbortSignal | undefined) {
  const controller = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort(new DOMException(`timed out after ${timeoutMs} ms`, "TimeoutError"));
  }, timeoutMs);
  const onAbort = () => controller.abort(signal?.reason);
  if (signal?.aborted) onAbort();
  else signal?.addEventListener("abort", onAbort, { once: true });
  return {
    signal: controller.signal,
    timedOut: () => timedOut,
    done: () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
    },
  };
}

/** The call options of a helper, for the requests it makes, with `signal` replaced. */
function callOpts(opts: CallOptions, signal: AbortSignal): CallOptions {
  return { signal, headers: opts.headers, maxRetries: opts.maxRetries };
}

/** A problem with no response of its own carries the last one seen, else `Response.error()` (status 0). */
const orNone = (response: Response | undefined): Response => response ?? Response.error();

/** Builds the helpers over `deps` (see `createClient`). */
export function lifecycleHelpers(deps: LifecycleDeps) {
  /** Runs `body` under a deadline, turning a timeout into a `timeout` problem and a thrown problem into a value. */
  async function bounded<T>(
    timeoutMs: number,
    opts: CallOptions,
    what: () => string,
    body: (signal: AbortSignal, seen: (r: Response) => void) => Promise<Result<T>>,
  ): Promise<Result<T>> {
    const d = deadline(timeoutMs, opts.signal);
    let last: Response | undefined;
    try {
      return await body(d.signal, (r) => {
        last = r;
      });
    } catch (error) {
      if (d.timedOut()) {
        return { error: clientProblem("timeout", "Timed out", `${what()} after ${timeoutMs} ms`), response: orNone(last) };
      }
      if (error instanceof AgentdeskError) return { error: error.problem, response: error.response ?? orNone(last) };
      throw error;
    } finally {
      d.done();
    }
  }

  function unreachable(session: S["SessionOut"], awaited: SessionStatus): Problem {
    const why = session.status_reason ? `: ${session.status_reason}` : "";
    return clientProblem(
      "status_unreachable",
      "The session cannot reach that status",
      `the session is \`${session.status}\`${why}; it can no longer become \`${awaited}\``,
      { current_status: session.status },
    );
  }

  /**
   * Waits until the session is in `status` and resolves with it (read right after it got
   * there: it may have moved on since). Resolves at once when it already is. Driven by the
   * session's event stream from its current `last_seq` (no polling). When the session reaches
   * a status from which `status` can no longer follow (e.g. `failed`, or `stopped` while
   * waiting for `running`): `code: "status_unreachable"` with `current_status` and the
   * session's `status_reason` in `detail`; nothing within `timeoutMs` (default 60 000):
   * `code: "timeout"`. Aborting `signal` rejects with its reason.
   */
  function waitFor(orgId: string, sessionId: string, status: SessionStatus, opts: WaitForOptions = {}): Promise<Result<S["SessionOut"]>> {
    let current: SessionStatus | undefined;
    return bounded(
      opts.timeoutMs ?? 60_000,
      opts,
      () => `the session was still \`${current ?? "unknown"}\`, not \`${status}\`,`,
      async (signal, seen) => {
        const get = async () => {
          const got = await deps.sessionsGet(orgId, sessionId, callOpts(opts, signal));
          seen(got.response);
          if (got.data) current = got.data.status;
          return got;
        };
        let reached = false;
        for (;;) {
          const got = await get();
          if (got.error) return got;
          // Once the log showed the status, the session as read now is the answer (it may have moved on).
          if (reached || got.data.status === status) return got;
          if (!canReach(got.data.status, status)) return { error: unreachable(got.data, status), response: got.response };
          for await (const event of deps.iterate(orgId, sessionId, { afterSeq: got.data.last_seq, signal })) {
            if (event.kind !== "status") continue;
            current = event.payload.status;
            reached = current === status;
            if (reached || !canReach(current, status)) break;
          }
          // Reached, unreachable, or the stream ended: the next read decides.
        }
      },
    );
  }

  /**
   * `sessions.create`, then {@link waitFor} `running`: resolves with the running session. A
   * refused create resolves with its problem (e.g. 429 `session_limit_reached`); a session
   * that fails or is stopped first with `code: "status_unreachable"`; no `running` within
   * `timeoutMs` with `code: "timeout"`.
   */
  async function createAndWait(orgId: string, body: Loose<S["SessionIn"]>, opts: CreateAndWaitOptions = {}): Promise<Result<S["SessionOut"]>> {
    const started = Date.now();
    const created = await deps.sessionsCreate(orgId, body, opts);
    if (created.error) return created;
    const timeoutMs = Math.max(0, (opts.timeoutMs ?? 60_000) - (Date.now() - started));
    return waitFor(orgId, created.data.id, "running", { signal: opts.signal, headers: opts.headers, maxRetries: opts.maxRetries, timeoutMs });
  }

  /**
   * `commands.create`, then waits on the event stream for its `result` event and resolves with
   * the finished command, typed by its kind (`result` is the outcome of that kind, e.g.
   * `stdout` for `shell`). A refused create resolves with its problem (e.g. 403
   * `capability_denied`); a command that ends `failed`, `cancelled` or `expired` with
   * `code: "command_failed"` (`detail`: `<error_code>: <error>`); nothing within `timeoutMs`
   * (default 120 000) with `code: "timeout"` (the command may still finish).
   */
  function run<C extends Loose<CommandIn>>(orgId: string, sessionId: string, command: C, opts: RunOptions = {}): Promise<Result<CommandOut<C["kind"]>>> {
    let state = "queued";
    return bounded(
      opts.timeoutMs ?? 120_000,
      opts,
      () => `the command was still \`${state}\``,
      async (signal, seen) => {
        const before = await deps.sessionsGet(orgId, sessionId, callOpts(opts, signal));
        seen(before.response);
        if (before.error) return before;
        const created = await deps.commandsCreate(orgId, sessionId, command, { ...opts, signal });
        seen(created.response);
        if (created.error) return created;
        const id = created.data.id;
        for await (const event of deps.iterate(orgId, sessionId, { afterSeq: before.data.last_seq, signal })) {
          if (isCommandResult(event) && event.payload.command_id === id) break;
        }
        const finished = await deps.commandsGet(orgId, sessionId, id, callOpts(opts, signal));
        if (finished.error) return finished;
        const c = finished.data;
        state = c.status;
        if (c.status === "succeeded") return { data: c as CommandOut<C["kind"]>, response: finished.response };
        const detail =
          c.status === "queued" || c.status === "dispatched"
            ? `the session ended while the command was \`${c.status}\``
            : c.error
              ? `${c.error_code ?? c.status}: ${c.error}`
              : `the command is \`${c.status}\``;
        return { error: clientProblem("command_failed", "The command failed", detail), response: finished.response };
      },
    );
  }

  /** Runs a `screenshot` command and fetches its PNG (`artifacts.get`). */
  async function screenshot(orgId: string, sessionId: string, opts: ScreenshotOptions = {}): Promise<Result<Screenshot>> {
    const { maxWidth, maxHeight, ...runOpts } = opts;
    const ran = await run(orgId, sessionId, { kind: "screenshot", args: { max_width: maxWidth, max_height: maxHeight } }, runOpts);
    if (ran.error) return ran;
    const out = ran.data.result;
    if (!out) {
      return {
        error: clientProblem("unexpected_response", "No screenshot", "the command finished without a screenshot result (an external executor?)"),
        response: ran.response,
      };
    }
    const bytes = await deps.artifactBytes(orgId, sessionId, out.artifact_id, { signal: opts.signal, headers: opts.headers, maxRetries: opts.maxRetries });
    if (bytes.error) return bytes;
    return {
      data: { png: bytes.data, width: out.width, height: out.height, scale: out.scale, artifactId: out.artifact_id, command: ran.data },
      response: bytes.response,
    };
  }

  return { waitFor, createAndWait, run, screenshot };
}
