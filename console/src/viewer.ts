// The live desktop: noVNC's RFB over a WebSocket the SDK opened with a one-time ticket
// (`client.desktop.open`), in `view` or `control` mode, reconnecting by itself (a new ticket
// each time, backed off up to 5 s) when the connection drops abnormally.
import RFB from "@novnc/novnc";
import type { AgentdeskClient, DesktopMode, Problem, Result } from "../../clients/typescript/src/index.js";
import { Backoff, describe } from "./dom.js";

/** Close codes after which the viewer opens a new connection by itself. */
const RECONNECT_CODES = new Set([
  1001, // going away (a proxy in front restarting; another node answers the next ticket)
  1006, // dropped without a close frame
  1011, // server error
  1012, // service restart
  1013, // try again later
  4010, // the relay lost its connection to the desktop
]);

/** What a close code means, for the person watching. */
const CLOSE_REASONS: Record<number, string> = {
  1001: "The server is restarting.",
  1006: "The connection dropped.",
  1011: "The server had an error.",
  4001: "The session is no longer running.",
  4003: "Your access to this desktop was revoked.",
  4008: "Closed after a period of inactivity.",
  4010: "The connection to the desktop was lost.",
};

/** `idle` before the first connect; `closed` when it will not reconnect by itself. */
export type ViewerState = "idle" | "connecting" | "connected" | "reconnecting" | "closed";

export interface ViewerCallbacks {
  /** The connection's state, its mode and a sentence for the person (why it closed, when it retries). */
  onState(state: ViewerState, mode: DesktopMode, note: string): void;
  /** A refused ticket worth showing in the error area (permission, not found…). */
  onProblem(problem: Problem, context: string): void;
}

/** One session's desktop in `container`. */
export class DesktopViewer {
  #gen = 0;
  #rfb: RFB | undefined;
  #rfbDone = true;
  #timer: ReturnType<typeof setTimeout> | undefined;
  readonly #backoff = new Backoff(250, 5_000);
  #mode: DesktopMode = "view";
  #state: ViewerState = "idle";
  /** Sockets in a row that closed before RFB connected (a refused upgrade reads as 1006). */
  #failedOpens = 0;

  constructor(
    private readonly client: AgentdeskClient,
    private readonly orgId: string,
    private readonly sessionId: string,
    private readonly container: HTMLElement,
    private readonly callbacks: ViewerCallbacks,
  ) {}

  get mode(): DesktopMode {
    return this.#mode;
  }

  get state(): ViewerState {
    return this.#state;
  }

  /** Connects in `mode`, replacing the current connection (Take control / Release / Reconnect). */
  connect(mode: DesktopMode): void {
    this.#mode = mode;
    this.#failedOpens = 0;
    this.#backoff.reset();
    clearTimeout(this.#timer);
    void this.#open(++this.#gen, "connecting");
  }

  /** Ends the connection for good (leaving the page). */
  close(): void {
    this.#gen += 1;
    clearTimeout(this.#timer);
    this.#teardown();
    this.#set("idle", "");
  }

  #set(state: ViewerState, note: string): void {
    this.#state = state;
    this.callbacks.onState(state, this.#mode, note);
  }

  async #open(gen: number, state: "connecting" | "reconnecting"): Promise<void> {
    this.#teardown();
    this.#set(state, state === "reconnecting" ? "Reconnecting…" : "Connecting…");
    let opened: Result<WebSocket>;
    try {
      opened = await this.client.desktop.open(this.orgId, this.sessionId, { mode: this.#mode });
    } catch (error) {
      if (gen === this.#gen) this.#retry(gen, `Cannot reach the server (${describe(error)}).`);
      return;
    }
    if (gen !== this.#gen) {
      opened.data?.close();
      return;
    }
    if (opened.error) {
      const problem = opened.error;
      if (problem.status === 409) {
        this.#set("closed", "The desktop is shown while the session is running.");
      } else if (problem.status === 429 || problem.status >= 500) {
        this.#retry(gen, describe(problem));
      } else if (this.#mode === "control") {
        // Refused control (403 without desktop:control): say why, and keep watching.
        this.callbacks.onProblem(problem, "Take control");
        this.#mode = "view";
        void this.#open(gen, "connecting");
      } else {
        this.callbacks.onProblem(problem, "Desktop");
        this.#set("closed", describe(problem));
      }
      return;
    }
    const socket = opened.data;
    socket.addEventListener("close", (event) => this.#closed(gen, event));
    const rfb = new RFB(this.container, socket);
    this.#rfb = rfb;
    this.#rfbDone = false;
    rfb.scaleViewport = true;
    rfb.viewOnly = this.#mode === "view";
    rfb.focusOnClick = this.#mode === "control";
    rfb.addEventListener("connect", () => {
      if (gen !== this.#gen) return;
      this.#backoff.reset();
      this.#failedOpens = 0;
      this.#set("connected", this.#mode === "control" ? "You are in control of the desktop." : "Watching.");
    });
    rfb.addEventListener("disconnect", () => {
      if (this.#rfb === rfb) this.#rfbDone = true;
    });
    rfb.addEventListener("securityfailure", (event) => {
      const reason = (event as CustomEvent<{ reason?: string }>).detail?.reason;
      if (gen === this.#gen) this.#set("closed", `The desktop refused the connection${reason ? `: ${reason}` : "."}`);
    });
  }

  #closed(gen: number, event: CloseEvent): void {
    if (gen !== this.#gen) return; // replaced or closed on purpose
    this.#teardown();
    const why = CLOSE_REASONS[event.code] ?? `The desktop connection closed (${event.code}${event.reason ? `: ${event.reason}` : ""}).`;
    // A browser reports an upgrade the server refused (Origin, cap, a proxy) as 1006 too:
    // after three sockets in a row that never connected, stop and say so.
    const neverConnected = this.#state !== "connected";
    this.#failedOpens = neverConnected ? this.#failedOpens + 1 : 0;
    if (neverConnected && this.#failedOpens >= 3) {
      this.#set("closed", `${why} The desktop refused three connections in a row; check the server's public_url and cors_allowed_origins, then reconnect.`);
    } else if (RECONNECT_CODES.has(event.code)) this.#retry(gen, why);
    else this.#set("closed", why);
  }

  #retry(gen: number, why: string): void {
    const ms = this.#backoff.next();
    this.#set("reconnecting", `${why} Reconnecting in ${(ms / 1000).toFixed(ms < 1000 ? 2 : 0)} s…`);
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      if (gen === this.#gen) void this.#open(gen, "reconnecting");
    }, ms);
  }

  #teardown(): void {
    const rfb = this.#rfb;
    this.#rfb = undefined;
    if (rfb && !this.#rfbDone) {
      this.#rfbDone = true;
      rfb.disconnect();
    }
    this.container.replaceChildren();
  }
}
