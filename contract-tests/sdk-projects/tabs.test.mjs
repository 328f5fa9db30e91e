// Two tabs, one login: two pages of one origin in Debian's headless Chromium share the SDK's
// token store (`indexedDbTokenStore()`). The server's access tokens live 1 s (plus
// its 5 s leeway), so both tabs' next calls answer 401 at the same moment and both want to
// refresh. With the SDK's refresh lock (Web Locks) exactly one refresh happens per rotation,
// the other tab re-reads the store and uses the rotated pair, and both stay logged in. The
// control case takes the lock away: both tabs present the same refresh token, the server's
// reuse detection revokes the family, and both are logged out, which is what the lock is for.
// Run: `npm ci && npm test` (see README.md).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { dirname, join, normalize, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { serverBinary, startServer } from "../journey/server.mjs";
import { serveOnLoopback } from "./site.mjs";

const HERE = dirname(fileURLToPath(import.meta.url));
const SDK_DIST = join(resolve(HERE, "../.."), "clients/typescript/dist/esm");
const CHROMIUM = process.env.AGENTDESK_CHROMIUM || "/usr/bin/chromium";
const WAIT_MS = 15_000; // bound on every single wait in a page
const PASSWORD = "correct horse battery staple";
const LEEWAY_S = 5; // the server's JWT validation leeway (src/auth/tokens.rs)

let api;
let site;
let browser;

const PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Agentdesk tab</title>
<script type="importmap">{ "imports": { "openapi-fetch": "/vendor/openapi-fetch.mjs", "eventsource-parser": "/vendor/eventsource-parser.mjs" } }</script>
<script type="module">
  import * as sdk from "/sdk/index.js";
  window.agentdesk = sdk;
  document.body.dataset.sdk = "ready";
