//! Session benchmarks (not a test; `harness = false`). Starts the real server in-process on
//! 127.0.0.1 against a fresh SQLite file or a fresh PostgreSQL database and measures, with
//! clients in the same process:
//!
//! 1. append throughput: 8 clients, each POSTing 60 batches of 100 events (100-byte payloads),
//!    once with one session per client and once all on one shared session;
//! 2. live delivery: 100 SSE subscribers on one session, then 1,000 single-event POSTs from
//!    one client (back-to-back, and paced at one every 5 ms); latency = the instant a
//!    subscriber read the event − the instant its append response arrived;
//! 3. session start: `POST /sessions` → `running` (seen on the org SSE stream), 50 sessions
//!    one after another, each stopped again, with the `none` runtime and, on a second server,
//!    the `process` runtime (TigerVNC `Xvnc`);
//!
//! plus `GET /healthz` p50 over 2,000 sequential requests as a baseline. Prints a Markdown
//! table. Usage: `cargo bench --bench sessions -- sqlite|postgres`; PostgreSQL uses
//! `AGENTDESK_BENCH_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`),
//! creates `agentdesk_bench_<uuid>` databases there and drops them afterwards.
//! `benches/sessions.sh` runs both backends.
//!
//! Servers, databases, the HTTP client, URLs and the SSE reader are the integration tests'
//! kit (`tests/common`); a failed call panics, which ends the run (its task) with an error.

#[path = "../tests/common/mod.rs"]
mod common;

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use agentdesk::{Config, config::DesktopRuntimeKind};
use anyhow::{anyhow, bail, ensure};
use bytes::Bytes;
use common::{Appended, Backend, Client, Created, Databases, PgAdmin, Sse, TestApp, Urls, User};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::sync::{Barrier, mpsc, oneshot, watch};

const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
/// The whole run of one backend is abandoned after this (databases are still dropped).
const DEADLINE: Duration = Duration::from_secs(270);
/// Longest wait for a subscriber or a status change (requests: the kit's 30 s timeout).
const STEP_TIMEOUT: Duration = Duration::from_secs(30);

const HEALTHZ_REQUESTS: usize = 2_000;
const HEALTHZ_WARMUP: usize = 200;

const APPEND_CLIENTS: usize = 8;
const APPEND_BATCHES: usize = 60;
const APPEND_BATCH_SIZE: usize = 100;
const APPEND_WARMUP_BATCHES: usize = 5;
/// Size of each event payload as compact JSON.
const PAYLOAD_BYTES: usize = 100;

const SUBSCRIBERS: usize = 100;
const CATCHUP_EVENTS: usize = 100;
const LIVE_EVENTS: usize = 1_000;
const LIVE_PACE: Duration = Duration::from_millis(5);

const STARTS: usize = 50;
const START_WARMUP: usize = 3;

/// Append throughput target (events/s).
fn append_target(backend: Backend) -> f64 {
    match backend {
        Backend::Sqlite => 10_000.0,
        Backend::Postgres => 20_000.0,
    }
}

fn main() {
    // `cargo bench` appends `--bench`; the backend is the first plain argument.
    let backend = match std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .as_deref()
    {
        Some("sqlite") => Backend::Sqlite,
        Some("postgres") => Backend::Postgres,
        other => {
            eprintln!(
                "usage: cargo bench --bench sessions -- sqlite|postgres (got {:?})",
                other
            );
            std::process::exit(2);
        }
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("warn"))
        .with_writer(std::io::stderr)
        .try_init();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let code = rt.block_on(async move {
        let databases = match databases(backend).await {
            Ok(d) => Arc::new(d),
            Err(e) => {
                eprintln!("{}: cannot set up the database: {e:#}", backend.name());
                return 1;
            }
        };
        // The run is a task of its own, so that a panic in it still lets us drop databases.
        let run = tokio::spawn({
            let databases = databases.clone();
            async move {
                tokio::time::timeout(DEADLINE, run_backend(&databases))
                    .await
                    .map_err(|_| anyhow!("gave up after {DEADLINE:?}"))?
            }
        });
        let result = run.await;
        databases.drop_created().await;
        match result {
            Ok(Ok(report)) => {
                println!("{report}");
                0
            }
            Ok(Err(e)) => {
                eprintln!("{}: benchmark failed: {e:#}", backend.name());
                1
            }
            Err(e) => {
                eprintln!("{}: benchmark panicked: {e}", backend.name());
                1
            }
        }
    });
    // Do not wait for server tasks still winding down.
    rt.shutdown_timeout(Duration::from_secs(2));
    std::process::exit(code);
}

