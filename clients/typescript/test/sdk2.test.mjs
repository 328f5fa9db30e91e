// Offline tests of what 2.0 added: baseUrl check, unwrap/AgentdeskError, retries with
// idempotency keys, auto-pagination, the event iterator and waitFor, shared token stores.
// Run `npm run build` first. The SDK against the real server: contract-tests/.
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  AgentdeskError,
  createClient,
  inProcessRefreshLock,
  isCommandAction,
  isCommandResult,
  memoryTokenStore,
  retryAfterMs,
  storageTokenStore,
  unwrap,
} from "../dist/esm/index.js";

import { BASE, problemBody, json, problem, tokens } from "./fake-http.mjs";

/** A fetch answering from `handler(req, n)` (n: 0-based call count), recording method, path, headers and body. */
function scripted(handler) {
  const seen = [];
  const fetch = async (req) => {
    const url = new URL(req.url);
    const body = req.method === "GET" ? "" : await req.text();
    const entry = { method: req.method, path: url.pathname + url.search, headers: req.headers, body: body ? JSON.parse(body) : undefined };
    seen.push(entry);
    return handler(req, seen.length - 1, entry);
  };
  return { seen, fetch };
}

test("a baseUrl ending in /v1 is refused at construction, saying what to pass", () => {
  for (const bad of ["https://agentdesk.example.com/v1", "https://agentdesk.example.com/v1/", "http://127.0.0.1:8080/prefix/v1"]) {
    assert.throws(
      () => createClient({ baseUrl: bad }),
      (e) => e instanceof TypeError && e.message.includes("ends in /v1") && e.message.includes(`baseUrl: "${bad.replace(/\/v1\/?$/, "")}"`),
      bad,
    );
  }
  for (const good of ["https://agentdesk.example.com", "https://agentdesk.example.com/", "https://x.example.com/v1beta", ""]) {
    assert.doesNotThrow(() => createClient({ baseUrl: good }), good);
  }
});

test("unwrap / .unwrap(): the data, or an AgentdeskError carrying the problem and response", async () => {
  const { fetch } = scripted((req) =>
    new URL(req.url).pathname === "/v1/orgs/missing" ? problem(404, "not_found", { "x-request-id": "req-1" }, { request_id: "req-1" }) : json(200, { id: "o1", name: "Acme" }),
  );
  const c = createClient({ baseUrl: BASE, accessToken: "a", fetch });
  assert.deepEqual(await c.orgs.get("o1").unwrap(), { id: "o1", name: "Acme" });
  assert.deepEqual(unwrap(await c.orgs.get("o1")), { id: "o1", name: "Acme" });
  const error = await c.orgs.get("missing").unwrap().catch((e) => e);
  assert.ok(error instanceof AgentdeskError);
  assert.ok(error instanceof Error);
  assert.equal(error.name, "AgentdeskError");
  assert.equal(error.code, "not_found");
  assert.equal(error.status, 404);
  assert.equal(error.requestId, "req-1");
  assert.equal(error.message, "not_found: d-not_found");
  assert.equal(error.response.status, 404);
  assert.deepEqual(error.problem, problemBody(404, "not_found", { request_id: "req-1" }));
  assert.throws(() => unwrap({ error: error.problem, response: error.response }), AgentdeskError);
  // The same check for an error made by another copy of the class (e.g. the CommonJS build).
  const foreign = Object.assign(new Error("x"), { [Symbol.for("@agentdesk/client.AgentdeskError")]: true });
  assert.ok(foreign instanceof AgentdeskError);
  assert.ok(!(new Error("plain") instanceof AgentdeskError));
});

test("the five idempotent POSTs carry an Idempotency-Key; the caller's wins; other POSTs carry none", async () => {
  const { seen, fetch } = scripted(() => json(200, {}));
  const c = createClient({ baseUrl: BASE, accessToken: "a", fetch });
  await c.agents.create("o", { name: "n", model: "m" });
  await c.sessions.create("o", { agent_id: "a", timeout_s: undefined });
  await c.sessions.stop("o", "s");
  await c.events.append("o", "s", { events: [{ kind: "log", payload: {} }] });
  await c.commands.create("o", "s", { kind: "click", args: { x: 1, y: 2 } });
  await c.sessions.create("o", { agent_id: "a" }, { idempotencyKey: "mine" });
  await c.orgs.create({ name: "x" });
  await c.auth.login({ email: "e", password: "p" });
  const keys = seen.map((r) => r.headers.get("idempotency-key"));
  const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
  for (const key of keys.slice(0, 5)) assert.match(key, uuid);
  assert.equal(new Set(keys.slice(0, 5)).size, 5, "a new key per call");
  assert.deepEqual(keys.slice(5), ["mine", null, null]);
  assert.deepEqual(seen[1].body, { agent_id: "a" }, "an undefined field is not sent");
});

