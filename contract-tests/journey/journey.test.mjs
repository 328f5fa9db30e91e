// A user's journey through @agentdesk/client against the real server binary.
// Run: AGENTDESK_BIN=/path/to/agentdesk npm test (default: the release build, see server.mjs).
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, test } from "node:test";
import { createClient, isProblem } from "@agentdesk/client";
import { startServer } from "./server.mjs";

const PASSWORD = "correct horse battery staple";
let server;
/** Shared state the steps build up, in order. */
const s = {};

before(async () => {
  server = await startServer();
});

after(async () => {
  await server?.stop();
});

const client = (opts = {}) => createClient({ baseUrl: server.baseUrl, ...opts });

/** Asserts a result is a success and returns its data. */
function ok(result, status) {
  if (result.error) {
    assert.fail(`expected ${status}, got ${result.response.status}: ${JSON.stringify(result.error)}`);
  }
  assert.equal(result.response.status, status);
  return result.data;
}

/** Asserts a result is the documented problem and returns it. */
function problem(result, status, code) {
  assert.equal(result.data, undefined, `expected a ${status} problem, got data ${JSON.stringify(result.data)}`);
  assert.ok(isProblem(result.error), `not a Problem: ${JSON.stringify(result.error)}`);
  assert.equal(result.response.status, status, JSON.stringify(result.error));
  assert.match(result.response.headers.get("content-type") ?? "", /^application\/problem\+json/);
  assert.equal(result.error.status, status);
  assert.equal(result.error.code, code, JSON.stringify(result.error));
  assert.equal(typeof result.error.title, "string");
  assert.equal(typeof result.error.detail, "string");
  assert.equal(typeof result.error.request_id, "string");
  return result.error;
}

