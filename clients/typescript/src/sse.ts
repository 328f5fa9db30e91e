// A small `text/event-stream` reader on `fetch` (EventSource cannot send an Authorization
// header), with bounded, backed-off reconnects.
import { type Problem, toProblem } from "./problem.js";

/** One dispatched server-sent event (WHATWG HTML §9.2.6). */
export interface SseMessage {
  /** The last `id:` seen on the connection (persists across events, as EventSource's). */
  id: string | undefined;
  /** `event:`, or `"message"` when absent. */
  event: string;
  /** The `data:` lines joined by `\n`. */
  data: string;
}

/** Incremental parser: feed decoded text, get whole events. Comments (`:` lines) are dropped. */
export class SseParser {
  #buffer = "";
  #data: string[] = [];
  #event = "";
  #lastId: string | undefined;
  #sawCR = false;
  /** The last `retry:` value (ms), if the server sent one. */
  retryMs: number | undefined;

  constructor(lastEventId?: string) {
    this.#lastId = lastEventId;
  }

  feed(chunk: string, emit: (message: SseMessage) => void): void {
    let text = chunk;
    if (this.#sawCR && text.startsWith("\n")) text = text.slice(1);
    this.#sawCR = text.endsWith("\r");
    this.#buffer += text;
    const lines = this.#buffer.split(/\r\n|\r|\n/);
    this.#buffer = lines.pop() ?? "";
    for (const line of lines) this.#line(line, emit);
  }

  #line(line: string, emit: (message: SseMessage) => void): void {
    if (line === "") {
      if (this.#data.length > 0) {
        emit({ id: this.#lastId, event: this.#event || "message", data: this.#data.join("\n") });
      }
      this.#data = [];
      this.#event = "";
      return;
    }
    if (line.startsWith(":")) return;
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    switch (field) {
      case "data":
        this.#data.push(value);
        break;
      case "event":
        this.#event = value;
        break;
      case "id":
        if (!value.includes("\0")) this.#lastId = value;
        break;
      case "retry":
        if (/^\d+$/.test(value)) this.retryMs = Number(value);
        break;
      default:
        break;
    }
  }
}

/** How a stream reconnects after a dropped connection. */
export interface ReconnectOptions {
  /** Reconnect attempts in a row without receiving an event before giving up (default 5). */
  maxRetries?: number;
  /** First backoff delay in ms, doubled per failed attempt (default 500, or the server's `retry:`). */
  initialDelayMs?: number;
  /** Backoff ceiling in ms (default 10 000). */
  maxDelayMs?: number;
}

/** What opening a stream produced: a body to read, or the problem the server answered with. */
export type SseConnect =
  | { body: ReadableStream<Uint8Array>; problem?: undefined; response: Response }
  | { body?: undefined; problem: Problem; response: Response };

/** Why a stream finished (it never rejects for an HTTP error; network failures after the retries do). */
export type StreamEnd =
  | {
      /** `final`: the session's final `status` event arrived; `ended`: the server closed the
       * stream with nothing more to send; `aborted`: the caller's `signal` fired. */
      reason: "final" | "ended" | "aborted";
      error?: undefined;
      lastEventId: string | undefined;
    }
  | { reason: "problem"; error: Problem; lastEventId: string | undefined };

/** What the message handler decides after each event. */
export type Verdict = "continue" | "stop";

/**
 * Reads an SSE endpoint until `onMessage` says stop, the signal aborts, the server answers a
 * (re)connect with a problem, or the server has nothing more to send (two clean ends in a row
 * without an event). A connection that drops (network error, or a clean end after events but
 * before `onMessage` said stop) is reopened with `Last-Event-ID`; failures in a row are
 * bounded by `maxRetries` and backed off exponentially, then the last network error rejects.
 * An exception thrown by `onMessage` rejects at once.
 */
export async function runSse(args: {
  connect: (lastEventId: string | undefined, signal: AbortSignal | undefined) => Promise<SseConnect>;
  onMessage: (message: SseMessage) => Verdict | Promise<Verdict>;
  onReconnect?: (() => void | Promise<void>) | undefined;
  lastEventId?: string | undefined;
  signal?: AbortSignal | undefined;
  reconnect?: ReconnectOptions | undefined;
}): Promise<StreamEnd> {
  const { signal } = args;
  const maxRetries = args.reconnect?.maxRetries ?? 5;
  const maxDelay = args.reconnect?.maxDelayMs ?? 10_000;
  let lastEventId = args.lastEventId;
  let failures = 0;
  let emptyEnds = 0;
  let retryMs: number | undefined;
  let opened = false;
  let lastError: unknown;

  for (;;) {
    if (signal?.aborted) return { reason: "aborted", lastEventId };
    if (opened) await args.onReconnect?.();
    opened = true;
    let received = 0;
    let cleanEnd = false;
    let stop = false;
    try {
      const connection = await args.connect(lastEventId, signal);
      if (connection.problem) {
        const { status } = connection.problem;
        if ((status === 429 || status === 503) && failures < maxRetries) {
          failures += 1;
          const after = Number(connection.response.headers.get("retry-after"));
          await sleep(after > 0 ? Math.min(after * 1000, maxDelay) : backoff(), signal);
          continue;
        }
        return { reason: "problem", error: connection.problem, lastEventId };
      }
      const parser = new SseParser(lastEventId);
      const decoder = new TextDecoder();
      const reader = connection.body.getReader();
      // Aborting ends the read even where the signal does not reach the fetch itself.
      const onAbort = () => void reader.cancel().catch(() => undefined);
      signal?.addEventListener("abort", onAbort, { once: true });
      try {
        while (!stop) {
          const { value, done } = await reader.read();
          if (done) {
            cleanEnd = true;
            break;
          }
          const messages: SseMessage[] = [];
          parser.feed(decoder.decode(value, { stream: true }), (m) => messages.push(m));
          for (const m of messages) {
            lastEventId = m.id;
            received += 1;
            failures = 0;
            let verdict: Verdict;
            try {
              verdict = await args.onMessage(m);
            } catch (error) {
              throw new CallbackError(error);
            }
            if (verdict === "stop") {
              stop = true;
              break;
            }
          }
        }
      } finally {
        signal?.removeEventListener("abort", onAbort);
        retryMs = parser.retryMs ?? retryMs;
        if (!cleanEnd) await reader.cancel().catch(() => undefined);
      }
    } catch (error) {
      if (error instanceof CallbackError) throw error.cause;
      if (signal?.aborted) return { reason: "aborted", lastEventId };
      lastError = error;
    }
    if (stop) return { reason: "final", lastEventId };
    if (signal?.aborted) return { reason: "aborted", lastEventId };
    if (cleanEnd) {
      emptyEnds = received > 0 ? 0 : emptyEnds + 1;
      if (emptyEnds >= 2) return { reason: "ended", lastEventId };
      continue;
    }
    failures += 1;
    if (failures > maxRetries) throw lastError;
    await sleep(backoff(), signal);
  }

  function backoff(): number {
    const base = retryMs ?? args.reconnect?.initialDelayMs ?? 500;
    const ceiling = Math.min(maxDelay, base * 2 ** Math.max(0, failures - 1));
    return ceiling / 2 + Math.random() * (ceiling / 2);
  }
}

class CallbackError extends Error {
  constructor(cause: unknown) {
    super("event handler failed", { cause });
  }
}

/** Turns a `fetch` outcome for an SSE endpoint into an `SseConnect`. */
export async function toSseConnect(result: {
  data?: ReadableStream<Uint8Array> | null | undefined;
  error?: unknown;
  response: Response;
}): Promise<SseConnect> {
  const { response } = result;
  if (response.ok && result.data) return { body: result.data, response };
  if (response.ok) {
    return { problem: toProblem("the event stream answered without a body", response), response };
  }
  return { problem: toProblem(result.error, response), response };
}

/** Resolves after `ms`, or at once when `signal` aborts (also used by the console). */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (ms <= 0 || signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
  });
}