test("retries: 503 then 429 with Retry-After, then success; the same Idempotency-Key each time", async () => {
  const started = Date.now();
  const { seen, fetch } = scripted((_req, n) =>
    n === 0 ? problem(503, "unavailable", { "retry-after": "0" }) : n === 1 ? problem(429, "rate_limited", { "retry-after": "1" }) : json(202, { id: "s1" }),
  );
  const c = createClient({ baseUrl: BASE, accessToken: "a", fetch });
  const created = await c.sessions.create("o", { agent_id: "a" });
  assert.equal(created.data?.id, "s1");
  assert.equal(seen.length, 3);
  assert.equal(new Set(seen.map((r) => r.headers.get("idempotency-key"))).size, 1, "one key across the retries");
  assert.ok(seen.every((r) => r.body.agent_id === "a"), "the body is sent again each time");
  assert.ok(Date.now() - started >= 950, "waited Retry-After: 1");
});

test("retries: network errors and 502 on GET; bounded by maxRetries; the last answer is the result", async () => {
  const { seen, fetch } = scripted((_req, n) => {
    if (n === 0) throw new TypeError("fetch failed");
    return problem(502, "unavailable");
  });
  const c = createClient({ baseUrl: BASE, accessToken: "a", fetch });
  const r = await c.orgs.list();
  assert.equal(seen.length, 3, "1 + maxRetries (2)");
  assert.equal(r.error?.status, 502);

  const once = scripted(() => problem(503, "unavailable", { "retry-after": "0" }));
  const c2 = createClient({ baseUrl: BASE, fetch: once.fetch, maxRetries: 5 });
  await c2.permissions.list({ maxRetries: 1 });
  assert.equal(once.seen.length, 2, "the call's maxRetries wins");
});

test("retries: never a POST without an Idempotency-Key, nor a refresh; 409 idempotency_key_in_use is retried", async () => {
  const { seen, fetch } = scripted(() => problem(503, "unavailable", { "retry-after": "0" }));
  const c = createClient({ baseUrl: BASE, accessToken: "a", refreshToken: "r", fetch });
  await c.orgs.create({ name: "x" });
  await c.auth.refresh();
  await c.me.update({ display_name: "x" });
  assert.deepEqual(
    seen.map((r) => r.method + " " + r.path),
    ["POST /v1/orgs", "POST /v1/auth/refresh", "PATCH /v1/me"],
  );

  const busy = scripted((_req, n) => (n === 0 ? problem(409, "idempotency_key_in_use", { "retry-after": "0" }) : json(201, { first_seq: 1, last_seq: 1 })));
  const c2 = createClient({ baseUrl: BASE, accessToken: "a", fetch: busy.fetch });
  const appended = await c2.events.append("o", "s", { events: [{ kind: "log", payload: {} }] });
  assert.equal(appended.data?.last_seq, 1);
  assert.equal(busy.seen.length, 2);
  const other409 = scripted(() => problem(409, "invalid_transition"));
  await createClient({ baseUrl: BASE, fetch: other409.fetch }).sessions.stop("o", "s");
  assert.equal(other409.seen.length, 1, "other 409s are answers, not retried");
});

test("retries: a Retry-After beyond 60 s is the result at once; a signal aborts the wait", async () => {
  const { seen, fetch } = scripted(() => problem(429, "session_limit_reached", { "retry-after": "3600" }));
  const c = createClient({ baseUrl: BASE, accessToken: "a", fetch });
  const r = await c.sessions.create("o", { agent_id: "a" });
  assert.equal(r.error?.code, "session_limit_reached");
  assert.equal(seen.length, 1);

  const slow = scripted(() => problem(503, "unavailable", { "retry-after": "30" }));
  const c2 = createClient({ baseUrl: BASE, fetch: slow.fetch });
  const started = Date.now();
  await assert.rejects(c2.permissions.list({ signal: AbortSignal.timeout(100) }), (e) => e.name === "TimeoutError");
  assert.ok(Date.now() - started < 5_000, "the abort ended the 30 s wait");
  assert.equal(slow.seen.length, 1);
  assert.equal(retryAfterMs(new Response(null, { headers: { "retry-after": new Date(Date.now() + 5_000).toUTCString() } })) > 3_000, true, "an HTTP date");
});

