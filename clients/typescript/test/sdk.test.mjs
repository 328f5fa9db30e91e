// Offline tests of the hand-written layer against a fake fetch (run `npm run build` first).
// The SDK against the real server: contract-tests/journey.
import assert from "node:assert/strict";
import { test } from "node:test";
import { SseParser, createClient, isProblem } from "../dist/index.js";

const BASE = "http://agentdesk.test";
const problemBody = (status, code, extra = {}) => ({
  type: `urn:agentdesk:problem:${code}`,
  title: "T",
  status,
  detail: "d",
  code,
  ...extra,
});
const json = (status, body, type = "application/json; charset=utf-8") =>
  new Response(JSON.stringify(body), { status, headers: { "content-type": type } });
const problemResponse = (status, code, extra) => json(status, problemBody(status, code, extra), "application/problem+json");
const tokens = (n) => ({
  access_token: `access-${n}`,
  token_type: "Bearer",
  expires_in: 900,
  refresh_token: `refresh-${n}`,
  refresh_expires_in: 86400,
});

test("SseParser: fields, comments, multi-line data, CRLF split across chunks, id persistence", () => {
  const out = [];
  const p = new SseParser();
  const emit = (m) => out.push(m);
  p.feed(": heartbeat\r", emit);
  p.feed("\nid: 7\r\nevent: log\r\ndata: {\"a\":\r", emit);
  p.feed("\ndata: 1}\r\n\r", emit);
  p.feed("\ndata: no id\n\nretry: 1500\nevent: ignored-without-data\n\n", emit);
  assert.deepEqual(out, [
    { id: "7", event: "log", data: '{"a":\n1}' },
    { id: "7", event: "message", data: "no id" },
  ]);
  assert.equal(p.retryMs, 1500);
});

test("errors are Problem values; a non-problem error body becomes unexpected_response", async () => {
  const responses = [problemResponse(404, "not_found"), new Response("<html>bad gateway</html>", { status: 502 })];
  const c = createClient({ baseUrl: BASE, accessToken: "a", fetch: async () => responses.shift() });
  const notFound = await c.orgs.get("o");
  assert.equal(notFound.data, undefined);
  assert.ok(isProblem(notFound.error));
  assert.equal(notFound.error.code, "not_found");
  const gateway = await c.orgs.get("o");
  assert.ok(isProblem(gateway.error));
  assert.equal(gateway.error.code, "unexpected_response");
  assert.equal(gateway.error.status, 502);
  assert.match(gateway.error.detail, /bad gateway/);
});

test("network failures reject", async () => {
  const c = createClient({ baseUrl: BASE, fetch: async () => Promise.reject(new TypeError("fetch failed")) });
  await assert.rejects(c.me.get(), /fetch failed/);
});

test("credentials: bearer token, or X-API-Key", async () => {
  const seen = [];
  const fetch = async (req) => {
    seen.push([req.headers.get("authorization"), req.headers.get("x-api-key")]);
    return json(200, { id: "u" });
  };
  await createClient({ baseUrl: BASE, accessToken: "jwt", fetch }).me.get();
  await createClient({ baseUrl: BASE, apiKey: "key", fetch }).me.get();
  await createClient({ baseUrl: BASE, fetch }).me.get();
  assert.deepEqual(seen, [
    ["Bearer jwt", null],
    [null, "key"],
    [null, null],
  ]);
});

test("a 401 refreshes once and replays once; a second 401 is the result", async () => {
  const log = [];
  const fetch = async (req) => {
    const path = new URL(req.url).pathname;
    const body = req.method === "POST" ? await req.text() : "";
    log.push([req.method, path, req.headers.get("authorization"), body].filter(Boolean).join(" "));
    if (path === "/v1/auth/refresh") return json(200, tokens(2));
    return problemResponse(401, "invalid_token");
  };
  const refreshed = [];
  const c = createClient({ baseUrl: BASE, accessToken: "access-1", refreshToken: "refresh-1", fetch, onTokenRefresh: (t) => void refreshed.push(t) });
  const r = await c.orgs.create({ name: "x" });
  assert.equal(r.error?.code, "invalid_token");
  assert.deepEqual(log, [
    'POST /v1/orgs Bearer access-1 {"name":"x"}',
    'POST /v1/auth/refresh {"refresh_token":"refresh-1"}',
    'POST /v1/orgs Bearer access-2 {"name":"x"}',
  ]);
  assert.equal(refreshed.length, 1);
  assert.equal(c.tokens.refreshToken, "refresh-2");
});

