//! The server under test: the release `agentdesk serve` as a child process on 127.0.0.1,
//! configured through `AGENTDESK_*` variables only, its log (JSON lines) in a file, and its
//! memory read from `/proc/<pid>/status`.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use base64::Engine as _;
use tokio::process::{Child, Command};

use crate::scratch::random_bytes;

/// Longest wait for `/healthz` after the start (migrations of a fresh database included).
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest wait for a graceful stop after SIGTERM; then the process is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// A rate limit so high that no request of the benchmark is refused (requests a minute).
const NO_LIMIT: &str = "1000000000";

/// The desktop runtime a server starts sessions with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Runtime {
    /// No desktop: sessions run at once.
    None,
    /// One TigerVNC `Xvnc` per session.
    Process,
}

/// Keys shared by every server of one backend, so that a second server on the same
/// database accepts the first one's tokens and sealed secrets.
#[derive(Clone, Debug)]
pub struct Keys {
    jwt: String,
    sealing: String,
}

impl Keys {
    /// Two fresh 32-byte keys (base64).
    pub fn generate() -> anyhow::Result<Self> {
        let b64 = |b: Vec<u8>| base64::engine::general_purpose::STANDARD.encode(b);
        Ok(Self {
            jwt: b64(random_bytes(32)?),
            sealing: b64(random_bytes(32)?),
        })
    }
}

/// How a server is started.
#[derive(Clone, Debug)]
pub struct ServerConfig<'a> {
    /// The release binary.
    pub bin: &'a Path,
    /// Its data directory (and working directory; its log is written next to it).
    pub dir: &'a Path,
    /// `AGENTDESK_DATABASE_URL`.
    pub database_url: &'a str,
    /// Signing and sealing keys.
    pub keys: &'a Keys,
    /// `AGENTDESK_DB_MAX_CONNECTIONS`.
    pub db_connections: u32,
    /// `AGENTDESK_DESKTOP_RUNTIME`.
    pub runtime: Runtime,
}

/// Resident memory of a process, from `/proc/<pid>/status`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Memory {
    /// `VmRSS`: resident now (KiB).
    pub rss_kib: u64,
    /// `VmHWM`: the most ever resident (KiB).
    pub hwm_kib: u64,
}

/// Reads `VmRSS` and `VmHWM` of `pid`.
pub fn memory(pid: u32) -> anyhow::Result<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let field = |name: &str| -> anyhow::Result<u64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .with_context(|| format!("no {name} in /proc/{pid}/status"))
    };
    Ok(Memory {
        rss_kib: field("VmRSS:")?,
        hwm_kib: field("VmHWM:")?,
    })
}

/// CPU time (user + system, all threads) a process has used, in seconds, from
/// `/proc/<pid>/stat` (`pid` `None`: this process). Linux reports it in USER_HZ ticks, which
/// are 1/100 s on every architecture it runs on.
pub fn cpu_seconds(pid: Option<u32>) -> anyhow::Result<f64> {
    let path = pid.map_or_else(
        || "/proc/self/stat".to_owned(),
        |p| format!("/proc/{p}/stat"),
    );
    let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    // The command name (field 2) may hold spaces; the fields after its `)` are 3, 4, …
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| -> anyhow::Result<f64> {
        Ok(fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .with_context(|| format!("no CPU times in {path}"))? as f64
            / 100.0)
    };
    // utime and stime are fields 14 and 15: 11 and 12 after the name.
    Ok(tick(11)? + tick(12)?)
}

/// A running server. Dropping it without [`Server::stop`] still stops it (SIGTERM, then
/// SIGKILL), so that no server — nor a desktop it started — outlives the benchmark.
pub struct Server {
    child: Option<Child>,
    pid: u32,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    log: PathBuf,
    /// Log lines already looked at by [`Server::new_warnings`].
    log_seen: usize,
}

/// A free port on 127.0.0.1 (bound and released; another process could take it in between,
/// which the start then reports).
fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

