// A new user at /docs, from an empty server (fresh SQLite data dir), through the Swagger UI page
// only (Debian's headless Chromium driven by playwright-core): reads the getting-started
// walkthrough in the API description, registers (auth.register, or auth.signup if that is what
// the walkthrough names), logs in (auth.login) and takes the access token from the response the
// page renders, authorizes with it (Bearer), creates an org (orgs.create), an agent
// (agents.create) and starts a session (sessions.create), each from Try it out with its JSON body
// edited in the page; the session is then read back from node. Along the way it checks what a
// newcomer sees: tag sections in getting-started order (Auth first; Organizations < Agents <
// Sessions < Events < Commands), the Bearer scheme first in the Authorize dialog, realistic
// prefilled example bodies (no "string" fillers; the sign-up example is accepted as is), the
// operations the walkthrough names not deprecated, and no CSP violation or page error.
// Screenshots of every step in $AGENTDESK_CONTRACT_OUT/swagger-ui/getting-started-*.png, and of
// the page as it was when a step failed in getting-started-failure-<step>.png.
//
// Each check is a subtest: a presentation check that fails (order, wording, examples) does not
// stop the flow; a failed flow step skips the flow steps after it.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import {
  OUT_DIR,
  annotateFailure,
  assertQuietPage,
  authorize,
  execute,
  fetchWithTimeout,
  getSpec,
  gotoDocs,
  launchChromium,
  liveResponse,
  openAuthorize,
  openPage,
  screenshotOperation,
  startServer,
  tryItOut,
} from './harness.mjs';

const shot = (name) => join(OUT_DIR, `getting-started-${name}.png`);

// What a newcomer would type: a real-looking address and a passphrase (≥ 10 characters).
const USER = {
  email: `ada.lovelace.${Date.now()}@example.com`,
  password: 'correct horse battery staple',
  display_name: 'Ada Lovelace',
};
const ORG_NAME = 'Analytical Engines Ltd';
const AGENT = { name: 'Research assistant', model: 'claude-sonnet-4-5' };

// The getting-started flow, as tag sections on the page, in this relative order.
const FLOW_TAGS = ['Auth', 'Organizations', 'Agents', 'Sessions', 'Events', 'Commands'];
// The walkthrough in the API description, in this order.
const WALKTHROUGH = [
  ['register', /register/i],
  ['log in', /\blog ?in\b/i],
  ['Authorize', /Authorize/],
  ['create an org', /orgs\.create|organi[sz]ation|\borg\b/i],
  ['start a session', /sessions\.create|session/i],
];

let server;
let browser;

before(async () => {
  await mkdir(OUT_DIR, { recursive: true });
  // Last run's screenshots (a step that now passes leaves no stale failure shot behind).
  for (const f of await readdir(OUT_DIR)) if (f.startsWith('getting-started-')) await rm(join(OUT_DIR, f), { force: true });
  server = await startServer();
});

after(async () => {
  await browser?.close().catch(() => {});
  await server?.stop();
});