test("listAll pages through next_cursor lists and the event log (after_seq / next_after_seq / has_more)", async () => {
  const { seen, fetch } = scripted((req) => {
    const url = new URL(req.url);
    if (url.pathname === "/v1/orgs/o/sessions") {
      const cursor = url.searchParams.get("cursor");
      if (!cursor) return json(200, { items: [{ id: "s1" }, { id: "s2" }], next_cursor: "c2" });
      if (cursor === "c2") return json(200, { items: [{ id: "s3" }], next_cursor: "c3" });
      return json(200, { items: [] });
    }
    const after = Number(url.searchParams.get("after_seq"));
    const items = [after + 1, after + 2].filter((s) => s <= 5).map((seq) => ({ seq, kind: "log", payload: {}, created_at: "t" }));
    return json(200, { items, next_after_seq: items.at(-1)?.seq ?? after, has_more: after + 2 < 5 });
  });
  const c = createClient({ baseUrl: BASE, accessToken: "a", fetch });
  const ids = [];
  for await (const s of c.sessions.listAll("o", { status: "running", limit: 2 })) ids.push(s.id);
  assert.deepEqual(ids, ["s1", "s2", "s3"]);
  assert.deepEqual(
    seen.map((r) => r.path),
    ["/v1/orgs/o/sessions?status=running&limit=2", "/v1/orgs/o/sessions?status=running&limit=2&cursor=c2", "/v1/orgs/o/sessions?status=running&limit=2&cursor=c3"],
  );
  assert.deepEqual((await c.sessions.listAll("o").toArray(2)).map((s) => s.id), ["s1", "s2"], "toArray(max) stops early");
  seen.length = 0;
  const seqs = (await c.events.listAll("o", "s", { limit: 2 }).toArray()).map((e) => e.seq);
  assert.deepEqual(seqs, [1, 2, 3, 4, 5]);
  assert.deepEqual(seen.map((r) => new URL(r.path, BASE).searchParams.get("after_seq")), ["0", "2", "4"]);
  assert.deepEqual((await c.events.listAll("o", "s", { after_seq: 3 }).toArray()).map((e) => e.seq), [4, 5]);

  const refusing = createClient({ baseUrl: BASE, fetch: async () => problem(403, "permission_denied") });
  await assert.rejects(async () => {
    for await (const _ of refusing.agents.listAll("o")) assert.fail("no item");
  }, (e) => e instanceof AgentdeskError && e.code === "permission_denied");
});

// ── The event stream ──

function sseBody(chunks, { error } = {}) {
  const encoder = new TextEncoder();
  const queue = [...chunks];
  return new ReadableStream({
    pull(controller) {
      const next = queue.shift();
      if (next !== undefined) return controller.enqueue(encoder.encode(next));
      if (error) controller.error(error);
      else controller.close();
    },
  });
}
const sse = (chunks, opts) => new Response(sseBody(chunks, opts), { status: 200, headers: { "content-type": "text/event-stream" } });
const ev = (seq, kind, payload) => `id: ${seq}\nevent: ${kind}\ndata: ${JSON.stringify({ seq, kind, payload, created_at: "2026-01-01T00:00:00Z" })}\n\n`;

test("events.iterate: typed events in order across a dropped connection (resumed with ?after_seq=), no duplicate, ends on the final status", async () => {
  const urls = [];
  const replies = [
    // Drops mid-event, after seq 2; the next connection replays 2 again (a server resuming from an older seq).
    () => sse([ev(1, "status", { status: "running", previous_status: "provisioning" }), ": heartbeat\n\n", ev(2, "action", { command_id: "c1", kind: "click", args: { x: 1 } }), "id: 3\nevent: log\nda"], { error: new TypeError("terminated") }),
    () => sse([ev(2, "action", { command_id: "c1", kind: "click", args: { x: 1 } }), ev(3, "action", { tool: "look" }), ev(4, "result", { command_id: "c1", kind: "click", status: "succeeded", result: { kind: "click" } })]),
    () => sse([ev(5, "status", { status: "stopped", previous_status: "stopping" }), ev(6, "log", { never: "after the final status" })]),
  ];
  const c = createClient({
    baseUrl: BASE,
    apiKey: "ad_k_s",
    fetch: async (req) => {
      urls.push(new URL(req.url).search);
      return replies.shift()();
    },
  });
  const it = c.events.iterate("o", "s", { reconnect: { initialDelayMs: 1 } });
  const got = [];
  for await (const e of it) {
    got.push(e.seq);
    if (e.seq === 2) assert.ok(isCommandAction(e) && e.payload.command_id === "c1");
    if (e.seq === 3) assert.ok(e.kind === "action" && !isCommandAction(e), "a client's action payload is not taken for the server's");
    if (e.seq === 4) assert.ok(isCommandResult(e) && e.payload.status === "succeeded");
  }
  assert.deepEqual(got, [1, 2, 3, 4, 5]);
  assert.equal(it.lastSeq, 5);
  assert.deepEqual(urls, ["?after_seq=0", "?after_seq=2", "?after_seq=4"]);
});