test("concurrent 401s share one refresh; no refresh for /v1/auth/* or without a refresh token", async () => {
  let refreshes = 0;
  const fetch = async (req) => {
    const path = new URL(req.url).pathname;
    if (path === "/v1/auth/refresh") {
      refreshes += 1;
      await new Promise((r) => setTimeout(r, 20));
      return json(200, tokens(2));
    }
    if (path === "/v1/auth/login") return problemResponse(401, "invalid_credentials");
    return req.headers.get("authorization") === "Bearer access-2" ? json(200, { ok: true }) : problemResponse(401, "invalid_token");
  };
  const c = createClient({ baseUrl: BASE, accessToken: "access-1", refreshToken: "refresh-1", fetch });
  const results = await Promise.all([c.me.get(), c.orgs.list(), c.jobs.list("o"), c.agents.list("o")]);
  assert.ok(results.every((r) => r.data && !r.error));
  assert.equal(refreshes, 1);
  assert.equal((await c.auth.login({ email: "e", password: "p" })).error?.code, "invalid_credentials");
  assert.equal(refreshes, 1);
  const noRefresh = createClient({ baseUrl: BASE, accessToken: "access-1", fetch });
  assert.equal((await noRefresh.me.get()).error?.code, "invalid_token");
  assert.equal(refreshes, 1);
});

function sseResponse(text, { error } = {}) {
  const bytes = new TextEncoder().encode(text);
  let sent = false;
  return new Response(
    new ReadableStream({
      pull(controller) {
        if (!sent) {
          sent = true;
          return controller.enqueue(bytes);
        }
        if (error) controller.error(error);
        else controller.close();
      },
    }),
    { status: 200, headers: { "content-type": "text/event-stream" } },
  );
}
const sseEvent = (seq, kind, payload) =>
  `id: ${seq}\nevent: ${kind}\ndata: ${JSON.stringify({ seq, kind, payload, created_at: "2026-01-01T00:00:00Z" })}\n\n`;

test("events.stream resumes with Last-Event-ID after a drop and ends after the final status", async () => {
  const requests = [];
  const replies = [
    () => sseResponse(sseEvent(1, "status", { status: "running" }) + ": hb\n\n" + sseEvent(2, "log", {}) + "id: 3\ndata: {", { error: new TypeError("terminated") }),
    () => sseResponse(sseEvent(3, "message", {}) + sseEvent(4, "status", { status: "stopped" })),
  ];
  const fetch = async (req) => {
    requests.push({ url: req.url, lastEventId: req.headers.get("last-event-id"), auth: req.headers.get("authorization") });
    return replies.shift()();
  };
  const c = createClient({ baseUrl: BASE, accessToken: "a", fetch });
  const seqs = [];
  const end = await c.events.stream("o", "s", { onEvent: (e) => void seqs.push(e.seq), reconnect: { initialDelayMs: 1 } });
  assert.deepEqual(end, { reason: "final", lastSeq: 4 });
  assert.deepEqual(seqs, [1, 2, 3, 4]);
  assert.equal(requests.length, 2);
  assert.match(requests[0].url, /\/v1\/orgs\/o\/sessions\/s\/events\/stream\?after_seq=0$/);
  assert.equal(requests[0].lastEventId, null);
  assert.equal(requests[1].lastEventId, "2");
  assert.ok(requests.every((r) => r.auth === "Bearer a"));
});

test("events.stream: a problem on (re)connect is the result; retries are bounded", async () => {
  const c = createClient({ baseUrl: BASE, accessToken: "a", fetch: async () => problemResponse(403, "permission_denied") });
  const end = await c.events.stream("o", "s", { onEvent: () => {} });
  assert.equal(end.reason, "problem");
  assert.equal(end.error.code, "permission_denied");

  let calls = 0;
  const down = createClient({
    baseUrl: BASE,
    fetch: async () => {
      calls += 1;
      throw new TypeError("connect ECONNREFUSED");
    },
  });
  await assert.rejects(down.events.stream("o", "s", { onEvent: () => {}, reconnect: { maxRetries: 2, initialDelayMs: 1 } }), /ECONNREFUSED/);
  assert.equal(calls, 3);

  const aborted = await down.events.stream("o", "s", { onEvent: () => {}, signal: AbortSignal.abort() });
  assert.equal(aborted.reason, "aborted");
});