// ---------------------------------------------------------------------------------------------
// Servers and sessions

/// SQLite files, or `agentdesk_bench_<uuid>` databases on the PostgreSQL server at
/// `AGENTDESK_BENCH_POSTGRES_URL`, dropped at the end.
async fn databases(backend: Backend) -> anyhow::Result<Databases> {
    Ok(match backend {
        Backend::Sqlite => Databases::Sqlite,
        Backend::Postgres => {
            let url = std::env::var("AGENTDESK_BENCH_POSTGRES_URL")
                .ok()
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| DEFAULT_POSTGRES_URL.to_owned());
            Databases::Postgres(PgAdmin::connect(&url, "agentdesk_bench_").await?)
        }
    })
}

/// The benchmark servers' config: the tests' with more connections and no limit in the way.
fn bench_config(c: &mut Config) {
    c.db_max_connections = 10;
    common::set_rate_limits(c, 1_000_000);
    c.max_live_sessions_per_org = 1000;
    c.shutdown_timeout_s = 5;
}

/// Creates an org with one agent; returns `(org_id, agent_id)`.
async fn org_with_agent(app: &TestApp, user: &User, name: &str) -> (String, String) {
    let org = app.org(user, name).await;
    let agent = app.agent(user, &org, "bench-agent", &[]).await;
    (org, agent)
}

/// `POST …/stop` answered 5xx and retried (see [`stop_session`]).
static STOP_RETRIES: AtomicUsize = AtomicUsize::new(0);

