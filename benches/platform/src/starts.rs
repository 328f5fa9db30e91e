//! Session start: `POST /sessions` → the session's `running` status read on the org's
//! status stream (`GET /v1/orgs/{org}/events/stream`), one session after another, each
//! stopped again (`POST …/stop` → `stopped` on the same stream) before the next.

use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail, ensure};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::{api::Api, sse::SseReader, stats::Pct};

/// Untimed starts before the measured ones.
pub const WARMUP: usize = 3;
/// Longest wait for one status change.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);

/// The measured starts.
#[derive(Clone, Copy, Debug, Default)]
pub struct Starts {
    /// `POST /sessions` sent → `running` read on the org stream (ms).
    pub start: Pct,
    /// The `POST /sessions` request alone (202; ms).
    pub create: Pct,
    /// `POST …/stop` sent → `stopped` read on the org stream (ms).
    pub stop: Pct,
}

/// The org's status stream as `(session id, status, instant read)`.
struct StatusFeed {
    rx: mpsc::UnboundedReceiver<(String, String, Instant)>,
    task: tokio::task::JoinHandle<()>,
}

impl StatusFeed {
    /// Opens the stream; once the answer's headers are in, the server listens for changes
    /// (it subscribes before it answers).
    async fn open(base: &str, token: &str, org: &str) -> anyhow::Result<Self> {
        let mut resp = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()?
            .get(format!("{base}/v1/orgs/{org}/events/stream"))
            .bearer_auth(token)
            .header("accept", "text/event-stream")
            .send()
            .await
            .context("opening the org stream")?;
        ensure!(resp.status() == 200, "org stream: {}", resp.status());
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            let mut reader = SseReader::default();
            while let Ok(Some(chunk)) = resp.chunk().await {
                let at = Instant::now();
                reader.feed(&chunk, |ev| {
                    if ev.event != Some(b"status") {
                        return;
                    }
                    let Some(v) = ev
                        .data
                        .and_then(|d| serde_json::from_slice::<Value>(d).ok())
                    else {
                        return;
                    };
                    if let (Some(id), Some(status)) =
                        (v["session_id"].as_str(), v["status"].as_str())
                    {
                        let _ = tx.send((id.to_owned(), status.to_owned(), at));
                    }
                });
            }
        });
        Ok(Self { rx, task })
    }

    /// The instant `session` was reported `status`. Errors: it failed, the stream ended, or
    /// nothing came within [`STEP_TIMEOUT`].
    async fn wait(&mut self, session: &str, status: &str) -> anyhow::Result<Instant> {
        let deadline = tokio::time::Instant::now() + STEP_TIMEOUT;
        loop {
            let (id, st, at) = tokio::time::timeout_at(deadline, self.rx.recv())
                .await
                .map_err(|_| anyhow!("session {session} not {status} within {STEP_TIMEOUT:?}"))?
                .ok_or_else(|| anyhow!("the org stream ended"))?;
            if id == session {
                if st == status {
                    return Ok(at);
                }
                ensure!(st != "failed", "session {session} failed");
            }
        }
    }
}

impl Drop for StatusFeed {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// `b − a` in ms; 0 when the stream's read came first (cannot happen for a start, which is
/// read after its request was sent).
fn since(a: Instant, b: Instant) -> f64 {
    ms(b.saturating_duration_since(a))
}

/// Starts `n` sessions of `agent` one after another after [`WARMUP`] untimed ones: create,
/// wait for `running`, stop, wait for `stopped`.
pub async fn run(
    api: &Api,
    base: &str,
    token: &str,
    org: &str,
    agent: &str,
    n: usize,
) -> anyhow::Result<Starts> {
    let mut feed = StatusFeed::open(base, token, org).await?;
    let (mut start, mut create, mut stop) = (Vec::new(), Vec::new(), Vec::new());
    let body = json!({ "agent_id": agent });
    for i in 0..WARMUP + n {
        let t0 = Instant::now();
        let s = api
            .call(
                Method::POST,
                &format!("/v1/orgs/{org}/sessions"),
                Some(token),
                Some(&body),
                202,
            )
            .await?;
        let created = Instant::now();
        let Some(id) = s["id"].as_str() else {
            bail!("sessions.create answered without an id: {s}");
        };
        let running = feed.wait(id, "running").await?;
        let t_stop = Instant::now();
        api.stop_sessions(token, org, &[id.to_owned()]).await?;
        let stopped = feed.wait(id, "stopped").await?;
        if i >= WARMUP {
            start.push(since(t0, running));
            create.push(ms(created - t0));
            stop.push(since(t_stop, stopped));
        }
    }
    Ok(Starts {
        start: Pct::of_ms(&mut start),
        create: Pct::of_ms(&mut create),
        stop: Pct::of_ms(&mut stop),
    })
}

/// `Xvnc` processes on this machine now (`pgrep -c -x Xvnc`), or why it is unknown.
pub fn count_xvnc() -> String {
    match std::process::Command::new("pgrep")
        .args(["-c", "-x", "Xvnc"])
        .output()
    {
        Ok(o) => String::from_utf8_lossy(&o.stdout).trim().to_owned(),
        Err(e) => format!("unknown ({e})"),
    }
}

/// Whether `Xvnc` is on `PATH` (the `process` runtime needs it).
pub fn xvnc_available() -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("Xvnc").is_file()))
}
