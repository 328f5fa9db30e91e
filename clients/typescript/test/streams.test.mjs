// Offline tests of the event stream and the helpers on it: reconnects after 502/504 and an
// HTTP-date Retry-After; commands.run through an expiry and a cancellation (neither writes an
// event) and through streams that end while the session is live; sessions.waitFor likewise;
// unbounded timeouts. Run `npm run build` first.
import assert from "node:assert/strict";
import { test } from "node:test";
import { createClient, sleep } from "../dist/esm/index.js";

import { BASE, json, problem } from "./fake-http.mjs";
const delay = (ms) => new Promise((r) => setTimeout(r, ms));

const encoder = new TextEncoder();
/** An SSE response with these chunks, then closed; `hang`: kept open (cancellable) instead. */
function sse(chunks = [], { hang = false } = {}) {
  const queue = [...chunks];
  return new Response(
    new ReadableStream({
      pull(controller) {
        const next = queue.shift();
        if (next !== undefined) return controller.enqueue(encoder.encode(next));
        if (!hang) controller.close();
        return new Promise(() => {}); // hangs until cancelled
      },
    }),
    { status: 200, headers: { "content-type": "text/event-stream" } },
  );
}
const ev = (seq, kind, payload) => `id: ${seq}\nevent: ${kind}\ndata: ${JSON.stringify({ seq, kind, payload, created_at: "2026-01-01T00:00:00Z" })}\n\n`;

test("events.stream reconnects after 502 and 504, and waits an HTTP-date Retry-After", async () => {
  const replies = [
    () => new Response("<html>bad gateway</html>", { status: 502 }),
    () => problem(504, "unexpected_response", { "retry-after": new Date(Date.now() + 2_000).toUTCString() }),
    () => sse([ev(1, "status", { status: "stopped", previous_status: "stopping" })]),
  ];
  const at = [];
  const c = createClient({
    baseUrl: BASE,
    apiKey: "k",
    fetch: async () => {
      at.push(Date.now());
      return replies.shift()();
    },
  });
  const end = await c.events.stream("o", "s", { onEvent: () => {}, reconnect: { initialDelayMs: 1 } });
  assert.deepEqual(end, { reason: "final", lastSeq: 1 });
  assert.equal(at.length, 3);
  assert.ok(at[2] - at[1] >= 900, `waited the date in Retry-After (${at[2] - at[1]} ms)`);
});

/**
 * A fake server for commands.run: one running session; `command(n, elapsedMs)` is the command as
 * read the n-th time; `stream(n)` answers the n-th stream connect.
 */
function commandServer({ command, stream, session = () => ({ status: "running" }) }) {
  const started = Date.now();
  const log = [];
  let reads = 0;
  let connects = 0;
  const fetch = async (req) => {
    const url = new URL(req.url);
    const path = url.pathname;
    log.push(`${req.method} ${path}${url.search}`);
    if (path.endsWith("/events/stream")) return stream(connects++, Number(url.searchParams.get("after_seq")));
    if (req.method === "POST" && path.endsWith("/commands")) return json(202, { ...command(-1, 0) });
    if (path.endsWith("/commands/c1")) return json(200, command(reads++, Date.now() - started));
    return json(200, { id: "s", last_seq: 3, ...session(Date.now() - started) });
  };
  return { fetch, log };
}
const cmd = (status, extra = {}) => ({
  id: "c1",
  session_id: "s",
  kind: "click",
  args: { x: 1, y: 1 },
  status,
  expires_at: new Date(Date.now() + 60_000).toISOString(),
  created_at: "t",
  updated_at: "t",
  ...extra,
});

test("commands.run: a queued command that expires (no event says so) is command_failed `expired`, read at its expires_at", async () => {
  const expiresAt = new Date(Date.now() + 300).toISOString();
  const server = commandServer({
    command: (_n, elapsed) => cmd(elapsed > 700 ? "expired" : "queued", { expires_at: expiresAt }), // the reaper runs a bit later
    stream: () => sse([": heartbeat\n\n"], { hang: true }),
  });
  const c = createClient({ baseUrl: BASE, apiKey: "k", fetch: server.fetch });
  const started = Date.now();
  const r = await c.commands.run("o", "s", { kind: "click", args: { x: 1, y: 1 } }, { timeoutMs: 10_000 });
  assert.equal(r.error?.code, "command_failed", JSON.stringify(r.error));
  assert.match(r.error.detail, /^expired: /);
  assert.ok(Date.now() - started < 5_000, "long before the timeout");
  assert.ok(server.log.filter((l) => l.endsWith("/commands/c1")).length >= 2, "read at expires_at, then again until expired");
});

