//! The test harness: [`TestApp`] starts the real server on 127.0.0.1:0 against a fresh SQLite
//! file, or a fresh PostgreSQL database (one per test) when `AGENTDESK_TEST_POSTGRES_URL` is
//! set. [`db_tests!`] runs each test body on both backends. Calls state their expected status
//! and fail with the response body when it differs.

use std::time::Duration;

use agentdesk::Config;
use reqwest::{Method, header::HeaderMap};
use sea_orm::{ConnectionTrait, Database};
use serde_json::{Value, json};
use tokio::sync::{OnceCell, oneshot};

/// Which database a test runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A known signing key so tests can forge tokens.
pub const TEST_KEY: &str = "dGVzdC1zaWduaW5nLWtleS10ZXN0LXNpZ25pbmcta2V5LTAx";
pub const TEST_KEY_BYTES: &[u8] = b"test-signing-key-test-signing-key-01";

static PG_CLEANUP: OnceCell<()> = OnceCell::const_new();

/// A fresh, empty database URL for `backend`; `None` for PostgreSQL when it is not configured.
pub async fn fresh_database(backend: Backend, dir: &std::path::Path) -> Option<String> {
    match backend {
        Backend::Sqlite => Some(format!(
            "sqlite://{}?mode=rwc",
            dir.join("test.db").display()
        )),
        Backend::Postgres => {
            let admin = std::env::var("AGENTDESK_TEST_POSTGRES_URL").ok()?;
            let conn = Database::connect(&admin)
                .await
                .expect("AGENTDESK_TEST_POSTGRES_URL is set but unreachable");
            PG_CLEANUP
                .get_or_init(|| async {
                    // Databases left by earlier runs of this binary.
                    let rows = conn
                        .query_all_raw(sea_orm::Statement::from_string(
                            sea_orm::DatabaseBackend::Postgres,
                            "SELECT datname FROM pg_database WHERE datname LIKE 'agentdesk_t_%'",
                        ))
                        .await
                        .expect("list test databases");
                    for row in rows {
                        let name: String = row.try_get("", "datname").unwrap();
                        let _ = conn
                            .execute_unprepared(&format!(
                                "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                            ))
                            .await;
                    }
                })
                .await;
            let name = format!("agentdesk_t_{}", uuid::Uuid::now_v7().simple());
            conn.execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
                .await
                .expect("create test database");
            let mut url = url::Url::parse(&admin).expect("AGENTDESK_TEST_POSTGRES_URL is a URL");
            url.set_path(&name);
            Some(url.to_string())
        }
    }
}

/// A running server and a client for it.
pub struct TestApp {
    pub addr: std::net::SocketAddr,
    pub database_url: String,
    pub http: reqwest::Client,
    /// Keeps the temp dir (SQLite file, key file) alive as long as the server.
    _dir: tempfile::TempDir,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
}

/// Config every test server starts from: generous limits so tests do not trip them.
pub fn test_config(dir: &std::path::Path, database_url: String) -> Config {
    Config {
        listen: "127.0.0.1:0".into(),
        database_url: Some(database_url),
        data_dir: dir.to_path_buf(),
        db_max_connections: 5,
        jwt_signing_key: TEST_KEY.into(),
        rate_limit_per_ip_per_min: 100_000,
        auth_rate_limit_per_ip_per_min: 100_000,
        login_rate_limit_per_account_per_min: 100_000,
        log_level: "warn".into(),
        ..Config::default()
    }
}

impl TestApp {
    /// Starts a server with the default test config.
    pub async fn spawn(backend: Backend) -> Option<Self> {
        Self::spawn_with(backend, |_| {}).await
    }

    /// Starts a server after `tweak` adjusts the config; `None` when the backend is not
    /// available (PostgreSQL without `AGENTDESK_TEST_POSTGRES_URL`).
    pub async fn spawn_with(backend: Backend, tweak: impl FnOnce(&mut Config)) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let database_url = fresh_database(backend, dir.path()).await?;
        let mut config = test_config(dir.path(), database_url.clone());
        tweak(&mut config);
        config.validate().expect("test config is valid");
        Some(Self::start(backend, dir, database_url, config).await)
    }

    /// Starts a server on an existing config (e.g. a second server on one database).
    pub async fn start(
        backend: Backend,
        dir: tempfile::TempDir,
        database_url: String,
        config: Config,
    ) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::start_on(backend, dir, database_url, config, listener).await
    }

    /// Starts a server on a listener bound beforehand (when the address must be known before
    /// the config is, e.g. for an OIDC callback URL registered at a provider).
    pub async fn start_on(
        _backend: Backend,
        dir: tempfile::TempDir,
        database_url: String,
        config: Config,
        listener: tokio::net::TcpListener,
    ) -> Self {
        let state = agentdesk::build_state(config).await.expect("server state");
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel();
        let server = tokio::spawn(async move {
            agentdesk::serve(state, listener, async {
                let _ = rx.await;
            })
            .await
            .expect("server ran");
        });
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        Self {
            addr,
            database_url,
            http,
            _dir: dir,
            shutdown: Some(tx),
            server: Some(server),
        }
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.server.take() {
            let _ = h.await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Starts a request.
    pub fn call(&self, method: Method, path: &str) -> Call<'_> {
        Call {
            app: self,
            rb: self.http.request(method, self.url(path)),
        }
    }
    pub fn get(&self, path: &str) -> Call<'_> {
        self.call(Method::GET, path)
    }
    pub fn post(&self, path: &str) -> Call<'_> {
        self.call(Method::POST, path)
    }
    pub fn patch(&self, path: &str) -> Call<'_> {
        self.call(Method::PATCH, path)
    }
    pub fn put(&self, path: &str) -> Call<'_> {
        self.call(Method::PUT, path)
    }
    pub fn delete(&self, path: &str) -> Call<'_> {
        self.call(Method::DELETE, path)
    }

    /// Registers and logs in a user; returns it with its tokens.
    pub async fn user(&self, name: &str) -> User {
        let email = format!("{name}-{}@example.com", uuid::Uuid::now_v7().simple());
        let password = format!("{name} correct horse battery");
        let r = self
            .post("/v1/auth/register")
            .json(json!({ "email": email, "password": password, "display_name": name }))
            .expect(201)
            .await;
        let id = r.body["id"].as_str().unwrap().to_owned();
        let t = self
            .post("/v1/auth/login")
            .json(json!({ "email": email, "password": password }))
            .expect(200)
            .await;
        User {
            id,
            email,
            password,
            token: t.body["access_token"].as_str().unwrap().to_owned(),
            refresh: t.body["refresh_token"].as_str().unwrap().to_owned(),
        }
    }

    /// Follows `next_cursor` from `path` (which must already carry a `?` query) to the last
    /// page; returns every item in order.
    pub async fn walk_pages(&self, path: &str, token: &str) -> Vec<Value> {
        let mut items = Vec::new();
        let mut cursor = String::new();
        loop {
            let page = self
                .get(&format!("{path}&cursor={cursor}"))
                .token(token)
                .expect(200)
                .await;
            items.extend(page.body["items"].as_array().unwrap().iter().cloned());
            match page.body["next_cursor"].as_str() {
                Some(c) => cursor = c.to_owned(),
                None => return items,
            }
        }
    }

    /// Creates an org owned by `owner`; returns its id.
    pub async fn org(&self, owner: &User, name: &str) -> String {
        let r = self
            .post("/v1/orgs")
            .token(&owner.token)
            .json(json!({ "name": name }))
            .expect(201)
            .await;
        r.body["id"].as_str().unwrap().to_owned()
    }

    /// Creates an API key in `org` with `role` (as `by`); returns `(id, secret)`.
    pub async fn api_key(&self, by: &User, org: &str, role: &str) -> (String, String) {
        let r = self
            .post(&format!("/v1/orgs/{org}/api-keys"))
            .token(&by.token)
            .json(json!({ "name": format!("{role} key"), "role": role }))
            .expect(201)
            .await;
        (
            r.body["id"].as_str().unwrap().to_owned(),
            r.body["secret"].as_str().unwrap().to_owned(),
        )
    }

    /// Creates a custom role in `org` with `permissions` (as `by`).
    pub async fn custom_role(&self, by: &User, org: &str, name: &str, permissions: &[&str]) {
        self.post(&format!("/v1/orgs/{org}/roles"))
            .token(&by.token)
            .json(json!({ "name": name, "permissions": permissions }))
            .expect(201)
            .await;
    }

    /// A connection to this server's database (for tests that must reach past the API,
    /// e.g. to age a row).
    pub async fn db(&self) -> sea_orm::DatabaseConnection {
        Database::connect(&self.database_url).await.unwrap()
    }

    /// Adds `user` to `org` with `role` (as `by`).
    pub async fn add_member(&self, by: &User, org: &str, user: &User, role: &str) {
        self.post(&format!("/v1/orgs/{org}/members"))
            .token(&by.token)
            .json(json!({ "email": user.email, "role": role }))
            .expect(201)
            .await;
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// A registered, logged-in user.
#[derive(Clone, Debug)]
pub struct User {
    pub id: String,
    pub email: String,
    pub password: String,
    pub token: String,
    pub refresh: String,
}

/// How a test caller authenticates.
#[derive(Clone, Debug)]
pub enum Cred {
    /// `Authorization: Bearer <JWT or ad_ key>`.
    Bearer(String),
    /// `X-API-Key: <ad_ key>`.
    ApiKey(String),
}

/// A request being built.
pub struct Call<'a> {
    #[allow(dead_code)]
    app: &'a TestApp,
    rb: reqwest::RequestBuilder,
}