test("events.iterate: a refused connect throws AgentdeskError; an abort rejects with its reason; break closes the stream", async () => {
  const refusing = createClient({ baseUrl: BASE, fetch: async () => problem(404, "not_found") });
  await assert.rejects(async () => {
    for await (const _ of refusing.events.iterate("o", "s")) assert.fail("no event");
  }, (e) => e instanceof AgentdeskError && e.code === "not_found" && e.status === 404);

  let cancelled = false;
  const endless = new ReadableStream({
    start(controller) {
      controller.enqueue(new TextEncoder().encode(ev(1, "log", {}) + ev(2, "log", {})));
    },
    cancel() {
      cancelled = true;
    },
  });
  const c = createClient({ baseUrl: BASE, fetch: async () => new Response(endless, { status: 200, headers: { "content-type": "text/event-stream" } }) });
  for await (const e of c.events.iterate("o", "s", { afterSeq: 0 })) {
    if (e.seq === 2) break;
  }
  assert.ok(cancelled, "leaving the loop cancelled the response body");

  const hanging = createClient({ baseUrl: BASE, fetch: async () => new Response(new ReadableStream({}), { status: 200 }) });
  const controller = new AbortController();
  setTimeout(() => controller.abort(new Error("enough")), 20);
  await assert.rejects(async () => {
    for await (const _ of hanging.events.iterate("o", "s", { signal: controller.signal })) assert.fail("no event");
  }, /enough/);
});

/** A fake server for waitFor: a session whose status follows `statuses`, one status event per step on the stream. */
function sessionServer(initial, steps, { reason } = {}) {
  let status = initial;
  let lastSeq = 3;
  return async (req) => {
    const url = new URL(req.url);
    if (url.pathname.endsWith("/events/stream")) {
      const events = steps.map((next, i) => {
        const previous = i === 0 ? initial : steps[i - 1];
        return ev(lastSeq + i + 1, "status", { status: next, previous_status: previous });
      });
      status = steps.at(-1) ?? status;
      lastSeq += steps.length;
      return sse(events);
    }
    return json(200, { id: "s", status, last_seq: lastSeq, ...(reason && status === "failed" ? { status_reason: reason } : {}) });
  };
}

test("sessions.waitFor: at once when already there; through the stream otherwise; status_unreachable on a final status; timeout", async () => {
  const already = createClient({ baseUrl: BASE, fetch: sessionServer("running", []) });
  const now = await already.sessions.waitFor("o", "s", "running");
  assert.equal(now.data?.status, "running");

  const later = createClient({ baseUrl: BASE, fetch: sessionServer("pending", ["provisioning", "running"]) });
  assert.equal((await later.sessions.waitFor("o", "s", "running")).data?.status, "running");

  const failing = createClient({ baseUrl: BASE, fetch: sessionServer("provisioning", ["failed"], { reason: "desktop did not start" }) });
  const failed = await failing.sessions.waitFor("o", "s", "running");
  assert.equal(failed.error?.code, "status_unreachable");
  assert.equal(failed.error?.current_status, "failed");
  assert.match(failed.error?.detail ?? "", /desktop did not start/);
  await assert.rejects(failing.sessions.waitFor("o", "s", "running").unwrap(), (e) => e instanceof AgentdeskError && e.code === "status_unreachable");

  const past = createClient({ baseUrl: BASE, fetch: sessionServer("stopping", []) });
  assert.equal((await past.sessions.waitFor("o", "s", "running")).error?.code, "status_unreachable", "running cannot follow stopping");

  const stuck = createClient({
    baseUrl: BASE,
    fetch: async (req) => (new URL(req.url).pathname.endsWith("/stream") ? new Response(new ReadableStream({}), { status: 200 }) : json(200, { id: "s", status: "pending", last_seq: 1 })),
  });
  const started = Date.now();
  const timedOut = await stuck.sessions.waitFor("o", "s", "running", { timeoutMs: 100 });
  assert.equal(timedOut.error?.code, "timeout");
  assert.match(timedOut.error?.detail ?? "", /still `pending`/);
  assert.ok(Date.now() - started < 3_000);
});

