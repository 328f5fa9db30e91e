// The web console (/console/, built from console/ and embedded in the server) in a real browser:
// Debian's headless Chromium (/usr/bin/chromium) driven by playwright-core against a live
// `agentdesk serve` with the `process` desktop runtime (a real TigerVNC desktop per session).
// Through the API: a user, an org, an agent with desktop:shell and desktop:input.pointer, a
// running session whose desktop background is set to a known colour. In the page: log in
// through the form, pick the org, see the session's row live, open it, see that colour on the
// noVNC canvas (desktop relay, view ticket), see a message appended through the API in the
// timeline, check that a click in view mode does nothing, take control, click on the canvas
// and see the desktop's pointer go there (xdotool through the API), release. No
// Content-Security-Policy violation, no uncaught page error. Run: `npm ci && npm test`.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { serverBinary, startServer } from '../journey/server.mjs';
import { decodePng, pixel } from '../png.mjs';

const WAIT_MS = 15_000; // bound on every single wait in the page
const CHROMIUM = process.env.AGENTDESK_CHROMIUM || '/usr/bin/chromium';
const OUT_DIR = join(process.env.AGENTDESK_CONTRACT_OUT || '/tmp/agentdesk-contract', 'console');
const PASSWORD = 'correct horse battery staple';
const DISPLAYS = { min: 480, max: 489 }; // this test's own X displays (journey uses 470–479)
const DESKTOP = { width: 1024, height: 768 };
const BACKGROUND = { css: '#1e90ff', rgb: [0x1e, 0x90, 0xff] }; // dodger blue
const CSP_DIRECTIVES = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "connect-src 'self'",
  "frame-ancestors 'none'",
];

let server; // { baseUrl, stop, logs, verificationToken } from ../journey/server.mjs
let browser;
const fx = {}; // fixtures made through the API: token, org, agent, session

before(async () => {
  assert.ok(existsSync(serverBinary()), `server binary not found: ${serverBinary()} (set AGENTDESK_BIN or build it)`);
  assert.ok(existsSync(CHROMIUM), `Chromium not found: ${CHROMIUM} (apt-get install chromium)`);
  await mkdir(OUT_DIR, { recursive: true });
  for (const f of await readdir(OUT_DIR)) if (f.endsWith('.png')) await rm(join(OUT_DIR, f), { force: true });
  server = await startServer({
    env: {
      AGENTDESK_DESKTOP_RUNTIME: 'process',
      AGENTDESK_DESKTOP_DISPLAY_MIN: String(DISPLAYS.min),
      AGENTDESK_DESKTOP_DISPLAY_MAX: String(DISPLAYS.max),
      AGENTDESK_DESKTOP_PORT_MIN: String(18000 + DISPLAYS.min),
    },
  });
});

after(async () => {
  await browser?.close().catch(() => {});
  if (server && fx.session) {
    // Stop the session (the server then stops its Xvnc) and wait for it, bounded.
    await api('POST', `/v1/orgs/${fx.org}/sessions/${fx.session}/stop`).catch(() => {});
    await waitFor('the session to stop', 30_000, async () => {
      const s = await api('GET', `/v1/orgs/${fx.org}/sessions/${fx.session}`);
      return ['stopped', 'failed'].includes(s.json?.status);
    }).catch(() => {});
  }
  await server?.stop();
  await killLeftoverXvnc();
});

/** SIGTERM (then SIGKILL) any Xvnc still serving one of this test's displays. */
async function killLeftoverXvnc() {
  const pids = [];
  for (const pid of await readdir('/proc').catch(() => [])) {
    if (!/^\d+$/.test(pid)) continue;
    const argv = (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).split('\0');
    if (!/(^|\/)Xvnc$/.test(argv[0] ?? '')) continue;
    const display = argv.find((a) => /^:\d+$/.test(a));
    const n = display ? Number(display.slice(1)) : NaN;
    if (n >= DISPLAYS.min && n <= DISPLAYS.max) pids.push(Number(pid));
  }
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGTERM');
    } catch {}
  }
  if (pids.length) {
    await new Promise((r) => setTimeout(r, 1_000));
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {}
    }
    console.warn(`console test: stopped leftover Xvnc ${pids.join(', ')}`);
  }
}

/** A JSON call to the API with the fixture user's token. */
async function api(method, path, body) {
  const res = await fetch(`${server.baseUrl}${path}`, {
    method,
    headers: {
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      ...(fx.token ? { authorization: `Bearer ${fx.token}` } : {}),
    },
    body: body !== undefined ? JSON.stringify(body) : undefined,
    signal: AbortSignal.timeout(WAIT_MS),
  });
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {}
  return { status: res.status, json, text };
}

