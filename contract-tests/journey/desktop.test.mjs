// An agent runner's whole loop through @agentdesk/client against the real server binary with
// the `process` runtime (a real TigerVNC desktop), authenticated by an API key only:
// createAndWait, commands.run (a click, then a shell command that reports where the pointer
// is), screenshot (the bytes decode as a PNG of the desktop's size).
import assert from "node:assert/strict";
import { decodePng } from "../png.mjs";
import { after, before, test } from "node:test";
import { createClient } from "@agentdesk/client";
import { startServer } from "./server.mjs";

const PASSWORD = "correct horse battery staple";
let server;

before(async () => {
  server = await startServer({
    env: {
      AGENTDESK_DESKTOP_RUNTIME: "process",
      AGENTDESK_DESKTOP_DISPLAY_MIN: "470",
      AGENTDESK_DESKTOP_DISPLAY_MAX: "479",
      AGENTDESK_DESKTOP_PORT_MIN: "18470",
    },
  });
});

after(async () => {
  await server?.stop();
});

function ok(result) {
  if (result.error) assert.fail(`${result.response.status}: ${JSON.stringify(result.error)}`);
  return result.data;
}

/** A PNG's size, after checking it decodes in full (signature, IHDR, every row's filter). */
function pngSize(bytes) {
  const { width, height, data, channels } = decodePng(bytes);
  assert.equal(data.length, width * height * channels, "image data size");
  return { width, height };
}

test("an agent runner's loop on a real desktop, with an API key", { timeout: 120_000 }, async () => {
  const anon = createClient({ baseUrl: server.baseUrl });
  const email = `runner-${Date.now()}@example.com`;
  ok(await anon.auth.signup({ email, password: PASSWORD, display_name: "Runner" }));
  ok(await anon.auth.verifyEmail({ token: await server.verificationToken(email) }));
  const tokens = ok(await anon.auth.login({ email, password: PASSWORD }));
  const owner = createClient({ baseUrl: server.baseUrl, accessToken: tokens.access_token });
  const org = ok(await owner.orgs.create({ name: "Runners" })).id;
  const agent = ok(
    await owner.agents.create(org, {
      name: "Looper",
      model: "claude-sonnet-4-5",
      desktop: { width: 1024, height: 768 },
      capabilities: ["desktop:screen.capture", "desktop:input.pointer", "desktop:shell"],
    }),
  );
  const key = ok(await owner.apiKeys.create(org, { name: "runner", role: "operator" }));
  const c = createClient({ baseUrl: server.baseUrl, apiKey: key.secret });

  const session = ok(await c.sessions.createAndWait(org, { agent_id: agent.id }, { timeoutMs: 30_000 }));
  assert.equal(session.status, "running");
  assert.equal(session.executor, "builtin");

  const click = ok(await c.commands.run(org, session.id, { kind: "click", args: { x: 300, y: 200 } }));
  assert.equal(click.status, "succeeded");
  assert.deepEqual(click.result, { kind: "click" });
  assert.equal(click.output, undefined);

  const shell = ok(await c.commands.run(org, session.id, { kind: "shell", args: { command: "xdotool getmouselocation --shell" } }));
  assert.equal(shell.status, "succeeded");
  assert.match(shell.result.stdout, /X=300\nY=200\n/);

  const failed = await c.commands.run(org, session.id, { kind: "shell", args: { command: "sleep 5", timeout_s: 1 } });
  assert.equal(failed.error?.code, "command_failed", JSON.stringify(failed));
  assert.match(failed.error.detail, /^timeout:/);

  const shot = ok(await c.screenshot(org, session.id));
  assert.deepEqual([shot.width, shot.height, shot.scale], [1024, 768, 1]);
  assert.deepEqual(pngSize(shot.png), { width: 1024, height: 768 });
  const small = ok(await c.screenshot(org, session.id, { maxWidth: 512 }));
  assert.deepEqual(pngSize(small.png), { width: 512, height: 384 });
  assert.equal(small.scale, 0.5);

  const listed = ok(await c.artifacts.list(org, session.id));
  assert.deepEqual(
    listed.items.map((a) => a.id),
    [shot.artifactId, small.artifactId],
  );

  ok(await c.sessions.stop(org, session.id));
});
