//! Application wiring: [`AppState`] (database, enforcer, keys, limiters, config), the
//! database connection, the route table and the server loop ([`serve`]).
//!
//! Routes: `/v1/...` (the contract, see `api/`), `/v1/openapi.json` and `/v1/openapi.yaml`
//! (the spec), `/docs/` (Swagger UI), `/healthz` (process alive), `/readyz` (database
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
    auth::{rbac::Rbac, tokens::Keyring},
    config::Config,
    error::AppError,
    http::{
        deprecation::Deprecations, docs, idempotency::Idempotency, metrics, middleware,
        ratelimit::Limiters,
    },
    jobs::worker,
    realtime::{bus::Bus, feed::Feeds},
    runtime::DesktopRuntime,
};

/// Everything a request handler may need; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The connection pool.
    pub db: DatabaseConnection,
    /// The casbin enforcer.
    pub rbac: Rbac,
    /// Access-token keys.
    pub keyring: Arc<Keyring>,
    /// Rate limiters.
    pub limiters: Arc<Limiters>,
    /// The configuration in force.
    pub config: Arc<Config>,
    /// The event bus (in-process, or PostgreSQL LISTEN/NOTIFY).
    pub bus: Bus,
    /// Per-session event feeds for SSE subscribers.
    pub feeds: Feeds,
    /// The desktop driver.
    pub runtime: Arc<dyn DesktopRuntime>,
    /// The OpenID Connect providers for single sign-on.
    pub oidc: Arc<crate::domain::oidc::Oidc>,
    /// Verified API keys, per node.
    pub api_keys: Arc<crate::domain::api_keys::KeyCache>,
}

/// Opens the pool for `config.database_url()`. SQLite: creates `data_dir` for the default
/// file, WAL journal, foreign keys on, 5 s busy timeout. Errors: unreachable database.
pub async fn connect(config: &Config) -> anyhow::Result<DatabaseConnection> {
    let url = config.database_url();
    if config.database_url.is_none() {
        std::fs::create_dir_all(&config.data_dir)?;
    }
    let mut opts = ConnectOptions::new(url);
    opts.max_connections(config.db_max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .sqlx_logging(false)
        .map_sqlx_sqlite_opts(|o| {
            use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
            o.journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(5))
                .foreign_keys(true)
        });
    Ok(Database::connect(opts).await?)
}

/// Connects, migrates when `migrate_on_start`, loads the enforcer and keys, builds the bus
/// and the desktop driver (the process driver reaps desktops a crashed predecessor left).
pub async fn build_state(config: Config) -> anyhow::Result<AppState> {
    let db = connect(&config).await?;
    if config.migrate_on_start {
        migration::Migrator::up(&db, None).await?;
    }
    let rbac = Rbac::load(&db).await?;
    let keyring = Arc::new(Keyring::from_config(&config)?);
    let limiters = Arc::new(Limiters::new(&config));
    metrics::install();
    let bus = Bus::new(db.get_database_backend());
    let feeds = Feeds::new(db.clone(), bus.clone());
    let runtime = crate::runtime::from_config(&config).await?;
    let oidc = Arc::new(crate::domain::oidc::Oidc::new(&config)?);
    let state = AppState {
        oidc,
        api_keys: Arc::new(crate::domain::api_keys::KeyCache::new(Duration::from_secs(
            config.api_key_cache_ttl_s,
        ))),
        db,
        rbac,
        keyring,
        limiters,
        config: Arc::new(config),
        bus,
        feeds,
        runtime,
    };
    fail_lost_desktops(&state).await?;
    Ok(state)
}

/// Sessions still `running` on a desktop that died with a previous run of this server go
/// `failed` (`desktop lost: …`); a session that was still provisioning is left to its job,
/// which provisions it again.
async fn fail_lost_desktops(state: &AppState) -> anyhow::Result<()> {
    use crate::domain::sessions::{self, Status};
    for id in state.runtime.take_lost() {
        let Some(s) = <crate::entity::session::Entity as sea_orm::EntityTrait>::find_by_id(id)
            .one(&state.db)
            .await?
        else {
            continue;
        };
        if sessions::status_of(&s).ok() != Some(Status::Running) {
            continue;
        }
        let step = sessions::fail_step(&s, "desktop lost: the server stopped unexpectedly");
        match sessions::transition_now(&state.db, &state.bus, &state.config, id, step).await {
            Ok(_) => tracing::warn!(session_id = %id, "session failed: its desktop was lost"),
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
            code: "runtime_unavailable",
            detail: "the desktop runtime cannot provision desktops".into(),
        }
        .into_response();
    }
    match state.db.ping().await {
        Ok(()) => poem::web::Json(serde_json::json!({ "status": "ready" })).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "readiness: database unreachable");
            AppError::Unavailable {
                code: "database_unavailable",
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

/// The full endpoint: routes, shared state and the middleware stack.
pub fn routes(state: AppState) -> impl Endpoint {
    let api = api::service();
    let spec_json = api.spec_endpoint();
    let spec_yaml = api.spec_endpoint_yaml();
    let config = state.config.clone();
    let limiters = state.limiters.clone();
    let app = Route::new()
        .at("/healthz", get(healthz))
        .at("/readyz", get(readyz))
        .at("/metrics", get(metrics_endpoint))
        .at("/v1/openapi.json", spec_json)
        .at("/v1/openapi.yaml", spec_yaml)
        .at("/docs", get(docs::docs_root))
        .at("/docs/", get(docs::docs_index))
        .at("/docs/*path", get(docs::docs_file))
        .nest_no_strip("/v1", api)
        .with(Idempotency)
        .with(Deprecations::new(api::deprecations()))
        .data(state);
    middleware::wrap(app, config, limiters)
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
    let limiters = state.limiters.clone();
    let housekeeping = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tick.tick().await;
            limiters.retain_recent();
        }
    });
    let listener_task = state.bus.start_listener(&state.config.database_url());
    let worker = (state.config.worker_concurrency > 0)
        .then(|| worker::spawn(state.clone(), state.config.worker_concurrency));
    let acceptor = TcpAcceptor::from_tokio(listener)?;
    let result = Server::new_with_acceptor(acceptor)
        .run_with_graceful_shutdown(routes(state), shutdown, Some(grace))
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
    let w = worker::spawn(state.clone(), state.config.worker_concurrency.max(1));
    tracing::info!(worker_id = %w.id, "worker started");
    shutdown.await;
    w.shutdown();
    if let Some(t) = listener_task {
        t.abort();
    }
    Ok(())
}