async function expectStatus(call, status, what) {
  const r = await call;
  assert.equal(r.status, status, `${what}: ${r.text}`);
  return r.json;
}

async function waitFor(what, timeoutMs, check) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    last = await check();
    if (last) return last;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Runs a command through the API (commands.create) and waits until it finished; returns the command. */
async function runCommand(kind, args) {
  const { org, session } = fx;
  const created = await expectStatus(api('POST', `/v1/orgs/${org}/sessions/${session}/commands`, { kind, args }), 202, `commands.create ${kind}`);
  const done = await waitFor(`command ${kind} to finish`, 30_000, async () => {
    const c = await api('GET', `/v1/orgs/${org}/sessions/${session}/commands/${created.id}`);
    return ['succeeded', 'failed', 'cancelled'].includes(c.json?.status) ? c.json : undefined;
  });
  assert.equal(done.status, 'succeeded', `${kind} ${JSON.stringify(args)}: ${JSON.stringify(done)}`);
  return done;
}

async function shell(command) {
  return (await runCommand('shell', { command })).result;
}

/** The desktop's pointer, from `xdotool getmouselocation --shell`. */
async function pointer() {
  const out = await shell('xdotool getmouselocation --shell');
  const x = /X=(\d+)/.exec(out.stdout);
  const y = /Y=(\d+)/.exec(out.stdout);
  assert.ok(x && y, `xdotool output: ${JSON.stringify(out)}`);
  return { x: Number(x[1]), y: Number(y[1]) };
}

/** The fixtures, through the API: user (signed up, verified, logged in), org, agent, running session. */
async function fixtures() {
  fx.email = `console-${Date.now()}@example.com`;
  await expectStatus(api('POST', '/v1/auth/signup', { email: fx.email, password: PASSWORD, display_name: 'Console Tester' }), 202, 'auth.signup');
  const token = await server.verificationToken(fx.email);
  await expectStatus(api('POST', '/v1/auth/verify-email', { token }), 204, 'auth.verify_email');
  fx.token = (await expectStatus(api('POST', '/v1/auth/login', { email: fx.email, password: PASSWORD }), 200, 'auth.login')).access_token;
  fx.org = (await expectStatus(api('POST', '/v1/orgs', { name: `Console ${Date.now()}` }), 201, 'orgs.create')).id;
  // A second org, so that picking the right one in the page matters.
  await expectStatus(api('POST', '/v1/orgs', { name: 'Another org' }), 201, 'orgs.create (second)');
  fx.agent = (
    await expectStatus(
      api('POST', `/v1/orgs/${fx.org}/agents`, {
        name: 'Painter',
        model: 'test-model',
        desktop: DESKTOP,
        capabilities: ['desktop:screen.capture', 'desktop:input.pointer', 'desktop:shell'],
      }),
      201,
      'agents.create',
    )
  ).id;
  fx.session = (await expectStatus(api('POST', `/v1/orgs/${fx.org}/sessions`, { agent_id: fx.agent }), 202, 'sessions.create')).id;
  const running = await waitFor('the session to run', 60_000, async () => {
    const s = await api('GET', `/v1/orgs/${fx.org}/sessions/${fx.session}`);
    assert.ok(!['failed', 'stopped'].includes(s.json?.status), `the session ended: ${s.text}`);
    return s.json?.status === 'running' ? s.json : undefined;
  });
  assert.deepEqual([running.desktop?.width, running.desktop?.height], [DESKTOP.width, DESKTOP.height], 'desktop size');
  await shell(`xsetroot -solid '${BACKGROUND.css}'`);
  await runCommand('move', { x: 5, y: 5 });
}

/** A page that records what it complains about, CSP violations included (seen by the page itself). */
async function openPage(t) {
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, chromiumSandbox: false, timeout: WAIT_MS });
  t.diagnostic(`chromium ${browser.version()}`);
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT_MS);
  page.setDefaultNavigationTimeout(WAIT_MS);
  const log = { console: [], csp: [], pageErrors: [], failed: [] };
  page.on('console', (m) => {
    const line = `${m.type()}: ${m.text()}`;
    if (/content.security.policy|refused to/i.test(m.text())) log.csp.push(line);
    if (m.type() === 'error' || m.type() === 'warning') log.console.push(line);
  });
  page.on('pageerror', (e) => log.pageErrors.push(String(e?.stack || e)));
  page.on('requestfailed', (r) => log.failed.push(`${r.method()} ${r.url()}: ${r.failure()?.errorText}`));
  await page.addInitScript(() => {
    window.__cspViolations = [];
    document.addEventListener('securitypolicyviolation', (e) => {
      window.__cspViolations.push(`${e.violatedDirective} blocked ${e.blockedURI || '(inline)'} at ${e.sourceFile}:${e.lineNumber}`);
    });
  });
  return { page, log };
}

