// A session's event timeline: follows `events.stream` (resumable SSE) from the start of the
// log, renders each event, and restarts the stream (backed off up to 5 s) when it ends
// before the session did.
import type { AgentdeskClient, EventOut, Problem } from "../../clients/typescript/src/index.js";
import { Backoff, describe, formatTime, h, sleep } from "./dom.js";

/** How many events stay in the DOM (the oldest are dropped). */
const MAX_ITEMS = 500;

export interface TimelineCallbacks {
  /** Called for each event after it is shown (status changes drive the desktop). */
  onEvent?(event: EventOut): void;
  /** `live`, `reconnecting …`, `ended` (the session's final status arrived) or `stopped` (refused). */
  onState(state: "live" | "reconnecting" | "ended" | "stopped", note: string): void;
  /** A refused (re)connect: 401/403/404. */
  onProblem(problem: Problem): void;
}

type Payload = Record<string, unknown>;
const str = (v: unknown): string | undefined => (typeof v === "string" ? v : undefined);
const json = (v: unknown): string => JSON.stringify(v);

/** The timeline of one session in `list` (an `<ol>`). */
export class Timeline {
  readonly #urls: string[] = [];
  readonly #controller = new AbortController();
  #lastSeq = 0;

  constructor(
    private readonly client: AgentdeskClient,
    private readonly orgId: string,
    private readonly sessionId: string,
    private readonly list: HTMLOListElement,
    private readonly callbacks: TimelineCallbacks,
  ) {
    list.replaceChildren();
  }

  /** Follows the log until the session ends, the page leaves or a (re)connect is refused. */
  async follow(): Promise<void> {
    const signal = this.#controller.signal;
    const backoff = new Backoff(250, 5_000);
    while (!signal.aborted) {
      this.callbacks.onState("live", "");
      let end: Awaited<ReturnType<AgentdeskClient["events"]["stream"]>>;
      try {
        end = await this.client.events.stream(this.orgId, this.sessionId, {
          afterSeq: this.#lastSeq,
          signal,
          reconnect: { maxRetries: 3, initialDelayMs: 250, maxDelayMs: 5_000 },
          onEvent: (event) => {
            backoff.reset();
            this.#lastSeq = event.seq;
            this.#render(event);
            this.callbacks.onEvent?.(event);
          },
        });
      } catch (error) {
        // The SDK's own reconnects were spent (network down): keep trying, slower.
        if (signal.aborted) return;
        const ms = backoff.next();
        this.callbacks.onState("reconnecting", `${describe(error)}; retrying in ${Math.ceil(ms / 1000)} s`);
        await sleep(ms, signal);
        continue;
      }
      switch (end.reason) {
        case "aborted":
          return;
        case "final":
          this.callbacks.onState("ended", "the session has ended");
          return;
        case "problem":
          if (end.error.status === 429 || end.error.status >= 500) break;
          this.callbacks.onProblem(end.error);
          this.callbacks.onState("stopped", describe(end.error));
          return;
        case "ended":
          // The server closed the stream though the session goes on: reopen it.
          break;
      }
      const ms = backoff.next();
      this.callbacks.onState("reconnecting", `the stream ended; reconnecting in ${Math.ceil(ms / 1000)} s`);
      await sleep(ms, signal);
    }
  }

  /** Stops following and frees the thumbnails. */
  close(): void {
    this.#controller.abort();
    for (const url of this.#urls.splice(0)) URL.revokeObjectURL(url);
  }

  #render(event: EventOut): void {
    const payload = event.payload as Payload;
    const body = h("div", { class: "body" });
    let title: string = event.kind;
    switch (event.kind) {
      case "message": {
        const from = str(payload["from"]);
        title = from ? `message from ${from}` : "message";
        body.append(str(payload["text"]) ?? json(payload));
        break;
      }
      case "status": {
        const reason = str(payload["reason"]);
        body.append(`${str(payload["status"]) ?? "?"}${reason ? ` (${reason})` : ""}`);
        break;
      }
      case "action":
        title = `action: ${str(payload["kind"]) ?? "?"}`;
        body.append(h("code", {}, json(payload["args"] ?? {})));
        break;
      case "result":
        this.#renderResult(payload, body);
        title = `result: ${str(payload["kind"]) ?? "?"}`;
        break;
      case "screenshot":
        body.append(`${String(payload["width"] ?? "?")}×${String(payload["height"] ?? "?")}`);
        this.#thumbnail(str(payload["artifact_id"]), body);
        break;
      case "log":
        body.append(h("code", {}, str(payload["line"]) ?? str(payload["message"]) ?? json(payload)));
        break;
    }
    const item = h(
      "li",
      { class: `kind-${event.kind}`, "data-seq": event.seq, "data-kind": event.kind, "data-testid": "timeline-item" },
      h("span", { class: "meta" }, `#${event.seq} · ${title} · ${formatTime(event.created_at)}`),
      body,
    );
    const atBottom = this.list.scrollTop + this.list.clientHeight >= this.list.scrollHeight - 8;
    this.list.append(item);
    while (this.list.children.length > MAX_ITEMS) this.list.firstElementChild?.remove();
    if (atBottom) this.list.scrollTop = this.list.scrollHeight;
  }

  #renderResult(payload: Payload, body: HTMLElement): void {
    const status = str(payload["status"]) ?? "?";
    body.append(h("span", { "data-status": status }, status));
    const error = str(payload["error"]);
    if (error) body.append(`: ${str(payload["error_code"]) ?? "error"}: ${error}`);
    const result = payload["result"] as Payload | null | undefined;
    if (result && typeof result === "object" && result["kind"] === "shell") {
      const out = [str(result["stdout"]), str(result["stderr"])].filter((s) => s).join("\n");
      const exit = result["exit_code"];
      body.append(` (exit ${exit === undefined || exit === null ? "killed" : String(exit)})`);
      if (out) body.append(h("pre", {}, out));
    } else if (payload["output"] !== undefined && payload["output"] !== null) {
      body.append(h("pre", {}, json(payload["output"])));
    }
  }

  /** Fetches the screenshot's PNG (`artifacts.get`) and shows it as a thumbnail (a blob: URL). */
  #thumbnail(artifactId: string | undefined, body: HTMLElement): void {
    if (!artifactId) return;
    const img = h("img", { alt: "screenshot", "data-artifact-id": artifactId, "data-testid": "timeline-thumbnail" });
    body.append(img);
    void this.client.artifacts.get(this.orgId, this.sessionId, artifactId, { signal: this.#controller.signal }).then(
      (r) => {
        if (r.error) {
          img.replaceWith(h("span", { class: "muted" }, ` (${describe(r.error)})`));
          return;
        }
        const type = r.response.headers.get("content-type") ?? "image/png";
        const url = URL.createObjectURL(new Blob([r.data as Uint8Array<ArrayBuffer>], { type }));
        this.#urls.push(url);
        img.src = url;
      },
      () => undefined, // aborted: the page left
    );
  }
}
