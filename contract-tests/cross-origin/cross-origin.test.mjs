// The SDK in a browser page on another origin: Debian's headless Chromium (/usr/bin/chromium),
// driven by playwright-core, loads the built @agentdesk/client (clients/typescript/dist, ES
// modules, `openapi-fetch` and `eventsource-parser` mapped by an import map) from a page served on a second loopback
// port, and talks to a live `agentdesk serve` whose `cors_allowed_origins` lists that origin.
// With an API key it creates an agent and a session, retries the create with the same
// Idempotency-Key, appends events, follows the SSE stream through a dropped connection (the
// reconnect resumes with ?after_seq=) and reads the response headers CORS exposes. From a third
// origin, not in the list, the same calls fail in the browser (TypeError) although the server
// answered them. Run: `npm ci && npm test` (see README.md).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import { dirname, join, normalize, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { serverBinary, startServer } from '../journey/server.mjs';

const WAIT_MS = 15_000; // bound on every single wait
const CHROMIUM = process.env.AGENTDESK_CHROMIUM || '/usr/bin/chromium';
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const SDK_DIR = join(ROOT, 'clients/typescript');
const SDK_DIST = join(SDK_DIR, 'dist', 'esm');
const OUT_DIR = join(process.env.AGENTDESK_CONTRACT_OUT || '/tmp/agentdesk-contract', 'cross-origin');
const FAILURE_SCREENSHOT = join(OUT_DIR, 'failure.png');
const PASSWORD = 'correct horse battery staple';

// What src/http/cors.rs promises an allowed origin (a preflight's Allow-Headers, every
// response's Expose-Headers), compared as sets of lower-case names.
const ALLOWED_REQUEST_HEADERS = [
  'authorization',
  'content-type',
  'idempotency-key',
  'if-match',
  'last-event-id',
  'x-api-key',
  'x-request-id',
];
const EXPOSED_RESPONSE_HEADERS = [
  'deprecation',
  'etag',
  'idempotent-replayed',
  'link',
  'location',
  'ratelimit',
  'ratelimit-policy',
  'retry-after',
  'sunset',
  'x-request-id',
];

let api; // { baseUrl, stop, logs } from journey/server.mjs
let allowedSite; // the page origin in cors_allowed_origins
let foreignSite; // a third origin, not in the list
let browser;
let vendorFiles; // { 'openapi-fetch.mjs': path, 'eventsource-parser.mjs': path }

const headerSet = (value) =>
  (value ?? '')
    .split(',')
    .map((s) => s.trim().toLowerCase())
    .filter(Boolean)
    .sort();

/** Where the browser gets a dependency of the SDK: the ESM entry of the SDK's own copy. */
async function resolveDependency(name) {
  const dir = join(SDK_DIR, 'node_modules', name);
  const pkg = JSON.parse(await readFile(join(dir, 'package.json'), 'utf8'));
  const entry = pkg.exports?.['.']?.import ?? pkg.module ?? pkg.main;
  assert.ok(entry, `${name} ${pkg.version}: no ES module entry in its package.json`);
  return join(dir, entry);
}

const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Agentdesk SDK on another origin</title>
<script type="importmap">{ "imports": { "openapi-fetch": "/vendor/openapi-fetch.mjs", "eventsource-parser": "/vendor/eventsource-parser.mjs" } }</script>
<script type="module">
  import * as sdk from "/sdk/index.js";
  import { createParser } from "eventsource-parser";
  window.agentdesk = sdk;
  window.createSseParser = createParser;
  document.body.dataset.sdk = "ready";
</script>
</head>
<body><h1>Agentdesk SDK on another origin</h1></body>
</html>
`;

/**
 * A static site on 127.0.0.1 (a port of its own, so an origin of its own): `/` is the page
 * above, `/sdk/*.js` the built SDK (ES modules), `/vendor/*.mjs` its two dependencies.
 */
