//! The test kit of the integration tests (`tests/main.rs`) and the in-process benchmarks
//! (`benches/desktop.rs`, `benches/relay.rs`, which include this module by path).
//!
//! - [`TestApp`] starts the real server on 127.0.0.1:0 against a fresh database from
//!   [`Databases`]: a SQLite file, or a PostgreSQL database (one per test) when
//!   `AGENTDESK_TEST_POSTGRES_URL` is set. [`db_tests!`] runs each test body on both backends.
//! - [`Client`] (`client.rs`): typed calls `post::<In, Out>(path, &body, status)` and
//!   `get::<Out>(path, status)`, and the [`Call`] builder; calls state their expected status
//!   and fail with the response body when it differs.
//! - [`Urls`] (`urls.rs`) builds API paths; [`Sse`] (`sse.rs`) reads event streams.

// Compiled into two crates (tests and benches), each using only part of the kit.
#![allow(dead_code)]

mod client;
mod mail;
mod sse;
mod urls;

use std::{sync::Mutex, time::Duration};

use agentdesk::Config;
use anyhow::Context;
use reqwest::Method;
use sea_orm::{ConnectionTrait, Database, DatabaseConnection};
use serde_json::{Value, json};
use tokio::sync::{OnceCell, oneshot};

// The kit's surface; each crate uses a part of it.
#[allow(unused_imports)]
pub use client::{Appended, Call, Client, Created, Cred, Resp, Tokens};
#[allow(unused_imports)]
pub use mail::Mail;
#[allow(unused_imports)]
pub use sse::{Sse, SseEvent};
pub use urls::Urls;

/// Which database a server runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// A known signing key so tests can forge tokens.
pub const TEST_KEY: &str = "dGVzdC1zaWduaW5nLWtleS10ZXN0LXNpZ25pbmcta2V5LTAx";
pub const TEST_KEY_BYTES: &[u8] = b"test-signing-key-test-signing-key-01";

/// Prefix of the tests' PostgreSQL databases (those of earlier runs are dropped once a run).
const TEST_DB_PREFIX: &str = "agentdesk_t_";
static PG_CLEANUP: OnceCell<()> = OnceCell::const_new();

/// The URL of a SQLite database file in `dir` (created on first connect).
pub fn sqlite_url(dir: &std::path::Path) -> String {
    format!("sqlite://{}?mode=rwc", dir.join("test.db").display())
}

/// A PostgreSQL server on which fresh databases are created, `<prefix><uuid>` each.
pub struct PgAdmin {
    conn: DatabaseConnection,
    admin: url::Url,
    prefix: &'static str,
    created: Mutex<Vec<String>>,
}

impl PgAdmin {
    /// Connects to the server at `admin_url` (a database on it the user may create others from).
    pub async fn connect(admin_url: &str, prefix: &'static str) -> anyhow::Result<Self> {
        let admin = url::Url::parse(admin_url).context("PostgreSQL URL")?;
        let conn = Database::connect(admin_url)
            .await
            .with_context(|| format!("connecting to {}", redact(&admin)))?;
        Ok(Self {
            conn,
            admin,
            prefix,
            created: Mutex::new(Vec::new()),
        })
    }

    /// The URL of a new, empty database.
    pub async fn create(&self) -> String {
        let name = format!("{}{}", self.prefix, uuid::Uuid::now_v7().simple());
        self.conn
            .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
            .await
            .unwrap_or_else(|e| panic!("creating database {name}: {e}"));
        self.created.lock().unwrap().push(name.clone());
        let mut url = self.admin.clone();
        url.set_path(&name);
        url.to_string()
    }

    /// Drops the databases [`PgAdmin::create`] made (failures are warnings).
    pub async fn drop_created(&self) {
        let names = std::mem::take(&mut *self.created.lock().unwrap());
        for name in names {
            if let Err(e) = self.drop_database(&name).await {
                eprintln!("warning: could not drop database {name}: {e}");
            }
        }
    }