test("commands.run: a status event (stopping) re-reads the command: cancelled → command_failed `cancelled`", async () => {
  let stopped = false;
  const server = commandServer({
    command: () => cmd(stopped ? "cancelled" : "dispatched"),
    // After 100 ms the session goes `stopping` (the server cancels its open commands in the
    // same transaction, and writes no result event for them); the stream stays open.
    stream: () =>
      new Response(
        new ReadableStream({
          async start(controller) {
            await delay(100);
            stopped = true;
            controller.enqueue(encoder.encode(ev(4, "status", { status: "stopping", previous_status: "running" })));
          },
        }),
        { status: 200, headers: { "content-type": "text/event-stream" } },
      ),
  });
  const c = createClient({ baseUrl: BASE, apiKey: "k", fetch: server.fetch });
  const r = await c.commands.run("o", "s", { kind: "click", args: { x: 1, y: 1 } }, { timeoutMs: 5_000 });
  assert.equal(r.error?.code, "command_failed");
  assert.match(r.error.detail, /^cancelled: /);
});

test("commands.run and sessions.waitFor: a stream that ends (two empty closes) while the session is live is followed again", async () => {
  const server = commandServer({
    command: (n) => (n >= 1 ? cmd("succeeded", { result: { kind: "click" } }) : cmd("dispatched")),
    // Connects 0 and 1 close at once without an event (a proxy cutting quiet streams): `ended`.
    stream: (n, after) => (n < 2 ? sse([]) : sse([ev(after + 1, "result", { command_id: "c1", kind: "click", status: "succeeded", result: { kind: "click" } })], { hang: true })),
  });
  const c = createClient({ baseUrl: BASE, apiKey: "k", fetch: server.fetch });
  const r = await c.commands.run("o", "s", { kind: "click", args: { x: 1, y: 1 } }, { timeoutMs: 10_000 });
  assert.equal(r.error, undefined, JSON.stringify(r.error));
  assert.equal(r.data?.status, "succeeded");
  assert.ok(server.log.some((l) => l === "GET /v1/orgs/o/sessions/s"), "re-read the session when the stream ended");

  // waitFor: the stream ends twice empty, the session is running by the next read.
  let reads = 0;
  const w = createClient({
    baseUrl: BASE,
    apiKey: "k",
    fetch: async (req) =>
      new URL(req.url).pathname.endsWith("/stream") ? sse([]) : json(200, { id: "s", status: reads++ < 1 ? "provisioning" : "running", last_seq: 2 }),
  });
  assert.equal((await w.sessions.waitFor("o", "s", "running", { timeoutMs: 5_000 })).data?.status, "running");

  // A session that really ended (stream ends, session stopped) with the command still open.
  const gone = commandServer({
    command: () => cmd("dispatched"),
    stream: () => sse([]),
    session: (elapsed) => ({ status: elapsed > 0 ? "stopped" : "running" }),
  });
  const g = createClient({ baseUrl: BASE, apiKey: "k", fetch: gone.fetch });
  const ended = await g.commands.run("o", "s", { kind: "click", args: { x: 1, y: 1 } }, { timeoutMs: 5_000 });
  assert.equal(ended.error?.code, "command_failed");
  assert.match(ended.error.detail, /session ended while the command was `dispatched`/);
});

// ── 11. Unbounded timeouts ──

test("timeoutMs: Infinity (or beyond 2^31-1 ms) does not fire at once; sleep(Infinity) waits for the signal", async () => {
  const hanging = createClient({
    baseUrl: BASE,
    apiKey: "k",
    fetch: async (req) => (new URL(req.url).pathname.endsWith("/stream") ? sse([], { hang: true }) : json(200, { id: "s", status: "pending", last_seq: 1 })),
  });
  for (const timeoutMs of [Infinity, 2 ** 40]) {
    const controller = new AbortController();
    setTimeout(() => controller.abort(new Error("enough")), 150);
    await assert.rejects(hanging.sessions.waitFor("o", "s", "running", { timeoutMs, signal: controller.signal }), /enough/, String(timeoutMs));
  }
  const controller = new AbortController();
  const started = Date.now();
  setTimeout(() => controller.abort(), 100);
  await sleep(Infinity, controller.signal);
  assert.ok(Date.now() - started >= 90);
});