async function startSite(name) {
  const served = [];
  const server = createServer(async (req, res) => {
    const path = new URL(req.url, 'http://site').pathname;
    served.push(path);
    const send = (status, type, body) => {
      res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
      res.end(body);
    };
    try {
      if (path === '/') return send(200, 'text/html; charset=utf-8', PAGE);
      if (path === '/favicon.ico') return send(204, 'image/x-icon', '');
      const vendor = path.startsWith('/vendor/') ? vendorFiles[path.slice('/vendor/'.length)] : undefined;
      if (vendor) return send(200, 'text/javascript; charset=utf-8', await readFile(vendor));
      if (path.startsWith('/sdk/') && /\.js(\.map)?$/.test(path)) {
        const file = normalize(join(SDK_DIST, path.slice('/sdk/'.length)));
        if (file.startsWith(SDK_DIST + sep) && existsSync(file)) {
          const type = file.endsWith('.map') ? 'application/json' : 'text/javascript; charset=utf-8';
          return send(200, type, await readFile(file));
        }
      }
      send(404, 'text/plain', 'not found');
    } catch (e) {
      send(500, 'text/plain', String(e));
    }
  });
  await new Promise((r, j) => {
    server.once('error', j);
    server.listen(0, '127.0.0.1', r);
  });
  const origin = `http://127.0.0.1:${server.address().port}`;
  return {
    name,
    origin,
    served,
    close: () =>
      new Promise((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

async function http(method, path, { body, headers = {} } = {}) {
  const res = await fetch(`${api.baseUrl}${path}`, {
    method,
    headers: { ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
    body: body !== undefined ? JSON.stringify(body) : undefined,
    signal: AbortSignal.timeout(WAIT_MS),
  });
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, json, text };
}

/** A browser page on `site`, with the SDK loaded, and everything it complains about. */
async function openSite(site) {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT_MS);
  page.setDefaultNavigationTimeout(WAIT_MS);
  const log = { console: [], pageErrors: [], failed: [], responses: [] };
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') log.console.push(`${m.type()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => log.pageErrors.push(String(e?.stack || e)));
  page.on('requestfailed', (r) => log.failed.push({ method: r.method(), url: r.url(), error: r.failure()?.errorText }));
  page.on('response', (r) => log.responses.push({ method: r.request().method(), url: r.url(), status: r.status() }));
  const nav = await page.goto(`${site.origin}/`, { waitUntil: 'load' });
  assert.equal(nav?.status(), 200, `GET ${site.origin}/`);
  await page.locator('body[data-sdk="ready"]').waitFor({ state: 'attached' });
  assert.ok(site.served.includes('/sdk/index.js'), `${site.name} served the SDK`);
  assert.ok(site.served.includes('/vendor/openapi-fetch.mjs'), `${site.name} served openapi-fetch`);
  assert.ok(site.served.includes('/vendor/eventsource-parser.mjs'), `${site.name} served eventsource-parser`);
  return { page, log };
}

async function withDiagnostics(page, log, fn) {
  try {
    return await fn();
  } catch (e) {
    await page.screenshot({ path: FAILURE_SCREENSHOT, fullPage: true }).catch(() => {});
    const extra =
      `\n  failure screenshot: ${FAILURE_SCREENSHOT}` +
      `\n  page url: ${page.url()}` +
      `\n  console: ${JSON.stringify(log.console)}` +
      `\n  page errors: ${JSON.stringify(log.pageErrors)}` +
      `\n  failed requests: ${JSON.stringify(log.failed)}` +
      `\n  server log (tail): ${api?.logs().slice(-4000)}`;
    const original = e.message;
    e.message += extra;
    // The spec reporter prints the stack, whose first line holds the message as it was.
    if (original && typeof e.stack === 'string') e.stack = e.stack.replace(original, e.message);
    throw e;
  }
}

// Fixtures made over plain HTTP from node: a user, an org, and an admin API key in it.
const fx = {};

before(async () => {
  assert.ok(existsSync(serverBinary()), `server binary not found: ${serverBinary()} (set AGENTDESK_BIN or build it)`);
  assert.ok(existsSync(CHROMIUM), `Chromium not found: ${CHROMIUM} (apt-get install chromium)`);
  assert.ok(
    existsSync(join(SDK_DIST, 'index.js')),
    `the SDK is not built: ${SDK_DIST}/index.js (cd clients/typescript && npm ci && npm run build)`,
  );
  vendorFiles = {
    'openapi-fetch.mjs': await resolveDependency('openapi-fetch'),
    'eventsource-parser.mjs': await resolveDependency('eventsource-parser'),
  };
  await mkdir(OUT_DIR, { recursive: true });
  await rm(FAILURE_SCREENSHOT, { force: true });

  allowedSite = await startSite('second origin (allowed)');
  foreignSite = await startSite('third origin (not allowed)');
  // Lists in the environment use brackets (TOML/JSON array syntax).
  api = await startServer({ env: { AGENTDESK_CORS_ALLOWED_ORIGINS: JSON.stringify([allowedSite.origin]) } });
  assert.notEqual(new URL(api.baseUrl).port, new URL(allowedSite.origin).port);

  const email = `cross-origin-${Date.now()}@example.com`;
  const reg = await http('POST', '/v1/auth/register', { body: { email, password: PASSWORD, display_name: 'Cross Origin' } });
  assert.equal(reg.status, 201, `register: ${reg.text}`);
  const login = await http('POST', '/v1/auth/login', { body: { email, password: PASSWORD } });
  assert.equal(login.status, 200, `login: ${login.text}`);
  const bearer = { authorization: `Bearer ${login.json.access_token}` };
  const org = await http('POST', '/v1/orgs', { body: { name: 'Cross-origin contract' }, headers: bearer });
  assert.equal(org.status, 201, `orgs.create: ${org.text}`);
  fx.org = org.json.id;
  const key = await http('POST', `/v1/orgs/${fx.org}/api-keys`, {
    body: { name: 'browser app', role: 'admin' },
    headers: bearer,
  });
  assert.equal(key.status, 201, `api_keys.create: ${key.text}`);
  fx.apiKey = key.json.secret;
  assert.match(fx.apiKey, /^ad_/, 'API key shape');

  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    chromiumSandbox: false, // --no-sandbox: Chromium refuses the sandbox as root (containers, CI)
    timeout: WAIT_MS,
  });
});

after(async () => {
  await browser?.close().catch(() => {});
  await api?.stop();
  await allowedSite?.close();
  await foreignSite?.close();
});

test('the CORS policy over HTTP: allowed origin admitted, a foreign one ignored, never refused', async () => {
  const path = `/v1/orgs/${fx.org}/agents`;
  const preflight = (origin) =>
    http('OPTIONS', path, {
      headers: {
        origin,
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'content-type,idempotency-key,x-api-key',
      },
    });
  const ok = await preflight(allowedSite.origin);
  assert.equal(ok.status, 204, 'preflight from the allowed origin');
  assert.equal(ok.headers.get('access-control-allow-origin'), allowedSite.origin);
  assert.deepEqual(headerSet(ok.headers.get('access-control-allow-headers')), ALLOWED_REQUEST_HEADERS);
  assert.deepEqual(headerSet(ok.headers.get('access-control-allow-methods')), ['delete', 'get', 'patch', 'post', 'put']);
  assert.equal(ok.headers.get('access-control-allow-credentials'), null, 'no credentials mode');

  const foreign = await preflight(foreignSite.origin);
  assert.equal(foreign.status, 204, 'preflight from a foreign origin is not an error either');
  assert.equal(foreign.headers.get('access-control-allow-origin'), null);
  assert.equal(foreign.headers.get('access-control-allow-headers'), null);

  const key = { 'x-api-key': fx.apiKey };
  const read = await http('GET', path, { headers: { ...key, origin: allowedSite.origin } });
  assert.equal(read.status, 200, read.text);
  assert.equal(read.headers.get('access-control-allow-origin'), allowedSite.origin);
  assert.deepEqual(headerSet(read.headers.get('access-control-expose-headers')), EXPOSED_RESPONSE_HEADERS);
  assert.match(read.headers.get('vary') ?? '', /origin/i);

  const foreignRead = await http('GET', path, { headers: { ...key, origin: foreignSite.origin } });
  assert.equal(foreignRead.status, 200, `a foreign origin is served, not refused: ${foreignRead.text}`);
  assert.equal(foreignRead.headers.get('access-control-allow-origin'), null);
  assert.equal(foreignRead.headers.get('access-control-expose-headers'), null);
});

const ALLOWED_TITLE = 'the SDK from an allowed origin: API key, idempotent retry, exposed headers, SSE resumed with ?after_seq=, Last-Event-ID by hand';
test(ALLOWED_TITLE, { timeout: 120_000 }, async (t) => {
  const { page, log } = await openSite(allowedSite);
  await withDiagnostics(page, log, async () => {
    t.diagnostic(`chromium ${browser.version()}; page ${allowedSite.origin} → api ${api.baseUrl}`);
    const r = await page.evaluate(
      async ({ baseUrl, org, apiKey, idemKey, waitMs }) => {
        const { createClient } = window.agentdesk;
        const deadline = (ms = waitMs) => AbortSignal.timeout(ms);
        const client = createClient({ baseUrl, apiKey });
        const out = { origin: location.origin };
        const fail = (what, res) => {
          throw new Error(`${what}: ${res.response.status} ${JSON.stringify(res.error)}`);
        };

        // agents.create: 201, Location and ETag readable (exposed).
        const agent = await client.agents.create(
          org,
          { name: 'browser agent', model: 'test-model', capabilities: ['desktop:screen.capture'] },
          { idempotencyKey: crypto.randomUUID(), signal: deadline() },
        );
        if (agent.error) fail('agents.create', agent);
        out.agent = {
          status: agent.response.status,
          id: agent.data.id,
          version: agent.data.version,
          location: agent.response.headers.get('location'),
          etag: agent.response.headers.get('etag'),
        };

        // The same key as `Authorization: Bearer ad_…` (the other way to send it).
        const got = await fetch(`${baseUrl}/v1/orgs/${org}/agents/${agent.data.id}`, {
          headers: { authorization: `Bearer ${apiKey}` },
          signal: deadline(),
        });
        out.bearerGet = { status: got.status, etag: got.headers.get('etag'), name: (await got.json()).name };

        // sessions.create, then the same call again with the same Idempotency-Key: a replay.
        const body = { agent_id: agent.data.id, metadata: { from: location.origin } };
        const first = await client.sessions.create(org, body, { idempotencyKey: idemKey, signal: deadline() });
        if (first.error) fail('sessions.create', first);
        const again = await client.sessions.create(org, body, { idempotencyKey: idemKey, signal: deadline() });
        if (again.error) fail('sessions.create (retry)', again);
        out.session = {
          status: first.response.status,
          id: first.data.id,
          location: first.response.headers.get('location'),
          replayed: first.response.headers.get('idempotent-replayed'),
          requestId: first.response.headers.get('x-request-id'),
        };
        out.retry = {
          status: again.response.status,
          id: again.data.id,
          location: again.response.headers.get('location'),
          replayed: again.response.headers.get('idempotent-replayed'),
        };
        const sessionId = first.data.id;

        // Wait (bounded) for the session to run, then append three events.
        const until = Date.now() + waitMs;
        for (;;) {
          const s = await client.sessions.get(org, sessionId, { signal: deadline() });
          if (s.error) fail('sessions.get', s);
          if (s.data.status === 'running') break;
          if (Date.now() > until) throw new Error(`session still ${s.data.status} after ${waitMs} ms`);
          await new Promise((r) => setTimeout(r, 50));
        }
        const appended = await client.events.append(
          org,
          sessionId,
          {
            events: [
              { kind: 'message', payload: { text: 'hello from another origin' } },
              { kind: 'log', payload: { line: 'cross-origin' } },
              { kind: 'action', payload: { tool: 'look' } },
            ],
          },
          { idempotencyKey: crypto.randomUUID(), signal: deadline() },
        );
        if (appended.error) fail('events.append', appended);
        out.appended = appended.data;

        // events.stream through a fetch that drops the first connection after two whole events
        // (plus a few bytes of the third), as a flaky network would: the SDK reconnects with
        // ?after_seq= (the query: no header of its own to preflight).
        const streams = [];
        let dropped = false;
        const flakyFetch = async (request) => {
          const isStream = new URL(request.url).pathname.endsWith('/events/stream');
          if (isStream) streams.push({ url: request.url, lastEventId: request.headers.get('last-event-id') });
          const response = await fetch(request);
          if (!isStream || dropped || !response.ok || !response.body) return response;
          dropped = true;
          const reader = response.body.getReader();
          let events = 0;
          let prev = -1;
          const cut = new ReadableStream({
            async pull(controller) {
              const { value, done } = await reader.read();
              if (done) return controller.close();
              for (let i = 0; i < value.length; i++) {
                if (value[i] === 10 && prev === 10 && ++events === 2) {
                  controller.enqueue(value.subarray(0, Math.min(value.length, i + 1 + 12)));
                  await reader.cancel();
                  controller.error(new TypeError('simulated network drop'));
                  return;
                }
                prev = value[i];
              }
              controller.enqueue(value);
            },
            cancel: () => reader.cancel(),
          });
          return new Response(cut, { status: response.status, headers: response.headers });
        };
        const streamClient = createClient({ baseUrl, apiKey, fetch: flakyFetch });
        const seen = [];
        let replayed;
        const caughtUp = new Promise((r) => (replayed = r));
        const streaming = streamClient.events.stream(org, sessionId, {
          signal: deadline(4 * waitMs),
          reconnect: { initialDelayMs: 100 },
          onEvent: (e) => {
            seen.push(e);
            if (e.seq >= appended.data.last_seq) replayed();
          },
        });
        let timer;
        try {
          await Promise.race([
            caughtUp,
            streaming.then((end) => {
              throw new Error(`the stream ended before replaying the log: ${JSON.stringify({ end, seen })}`);
            }),
            new Promise((_, reject) => {
              timer = setTimeout(() => reject(new Error(`the stream did not replay the log: ${JSON.stringify(seen)}`)), waitMs);
            }),
          ]);
        } finally {
          clearTimeout(timer);
        }
        // Stop the session: the stream ends after the final status event.
        const stop = await client.sessions.stop(org, sessionId, { signal: deadline() });
        if (stop.error) fail('sessions.stop', stop);
        const end = await streaming;
        out.stream = { end, streams, seqs: seen.map((e) => e.seq), last: seen.at(-1) };

        // The whole log by cursor, to compare with what the stream delivered.
        const all = [];
        for (let after = 0; ; ) {
          const page = await client.events.list(org, sessionId, { after_seq: after, limit: 500 }, { signal: deadline() });
          if (page.error) fail('events.list', page);
          all.push(...page.data.items);
          after = page.data.next_after_seq;
          if (!page.data.has_more) break;
        }
        out.log = all;

        // A hand-made resume, as an app without the helper would do it (EventSource cannot send
        // headers): fetch + ReadableStream reader + eventsource-parser, Last-Event-ID = last - 2
        // (a header the preflight must admit).
        const from = all.at(-1).seq - 2;
        const res = await fetch(`${baseUrl}/v1/orgs/${org}/sessions/${sessionId}/events/stream`, {
          headers: { 'x-api-key': apiKey, 'last-event-id': String(from), accept: 'text/event-stream' },
          signal: deadline(),
        });
        const manual = [];
        const parser = window.createSseParser({
          onEvent: (m) => manual.push({ id: m.id, event: m.event, seq: JSON.parse(m.data).seq }),
        });
        const decoder = new TextDecoder();
        const reader = res.body.getReader();
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          parser.feed(decoder.decode(value, { stream: true }));
        }
        out.manual = { status: res.status, contentType: res.headers.get('content-type'), from, events: manual };
        return out;
      },
      { baseUrl: api.baseUrl, org: fx.org, apiKey: fx.apiKey, idemKey: randomUUID(), waitMs: WAIT_MS },
    );

    assert.equal(r.origin, allowedSite.origin, 'the scenario ran on the second origin');
    assert.notEqual(r.origin, api.baseUrl, 'a cross-origin page');

    // Exposed headers, as the page reads them.
    assert.equal(r.agent.status, 201, 'agents.create');
    assert.ok(r.agent.location?.endsWith(`/v1/orgs/${fx.org}/agents/${r.agent.id}`), `Location: ${r.agent.location}`);
    assert.equal(r.agent.etag, `"${r.agent.version}"`, 'ETag');
    assert.deepEqual(r.bearerGet, { status: 200, etag: r.agent.etag, name: 'browser agent' }, 'Authorization: Bearer ad_…');

    assert.equal(r.session.status, 202, 'sessions.create');
    assert.ok(r.session.location?.endsWith(`/v1/orgs/${fx.org}/sessions/${r.session.id}`), `Location: ${r.session.location}`);
    assert.equal(r.session.replayed, null, 'the first create is not a replay');
    assert.ok(r.session.requestId, 'X-Request-Id readable');
    assert.deepEqual(
      r.retry,
      { status: 202, id: r.session.id, location: r.session.location, replayed: 'true' },
      'the retried create replays the first response, Idempotent-Replayed: true readable',
    );

    // The stream: dropped once, resumed with ?after_seq=, no gap, no duplicate, ended on the
    // final status.
    const { stream, log: all } = r;
    assert.equal(stream.end.reason, 'final', JSON.stringify(stream.end));
    assert.ok(stream.streams.length >= 2, `the dropped stream reconnected: ${JSON.stringify(stream.streams)}`);
    assert.match(stream.streams[0].url, /\/events\/stream\?after_seq=0$/, 'first connection: from the start');
    assert.match(stream.streams[1].url, /\/events\/stream\?after_seq=2$/, 'reconnect: after the last whole event');
    assert.ok(stream.streams.every((x) => x.lastEventId === null), 'the SDK sends no Last-Event-ID');
    assert.deepEqual(stream.seqs, all.map((e) => e.seq), 'the stream delivered the log: no gap, no duplicate');
    assert.equal(stream.end.lastSeq, all.at(-1).seq);
    assert.equal(stream.last.kind, 'status');
    assert.equal(stream.last.payload.status, 'stopped');
    const first = r.appended.first_seq;
    assert.deepEqual(
      all.filter((e) => e.seq >= first && e.seq <= r.appended.last_seq).map((e) => e.kind),
      ['message', 'log', 'action'],
    );

    assert.equal(r.manual.status, 200, 'manual resume');
    assert.match(r.manual.contentType ?? '', /^text\/event-stream/);
    assert.deepEqual(
      r.manual.events.map((m) => m.seq),
      [r.manual.from + 1, r.manual.from + 2],
      'Last-Event-ID resumes right after that seq',
    );
    assert.deepEqual(
      r.manual.events.map((m) => m.id),
      [String(r.manual.from + 1), String(r.manual.from + 2)],
      'id: is the seq',
    );

    // The browser saw it all from the page's origin, without complaint.
    const toApi = log.responses.filter((x) => x.url.startsWith(api.baseUrl));
    assert.ok(toApi.some((x) => x.method === 'POST' && x.status === 201), 'POSTs to the API seen by the browser');
    assert.deepEqual(log.pageErrors, [], 'no uncaught page errors');
    assert.deepEqual(log.console, [], 'no console errors or warnings');
    const unexpected = log.failed.filter((f) => !f.url.includes('/events/stream'));
    assert.deepEqual(unexpected, [], 'no failed request (besides the stream the test cut)');
  });
  await page.context().close();
});