    /// Drops the databases with this prefix that earlier runs left: those made over an hour
    /// ago (by the UUIDv7 in their names), so that runs at the same time (another checkout,
    /// another test binary) keep theirs.
    pub async fn drop_leftovers(&self) {
        let hour_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
        let hour_ago = hour_ago
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let rows = self
            .conn
            .query_all_raw(sea_orm::Statement::from_string(
                sea_orm::DatabaseBackend::Postgres,
                format!(
                    "SELECT datname FROM pg_database WHERE datname LIKE '{}%'",
                    self.prefix
                ),
            ))
            .await
            .expect("list leftover databases");
        for row in rows {
            let name: String = row.try_get("", "datname").unwrap();
            // (`_` in the LIKE pattern matches any character.)
            let Some(id) = name.strip_prefix(self.prefix) else {
                continue;
            };
            let made = uuid::Uuid::parse_str(id)
                .ok()
                .and_then(|id| id.get_timestamp())
                .map(|t| t.to_unix().0);
            if made.is_none_or(|secs| secs < hour_ago) {
                let _ = self.drop_database(&name).await;
            }
        }
    }

    async fn drop_database(&self, name: &str) -> Result<(), sea_orm::DbErr> {
        self.conn
            .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
            .await
            .map(drop)
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

/// Where fresh databases come from.
pub enum Databases {
    /// A file in each server's temp dir.
    Sqlite,
    Postgres(PgAdmin),
}

impl Databases {
    /// The tests' databases on `backend`: PostgreSQL at `AGENTDESK_TEST_POSTGRES_URL`
    /// (`None` when it is not set), after dropping what earlier runs left there.
    pub async fn for_tests(backend: Backend) -> Option<Self> {
        match backend {
            Backend::Sqlite => Some(Self::Sqlite),
            Backend::Postgres => {
                let url = std::env::var("AGENTDESK_TEST_POSTGRES_URL").ok()?;
                let pg = PgAdmin::connect(&url, TEST_DB_PREFIX)
                    .await
                    .expect("AGENTDESK_TEST_POSTGRES_URL is set but unusable");
                PG_CLEANUP.get_or_init(|| pg.drop_leftovers()).await;
                Some(Self::Postgres(pg))
            }
        }
    }

    pub fn backend(&self) -> Backend {
        match self {
            Self::Sqlite => Backend::Sqlite,
            Self::Postgres(_) => Backend::Postgres,
        }
    }

    /// The URL of a new, empty database (a SQLite file goes into `dir`).
    pub async fn fresh(&self, dir: &std::path::Path) -> String {
        match self {
            Self::Sqlite => sqlite_url(dir),
            Self::Postgres(pg) => pg.create().await,
        }
    }

    /// Drops the PostgreSQL databases made so far (the tests leave theirs to the next run).
    pub async fn drop_created(&self) {
        if let Self::Postgres(pg) = self {
            pg.drop_created().await;
        }
    }
}

/// A fresh, empty database URL for `backend`; `None` for PostgreSQL when it is not configured.
pub async fn fresh_database(backend: Backend, dir: &std::path::Path) -> Option<String> {
    Some(Databases::for_tests(backend).await?.fresh(dir).await)
}

/// Config every test server starts from: generous limits so tests do not trip them.
pub fn test_config(dir: &std::path::Path, database_url: String) -> Config {
    let mut config = Config {
        listen: "127.0.0.1:0".into(),
        database_url: Some(database_url),
        data_dir: dir.to_path_buf(),
        db_max_connections: 5,
        jwt_signing_key: TEST_KEY.into(),
        log_level: "warn".into(),
        // Mail lands in `<dir>/mail`, where `TestApp::mails_to` reads it.
        mail_sender: agentdesk::config::MailSenderKind::Dir,
        ..Config::default()
    };
    set_rate_limits(&mut config, 100_000);
    config
}

/// Polls `check` every 10 ms until it holds; panics naming `what` after 5 s. For what travels
/// between nodes through PostgreSQL `NOTIFY` (delivered at the writer's commit, but applied
/// by the other node's listener task a moment later); never a performance assertion.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not within 5 s: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Sets every rate limit (per IP, per IP on auth, logins per account) to `per_min` a minute.
pub fn set_rate_limits(config: &mut Config, per_min: u32) {
    config.rate_limit_per_ip_per_min = per_min;
    config.auth_rate_limit_per_ip_per_min = per_min;
    config.login_rate_limit_per_account_per_min = per_min;
}

/// A server running in this process, and an anonymous client of it.
pub struct TestApp {
    pub addr: std::net::SocketAddr,
    pub database_url: String,
    /// The connection pool of [`TestApp::client`] and the request builders.
    pub http: reqwest::Client,
    /// Where the server's `dir` mail sender writes.
    pub mail_dir: std::path::PathBuf,
    /// The server's state (database pool, blob store, …), for tests that write through the
    /// domain directly, as background work does.
    state: agentdesk::AppState,
    /// Keeps the temp dir (SQLite file, key file) alive as long as the server.
    _dir: tempfile::TempDir,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl TestApp {
    /// Starts a server with the default test config.
    pub async fn spawn(backend: Backend) -> Option<Self> {
        Self::spawn_with(backend, |_| {}).await
    }

    /// Starts a server after `tweak` adjusts the config; `None` when the backend is not
    /// available (PostgreSQL without `AGENTDESK_TEST_POSTGRES_URL`).
    pub async fn spawn_with(backend: Backend, tweak: impl FnOnce(&mut Config)) -> Option<Self> {
        let databases = Databases::for_tests(backend).await?;
        Some(Self::spawn_in(&databases, tweak).await)
    }

    /// Starts a server on a fresh database from `databases`, with the test config adjusted by
    /// `tweak`.
    pub async fn spawn_in(databases: &Databases, tweak: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let database_url = databases.fresh(dir.path()).await;
        let mut config = test_config(dir.path(), database_url.clone());
        tweak(&mut config);
        config.validate().expect("test config is valid");
        Self::start(databases.backend(), dir, database_url, config).await
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
        let mail_dir = config.mail_dir();
        let state = agentdesk::build_state(config).await.expect("server state");
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel();
        let server = tokio::spawn(agentdesk::serve(state.clone(), listener, async {
            let _ = rx.await;
        }));
        Self {
            addr,
            database_url,
            mail_dir,
            state,
            http: reqwest::Client::builder()
                .timeout(client::REQUEST_TIMEOUT)
                .build()
                .unwrap(),
            _dir: dir,
            shutdown: Some(tx),
            server: Some(server),
        }
    }

    /// Stops the server gracefully and waits for it (15 s at most; then it is aborted).
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let Some(mut server) = self.server.take() else {
            return;
        };
        match tokio::time::timeout(Duration::from_secs(15), &mut server).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => eprintln!("warning: server ended with an error: {e:#}"),
            Ok(Err(e)) => eprintln!("warning: server task failed: {e}"),
            Err(_) => {
                eprintln!("warning: server did not shut down in 15 s; aborting it");
                server.abort();
            }
        }
    }

    /// The running server's state: its database pool, blob store and configuration.
    pub fn state(&self) -> &agentdesk::AppState {
        &self.state
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// An anonymous client of this server on its connection pool.
    pub fn client(&self) -> Client {
        Client::sharing(self.http.clone(), self.url(""))
    }

    /// A client of this server authenticated as `user`.
    pub fn as_user(&self, user: &User) -> Client {
        self.client().with_token(&user.token)
    }

    /// Starts a request.
    pub fn call(&self, method: Method, path: &str) -> Call {
        self.client().call(method, path)
    }
    pub fn get(&self, path: &str) -> Call {
        self.call(Method::GET, path)
    }
    pub fn post(&self, path: &str) -> Call {
        self.call(Method::POST, path)
    }
    pub fn patch(&self, path: &str) -> Call {
        self.call(Method::PATCH, path)
    }
    pub fn put(&self, path: &str) -> Call {
        self.call(Method::PUT, path)
    }
    pub fn delete(&self, path: &str) -> Call {
        self.call(Method::DELETE, path)
    }

    /// Signs up a user, verifies the address with the mailed link and logs in; returns it with
    /// its tokens.
    pub async fn user(&self, name: &str) -> User {
        let user = self.unverified_user(name).await;
        self.verify_email(&user.email).await;
        user
    }

    /// Signs up and logs in a user without verifying the address.
    pub async fn unverified_user(&self, name: &str) -> User {
        let email = format!("{name}-{}@example.com", uuid::Uuid::now_v7().simple());
        let password = format!("{name} correct horse battery");
        let anon = self.client();
        anon.call(Method::POST, &Urls::signup())
            .json(json!({ "email": email, "password": password, "display_name": name }))
            .expect(202)
            .await;
        let tokens: Tokens = anon
            .post(
                &Urls::login(),
                &json!({ "email": email, "password": password }),
                200,
            )
            .await;
        let me = self
            .get("/v1/me")
            .token(&tokens.access_token)
            .expect(200)
            .await;
        User {
            id: me.body["id"].as_str().unwrap().to_owned(),
            email,
            password,
            token: tokens.access_token,
            refresh: tokens.refresh_token,
        }
    }

    /// The mail the server sent to `to`, oldest first.
    pub fn mails_to(&self, to: &str) -> Vec<Mail> {
        mail::mails_to(&self.mail_dir, to)
    }

    /// Opens the newest verification link mailed to `email` (`auth.verify_email`, 204).
    pub async fn verify_email(&self, email: &str) {
        let token = self
            .mails_to(email)
            .iter()
            .rev()
            .find(|m| m.kind == "email_verification")
            .and_then(Mail::token)
            .unwrap_or_else(|| panic!("no verification link was mailed to {email}"));
        self.post(&Urls::verify_email())
            .json(json!({ "token": token }))
            .expect(204)
            .await;
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
        let org: Created = self
            .as_user(owner)
            .post(&Urls::orgs(), &json!({ "name": name }), 201)
            .await;
        org.id
    }

    /// Creates an API key in `org` with `role` (as `by`); returns `(id, secret)`.
    pub async fn api_key(&self, by: &User, org: &str, role: &str) -> (String, String) {
        let r = self
            .post(&Urls::api_keys(org))
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
        self.post(&Urls::roles(org))
            .token(&by.token)
            .json(json!({ "name": name, "permissions": permissions }))
            .expect(201)
            .await;
    }

    /// A connection to this server's database (for tests that must reach past the API,
    /// e.g. to age a row).
    pub async fn db(&self) -> DatabaseConnection {
        Database::connect(&self.database_url).await.unwrap()
    }

    /// Makes `user` a member of `org` with `role` the only way there is: `by` invites them and
    /// they accept.
    pub async fn add_member(&self, by: &User, org: &str, user: &User, role: &str) {
        let invite = self
            .post(&Urls::invitations(org))
            .token(&by.token)
            .json(json!({ "email": user.email, "role": role }))
            .expect(201)
            .await;
        let token = invite.body["token"].as_str().unwrap();
        self.post(&format!("/v1/invitations/{token}/accept"))
            .token(&user.token)
            .expect(200)
            .await;
    }

    /// Creates an agent in `org` with `capabilities`; returns its id.
    pub async fn agent(&self, by: &User, org: &str, name: &str, capabilities: &[&str]) -> String {
        let agent: Created = self
            .as_user(by)
            .post(
                &Urls::agents(org),
                &json!({ "name": name, "model": "test-model", "capabilities": capabilities }),
                201,
            )
            .await;
        agent.id
    }

    /// Starts a session of `agent`; returns its id.
    pub async fn session(&self, by: &User, org: &str, agent: &str) -> String {
        let r: Value = self
            .as_user(by)
            .post(&Urls::sessions(org), &json!({ "agent_id": agent }), 202)
            .await;
        assert_eq!(r["status"], "pending");
        r["id"].as_str().unwrap().to_owned()
    }

    /// Starts a session of `agent` and waits until it runs; returns its id.
    pub async fn running_session(&self, by: &User, org: &str, agent: &str) -> String {
        let id = self.session(by, org, agent).await;
        self.wait_status(by, org, &id, "running").await;
        id
    }

    /// Polls `sessions.get` until the session is `status` (fails after 20 s, or at once when
    /// it ended otherwise); returns it.
    pub async fn wait_status(&self, by: &User, org: &str, session: &str, status: &str) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        let client = self.as_user(by);
        loop {
            let r: Value = client.get(&Urls::session(org, session), 200).await;
            if r["status"] == status {
                return r;
            }
            assert!(
                !(r["status"] == "failed" || r["status"] == "stopped"),
                "session ended instead of becoming {status}: {r}"
            );
            assert!(
                tokio::time::Instant::now() < deadline,
                "session never became {status}: {r}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Opens an SSE stream at `path` with extra headers.
    pub async fn sse(&self, path: &str, token: &str, headers: &[(&str, &str)]) -> Sse {
        self.client().with_token(token).sse(path, headers).await
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