// ── Token stores and refresh ──

test("two clients sharing a store: concurrent 401s make one refresh; the other client uses the rotated pair", async () => {
  let refreshes = 0;
  const server = async (req) => {
    const path = new URL(req.url).pathname;
    if (path === "/v1/auth/refresh") {
      refreshes += 1;
      const { refresh_token } = await req.json();
      await new Promise((r) => setTimeout(r, 30));
      return refresh_token === "refresh-1" ? json(200, tokens(2)) : problem(401, "invalid_refresh_token");
    }
    return req.headers.get("authorization") === "Bearer access-2" ? json(200, { id: "u" }) : problem(401, "invalid_token");
  };
  const store = memoryTokenStore({ access_token: "access-1", refresh_token: "refresh-1" });
  const rotated = [];
  const tabA = createClient({ baseUrl: BASE, tokenStore: store, fetch: server, onTokenRefresh: (t) => void rotated.push(["A", t.access_token]) });
  const tabB = createClient({ baseUrl: BASE, tokenStore: store, fetch: server, onTokenRefresh: (t) => void rotated.push(["B", t.access_token]) });
  const results = await Promise.all([tabA.me.get(), tabB.me.get(), tabA.orgs.list(), tabB.orgs.list()]);
  assert.ok(results.every((r) => r.response.status === 200), JSON.stringify(results.map((r) => r.error)));
  assert.equal(refreshes, 1, "one refresh for both clients");
  assert.equal(rotated.length, 1, "onTokenRefresh in the client that rotated");
  assert.deepEqual(await store.get(), { access_token: "access-2", refresh_token: "refresh-2" });

  // Without serialising (a lock that does not lock), both present refresh-1: the second is a reuse.
  refreshes = 0;
  const store2 = memoryTokenStore({ access_token: "access-1", refresh_token: "refresh-1" });
  const noLock = (_name, fn) => fn();
  const a = createClient({ baseUrl: BASE, tokenStore: store2, fetch: server, refreshLock: noLock });
  const b = createClient({ baseUrl: BASE, tokenStore: store2, fetch: server, refreshLock: noLock });
  await Promise.all([a.me.get(), b.me.get()]);
  assert.equal(refreshes, 2, "the control case: two refreshes with the same token");
});

test("storageTokenStore: JSON under a key, shared by clients, cleared on logout; the in-process lock serialises", async () => {
  const data = new Map();
  const storage = { getItem: (k) => data.get(k) ?? null, setItem: (k, v) => void data.set(k, v), removeItem: (k) => void data.delete(k) };
  const store = storageTokenStore(storage, "app.tokens");
  assert.equal(store.get(), undefined);
  assert.equal(store.lockName, "@agentdesk/client:refresh:app.tokens");
  const { fetch } = scripted((req) => (new URL(req.url).pathname === "/v1/auth/login" ? json(200, tokens(1)) : new Response(null, { status: 204 })));
  const one = createClient({ baseUrl: BASE, tokenStore: store, fetch });
  const two = createClient({ baseUrl: BASE, tokenStore: store, fetch });
  await one.auth.login({ email: "e", password: "p" });
  assert.deepEqual(JSON.parse(data.get("app.tokens")), { access_token: "access-1", refresh_token: "refresh-1" });
  await two.me.get();
  assert.equal(two.tokens.accessToken, "access-1", "the other client read the shared store");
  await two.auth.logout();
  assert.equal(data.has("app.tokens"), false, "logout cleared the shared store");
  storage.setItem("app.tokens", "not json");
  assert.equal(store.get(), undefined);

  const order = [];
  await Promise.all(
    [1, 2, 3].map((n) =>
      inProcessRefreshLock("l", async () => {
        order.push(`in ${n}`);
        await new Promise((r) => setTimeout(r, 5));
        order.push(`out ${n}`);
      }),
    ),
  );
  assert.deepEqual(order, ["in 1", "out 1", "in 2", "out 2", "in 3", "out 3"]);
});
