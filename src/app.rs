//! Application wiring, the composition root: the database connection, building the
//! [`AppState`], the route table with its middleware (each built with what it needs), the
//! job worker with the domain's job registry, and the server loop ([`serve`]).
//!
//! Routes: `/v1/...` (the contract, see `api/`), `/v1/openapi.json` and `/v1/openapi.yaml`
//! (the spec), `/docs/` (Swagger UI), `/console/` (the web console), `/healthz` (process alive), `/readyz` (database
//! reachable, else 503), `/metrics` (Prometheus text).

use std::{sync::Arc, time::Duration};

use migration::MigratorTrait;
use poem::{
    Endpoint, EndpointExt, IntoResponse, Response, Route, Server, get, handler, http::StatusCode,
    listener::TcpAcceptor, web::Data,
};
use sea_orm::{ConnectOptions, Database, DatabaseConnection};

use crate::{
    api,
    auth::{cache::AuthCache, rbac::Rbac, tokens::Keyring},
    config::Config,
    domain::{self, sessions},
    entity::SessionId,
    error::{AppError, ProblemCode},
    http::{
        console, deprecation::Deprecations, docs, idempotency::Idempotency, metrics, middleware,
        principal::ResolvePrincipal, ratelimit::Limiters, validation::Contract,
    },
    jobs::worker,
    realtime::{bus::Bus, feed::Feeds},
    state::AppState,
};

/// Opens the pool for `config.database_url()`. SQLite: creates `data_dir` for the default
/// file, creates a new database file readable by its owner only (0600; SQLite gives its WAL
/// and shared-memory files the same mode), WAL journal, foreign keys on, 5 s busy timeout.
/// Errors: unreachable database.
pub async fn connect(config: &Config) -> anyhow::Result<DatabaseConnection> {
    let url = config.database_url();
    if config.database_url.is_none() {
        std::fs::create_dir_all(&config.data_dir)?;
    }
    if let Some(path) = sqlite_file(&url) {
        create_private(std::path::Path::new(path))?;
    }
    let mut opts = ConnectOptions::new(url);
    opts.max_connections(config.db_max_connections)
        .acquire_timeout(Duration::from_secs(10))
        // Ping only connections idle long enough to have been dropped (a proxy, a restart):
        // a ping on every checkout doubled the round trips of a one-query request.
        .test_before_acquire_if_idle_for(Duration::from_secs(30))
        .sqlx_logging(false)
        .map_sqlx_sqlite_opts(|o| {
            use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
            o.journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(5))
                .foreign_keys(true)
        });
    let mut db = Database::connect(opts).await?;
    // Counts each request's statements (the log line, `Server-Timing`).
    db.set_metric_callback(crate::http::timing::on_statement);
    Ok(db)
}

/// The file of a `sqlite:` URL (`sqlite://path?…`, `sqlite:path`), unless in memory.
fn sqlite_file(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("sqlite:")?;
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let path = rest.split('?').next().unwrap_or_default();
    (!path.is_empty() && path != ":memory:" && !url.contains("mode=memory")).then_some(path)
}

/// Creates `path` empty with mode 0600 when it does not exist (an existing file is left as
/// it is).
fn create_private(path: &std::path::Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
        {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(e),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        Ok(())
    }
}

/// Connects, migrates when `migrate_on_start`, loads the enforcer and keys, builds the bus,
/// the blob store and the desktop driver (the process driver reaps desktops a crashed predecessor left).
pub async fn build_state(config: Config) -> anyhow::Result<AppState> {
    let db = connect(&config).await?;
    if config.migrate_on_start {
        migration::Migrator::up(&db, None).await?;
    }
    let backend = db.get_database_backend();
    // On PostgreSQL the cache is used only while the bus listener is up (it says so).
    let auth_cache = Arc::new(AuthCache::new(
        Duration::from_secs(config.auth_cache_ttl_s),
        backend != sea_orm::DbBackend::Postgres,
    ));
    let rbac = Rbac::load(&db, auth_cache.clone()).await?;
    let keyring = Arc::new(Keyring::from_config(&config)?);
    metrics::install();
    let bus = Bus::new(backend, auth_cache.clone());
    let feeds = Feeds::new(db.clone(), bus.clone());
    let runtime = crate::runtime::from_config(&config).await?;
    let blobs = crate::blob::from_config(&config, &db).await?;
    let oidc = Arc::new(domain::oidc::Oidc::new(&config)?);
    let state = AppState {
        oidc,
        mailer: crate::mail::from_config(&config),
        sealer: Arc::new(crate::auth::seal::Sealer::from_config(&config)?),
        session_tasks: crate::jobs::SessionTasks::default(),
        viewers: Default::default(),
        appenders: domain::appender::Appenders::new(db.clone(), bus.clone()),
        auth_cache,
        db,
        rbac,
        keyring,
        config: Arc::new(config),
        bus,
        feeds,
        runtime,
        blobs,
    };
    fail_lost_desktops(&state).await?;
    Ok(state)
}