async function shot(page, name, locator) {
  const path = join(OUT_DIR, name);
  if (locator) await locator.screenshot({ path });
  else await page.screenshot({ path, fullPage: true });
  return path;
}

/** The canvas noVNC draws into, its box on the page and its framebuffer size. */
async function canvasBox(page) {
  const canvas = page.locator('[data-testid="desktop"] canvas').first();
  await canvas.waitFor({ state: 'visible' });
  const box = await canvas.evaluate((c) => {
    const r = c.getBoundingClientRect();
    return { x: r.left, y: r.top, width: r.width, height: r.height, fbWidth: c.width, fbHeight: c.height };
  });
  return { canvas, box };
}

/** Where desktop pixel (x, y) is on the page. */
function toPage(box, x, y) {
  return { x: box.x + ((x + 0.5) * box.width) / box.fbWidth, y: box.y + ((y + 0.5) * box.height) / box.fbHeight };
}

/** The share of a 7×7 grid of canvas pixels (from a screenshot of it) within `tolerance` of `rgb`. */
async function colourShare(canvas, rgb, tolerance = 16) {
  const png = decodePng(await canvas.screenshot());
  let hits = 0;
  const seen = [];
  for (let i = 1; i <= 7; i++) {
    for (let j = 1; j <= 7; j++) {
      const px = pixel(png, Math.floor((png.width * i) / 8), Math.floor((png.height * j) / 8));
      seen.push(px);
      if (px.every((v, k) => Math.abs(v - rgb[k]) <= tolerance)) hits += 1;
    }
  }
  return { share: hits / 49, sample: seen.slice(0, 5), size: [png.width, png.height] };
}

async function modeIs(page, mode) {
  await page.locator(`[data-testid="desktop-mode"][data-mode="${mode}"]`).waitFor({ state: 'attached' });
  await page.locator('[data-testid="desktop-state"][data-state="connected"]').waitFor({ state: 'attached' });
}

