// Swagger UI in a real browser: Debian's headless Chromium (/usr/bin/chromium) driven by
// playwright-core against a live `agentdesk serve`. Opens /docs, checks every spec tag is shown,
// authorizes with a bearer token, runs `GET /v1/me` (me.get) from the page and sees 200, runs a
// write, `POST /v1/orgs` (orgs.create), from the page and sees 201, and fails on any
// Content-Security-Policy violation. Run: `npm ci && node --test` (see README.md).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import {
  OUT_DIR,
  assertQuietPage,
  authorize,
  execute,
  fetchWithTimeout,
  getSpec as specOf,
  gotoDocs as docsAt,
  launchChromium,
  liveResponse,
  openPage,
  startServer,
  tryItOut,
  withDiagnostics as diagnosed,
} from './harness.mjs';

const SCREENSHOT = join(OUT_DIR, 'docs.png');
const OP_SCREENSHOT = join(OUT_DIR, 'me-get.png');
const WRITE_SCREENSHOT = join(OUT_DIR, 'orgs-create.png');
const FAILURE_SCREENSHOT = join(OUT_DIR, 'docs-failure.png');

const USER = {
  email: `swagger-ui-${Date.now()}@example.com`,
  password: 'correct horse battery staple',
  display_name: 'Swagger UI Contract',
};

let server; // { base, log, stop }
let base;
let browser;

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
  await mkdir(OUT_DIR, { recursive: true });
  await rm(FAILURE_SCREENSHOT, { force: true });
  server = await startServer();
  base = server.base;
});

after(async () => {
  await browser?.close().catch(() => {});
  await server?.stop();
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

async function openDocs(t) {
  if (!browser) {
    browser = await launchChromium();
    t.diagnostic(`chromium ${browser.version()}`);
  }
  return openPage(browser);
}

const withDiagnostics = (page, log, fn) =>
  diagnosed(page, log, { failureShot: FAILURE_SCREENSHOT, serverLog: () => server.log() }, fn);
const gotoDocs = (page) => docsAt(page, base);
const getSpec = () => specOf(base);

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