/// Sessions still `running` on a desktop that died with a previous run of this server go
/// `failed` (`desktop lost: …`); a session that was still provisioning is left to its job,
/// which provisions it again.
async fn fail_lost_desktops(state: &AppState) -> anyhow::Result<()> {
    for id in state.runtime.take_lost().into_iter().map(SessionId) {
        let reason = "desktop lost: the server stopped unexpectedly";
        match sessions::fail_running(&state.db, &state.bus, &state.config, id, reason).await {
            Ok(true) => tracing::warn!(session_id = %id, "session failed: its desktop was lost"),
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(session_id = %id, error = %e, "could not fail a session whose desktop was lost")
            }
        }
    }
    Ok(())
}

#[handler]
fn healthz() -> poem::web::Json<serde_json::Value> {
    poem::web::Json(serde_json::json!({ "status": "ok" }))
}

#[handler]
async fn readyz(state: Data<&AppState>) -> Response {
    if let Err(e) = state.runtime.health().await {
        tracing::warn!(error = %e, "readiness: desktop runtime unhealthy");
        return AppError::Unavailable {
            code: ProblemCode::RuntimeUnavailable,
            detail: "the desktop runtime cannot provision desktops".into(),
        }
        .into_response();
    }
    match state.db.ping().await {
        Ok(()) => poem::web::Json(serde_json::json!({ "status": "ready" })).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "readiness: database unreachable");
            AppError::Unavailable {
                code: ProblemCode::DatabaseUnavailable,
                detail: "the database is not reachable".into(),
            }
            .into_response()
        }
    }
}

#[handler]
fn metrics_endpoint() -> Response {
    Response::builder()
        .status(StatusCode::OK)
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(metrics::render())
}

/// `GET /v1/openapi.{json,yaml}`: the document as `api::spec` orders it.
fn spec_endpoint(content_type: &'static str, body: String) -> impl Endpoint {
    poem::endpoint::make_sync(move |_| {
        poem::Response::builder()
            .content_type(content_type)
            .body(body.clone())
    })
}

/// The full endpoint: routes, shared state and the middleware stack. `limiters` are the
/// node's rate limiters (the edge counts per IP; `auth.login` and `me.update` per account).
pub fn routes(state: AppState, limiters: Arc<Limiters>) -> impl Endpoint {
    let api = api::service();
    // The document as served: one spec for the clients and for the request path.
    let contract =
        Arc::new(Contract::new(&api::spec::json()).expect("api::spec writes a JSON document"));
    let spec_json = spec_endpoint("application/json", api::spec::json());
    let spec_yaml = spec_endpoint("application/yaml", api::spec::yaml());
    let config = state.config.clone();
    let idempotency = Idempotency::new(
        state.db.clone(),
        state.rbac.clone(),
        config.idempotency_ttl_s,
        config.request_timeout_s.saturating_mul(2),
        contract.idempotent_operations(),
    );
    let app = Route::new()
        .at("/healthz", get(healthz))
        .at("/readyz", get(readyz))
        .at("/metrics", get(metrics_endpoint))
        .at("/v1/openapi.json", spec_json)
        .at("/v1/openapi.yaml", spec_yaml)
        .at("/docs", get(docs::docs_root))
        .at("/docs/", get(docs::docs_index))
        .at("/docs/*path", get(docs::docs_file))
        .at("/console", get(console::console_root))
        .at("/console/", get(console::console_file))
        .at("/console/*path", get(console::console_file))
        .nest_no_strip("/v1", api)
        .with(idempotency)
        .with(ResolvePrincipal::new(state.authenticator()))
        .with(Deprecations::new(api::deprecations()))
        .data(limiters.clone())
        .data(state);
    middleware::wrap(app, config, limiters, contract)
}

/// Starts a job worker with the domain's job kinds and sweeps ([`domain::jobs::registry`]).
fn spawn_worker(state: &AppState, concurrency: u32) -> worker::Worker {
    worker::spawn(state.jobs(), domain::jobs::registry(), concurrency)
}

/// Serves on `listener` until `shutdown` resolves, then lets in-flight requests finish for
/// up to `shutdown_timeout_s`. Also runs the limiter housekeeping, the bus listener
/// (PostgreSQL) and, with `worker_concurrency > 0`, a job worker.
pub async fn serve(
    state: AppState,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let grace = Duration::from_secs(state.config.shutdown_timeout_s);
    let limiters = Arc::new(Limiters::new(&state.config));
    let routes = routes(state.clone(), limiters.clone());
    let housekeeping = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tick.tick().await;
            limiters.retain_recent();
        }
    });
    let listener_task = state.bus.start_listener(&state.config.database_url());
    let worker = (state.config.worker_concurrency > 0)
        .then(|| spawn_worker(&state, state.config.worker_concurrency));
    let acceptor = TcpAcceptor::from_tokio(listener)?;
    let result = Server::new_with_acceptor(acceptor)
        .run_with_graceful_shutdown(routes, shutdown, Some(grace))
        .await;
    housekeeping.abort();
    if let Some(w) = worker {
        w.shutdown();
    }
    if let Some(t) = listener_task {
        t.abort();
    }
    Ok(result?)
}

/// Runs only the job worker (`agentdesk worker`) with `worker_concurrency` slots (at least
/// 1) until `shutdown` resolves.
pub async fn run_worker(
    state: AppState,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let listener_task = state.bus.start_listener(&state.config.database_url());
    let w = spawn_worker(&state, state.config.worker_concurrency.max(1));
    tracing::info!(worker_id = %w.id, "worker started");
    shutdown.await;
    w.shutdown();
    if let Some(t) = listener_task {
        t.abort();
    }
    Ok(())
}