const FOREIGN_TITLE = 'the SDK from a third origin (not allowed): the browser fails the calls; the server answered';
test(FOREIGN_TITLE, { timeout: 60_000 }, async (t) => {
  const { page, log } = await openSite(foreignSite);
  await withDiagnostics(page, log, async () => {
    const r = await page.evaluate(
      async ({ baseUrl, org, apiKey, waitMs }) => {
        const { createClient } = window.agentdesk;
        const attempt = async (fn) => {
          try {
            const value = await fn();
            return { ok: true, value };
          } catch (e) {
            return { ok: false, name: e?.name, message: e?.message };
          }
        };
        // maxRetries: 0: a refused preflight is a network error to the page (TypeError), which
        // the SDK would otherwise retry twice; this test counts one preflight per call.
        const client = createClient({ baseUrl, apiKey, maxRetries: 0 });
        const opts = () => ({ signal: AbortSignal.timeout(waitMs) });
        const agent = { name: 'from a foreign origin', model: 'm', capabilities: [] };
        return {
          origin: location.origin,
          // Preflighted (X-API-Key): the preflight answers without CORS headers, so the browser
          // never sends the request.
          sdkList: await attempt(async () => (await client.agents.list(org, {}, opts())).response.status),
          sdkCreate: await attempt(async () => (await client.agents.create(org, agent, opts())).response.status),
          // A simple request (no preflight): the server answers it, the browser withholds it.
          simple: await attempt(async () => (await fetch(`${baseUrl}/v1/permissions`, opts())).status),
          // The same in no-cors mode resolves (opaque): there was a response, not a network error.
          opaque: await attempt(async () => {
            const res = await fetch(`${baseUrl}/v1/permissions`, { mode: 'no-cors', ...opts() });
            return { type: res.type, status: res.status };
          }),
        };
      },
      { baseUrl: api.baseUrl, org: fx.org, apiKey: fx.apiKey, waitMs: WAIT_MS },
    );

    assert.equal(r.origin, foreignSite.origin, 'ran on the third origin');
    for (const name of ['sdkList', 'sdkCreate', 'simple']) {
      assert.deepEqual(
        { ok: r[name].ok, name: r[name].name, message: r[name].message },
        { ok: false, name: 'TypeError', message: 'Failed to fetch' },
        `${name}: a network error in the page, not a response`,
      );
    }
    assert.deepEqual(r.opaque, { ok: true, value: { type: 'opaque', status: 0 } }, 'no-cors: the server did answer');

    // Chromium says why: CORS, not an HTTP error.
    const cors = log.console.filter((m) => /blocked by CORS policy/i.test(m));
    t.diagnostic(`console: ${cors.join(' | ')}`);
    const agentsUrl = `${api.baseUrl}/v1/orgs/${fx.org}/agents`;
    assert.equal(
      cors.filter((m) => m.includes(`'${agentsUrl}'`) && /preflight request doesn't pass/i.test(m)).length,
      2,
      `both SDK calls fail on their preflight:\n${log.console.join('\n')}`,
    );
    assert.equal(
      cors.filter(
        (m) =>
          m.includes(`'${api.baseUrl}/v1/permissions'`) &&
          !/preflight/i.test(m) &&
          /No 'Access-Control-Allow-Origin' header is present/i.test(m),
      ).length,
      1,
      `the simple request's response is withheld for want of Access-Control-Allow-Origin:\n${log.console.join('\n')}`,
    );
    assert.deepEqual(log.pageErrors, [], 'no uncaught page errors');

    // And the server answered each of them normally (never a 403): replay them from node with
    // that Origin.
    const origin = foreignSite.origin;
    const pre = await http('OPTIONS', `/v1/orgs/${fx.org}/agents`, {
      headers: { origin, 'access-control-request-method': 'GET', 'access-control-request-headers': 'x-api-key' },
    });
    assert.equal(pre.status, 204, 'the foreign preflight is answered 204');
    assert.equal(pre.headers.get('access-control-allow-origin'), null);
    const simple = await http('GET', '/v1/permissions', { headers: { origin } });
    assert.equal(simple.status, 200, `the foreign simple request is served: ${simple.text}`);
    assert.equal(simple.headers.get('access-control-allow-origin'), null);
    const list = await http('GET', `/v1/orgs/${fx.org}/agents`, { headers: { origin, 'x-api-key': fx.apiKey } });
    assert.equal(list.status, 200, `agents.list with the foreign Origin is served: ${list.text}`);
    // Nothing was created by the refused create.
    assert.ok(
      !list.json.items.some((a) => a.name === 'from a foreign origin'),
      'the create refused at its preflight never reached the server',
    );
  });
  await page.context().close();
});
