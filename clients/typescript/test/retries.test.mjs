// Offline tests of what the transport retries: a POST only on the five operations that honour
// Idempotency-Key (the header alone makes nothing retryable), and a DELETE or an If-Match request
// only after 429 and 503, never after an ambiguous failure (network error, 502, 504) whose repeat
// could answer 404 or 412 for a change that was made. Run `npm run build` first.
import assert from "node:assert/strict";
import { test } from "node:test";
import { IDEMPOTENT_POST_PATHS, createClient, isRetryable, isRetryableAfterAmbiguousFailure } from "../dist/esm/index.js";

import { BASE, problem } from "./fake-http.mjs";

/** A fetch answering `reply(n)` (n: the 0-based call count; a thrown error is a network error), counting calls. */
function counting(reply) {
  const calls = [];
  const fetch = async (req) => {
    calls.push(`${req.method} ${new URL(req.url).pathname}`);
    return reply(calls.length - 1, req);
  };
  return { calls, fetch };
}

test("an Idempotency-Key makes a POST retryable only on the five operations that honour it", async () => {
  const unavailable = () => problem(503, "unavailable", { "retry-after": "0" });
  const key = { headers: { "Idempotency-Key": "k" } };
  const s = counting(unavailable);
  const c = createClient({ baseUrl: BASE, accessToken: "a", refreshToken: "r", fetch: s.fetch });
  await c.orgs.create({ name: "x" }, key);
  await c.apiKeys.create("o", { name: "k", role: "viewer" }, key);
  await c.invitations.create("o", { email: "e@example.com", role: "viewer" }, key);
  await c.commands.complete("o", "s", "c", { status: "succeeded" }, key);
  await c.raw.POST("/v1/orgs/{org_id}/roles", { params: { path: { org_id: "o" } }, body: { name: "r", permissions: [] }, ...key });
  assert.deepEqual(s.calls, ["POST /v1/orgs", "POST /v1/orgs/o/api-keys", "POST /v1/orgs/o/invitations", "POST /v1/orgs/o/sessions/s/commands/c/result", "POST /v1/orgs/o/roles"]);
  s.calls.length = 0;
  await c.auth.refresh(undefined, key);
  assert.deepEqual(s.calls, ["POST /v1/auth/refresh"], "a refresh is never retried");

  // The five, through the helpers (their own key) and through raw (the caller's key).
  const t = counting(unavailable);
  const d = createClient({ baseUrl: BASE, apiKey: "k", fetch: t.fetch, maxRetries: 1 });
  await d.agents.create("o", { name: "n", model: "m" });
  await d.sessions.create("o", { agent_id: "a" });
  await d.sessions.stop("o", "s");
  await d.events.append("o", "s", { events: [{ kind: "log", payload: {} }] });
  await d.commands.create("o", "s", { kind: "click", args: { x: 1, y: 1 } });
  await d.raw.POST("/v1/orgs/{org_id}/sessions", { params: { path: { org_id: "o" } }, body: { agent_id: "a" }, ...key });
  await d.raw.POST("/v1/orgs/{org_id}/sessions", { params: { path: { org_id: "o" } }, body: { agent_id: "a" } });
  assert.equal(t.calls.length, 6 * 2 + 1, "each of the five (and raw with a key) twice; raw without a key once");

  const req = (method, path, headers = {}) => new Request(`${BASE}/prefix${path}`, { method, headers });
  assert.equal(IDEMPOTENT_POST_PATHS.length, 5);
  assert.ok(isRetryable(req("POST", "/v1/orgs/o%2F1/sessions/s/commands", { "idempotency-key": "k" })));
  assert.ok(!isRetryable(req("POST", "/v1/orgs/o/sessions/s/commands/claim", { "idempotency-key": "k" })));
  assert.ok(!isRetryable(req("POST", "/v1/orgs/o/sessions/s/desktop/tickets", { "idempotency-key": "k" })));
  assert.ok(!isRetryable(req("POST", "/v1/orgs/o/sessions")), "no key, no retry");
  assert.ok(!isRetryable(req("PATCH", "/v1/orgs/o", { "idempotency-key": "k" })));
  assert.ok(isRetryable(req("GET", "/v1/orgs")));
  assert.ok(!isRetryableAfterAmbiguousFailure(req("DELETE", "/v1/orgs/o")));
  assert.ok(!isRetryableAfterAmbiguousFailure(req("PUT", "/v1/orgs/o/roles/r", { "if-match": '"1"' })));
  assert.ok(isRetryableAfterAmbiguousFailure(req("PUT", "/v1/orgs/o/members/u")));
});

test("DELETE and If-Match requests are not retried after a network error, 502 or 504; they are after 429 and 503", async () => {
  const cases = [
    { reply: () => Promise.reject(new TypeError("fetch failed")), retried: false, label: "network error" },
    { reply: () => problem(502, "unexpected_response"), retried: false, label: "502" },
    { reply: () => problem(504, "unexpected_response"), retried: false, label: "504" },
    { reply: () => problem(503, "unavailable", { "retry-after": "0" }), retried: true, label: "503" },
    { reply: () => problem(429, "rate_limited", { "retry-after": "0" }), retried: true, label: "429" },
  ];
  for (const { reply, retried, label } of cases) {
    // The first attempt of each request fails; a retry succeeds.
    const s = counting((_n, req) => (s.calls.filter((c) => c === `${req.method} ${new URL(req.url).pathname}`).length === 1 ? reply() : new Response(null, { status: 204 })));
    const c = createClient({ baseUrl: BASE, accessToken: "a", fetch: s.fetch });
    const settle = (p) => p.then((r) => r.response.status, (e) => e.message);
    await settle(c.roles.update("o", "support", { description: "d", permissions: [] }, { ifMatch: '"3"' }));
    await settle(c.agents.delete("o", "a"));
    await settle(c.members.update("o", "u", { role: "viewer" })); // PUT without If-Match: retried after anything
    const expected = retried ? 2 : 1;
    assert.deepEqual(
      [s.calls.filter((x) => x.startsWith("PUT /v1/orgs/o/roles")).length, s.calls.filter((x) => x.startsWith("DELETE")).length],
      [expected, expected],
      label,
    );
    assert.equal(s.calls.filter((x) => x.startsWith("PUT /v1/orgs/o/members")).length, 2, `${label}: a PUT without If-Match is retried`);
  }
});
