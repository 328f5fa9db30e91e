// Shared by the Swagger UI tests: a live `agentdesk serve` on a fresh SQLite data dir, Debian's
// headless Chromium (/usr/bin/chromium, never a downloaded one) driven by playwright-core, and the
// Swagger UI gestures a user makes (Authorize, expand, Try it out, Execute, read the response).
// Every wait is bounded by WAIT_MS. Not a test file itself (`node --test` runs *.test.mjs).

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, mkdir, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

export const WAIT_MS = 15_000; // bound on every single wait
export const CHROMIUM = process.env.AGENTDESK_CHROMIUM || '/usr/bin/chromium';
export const BIN =
  process.env.AGENTDESK_BIN ||
  `${process.env.CARGO_TARGET_DIR || `${process.env.HOME}/.cache/agentdesk-target`}/release/agentdesk`;
export const OUT_DIR = join(process.env.AGENTDESK_CONTRACT_OUT || '/tmp/agentdesk-contract', 'swagger-ui');

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

export async function fetchWithTimeout(url, init = {}) {
  return fetch(url, { ...init, signal: AbortSignal.timeout(WAIT_MS) });
}

/**
 * Starts `agentdesk serve` on a free port with an empty data dir (SQLite) and waits for /healthz.
 * Returns { base, log(), stop() }; the process is killed if the runner exits first.
 */
