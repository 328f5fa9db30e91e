//! Event append throughput: `writers` tasks, each with its own HTTP client (one keep-alive
//! connection), POST the same batch back to back to their session for a fixed time.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context;
use bytes::Bytes;
use tokio::sync::Barrier;

use crate::{api::parse_appended, stats::Pct};

/// Untimed appends per writer before the clock starts (connections open, caches warm).
const WARMUP: usize = 2;

/// One append run.
#[derive(Clone, Debug, Default)]
pub struct AppendRun {
    /// Events appended per second (201 answers × batch size ÷ the run's length).
    pub events_per_s: f64,
    /// Per-request latency (ms): request sent → whole answer read.
    pub lat: Pct,
    /// Requests answered 201.
    pub ok: u64,
    /// Requests that failed (not 201, wrong seqs, transport errors).
    pub errors: u64,
    /// The first failure, for the notes.
    pub first_error: Option<String>,
}

/// What one append run sends.
#[derive(Clone, Debug)]
pub struct AppendLoad<'a> {
    /// `http://127.0.0.1:<port>`.
    pub base: &'a str,
    /// The credential (an `operator` API key).
    pub token: &'a str,
    /// The org.
    pub org: &'a str,
    /// Writer `i` appends to `sessions[i % len]`.
    pub sessions: &'a [String],
    /// Concurrent writers.
    pub writers: usize,
    /// The serialised batch.
    pub body: Bytes,
    /// Events in `body`.
    pub batch: usize,
    /// How long the clock runs.
    pub duration: Duration,
}

struct Writer {
    http: reqwest::Client,
    url: String,
}

impl Writer {
    /// One append; `Err` describes a failure.
    async fn append(&self, token: &str, body: &Bytes, batch: usize) -> anyhow::Result<()> {
        let r = self
            .http
            .post(&self.url)
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await?;
        let status = r.status().as_u16();
        let bytes = r.bytes().await?;
        let (first, last) = parse_appended(status, &bytes)?;
        anyhow::ensure!(
            last - first + 1 == batch as i64,
            "seqs {first}..={last} for {batch} events"
        );
        Ok(())
    }
}

/// Runs `load`: a warm-up, then every writer appends until the time is up (an append in
/// flight then finishes and counts). Errors: a warm-up append failed (nothing was measured).
pub async fn run(load: AppendLoad<'_>) -> anyhow::Result<AppendRun> {
    let mut writers = Vec::with_capacity(load.writers);
    for i in 0..load.writers {
        let session = &load.sessions[i % load.sessions.len()];
        writers.push(Arc::new(Writer {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()?,
            url: format!(
                "{}/v1/orgs/{}/sessions/{session}/events",
                load.base, load.org
            ),
        }));
    }
    let token: Arc<str> = load.token.into();
    let warmups: Vec<_> = writers
        .iter()
        .map(|w| {
            let (w, token, body, batch) = (w.clone(), token.clone(), load.body.clone(), load.batch);
            tokio::spawn(async move {
                for _ in 0..WARMUP {
                    w.append(&token, &body, batch).await?;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for w in warmups {
        w.await
            .context("a warm-up task failed")?
            .context("warm-up append")?;
    }

    let barrier = Arc::new(Barrier::new(load.writers + 1));
    let mut tasks = Vec::with_capacity(load.writers);
    for w in writers {
        let (token, body, barrier) = (token.clone(), load.body.clone(), barrier.clone());
        let (batch, duration) = (load.batch, load.duration);
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let deadline = Instant::now() + duration;
            let mut lat = Vec::new();
            let (mut ok, mut errors, mut first_error) = (0u64, 0u64, None);
            while Instant::now() < deadline {
                let t = Instant::now();
                match w.append(&token, &body, batch).await {
                    Ok(()) => {
                        lat.push(t.elapsed().as_secs_f64() * 1e3);
                        ok += 1;
                    }
                    Err(e) => {
                        errors += 1;
                        first_error.get_or_insert_with(|| format!("{e:#}"));
                    }
                }
            }
            (lat, ok, errors, first_error, Instant::now())
        }));
    }
    barrier.wait().await;
    let start = Instant::now();
    let mut end = start;
    let mut run = AppendRun::default();
    let mut lat = Vec::new();
    for t in tasks {
        let (l, ok, errors, first_error, finished) = t.await.context("an append task failed")?;
        lat.extend(l);
        run.ok += ok;
        run.errors += errors;
        if run.first_error.is_none() {
            run.first_error = first_error;
        }
        end = end.max(finished);
    }
    run.events_per_s = (run.ok * load.batch as u64) as f64 / (end - start).as_secs_f64();
    run.lat = Pct::of_ms(&mut lat);
    Ok(run)
}
