// What an agent runner needs on top of the per-operation helpers: start a session and wait
// until its desktop runs, run a command and get its typed output, take a screenshot as PNG
// bytes. All driven by the session's event stream (no polling). And what a person's viewer
// needs: a one-time desktop ticket and the desktop's WebSocket opened with it. Every failure
// is a `Problem` value, like the rest of the client.
import type { components } from "./generated/v1.js";
import type { Problem, Result } from "./problem.js";
import type { EventStreamEnd, EventStreamOptions, IdempotentCallOptions, CallOptions } from "./client.js";

type S = components["schemas"];

/** Options of `sessions.createAndWait`. */
export interface CreateAndWaitOptions extends IdempotentCallOptions {
  /** Give up after this long (ms, default 60 000): resolves with a `timeout` problem. */
  timeoutMs?: number;
}

/** Options of `commands.run`. */
export interface RunOptions extends IdempotentCallOptions {
  /** Give up waiting after this long (ms, default 120 000): resolves with a `timeout` problem (the command may still finish). */
  timeoutMs?: number;
}

/** Options of `screenshot`. */
export interface ScreenshotOptions extends RunOptions {
  /** Downscale so the image is at most this wide (pixels; aspect kept, never up). */
  maxWidth?: number;
  /** Downscale so the image is at most this high (pixels). */
  maxHeight?: number;
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
  command: S["CommandOut"];
}

/** The operations the helpers are built on (a subset of the client). */
export interface DesktopDeps {
  sessionsCreate(orgId: string, body: S["SessionIn"], opts?: IdempotentCallOptions): Promise<Result<S["SessionOut"]>>;
  sessionsGet(orgId: string, sessionId: string, opts?: CallOptions): Promise<Result<S["SessionOut"]>>;
  commandsCreate(orgId: string, sessionId: string, body: S["CommandIn"], opts?: IdempotentCallOptions): Promise<Result<S["CommandOut"]>>;
  commandsGet(orgId: string, sessionId: string, commandId: string, opts?: CallOptions): Promise<Result<S["CommandOut"]>>;
  artifactBytes(orgId: string, sessionId: string, artifactId: string, opts?: CallOptions): Promise<Result<Uint8Array>>;
  stream(orgId: string, sessionId: string, opts: EventStreamOptions): Promise<EventStreamEnd>;
}

/** A problem made up by the client (no HTTP response carried it). */
function clientProblem(code: string, title: string, detail: string, status = 0): Problem {
  return { type: `urn:agentdesk:problem:${code}`, title, status, detail, code };
}

/** Aborts with the caller's signal or after `timeoutMs`; `timedOut()` says which. */
function deadline(timeoutMs: number, signal: AbortSignal | undefined) {
  const controller = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort();
  }, timeoutMs);
  const onAbort = () => controller.abort();
  signal?.addEventListener("abort", onAbort, { once: true });
  return {
    signal: controller.signal,
    stop: () => controller.abort(),
    timedOut: () => timedOut,
    done: () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
    },
  };
}

