// Server-sent events on `fetch` (a browser `EventSource` cannot send `Authorization` or
// `X-API-Key`), parsed by `eventsource-parser`, with bounded, backed-off reconnects. Problems
// a (re)connect is answered with are values; the caller decides where to resume.
import { type EventSourceMessage, createParser } from "eventsource-parser";
import { RETRYABLE_STATUSES, retryAfterMs, sleep } from "./http.js";
import { type Problem, toProblem } from "./problem.js";

/** One server-sent event as `eventsource-parser` gives it: `id`, `event` (absent: `message`) and `data`. */
export type SseMessage = EventSourceMessage;

/** How a stream reconnects after a dropped connection. */
export interface ReconnectOptions {
  /** Reconnect attempts in a row without receiving an event before giving up (default 5). */
  maxRetries?: number | undefined;
  /** First backoff delay in ms, doubled per failed attempt (default 500, or the server's `retry:`). */
  initialDelayMs?: number | undefined;
  /** Backoff ceiling in ms (default 10 000). */
  maxDelayMs?: number | undefined;
}

/** What opening a stream produced: a body to read, or the problem the server answered with. */
export type SseConnect =
  | { body: ReadableStream<Uint8Array>; problem?: undefined; response: Response }
  | { body?: undefined; problem: Problem; response: Response };

/**
 * Why a stream finished. `ended`: the server closed it twice in a row without sending an event
 * (usually nothing more to send, but a proxy that cuts long quiet connections, or a server
 * restart, looks the same: a session can still be live); `aborted`: the caller's signal fired; `problem`: a (re)connect was
 * answered with `error` (the `response` that carried it is there too).
 */
export type SseEnd =
  | { reason: "ended" | "aborted"; error?: undefined }
  | { reason: "problem"; error: Problem; response: Response };

/**
 * Reads an SSE endpoint, yielding each message, until the signal aborts, the server answers a
 * (re)connect with a problem, or it has nothing more to send (two clean ends in a row without a
 * message); the generator's return value says which. Stop early with `return()` (a `break` in
 * `for await`): the connection is cancelled. A connection that drops (network error, or a
 * clean end after messages) is reopened by calling `connect` again, which resumes where the
 * caller says; failures in a row are bounded by `maxRetries` and backed off exponentially
 * (a 429, 502, 503 or 504 is retried too, waiting its `Retry-After`, in seconds or as an HTTP
 * date, up to `maxDelayMs`), then the last network error is thrown, or the last refusal is the
 * result.
 */
export async function* sseMessages(args: {
  connect: (signal: AbortSignal | undefined) => Promise<SseConnect>;
  onReconnect?: (() => void | Promise<void>) | undefined;
  signal?: AbortSignal | undefined;
  reconnect?: ReconnectOptions | undefined;
}): AsyncGenerator<SseMessage, SseEnd, undefined> {
  const { signal } = args;
  const maxRetries = args.reconnect?.maxRetries ?? 5;
  const maxDelay = args.reconnect?.maxDelayMs ?? 10_000;
  let failures = 0;
  let emptyEnds = 0;
  let retryMs: number | undefined;
  let opened = false;
  let lastError: unknown;
  const backoff = (): number => {
    const base = retryMs ?? args.reconnect?.initialDelayMs ?? 500;
    const ceiling = Math.min(maxDelay, base * 2 ** Math.max(0, failures - 1));
    return ceiling / 2 + Math.random() * (ceiling / 2);
  };

  for (;;) {
    if (signal?.aborted) return { reason: "aborted" };
    if (opened) await args.onReconnect?.();
    opened = true;
    let received = 0;
    let cleanEnd = false;
    try {
      const connection = await args.connect(signal);
      if (connection.problem) {
        if (RETRYABLE_STATUSES.has(connection.response.status) && failures < maxRetries) {
          failures += 1;
          const after = retryAfterMs(connection.response);
          await sleep(after !== undefined && after > 0 ? Math.min(after, maxDelay) : backoff(), signal);
          continue;
        }
        return { reason: "problem", error: connection.problem, response: connection.response };
      }
      const queue: SseMessage[] = [];
      const parser = createParser({
        onEvent: (message) => void queue.push(message),
        onRetry: (ms) => {
          retryMs = ms;
        },
      });
      const decoder = new TextDecoder();
      const reader = connection.body.getReader();
      // Aborting ends the read even where the signal does not reach the fetch itself.
      const onAbort = () => void reader.cancel().catch(() => undefined);
      signal?.addEventListener("abort", onAbort, { once: true });
      try {
        for (;;) {
          const { value, done } = await reader.read();
          if (done) {
            cleanEnd = true;
            break;
          }
          parser.feed(decoder.decode(value, { stream: true }));
          while (queue.length > 0) {
            const message = queue.shift();
            if (message === undefined) break;
            received += 1;
            failures = 0;
            yield message;
          }
        }
      } finally {
        signal?.removeEventListener("abort", onAbort);
        if (!cleanEnd) await reader.cancel().catch(() => undefined);
      }
    } catch (error) {
      if (signal?.aborted) return { reason: "aborted" };
      lastError = error;
    }
    if (signal?.aborted) return { reason: "aborted" };
    if (cleanEnd) {
      emptyEnds = received > 0 ? 0 : emptyEnds + 1;
      if (emptyEnds >= 2) return { reason: "ended" };
      continue;
    }
    failures += 1;
    if (failures > maxRetries) throw lastError;
    await sleep(backoff(), signal);
  }
}

/** Turns an openapi-fetch outcome for an SSE endpoint (`parseAs: "stream"`) into an {@link SseConnect}. */
export function toSseConnect(result: {
  data?: ReadableStream<Uint8Array> | null | undefined;
  error?: unknown;
  response: Response;
}): SseConnect {
  const { response } = result;
  if (response.ok && result.data) return { body: result.data, response };
  if (response.ok) {
    return { problem: toProblem("the event stream answered without a body", response), response };
  }
  return { problem: toProblem(result.error, response), response };
}