/// A response: status, headers and the JSON body (`Null` when empty or not JSON).
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts an RFC 9457 problem with `code`.
    pub fn assert_problem(&self, code: &str) -> &Self {
        assert!(
            self.header("content-type")
                .is_some_and(|c| c.starts_with("application/problem+json")),
            "not a problem: {self:?}"
        );
        assert_eq!(self.body["code"], code, "{}", self.text);
        assert_eq!(self.body["status"], self.status, "{}", self.text);
        assert_eq!(self.body["type"], format!("urn:agentdesk:problem:{code}"));
        assert!(self.body["title"].is_string() && self.body["detail"].is_string());
        self
    }

    /// The `field` names of a validation problem.
    pub fn error_fields(&self) -> Vec<String> {
        self.body["errors"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e["field"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl<'a> Call<'a> {
    pub fn token(mut self, token: &str) -> Self {
        self.rb = self.rb.bearer_auth(token);
        self
    }
    /// Authenticates with `cred`: a bearer credential (JWT or API key) or `X-API-Key`.
    pub fn cred(mut self, cred: &Cred) -> Self {
        self.rb = match cred {
            Cred::Bearer(t) => self.rb.bearer_auth(t),
            Cred::ApiKey(k) => self.rb.header("x-api-key", k),
        };
        self
    }
    pub fn json(mut self, body: Value) -> Self {
        self.rb = self.rb.json(&body);
        self
    }
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.rb = self.rb.header(name, value);
        self
    }
    pub fn body(mut self, body: impl Into<reqwest::Body>) -> Self {
        self.rb = self.rb.body(body);
        self
    }

    /// Sends and returns the response, whatever its status.
    pub async fn send(self) -> Resp {
        let r = self.rb.send().await.expect("request sent");
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Resp {
            status,
            headers,
            body,
            text,
        }
    }

    /// Sends and asserts the status; every 5xx fails the test unless expected.
    pub async fn expect(self, status: u16) -> Resp {
        let r = self.send().await;
        assert_eq!(r.status, status, "unexpected status; body: {}", r.text);
        r
    }
}

/// Runs each named `async fn(TestApp)` on SQLite and, when configured, on PostgreSQL.
#[macro_export]
macro_rules! db_tests {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                use $crate::common::{Backend, TestApp};
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name(TestApp::spawn(Backend::Sqlite).await.unwrap()).await;
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    match TestApp::spawn(Backend::Postgres).await {
                        Some(app) => super::$name(app).await,
                        None => eprintln!("skipped: AGENTDESK_TEST_POSTGRES_URL is not set"),
                    }
                }
            }
        )*
    };
}

