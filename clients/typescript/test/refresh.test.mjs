// Offline tests of `auth.refresh` and `auth.logout` under the refresh lock: one refresh request
// for a manual and a 401-driven refresh at once, serialised across clients sharing a store; the
// refresh request's headers; a refused refresh forgets both tokens and calls onLogout;
// onTokenRefresh runs after the lock is released and what it throws fails nothing. Run
// `npm run build` first.
import assert from "node:assert/strict";
import { test } from "node:test";
import { createClient, inProcessRefreshLock, memoryTokenStore } from "../dist/esm/index.js";

import { BASE, json, problem, tokens } from "./fake-http.mjs";
const delay = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * A fake token server: `/v1/auth/refresh` rotates refresh-n → pair n+1 (after `refreshDelayMs`)
 * and refuses a token it has seen before (the server's reuse detection); other paths answer 200
 * to the current access token and 401 otherwise.
 */
function tokenServer({ refreshDelayMs = 20, first = 1 } = {}) {
  const presented = [];
  let current = first;
  const spent = new Set();
  const requests = [];
  const fetch = async (req) => {
    const path = new URL(req.url).pathname;
    requests.push({ path, headers: req.headers });
    if (path === "/v1/auth/refresh") {
      const { refresh_token } = await req.json();
      presented.push(refresh_token);
      await delay(refreshDelayMs);
      if (spent.has(refresh_token) || refresh_token !== `refresh-${current}`) {
        spent.add(refresh_token);
        return problem(401, "invalid_refresh_token");
      }
      spent.add(refresh_token);
      current += 1;
      return json(200, tokens(current));
    }
    if (path === "/v1/auth/logout") return new Response(null, { status: 204 });
    return req.headers.get("authorization") === `Bearer access-${current}` ? json(200, { id: "u" }) : problem(401, "invalid_token");
  };
  return { fetch, presented, requests, spent };
}

test("a manual refresh and a 401-driven refresh at the same time make ONE refresh request (either order)", async () => {
  for (const order of ["manual first", "401 first"]) {
    const server = tokenServer();
    const rotated = [];
    const c = createClient({
      baseUrl: BASE,
      accessToken: "access-0", // stale: the first call answers 401
      refreshToken: "refresh-1",
      fetch: server.fetch,
      onTokenRefresh: (t) => void rotated.push(t.access_token),
    });
    let manual;
    let call;
    if (order === "manual first") {
      manual = c.auth.refresh();
      call = c.me.get();
    } else {
      call = c.me.get();
      await delay(5); // the 401 is in, its refresh under way
      manual = c.auth.refresh();
    }
    const [m, r] = await Promise.all([manual, call]);
    assert.deepEqual(server.presented, ["refresh-1"], `${order}: one refresh request`);
    assert.equal(m.data?.access_token, "access-2", order);
    assert.equal(r.data?.id, "u", `${order}: the 401 call was replayed with the new token`);
    assert.deepEqual(rotated, ["access-2"], `${order}: onTokenRefresh once`);
    assert.deepEqual(c.tokens, { accessToken: "access-2", refreshToken: "refresh-2" });
  }
});

test("manual refreshes in two clients sharing a store are serialised: each presents the stored token, none a spent one", async () => {
  const server = tokenServer();
  const store = memoryTokenStore({ access_token: "access-1", refresh_token: "refresh-1" });
  const a = createClient({ baseUrl: BASE, tokenStore: store, fetch: server.fetch });
  const b = createClient({ baseUrl: BASE, tokenStore: store, fetch: server.fetch });
  const results = await Promise.all([a.auth.refresh(), b.auth.refresh(), a.auth.refresh()]);
  assert.ok(results.every((r) => r.data), JSON.stringify(results.map((r) => r.error)));
  assert.equal(new Set(server.presented).size, server.presented.length, `no token presented twice: ${server.presented}`);
  assert.deepEqual(server.presented, ["refresh-1", "refresh-2"], "a's two calls share one flight; b's rotates after it");
  assert.equal((await store.get()).refresh_token, "refresh-3");
});

test("auth.refresh and auth.logout take the store's refresh lock; logout reads the token under it", async () => {
  const server = tokenServer({ refreshDelayMs: 30 });
  const locked = [];
  const refreshLock = (name, fn) => {
    locked.push(name);
    return inProcessRefreshLock(name, fn);
  };
  const store = memoryTokenStore({ access_token: "access-1", refresh_token: "refresh-1" });
  const c = createClient({ baseUrl: BASE, tokenStore: store, fetch: server.fetch, refreshLock });
  const logoutBodies = [];
  const spy = async (req) => {
    if (new URL(req.url).pathname === "/v1/auth/logout") logoutBodies.push((await req.clone().json()).refresh_token);
    return server.fetch(req);
  };
  const d = createClient({ baseUrl: BASE, tokenStore: store, fetch: spy, refreshLock });
  // d's logout starts while c's refresh holds the lock: it revokes the rotated token, not the spent one.
  const refreshing = c.auth.refresh();
  await delay(5);
  const out = await d.auth.logout();
  await refreshing;
  assert.equal(out.error, undefined);
  assert.deepEqual(logoutBodies, ["refresh-2"]);
  assert.deepEqual(locked, [store.lockName, store.lockName]);
  assert.equal(await store.get(), undefined, "logged out");
});

test("a refused refresh (manual or after a 401) forgets both tokens and calls onLogout once", async () => {
  for (const how of ["manual", "401"]) {
    const server = tokenServer();
    const store = memoryTokenStore({ access_token: "access-0", refresh_token: "refresh-dead" });
    const told = [];
    const rotated = [];
    const c = createClient({
      baseUrl: BASE,
      tokenStore: store,
      fetch: server.fetch,
      onLogout: (info) => void told.push([info.reason, info.problem.code]),
      onTokenRefresh: (t) => void rotated.push(t),
    });
    const r = how === "manual" ? await c.auth.refresh() : await c.me.get();
    assert.equal(r.error?.code, how === "manual" ? "invalid_refresh_token" : "invalid_token", how);
    assert.equal(await store.get(), undefined, `${how}: both tokens gone from the store`);
    assert.deepEqual(c.tokens, { accessToken: undefined, refreshToken: undefined });
    assert.deepEqual(told, [["refresh_refused", "invalid_refresh_token"]], how);
    assert.equal(rotated.length, 0);
  }
  // Another token given explicitly and refused: the stored pair is not touched.
  const server = tokenServer();
  const told = [];
  const c = createClient({ baseUrl: BASE, accessToken: "access-1", refreshToken: "refresh-1", fetch: server.fetch, onLogout: () => void told.push(1) });
  assert.equal((await c.auth.refresh({ refresh_token: "someone-elses" })).error?.code, "invalid_refresh_token");
  assert.deepEqual(c.tokens, { accessToken: "access-1", refreshToken: "refresh-1" });
  assert.equal(told.length, 0);
  // A refusal for another reason (503) keeps them too.
  const busy = createClient({ baseUrl: BASE, accessToken: "a", refreshToken: "r", fetch: async () => problem(503, "unavailable") });
  assert.equal((await busy.auth.refresh()).error?.status, 503);
  assert.deepEqual(busy.tokens, { accessToken: "a", refreshToken: "r" });
});

test("the refresh request carries the client's headers (and a manual one the call's); a signal stops the wait, not the refresh", async () => {
  const server = tokenServer({ refreshDelayMs: 40 });
  const c = createClient({ baseUrl: BASE, accessToken: "access-0", refreshToken: "refresh-1", fetch: server.fetch, headers: { "X-Client": "console" } });
  assert.equal((await c.me.get()).data?.id, "u");
  const auto = server.requests.find((r) => r.path === "/v1/auth/refresh");
  assert.equal(auto.headers.get("x-client"), "console", "401-driven refresh");
  await c.auth.refresh(undefined, { headers: { "X-Request-Id": "req-7" } });
  const manual = server.requests.filter((r) => r.path === "/v1/auth/refresh")[1];
  assert.equal(manual.headers.get("x-client"), "console");
  assert.equal(manual.headers.get("x-request-id"), "req-7");

  const controller = new AbortController();
  const cut = c.auth.refresh(undefined, { signal: controller.signal });
  await delay(5);
  controller.abort(new Error("stop waiting"));
  await assert.rejects(cut, /stop waiting/);
  await delay(60);
  assert.equal(c.tokens.refreshToken, "refresh-4", "the refresh finished and its pair was stored");
  await assert.rejects(c.auth.refresh(undefined, { signal: AbortSignal.abort(new Error("already")) }), /already/);
  await delay(60);
  assert.equal(server.presented.length, 3, "an already aborted call sends nothing");
});

test("onTokenRefresh that throws is reported with console.error and fails nothing; it runs outside the lock", async () => {
  const server = tokenServer();
  const reported = [];
  const original = console.error;
  console.error = (...args) => void reported.push(args);
  try {
    let heldDuringCallback;
    const lockState = { held: false };
    const refreshLock = async (name, fn) => {
      lockState.held = true;
      try {
        return await inProcessRefreshLock(name, fn);
      } finally {
        lockState.held = false;
      }
    };
    const c = createClient({
      baseUrl: BASE,
      accessToken: "access-0",
      refreshToken: "refresh-1",
      fetch: server.fetch,
      refreshLock,
      onTokenRefresh: async () => {
        heldDuringCallback = lockState.held;
        throw new Error("persisting failed");
      },
    });
    const r = await c.me.get();
    assert.equal(r.data?.id, "u", "the replayed call succeeded");
    assert.equal(heldDuringCallback, false, "called after the lock was released");
    assert.equal((await c.auth.refresh()).data?.access_token, "access-3", "a manual refresh resolves too");
    assert.equal(reported.length, 2);
    assert.match(String(reported[0][0]), /onTokenRefresh threw/);
    assert.match(String(reported[0][1]), /persisting failed/);
  } finally {
    console.error = original;
  }
});

test("onTokenRefresh may itself call auth.refresh or make calls: no deadlock on the flight it is part of", async () => {
  const server = tokenServer();
  let nested;
  const c = createClient({
    baseUrl: BASE,
    accessToken: "access-0",
    refreshToken: "refresh-1",
    fetch: server.fetch,
    onTokenRefresh: async (t) => {
      if (t.access_token !== "access-2") return;
      nested = await c.auth.refresh(); // rotates once more, after the first rotation was stored
      assert.equal((await c.me.get()).data?.id, "u");
    },
  });
  const r = await Promise.race([c.me.get(), delay(3_000).then(() => "deadlock")]);
  assert.notEqual(r, "deadlock");
  assert.equal(nested?.data?.access_token, "access-3");
  assert.deepEqual(server.presented, ["refresh-1", "refresh-2"]);
});