async function eventually(what, fn, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn();
    if (value) return value;
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function waitForStatus(c, orgId, sessionId, status) {
  return eventually(`session ${sessionId} to be ${status}`, async () => {
    const session = ok(await c.sessions.get(orgId, sessionId), 200);
    return session.status === status ? session : undefined;
  });
}

/**
 * `auth.signup` (202), then, unless `verify` is false, `auth.verifyEmail` with the token of the
 * link the server mailed (204), then `auth.login`. Returns the logged-in client, `me.get` and the
 * token pair.
 */
async function signUp(email, displayName, { verify = true } = {}) {
  const c = client();
  const accepted = ok(await c.auth.signup({ email, password: PASSWORD, display_name: displayName }), 202);
  assert.deepEqual(accepted, { email, status: "verification_sent" });
  assert.deepEqual(c.tokens, { accessToken: undefined, refreshToken: undefined }, "signing up logs nobody in");
  if (verify) ok(await c.auth.verifyEmail({ token: await server.verificationToken(email) }), 204);
  const tokens = ok(await c.auth.login({ email, password: PASSWORD }), 200);
  assert.equal(tokens.token_type.toLowerCase(), "bearer");
  assert.equal(c.tokens.accessToken, tokens.access_token);
  const user = ok(await c.me.get(), 200);
  assert.deepEqual([user.email, user.display_name, user.email_verified], [email, displayName, verify]);
  return { c, user, tokens };
}

/** Asserts the RFC 9745 / RFC 8594 headers of an operation deprecated on 2026-11-29, sunset 2027-06-01. */
function assertDeprecated(response, link) {
  assert.equal(response.headers.get("deprecation"), "@1795910400");
  assert.equal(response.headers.get("sunset"), "Tue, 01 Jun 2027 00:00:00 GMT");
  assert.equal(response.headers.get("link"), `<${link}>; rel="deprecation"`);
}

/**
 * A fetch that cuts the first event stream after `n` whole events (plus a few bytes of the
 * next one), as a dropped connection would, and records each stream request's URL and
 * Last-Event-ID.
 */
function flakyFetch(n) {
  const streams = [];
  let dropped = false;
  const fetchImpl = async (request) => {
    const isStream = new URL(request.url).pathname.endsWith("/events/stream");
    if (isStream) streams.push({ lastEventId: request.headers.get("last-event-id"), url: request.url });
    const response = await fetch(request);
    if (!isStream || dropped || !response.ok || !response.body) return response;
    dropped = true;
    const reader = response.body.getReader();
    let events = 0;
    let prev = -1;
    const body = new ReadableStream({
      async pull(controller) {
        const { value, done } = await reader.read();
        if (done) return controller.close();
        for (let i = 0; i < value.length; i++) {
          if (value[i] === 10 && prev === 10 && ++events === n) {
            controller.enqueue(value.subarray(0, Math.min(value.length, i + 1 + 12)));
            await reader.cancel();
            controller.error(new TypeError("simulated network drop"));
            return;
          }
          prev = value[i];
        }
        controller.enqueue(value);
      },
      cancel: () => reader.cancel(),
    });
    return new Response(body, { status: response.status, headers: response.headers });
  };
  return { fetchImpl, streams };
}

test("sign up, verify the address from the mailed link, log in (422 validation_failed, 400 on a spent link)", async () => {
  const weak = await client().auth.signup({ email: "weak@example.com", password: "short", display_name: "W" });
  const p = problem(weak, 422, "validation_failed");
  assert.ok(p.errors?.some((e) => e.field === "password"), JSON.stringify(p.errors));
  assert.deepEqual(await server.mail({ to: "weak@example.com" }), [], "nothing mailed for a refused sign-up");

  s.alice = await signUp("alice@example.com", "Alice");
  s.bob = await signUp("bob@example.com", "Bob");
  s.mallory = await signUp("mallory@example.com", "Mallory");

  const spent = await server.verificationToken("alice@example.com");
  problem(await client().auth.verifyEmail({ token: spent }), 400, "invalid_verification_token");
  problem(await client().auth.verifyEmail({ token: "ev_not-a-real-token" }), 400, "invalid_verification_token");
  problem(await s.alice.c.me.sendVerification(), 409, "email_already_verified");

  // Refused credentials: one generic sentence, whether the address has an account or not.
  const wrong = problem(await client().auth.login({ email: "alice@example.com", password: "wrong password!!" }), 401, "invalid_credentials");
  const nobody = problem(await client().auth.login({ email: "nobody@example.com", password: "wrong password!!" }), 401, "invalid_credentials");
  assert.equal(wrong.detail, nobody.detail);

  const me = ok(await s.alice.c.me.get(), 200);
  assert.equal(me.id, s.alice.user.id);
  assert.equal(me.display_name, "Alice");
  problem(await client().me.get(), 401, "invalid_token");
});

test("auth.signup answers a taken address exactly like a new one, changes nothing, and tells the owner", async () => {
  const before = await server.mail({ to: "alice@example.com" });
  const taken = await client().auth.signup({ email: "alice@example.com", password: "another password!!", display_name: "Not Alice" });
  const fresh = await client().auth.signup({ email: "carol@example.com", password: PASSWORD, display_name: "Carol" });
  assert.deepEqual([taken.response.status, taken.data], [202, { email: "alice@example.com", status: "verification_sent" }]);
  assert.deepEqual([fresh.response.status, fresh.data], [202, { email: "carol@example.com", status: "verification_sent" }]);
  assert.deepEqual(Object.keys(taken.data).sort(), Object.keys(fresh.data).sort());
  // The owner gets a notice, not a link; her password and name did not change.
  const after = await server.mail({ to: "alice@example.com" });
  assert.deepEqual(
    after.slice(before.length).map((m) => m.headers["x-agentdesk-kind"]),
    ["signup_attempt"],
  );
  problem(await client().auth.login({ email: "alice@example.com", password: "another password!!" }), 401, "invalid_credentials");
  assert.equal(ok(await s.alice.c.me.get(), 200).display_name, "Alice");
  // The new address got its link.
  assert.match(await server.verificationToken("carol@example.com"), /^ev_/);
});

test("the deprecated auth.register still creates an unverified account, with Deprecation and Sunset headers", async () => {
  const created = await client().auth.register({ email: "dave@example.com", password: PASSWORD, display_name: "Dave" });
  const dave = ok(created, 201);
  assert.deepEqual([dave.email, dave.email_verified], ["dave@example.com", false]);
  assertDeprecated(created.response, "/docs/#/Auth/auth.signup");
  assert.match(await server.verificationToken("dave@example.com"), /^ev_/, "register mails a link too");
  const taken = await client().auth.register({ email: "alice@example.com", password: PASSWORD, display_name: "A2" });
  problem(taken, 409, "email_taken");
  assertDeprecated(taken.response, "/docs/#/Auth/auth.signup");
});

test("create an org; the deprecated members.add invites (202); bob joins by accepting", async () => {
  const { c } = s.alice;
  const org = ok(await c.orgs.create({ name: "Acme" }), 201);
  assert.equal(org.role, "owner");
  s.org = org.id;
  const listed = ok(await c.orgs.list(), 200);
  assert.deepEqual(
    listed.items.map((o) => o.id),
    [org.id],
  );

  // members.add no longer adds anyone: it answers 202 with an invitation, as invitations.create does.
  const added = await c.members.add(s.org, { email: "bob@example.com", role: "viewer" });
  const invite = ok(added, 202);
  assertDeprecated(added.response, "/docs/#/Invitations/invitations.create");
  assert.ok("token" in invite, JSON.stringify(invite));
  assert.deepEqual([invite.email, invite.role, invite.status], ["bob@example.com", "viewer", "pending"]);
  assert.ok(invite.accept_url.endsWith(`#token=${invite.token}`), invite.accept_url);
  assert.match(added.response.headers.get("location") ?? "", new RegExp(`/v1/orgs/${s.org}/invitations/${invite.id}$`));
  assert.deepEqual(
    ok(await c.members.list(s.org), 200).items.map((m) => m.user_id),
    [s.alice.user.id],
    "bob is not a member before he accepts",
  );
  problem(await s.bob.c.orgs.get(s.org), 404, "not_found");
  const pending = ok(await c.invitations.list(s.org), 200);
  assert.deepEqual(
    pending.items.map((i) => [i.id, i.status]),
    [[invite.id, "pending"]],
  );

  s.bobInvite = invite.id;
  const joined = ok(await s.bob.c.invitations.accept(invite.token), 200);
  assert.deepEqual([joined.org_id, joined.role], [s.org, "viewer"]);
  problem(await c.members.add(s.org, { email: "bob@example.com", role: "viewer" }), 409, "already_member");
  const members = ok(await c.members.list(s.org), 200);
  assert.equal(members.items.length, 2);
  const bob = members.items.find((m) => m.user_id === s.bob.user.id);
  assert.deepEqual([bob?.email, bob?.role], ["bob@example.com", "viewer"]);
  ok(await s.bob.c.orgs.get(s.org), 200);

  const malloryOrg = ok(await s.mallory.c.orgs.create({ name: "Elsewhere" }), 201);
  s.malloryOrg = malloryOrg.id;
});

test("create an agent (403 permission_denied for a viewer)", async () => {
  const body = { name: "clicker", model: "test-model", capabilities: ["desktop:input.pointer", "desktop:screen.capture"] };
  const denied = problem(await s.bob.c.agents.create(s.org, body), 403, "permission_denied");
  assert.equal(denied.missing_permission, "agents:write");

  const agent = ok(await s.alice.c.agents.create(s.org, body, { idempotencyKey: randomUUID() }), 201);
  assert.deepEqual([...agent.capabilities].sort(), ["desktop:input.pointer", "desktop:screen.capture"]);
  s.agent = agent.id;
  const got = ok(await s.bob.c.agents.get(s.org, s.agent), 200);
  assert.equal(got.name, "clicker");
  assert.equal(got.version, agent.version);
});

test("start a session; it becomes running", async () => {
  const { c } = s.alice;
  const session = ok(await c.sessions.create(s.org, { agent_id: s.agent, metadata: { ticket: "J-1" } }), 202);
  assert.equal(session.status, "pending");
  s.session = session.id;
  const running = await waitForStatus(c, s.org, s.session, "running");
  assert.equal(running.agent_id, s.agent);
  assert.deepEqual(running.metadata, { ticket: "J-1" });

  // 422 names the field.
  const bad = problem(await c.sessions.create(s.org, { agent_id: s.agent, timeout_s: 0 }), 422, "validation_failed");
  assert.ok(bad.errors?.some((e) => e.field === "timeout_s"), JSON.stringify(bad.errors));
});

test("append events and read them by cursor", async () => {
  const { c } = s.alice;
  const appended = ok(
    await c.events.append(s.org, s.session, {
      events: [
        { kind: "message", payload: { text: "hello" } },
        { kind: "log", payload: { line: "booted", level: "info" } },
        { kind: "action", payload: { tool: "look" } },
      ],
    }),
    201,
  );
  assert.equal(appended.last_seq - appended.first_seq, 2);
  s.appended = appended;

  const items = [];
  let afterSeq = 0;
  let pages = 0;
  for (;;) {
    const page = ok(await c.events.list(s.org, s.session, { after_seq: afterSeq, limit: 2 }), 200);
    pages += 1;
    items.push(...page.items);
    afterSeq = page.next_after_seq;
    if (!page.has_more) break;
  }
  assert.ok(pages >= 2, "paged with limit 2");
  assert.deepEqual(
    items.map((e) => e.seq),
    Array.from({ length: appended.last_seq }, (_, i) => i + 1),
    "gapless from 1",
  );
  const mine = items.filter((e) => e.seq >= appended.first_seq);
  assert.deepEqual(
    mine.map((e) => [e.kind, e.payload]),
    [
      ["message", { text: "hello" }],
      ["log", { line: "booted", level: "info" }],
      ["action", { tool: "look" }],
    ],
  );
  assert.ok(items.some((e) => e.kind === "status" && e.payload.status === "running"));

  const onlyLogs = ok(await c.events.list(s.org, s.session, { kind: "log" }), 200);
  assert.deepEqual(
    onlyLogs.items.map((e) => e.seq),
    [appended.first_seq + 1],
  );
});

test("follow the stream over SSE (one plain, one with a dropped connection)", async () => {
  const collect = (c, opts = {}) => {
    const events = [];
    const done = c.events.stream(s.org, s.session, {
      signal: AbortSignal.timeout(30_000),
      reconnect: { initialDelayMs: 100 },
      ...opts,
      onEvent: (e) => {
        events.push(e);
      },
    });
    return { events, done };
  };
  s.plain = collect(s.alice.c);
  s.flaky = flakyFetch(2);
  const flakyClient = client({ accessToken: s.alice.c.tokens.accessToken, fetch: s.flaky.fetchImpl });
  s.flakyStream = collect(flakyClient);
  s.resumed = collect(s.bob.c, { afterSeq: s.appended.first_seq });

  // Everything already in the log arrives first, without waiting for the session to end.
  await eventually("the streams to replay the log", () =>
    [s.plain, s.flakyStream].every((x) => x.events.length >= s.appended.last_seq),
  );
  assert.ok(s.flaky.streams.length >= 2, "the dropped stream reconnected");
  assert.match(s.flaky.streams[0].url, /\/events\/stream\?after_seq=0$/);
  assert.match(s.flaky.streams[1].url, /\/events\/stream\?after_seq=2$/, "reconnected after the last whole event (?after_seq=)");
  assert.ok(s.flaky.streams.every((x) => x.lastEventId === null), "the SDK resumes with the query, not Last-Event-ID");
});

test("send a command that is denied and one that is accepted", async () => {
  const { c } = s.alice;
  const denied = problem(
    await c.commands.create(s.org, s.session, { kind: "shell", args: { command: "ls" } }),
    403,
    "capability_denied",
  );
  assert.equal(denied.missing_permission, "desktop:shell");

  const accepted = ok(await c.commands.create(s.org, s.session, { kind: "click", args: { x: 10, y: 20 } }), 202);
  assert.equal(accepted.kind, "click");
  assert.equal(accepted.status, "queued");
  assert.deepEqual(accepted.args, { x: 10, y: 20 });
  s.command = accepted.id;
  const listed = ok(await c.commands.list(s.org, s.session), 200);
  assert.deepEqual(
    listed.items.map((x) => x.id),
    [accepted.id],
  );
  ok(await s.bob.c.commands.get(s.org, s.session, accepted.id), 200);
});

test("the org's live-session limit answers 429 session_limit_reached", async () => {
  const { c } = s.alice;
  const second = ok(await c.sessions.create(s.org, { agent_id: s.agent }), 202);
  // maxRetries: 0, else the SDK waits out Retry-After (5 s) twice before answering.
  const asked = Date.now();
  const third = await c.sessions.create(s.org, { agent_id: s.agent }, { maxRetries: 0 });
  problem(third, 429, "session_limit_reached");
  assert.ok(Date.now() - asked < 4_000, "answered at once without retries");
  assert.match(third.response.headers.get("retry-after") ?? "", /^\d+$/, "429 carries Retry-After");
  ok(await c.sessions.stop(s.org, second.id), 202);
  await waitForStatus(c, s.org, second.id, "stopped");
});

test("404 not_found for another org's session and for an unknown id", async () => {
  problem(await s.mallory.c.sessions.get(s.org, s.session), 404, "not_found");
  problem(await s.alice.c.sessions.get(s.org, randomUUID()), 404, "not_found");
  problem(await s.alice.c.sessions.get(s.malloryOrg, s.session), 404, "not_found");
});

test("stop the session; the streams end after the final status; a second stop is 409", async () => {
  const { c } = s.alice;
  const stopping = ok(await c.sessions.stop(s.org, s.session), 202);
  assert.equal(stopping.status, "stopping");
  await waitForStatus(c, s.org, s.session, "stopped");

  const conflict = problem(await c.sessions.stop(s.org, s.session), 409, "invalid_transition");
  assert.equal(conflict.current_status, "stopped");
  const notLive = problem(
    await c.events.append(s.org, s.session, { events: [{ kind: "log", payload: { late: true } }] }),
    409,
    "session_not_live",
  );
  assert.equal(notLive.current_status, "stopped");
  const cancelled = ok(await c.commands.get(s.org, s.session, s.command), 200);
  assert.equal(cancelled.status, "cancelled");

  const all = [];
  for (let after = 0; ; ) {
    const page = ok(await c.events.list(s.org, s.session, { after_seq: after, limit: 500 }), 200);
    all.push(...page.items);
    after = page.next_after_seq;
    if (!page.has_more) break;
  }
  const last = all.at(-1);
  assert.equal(last.kind, "status");
  assert.equal(last.payload.status, "stopped");
  assert.ok(
    all.some((e) => e.kind === "action" && e.payload.command_id === s.command && e.payload.kind === "click"),
    "the accepted command is in the log as an action",
  );

  for (const [name, stream, from] of [
    ["plain", s.plain, 0],
    ["dropped-and-resumed", s.flakyStream, 0],
    ["started after a seq", s.resumed, s.appended.first_seq],
  ]) {
    const end = await stream.done;
    assert.equal(end.reason, "final", `${name}: ${JSON.stringify(end)}`);
    assert.equal(end.lastSeq, last.seq, name);
    assert.deepEqual(stream.events, all.filter((e) => e.seq > from), `${name}: same events as events.list, no gap, no duplicate`);
  }

  // A stream opened on an ended session replays and ends.
  const replay = [];
  const end = await c.events.stream(s.org, s.session, { afterSeq: last.seq - 2, onEvent: (e) => void replay.push(e) });
  assert.equal(end.reason, "final");
  assert.deepEqual(
    replay.map((e) => e.seq),
    [last.seq - 1, last.seq],
  );
  const caughtUp = await c.events.stream(s.org, s.session, { afterSeq: last.seq, onEvent: () => assert.fail("no event") });
  assert.equal(caughtUp.reason, "ended");
  const foreign = await s.mallory.c.events.stream(s.org, s.session, { onEvent: () => assert.fail("no event") });
  assert.equal(foreign.reason, "problem");
  assert.equal(foreign.error.code, "not_found");
});

test("read the audit log", async () => {
  const { c } = s.alice;
  const page = ok(await c.audit.list(s.org, { limit: 200 }), 200);
  const actions = new Set(page.items.map((e) => e.action));
  for (const action of [
    "org.created",
    "invitation.created",
    "invitation.accepted",
    "member.added",
    "agent.created",
    "session.created",
    "command.denied",
    "session.stopped",
  ]) {
    assert.ok(actions.has(action), `audit has ${action}: ${[...actions].join(", ")}`);
  }
  const denied = ok(await c.audit.list(s.org, { action: "command.denied" }), 200);
  assert.equal(denied.items.length, 1);
  assert.equal(denied.items[0].action, "command.denied");
  problem(await s.bob.c.audit.list(s.org), 403, "permission_denied");

  const jobs = ok(await c.jobs.list(s.org), 200);
  assert.ok(jobs.items.length >= 1, "provisioning and stop jobs are listed");
  assert.ok(jobs.items.every((j) => j.status !== "dead"), JSON.stringify(jobs.items));
});

test("a 401 rotates the refresh token once for concurrent calls and replays them", async () => {
  const login = ok(await client().auth.login({ email: "alice@example.com", password: PASSWORD }), 200);
  let refreshCalls = 0;
  const rotated = [];
  const counting = async (request) => {
    if (new URL(request.url).pathname === "/v1/auth/refresh") refreshCalls += 1;
    return fetch(request);
  };
  const c = client({
    accessToken: "expired-or-garbage",
    refreshToken: login.refresh_token,
    fetch: counting,
    onTokenRefresh: (tokens) => void rotated.push(tokens),
  });
  const [me, orgs, session] = await Promise.all([c.me.get(), c.orgs.list(), c.sessions.get(s.org, s.session)]);
  assert.equal(ok(me, 200).email, "alice@example.com");
  ok(orgs, 200);
  ok(session, 200);
  assert.equal(refreshCalls, 1, "one refresh for three concurrent 401s");
  assert.equal(rotated.length, 1);
  assert.equal(c.tokens.accessToken, rotated[0].access_token);
  assert.notEqual(c.tokens.refreshToken, login.refresh_token);
  // A POST with a body is replayed intact.
  ok(await c.orgs.create({ name: "After refresh" }), 201);

  // A refused refresh leaves the original 401 as the result, once.
  const stale = client({ accessToken: "garbage", refreshToken: login.refresh_token, fetch: counting });
  refreshCalls = 0;
  problem(await stale.me.get(), 401, "invalid_token");
  assert.equal(refreshCalls, 1);
  assert.equal(stale.tokens.refreshToken, undefined, "a refused refresh token is dropped");
  problem(await stale.me.get(), 401, "invalid_token");
  assert.equal(refreshCalls, 1, "no second refresh with a dead token");
  // Presenting the spent token revoked the family (RFC 9700 §4.14): the rotated one is dead too,
  // and every access token of the account ended at once.
  problem(await client().auth.refresh({ refresh_token: c.tokens.refreshToken }), 401, "invalid_refresh_token");
  problem(await client({ accessToken: c.tokens.accessToken }).me.get(), 401, "invalid_token");
  // Alice's first login is another family: her client refreshes on the 401 and goes on.
  const before = s.alice.c.tokens.refreshToken;
  ok(await s.alice.c.me.get(), 200);
  assert.notEqual(s.alice.c.tokens.refreshToken, before, "refreshed after its access token ended");
});

test("a custom role, an API key with it (X-API-Key): allowed, 403 permission_denied, role change, revoked → 401", async () => {
  const { c } = s.alice;
  const catalog = ok(await client().permissions.list(), 200); // public
  assert.ok(catalog.items.length > 0);
  const names = new Set(catalog.items.map((p) => p.name));
  for (const p of ["orgs:read", "sessions:read", "agents:read", "audit:read"]) assert.ok(names.has(p), `catalog has ${p}`);

  const role = ok(
    await c.roles.create(s.org, { name: "support", description: "Reads sessions", permissions: ["sessions:read", "orgs:read"] }),
    201,
  );
  assert.deepEqual(role.permissions, ["orgs:read", "sessions:read"]);
  assert.equal(role.builtin, false);
  problem(await c.roles.create(s.org, { name: "support", permissions: [] }), 409, "role_name_taken");
  const listed = ok(await c.roles.list(s.org), 200);
  assert.deepEqual(
    listed.items.map((r) => r.name),
    ["owner", "admin", "operator", "viewer", "support"],
  );

  const key = ok(await c.apiKeys.create(s.org, { name: "support bot", role: "support" }), 201);
  assert.match(key.secret, new RegExp(`^ad_${key.prefix}_.+`));
  s.apiKey = key;
  const bot = client({ apiKey: key.secret });
  const sessions = ok(await bot.sessions.list(s.org), 200);
  assert.ok(sessions.items.some((x) => x.id === s.session));
  const denied = problem(await bot.agents.list(s.org), 403, "permission_denied");
  assert.equal(denied.missing_permission, "agents:read");
  problem(await bot.sessions.list(s.malloryOrg), 404, "not_found");

  // Holders get a changed role on their next request; a stale If-Match is 412.
  const got = await c.roles.get(s.org, "support");
  const etag = got.response.headers.get("etag");
  assert.equal(etag, `"${ok(got, 200).version}"`);
  const updated = ok(
    await c.roles.update(s.org, "support", { permissions: ["agents:read", "orgs:read", "sessions:read"] }, { ifMatch: etag }),
    200,
  );
  assert.equal(updated.version, role.version + 1);
  problem(await c.roles.update(s.org, "support", { permissions: [] }, { ifMatch: etag }), 412, "precondition_failed");
  ok(await bot.agents.list(s.org), 200);

  const keys = ok(await c.apiKeys.list(s.org), 200);
  assert.deepEqual(
    keys.items.map((k) => [k.id, k.role, "secret" in k]),
    [[key.id, "support", false]],
  );
  const created = ok(await c.audit.list(s.org, { action: "api_key.created", actor_id: s.alice.user.id }), 200);
  assert.equal(created.items.length, 1);

  ok(await c.apiKeys.revoke(s.org, key.id), 204);
  problem(await bot.sessions.list(s.org), 401, "invalid_token");
});

test("invite a verified user with the custom role; they accept; a used invitation is 410; an unverified one is 403", async () => {
  const { c } = s.alice;
  const invite = ok(await c.invitations.create(s.org, { email: "mallory@example.com", role: "support" }), 201);
  assert.equal(invite.status, "pending");
  assert.ok(invite.accept_url.endsWith(`#token=${invite.token}`), invite.accept_url);
  const pending = ok(await c.invitations.list(s.org), 200);
  assert.deepEqual(
    pending.items.map((i) => [i.id, i.status, "token" in i]),
    [
      [invite.id, "pending", false],
      [s.bobInvite, "accepted", false],
    ],
  );

  problem(await s.bob.c.invitations.accept(invite.token), 403, "invitation_email_mismatch");
  const joined = ok(await s.mallory.c.invitations.accept(invite.token), 200);
  assert.deepEqual([joined.org_id, joined.role], [s.org, "support"]);
  problem(await s.mallory.c.invitations.accept(invite.token), 410, "invitation_used");
  problem(await c.invitations.revoke(s.org, invite.id), 409, "invitation_used");

  const members = ok(await c.members.list(s.org), 200);
  const mallory = members.items.find((m) => m.user_id === s.mallory.user.id);
  assert.equal(mallory?.role, "support");
  ok(await s.mallory.c.sessions.get(s.org, s.session), 200); // no longer 404 for her
  problem(await c.roles.delete(s.org, "support"), 409, "role_in_use");

  // An account that has not proved its address cannot accept, until it opens a (new) link.
  s.erin = await signUp("erin@example.com", "Erin", { verify: false });
  const erinInvite = ok(await c.invitations.create(s.org, { email: "erin@example.com", role: "viewer" }), 201);
  problem(await s.erin.c.invitations.accept(erinInvite.token), 403, "email_not_verified");
  problem(await s.erin.c.orgs.get(s.org), 404, "not_found");
  const first = await server.verificationToken("erin@example.com");
  ok(await s.erin.c.me.sendVerification(), 202);
  const second = await server.verificationToken("erin@example.com");
  assert.notEqual(second, first, "a new link was mailed");
  ok(await client().auth.verifyEmail({ token: second }), 204);
  assert.equal(ok(await s.erin.c.me.get(), 200).email_verified, true);
  problem(await s.erin.c.me.sendVerification(), 409, "email_already_verified");
  const erinJoined = ok(await s.erin.c.invitations.accept(erinInvite.token), 200);
  assert.deepEqual([erinJoined.org_id, erinJoined.role], [s.org, "viewer"]);
});

test("me.leaveOrg: a member leaves (204, then 404 on the org); the only owner cannot (409 last_owner)", async () => {
  const { c } = s.alice;
  ok(await s.erin.c.orgs.get(s.org), 200);
  ok(await s.erin.c.me.leaveOrg(s.org), 204);
  problem(await s.erin.c.orgs.get(s.org), 404, "not_found");
  problem(await s.erin.c.sessions.list(s.org), 404, "not_found");
  problem(await s.erin.c.me.leaveOrg(s.org), 404, "not_found");
  assert.ok(!ok(await s.erin.c.orgs.list(), 200).items.some((o) => o.id === s.org));
  const members = ok(await c.members.list(s.org), 200);
  assert.ok(!members.items.some((m) => m.user_id === s.erin.user.id), JSON.stringify(members.items));
  const left = ok(await c.audit.list(s.org, { action: "member.left" }), 200);
  assert.deepEqual(
    left.items.map((e) => e.action),
    ["member.left"],
  );

  problem(await c.me.leaveOrg(s.org), 409, "last_owner");
  ok(await c.orgs.get(s.org), 200);
  problem(await s.erin.c.me.leaveOrg(randomUUID()), 404, "not_found");
});

test("me.export has the account; me.logoutAll ends every token of the account at once (→ 401)", async () => {
  const mallory = client();
  const login = ok(await mallory.auth.login({ email: "mallory@example.com", password: PASSWORD }), 200);
  const exported = ok(await mallory.me.export(), 200);
  assert.equal(exported.profile.email, "mallory@example.com");
  assert.equal(exported.has_password, true);
  assert.ok(exported.memberships.some((m) => m.org_id === s.org && m.role === "support"), JSON.stringify(exported.memberships));

  ok(await mallory.me.logoutAll(), 204);
  assert.deepEqual(mallory.tokens, { accessToken: undefined, refreshToken: undefined }, "the client forgot both tokens");
  problem(await client({ accessToken: login.access_token }).me.get(), 401, "invalid_token"); // ended at once
  problem(await s.mallory.c.me.get(), 401, "invalid_token"); // her other device too (its refresh is refused)
  problem(await client().auth.refresh({ refresh_token: login.refresh_token }), 401, "invalid_refresh_token");
  problem(await client().auth.refresh({ refresh_token: s.mallory.tokens.refresh_token }), 401, "invalid_refresh_token");
});