/// Runs each named `async fn(Backend)` on SQLite and PostgreSQL, for tests that build their
/// own server or database (custom config, migrations). The body returns early when
/// [`fresh_database`] gives `None` (PostgreSQL not configured).
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                use $crate::common::Backend;
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name(Backend::Sqlite).await;
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$name(Backend::Postgres).await;
                }
            }
        )*
    };
}

impl TestApp {
    /// Creates an agent in `org` with `capabilities`; returns its id.
    pub async fn agent(&self, by: &User, org: &str, name: &str, capabilities: &[&str]) -> String {
        let r = self
            .post(&format!("/v1/orgs/{org}/agents"))
            .token(&by.token)
            .json(json!({ "name": name, "model": "test-model", "capabilities": capabilities }))
            .expect(201)
            .await;
        r.body["id"].as_str().unwrap().to_owned()
    }

    /// Starts a session of `agent`; returns its id.
    pub async fn session(&self, by: &User, org: &str, agent: &str) -> String {
        let r = self
            .post(&format!("/v1/orgs/{org}/sessions"))
            .token(&by.token)
            .json(json!({ "agent_id": agent }))
            .expect(202)
            .await;
        assert_eq!(r.body["status"], "pending");
        r.body["id"].as_str().unwrap().to_owned()
    }

