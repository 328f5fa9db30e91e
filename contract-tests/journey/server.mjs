// Starts the agentdesk binary on a free loopback port with a throw-away SQLite database,
// waits for /healthz, and stops it (and removes its data) when asked or when node exits.
import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

const TEST_SIGNING_KEY = "dGVzdC1zaWduaW5nLWtleS10ZXN0LXNpZ25pbmcta2V5LTAx";

/** The binary under test: `AGENTDESK_BIN`, else the release build in the cargo target dir. */
export function serverBinary() {
  if (process.env.AGENTDESK_BIN) return process.env.AGENTDESK_BIN;
  const target = process.env.CARGO_TARGET_DIR || join(process.env.HOME ?? "", ".cache", "agentdesk-target");
  return join(target, "release", "agentdesk");
}

function freePort() {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.unref();
    probe.on("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

/**
 * Starts the server. Returns `{ baseUrl, stop, logs }`; `stop()` is idempotent and always
 * kills the process (SIGTERM, then SIGKILL after 5 s) and removes the data directory.
 */
export async function startServer({ env = {}, readyTimeoutMs = 30_000 } = {}) {
  const bin = serverBinary();
  const dataDir = await mkdtemp(join(tmpdir(), "agentdesk-journey-"));
  const port = await freePort();
  // Only our AGENTDESK_* settings: nothing from the caller's environment leaks in.
  const baseEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("AGENTDESK_")));
  const child = spawn(bin, ["serve"], {
    cwd: dataDir, // no stray ./agentdesk.toml is picked up
    env: {
      ...baseEnv,
      AGENTDESK_LISTEN: `127.0.0.1:${port}`,
      AGENTDESK_DATA_DIR: dataDir,
      AGENTDESK_JWT_SIGNING_KEY: TEST_SIGNING_KEY,
      AGENTDESK_LOG_LEVEL: "warn",
      AGENTDESK_RATE_LIMIT_PER_IP_PER_MIN: "100000",
      AGENTDESK_AUTH_RATE_LIMIT_PER_IP_PER_MIN: "100000",
      AGENTDESK_LOGIN_RATE_LIMIT_PER_ACCOUNT_PER_MIN: "100000",
      AGENTDESK_MAX_LIVE_SESSIONS_PER_ORG: "2",
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let logs = "";
  const keep = (chunk) => {
    logs = (logs + chunk.toString()).slice(-200_000);
  };
  child.stdout.on("data", keep);
  child.stderr.on("data", keep);
  let exited = null;
  const exit = new Promise((resolve) => {
    child.on("exit", (code, signal) => {
      exited = { code, signal };
      resolve(exited);
    });
    child.on("error", (error) => {
      exited = { error };
      resolve(exited);
    });
  });
  const killOnExit = () => child.kill("SIGKILL");
  process.on("exit", killOnExit);

  let stopped = false;
  async function stop() {
    if (stopped) return;
    stopped = true;
    process.off("exit", killOnExit);
    if (!exited) {
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
      await exit;
      clearTimeout(timer);
    }
    await rm(dataDir, { recursive: true, force: true });
  }

  const baseUrl = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + readyTimeoutMs;
  for (;;) {
    if (exited) {
      await stop();
      throw new Error(`${bin} exited before it was ready (${JSON.stringify(exited)}):\n${logs}`);
    }
    try {
      const res = await fetch(`${baseUrl}/healthz`);
      if (res.status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`${bin} did not answer GET /healthz 200 within ${readyTimeoutMs} ms:\n${logs}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { baseUrl, stop, logs: () => logs };
}