/// Asks a session to stop; a 5xx answer is retried (up to 20 times, 10 ms apart) and counted
/// in [`STOP_RETRIES`], so that one failed stop request does not end the whole run.
async fn stop_session(api: &Client, org: &str, session: &str) -> anyhow::Result<()> {
    let path = Urls::stop(org, session);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let r = api.call(Method::POST, &path).send().await;
        match r.status {
            202 => return Ok(()),
            s if s >= 500 && attempt < 20 => {
                STOP_RETRIES.fetch_add(1, Ordering::Relaxed);
                eprintln!(
                    "warning: stop of {session} failed, retrying: {s}: {}",
                    r.text
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            s => bail!("POST {path}: expected 202, got {s}: {}", r.text),
        }
    }
}

/// A `POST …/events` body of `n` `log` events, each payload [`PAYLOAD_BYTES`] as JSON.
fn batch_body(n: usize) -> Bytes {
    // {"line":"…"} is 11 bytes plus the string.
    let line = "x".repeat(PAYLOAD_BYTES - 11);
    let event = json!({ "kind": "log", "payload": { "line": line } });
    debug_assert_eq!(event["payload"].to_string().len(), PAYLOAD_BYTES);
    let events: Vec<Value> = (0..n).map(|_| event.clone()).collect();
    Bytes::from(serde_json::to_vec(&json!({ "events": events })).expect("serialisable"))
}

/// Appends the serialised batch `body` at `path` (a session's events).
async fn append(api: &Client, path: &str, body: &Bytes) -> Appended {
    api.call(Method::POST, path)
        .json_bytes(body.clone())
        .expect(201)
        .await
        .parse()
}

/// The org's status stream, as `(session_id, status, instant read)`.
struct StatusFeed {
    rx: mpsc::UnboundedReceiver<(String, String, Instant)>,
    task: tokio::task::JoinHandle<()>,
}

impl StatusFeed {
    async fn open(api: &Client, org: &str) -> Self {
        let mut stream = api
            .sse(&Urls::org_stream(org), &[])
            .await
            .without_idle_limit();
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            while let Some(e) = stream.next().await {
                if e.event.as_deref() != Some("status") {
                    continue;
                }
                let v = e.json();
                if let (Some(id), Some(status)) = (v["session_id"].as_str(), v["status"].as_str())
                    && tx
                        .send((id.to_owned(), status.to_owned(), e.read_at))
                        .is_err()
                {
                    return;
                }
            }
        });
        Self { rx, task }
    }

    /// The instant `session` was reported in `status`. Errors: it failed, or timed out.
    async fn wait(&mut self, session: &str, status: &str) -> anyhow::Result<Instant> {
        let deadline = tokio::time::Instant::now() + STEP_TIMEOUT;
        loop {
            let (id, st, at) = tokio::time::timeout_at(deadline, self.rx.recv())
                .await
                .map_err(|_| anyhow!("session {session} not {status} within {STEP_TIMEOUT:?}"))?
                .ok_or_else(|| anyhow!("org stream ended"))?;
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

// ---------------------------------------------------------------------------------------------
// Statistics and the report

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// `b − a` in ms, negative when `b` is earlier.
fn signed_ms(a: Instant, b: Instant) -> f64 {
    if b >= a { ms(b - a) } else { -ms(a - b) }
}

/// Latency percentiles (ms), nearest rank.
#[derive(Clone, Copy, Debug, Default)]
struct Pct {
    n: usize,
    p50: f64,
    p95: f64,
    p99: f64,
    max: f64,
}

fn percentiles(samples: &[f64]) -> Pct {
    if samples.is_empty() {
        return Pct::default();
    }
    let mut s = samples.to_vec();
    s.sort_by(f64::total_cmp);
    let at = |p: f64| {
        let rank = ((p / 100.0) * s.len() as f64).ceil() as usize;
        s[rank.clamp(1, s.len()) - 1]
    };
    Pct {
        n: s.len(),
        p50: at(50.0),
        p95: at(95.0),
        p99: at(99.0),
        max: s[s.len() - 1],
    }
}

struct Row {
    measurement: String,
    result: String,
    pct: Option<Pct>,
    target: String,
    met: Option<bool>,
}

struct Report {
    backend: Backend,
    healthz_p50: f64,
    rows: Vec<Row>,
    notes: Vec<String>,
}

fn fmt_ms(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0} ms")
    } else if v.abs() >= 10.0 {
        format!("{v:.1} ms")
    } else {
        format!("{v:.2} ms")
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "\n### agentdesk session benchmarks: {} ({} cores; server and clients in one process)\n",
            self.backend.name(),
            std::thread::available_parallelism().map_or(0, |n| n.get())
        )?;
        writeln!(
            f,
            "| Backend | Measurement | Result | p50 | p95 | p99 | p50 ÷ healthz p50 | Target | Met |"
        )?;
        writeln!(f, "|---|---|---|---|---|---|---|---|---|")?;
        for r in &self.rows {
            let (p50, p95, p99, ratio) = match r.pct {
                Some(p) => (
                    fmt_ms(p.p50),
                    fmt_ms(p.p95),
                    fmt_ms(p.p99),
                    format!("{:.1}×", p.p50 / self.healthz_p50),
                ),
                None => ("–".into(), "–".into(), "–".into(), "–".into()),
            };
            let met = match r.met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "–",
            };
            writeln!(
                f,
                "| {} | {} | {} | {p50} | {p95} | {p99} | {ratio} | {} | {met} |",
                self.backend.name(),
                r.measurement,
                r.result,
                r.target
            )?;
        }
        writeln!(f)?;
        for n in &self.notes {
            writeln!(f, "- {n}")?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// The measurements

async fn run_backend(databases: &Databases) -> anyhow::Result<Report> {
    let backend = databases.backend();
    let b = backend.name();
    let mut rows = Vec::new();
    let mut notes = Vec::new();

    eprintln!("{b}: starting the server (runtime `none`)");
    let app = TestApp::spawn_in(databases, bench_config).await;
    let user = app.user("bench").await;
    let api = app.as_user(&user);

    eprintln!("{b}: GET /healthz ×{HEALTHZ_REQUESTS}");
    let (healthz, healthz_rate) = healthz(&app.client().with_own_pool()).await;
    rows.push(Row {
        measurement: format!(
            "`GET /healthz`, {HEALTHZ_REQUESTS} sequential on one connection (baseline)"
        ),
        result: format!("{healthz_rate:.0} req/s"),
        pct: Some(healthz),
        target: "baseline".into(),
        met: None,
    });

    // 1. Append throughput.
    let (org, agent) = org_with_agent(&app, &user, "Bench appends").await;
    let mut own = Vec::new();
    for _ in 0..APPEND_CLIENTS {
        own.push(app.running_session(&user, &org, &agent).await);
    }
    let shared = app.running_session(&user, &org, &agent).await;
    let total = APPEND_CLIENTS * APPEND_BATCHES * APPEND_BATCH_SIZE;
    for (label, sessions) in [
        ("one session per client", own.clone()),
        ("one shared session", vec![shared.clone(); APPEND_CLIENTS]),
    ] {
        eprintln!("{b}: append, {label}");
        let (rate, lat) = append_throughput(&api, &org, &sessions).await?;
        let target = append_target(backend);
        rows.push(Row {
            measurement: format!(
                "append: {APPEND_CLIENTS} clients × {APPEND_BATCHES} batches × {APPEND_BATCH_SIZE} events ({PAYLOAD_BYTES} B payload), {label}; latency per request"
            ),
            result: format!("**{rate:.0} events/s** ({total} events)"),
            pct: Some(lat),
            target: format!("≥ {target:.0} events/s"),
            met: Some(rate >= target),
        });
    }
    for s in own.iter().chain([&shared]) {
        stop_session(&api, &org, s).await?;
    }

    // 2. Live delivery.
    let (org, agent) = org_with_agent(&app, &user, "Bench delivery").await;
    for pace in [None, Some(LIVE_PACE)] {
        let label = match pace {
            None => "back-to-back".to_owned(),
            Some(p) => format!("one every {} ms", p.as_millis()),
        };
        eprintln!("{b}: live delivery, {SUBSCRIBERS} subscribers, {label}");
        let session = app.running_session(&user, &org, &agent).await;
        let d = live_delivery(&api, &org, &session, pace).await?;
        let expected = SUBSCRIBERS * LIVE_EVENTS;
        rows.push(Row {
            measurement: format!(
                "live delivery: {SUBSCRIBERS} SSE subscribers, {LIVE_EVENTS} single-event POSTs from one client ({label}); read − append response"
            ),
            result: format!(
                "{}/{expected} received; {:.0} appends/s",
                d.latency.n, d.append_rate
            ),
            pct: Some(d.latency),
            target: "p99 < 50 ms".into(),
            met: Some(d.latency.p99 < 50.0 && d.latency.n == expected),
        });
        notes.push(format!(
            "{b}, delivery {label}: {} of {} (event × subscriber) pairs read before the append response arrived (reported as is, negative); latency from the append *request* sent: p50 {}, p99 {}, max {}; append POST latency p50 {}, p99 {}; order errors (gap/duplicate) {}; max read − response {}",
            d.negative,
            d.latency.n,
            fmt_ms(d.from_sent.p50),
            fmt_ms(d.from_sent.p99),
            fmt_ms(d.from_sent.max),
            fmt_ms(d.append.p50),
            fmt_ms(d.append.p99),
            d.order_errors,
            fmt_ms(d.latency.max),
        ));
        stop_session(&api, &org, &session).await?;
    }

    // 3a. Session start, `none` runtime.
    eprintln!("{b}: session start ×{STARTS}, runtime none");
    let (org, agent) = org_with_agent(&app, &user, "Bench starts").await;
    let st = session_starts(&api, &org, &agent).await?;
    rows.push(start_row("none", &st, 100.0));
    notes.push(start_note(b, "none", &st));
    app.stop().await;

    // 3b. Session start, `process` runtime, on a second server.
    let xvnc_before = count_xvnc();
    eprintln!("{b}: starting a second server (runtime `process`)");
    let app = TestApp::spawn_in(databases, |c| {
        bench_config(c);
        c.desktop_runtime = DesktopRuntimeKind::Process;
        c.desktop_display_min = 500;
        c.desktop_display_max = 560;
        c.desktop_port_min = 18500;
    })
    .await;
    let user = app.user("bench").await;
    let (org, agent) = org_with_agent(&app, &user, "Bench desktops").await;
    eprintln!("{b}: session start ×{STARTS}, runtime process");
    let st = session_starts(&app.as_user(&user), &org, &agent).await;
    app.stop().await;
    let st = st?;
    rows.push(start_row("process (Xvnc)", &st, 1000.0));
    notes.push(start_note(b, "process", &st));
    let xvnc_after = count_xvnc();
    rows.push(Row {
        measurement: "`Xvnc` processes left after the process-runtime run (`pgrep -c -x Xvnc`)"
            .into(),
        result: format!("{xvnc_after} (before: {xvnc_before})"),
        pct: None,
        target: "none left".into(),
        met: Some(xvnc_after <= xvnc_before),
    });

    let retries = STOP_RETRIES.load(Ordering::Relaxed);
    rows.push(Row {
        measurement: "`POST …/stop` requests answered 5xx (retried by the bench)".into(),
        result: retries.to_string(),
        pct: None,
        target: "none".into(),
        met: Some(retries == 0),
    });
    Ok(Report {
        backend,
        healthz_p50: healthz.p50,
        rows,
        notes,
    })
}

fn count_xvnc() -> String {
    match std::process::Command::new("pgrep")
        .args(["-c", "-x", "Xvnc"])
        .output()
    {
        Ok(o) => String::from_utf8_lossy(&o.stdout).trim().to_owned(),
        Err(e) => format!("unknown ({e})"),
    }
}

/// Latency and rate (req/s) of sequential `GET /healthz` after a warm-up.
async fn healthz(client: &Client) -> (Pct, f64) {
    let mut lat = Vec::with_capacity(HEALTHZ_REQUESTS);
    let mut started = Instant::now();
    for i in 0..HEALTHZ_WARMUP + HEALTHZ_REQUESTS {
        if i == HEALTHZ_WARMUP {
            started = Instant::now();
        }
        let t = Instant::now();
        client.call(Method::GET, "/healthz").expect(200).await;
        if i >= HEALTHZ_WARMUP {
            lat.push(ms(t.elapsed()));
        }
    }
    let rate = HEALTHZ_REQUESTS as f64 / started.elapsed().as_secs_f64();
    (percentiles(&lat), rate)
}

/// 8 clients (own connections) append to `sessions[client]`; returns events/s over the timed
/// part and the per-request latency.
async fn append_throughput(
    api: &Client,
    org: &str,
    sessions: &[String],
) -> anyhow::Result<(f64, Pct)> {
    let body = batch_body(APPEND_BATCH_SIZE);
    let clients: Vec<(Client, String)> = sessions
        .iter()
        .map(|s| (api.with_own_pool(), Urls::events(org, s)))
        .collect();
    // Warm-up, all clients at once (untimed; a failure ends the run here, before any waits).
    futures_util::future::join_all(clients.iter().map(|(client, path)| async {
        for _ in 0..APPEND_WARMUP_BATCHES {
            append(client, path, &body).await;
        }
    }))
    .await;
    let barrier = Arc::new(Barrier::new(sessions.len() + 1));
    let mut tasks = Vec::new();
    for (client, path) in clients {
        let (body, barrier) = (body.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let mut lat = Vec::with_capacity(APPEND_BATCHES);
            for _ in 0..APPEND_BATCHES {
                let t = Instant::now();
                let a = append(&client, &path, &body).await;
                lat.push(ms(t.elapsed()));
                ensure!(
                    a.last_seq - a.first_seq + 1 == APPEND_BATCH_SIZE as i64,
                    "unexpected seqs: {a:?}"
                );
            }
            anyhow::Ok((lat, Instant::now()))
        }));
    }
    barrier.wait().await;
    let start = Instant::now();
    let mut end = start;
    let mut lat = Vec::new();
    for t in tasks {
        let (l, e) = t.await??;
        lat.extend(l);
        end = end.max(e);
    }
    let events = (sessions.len() * APPEND_BATCHES * APPEND_BATCH_SIZE) as f64;
    Ok((events / (end - start).as_secs_f64(), percentiles(&lat)))
}

