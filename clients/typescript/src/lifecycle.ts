// What an agent runner needs on top of the per-operation helpers, all driven by the session's
// event stream (no polling): wait until a session reaches a status, start one and wait until
// its desktop runs, run a command and get its typed outcome, take a screenshot as PNG bytes.
// Every failure is a `Problem` value, like the rest of the client.
import { type SessionEvent, type SessionStatus, canReach, isCommandResult, isFinalStatus } from "./events.js";
import type { components } from "./generated/v1.js";
import { MAX_TIMER_MS, sleep } from "./http.js";
import { AgentdeskError, type Problem, type Result, clientProblem } from "./problem.js";
import type { CommandIn, CommandOut, CommandStatusName, Loose } from "./types.js";
import type { CallOptions, IdempotentCallOptions } from "./options.js";

type S = components["schemas"];

/** Options of `sessions.waitFor`. */
export interface WaitForOptions extends CallOptions {
  /**
   * Give up after this long (ms, default 60 000): resolves with a `timeout` problem. `Infinity`
   * waits without a limit (until `signal` aborts); a longer finite wait than `MAX_TIMER_MS`
   * (about 24.8 days) is cut to it.
   */
  timeoutMs?: number | undefined;
}

/** Options of `sessions.createAndWait`: `sessions.create`'s, and how long to wait for `running`. */
export interface CreateAndWaitOptions extends IdempotentCallOptions {
  /**
   * Give up waiting after this long (ms, default 60 000): resolves with a `timeout` problem
   * (the session may still start). `Infinity`: no limit; at most `MAX_TIMER_MS` otherwise.
   */
  timeoutMs?: number | undefined;
}