/** A placeholder Swagger UI invents when the spec gives no example. */
const placeholder = (v) => v === 'string' || v === '' || v === undefined || /^string/.test(String(v));
/** A name a person would write (letters, digits, spaces, light punctuation), not a pattern's random fill. */
const humanName = (v) => typeof v === 'string' && !placeholder(v) && /^[\p{L}\p{N}][\p{L}\p{N} .,'&()-]{0,79}$/u.test(v);
/** A model id such as `claude-sonnet-4-5`. */
const modelId = (v) => typeof v === 'string' && !placeholder(v) && /^[a-z0-9][a-z0-9._:\/-]{1,79}$/i.test(v);
const realEmail = (v) => typeof v === 'string' && /^[a-z0-9][a-z0-9._%+-]*@[a-z0-9-]+(\.[a-z0-9-]+)*\.[a-z]{2,}$/i.test(v);

/** Every Swagger UI filler in an example: "string" values and `additionalPropN` keys, by JSON path. */
function fillers(value, at = '$') {
  if (Array.isArray(value)) return value.flatMap((v, i) => fillers(v, `${at}[${i}]`));
  if (value && typeof value === 'object') {
    return Object.entries(value).flatMap(([k, v]) =>
      /^additionalProp\d+$/.test(k) ? [`${at}.${k}`] : fillers(v, `${at}.${k}`),
    );
  }
  return placeholder(value) ? [at] : [];
}

/** Asserts an example body has no Swagger UI filler in it. */
function assertNoFillers(json) {
  assert.deepEqual(fillers(json), [], `no "string" / additionalProp fillers in the example:\n${JSON.stringify(json, null, 2)}`);
}

/** The request body editor of an opened Try it out form: its prefilled JSON, parsed. */
async function prefilledBody(body) {
  const editor = body.locator('textarea.body-param__text');
  await editor.waitFor({ state: 'visible' });
  const text = await editor.inputValue();
  try {
    return { editor, text, json: JSON.parse(text) };
  } catch {
    assert.fail(`the prefilled body is JSON:\n${text}`);
  }
}

/** Replaces the body editor's text with `value` (pretty JSON, as a user would type it). */
async function typeBody(body, value) {
  const editor = body.locator('textarea.body-param__text');
  const text = JSON.stringify(value, null, 2);
  await editor.fill(text);
  return text;
}

/** Types `value` into the parameter row `name` (path/header/query) of an opened Try it out form. */
async function typeParam(body, name, value) {
  const input = body.locator(`tr[data-param-name="${name}"] input`).first();
  await input.waitFor({ state: 'visible' });
  await input.fill(value);
}

/** The response body as the page renders it (the live response's "Response body"), parsed. */
async function renderedJson(body) {
  const live = await liveResponse(body);
  const pre = live.row.locator('td.response-col_description .highlight-code pre, td.response-col_description pre.microlight').first();
  await pre.waitFor({ state: 'visible' });
  const text = await pre.innerText();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    assert.fail(`the rendered response body is JSON:\n${text}`);
  }
  return { status: live.status, json, text };
}

/** Executes the opened form; asserts the documented success code in the network and on the page. */
async function executeExpecting(page, body, method, path, code, token) {
  const response = await execute(page, body, method, path);
  const sent = await response.request().allHeaders();
  if (token) assert.equal(sent['authorization'], `Bearer ${token}`, 'the page sent the authorized bearer token');
  assert.equal(response.status(), code, `${method.toUpperCase()} ${path} from the page: ${await response.text().catch(() => '')}`);
  const rendered = await renderedJson(body);
  assert.equal(rendered.status, String(code), 'the live response code shown');
  assert.deepEqual(rendered.json, await response.json(), 'the page renders the body the server sent');
  return { response, sent, rendered: rendered.json };
}