test('the console in Chromium: login, org, live session row, desktop relay (view, take control, release), timeline', { timeout: 240_000 }, async (t) => {
  await fixtures();
  t.diagnostic(`session ${fx.session} running; background set to ${BACKGROUND.css}`);
  const { page, log } = await openPage(t);
  try {
    // The page and its CSP.
    const nav = await page.goto(`${server.baseUrl}/console/`, { waitUntil: 'load' });
    assert.equal(nav?.status(), 200, 'GET /console/');
    const csp = nav.headers()['content-security-policy'] ?? '';
    t.diagnostic(`console CSP: ${csp}`);
    for (const d of CSP_DIRECTIVES) assert.ok(csp.includes(d), `CSP has ${d}: ${csp}`);
    assert.ok(!/unsafe-inline|unsafe-eval/.test(csp), `no unsafe-* in the CSP: ${csp}`);

    // Log in through the form.
    await page.locator('[data-testid="login-email"]').fill(fx.email);
    await page.locator('[data-testid="login-password"]').fill(PASSWORD);
    await shot(page, 'login.png');
    await page.locator('[data-testid="login-submit"]').click();
    await page.locator('[data-testid="whoami"]', { hasText: fx.email }).waitFor();

    // Pick the org; the session's row is there with its live status.
    await page.locator('[data-testid="org-picker"]').selectOption(fx.org);
    const row = page.locator(`[data-testid="session-row"][data-session-id="${fx.session}"]`);
    await row.and(page.locator('[data-status="running"]')).waitFor();
    await page.locator('[data-testid="org-stream-state"][data-state="live"]').waitFor({ state: 'attached' });
    await shot(page, 'sessions.png');

    // Open it: the desktop in view mode, showing the background colour.
    await row.locator('[data-testid="session-open"]').click();
    await page.waitForURL(`**/console/#/orgs/${fx.org}/sessions/${fx.session}`);
    await modeIs(page, 'view');
    assert.equal(await page.locator('[data-testid="take-control"]').isVisible(), true, 'Take control offered');
    assert.equal(await page.locator('[data-testid="release-control"]').isVisible(), false, 'no Release in view mode');
    const { canvas, box } = await canvasBox(page);
    t.diagnostic(`canvas ${box.width.toFixed(0)}×${box.height.toFixed(0)} at (${box.x.toFixed(0)}, ${box.y.toFixed(0)}), framebuffer ${box.fbWidth}×${box.fbHeight}`);
    assert.deepEqual([box.fbWidth, box.fbHeight], [DESKTOP.width, DESKTOP.height], 'the canvas holds the whole desktop');
    const frame = await page.locator('[data-testid="desktop"]').boundingBox();
    assert.ok(box.width <= frame.width + 1 && box.height <= frame.height + 1, `scaled to fit its ${frame.width}×${frame.height} container`);
    let colour;
    await waitFor(`the canvas to show ${BACKGROUND.css}`, WAIT_MS, async () => {
      colour = await colourShare(canvas, BACKGROUND.rgb);
      return colour.share >= 0.9;
    }).catch((e) => {
      e.message += ` (last: ${JSON.stringify(colour)})`;
      throw e;
    });
    await shot(page, 'desktop-canvas.png', canvas);
    await shot(page, 'desktop-view.png');

    // A message appended through the API appears in the timeline.
    const text = `Hello from the contract test ${Date.now()}`;
    await expectStatus(api('POST', `/v1/orgs/${fx.org}/sessions/${fx.session}/events`, { events: [{ kind: 'message', payload: { text } }] }), 201, 'events.append');
    await page.locator('[data-testid="timeline"] li[data-kind="message"]', { hasText: text }).waitFor();

    // View mode: a click on the canvas does not reach the desktop.
    const viewTarget = toPage(box, 700, 500);
    await page.mouse.click(viewTarget.x, viewTarget.y);
    const still = await pointer();
    assert.deepEqual(still, { x: 5, y: 5 }, 'the pointer did not move in view mode');

    // Take control: a click at desktop (300, 200) moves the desktop's pointer there.
    await page.locator('[data-testid="take-control"]').click();
    await modeIs(page, 'control');
    assert.equal(await page.locator('[data-testid="release-control"]').isVisible(), true, 'Release offered');
    const control = await canvasBox(page);
    const target = { x: 300, y: 200 };
    const at = toPage(control.box, target.x, target.y);
    await page.mouse.click(at.x, at.y);
    const slack = Math.ceil(control.box.fbWidth / control.box.width) + 1; // one page pixel in desktop pixels, and rounding
    const moved = await waitFor('the desktop pointer to move', WAIT_MS, async () => {
      const p = await pointer();
      return Math.abs(p.x - target.x) <= slack && Math.abs(p.y - target.y) <= slack ? p : undefined;
    });
    t.diagnostic(`clicked page (${at.x.toFixed(1)}, ${at.y.toFixed(1)}) → desktop pointer (${moved.x}, ${moved.y}), slack ${slack}`);
    await shot(page, 'desktop-control.png');

    // Release: back to view.
    await page.locator('[data-testid="release-control"]').click();
    await modeIs(page, 'view');
    assert.equal(await page.locator('[data-testid="take-control"]').isVisible(), true, 'Take control offered again');

    // Quiet page: no CSP violation, no uncaught error.
    const violations = await page.evaluate(() => window.__cspViolations);
    assert.deepEqual([...violations, ...log.csp], [], 'no Content-Security-Policy violations');
    assert.deepEqual(log.pageErrors, [], 'no uncaught page errors');
    assert.equal(await page.locator('[data-testid="error"]').isVisible(), false, 'no error shown');
    if (log.console.length) t.diagnostic(`console (not CSP): ${log.console.join(' | ')}`);
    if (log.failed.length) t.diagnostic(`failed requests (streams closed on navigation are expected): ${log.failed.join(' | ')}`);
  } catch (e) {
    const failure = await shot(page, 'failure.png').catch(() => '(no screenshot)');
    const violations = await page.evaluate(() => window.__cspViolations).catch(() => []);
    const errorText = await page.locator('[data-testid="error-text"]').textContent().catch(() => '');
    const extra =
      `\n  failure screenshot: ${failure}` +
      `\n  page url: ${page.url()}` +
      `\n  error area: ${errorText}` +
      `\n  desktop state: ${await page.locator('[data-testid="desktop-state"]').getAttribute('data-state').catch(() => '?')} ${await page.locator('[data-testid="desktop-state"]').textContent().catch(() => '')}` +
      `\n  csp violations: ${JSON.stringify([...violations, ...log.csp])}` +
      `\n  console: ${JSON.stringify(log.console.slice(-30))}` +
      `\n  page errors: ${JSON.stringify(log.pageErrors)}` +
      `\n  failed requests: ${JSON.stringify(log.failed.slice(-20))}` +
      `\n  server log (tail): ${server.logs().slice(-4000)}`;
    const original = e.message;
    e.message += extra;
    if (original && typeof e.stack === 'string') e.stack = e.stack.replace(original, e.message);
    throw e;
  }
});