</script></head><body><h1>Agentdesk tab</h1></body></html>
`;

/** The ES module entry of a dependency, from this package's node_modules (the SDK's pins). */
async function entry(name) {
  const dir = join(HERE, "node_modules", name);
  const pkg = JSON.parse(await readFile(join(dir, "package.json"), "utf8"));
  return join(dir, pkg.exports?.["."]?.import ?? pkg.module);
}

async function startSite() {
  const vendor = { "openapi-fetch.mjs": await entry("openapi-fetch"), "eventsource-parser.mjs": await entry("eventsource-parser") };
  return serveOnLoopback(async (req, res) => {
    const path = new URL(req.url, "http://site").pathname;
    const send = (status, type, body) => res.writeHead(status, { "content-type": type, "cache-control": "no-store" }).end(body);
    if (path === "/") return send(200, "text/html; charset=utf-8", PAGE);
    if (path === "/favicon.ico") return send(204, "image/x-icon", "");
    if (path.startsWith("/vendor/") && vendor[path.slice(8)]) return send(200, "text/javascript", await readFile(vendor[path.slice(8)]));
    const file = normalize(join(SDK_DIST, path.replace(/^\/sdk\//, "")));
    if (path.startsWith("/sdk/") && file.startsWith(SDK_DIST + sep) && existsSync(file)) return send(200, "text/javascript", await readFile(file));
    send(404, "text/plain", "not found");
  });
}

before(async () => {
  assert.ok(existsSync(serverBinary()), `server binary not found: ${serverBinary()} (set AGENTDESK_BIN or build it)`);
  assert.ok(existsSync(CHROMIUM), `Chromium not found: ${CHROMIUM} (apt-get install chromium)`);
  assert.ok(existsSync(join(SDK_DIST, "index.js")), `the SDK is not built: ${SDK_DIST} (cd clients/typescript && npm ci && npm run build)`);
  site = await startSite();
  api = await startServer({ env: { AGENTDESK_ACCESS_TOKEN_TTL_S: "1", AGENTDESK_CORS_ALLOWED_ORIGINS: JSON.stringify([site.origin]) } });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
});

after(async () => {
  await browser?.close();
  await api?.stop();
  await site?.close();
});

/** An account (signed up over HTTP; logging in needs no verified address). */
async function account(email) {
  const res = await fetch(`${api.baseUrl}/v1/auth/signup`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ email, password: PASSWORD, display_name: email }),
    signal: AbortSignal.timeout(WAIT_MS),
  });
  assert.equal(res.status, 202);
}

/**
 * Opens a tab of the site in `context` with an SDK client over the shared store. Its fetch
 * counts refreshes and records each /v1/* status, and holds a refresh back 300 ms: the window
 * in which another tab, unserialised, would present the same refresh token.
 */
async function openTab(context, name, { lock }) {
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT_MS);
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(`${site.origin}/`, { waitUntil: "load" });
  await page.locator('body[data-sdk="ready"]').waitFor({ state: "attached" });
  const webLocks = await page.evaluate(
    ({ baseUrl, name, lock }) => {
      const { createClient, indexedDbTokenStore } = window.agentdesk;
      const store = indexedDbTokenStore();
      const log = { name, refreshes: 0, calls: [] };
      const tracing = async (request) => {
        const path = new URL(request.url).pathname;
        if (path === "/v1/auth/refresh") {
          log.refreshes += 1;
          await new Promise((r) => setTimeout(r, 300));
        }
        const response = await fetch(request);
        log.calls.push(`${request.method} ${path} ${response.status}`);
        return response;
      };
      const client = createClient({
        baseUrl,
        tokenStore: store,
        fetch: tracing,
        maxRetries: 0,
        ...(lock ? {} : { refreshLock: (_name, fn) => fn() }),
      });
      window.tab = { client, log, store };
      return typeof navigator.locks?.request === "function";
    },
    { baseUrl: api.baseUrl, name, lock },
  );
  assert.ok(webLocks, "the page has the Web Locks API (a secure context)");
  return { page, errors };
}

const call = (page, what) =>
  page.evaluate(async (what) => {
    const { client } = window.tab;
    const r = what === "me" ? await client.me.get() : await client.orgs.list();
    return { status: r.response.status, code: r.error?.code };
  }, what);
const state = (page) =>
  page.evaluate(async () => ({
    log: structuredClone(window.tab.log),
    stored: await window.tab.store.get(),
    seen: window.tab.client.tokens,
  }));
const resetLog = (page) => page.evaluate(() => Object.assign(window.tab.log, { refreshes: 0, calls: [] }));

/** Waits until the stored access token is past its expiry plus the server's leeway. */
async function untilExpired(page) {
  const exp = await page.evaluate(async () => {
    const { access_token } = await window.tab.store.get();
    const payload = access_token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(payload)).exp;
  });
  const wait = (exp + LEEWAY_S + 1.5) * 1000 - Date.now();
  assert.ok(wait < 20_000, `the access token lives ${wait} ms more: AGENTDESK_ACCESS_TOKEN_TTL_S=1 not applied?`);
  await new Promise((r) => setTimeout(r, Math.max(0, wait)));
}

/** Both tabs call at once after expiry; returns their answers and logs. */
async function rotateTogether(a, b) {
  await Promise.all([resetLog(a), resetLog(b)]);
  await untilExpired(a);
  const [ra, rb] = await Promise.all([call(a, "me"), call(b, "me")]);
  const [sa, sb] = await Promise.all([state(a), state(b)]);
  return { ra, rb, sa, sb };
}

test("two tabs sharing a login refresh once per rotation, and neither is logged out", { timeout: 90_000 }, async () => {
  await account("tabs@example.com");
  const context = await browser.newContext();
  const A = await openTab(context, "A", { lock: true });
  const B = await openTab(context, "B", { lock: true });
  const login = await A.page.evaluate(async (password) => {
    const r = await window.tab.client.auth.login({ email: "tabs@example.com", password });
    return { status: r.response.status };
  }, PASSWORD);
  assert.equal(login.status, 200);
  assert.deepEqual(await call(B.page, "me"), { status: 200, code: undefined }, "tab B is logged in through the shared store");

  let previous = (await state(A.page)).stored;
  for (const rotation of [1, 2]) {
    const { ra, rb, sa, sb } = await rotateTogether(A.page, B.page);
    const where = `rotation ${rotation}: ${JSON.stringify({ a: sa.log, b: sb.log })}`;
    assert.deepEqual([ra, rb], [{ status: 200, code: undefined }, { status: 200, code: undefined }], `both calls succeed; ${where}`);
    assert.ok(sa.log.calls.includes("GET /v1/me 401") && sb.log.calls.includes("GET /v1/me 401"), `both tabs hit the expiry; ${where}`);
    assert.equal(sa.log.refreshes + sb.log.refreshes, 1, `exactly one refresh for the two tabs; ${where}`);
    const refresher = sa.log.refreshes === 1 ? sa : sb;
    assert.ok(refresher.log.calls.includes("POST /v1/auth/refresh 200"), where);
    assert.notEqual(sa.stored.refresh_token, previous.refresh_token, "the pair rotated");
    assert.deepEqual(sb.stored, sa.stored, "one store");
    assert.equal(sa.seen.accessToken, sa.stored.access_token, "tab A uses the rotated pair");
    assert.equal(sb.seen.accessToken, sa.stored.access_token, "tab B uses the rotated pair");
    previous = sa.stored;
    // Not logged out: the next calls of both tabs succeed, without another refresh.
    assert.deepEqual(await Promise.all([call(A.page, "orgs"), call(B.page, "orgs")]), [
      { status: 200, code: undefined },
      { status: 200, code: undefined },
    ]);
  }
  assert.deepEqual([...A.errors, ...B.errors], [], "no page errors");
  await context.close();
});

test("control: without the lock both tabs present the same refresh token and the server logs both out", { timeout: 60_000 }, async () => {
  await account("unlocked@example.com");
  const context = await browser.newContext();
  const A = await openTab(context, "A", { lock: false });
  const B = await openTab(context, "B", { lock: false });
  await A.page.evaluate((password) => window.tab.client.auth.login({ email: "unlocked@example.com", password }), PASSWORD);
  assert.deepEqual(await call(B.page, "me"), { status: 200, code: undefined });

  const { sa, sb } = await rotateTogether(A.page, B.page);
  assert.equal(sa.log.refreshes + sb.log.refreshes, 2, `both tabs refreshed: ${JSON.stringify([sa.log, sb.log])}`);
  const refreshAnswers = [...sa.log.calls, ...sb.log.calls].filter((c) => c.startsWith("POST /v1/auth/refresh")).sort();
  assert.deepEqual(refreshAnswers, ["POST /v1/auth/refresh 200", "POST /v1/auth/refresh 401"], "the second presentation is a reuse");
  // The reuse revoked the family and ended the account's access tokens: both tabs are out.
  assert.deepEqual(await Promise.all([call(A.page, "orgs"), call(B.page, "orgs")]), [
    { status: 401, code: "invalid_token" },
    { status: 401, code: "invalid_token" },
  ]);
  await context.close();
});