    /// Polls `sessions.get` until the session is `status` (fails after 20 s); returns it.
    pub async fn wait_status(&self, by: &User, org: &str, session: &str, status: &str) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let r = self
                .get(&format!("/v1/orgs/{org}/sessions/{session}"))
                .token(&by.token)
                .expect(200)
                .await;
            if r.body["status"] == status {
                return r.body;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "session never became {status}: {}",
                r.text
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Opens an SSE stream at `path` with extra headers.
    pub async fn sse(&self, path: &str, token: &str, headers: &[(&str, &str)]) -> Sse {
        let mut rb = self.http.get(self.url(path)).bearer_auth(token);
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        let resp = rb.send().await.expect("stream opened");
        assert_eq!(resp.status(), 200, "stream refused");
        assert!(
            resp.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/event-stream")
        );
        Sse {
            stream: Box::pin(resp.bytes_stream()),
            buf: String::new(),
        }
    }
}

/// One server-sent event.
#[derive(Debug, Clone)]
pub struct SseEvent {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: Value,
}

/// A minimal SSE reader over a reqwest byte stream.
pub struct Sse {
    stream:
        std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buf: String,
}

impl Sse {
    /// The next event (comments skipped); `None` when the stream ended. Fails after 20 s.
    pub async fn next(&mut self) -> Option<SseEvent> {
        use futures_util::StreamExt;
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let (mut id, mut event, mut data) = (None, None, String::new());
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        id = Some(v.trim().to_owned());
                    } else if let Some(v) = line.strip_prefix("event:") {
                        event = Some(v.trim().to_owned());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if id.is_none() && event.is_none() && data.is_empty() {
                    continue; // heartbeat comment
                }
                return Some(SseEvent {
                    id,
                    event,
                    data: serde_json::from_str(&data).unwrap_or(Value::Null),
                });
            }
            let chunk = tokio::time::timeout(Duration::from_secs(20), self.stream.next())
                .await
                .expect("no SSE event within 20 s");
            match chunk {
                Some(Ok(b)) => self.buf.push_str(&String::from_utf8_lossy(&b)),
                _ => return None,
            }
        }
    }
}
