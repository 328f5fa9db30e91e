// Starts the agentdesk binary on a free loopback port with a throw-away SQLite database,
// waits for /healthz, and stops it (and removes its data) when asked or when node exits.
// Mail (verification links, sign-up notices) goes to `.eml` files in `<data dir>/mail`
// (`mail_sender = "dir"`), which `mail()` and `verificationToken()` read.
import { spawn } from "node:child_process";
import { mkdtemp, readFile, readdir, rm } from "node:fs/promises";
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
 * Parses one RFC 5322 message as the `dir` mail sender writes it: `{ file, headers, body }`, the
 * header names lower-cased (folded lines unfolded), CRLF line ends in the body turned into LF.
 */
export function parseEml(file, text) {
  const split = text.indexOf("\r\n\r\n");
  const head = split < 0 ? text : text.slice(0, split);
  const body = split < 0 ? "" : text.slice(split + 4);
  const headers = {};
  for (const line of head.replace(/\r\n[ \t]+/g, " ").split("\r\n")) {
    const colon = line.indexOf(":");
    if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  return { file, headers, body: body.replace(/\r\n/g, "\n") };
}

/**
 * The messages in `dir` (oldest first: the files are named by UUIDv7), optionally only those to
 * `to` (compared case-insensitively with the `To: <addr>` header) and of kind `kind`
 * (`X-Agentdesk-Kind`: `email_verification`, `signup_attempt`). Files being written (`.*.tmp`)
 * are skipped; a missing directory is no mail.
 */
export async function readMail(dir, { to, kind } = {}) {
  let names;
  try {
    names = await readdir(dir);
  } catch (e) {
    if (e.code === "ENOENT") return [];
    throw e;
  }
  const messages = [];
  for (const name of names.filter((n) => n.endsWith(".eml") && !n.startsWith(".")).sort()) {
    messages.push(parseEml(name, await readFile(join(dir, name), "utf8")));
  }
  return messages.filter(
    (m) =>
      (to === undefined || m.headers.to?.toLowerCase() === `<${to.toLowerCase()}>`) &&
      (kind === undefined || m.headers["x-agentdesk-kind"] === kind),
  );
}

/** The `token` in a link's fragment (`<frontend_url>/verify-email#token=ev_…`), or undefined. */
export function linkToken(link) {
  if (!link) return undefined;
  const hash = link.indexOf("#");
  return hash < 0 ? undefined : (new URLSearchParams(link.slice(hash + 1)).get("token") ?? undefined);
}

/**
 * Starts the server. Returns `{ baseUrl, stop, logs, mailDir, mail, verificationToken }`; `stop()` is idempotent and always
 * kills the process (SIGTERM, then SIGKILL after 5 s) and removes the data directory.
 */
export async function startServer({ env = {}, readyTimeoutMs = 30_000 } = {}) {
  const bin = serverBinary();
  const dataDir = await mkdtemp(join(tmpdir(), "agentdesk-journey-"));
  const port = await freePort();
  const mailDir = join(dataDir, "mail");
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
      AGENTDESK_MAIL_SENDER: "dir",
      AGENTDESK_MAIL_DIR: mailDir,
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
  /** The mail sent so far (oldest first), optionally to one address and of one kind. */
  const mail = (filter) => readMail(mailDir, filter);
  /**
   * The token of the newest verification link mailed to `email` (the one `auth.verifyEmail`
   * takes); fails when none was sent. The server writes the file before it answers.
   */
  async function verificationToken(email) {
    const sent = await mail({ to: email, kind: "email_verification" });
    const newest = sent.at(-1);
    const token = linkToken(newest?.headers["x-agentdesk-link"]);
    if (!token) {
      const all = await mail();
      throw new Error(`no verification link for ${email} in ${mailDir}; mail: ${JSON.stringify(all.map((m) => m.headers))}`);
    }
    return token;
  }
  return { baseUrl, stop, logs: () => logs, mailDir, mail, verificationToken };
}