test(
  'a new user at /docs: register → log in → Authorize → orgs.create → agents.create → sessions.create, all in the page',
  { timeout: 180_000 },
  async (t) => {
    const spec = await getSpec(server.base);
    const opOf = (path, method) => {
      const op = spec.paths?.[path]?.[method];
      assert.ok(op, `${method.toUpperCase()} ${path} in the spec`);
      return op;
    };
    const successCode = (op) => Number(Object.keys(op.responses).find((c) => /^2\d\d$/.test(c)));

    browser = await launchChromium();
    t.diagnostic(`chromium ${browser.version()}`);
    const { page, log } = await openPage(browser);
    const serverLog = () => server.log();

    let broken = null; // the first failed flow step: later flow steps are skipped
    // `needs`: what a check reads (an operation opened by a flow step); skipped if not there.
    const run = (kind) => (name, fn, needs = () => true) =>
      t.test(name, async (st) => {
        if (kind === 'flow' && broken) return st.skip(`after failed step: ${broken}`);
        if (!needs()) return st.skip(`needs a step that did not run: ${broken}`);
        try {
          await fn(st);
        } catch (e) {
          if (kind === 'flow') broken = name;
          await annotateFailure(e, page, log, { serverLog, failureShot: shot(`failure-${slug(name)}`) });
          throw e;
        }
      });
    const flow = run('flow');
    const check = run('check');
    const ctx = {}; // what the flow learns: token, org, agent, session

    try {
      await flow('open /docs (from /docs)', async (st) => {
        // The server is empty: no user yet.
        const me = await fetchWithTimeout(`${server.base}/v1/me`);
        assert.equal(me.status, 401, 'no one is logged in on a fresh server');
        const nav = await gotoDocs(page, server.base);
        assert.match(nav.headers()['content-security-policy'] || '', /script-src 'self'/, 'docs CSP sent');
        await page.locator('.opblock-tag-section h3.opblock-tag').first().waitFor({ state: 'visible' });
        await page.screenshot({ path: shot('01-docs'), fullPage: false });
        st.diagnostic(`screenshot: ${shot('01-docs')}`);
      });

      await check('the API description walks register → log in → Authorize → create an org → start a session', async () => {
        const desc = page.locator('.information-container .info .description').first();
        await desc.waitFor({ state: 'visible' });
        const text = await desc.innerText();
        ctx.description = text;
        let at = 0;
        for (const [step, re] of WALKTHROUGH) {
          const m = re.exec(text.slice(at));
          assert.ok(m, `the description mentions "${step}" after the previous step (from char ${at}):\n${text}`);
          at += m.index + m[0].length;
        }
        await desc.screenshot({ path: shot('02-description') });
      });

      // Step 1 of the walkthrough is the operation a newcomer creates the account with
      // (auth.register, or auth.signup): the flow below uses the one it names.
      const signupPath = /POST\s+(\/v1\/auth\/(?:register|signup))\b/.exec(ctx.description ?? '')?.[1] ?? '/v1/auth/register';
      const signupOp = opOf(signupPath, 'post');
      const signupId = signupOp.operationId;

      await check('the operations the walkthrough names exist and are not deprecated', async () => {
        assert.ok(ctx.description, 'the description was read');
        const named = [...ctx.description.matchAll(/\b(GET|POST|PUT|PATCH|DELETE)\s+(\/v1\/[^\s`'")]+)/g)].map(([, m, p]) => [m.toLowerCase(), p.replace(/[.,;:]+$/, '')]);
        assert.ok(named.length >= 4, `the walkthrough names its operations (${named.length} found)`);
        const problems = named.flatMap(([m, p]) => {
          const op = spec.paths?.[p]?.[m];
          if (!op) return [`${m.toUpperCase()} ${p}: not in the spec`];
          return op.deprecated ? [`${m.toUpperCase()} ${p} (${op.operationId}): deprecated — ${op.summary ?? ''}`] : [];
        });
        assert.deepEqual(problems, [], 'a newcomer is sent only to current operations');
      });

      await check('tag sections in getting-started order: Auth first, then Organizations < Agents < Sessions < Events < Commands', async () => {
        const shown = await page
          .locator('.opblock-tag-section h3.opblock-tag')
          .evaluateAll((els) => els.map((e) => e.getAttribute('data-tag')));
        const declared = (spec.tags || []).map((tag) => tag.name);
        assert.deepEqual(shown, declared, 'the page shows the tags in the order the spec declares them');
        assert.equal(shown[0], 'Auth', `Auth is the first section (shown: ${shown.join(', ')})`);
        const at = FLOW_TAGS.map((tag) => shown.indexOf(tag));
        assert.ok(at.every((i) => i >= 0), `every flow tag is shown (shown: ${shown.join(', ')})`);
        assert.deepEqual(
          [...FLOW_TAGS].sort((a, b) => shown.indexOf(a) - shown.indexOf(b)),
          FLOW_TAGS,
          `flow tags in getting-started order (shown: ${shown.join(', ')})`,
        );
        // In Auth, the walkthrough's sign-up operation comes before login (the order a newcomer
        // uses them). A deprecated operation's path is `.opblock-summary-path__deprecated`:
        // match any [data-path].
        const authOps = await page
          .locator('.opblock-tag-section:has(h3.opblock-tag[data-tag="Auth"]) .opblock .opblock-summary [data-path]')
          .evaluateAll((els) => els.map((e) => e.getAttribute('data-path')));
        assert.ok(
          authOps.indexOf(signupPath) >= 0 && authOps.indexOf(signupPath) < authOps.indexOf('/v1/auth/login'),
          `${signupId} before auth.login (Auth shows: ${authOps.join(', ')})`,
        );
      });

      await check('the Authorize dialog lists the Bearer scheme first', async () => {
        const modal = await openAuthorize(page);
        const schemes = await modal
          .locator('.auth-container h4')
          .evaluateAll((els) => els.map((e) => e.textContent.replace(/\s+/g, ' ').trim()));
        await page.screenshot({ path: shot('03-authorize-dialog') });
        await modal.locator('button.close-modal').click();
        await modal.waitFor({ state: 'detached' });
        assert.ok(schemes.length >= 1, 'the dialog lists schemes');
        assert.match(schemes[0], /BearerAuth/, `Bearer first (dialog lists: ${schemes.join(' | ')})`);
      });

      // auth.register (or auth.signup)
      let register;
      await flow(`${signupId}: Try it out`, async () => {
        register = await tryItOut(page, signupOp.tags[0], 'post', signupPath);
      });
      await check(`${signupId}: the prefilled example body is realistic`, async () => {
        const { json } = await prefilledBody(register.body);
        ctx.registerExample = json;
        assert.ok(realEmail(json.email), `a real-looking email: ${JSON.stringify(json)}`);
        assert.ok(!placeholder(json.password) && !/^(string)+/.test(json.password) && json.password.length >= 10, `a password of ≥ 10 characters: ${JSON.stringify(json)}`);
        assert.ok(humanName(json.display_name), `a real-looking display name: ${JSON.stringify(json)}`);
        assertNoFillers(json);
      }, () => register);
      await flow(`${signupId}: edit the body, Execute → ${successCode(signupOp)}`, async (st) => {
        const typed = await typeBody(register.body, USER);
        const { response, sent, rendered } = await executeExpecting(page, register.body, 'post', signupPath, successCode(signupOp));
        assert.equal(response.request().postData(), typed, 'the body typed into the editor');
        assert.equal(sent['origin'], server.base, 'the browser sent Origin (same origin)');
        // auth.register answers the account; auth.signup the same for any address (login proves it).
        if (signupId === 'auth.register') assert.equal(rendered.email, USER.email, 'the new account is shown');
        await screenshotOperation(page, register.op, shot('04-register'));
        st.diagnostic(`screenshot: ${shot('04-register')}`);
      });

      // auth.login
      let login;
      await flow('auth.login: Try it out', async () => {
        login = await tryItOut(page, opOf('/v1/auth/login', 'post').tags[0], 'post', '/v1/auth/login');
      });
      await check('auth.login: the prefilled example body is realistic', async () => {
        const { json } = await prefilledBody(login.body);
        assert.ok(realEmail(json.email), `a real-looking email: ${JSON.stringify(json)}`);
        assertNoFillers(json);
      }, () => login);
      await flow('auth.login: edit the body, Execute → 200, access token read from the rendered response', async (st) => {
        await typeBody(login.body, { email: USER.email, password: USER.password });
        const { rendered } = await executeExpecting(page, login.body, 'post', '/v1/auth/login', 200);
        assert.equal(rendered.token_type, 'Bearer');
        assert.ok(typeof rendered.access_token === 'string' && rendered.access_token.length > 20, 'an access token on the page');
        ctx.token = rendered.access_token;
        await screenshotOperation(page, login.op, shot('05-login'));
        st.diagnostic(`screenshot: ${shot('05-login')}`);
      });

      await flow('Authorize: paste the access token into the Bearer scheme', async () => {
        await authorize(page, ctx.token);
        await page.locator('.scheme-container').screenshot({ path: shot('06-authorized') });
      });

      // orgs.create
      let orgs;
      await flow('orgs.create: Try it out', async () => {
        orgs = await tryItOut(page, opOf('/v1/orgs', 'post').tags[0], 'post', '/v1/orgs');
      });
      await check('orgs.create: the prefilled example body is realistic', async () => {
        const { json } = await prefilledBody(orgs.body);
        assert.ok(humanName(json.name), `a real-looking org name: ${JSON.stringify(json)}`);
        assertNoFillers(json);
      }, () => orgs);
      await flow('orgs.create: edit the body, Execute → 201, org id read from the rendered response', async (st) => {
        await typeBody(orgs.body, { name: ORG_NAME });
        const { rendered } = await executeExpecting(page, orgs.body, 'post', '/v1/orgs', 201, ctx.token);
        assert.equal(rendered.name, ORG_NAME);
        assert.equal(rendered.role, 'owner', 'the new user owns the new org');
        ctx.org = rendered.id;
        await screenshotOperation(page, orgs.op, shot('07-orgs-create'));
        st.diagnostic(`screenshot: ${shot('07-orgs-create')}`);
      });

      // agents.create (a session runs an agent)
      const agentsPath = '/v1/orgs/{org_id}/agents';
      let agents;
      await flow('agents.create: Try it out', async () => {
        agents = await tryItOut(page, opOf(agentsPath, 'post').tags[0], 'post', agentsPath);
      });
      await check('agents.create: the prefilled example body is realistic', async () => {
        const { json } = await prefilledBody(agents.body);
        assert.ok(humanName(json.name), `a real-looking agent name: ${JSON.stringify(json)}`);
        assert.ok(modelId(json.model), `a real-looking model id: ${JSON.stringify(json)}`);
        assertNoFillers(json);
      }, () => agents);
      await flow('agents.create: org id and body typed in, Execute → 201, agent id read from the rendered response', async (st) => {
        await typeParam(agents.body, 'org_id', ctx.org);
        await typeBody(agents.body, AGENT);
        const path = `/v1/orgs/${ctx.org}/agents`;
        const { rendered } = await executeExpecting(page, agents.body, 'post', path, successCode(opOf(agentsPath, 'post')), ctx.token);
        assert.equal(rendered.name, AGENT.name);
        assert.equal(rendered.org_id, ctx.org);
        ctx.agent = rendered.id;
        await screenshotOperation(page, agents.op, shot('08-agents-create'));
        st.diagnostic(`screenshot: ${shot('08-agents-create')}`);
      });

      // sessions.create
      const sessionsPath = '/v1/orgs/{org_id}/sessions';
      let sessions;
      await flow('sessions.create: Try it out', async () => {
        sessions = await tryItOut(page, opOf(sessionsPath, 'post').tags[0], 'post', sessionsPath);
      });
      await check('sessions.create: the prefilled example body has no filler', async () => {
        const { json } = await prefilledBody(sessions.body);
        assertNoFillers(json);
      }, () => sessions);
      await flow('sessions.create: org id and agent id typed in, Execute → 202, the session pending or later', async (st) => {
        await typeParam(sessions.body, 'org_id', ctx.org);
        await typeBody(sessions.body, { agent_id: ctx.agent });
        const path = `/v1/orgs/${ctx.org}/sessions`;
        const code = successCode(opOf(sessionsPath, 'post'));
        assert.equal(code, 202, 'sessions.create answers 202 (accepted; provisioned by a worker)');
        const { response, rendered } = await executeExpecting(page, sessions.body, 'post', path, code, ctx.token);
        assert.equal(rendered.agent_id, ctx.agent);
        assert.equal(rendered.org_id, ctx.org);
        assert.ok(['pending', 'provisioning', 'running'].includes(rendered.status), `a live status: ${rendered.status}`);
        assert.equal(response.headers()['location'], `${path}/${rendered.id}`, 'Location names the session');
        ctx.session = rendered;
        st.diagnostic(`session ${rendered.id}: ${rendered.status}`);
        await screenshotOperation(page, sessions.op, shot('09-sessions-create'));
        st.diagnostic(`screenshot: ${shot('09-sessions-create')}`);
      });

      await flow('the session exists: sessions.get from node with the token from the page', async (st) => {
        const r = await fetchWithTimeout(`${server.base}/v1/orgs/${ctx.org}/sessions/${ctx.session.id}`, {
          headers: { authorization: `Bearer ${ctx.token}` },
        });
        const text = await r.text();
        assert.equal(r.status, 200, `sessions.get: ${text}`);
        const s = JSON.parse(text);
        assert.equal(s.id, ctx.session.id);
        assert.equal(s.agent_id, ctx.agent);
        assert.notEqual(s.status, 'failed', `not failed: ${s.status_reason ?? ''}`);
        st.diagnostic(`sessions.get: ${s.status}`);
      });

      await check('commands.create: the prefilled example body names a command kind', async () => {
        const path = '/v1/orgs/{org_id}/sessions/{session_id}/commands';
        const op = opOf(path, 'post');
        const kinds = Object.keys(spec.components.schemas.CommandIn?.discriminator?.mapping ?? {});
        assert.ok(kinds.length > 0, 'CommandIn has a kind discriminator');
        const commands = await tryItOut(page, op.tags[0], 'post', path);
        const { json } = await prefilledBody(commands.body);
        assert.ok(kinds.includes(json.kind), `kind is one of ${kinds.join(', ')}: ${JSON.stringify(json)}`);
        assertNoFillers(json);
        await commands.body.screenshot({ path: shot('10-commands-example') });
      });

      // Node-side: the examples a newcomer would run unchanged are accepted by the server.
      await check(`the ${signupId} example, sent as prefilled, is accepted (${successCode(signupOp)})`, async () => {
        assert.ok(ctx.registerExample, `the ${signupId} example was read`);
        const r = await fetchWithTimeout(`${server.base}${signupPath}`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(ctx.registerExample),
        });
        assert.equal(r.status, successCode(signupOp), `${signupId} with its own example: ${await r.text()}`);
      });

      await check('no CSP violation, page error or failed request', async (st) => {
        await page.screenshot({ path: shot('11-end') });
        await assertQuietPage(st, page, log);
      });
    } finally {
      await page.context().close().catch(() => {});
    }
  },
);

function slug(s) {
  return s
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-|-$/g, '')
    .slice(0, 60);
}