/** Options of `commands.run`. */
export interface RunOptions extends IdempotentCallOptions {
  /**
   * Give up waiting after this long (ms, default 120 000): resolves with a `timeout` problem
   * (the command may still finish). `Infinity`: no limit; at most `MAX_TIMER_MS` otherwise.
   */
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

/** A delay for `setTimeout`: at least 0, at most {@link MAX_TIMER_MS} (a longer one would fire at once). */
const timerMs = (ms: number): number => Math.min(Math.max(0, ms), MAX_TIMER_MS);

/** Aborts with the caller's signal or after `timeoutMs` (never when `Infinity`); `timedOut()` says which. */
function deadline(timeoutMs: number, signal: AbortSignal | undefined) {
  const controller = new AbortController();
  let timedOut = false;
  const timer =
    timeoutMs === Infinity
      ? undefined
      : setTimeout(() => {
          timedOut = true;
          controller.abort(new DOMException(`timed out after ${timeoutMs} ms`, "TimeoutError"));
        }, timerMs(timeoutMs));
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

const FINAL_COMMAND_STATUSES: ReadonlySet<CommandStatusName> = new Set(["succeeded", "failed", "cancelled", "expired"]);

/** The wait (ms) before re-reading after `n` re-reads in a row that found nothing new: 1 s, 2 s, 4 s, then 5 s. */
const pollMs = (n: number): number => Math.min(1_000 * 2 ** n, 5_000);

/** Why {@link LifecycleDeps.iterate} stopped being watched: `stop` said so, the wake-up timer fired, or the stream ended. */
type Woke = { why: "event" | "timer" | "ended"; events: number };

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

  /**
   * Follows the session's events after `cursor.seq` (advanced past every event seen) until
   * `stop(event)` is true, `wakeMs` passed (when given), or the stream ends (the final status
   * event, or the server closed it twice in a row without an event: the session may still be
   * live, e.g. behind a proxy that cuts long connections). Aborting `signal` rejects.
   */
  async function watch(
    orgId: string,
    sessionId: string,
    cursor: { seq: number },
    wakeMs: number | undefined,
    signal: AbortSignal,
    stop: (event: SessionEvent) => boolean,
  ): Promise<Woke> {
    const round = new AbortController();
    const onAbort = () => round.abort(signal.reason);
    if (signal.aborted) onAbort();
    else signal.addEventListener("abort", onAbort, { once: true });
    const timer = wakeMs === undefined ? undefined : setTimeout(() => round.abort(new DOMException("wake up", "AbortError")), timerMs(wakeMs));
    let events = 0;
    try {
      for await (const event of deps.iterate(orgId, sessionId, { afterSeq: cursor.seq, signal: round.signal })) {
        cursor.seq = event.seq;
        events += 1;
        if (stop(event)) return { why: "event", events };
      }
      return { why: "ended", events };
    } catch (error) {
      if (round.signal.aborted && !signal.aborted) return { why: "timer", events };
      throw error;
    } finally {
      clearTimeout(timer);
      signal.removeEventListener("abort", onAbort);
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
   * session's event stream from its current `last_seq` (no polling); when the stream ends
   * without the answer, the session is read again (and followed again, after a pause if the
   * stream brought nothing). When the session reaches a status from which `status` can no
   * longer follow (e.g. `failed`, or `stopped` while waiting for `running`):
   * `code: "status_unreachable"` with `current_status` and the session's `status_reason` in
   * `detail`; nothing within `timeoutMs` (default 60 000): `code: "timeout"`. Aborting
   * `signal` rejects with its reason.
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
        let quiet = 0;
        for (;;) {
          const got = await get();
          if (got.error) return got;
          // Once the log showed the status, the session as read now is the answer (it may have moved on).
          if (reached || got.data.status === status) return got;
          if (!canReach(got.data.status, status)) return { error: unreachable(got.data, status), response: got.response };
          const woke = await watch(orgId, sessionId, { seq: got.data.last_seq }, undefined, signal, (event) => {
            if (event.kind !== "status") return false;
            current = event.payload.status;
            reached = current === status;
            return reached || !canReach(current, status);
          });
          // Reached, unreachable, or the stream ended: the next read decides. A stream that
          // ended without an event is not followed again at once.
          if (woke.why === "ended" && woke.events === 0) await sleep(pollMs(quiet++), signal);
          else quiet = 0;
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

  /** The outcome of a command in a final status: its data when it succeeded, else `command_failed`. */
  function outcome<K extends CommandOut["kind"]>(c: CommandOut, response: Response): Result<CommandOut<K>> {
    if (c.status === "succeeded") return { data: c as CommandOut<K>, response };
    const detail = c.error
      ? `${c.error_code ?? c.status}: ${c.error}`
      : c.status === "expired"
        ? `expired: no executor claimed the command by its expires_at (${c.expires_at})`
        : c.status === "cancelled"
          ? "cancelled: the session was stopping, stopped or failed before the command finished"
          : `the command is \`${c.status}\``;
    return { error: clientProblem("command_failed", "The command failed", detail), response };
  }

  /**
   * `commands.create`, then waits for the command to finish and resolves with the finished
   * command, typed by its kind (`result` is the outcome of that kind, e.g. `stdout` for
   * `shell`). Driven by the session's event stream: the command is read again on its `result`
   * event, on every session `status` event (the server cancels open commands when the session
   * winds down), at its `expires_at` while it is still `queued` (the server then expires it;
   * neither that nor a cancellation writes an event), and when the stream ends (the session is
   * read too: a stream can end while the session is live). A refused create resolves with its
   * problem (e.g. 403 `capability_denied`); a command that ends `failed`, `cancelled` or
   * `expired` with `code: "command_failed"` (`detail`: `<error_code>: <error>`, or
   * `<status>: <why>`), as does a session that ended with the command still open; nothing
   * within `timeoutMs` (default 120 000) with `code: "timeout"` (the command may still finish).
   */
  function run<C extends Loose<CommandIn>>(orgId: string, sessionId: string, command: C, opts: RunOptions = {}): Promise<Result<CommandOut<C["kind"]>>> {
    let state: CommandStatusName = "queued";
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
        let c = created.data;
        let response = created.response;
        const cursor = { seq: before.data.last_seq };
        let sessionEnded = false;
        let resultSeen = false;
        let polls = 0;
        let quiet = 0;
        for (;;) {
          state = c.status;
          if (FINAL_COMMAND_STATUSES.has(c.status)) return outcome<C["kind"]>(c, response);
          if (sessionEnded) {
            const detail = `the session ended while the command was \`${c.status}\``;
            return { error: clientProblem("command_failed", "The command failed", detail), response };
          }
          // A queued command expires at `expires_at` (once the server's reaper runs: re-read
          // until it has); a result event for a command still open (should not be) is re-read too.
          let wakeMs: number | undefined;
          const left = c.status === "queued" ? Date.parse(c.expires_at) - Date.now() : NaN;
          if (!Number.isNaN(left)) wakeMs = left > 0 ? left : pollMs(polls++);
          else if (resultSeen) wakeMs = pollMs(polls++);
          const woke = await watch(orgId, sessionId, cursor, wakeMs, signal, (event) => {
            if (isCommandResult(event) && event.payload.command_id === id) {
              resultSeen = true;
              return true;
            }
            if (event.kind !== "status") return false;
            if (isFinalStatus(event.payload.status)) sessionEnded = true;
            return true;
          });
          if (woke.why === "ended") {
            // The session first, then the command: a session that ended has cancelled it.
            const session = await deps.sessionsGet(orgId, sessionId, callOpts(opts, signal));
            seen(session.response);
            if (session.error) return session;
            if (isFinalStatus(session.data.status)) sessionEnded = true;
          }
          const got = await deps.commandsGet(orgId, sessionId, id, callOpts(opts, signal));
          seen(got.response);
          if (got.error) return got;
          if (got.data.status !== c.status) polls = 0;
          c = got.data;
          response = got.response;
          if (woke.why === "ended" && woke.events === 0 && !sessionEnded && !FINAL_COMMAND_STATUSES.has(c.status)) {
            await sleep(pollMs(quiet++), signal); // the stream brought nothing: do not reconnect at once
          } else if (woke.events > 0) quiet = 0;
        }
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