export async function startServer() {
  assert.ok(existsSync(BIN), `server binary not found: ${BIN} (set AGENTDESK_BIN or build it)`);
  const dataDir = await mkdtemp(join(tmpdir(), 'agentdesk-swagger-ui-'));
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const server = spawn(BIN, ['serve'], {
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
  let serverLog = '';
  const kill = () => {
    if (server.exitCode === null && server.signalCode === null) server.kill('SIGKILL');
  };
  // Never leave the server behind, even if the runner dies mid-test.
  process.once('exit', kill);
  const keep = (chunk) => {
    serverLog = (serverLog + chunk.toString()).slice(-20_000);
  };
  server.stdout.on('data', keep);
  server.stderr.on('data', keep);

  const deadline = Date.now() + WAIT_MS;
  let last = 'no attempt';
  for (;;) {
    if (server.exitCode !== null || server.signalCode !== null) {
      throw new Error(`agentdesk exited early (code ${server.exitCode}, signal ${server.signalCode}):\n${serverLog}`);
    }
    try {
      const r = await fetch(`${base}/healthz`, { signal: AbortSignal.timeout(1_000) });
      if (r.ok) break;
      last = `HTTP ${r.status}`;
    } catch (e) {
      last = e.message;
    }
    if (Date.now() > deadline) {
      kill();
      throw new Error(`/healthz not ready within ${WAIT_MS} ms (last: ${last}):\n${serverLog}`);
    }
    await sleep(100);
  }

  return {
    base,
    log: () => serverLog,
    async stop() {
      if (server.exitCode === null && server.signalCode === null) {
        const exited = new Promise((r) => server.once('exit', r));
        server.kill('SIGTERM');
        const timer = setTimeout(kill, 5_000);
        await exited;
        clearTimeout(timer);
      }
      await rm(dataDir, { recursive: true, force: true }).catch(() => {});
    },
  };
}

/** Debian's Chromium, headless. Playwright's default (chromiumSandbox: false) passes --no-sandbox,
 *  which Chromium requires when running as root (containers, CI). */
export async function launchChromium() {
  assert.ok(existsSync(CHROMIUM), `Chromium not found: ${CHROMIUM} (apt-get install chromium)`);
  await mkdir(OUT_DIR, { recursive: true });
  return chromium.launch({ executablePath: CHROMIUM, headless: true, chromiumSandbox: false, timeout: WAIT_MS });
}

/**
 * A page in a fresh browser context (nothing persisted from another test), recording everything
 * it complains about: console errors/warnings, uncaught exceptions, failed requests and CSP
 * violation events (reported by the page itself, in addition to the console message).
 */
export async function openPage(browser) {
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

/**
 * Adds to `e` (in place) a full-page screenshot saved to `failureShot`, what the page said (CSP
 * violations, console, uncaught errors, failed requests) and the server log's tail.
 */
export async function annotateFailure(e, page, log, { failureShot, serverLog }) {
  await page.screenshot({ path: failureShot, fullPage: true }).catch(() => {});
  const violations = await page.evaluate(() => window.__cspViolations).catch(() => []);
  const extra =
    `\n  failure screenshot: ${failureShot}` +
    `\n  page url: ${page.url()}` +
    `\n  csp violations: ${JSON.stringify(violations)}` +
    `\n  console: ${JSON.stringify(log.consoleErrors)}` +
    `\n  page errors: ${JSON.stringify(log.pageErrors)}` +
    `\n  failed requests: ${JSON.stringify(log.failedRequests)}` +
    `\n  server log (tail): ${serverLog().slice(-4000)}`;
  if (!(e instanceof Error)) return;
  const original = e.message;
  e.message += extra;
  // The spec reporter prints the stack, whose first line holds the message as it was.
  if (original && typeof e.stack === 'string') e.stack = e.stack.replace(original, e.message);
}

/**
 * Runs `fn`; on failure annotates the error (annotateFailure). Closes the page's context either
 * way. (Remove a stale `failureShot` once, before the tests.)
 */
export async function withDiagnostics(page, log, where, fn) {
  try {
    return await fn();
  } catch (e) {
    await annotateFailure(e, page, log, where);
    throw e;
  } finally {
    await page.context().close().catch(() => {});
  }
}

/** Navigates to /docs (→ /docs/) and waits for the spec to render; returns the navigation response. */
export async function gotoDocs(page, base) {
  const nav = await page.goto(`${base}/docs`, { waitUntil: 'load' });
  assert.equal(nav?.status(), 200, 'GET /docs/ after redirect');
  assert.equal(new URL(page.url()).pathname, '/docs/', '/docs redirects to /docs/');
  await page.locator('.swagger-ui .information-container .title').first().waitFor({ state: 'visible' });
  return nav;
}

/** Opens the Authorize dialog; returns its modal. */
export async function openAuthorize(page) {
  await page.locator('.scheme-container button.authorize').click();
  const modal = page.locator('.dialog-ux .modal-ux');
  await modal.waitFor({ state: 'visible' });
  return modal;
}

/** Authorize: bearer token into the BearerAuth form (the dialog also has one for ApiKeyAuth), Authorize, Close. */
export async function authorize(page, bearerToken, modal) {
  modal ??= await openAuthorize(page);
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
export async function tryItOut(page, tag, method, path) {
  // A deprecated operation's block is `.opblock-deprecated` (not `.opblock-<method>`) and its path
  // `.opblock-summary-path__deprecated`: match on the path's data-path and the method's label.
  const op = page
    .locator(`.opblock-tag-section:has(h3.opblock-tag[data-tag="${tag}"]) .opblock`)
    .filter({ has: page.locator(`.opblock-summary [data-path="${path}"]`) })
    .filter({ has: page.locator('.opblock-summary-method', { hasText: new RegExp(`^${method}$`, 'i') }) });
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
export async function execute(page, body, method, path) {
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
export async function liveResponse(body) {
  const live = body.locator('.live-responses-table tbody tr.response').first();
  await live.waitFor({ state: 'visible' });
  return {
    row: live,
    status: (await live.locator('td.response-col_status').innerText()).trim(),
    text: await live.locator('td.response-col_description').innerText(),
  };
}

/** Screenshot of one operation block, from its summary down to its live response, at full size. */
export async function screenshotOperation(page, op, path) {
  await op.locator('.live-responses-table').scrollIntoViewIfNeeded();
  const clip = await op.evaluate((el) => {
    const top = el.getBoundingClientRect();
    const live = el.querySelector('.live-responses-table').getBoundingClientRect();
    return { x: top.x, y: top.y + window.scrollY, width: top.width, height: live.bottom - top.y };
  });
  await page.screenshot({ path, fullPage: true, clip });
}

/** No CSP violation, no uncaught exception, no failed request. */
export async function assertQuietPage(t, page, log) {
  const violations = await page.evaluate(() => window.__cspViolations);
  const cspConsole = log.consoleErrors.filter((m) => /content security policy|content-security-policy|refused to/i.test(m));
  assert.deepEqual([...violations, ...cspConsole], [], 'no CSP violations');
  assert.deepEqual(log.pageErrors, [], 'no uncaught page errors');
  assert.deepEqual(log.failedRequests, [], 'no failed requests');
  if (log.consoleErrors.length) t.diagnostic(`console (non-CSP): ${log.consoleErrors.join(' | ')}`);
}

export async function getSpec(base) {
  const specRes = await fetchWithTimeout(`${base}/v1/openapi.json`);
  assert.equal(specRes.status, 200, 'GET /v1/openapi.json');
  return specRes.json();
}
