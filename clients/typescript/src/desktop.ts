// A person's view of a session's desktop: a one-time desktop ticket and the desktop's
// WebSocket opened with it (for noVNC or any RFB client). A refused ticket is a `Problem`
// value, like the rest of the client.
import type { components } from "./generated/v1.js";
import type { CallOptions } from "./options.js";
import type { Result } from "./problem.js";

type S = components["schemas"];

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
  WebSocket?: WebSocketConstructor<W> | undefined;
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
