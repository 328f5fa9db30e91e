// Swagger UI in a real browser: Debian's headless Chromium (/usr/bin/chromium) driven by
// playwright-core against a live `agentdesk serve`. Opens /docs, checks every spec tag is shown,
// authorizes with a bearer token, runs `GET /v1/me` (me.get) from the page and sees 200, runs a
// write, `POST /v1/orgs` (orgs.create), from the page and sees 201, and fails on any
// Content-Security-Policy violation. Run: `npm ci && node --test` (see README.md).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, mkdir, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const WAIT_MS = 15_000; // bound on every single wait
const CHROMIUM = process.env.AGENTDESK_CHROMIUM || '/usr/bin/chromium';
const BIN =
  process.env.AGENTDESK_BIN ||
  `${process.env.CARGO_TARGET_DIR || `${process.env.HOME}/.cache/agentdesk-target`}/release/agentdesk`;
const OUT_DIR = join(process.env.AGENTDESK_CONTRACT_OUT || '/tmp/agentdesk-contract', 'swagger-ui');
const SCREENSHOT = join(OUT_DIR, 'docs.png');
const OP_SCREENSHOT = join(OUT_DIR, 'me-get.png');
const WRITE_SCREENSHOT = join(OUT_DIR, 'orgs-create.png');
const FAILURE_SCREENSHOT = join(OUT_DIR, 'docs-failure.png');

const USER = {
  email: `swagger-ui-${Date.now()}@example.com`,
  password: 'correct horse battery staple',
  display_name: 'Swagger UI Contract',
};

let server; // child process
let serverLog = '';
let dataDir;
let base;
let browser;

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function fetchWithTimeout(url, init = {}) {
  return fetch(url, { ...init, signal: AbortSignal.timeout(WAIT_MS) });
}

async function waitForHealthz() {
  const deadline = Date.now() + WAIT_MS;
  let last = 'no attempt';
  while (Date.now() < deadline) {
    if (server.exitCode !== null || server.signalCode !== null) {
      throw new Error(
        `agentdesk exited early (code ${server.exitCode}, signal ${server.signalCode}):\n${serverLog}`,
      );
    }
    try {
      const r = await fetch(`${base}/healthz`, { signal: AbortSignal.timeout(1_000) });
      if (r.ok) return;
      last = `HTTP ${r.status}`;
    } catch (e) {
      last = e.message;
    }
    await sleep(100);
  }
  throw new Error(`/healthz not ready within ${WAIT_MS} ms (last: ${last}):\n${serverLog}`);
}

function killServer() {
  if (server && server.exitCode === null && server.signalCode === null) server.kill('SIGKILL');
}

async function stopServer() {
  if (!server || server.exitCode !== null || server.signalCode !== null) return;
  const exited = new Promise((r) => server.once('exit', r));
  server.kill('SIGTERM');
  const timer = setTimeout(() => killServer(), 5_000);
  await exited;
  clearTimeout(timer);
}