/** Builds the helpers over `deps` (see `createClient`). */
export function desktopHelpers(deps: DesktopDeps) {
  /** Follows the session's log from `afterSeq` until `until(event)` is true or the stream ends. */
  async function follow(
    orgId: string,
    sessionId: string,
    afterSeq: number,
    timeoutMs: number,
    signal: AbortSignal | undefined,
    until: (event: S["EventOut"]) => boolean,
  ): Promise<{ hit?: S["EventOut"]; end: EventStreamEnd; timedOut: boolean }> {
    const d = deadline(timeoutMs, signal);
    let hit: S["EventOut"] | undefined;
    try {
      const end = await deps.stream(orgId, sessionId, {
        afterSeq,
        signal: d.signal,
        onEvent: (event) => {
          if (hit === undefined && until(event)) {
            hit = event;
            d.stop();
          }
        },
      });
      return { ...(hit ? { hit } : {}), end, timedOut: d.timedOut() && hit === undefined };
    } finally {
      d.done();
    }
  }

  /**
   * `sessions.create`, then waits on the event stream until the session is `running` and
   * resolves with it. A refused create resolves with its problem; a session that fails or
   * stops first with `code: "session_failed"` and its `status_reason` as `detail`; no
   * `running` within `timeoutMs` with `code: "timeout"`.
   */
  async function createAndWait(
    orgId: string,
    body: S["SessionIn"],
    opts: CreateAndWaitOptions = {},
  ): Promise<Result<S["SessionOut"]>> {
    const created = await deps.sessionsCreate(orgId, body, opts);
    if (created.error) return created;
    const session = created.data;
    const watched = await follow(orgId, session.id, 0, opts.timeoutMs ?? 60_000, opts.signal, (e) => {
      const status = e.kind === "status" ? (e.payload as { status?: string }).status : undefined;
      return status === "running" || status === "failed" || status === "stopped";
    });
    const now = await deps.sessionsGet(orgId, session.id, opts.signal ? { signal: opts.signal } : undefined);
    if (now.error) return now;
    if (now.data.status === "running") return now;
    if (watched.end.reason === "problem") return { error: watched.end.error, response: now.response };
    if (watched.timedOut) {
      return {
        error: clientProblem("timeout", "Timed out", `the session was still \`${now.data.status}\` after ${opts.timeoutMs ?? 60_000} ms`),
        response: now.response,
      };
    }
    return {
      error: clientProblem(
        "session_failed",
        "The session did not start",
        now.data.status_reason ?? `the session is \`${now.data.status}\``,
      ),
      response: now.response,
    };
  }

  /**
   * `commands.create`, then waits on the event stream for its `result` event and resolves
   * with the finished command (its typed `result`). A refused create resolves with its
   * problem (e.g. 403 `capability_denied`); a failed command with `code: "command_failed"`
   * (the command's `error_code` and `error` in `detail`); a session that ends first with
   * `code: "session_failed"`.
   */
  async function run(
    orgId: string,
    sessionId: string,
    command: S["CommandIn"],
    opts: RunOptions = {},
  ): Promise<Result<S["CommandOut"]>> {
    const call = opts.signal ? { signal: opts.signal } : undefined;
    const before = await deps.sessionsGet(orgId, sessionId, call);
    if (before.error) return before;
    const created = await deps.commandsCreate(orgId, sessionId, command, opts);
    if (created.error) return created;
    const id = created.data.id;
    const watched = await follow(orgId, sessionId, before.data.last_seq, opts.timeoutMs ?? 120_000, opts.signal, (e) =>
      e.kind === "result" && (e.payload as { command_id?: string }).command_id === id,
    );
    const finished = await deps.commandsGet(orgId, sessionId, id, call);
    if (finished.error) return finished;
    const c = finished.data;
    if (c.status === "succeeded") return finished;
    if (watched.end.reason === "problem" && !watched.hit) return { error: watched.end.error, response: finished.response };
    if (c.status === "queued" || c.status === "dispatched") {
      const why = watched.timedOut ? `still \`${c.status}\` after ${opts.timeoutMs ?? 120_000} ms` : `the session ended while it was \`${c.status}\``;
      return { error: clientProblem(watched.timedOut ? "timeout" : "session_failed", "The command did not finish", why), response: finished.response };
    }
    const detail = c.error ? `${c.error_code ?? c.status}: ${c.error}` : `the command is \`${c.status}\``;
    return { error: clientProblem("command_failed", "The command failed", detail), response: finished.response };
  }

  /** Runs a `screenshot` command and fetches its PNG (`artifacts.get`). */
  async function screenshot(orgId: string, sessionId: string, opts: ScreenshotOptions = {}): Promise<Result<Screenshot>> {
    const args: S["ScreenshotArgs"] = {};
    if (opts.maxWidth !== undefined) args.max_width = opts.maxWidth;
    if (opts.maxHeight !== undefined) args.max_height = opts.maxHeight;
    const ran = await run(orgId, sessionId, { kind: "screenshot", args }, opts);
    if (ran.error) return ran;
    const out = ran.data.result;
    if (!out || out.kind !== "screenshot") {
      return { error: clientProblem("unexpected_response", "No screenshot", "the command has no screenshot output"), response: ran.response };
    }
    const bytes = await deps.artifactBytes(orgId, sessionId, out.artifact_id, opts.signal ? { signal: opts.signal } : undefined);
    if (bytes.error) return bytes;
    return {
      data: { png: bytes.data, width: out.width, height: out.height, scale: out.scale, artifactId: out.artifact_id, command: ran.data },
      response: bytes.response,
    };
  }

  return { createAndWait, run, screenshot };
}

