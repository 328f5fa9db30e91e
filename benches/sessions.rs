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

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use agentdesk::{Config, config::DesktopRuntimeKind};
use anyhow::{Context, anyhow, bail, ensure};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use reqwest::{
    Method,
    header::{ACCEPT, CONTENT_TYPE},
};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection};
use serde_json::{Value, json};
use tokio::sync::{Barrier, mpsc, oneshot, watch};

/// Signing key of the benchmark servers (base64 of 36 bytes).
const SIGNING_KEY: &str = "dGVzdC1zaWduaW5nLWtleS10ZXN0LXNpZ25pbmcta2V5LTAx";
const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
/// The whole run of one backend is abandoned after this (databases are still dropped).
const DEADLINE: Duration = Duration::from_secs(270);
/// Longest wait for any single step (a request, a status change, a subscriber).
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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }

    /// Append throughput target (events/s).
    fn append_target(self) -> f64 {
        match self {
            Backend::Sqlite => 10_000.0,
            Backend::Postgres => 20_000.0,
        }
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
        let mut dbs = match Databases::new(backend).await {
            Ok(d) => d,
            Err(e) => {
                eprintln!("{}: cannot set up the database: {e:#}", backend.name());
                return 1;
            }
        };
        // The run is a task of its own, so that a panic in it still lets us drop databases.
        let run = {
            let dbs_urls = (dbs.fresh("main").await, dbs.fresh("process").await);
            tokio::spawn(async move {
                let (main_url, process_url) = (dbs_urls.0?, dbs_urls.1?);
                tokio::time::timeout(DEADLINE, run_backend(backend, main_url, process_url))
                    .await
                    .map_err(|_| anyhow!("gave up after {DEADLINE:?}"))?
            })
        };
        let result = run.await;
        dbs.drop_all().await;
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
// Databases and servers

/// The fresh databases of one run: SQLite files in a temp dir, or PostgreSQL databases
/// created through the admin URL and dropped by [`Databases::drop_all`].
struct Databases {
    backend: Backend,
    dir: tempfile::TempDir,
    admin: Option<(DatabaseConnection, url::Url)>,
    created: Vec<String>,
}

impl Databases {
    async fn new(backend: Backend) -> anyhow::Result<Self> {
        let admin = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => {
                let raw = std::env::var("AGENTDESK_BENCH_POSTGRES_URL")
                    .ok()
                    .filter(|s| !s.is_empty())
                    .unwrap_or_else(|| DEFAULT_POSTGRES_URL.to_owned());
                let url = url::Url::parse(&raw).context("AGENTDESK_BENCH_POSTGRES_URL")?;
                let conn = Database::connect(raw.as_str())
                    .await
                    .with_context(|| format!("connecting to {}", redact(&url)))?;
                Some((conn, url))
            }
        };
        Ok(Self {
            backend,
            dir: tempfile::tempdir()?,
            admin,
            created: Vec::new(),
        })
    }

    /// A URL of a new, empty database.
    async fn fresh(&mut self, label: &str) -> anyhow::Result<String> {
        match (&self.backend, &self.admin) {
            (Backend::Sqlite, _) => Ok(format!(
                "sqlite://{}?mode=rwc",
                self.dir.path().join(format!("bench-{label}.db")).display()
            )),
            (Backend::Postgres, Some((conn, admin))) => {
                let name = format!("agentdesk_bench_{}", uuid::Uuid::now_v7().simple());
                conn.execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
                    .await
                    .with_context(|| format!("creating database {name}"))?;
                self.created.push(name.clone());
                let mut url = admin.clone();
                url.set_path(&name);
                Ok(url.to_string())
            }
            (Backend::Postgres, None) => bail!("no PostgreSQL admin connection"),
        }
    }

    async fn drop_all(&mut self) {
        if let Some((conn, _)) = &self.admin {
            for name in self.created.drain(..) {
                if let Err(e) = conn
                    .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                    .await
                {
                    eprintln!("warning: could not drop database {name}: {e}");
                }
            }
        }
    }
}

/// `url` without its password, for messages.
fn redact(url: &url::Url) -> String {
    let mut u = url.clone();
    if u.password().is_some() {
        let _ = u.set_password(Some("***"));
    }
    u.to_string()
}

/// A server running in this process.
struct Server {
    base: String,
    shutdown: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    _dir: tempfile::TempDir,
}