struct Delivery {
    /// Read − append response, over (event × subscriber) pairs, as is (may be negative).
    latency: Pct,
    /// Read − append request sent.
    from_sent: Pct,
    /// Append request latency.
    append: Pct,
    append_rate: f64,
    negative: usize,
    order_errors: usize,
}

/// 100 subscribers follow `session` (after catching up on [`CATCHUP_EVENTS`]), then one
/// client appends [`LIVE_EVENTS`] single events, each after the previous response (and
/// `pace` apart when set).
async fn live_delivery(
    api: &Client,
    org: &str,
    session: &str,
    pace: Option<Duration>,
) -> anyhow::Result<Delivery> {
    let events_path = Urls::events(org, session);
    let catchup_last = append(api, &events_path, &batch_body(CATCHUP_EVENTS))
        .await
        .last_seq;

    // Subscribers share one client (one connection each, HTTP/1.1).
    let sub_api = api.with_own_pool();
    let stream_path = format!("{}?after_seq=0", Urls::event_stream(org, session));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut readies = Vec::new();
    let mut subs = Vec::new();
    for _ in 0..SUBSCRIBERS {
        let (ready_tx, ready_rx) = oneshot::channel();
        readies.push(ready_rx);
        let stream = sub_api.sse(&stream_path, &[]).await.without_idle_limit();
        subs.push(tokio::spawn(subscriber(
            stream,
            catchup_last,
            ready_tx,
            stop_rx.clone(),
        )));
    }
    for r in readies {
        if tokio::time::timeout(STEP_TIMEOUT, r).await.is_err() {
            let _ = stop_tx.send(true);
            bail!("a subscriber did not catch up within {STEP_TIMEOUT:?}");
        }
    }

    let body = batch_body(1);
    let appender = api.with_own_pool();
    // (sent, response arrived), by seq − catchup_last − 1.
    let mut appends = Vec::with_capacity(LIVE_EVENTS);
    let started = Instant::now();
    let mut next = tokio::time::Instant::now();
    for i in 0..LIVE_EVENTS {
        if let Some(p) = pace {
            tokio::time::sleep_until(next).await;
            next += p;
        }
        let sent = Instant::now();
        let seq = append(&appender, &events_path, &body).await.first_seq;
        let done = Instant::now();
        ensure!(
            seq == catchup_last + 1 + i as i64,
            "unexpected seq {seq} for append {i}"
        );
        appends.push((sent, done));
    }
    let append_rate = LIVE_EVENTS as f64 / started.elapsed().as_secs_f64();

    // Let every subscriber read everything (bounded), then stop the stragglers.
    let all = futures_util::future::join_all(subs);
    let results = match tokio::time::timeout(STEP_TIMEOUT, all).await {
        Ok(r) => r,
        Err(_) => bail!("subscribers did not receive every event within {STEP_TIMEOUT:?}"),
    };
    drop(stop_tx);

    let mut latency = Vec::with_capacity(SUBSCRIBERS * LIVE_EVENTS);
    let mut from_sent = Vec::with_capacity(SUBSCRIBERS * LIVE_EVENTS);
    let mut order_errors = 0;
    for r in results {
        let (got, errs) = r?;
        order_errors += errs;
        for (seq, at) in got {
            let idx = (seq - catchup_last - 1) as usize;
            let Some(&(sent, done)) = appends.get(idx) else {
                order_errors += 1;
                continue;
            };
            latency.push(signed_ms(done, at));
            from_sent.push(signed_ms(sent, at));
        }
    }
    let negative = latency.iter().filter(|v| **v < 0.0).count();
    let append_lat: Vec<f64> = appends.iter().map(|(s, d)| ms(*d - *s)).collect();
    Ok(Delivery {
        latency: percentiles(&latency),
        from_sent: percentiles(&from_sent),
        append: percentiles(&append_lat),
        append_rate,
        negative,
        order_errors,
    })
}

