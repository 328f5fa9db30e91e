// Offline tests of the hand-written layer against a fake fetch (run `npm run build` first).
// The SDK against the real server: contract-tests/journey.
import assert from "node:assert/strict";
import { test } from "node:test";
import { createClient, isProblem } from "../dist/esm/index.js";

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

test("errors are Problem values; a non-problem error body becomes unexpected_response", async () => {
  const responses = [problemResponse(404, "not_found"), new Response("<html>bad gateway</html>", { status: 502 })];
  const c = createClient({ baseUrl: BASE, accessToken: "a", maxRetries: 0, fetch: async () => responses.shift() });
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

test("network failures reject once the retries are spent", async () => {
  let calls = 0;
  const c = createClient({
    baseUrl: BASE,
    maxRetries: 0,
    fetch: async () => {
      calls += 1;
      throw new TypeError("fetch failed");
    },
  });
  await assert.rejects(c.me.get(), /fetch failed/);
  assert.equal(calls, 1);
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

/** A fetch that records each request (method, path with query, headers, body) and answers `reply(req)` or 200 `{}`. */
function recorder(reply = () => json(200, {})) {
  const seen = [];
  const fetch = async (req) => {
    const url = new URL(req.url);
    const body = req.method === "GET" || req.method === "HEAD" ? "" : await req.text();
    seen.push({ method: req.method, path: url.pathname + url.search, headers: req.headers, body: body ? JSON.parse(body) : undefined });
    return reply(req);
  };
  return { seen, fetch };
}

test("roles, API keys, invitations, permissions, me: methods, paths and bodies", async () => {
  const { seen, fetch } = recorder((req) => (req.method === "DELETE" || new URL(req.url).pathname === "/v1/me/logout-all" ? new Response(null, { status: 204 }) : json(200, {})));
  const c = createClient({ baseUrl: `${BASE}/`, accessToken: "jwt", fetch });
  await c.permissions.list();
  await c.roles.list("o");
  await c.roles.get("o", "support");
  await c.roles.create("o", { name: "support", permissions: ["sessions:read"] });
  await c.roles.update("o", "support", { permissions: ["sessions:read", "agents:read"] }, { ifMatch: '"1"' });
  await c.roles.delete("o", "support");
  await c.apiKeys.create("o", { name: "ci", role: "support" });
  await c.apiKeys.list("o", { limit: 10 });
  await c.apiKeys.revoke("o", "k");
  await c.invitations.create("o", { email: "bob@example.com", role: "support", expires_in_s: 3600 });
  await c.invitations.list("o", { cursor: "c" });
  await c.invitations.revoke("o", "i");
  await c.invitations.accept("inv_abc");
  await c.audit.list("o", { actor_id: "u", since: "2026-01-01T00:00:00Z" });
  await c.me.export();
  await c.me.logoutAll();
  await c.setTokens({ access_token: "jwt" }); // logout-all made the client forget it
  await c.me.delete();
  assert.deepEqual(
    seen.map((r) => [r.method, r.path, r.body]),
    [
      ["GET", "/v1/permissions", undefined],
      ["GET", "/v1/orgs/o/roles", undefined],
      ["GET", "/v1/orgs/o/roles/support", undefined],
      ["POST", "/v1/orgs/o/roles", { name: "support", permissions: ["sessions:read"] }],
      ["PUT", "/v1/orgs/o/roles/support", { permissions: ["sessions:read", "agents:read"] }],
      ["DELETE", "/v1/orgs/o/roles/support", undefined],
      ["POST", "/v1/orgs/o/api-keys", { name: "ci", role: "support" }],
      ["GET", "/v1/orgs/o/api-keys?limit=10", undefined],
      ["DELETE", "/v1/orgs/o/api-keys/k", undefined],
      ["POST", "/v1/orgs/o/invitations", { email: "bob@example.com", role: "support", expires_in_s: 3600 }],
      ["GET", "/v1/orgs/o/invitations?cursor=c", undefined],
      ["DELETE", "/v1/orgs/o/invitations/i", undefined],
      ["POST", "/v1/invitations/inv_abc/accept", undefined],
      ["GET", "/v1/orgs/o/audit-events?actor_id=u&since=2026-01-01T00%3A00%3A00Z", undefined],
      ["GET", "/v1/me/export", undefined],
      ["POST", "/v1/me/logout-all", undefined],
      ["DELETE", "/v1/me", undefined],
    ],
  );
  assert.ok(seen.every((r) => r.headers.get("authorization") === "Bearer jwt"));
  // Path parameters are encoded.
  await c.roles.get("o", "a/b c");
  await c.invitations.accept("inv_x?y#z");
  assert.deepEqual(
    seen.slice(-2).map((r) => r.path),
    ["/v1/orgs/o/roles/a%2Fb%20c", "/v1/invitations/inv_x%3Fy%23z/accept"],
  );
});

test("roles.update sends If-Match; the other helpers do not", async () => {
  const { seen, fetch } = recorder();
  const c = createClient({ baseUrl: BASE, accessToken: "jwt", fetch });
  await c.roles.update("o", "support", { description: "d", permissions: [] }, { ifMatch: '"3"', headers: { "X-Request-Id": "r1" } });
  await c.roles.get("o", "support");
  assert.equal(seen[0].headers.get("if-match"), '"3"');
  assert.equal(seen[0].headers.get("x-request-id"), "r1");
  assert.equal(seen[0].headers.get("content-type"), "application/json");
  assert.equal(seen[1].headers.get("if-match"), null);
});

test("an API key goes as X-API-Key on the new operations, never as Bearer, and a 401 triggers no refresh", async () => {
  const { seen, fetch } = recorder((req) =>
    new URL(req.url).pathname.endsWith("/roles") ? problemResponse(401, "invalid_token") : json(200, { items: [] }),
  );
  const c = createClient({ baseUrl: BASE, apiKey: "ad_pfx_secret", fetch });
  assert.equal((await c.apiKeys.list("o")).response.status, 200);
  assert.equal((await c.invitations.list("o")).response.status, 200);
  assert.equal((await c.roles.list("o")).error?.code, "invalid_token");
  assert.deepEqual(
    seen.map((r) => [r.path, r.headers.get("x-api-key"), r.headers.get("authorization")]),
    [
      ["/v1/orgs/o/api-keys", "ad_pfx_secret", null],
      ["/v1/orgs/o/invitations", "ad_pfx_secret", null],
      ["/v1/orgs/o/roles", "ad_pfx_secret", null],
    ],
  );
});

test("auth.oidcAuthorizeUrl builds the authorize URL without a request", () => {
  let calls = 0;
  const fetch = async () => {
    calls += 1;
    return json(200, {});
  };
  const c = createClient({ baseUrl: `${BASE}/`, fetch });
  assert.equal(
    c.auth.oidcAuthorizeUrl("corp sso", "https://app.example.com/login/done?from=/x&y=1"),
    `${BASE}/v1/auth/oidc/corp%20sso/authorize?redirect_uri=https%3A%2F%2Fapp.example.com%2Flogin%2Fdone%3Ffrom%3D%2Fx%26y%3D1`,
  );
  assert.equal(
    createClient({ baseUrl: BASE }).auth.oidcAuthorizeUrl("google", "http://localhost:5173/sso"),
    `${BASE}/v1/auth/oidc/google/authorize?redirect_uri=http%3A%2F%2Flocalhost%3A5173%2Fsso`,
  );
  assert.equal(calls, 0);
});

test("auth.oidcExchange stores the pair; me.logoutAll and me.delete forget both tokens", async () => {
  const { seen, fetch } = recorder((req) => {
    const path = new URL(req.url).pathname;
    if (path === "/v1/auth/oidc/exchange") return json(200, tokens(7));
    return new Response(null, { status: 204 });
  });
  const c = createClient({ baseUrl: BASE, fetch });
  const exchanged = await c.auth.oidcExchange({ code: "one-time" });
  assert.equal(exchanged.data?.access_token, "access-7");
  assert.deepEqual(seen[0].body, { code: "one-time" });
  assert.equal(seen[0].headers.get("authorization"), null);
  assert.deepEqual(c.tokens, { accessToken: "access-7", refreshToken: "refresh-7" });
  const out = await c.me.logoutAll();
  assert.equal(out.error, undefined);
  assert.equal(out.data, undefined);
  assert.equal(seen[1].headers.get("authorization"), "Bearer access-7");
  assert.deepEqual(c.tokens, { accessToken: undefined, refreshToken: undefined }, "logout-all ends the access token at once too");
  await c.setTokens(tokens(8));
  await c.me.delete();
  assert.deepEqual(c.tokens, { accessToken: undefined, refreshToken: undefined });

  // A refused call keeps the tokens.
  const refusing = createClient({ baseUrl: BASE, accessToken: "a", refreshToken: "r", fetch: async () => problemResponse(409, "last_owner") });
  assert.equal((await refusing.me.delete()).error?.code, "last_owner");
  assert.deepEqual(refusing.tokens, { accessToken: "a", refreshToken: "r" });
});

test("signup, verifyEmail, sendVerification, leaveOrg, deprecated register and members.add: methods, paths, bodies, credentials", async () => {
  const { seen, fetch } = recorder((req) => {
    const path = new URL(req.url).pathname;
    if (path === "/v1/auth/signup") return json(202, { email: "ada@example.com", status: "verification_sent" });
    if (path === "/v1/auth/register") return json(201, { id: "u", email: "ada@example.com", email_verified: false });
    if (path === "/v1/auth/verify-email" || req.method === "DELETE") return new Response(null, { status: 204 });
    if (path === "/v1/me/email-verification") return new Response(null, { status: 202 });
    if (path === "/v1/orgs/o/members") return json(202, { id: "i", token: "inv_x", accept_url: "https://app/invitations/accept#token=inv_x" });
    return json(200, {});
  });
  const anonymous = createClient({ baseUrl: BASE, fetch });
  const body = { email: "Ada@Example.com", password: "at least 12 chars", display_name: "Ada" };
  const signedUp = await anonymous.auth.signup(body);
  assert.deepEqual([signedUp.response.status, signedUp.data], [202, { email: "ada@example.com", status: "verification_sent" }]);
  const verified = await anonymous.auth.verifyEmail({ token: "ev_abc" });
  assert.deepEqual([verified.response.status, verified.data, verified.error], [204, undefined, undefined]);
  const registered = await anonymous.auth.register(body);
  assert.equal(registered.data?.email_verified, false);
  assert.deepEqual(anonymous.tokens, { accessToken: undefined, refreshToken: undefined }, "signing up logs nobody in");

  const c = createClient({ baseUrl: BASE, accessToken: "jwt", refreshToken: "r", fetch });
  const sent = await c.me.sendVerification();
  assert.deepEqual([sent.response.status, sent.data, sent.error], [202, undefined, undefined]);
  const left = await c.me.leaveOrg("o/1");
  assert.deepEqual([left.response.status, left.data, left.error], [204, undefined, undefined]);
  const invited = await c.members.add("o", { email: "bob@example.com", role: "viewer" });
  assert.equal(invited.response.status, 202);
  assert.ok(invited.data && "token" in invited.data && invited.data.token === "inv_x");
  assert.deepEqual(c.tokens, { accessToken: "jwt", refreshToken: "r" }, "none of these touch the tokens");

  assert.deepEqual(
    seen.map((r) => [r.method, r.path, r.body, r.headers.get("authorization")]),
    [
      ["POST", "/v1/auth/signup", body, null],
      ["POST", "/v1/auth/verify-email", { token: "ev_abc" }, null],
      ["POST", "/v1/auth/register", body, null],
      ["POST", "/v1/me/email-verification", undefined, "Bearer jwt"],
      ["DELETE", "/v1/me/memberships/o%2F1", undefined, "Bearer jwt"],
      ["POST", "/v1/orgs/o/members", { email: "bob@example.com", role: "viewer" }, "Bearer jwt"],
    ],
  );

  // Typed problems of the new operations.
  const refusing = createClient({
    baseUrl: BASE,
    accessToken: "jwt",
    fetch: async (req) => {
      const path = new URL(req.url).pathname;
      if (path === "/v1/auth/verify-email") return problemResponse(400, "invalid_verification_token");
      if (path === "/v1/me/email-verification") return problemResponse(409, "email_already_verified");
      return problemResponse(409, "last_owner");
    },
  });
  assert.equal((await refusing.auth.verifyEmail({ token: "ev_used" })).error?.code, "invalid_verification_token");
  assert.equal((await refusing.me.sendVerification()).error?.code, "email_already_verified");
  assert.equal((await refusing.me.leaveOrg("o")).error?.code, "last_owner");
});

test("me.update forgets the tokens after a password change (the server ends them), not after a rename", async () => {
  const { seen, fetch } = recorder(() => json(200, { id: "u", display_name: "Ada" }));
  const c = createClient({ baseUrl: BASE, accessToken: "a", refreshToken: "r", fetch });
  await c.me.update({ display_name: "Ada L." });
  assert.deepEqual(c.tokens, { accessToken: "a", refreshToken: "r" });
  await c.me.update({ current_password: "old password!", new_password: "new password, 12+" });
  assert.deepEqual(c.tokens, { accessToken: undefined, refreshToken: undefined });
  assert.deepEqual(
    seen.map((r) => [r.method, r.path]),
    [
      ["PATCH", "/v1/me"],
      ["PATCH", "/v1/me"],
    ],
  );
  // A refused password change keeps them.
  const refusing = createClient({ baseUrl: BASE, accessToken: "a", refreshToken: "r", fetch: async () => problemResponse(422, "validation_failed") });
  assert.equal((await refusing.me.update({ current_password: "wrong", new_password: "new password, 12+" })).error?.code, "validation_failed");
  assert.deepEqual(refusing.tokens, { accessToken: "a", refreshToken: "r" });
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

test("events.stream resumes with ?after_seq= after a drop and ends after the final status", async () => {
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
  assert.match(requests[1].url, /\/v1\/orgs\/o\/sessions\/s\/events\/stream\?after_seq=2$/, "resumes after the last whole event");
  assert.ok(requests.every((r) => r.lastEventId === null), "no Last-Event-ID header (it would need a CORS preflight of its own)");
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

/** A WebSocket stand-in that records how it was constructed. */
class FakeSocket {
  static made = [];
  binaryType = "blob";
  constructor(url, protocols) {
    this.url = url;
    this.protocols = protocols;
    FakeSocket.made.push(this);
  }
}
const ticketOut = (mode) => ({
  ticket: "t0k3n",
  ws_url: "wss://agentdesk.test/v1/orgs/o/sessions/s/desktop/ws",
  mode,
  expires_at: "2026-01-01T00:01:00Z",
  protocols: ["binary", "agentdesk.ticket.t0k3n"],
});

test("desktop.ticket mints a ticket; desktop.open opens the socket with its URL and protocols, binaryType arraybuffer", async () => {
  FakeSocket.made = [];
  const { seen, fetch } = recorder(() => json(201, ticketOut("view")));
  const c = createClient({ baseUrl: BASE, accessToken: "jwt", fetch });
  const t = await c.desktop.ticket("o", "s/1", "control", { headers: { "X-Request-Id": "r1" } });
  assert.equal(t.response.status, 201);
  assert.deepEqual(t.data.protocols, ["binary", "agentdesk.ticket.t0k3n"]);
  const opened = await c.desktop.open("o", "s", { mode: "view", WebSocket: FakeSocket });
  assert.equal(opened.error, undefined);
  assert.ok(opened.data instanceof FakeSocket);
  assert.equal(opened.data.url, "wss://agentdesk.test/v1/orgs/o/sessions/s/desktop/ws");
  assert.deepEqual(opened.data.protocols, ["binary", "agentdesk.ticket.t0k3n"]);
  assert.equal(opened.data.binaryType, "arraybuffer");
  assert.equal(FakeSocket.made.length, 1);
  assert.deepEqual(
    seen.map((r) => [r.method, r.path, r.body, r.headers.get("authorization")]),
    [
      ["POST", "/v1/orgs/o/sessions/s%2F1/desktop/tickets", { mode: "control" }, "Bearer jwt"],
      ["POST", "/v1/orgs/o/sessions/s/desktop/tickets", { mode: "view" }, "Bearer jwt"],
    ],
  );
  assert.equal(seen[0].headers.get("x-request-id"), "r1");
  assert.equal(seen[1].headers.get("idempotency-key"), null);
});

test("desktop.open: a refused ticket is the result and no socket is opened; the global WebSocket is the default; none → rejects before any request", async () => {
  FakeSocket.made = [];
  const refusing = createClient({ baseUrl: BASE, apiKey: "ad_p_s", fetch: async () => problemResponse(409, "session_not_running", { current_status: "stopped" }) });
  const refused = await refusing.desktop.open("o", "s", { mode: "control", WebSocket: FakeSocket });
  assert.equal(refused.data, undefined);
  assert.equal(refused.error.code, "session_not_running");
  assert.equal(refused.response.status, 409);
  assert.equal(FakeSocket.made.length, 0);

  const saved = Object.getOwnPropertyDescriptor(globalThis, "WebSocket");
  let calls = 0;
  const c = createClient({
    baseUrl: BASE,
    accessToken: "jwt",
    fetch: async () => {
      calls += 1;
      return json(201, ticketOut("view"));
    },
  });
  try {
    globalThis.WebSocket = FakeSocket;
    const opened = await c.desktop.open("o", "s", { mode: "view" });
    assert.ok(opened.data instanceof FakeSocket);
    assert.equal(opened.data.binaryType, "arraybuffer");
    delete globalThis.WebSocket;
    await assert.rejects(c.desktop.open("o", "s", { mode: "view" }), (e) => e instanceof TypeError && /WebSocket/.test(e.message));
    assert.equal(calls, 1, "no ticket is spent without a WebSocket");
  } finally {
    if (saved) Object.defineProperty(globalThis, "WebSocket", saved);
    else delete globalThis.WebSocket;
  }
});

test("auth.oidcProviders lists the SSO providers without credentials", async () => {
  const { seen, fetch } = recorder(() => json(200, { items: [{ name: "corp" }, { name: "google" }] }));
  const c = createClient({ baseUrl: BASE, fetch });
  const listed = await c.auth.oidcProviders();
  assert.deepEqual(listed.data, { items: [{ name: "corp" }, { name: "google" }] });
  assert.deepEqual(
    seen.map((r) => [r.method, r.path, r.headers.get("authorization")]),
    [["GET", "/v1/auth/oidc/providers", null]],
  );
});
