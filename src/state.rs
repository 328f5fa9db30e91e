//! [`AppState`]: what the request handlers of one node share — the database, the enforcer,
//! the token keys, the bus and feeds, the desktop runtime, the blob store, the SSO client, the
//! auth cache, the mail sender and the configuration. A leaf: it names no layer above it (no `api`, `app`, `http`);
//! middlewares get what they need when they are built, and background work gets the narrow
//! [`JobContext`] ([`AppState::jobs`]), not this.

use std::sync::Arc;

use sea_orm::DatabaseConnection;

use crate::{
    auth::{cache::AuthCache, principal::Authenticator, rbac::Rbac, seal::Sealer, tokens::Keyring},
    blob::BlobStore,
    config::Config,
    domain::{appender::Appenders, oidc::Oidc},
    jobs::{JobContext, SessionTasks},
    mail::Mailer,
    realtime::{bus::Bus, feed::Feeds, relay::ViewerSlots},
    runtime::DesktopRuntime,
};

/// Everything a request handler may need; cheap to clone. Handlers take it as
/// `Data<&AppState>`.
#[derive(Clone)]
pub struct AppState {
    /// The connection pool.
    pub db: DatabaseConnection,
    /// The casbin enforcer.
    pub rbac: Rbac,
    /// Access-token keys (issuing; verification happens once per request in the principal
    /// middleware).
    pub keyring: Arc<Keyring>,
    /// The configuration in force.
    pub config: Arc<Config>,
    /// The event bus (in-process, or PostgreSQL LISTEN/NOTIFY).
    pub bus: Bus,
    /// Per-session event feeds for SSE subscribers.
    pub feeds: Feeds,
    /// The desktop driver.
    pub runtime: Arc<dyn DesktopRuntime>,
    /// Where artifact bytes live (`blob_store`).
    pub blobs: Arc<dyn BlobStore>,
    /// The OpenID Connect providers for single sign-on.
    pub oidc: Arc<Oidc>,
    /// What authenticated requests read (accounts, memberships, orgs, roles, API keys,
    /// decisions), per node, invalidated through the bus ([`crate::auth::cache`]).
    pub auth_cache: Arc<AuthCache>,
    /// Mail to account owners (verification links, sign-up notices).
    pub mailer: Arc<dyn Mailer>,
    /// Seals and opens secrets at rest (the desktops' VNC passwords).
    pub sealer: Arc<Sealer>,
    /// The node's long-running per-session tasks (built-in executors).
    pub session_tasks: SessionTasks,
    /// The node's event appenders, one per session with work (group commit).
    pub appenders: Appenders,
    /// The node's desktop viewers per session (the `desktop_viewers_per_session` cap).
    pub viewers: ViewerSlots,
}

impl AppState {
    /// The narrow context background jobs run with.
    pub fn jobs(&self) -> JobContext {
        JobContext {
            db: self.db.clone(),
            bus: self.bus.clone(),
            runtime: self.runtime.clone(),
            blobs: self.blobs.clone(),
            config: self.config.clone(),
            sealer: self.sealer.clone(),
            session_tasks: self.session_tasks.clone(),
        }
    }

    /// The node's credential verifier (for the principal middleware).
    pub fn authenticator(&self) -> Authenticator {
        Authenticator::new(
            self.db.clone(),
            self.keyring.clone(),
            self.auth_cache.clone(),
        )
    }
}