// ── Watching and taking over a session's desktop (noVNC in a browser, or any RFB client) ──

/** A desktop ticket's mode: `view` (the desktop ignores input) or `control` (needs `desktop:control`). */
export type DesktopMode = S["DesktopTicketIn"]["mode"];

/**
 * A `WebSocket` constructor: the platform's (browsers, Node ≥ 22), or a compatible one such as
 * the `ws` package's on older Node.
 */
export type WebSocketConstructor<W> = new (url: string, protocols: string[]) => W;

/** Options of `desktop.open`. */
export interface DesktopOpenOptions<W> extends CallOptions {
  /** What the ticket allows: `view` (input ignored by the desktop) or `control`. */
  mode: DesktopMode;
  /** The constructor to use instead of `globalThis.WebSocket` (required where there is none, e.g. Node < 22). */
  WebSocket?: WebSocketConstructor<W>;
}

/** The operation the viewer helpers are built on. */
export interface ViewerDeps {
  createTicket(orgId: string, sessionId: string, body: S["DesktopTicketIn"], opts?: CallOptions): Promise<Result<S["DesktopTicketOut"]>>;
}

/** Builds `desktop.ticket` and `desktop.open` over `deps` (see `createClient`). */
export function desktopViewer(deps: ViewerDeps) {
  /**
   * `desktop.create_ticket`: a one-time ticket (valid ≤ 60 s, single use) for the session's
   * desktop WebSocket. `view` needs `sessions:read`, `control` needs `desktop:control`
   * (403 `permission_denied`); 409 `session_not_running` unless the session is `running`.
   * `data.protocols` is exactly what to pass as WebSocket subprotocols.
   */
  function ticket(orgId: string, sessionId: string, mode: DesktopMode, opts?: CallOptions): Promise<Result<S["DesktopTicketOut"]>> {
    return deps.createTicket(orgId, sessionId, { mode }, opts);
  }

  /**
   * Mints a ticket (`ticket`) and opens the desktop's WebSocket with it:
   * `new WebSocket(ws_url, protocols)` with `binaryType = "arraybuffer"`, carrying RFB
   * (RFC 6143) bytes in binary messages: hand it to noVNC (`new RFB(element, socket)`); the
   * relay offers security type None, so no password is asked. A refused ticket resolves
   * with its problem; the socket's own failures arrive as its `error`/`close` events
   * (close codes: 4001 the session left `running`, 4003 access revoked, 4008 idle timeout,
   * 4010 desktop connection lost, 1002 RFB protocol error; 1006 when the connection dropped,
   * e.g. the server stopped). Rejects at once, before any
   * request, when there is no `WebSocket` constructor.
   */
  async function open<W extends object = WebSocket>(orgId: string, sessionId: string, opts: DesktopOpenOptions<W>): Promise<Result<W>> {
    const Ctor = opts.WebSocket ?? (globalThis as unknown as { WebSocket?: WebSocketConstructor<W> }).WebSocket;
    if (Ctor === undefined) {
      throw new TypeError("desktop.open: no WebSocket here; pass one as `WebSocket` (e.g. the `ws` package's on Node < 22)");
    }
    const { mode, WebSocket: _ctor, ...call } = opts;
    const minted = await ticket(orgId, sessionId, mode, call);
    if (minted.error) return minted;
    const socket = new Ctor(minted.data.ws_url, minted.data.protocols);
    (socket as { binaryType?: string }).binaryType = "arraybuffer";
    return { data: socket, response: minted.response };
  }

  return { ticket, open };
}