async function postJson(path, body, init = {}) {
  const r = await fetchWithTimeout(`${base}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(init.headers || {}) },
    body: JSON.stringify(body),
  });
  const text = await r.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: r.status, json, text };
}

before(async () => {
  assert.ok(existsSync(BIN), `server binary not found: ${BIN} (set AGENTDESK_BIN or build it)`);
  assert.ok(existsSync(CHROMIUM), `Chromium not found: ${CHROMIUM} (apt-get install chromium)`);
  await mkdir(OUT_DIR, { recursive: true });
  await rm(FAILURE_SCREENSHOT, { force: true });
  dataDir = await mkdtemp(join(tmpdir(), 'agentdesk-swagger-ui-'));
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  server = spawn(BIN, ['serve'], {
    // The server rejects unknown AGENTDESK_* variables (AGENTDESK_BIN, AGENTDESK_CONTRACT_OUT, …)
    // and would pick up a developer's own configuration: pass none of the inherited ones.
    env: {
      ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('AGENTDESK_'))),
      AGENTDESK_LISTEN: `127.0.0.1:${port}`,
      AGENTDESK_DATA_DIR: dataDir,
      AGENTDESK_JWT_SIGNING_KEY: 'dGVzdC1zaWduaW5nLWtleS10ZXN0LXNpZ25pbmcta2V5LTAx',
      AGENTDESK_LOG_LEVEL: 'warn',
      AGENTDESK_AUTH_RATE_LIMIT_PER_IP_PER_MIN: '100000',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  // Never leave the server behind, even if the runner dies mid-test.
  process.once('exit', killServer);
  const keep = (chunk) => {
    serverLog = (serverLog + chunk.toString()).slice(-20_000);
  };
  server.stdout.on('data', keep);
  server.stderr.on('data', keep);
  await waitForHealthz();
});

after(async () => {
  await browser?.close().catch(() => {});
  await stopServer();
  if (dataDir) await rm(dataDir, { recursive: true, force: true }).catch(() => {});
});

/** Registers and logs in a fresh user over plain HTTP; returns the access token. */
async function accessToken() {
  const reg = await postJson('/v1/auth/register', USER);
  assert.equal(reg.status, 201, `register: ${reg.text}`);
  const login = await postJson('/v1/auth/login', { email: USER.email, password: USER.password });
  assert.equal(login.status, 200, `login: ${login.text}`);
  const token = login.json?.access_token;
  assert.ok(typeof token === 'string' && token.length > 20, `login returned an access_token: ${login.text}`);
  return token;
}

let token; // one user's access token, shared by the tests (the first one to need it makes it)
const getToken = async () => (token ??= await accessToken());

/**
 * A page in a fresh browser context (nothing persisted from another test), recording everything
 * it complains about: console errors/warnings, uncaught exceptions, failed requests and CSP
 * violation events (reported by the page itself, in addition to the console message).
 */
async function openDocs(t) {
  // Debian's Chromium, never a downloaded one. Playwright's default (chromiumSandbox: false)
  // passes --no-sandbox, which Chromium requires when running as root (containers, CI).
  if (!browser) {
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      chromiumSandbox: false,
      timeout: WAIT_MS,
    });
    t.diagnostic(`chromium ${browser.version()}`);
  }
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT_MS);
  page.setDefaultNavigationTimeout(WAIT_MS);
  const log = { consoleErrors: [], pageErrors: [], failedRequests: [] };
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') log.consoleErrors.push(`${m.type()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => log.pageErrors.push(String(e?.stack || e)));
  page.on('requestfailed', (r) => log.failedRequests.push(`${r.method()} ${r.url()}: ${r.failure()?.errorText}`));
  await page.addInitScript(() => {
    window.__cspViolations = [];
    document.addEventListener('securitypolicyviolation', (e) => {
      window.__cspViolations.push(
        `${e.violatedDirective} blocked ${e.blockedURI || '(inline)'} at ${e.sourceFile}:${e.lineNumber} [${e.originalPolicy}]`,
      );
    });
  });
  return { page, log };
}

/** Runs `fn`; on failure adds a screenshot and what the page and the server said to the error. */
async function withDiagnostics(page, log, fn) {
  try {
    return await fn();
  } catch (e) {
    await page.screenshot({ path: FAILURE_SCREENSHOT, fullPage: true }).catch(() => {});
    const violations = await page.evaluate(() => window.__cspViolations).catch(() => []);
    const extra =
      `\n  failure screenshot: ${FAILURE_SCREENSHOT}` +
      `\n  page url: ${page.url()}` +
      `\n  csp violations: ${JSON.stringify(violations)}` +
      `\n  console: ${JSON.stringify(log.consoleErrors)}` +
      `\n  page errors: ${JSON.stringify(log.pageErrors)}` +
      `\n  failed requests: ${JSON.stringify(log.failedRequests)}` +
      `\n  server log (tail): ${serverLog.slice(-4000)}`;
    const original = e.message;
    e.message += extra;
    // The spec reporter prints the stack, whose first line holds the message as it was.
    if (original && typeof e.stack === 'string') e.stack = e.stack.replace(original, e.message);
    throw e;
  } finally {
    await page.context().close().catch(() => {});
  }
}

/** Navigates to /docs (→ /docs/) and waits for the spec to render; returns the navigation response. */
async function gotoDocs(page) {
  const nav = await page.goto(`${base}/docs`, { waitUntil: 'load' });
  assert.equal(nav?.status(), 200, 'GET /docs/ after redirect');
  assert.equal(new URL(page.url()).pathname, '/docs/', '/docs redirects to /docs/');
  await page.locator('.swagger-ui .information-container .title').first().waitFor({ state: 'visible' });
  return nav;
}

/** Authorize: bearer token into the BearerAuth form (the dialog also has one for ApiKeyAuth), Authorize, Close. */
async function authorize(page, bearerToken) {
  await page.locator('.scheme-container button.authorize').click();
  const modal = page.locator('.dialog-ux .modal-ux');
  await modal.waitFor({ state: 'visible' });
  const form = modal.locator('form').filter({ hasText: 'BearerAuth' });
  assert.equal(await form.count(), 1, 'one BearerAuth form in the Authorize dialog');
  const bearer = form.locator('input[aria-label="auth-bearer-value"], input[type="text"]').first();
  await bearer.fill(bearerToken);
  await form.locator('button.modal-btn.authorize').click();
  // Authorized: the form now offers Logout instead of Authorize.
  await form.locator('button', { hasText: /^Logout$/ }).waitFor({ state: 'visible' });
  await form.locator('button.btn-done').click();
  await modal.waitFor({ state: 'detached' });
  await page.locator('.scheme-container button.authorize.locked').waitFor({ state: 'visible' });
}

/** Expands `method path` under its tag and opens its Try it out form; returns the block and its body. */
async function tryItOut(page, tag, method, path) {
  const op = page
    .locator(`.opblock-tag-section:has(h3.opblock-tag[data-tag="${tag}"]) .opblock.opblock-${method}`)
    .filter({ has: page.locator(`.opblock-summary-path[data-path="${path}"]`) });
  await assert.doesNotReject(op.waitFor({ state: 'visible' }), `${method.toUpperCase()} ${path} shown`);
  assert.equal(await op.count(), 1, `exactly one ${method.toUpperCase()} ${path} under ${tag}`);
  await op.locator('.opblock-summary').first().click();
  const body = op.locator('.opblock-body');
  await body.waitFor({ state: 'visible' });
  const tryOut = body.locator('button.try-out__btn');
  // tryItOutEnabled(true) opens the form already; only click when offered.
  if ((await tryOut.count()) > 0 && /try it out/i.test(await tryOut.innerText())) await tryOut.click();
  await body.locator('button.execute').waitFor({ state: 'visible' });
  return { op, body };
}

/** Clicks Execute and returns the network response for `method path`. */
async function execute(page, body, method, path) {
  const [response] = await Promise.all([
    page.waitForResponse(
      (r) => new URL(r.url()).pathname === path && r.request().method() === method.toUpperCase(),
      { timeout: WAIT_MS },
    ),
    body.locator('button.execute').click(),
  ]);
  return response;
}

/** The first live response row Swagger UI shows: its code and its body as displayed. */
async function liveResponse(body) {
  const live = body.locator('.live-responses-table tbody tr.response').first();
  await live.waitFor({ state: 'visible' });
  return {
    row: live,
    status: (await live.locator('td.response-col_status').innerText()).trim(),
    text: await live.locator('td.response-col_description').innerText(),
  };
}

/** No CSP violation, no uncaught exception, no failed request. */
async function assertQuietPage(t, page, log) {
  const violations = await page.evaluate(() => window.__cspViolations);
  const cspConsole = log.consoleErrors.filter((m) => /content security policy|content-security-policy|refused to/i.test(m));
  assert.deepEqual([...violations, ...cspConsole], [], 'no CSP violations');
  assert.deepEqual(log.pageErrors, [], 'no uncaught page errors');
  assert.deepEqual(log.failedRequests, [], 'no failed requests');
  if (log.consoleErrors.length) t.diagnostic(`console (non-CSP): ${log.consoleErrors.join(' | ')}`);
}

async function getSpec() {
  const specRes = await fetchWithTimeout(`${base}/v1/openapi.json`);
  assert.equal(specRes.status, 200, 'GET /v1/openapi.json');
  return specRes.json();
}

test('Swagger UI at /docs: tags, Authorize, Try it out GET /v1/me → 200', { timeout: 120_000 }, async (t) => {
  // The spec's tags: every one must show as a section in the UI.
  const spec = await getSpec();
  const tags = (spec.tags || []).map((tag) => tag.name);
  assert.ok(tags.length > 0, 'spec declares tags');
  const me = spec.paths?.['/v1/me']?.get;
  assert.equal(me?.operationId, 'me.get', 'GET /v1/me is me.get');
  const meTag = me.tags[0];

  // A user and an access token, over plain HTTP.
  const bearerToken = await getToken();

  const { page, log } = await openDocs(t);
  await withDiagnostics(page, log, async () => {
    // /docs redirects to /docs/, which serves Swagger UI with the docs CSP.
    const nav = await gotoDocs(page);
    const csp = nav.headers()['content-security-policy'] || '';
    t.diagnostic(`docs CSP: ${csp}`);
    assert.match(csp, /script-src 'self'/, 'docs CSP sent');

    // The spec loaded and rendered: one section per tag.
    for (const tag of tags) {
      const section = page.locator(`.opblock-tag-section h3.opblock-tag[data-tag="${tag}"]`);
      await section.waitFor({ state: 'visible' }).catch(() => {
        throw new Error(`tag "${tag}" is not shown as a section`);
      });
    }
    const shown = await page.locator('.opblock-tag-section h3.opblock-tag').evaluateAll((els) =>
      els.map((e) => e.getAttribute('data-tag')),
    );
    assert.deepEqual([...shown].sort(), [...tags].sort(), 'UI tag sections == spec tags');

    await authorize(page, bearerToken);

    // GET /v1/me (me.get) under its tag: expand, Try it out, Execute.
    const { op, body } = await tryItOut(page, meTag, 'get', '/v1/me');
    const meResponse = await execute(page, body, 'get', '/v1/me');
    const auth = meResponse.request().headers()['authorization'];
    assert.equal(auth, `Bearer ${bearerToken}`, 'the page sent the authorized bearer token');
    assert.equal(meResponse.status(), 200, 'GET /v1/me from the page');

    // The live response as the user sees it.
    const live = await liveResponse(body);
    assert.equal(live.status, '200', 'live response code shown');
    assert.ok(live.text.includes(USER.email), `live response shows the user's email:\n${live.text}`);
    const requestUrl = await body.locator('.request-url pre').first().innerText();
    assert.equal(requestUrl.trim(), `${base}/v1/me`, 'request URL shown');

    await live.row.scrollIntoViewIfNeeded();
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    // The executed operation, from its summary down to the live response, legible at full size.
    const clip = await op.evaluate((el) => {
      const top = el.getBoundingClientRect();
      const live = el.querySelector('.live-responses-table').getBoundingClientRect();
      return { x: top.x, y: top.y + window.scrollY, width: top.width, height: live.bottom - top.y };
    });
    await page.screenshot({ path: OP_SCREENSHOT, fullPage: true, clip });
    t.diagnostic(`screenshots: ${SCREENSHOT}, ${OP_SCREENSHOT}`);

    await assertQuietPage(t, page, log);
  });
});

// A write from the page. Browsers send `Origin` on every same-origin POST/PUT/PATCH/DELETE; the
// server used to refuse any request carrying an Origin not in `cors_allowed_origins` (empty
// here) with 403, its own origin included, so Execute on a write failed.
test('Swagger UI executes a write: Try it out POST /v1/orgs (orgs.create) → 201', { timeout: 120_000 }, async (t) => {
  const spec = await getSpec();
  const create = spec.paths?.['/v1/orgs']?.post;
  assert.equal(create?.operationId, 'orgs.create', 'POST /v1/orgs is orgs.create');
  const orgTag = create.tags[0];
  const bearerToken = await getToken();
  const name = `Swagger UI org ${Date.now()}`;

  const { page, log } = await openDocs(t);
  await withDiagnostics(page, log, async () => {
    await gotoDocs(page);
    await authorize(page, bearerToken);

    const { op, body } = await tryItOut(page, orgTag, 'post', '/v1/orgs');
    // The request body editor, prefilled with the schema's example: replace it.
    const editor = body.locator('textarea.body-param__text');
    await editor.waitFor({ state: 'visible' });
    await editor.fill(JSON.stringify({ name }, null, 2));
    const response = await execute(page, body, 'post', '/v1/orgs');

    const sent = await response.request().allHeaders();
    assert.equal(sent['origin'], base, 'the browser sent Origin (same origin) on the POST');
    assert.equal(sent['authorization'], `Bearer ${bearerToken}`, 'the page sent the authorized bearer token');
    assert.match(sent['content-type'] ?? '', /^application\/json/, 'a JSON body');
    assert.equal(response.request().postData(), JSON.stringify({ name }, null, 2), 'the body typed into the editor');
    assert.equal(response.status(), 201, `POST /v1/orgs from the page: ${await response.text().catch(() => '')}`);

    // The live response as the user sees it.
    const live = await liveResponse(body);
    assert.equal(live.status, '201', 'live response code shown');
    assert.ok(live.text.includes(name), `live response shows the new org:\n${live.text}`);
    const created = await response.json();
    assert.equal(created.name, name);
    assert.equal(created.role, 'owner', 'the caller owns the new org');

    await live.row.scrollIntoViewIfNeeded();
    const clip = await op.evaluate((el) => {
      const top = el.getBoundingClientRect();
      const live = el.querySelector('.live-responses-table').getBoundingClientRect();
      return { x: top.x, y: top.y + window.scrollY, width: top.width, height: live.bottom - top.y };
    });
    await page.screenshot({ path: WRITE_SCREENSHOT, fullPage: true, clip });
    t.diagnostic(`screenshot: ${WRITE_SCREENSHOT}`);

    // The org really exists: read it back from node with the same token.
    const got = await fetchWithTimeout(`${base}/v1/orgs/${created.id}`, {
      headers: { authorization: `Bearer ${bearerToken}` },
    });
    assert.equal(got.status, 200, 'GET /v1/orgs/{id} from node');
    const org = await got.json();
    assert.equal(org.id, created.id);
    assert.equal(org.name, name);

    await assertQuietPage(t, page, log);
  });
});