/// Reads a session stream; signals `ready` once it has read `catchup_last`, then records the
/// instant each later event was read, until it has [`LIVE_EVENTS`] of them or `stop`.
/// Returns the records and the number of seqs out of order.
async fn subscriber(
    mut stream: Sse,
    catchup_last: i64,
    ready: oneshot::Sender<()>,
    mut stop: watch::Receiver<bool>,
) -> (Vec<(i64, Instant)>, usize) {
    let mut ready = Some(ready);
    let mut got = Vec::with_capacity(LIVE_EVENTS);
    let (mut last, mut order_errors) = (0i64, 0usize);
    while got.len() < LIVE_EVENTS {
        let event = tokio::select! {
            e = stream.next() => e,
            _ = stop.changed() => break,
        };
        let Some(event) = event else { break };
        let Some(seq) = event.id.as_deref().and_then(|s| s.parse::<i64>().ok()) else {
            continue;
        };
        if seq != last + 1 {
            order_errors += 1;
        }
        last = seq;
        if seq > catchup_last {
            got.push((seq, event.read_at));
        }
        if seq >= catchup_last
            && let Some(r) = ready.take()
        {
            let _ = r.send(());
        }
    }
    (got, order_errors)
}

struct Starts {
    /// POST /sessions → `running` read on the org stream.
    start: Pct,
    /// POST /sessions request latency (202).
    create: Pct,
    /// POST …/stop sent → `stopped` read on the org stream.
    stop: Pct,
}

