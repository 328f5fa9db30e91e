// Swagger UI in a real browser: Debian's headless Chromium (/usr/bin/chromium) driven by
// playwright-core against a live `agentdesk serve`. Opens /docs, checks every spec tag is shown,
// authorizes with a bearer token, runs `GET /v1/me` (me.get) from the page and sees 200, and fails
// on any Content-Security-Policy violation. Run: `npm ci && node --test` (see README.md).

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

test('Swagger UI at /docs: tags, Authorize, Try it out GET /v1/me → 200', { timeout: 120_000 }, async (t) => {
  // The spec's tags: every one must show as a section in the UI.
  const specRes = await fetchWithTimeout(`${base}/v1/openapi.json`);
  assert.equal(specRes.status, 200, 'GET /v1/openapi.json');
  const spec = await specRes.json();
  const tags = (spec.tags || []).map((tag) => tag.name);
  assert.ok(tags.length > 0, 'spec declares tags');
  const me = spec.paths?.['/v1/me']?.get;
  assert.equal(me?.operationId, 'me.get', 'GET /v1/me is me.get');
  const meTag = me.tags[0];

  // A user and an access token, over plain HTTP.
  const reg = await postJson('/v1/auth/register', USER);
  assert.equal(reg.status, 201, `register: ${reg.text}`);
  const login = await postJson('/v1/auth/login', { email: USER.email, password: USER.password });
  assert.equal(login.status, 200, `login: ${login.text}`);
  const token = login.json?.access_token;
  assert.ok(typeof token === 'string' && token.length > 20, `login returned an access_token: ${login.text}`);

  // Debian's Chromium, never a downloaded one. Playwright's default (chromiumSandbox: false)
  // passes --no-sandbox, which Chromium requires when running as root (containers, CI).
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    chromiumSandbox: false,
    timeout: WAIT_MS,
  });
  t.diagnostic(`chromium ${browser.version()}`);
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT_MS);
  page.setDefaultNavigationTimeout(WAIT_MS);

  // Everything the page complains about: console errors/warnings, uncaught exceptions, CSP
  // violation events (reported by the page itself, in addition to the console message).
  const consoleErrors = [];
  const pageErrors = [];
  const failedRequests = [];
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') consoleErrors.push(`${m.type()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => pageErrors.push(String(e?.stack || e)));
  page.on('requestfailed', (r) => failedRequests.push(`${r.method()} ${r.url()}: ${r.failure()?.errorText}`));
  await page.addInitScript(() => {
    window.__cspViolations = [];
    document.addEventListener('securitypolicyviolation', (e) => {
      window.__cspViolations.push(
        `${e.violatedDirective} blocked ${e.blockedURI || '(inline)'} at ${e.sourceFile}:${e.lineNumber} [${e.originalPolicy}]`,
      );
    });
  });

  try {
    // /docs redirects to /docs/, which serves Swagger UI with the docs CSP.
    const nav = await page.goto(`${base}/docs`, { waitUntil: 'load' });
    assert.equal(nav?.status(), 200, 'GET /docs/ after redirect');
    assert.equal(new URL(page.url()).pathname, '/docs/', '/docs redirects to /docs/');
    const csp = nav.headers()['content-security-policy'] || '';
    t.diagnostic(`docs CSP: ${csp}`);
    assert.match(csp, /script-src 'self'/, 'docs CSP sent');

    // The spec loaded and rendered: title plus one section per tag.
    await page.locator('.swagger-ui .information-container .title').first().waitFor({ state: 'visible' });
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

    // Authorize: bearer token into the BearerAuth form (the dialog also has one for ApiKeyAuth),
    // Authorize, Close.
    await page.locator('.scheme-container button.authorize').click();
    const modal = page.locator('.dialog-ux .modal-ux');
    await modal.waitFor({ state: 'visible' });
    const form = modal.locator('form').filter({ hasText: 'BearerAuth' });
    assert.equal(await form.count(), 1, 'one BearerAuth form in the Authorize dialog');
    const bearer = form.locator('input[aria-label="auth-bearer-value"], input[type="text"]').first();
    await bearer.fill(token);
    await form.locator('button.modal-btn.authorize').click();
    // Authorized: the form now offers Logout instead of Authorize.
    await form.locator('button', { hasText: /^Logout$/ }).waitFor({ state: 'visible' });
    await form.locator('button.btn-done').click();
    await modal.waitFor({ state: 'detached' });
    await page.locator('.scheme-container button.authorize.locked').waitFor({ state: 'visible' });

    // GET /v1/me (me.get) under its tag: expand, Try it out, Execute.
    const op = page
      .locator(`.opblock-tag-section:has(h3.opblock-tag[data-tag="${meTag}"]) .opblock.opblock-get`)
      .filter({ has: page.locator('.opblock-summary-path[data-path="/v1/me"]') });
    await assert.doesNotReject(op.waitFor({ state: 'visible' }), 'GET /v1/me shown');
    assert.equal(await op.count(), 1, 'exactly one GET /v1/me under its tag');
    await op.locator('.opblock-summary').first().click();
    const body = op.locator('.opblock-body');
    await body.waitFor({ state: 'visible' });
    const tryOut = body.locator('button.try-out__btn');
    // tryItOutEnabled(true) opens the form already; only click when offered.
    if ((await tryOut.count()) > 0 && /try it out/i.test(await tryOut.innerText())) await tryOut.click();
    const execute = body.locator('button.execute');
    await execute.waitFor({ state: 'visible' });
    const [meResponse] = await Promise.all([
      page.waitForResponse((r) => new URL(r.url()).pathname === '/v1/me' && r.request().method() === 'GET', {
        timeout: WAIT_MS,
      }),
      execute.click(),
    ]);
    const auth = meResponse.request().headers()['authorization'];
    assert.equal(auth, `Bearer ${token}`, 'the page sent the authorized bearer token');
    assert.equal(meResponse.status(), 200, 'GET /v1/me from the page');

    // The live response as the user sees it.
    const live = body.locator('.live-responses-table tbody tr.response');
    await live.first().waitFor({ state: 'visible' });
    const status = (await live.first().locator('td.response-col_status').innerText()).trim();
    assert.equal(status, '200', 'live response code shown');
    const shownBody = await live.first().locator('td.response-col_description').innerText();
    assert.ok(shownBody.includes(USER.email), `live response shows the user's email:\n${shownBody}`);
    const requestUrl = await body.locator('.request-url pre').first().innerText();
    assert.equal(requestUrl.trim(), `${base}/v1/me`, 'request URL shown');

    await live.first().scrollIntoViewIfNeeded();
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    // The executed operation, from its summary down to the live response, legible at full size.
    const clip = await op.evaluate((el) => {
      const top = el.getBoundingClientRect();
      const live = el.querySelector('.live-responses-table').getBoundingClientRect();
      return { x: top.x, y: top.y + window.scrollY, width: top.width, height: live.bottom - top.y };
    });
    await page.screenshot({ path: OP_SCREENSHOT, fullPage: true, clip });
    t.diagnostic(`screenshots: ${SCREENSHOT}, ${OP_SCREENSHOT}`);

    // No CSP violation, no uncaught exception, no failed request.
    const violations = await page.evaluate(() => window.__cspViolations);
    const cspConsole = consoleErrors.filter((m) => /content security policy|content-security-policy|refused to/i.test(m));
    assert.deepEqual([...violations, ...cspConsole], [], 'no CSP violations');
    assert.deepEqual(pageErrors, [], 'no uncaught page errors');
    assert.deepEqual(failedRequests, [], 'no failed requests');
    if (consoleErrors.length) t.diagnostic(`console (non-CSP): ${consoleErrors.join(' | ')}`);
  } catch (e) {
    await page.screenshot({ path: FAILURE_SCREENSHOT, fullPage: true }).catch(() => {});
    const violations = await page.evaluate(() => window.__cspViolations).catch(() => []);
    e.message +=
      `\n  failure screenshot: ${FAILURE_SCREENSHOT}` +
      `\n  page url: ${page.url()}` +
      `\n  csp violations: ${JSON.stringify(violations)}` +
      `\n  console: ${JSON.stringify(consoleErrors)}` +
      `\n  page errors: ${JSON.stringify(pageErrors)}` +
      `\n  failed requests: ${JSON.stringify(failedRequests)}` +
      `\n  server log (tail): ${serverLog.slice(-4000)}`;
    throw e;
  }
});