impl Server {
    /// Starts `agentdesk serve` and waits until `/healthz` answers 200. The child gets only
    /// the variables set here from the `AGENTDESK_` family (none of the caller's, nor
    /// `RUST_LOG`), and an `AGENTDESK_CONFIG` that does not exist, so no `agentdesk.toml` is
    /// read.
    pub async fn start(c: ServerConfig<'_>) -> anyhow::Result<Self> {
        let port = free_port()?;
        let log = c.dir.join(format!("server-{port}.log"));
        let log_file =
            std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let data_dir = c.dir.join("data");
        let mut cmd = Command::new(c.bin);
        cmd.arg("serve")
            .current_dir(c.dir)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .kill_on_drop(true);
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("AGENTDESK_") {
                cmd.env_remove(k);
            }
        }
        // `RUST_LOG` would win over `AGENTDESK_LOG_LEVEL`.
        cmd.env_remove("RUST_LOG");
        let runtime = match c.runtime {
            Runtime::None => "none",
            Runtime::Process => "process",
        };
        let vars: &[(&str, String)] = &[
            (
                "AGENTDESK_CONFIG",
                c.dir.join("none.toml").display().to_string(),
            ),
            ("AGENTDESK_LISTEN", format!("127.0.0.1:{port}")),
            ("AGENTDESK_DATA_DIR", data_dir.display().to_string()),
            ("AGENTDESK_DATABASE_URL", c.database_url.to_owned()),
            ("AGENTDESK_DB_MAX_CONNECTIONS", c.db_connections.to_string()),
            ("AGENTDESK_LOG_LEVEL", "warn".into()),
            ("AGENTDESK_LOG_FORMAT", "json".into()),
            ("AGENTDESK_JWT_SIGNING_KEY", c.keys.jwt.clone()),
            ("AGENTDESK_SECRET_SEALING_KEY", c.keys.sealing.clone()),
            ("AGENTDESK_RATE_LIMIT_PER_IP_PER_MIN", NO_LIMIT.into()),
            ("AGENTDESK_AUTH_RATE_LIMIT_PER_IP_PER_MIN", NO_LIMIT.into()),
            (
                "AGENTDESK_LOGIN_RATE_LIMIT_PER_ACCOUNT_PER_MIN",
                NO_LIMIT.into(),
            ),
            ("AGENTDESK_MAX_LIVE_SESSIONS_PER_ORG", "100000".into()),
            ("AGENTDESK_MAX_LIVE_SESSIONS_PER_USER", "100000".into()),
            ("AGENTDESK_SHUTDOWN_TIMEOUT_S", "5".into()),
            // Mail (sign-up) as files, not as WARN-level log lines.
            ("AGENTDESK_MAIL_SENDER", "dir".into()),
            (
                "AGENTDESK_MAIL_DIR",
                c.dir.join("mail").display().to_string(),
            ),
            ("AGENTDESK_DESKTOP_RUNTIME", runtime.into()),
            // The process runtime's displays and ports, away from the defaults (100–199,
            // 15900–) a development server or the tests may use.
            ("AGENTDESK_DESKTOP_DISPLAY_MIN", "500".into()),
            ("AGENTDESK_DESKTOP_DISPLAY_MAX", "560".into()),
            ("AGENTDESK_DESKTOP_PORT_MIN", "18500".into()),
        ];
        cmd.envs(vars.iter().map(|(k, v)| (*k, v.as_str())));
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {}", c.bin.display()))?;
        let pid = child.id().context("the server exited at once")?;
        let mut server = Server {
            child: Some(child),
            pid,
            base: format!("http://127.0.0.1:{port}"),
            log,
            log_seen: 0,
        };
        server.wait_ready().await?;
        Ok(server)
    }

    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()?;
        let url = format!("{}/healthz", self.base);
        let started = Instant::now();
        loop {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                bail!(
                    "the server exited ({status}) before it was ready; its log:\n{}",
                    self.log_tail(20)
                );
            }
            if let Ok(r) = http.get(&url).send().await
                && r.status() == 200
            {
                return Ok(());
            }
            if started.elapsed() > READY_TIMEOUT {
                bail!(
                    "/healthz did not answer 200 within {READY_TIMEOUT:?}; the server's log:\n{}",
                    self.log_tail(20)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The server's memory now.
    pub fn memory(&self) -> anyhow::Result<Memory> {
        memory(self.pid)
    }

    /// The last `n` lines of the server's log.
    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Log lines at WARN or ERROR written since the last call, grouped by level, message and
    /// error, in the order first seen: `(count, "WARN message (error)")`.
    pub fn new_warnings(&mut self) -> Vec<(usize, String)> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let fresh = &lines[self.log_seen.min(lines.len())..];
        self.log_seen = lines.len();
        let mut groups: Vec<(usize, String)> = Vec::new();
        for line in fresh {
            let key = match serde_json::from_str::<serde_json::Value>(line) {
                Ok(v) => {
                    let level = v["level"].as_str().unwrap_or_default();
                    if level != "WARN" && level != "ERROR" {
                        continue;
                    }
                    let message = v["message"].as_str().unwrap_or_default();
                    match v["error"].as_str() {
                        Some(e) => format!("{level} {message:?} ({e})"),
                        None => format!("{level} {message:?}"),
                    }
                }
                // Not a log line (a panic message, say): worth seeing as it is.
                Err(_) => line.chars().take(300).collect(),
            };
            match groups.iter_mut().find(|(_, k)| *k == key) {
                Some((n, _)) => *n += 1,
                None => groups.push((1, key)),
            }
        }
        groups
    }

    /// Stops the server: SIGTERM, a graceful shutdown of at most [`STOP_TIMEOUT`], then
    /// SIGKILL. Errors: it had to be killed, or it exited with a failure.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        sigterm(self.pid);
        match tokio::time::timeout(STOP_TIMEOUT, child.wait()).await {
            Ok(Ok(status)) if status.success() => Ok(()),
            Ok(Ok(status)) => bail!(
                "the server exited with {status}; its log:\n{}",
                self.log_tail(10)
            ),
            Ok(Err(e)) => Err(e.into()),
            Err(_) => {
                let _ = child.kill().await;
                bail!("the server did not stop within {STOP_TIMEOUT:?} of SIGTERM; killed")
            }
        }
    }
}

/// Sends SIGTERM with `kill(1)` (the crate forbids `unsafe`, so no `libc::kill`).
fn sigterm(pid: u32) {
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

impl Drop for Server {
    /// The failure path (an error, a timeout, Ctrl-C): SIGTERM and a bounded wait, so that
    /// the server can stop the desktops it started; `kill_on_drop` kills it after that.
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        sigterm(self.pid);
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if matches!(child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.start_kill();
    }
}