/// [`STARTS`] sessions one after another (after [`START_WARMUP`] untimed ones): create,
/// wait for `running` on the org stream, stop, wait for `stopped`.
async fn session_starts(api: &Client, org: &str, agent: &str) -> anyhow::Result<Starts> {
    let mut feed = StatusFeed::open(api, org).await;
    let (mut start, mut create, mut stop) = (Vec::new(), Vec::new(), Vec::new());
    let body = json!({ "agent_id": agent });
    for i in 0..START_WARMUP + STARTS {
        let t0 = Instant::now();
        let s: Created = api.post(&Urls::sessions(org), &body, 202).await;
        let created = Instant::now();
        let running = feed.wait(&s.id, "running").await?;
        let t_stop = Instant::now();
        stop_session(api, org, &s.id).await?;
        let stopped = feed.wait(&s.id, "stopped").await?;
        if i >= START_WARMUP {
            start.push(signed_ms(t0, running));
            create.push(ms(created - t0));
            stop.push(signed_ms(t_stop, stopped));
        }
    }
    Ok(Starts {
        start: percentiles(&start),
        create: percentiles(&create),
        stop: percentiles(&stop),
    })
}

fn start_row(runtime: &str, st: &Starts, target_p95_ms: f64) -> Row {
    Row {
        measurement: format!(
            "session start, runtime {runtime}: `POST /sessions` → `running` (org SSE stream), {STARTS} sequential"
        ),
        result: format!("{} sessions", st.start.n),
        pct: Some(st.start),
        target: format!("p95 < {}", fmt_ms(target_p95_ms)),
        met: Some(st.start.p95 < target_p95_ms),
    }
}

fn start_note(b: &str, runtime: &str, st: &Starts) -> String {
    format!(
        "{b}, session start ({runtime}): the `POST /sessions` request itself p50 {}, p95 {}; start max {}; stop (`POST …/stop` → `stopped`) p50 {}, p95 {}, max {}",
        fmt_ms(st.create.p50),
        fmt_ms(st.create.p95),
        fmt_ms(st.start.max),
        fmt_ms(st.stop.p50),
        fmt_ms(st.stop.p95),
        fmt_ms(st.stop.max),
    )
}