impl Server {
    /// Starts a server on `database_url` with the benchmark config, adjusted by `tweak`.
    async fn start(database_url: String, tweak: impl FnOnce(&mut Config)) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let mut config = Config {
            listen: "127.0.0.1:0".into(),
            database_url: Some(database_url),
            data_dir: dir.path().to_path_buf(),
            db_max_connections: 10,
            jwt_signing_key: SIGNING_KEY.into(),
            rate_limit_per_ip_per_min: 1_000_000,
            auth_rate_limit_per_ip_per_min: 1_000_000,
            login_rate_limit_per_account_per_min: 1_000_000,
            max_live_sessions_per_org: 1000,
            shutdown_timeout_s: 5,
            log_level: "warn".into(),
            ..Config::default()
        };
        tweak(&mut config);
        config.validate()?;
        let state = agentdesk::build_state(config).await?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(agentdesk::serve(state, listener, async move {
            let _ = rx.await;
        }));
        Ok(Self {
            base: format!("http://{addr}"),
            shutdown: Some(tx),
            task,
            _dir: dir,
        })
    }

    /// Shuts the server down gracefully and waits (bounded) for it.
    async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match tokio::time::timeout(Duration::from_secs(15), &mut self.task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => eprintln!("warning: server ended with an error: {e:#}"),
            Ok(Err(e)) => eprintln!("warning: server task failed: {e}"),
            Err(_) => {
                eprintln!("warning: server did not shut down in 15 s; aborting it");
                self.task.abort();
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP client

/// The body of an SSE response.
type SseStream = std::pin::Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;

/// One API client: its own connection pool and a bearer token.
#[derive(Clone)]
struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    fn new(base: &str, token: &str) -> anyhow::Result<Self> {
        Ok(Self {
            http: reqwest::Client::builder().timeout(STEP_TIMEOUT).build()?,
            base: base.to_owned(),
            token: token.to_owned(),
        })
    }

    /// Sends a request with an optional JSON body; fails unless the status is `expect`.
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
        expect: u16,
    ) -> anyhow::Result<Value> {
        let mut rb = self
            .http
            .request(method.clone(), format!("{}{}", self.base, path));
        if !self.token.is_empty() {
            rb = rb.bearer_auth(&self.token);
        }
        if let Some(b) = body {
            rb = rb.header(CONTENT_TYPE, "application/json").body(b);
        }
        let r = rb
            .send()
            .await
            .with_context(|| format!("{method} {path}"))?;
        let status = r.status().as_u16();
        let bytes = r
            .bytes()
            .await
            .with_context(|| format!("{method} {path}"))?;
        if status != expect {
            bail!(
                "{method} {path}: expected {expect}, got {status}: {}",
                String::from_utf8_lossy(&bytes)
            );
        }
        Ok(serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    async fn post(&self, path: &str, body: &Value, expect: u16) -> anyhow::Result<Value> {
        let body = Bytes::from(serde_json::to_vec(body)?);
        self.send(Method::POST, path, Some(body), expect).await
    }

    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.send(Method::GET, path, None, 200).await
    }

    /// Opens an SSE stream at `path`.
    async fn sse(&self, path: &str) -> anyhow::Result<SseStream> {
        // No overall timeout on a stream: only on connecting.
        let r = self
            .http
            .get(format!("{}{}", self.base, path))
            .bearer_auth(&self.token)
            .header(ACCEPT, "text/event-stream")
            .timeout(Duration::from_secs(3600))
            .send()
            .await
            .with_context(|| format!("GET {path}"))?;
        ensure!(r.status() == 200, "GET {path}: status {}", r.status());
        Ok(Box::pin(r.bytes_stream()))
    }
}

fn str_field(v: &Value, key: &str) -> anyhow::Result<String> {
    v[key]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("response without `{key}`: {v}"))
}

/// Registers and logs in a user; returns an authenticated client.
async fn login(base: &str) -> anyhow::Result<Api> {
    let anon = Api::new(base, "")?;
    let email = format!("bench-{}@example.com", uuid::Uuid::now_v7().simple());
    let password = "benchmark correct horse battery";
    anon.post(
        "/v1/auth/register",
        &json!({ "email": email, "password": password, "display_name": "Bench" }),
        201,
    )
    .await?;
    let t = anon
        .post(
            "/v1/auth/login",
            &json!({ "email": email, "password": password }),
            200,
        )
        .await?;
    Api::new(base, &str_field(&t, "access_token")?)
}

/// Creates an org with one agent; returns `(org_id, agent_id)`.
async fn org_with_agent(api: &Api, name: &str) -> anyhow::Result<(String, String)> {
    let org = str_field(
        &api.post("/v1/orgs", &json!({ "name": name }), 201).await?,
        "id",
    )?;
    let agent = api
        .post(
            &format!("/v1/orgs/{org}/agents"),
            &json!({ "name": "bench-agent", "model": "bench-model", "capabilities": [] }),
            201,
        )
        .await?;
    Ok((org, str_field(&agent, "id")?))
}

/// `POST …/stop` answered 5xx and retried (see [`stop_session`]).
static STOP_RETRIES: AtomicUsize = AtomicUsize::new(0);

/// Asks a session to stop; a 5xx answer is retried (up to 20 times, 10 ms apart) and counted
/// in [`STOP_RETRIES`], so that one failed stop request does not end the whole run.
async fn stop_session(api: &Api, org: &str, session: &str) -> anyhow::Result<()> {
    let path = format!("/v1/orgs/{org}/sessions/{session}/stop");
    let mut attempt = 0;
    loop {
        attempt += 1;
        match api.send(Method::POST, &path, None, 202).await {
            Ok(_) => return Ok(()),
            Err(e) if attempt < 20 && e.to_string().contains("got 5") => {
                STOP_RETRIES.fetch_add(1, Ordering::Relaxed);
                eprintln!("warning: stop of {session} failed, retrying: {e:#}");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Creates a session and polls until it runs; returns its id.
async fn running_session(api: &Api, org: &str, agent: &str) -> anyhow::Result<String> {
    let s = api
        .post(
            &format!("/v1/orgs/{org}/sessions"),
            &json!({ "agent_id": agent }),
            202,
        )
        .await?;
    let id = str_field(&s, "id")?;
    let deadline = Instant::now() + STEP_TIMEOUT;
    loop {
        let s = api.get(&format!("/v1/orgs/{org}/sessions/{id}")).await?;
        match s["status"].as_str() {
            Some("running") => return Ok(id),
            Some("failed") | Some("stopped") => bail!("session {id} ended: {s}"),
            _ => {}
        }
        ensure!(Instant::now() < deadline, "session {id} never ran: {s}");
        tokio::time::sleep(Duration::from_millis(5)).await;
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

// ---------------------------------------------------------------------------------------------
// SSE

/// One SSE event (the fields this benchmark reads).
#[derive(Debug, Default)]
struct SseEvent {
    id: Option<String>,
    event: Option<String>,
    data: String,
}

/// Incremental `text/event-stream` parser.
#[derive(Default)]
struct SseParser {
    buf: Vec<u8>,
}

impl SseParser {
    /// Adds `chunk`; appends the events it completed to `out` (comments are skipped).
    fn push(&mut self, chunk: &[u8], out: &mut Vec<SseEvent>) {
        self.buf
            .extend(chunk.iter().copied().filter(|b| *b != b'\r'));
        while let Some(end) = self.buf.windows(2).position(|w| w == b"\n\n") {
            let block: Vec<u8> = self.buf.drain(..end + 2).collect();
            let mut e = SseEvent::default();
            let mut any = false;
            for line in String::from_utf8_lossy(&block).lines() {
                if line.is_empty() || line.starts_with(':') {
                    continue;
                }
                let (field, value) = match line.split_once(':') {
                    Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
                    None => (line, ""),
                };
                any = true;
                match field {
                    "id" => e.id = Some(value.to_owned()),
                    "event" => e.event = Some(value.to_owned()),
                    "data" => {
                        if !e.data.is_empty() {
                            e.data.push('\n');
                        }
                        e.data.push_str(value);
                    }
                    _ => {}
                }
            }
            if any {
                out.push(e);
            }
        }
    }
}

/// The org's status stream, as `(session_id, status, instant read)`.
struct StatusFeed {
    rx: mpsc::UnboundedReceiver<(String, String, Instant)>,
    task: tokio::task::JoinHandle<()>,
}

impl StatusFeed {
    async fn open(api: &Api, org: &str) -> anyhow::Result<Self> {
        let mut stream = api.sse(&format!("/v1/orgs/{org}/events/stream")).await?;
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            let mut parser = SseParser::default();
            let mut events = Vec::new();
            while let Some(Ok(chunk)) = stream.next().await {
                let now = Instant::now();
                parser.push(&chunk, &mut events);
                for e in events.drain(..) {
                    if e.event.as_deref() != Some("status") {
                        continue;
                    }
                    let Ok(v) = serde_json::from_str::<Value>(&e.data) else {
                        continue;
                    };
                    if let (Some(id), Some(status)) =
                        (v["session_id"].as_str(), v["status"].as_str())
                        && tx.send((id.to_owned(), status.to_owned(), now)).is_err()
                    {
                        return;
                    }
                }
            }
        });
        Ok(Self { rx, task })
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

async fn run_backend(
    backend: Backend,
    main_url: String,
    process_url: String,
) -> anyhow::Result<Report> {
    let b = backend.name();
    let mut rows = Vec::new();
    let mut notes = Vec::new();

    eprintln!("{b}: starting the server (runtime `none`)");
    let server = Server::start(main_url, |_| {}).await?;
    let api = login(&server.base).await?;

    eprintln!("{b}: GET /healthz ×{HEALTHZ_REQUESTS}");
    let (healthz, healthz_rate) = healthz(&server.base).await?;
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
    let (org, agent) = org_with_agent(&api, "Bench appends").await?;
    let mut own = Vec::new();
    for _ in 0..APPEND_CLIENTS {
        own.push(running_session(&api, &org, &agent).await?);
    }
    let shared = running_session(&api, &org, &agent).await?;
    let total = APPEND_CLIENTS * APPEND_BATCHES * APPEND_BATCH_SIZE;
    for (label, sessions) in [
        ("one session per client", own.clone()),
        ("one shared session", vec![shared.clone(); APPEND_CLIENTS]),
    ] {
        eprintln!("{b}: append, {label}");
        let (rate, lat) = append_throughput(&server.base, &api.token, &org, &sessions).await?;
        let target = backend.append_target();
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
    let (org, agent) = org_with_agent(&api, "Bench delivery").await?;
    for pace in [None, Some(LIVE_PACE)] {
        let label = match pace {
            None => "back-to-back".to_owned(),
            Some(p) => format!("one every {} ms", p.as_millis()),
        };
        eprintln!("{b}: live delivery, {SUBSCRIBERS} subscribers, {label}");
        let session = running_session(&api, &org, &agent).await?;
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
    let (org, agent) = org_with_agent(&api, "Bench starts").await?;
    let st = session_starts(&api, &org, &agent).await?;
    rows.push(start_row("none", &st, 100.0));
    notes.push(start_note(b, "none", &st));
    server.stop().await;

    // 3b. Session start, `process` runtime, on a second server.
    let xvnc_before = count_xvnc();
    eprintln!("{b}: starting a second server (runtime `process`)");
    let server = Server::start(process_url, |c| {
        c.desktop_runtime = DesktopRuntimeKind::Process;
        c.desktop_display_min = 500;
        c.desktop_display_max = 560;
        c.desktop_port_min = 18500;
    })
    .await?;
    let api = login(&server.base).await?;
    let (org, agent) = org_with_agent(&api, "Bench desktops").await?;
    eprintln!("{b}: session start ×{STARTS}, runtime process");
    let st = session_starts(&api, &org, &agent).await;
    server.stop().await;
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
async fn healthz(base: &str) -> anyhow::Result<(Pct, f64)> {
    let http = reqwest::Client::builder().timeout(STEP_TIMEOUT).build()?;
    let url = format!("{base}/healthz");
    let mut lat = Vec::with_capacity(HEALTHZ_REQUESTS);
    let mut started = Instant::now();
    for i in 0..HEALTHZ_WARMUP + HEALTHZ_REQUESTS {
        if i == HEALTHZ_WARMUP {
            started = Instant::now();
        }
        let t = Instant::now();
        let r = http.get(&url).send().await?;
        let status = r.status();
        r.bytes().await?;
        ensure!(status == 200, "GET /healthz: {status}");
        if i >= HEALTHZ_WARMUP {
            lat.push(ms(t.elapsed()));
        }
    }
    let rate = HEALTHZ_REQUESTS as f64 / started.elapsed().as_secs_f64();
    Ok((percentiles(&lat), rate))
}

/// 8 clients (own connections) append to `sessions[client]`; returns events/s over the timed
/// part and the per-request latency.
async fn append_throughput(
    base: &str,
    token: &str,
    org: &str,
    sessions: &[String],
) -> anyhow::Result<(f64, Pct)> {
    let body = batch_body(APPEND_BATCH_SIZE);
    let barrier = Arc::new(Barrier::new(sessions.len() + 1));
    let mut tasks = Vec::new();
    for s in sessions {
        let client = Api::new(base, token)?;
        let path = format!("/v1/orgs/{org}/sessions/{s}/events");
        let (body, barrier) = (body.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            let warm = async {
                for _ in 0..APPEND_WARMUP_BATCHES {
                    client
                        .send(Method::POST, &path, Some(body.clone()), 201)
                        .await?;
                }
                anyhow::Ok(())
            }
            .await;
            // Always reach the barrier, so one failing client cannot hang the others.
            barrier.wait().await;
            warm?;
            let mut lat = Vec::with_capacity(APPEND_BATCHES);
            for _ in 0..APPEND_BATCHES {
                let t = Instant::now();
                let v = client
                    .send(Method::POST, &path, Some(body.clone()), 201)
                    .await?;
                lat.push(ms(t.elapsed()));
                let n = v["last_seq"].as_i64().unwrap_or(0) - v["first_seq"].as_i64().unwrap_or(0);
                ensure!(n + 1 == APPEND_BATCH_SIZE as i64, "unexpected seqs: {v}");
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
    api: &Api,
    org: &str,
    session: &str,
    pace: Option<Duration>,
) -> anyhow::Result<Delivery> {
    let events_path = format!("/v1/orgs/{org}/sessions/{session}/events");
    let catchup = api
        .send(
            Method::POST,
            &events_path,
            Some(batch_body(CATCHUP_EVENTS)),
            201,
        )
        .await?;
    let catchup_last = catchup["last_seq"]
        .as_i64()
        .ok_or_else(|| anyhow!("no last_seq: {catchup}"))?;

    // Subscribers share one client (one connection each, HTTP/1.1).
    let sub_api = Api {
        http: reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()?,
        ..api.clone()
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut readies = Vec::new();
    let mut subs = Vec::new();
    for _ in 0..SUBSCRIBERS {
        let (ready_tx, ready_rx) = oneshot::channel();
        readies.push(ready_rx);
        let stream = sub_api
            .sse(&format!("{events_path}/stream?after_seq=0"))
            .await?;
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
    let appender = Api::new(&api.base, &api.token)?;
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
        let v = appender
            .send(Method::POST, &events_path, Some(body.clone()), 201)
            .await?;
        let done = Instant::now();
        let seq = v["first_seq"].as_i64().unwrap_or(-1);
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
        let (got, errs) = r??;
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
    mut stream: SseStream,
    catchup_last: i64,
    ready: oneshot::Sender<()>,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<(Vec<(i64, Instant)>, usize)> {
    let mut parser = SseParser::default();
    let mut events = Vec::new();
    let mut ready = Some(ready);
    let mut got = Vec::with_capacity(LIVE_EVENTS);
    let (mut last, mut order_errors) = (0i64, 0usize);
    while got.len() < LIVE_EVENTS {
        let chunk = tokio::select! {
            c = stream.next() => c,
            _ = stop.changed() => break,
        };
        let Some(chunk) = chunk else { break };
        let chunk = chunk?;
        let now = Instant::now();
        parser.push(&chunk, &mut events);
        for e in events.drain(..) {
            let Some(seq) = e.id.as_deref().and_then(|s| s.parse::<i64>().ok()) else {
                continue;
            };
            if seq != last + 1 {
                order_errors += 1;
            }
            last = seq;
            if seq > catchup_last {
                got.push((seq, now));
            }
            if seq >= catchup_last
                && let Some(r) = ready.take()
            {
                let _ = r.send(());
            }
        }
    }
    Ok((got, order_errors))
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
async fn session_starts(api: &Api, org: &str, agent: &str) -> anyhow::Result<Starts> {
    let mut feed = StatusFeed::open(api, org).await?;
    let (mut start, mut create, mut stop) = (Vec::new(), Vec::new(), Vec::new());
    let body = json!({ "agent_id": agent });
    for i in 0..START_WARMUP + STARTS {
        let t0 = Instant::now();
        let s = api
            .post(&format!("/v1/orgs/{org}/sessions"), &body, 202)
            .await?;
        let created = Instant::now();
        let id = str_field(&s, "id")?;
        let running = feed.wait(&id, "running").await?;
        let t_stop = Instant::now();
        stop_session(api, org, &id).await?;
        let stopped = feed.wait(&id, "stopped").await?;
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
