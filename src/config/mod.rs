//! Configuration: built-in defaults ← optional `agentdesk.toml` ← `AGENTDESK_*` environment
//! (figment). Every knob has a default and a unit in its name; [`Config::load`] validates
//! the result and names the offending key on error. The README's configuration table lists
//! every field below.

use std::{net::SocketAddr, path::PathBuf};

use figment::{
    Figment,
    providers::{Env, Format, Serialized, Toml},
};
use serde::{Deserialize, Serialize};

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable, coloured when on a terminal.
    Pretty,
    /// One JSON object per line.
    Json,
}

/// Which desktop driver provisions session desktops (see `runtime`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DesktopRuntimeKind {
    /// No desktop: sessions run at once without one (API-only agents).
    None,
    /// One TigerVNC `Xvnc` process per session on this host.
    Process,
}

/// How mail to account owners (email verification, sign-up notices) leaves the server (see
/// `mail`). Delivery itself (SMTP, a provider's API) plugs in behind the same trait.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MailSenderKind {
    /// Log each message, link included, at INFO: for development only (the links are
    /// one-time secrets).
    Log,
    /// Write each message as an RFC 5322 `.eml` file (mode 0600) into `mail_dir`, for a
    /// local mail pickup or for tests.
    Dir,
}

/// Where artifact bytes (screenshots) are kept (see `blob`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BlobStoreKind {
    /// The `blobs` table of the application database: nothing else to run, shared by every
    /// node. Fine for development and modest volumes.
    Database,
    /// An S3-compatible bucket (`blob_s3_*`), for production volumes.
    S3,
}

/// A secret from configuration: read like a string, but its `Debug` shows `***` (or `""`
/// when empty), so printing a [`Config`] never shows it. Serialised as the plain string (a
/// figment default), so never serialise a loaded config for display.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// A secret holding `value`.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that uses it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether it is empty (not set).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { "\"***\"" })
    }
}

/// The whole runtime configuration. Field names are the keys in `agentdesk.toml` and, upper-cased
/// with the `AGENTDESK_` prefix, in the environment (`AGENTDESK_DATABASE_URL`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Socket address to listen on. Default `127.0.0.1:8080`.
    pub listen: String,
    /// SeaORM database URL: `sqlite://PATH?mode=rwc` or `postgres://…`. Default: a SQLite file
    /// `agentdesk.db` in `data_dir`, created on first run.
    pub database_url: Option<String>,
    /// Directory for local state: the SQLite default database and the generated signing key.
    pub data_dir: PathBuf,
    /// Apply pending migrations when `serve` starts. Turn off in production and run
    /// `agentdesk migrate up` as a release step.
    pub migrate_on_start: bool,
    /// Database pool size (connections).
    pub db_max_connections: u32,
    /// `pretty` or `json`.
    pub log_format: LogFormat,
    /// tracing `EnvFilter` directive, e.g. `info` or `agentdesk=debug,info`.
    pub log_level: String,
    /// Longest time (s) in-flight requests get to finish after SIGINT/SIGTERM.
    pub shutdown_timeout_s: u64,
    /// A request that takes longer than this (s) is answered 503 `request_timeout`.
    pub request_timeout_s: u64,
    /// Largest accepted request body (bytes); larger answers 413.
    pub body_limit_bytes: u64,
    /// Origins allowed by CORS, exact match (e.g. `https://app.example.com`). Empty: no CORS.
    pub cors_allowed_origins: Vec<String>,
    /// `Strict-Transport-Security` max-age (s); 0 sends no HSTS header. Set when TLS is
    /// terminated in front of Agentdesk.
    pub hsts_max_age_s: u64,
    /// Send each response's database work as a W3C `Server-Timing` header
    /// (`db;dur=<ms>;desc="<n> statements"`). Off by default: it tells callers how much
    /// database work a request did.
    pub server_timing: bool,
    /// Take the client IP from the right-most `X-Forwarded-For` entry (the one the proxy in
    /// front appended). Only turn on behind a proxy that sets it.
    pub trust_forwarded_for: bool,
    /// Anyone may register (`auth.register`). Off: registration answers 403.
    pub registration_open: bool,
    /// JWT `iss` claim written and required.
    pub jwt_issuer: String,
    /// JWT `aud` claim written and required.
    pub jwt_audience: String,
    /// HS256 signing key, base64 (standard alphabet), at least 32 bytes decoded. Empty: a key
    /// is generated once and kept in `data_dir/jwt-signing-key` (a warning is logged).
    pub jwt_signing_key: String,
    /// Key (base64, 32 bytes decoded) that seals desktop secrets at rest (ChaCha20-Poly1305).
    /// Every node must share it. Empty: generated once into `data_dir/secret-sealing-key`
    /// (a warning is logged).
    pub secret_sealing_key: String,
    /// Retired signing keys (base64), still accepted for verification during a rotation.
    pub jwt_previous_signing_keys: Vec<String>,
    /// Access token lifetime (s).
    pub access_token_ttl_s: u64,
    /// Refresh token lifetime (s).
    pub refresh_token_ttl_s: u64,
    /// Requests per minute per client IP, all routes.
    pub rate_limit_per_ip_per_min: u32,
    /// Requests per minute per client IP on `/v1/auth/*`.
    pub auth_rate_limit_per_ip_per_min: u32,
    /// Login attempts per minute per account (normalised email).
    pub login_rate_limit_per_account_per_min: u32,
    /// Jobs run at once by the worker inside `serve`; 0 runs no worker there (run
    /// `agentdesk worker` separately).
    pub worker_concurrency: u32,
    /// Job lease (s): a running job whose worker stops extending it for this long is claimed
    /// again by another worker.
    pub job_lease_s: u64,
    /// Attempts before a job is dead-lettered.
    pub job_max_attempts: u32,
    /// Retry backoff (ms) after the first failure; doubles per attempt, with ±50 % jitter.
    pub job_backoff_base_ms: u64,
    /// Longest retry backoff (ms).
    pub job_backoff_max_ms: u64,
    /// How often (ms) an idle worker looks for due jobs when nothing woke it.
    pub job_poll_interval_ms: u64,
    /// How often (ms) the reaper stops idle or over-long sessions, expires unclaimed
    /// commands and deletes old idempotency keys.
    pub reaper_interval_ms: u64,
    /// Idle timeout (s) of a session that does not set `timeout_s`.
    pub session_default_timeout_s: u64,
    /// Longest run (s) of a session that does not set `max_duration_s`.
    pub session_default_max_duration_s: u64,
    /// Live (not stopped or failed) sessions an org may have at once; over it `sessions.create`
    /// answers 429 `session_limit_reached`.
    pub max_live_sessions_per_org: u32,
    /// A queued command not claimed within this (s) expires.
    pub command_claim_timeout_s: u64,
    /// Largest event payload (bytes, as compact JSON) accepted by `events.append`.
    pub event_payload_max_bytes: u64,
    /// How long (s) an `Idempotency-Key` and its stored response are kept.
    pub idempotency_ttl_s: u64,
    /// Interval (s) between SSE heartbeat comments on event streams.
    pub sse_heartbeat_s: u64,
    /// Desktop driver: `none` (default) or `process`.
    pub desktop_runtime: DesktopRuntimeKind,
    /// `process` driver: the Xvnc binary (name on `PATH` or absolute path).
    pub desktop_process_command: String,
    /// `process` driver: the loopback host desktops listen on (Xvnc `-localhost`).
    pub desktop_vnc_host: String,
    /// `process` driver: lowest X display number used.
    pub desktop_display_min: u32,
    /// `process` driver: highest X display number used (caps desktops per host).
    pub desktop_display_max: u32,
    /// `process` driver: VNC port of `desktop_display_min`; display N listens on
    /// `desktop_port_min + (N - desktop_display_min)`.
    pub desktop_port_min: u16,
    /// `process` driver: how long (s) a new desktop gets to answer with an RFB greeting.
    pub desktop_ready_timeout_s: u64,
    /// `process` driver: desktop `N`'s `shell` and `open_url` commands run as uid = gid =
    /// `desktop_exec_uid_base + N` (no `passwd` entry needed; the server must be root to
    /// switch), so sessions are isolated from each other and from the server.
    pub desktop_exec_uid_base: u32,
    /// `process` driver, server not root: run agent commands as the server's own user (which
    /// can read its keys and database). Development machines only; off, they are refused.
    pub desktop_exec_as_server_user: bool,
    /// `process` driver: where the sessions' working directories live (one per session,
    /// mode 0700, owned by the desktop's user). It must be reachable by the desktop users, so
    /// it is outside `data_dir`. Empty: `<temp dir>/agentdesk-desktops` (created mode 0711).
    pub desktop_work_dir: PathBuf,
    /// The command `open_url` runs with the URL as its one argument, in the desktop's
    /// environment (e.g. `xdg-open`, `chromium --no-sandbox`).
    pub desktop_open_url_command: String,
    /// Default `timeout_s` of a `shell` command (s), 1–300.
    pub shell_default_timeout_s: u64,
    /// Most bytes of a `shell` command's stdout, and of its stderr, kept in its output;
    /// beyond it the output says `truncated: true`.
    pub shell_max_output_bytes: u64,
    /// Lifetime of a desktop ticket (s), 1–60: how long `desktop.create_ticket`'s secret may
    /// wait to be spent by `desktop.connect`.
    pub desktop_ticket_ttl_s: u64,
    /// Most viewers of one session's desktop at once on this node (≥ 1); one more → 429.
    pub desktop_viewers_per_session: u32,
    /// A viewer's socket closes (code 4008) after this long (s) without an RFB byte either way.
    pub desktop_viewer_idle_timeout_s: u64,
    /// Interval (s) of WebSocket pings to viewers; a viewer silent for two intervals is dropped.
    pub desktop_viewer_ping_s: u64,
    /// Interval (s) of a viewer's access re-check (a removed member loses the socket).
    pub desktop_viewer_recheck_s: u64,
    /// The external base URL of this server (scheme, host, port, no trailing slash), used for
    /// the OIDC callback `<public_url>/v1/auth/oidc/<provider>/callback`. Empty:
    /// `http://<listen>`.
    pub public_url: String,
    /// The frontend's base URL; invitation accept links are
    /// `<frontend_url>/invitations/accept#token=<token>` (the token in the fragment never
    /// reaches a server log). Empty: `public_url`.
    pub frontend_url: String,
    /// OpenID Connect providers for single sign-on, by name (the `{provider}` path segment).
    pub oidc_providers: std::collections::BTreeMap<String, OidcProviderConfig>,
    /// How long (s) an OIDC login may take from `auth.oidc_authorize` to the callback.
    pub oidc_state_ttl_s: u64,
    /// Lifetime (s) of the one-time code the OIDC callback hands the frontend.
    pub login_code_ttl_s: u64,
    /// Login throttling: failed logins of one account inside the window that cost no delay.
    pub login_throttle_free_failures: u32,
    /// Login throttling: failed logins from one client IP inside the window that cost no
    /// delay (higher than per account: an office shares one address).
    pub login_throttle_ip_free_failures: u32,
    /// Login throttling: lock-out (s) after the first failure past the free ones; doubles per
    /// further failure.
    pub login_throttle_base_delay_s: u64,
    /// Login throttling: longest lock-out (s).
    pub login_throttle_max_delay_s: u64,
    /// Login throttling: failures older than this (s) are forgotten.
    pub login_throttle_window_s: u64,
    /// Longest time (s) a node serves an entry of its auth cache (accounts' token state,
    /// memberships, orgs, custom roles, verified API keys, decisions) without reading it
    /// again. A backstop only: changes invalidate entries on every node through the bus at
    /// once. 0: no caching.
    pub auth_cache_ttl_s: u64,
    /// The former name of `auth_cache_ttl_s` (deprecated), still read: when set, it is
    /// `auth_cache_ttl_s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_cache_ttl_s: Option<u64>,
    /// How mail to account owners is sent: `log` (default, development) or `dir`.
    pub mail_sender: MailSenderKind,
    /// `dir` sender: the directory messages are written to. Empty: `<data_dir>/mail`.
    pub mail_dir: String,
    /// Lifetime (s) of an email verification link.
    pub email_verification_ttl_s: u64,
    /// Quota: organizations one user may have created (existing ones); over it `orgs.create`
    /// answers 409 `quota_exceeded` naming the limit.
    pub max_orgs_per_user: u32,
    /// Quota: live sessions one user may be accountable for across all orgs (sessions they
    /// started, or that their API keys started); over it `sessions.create` answers 429
    /// `quota_exceeded` naming the limit.
    pub max_live_sessions_per_user: u32,
    /// Quota: API keys an org may hold that are neither revoked nor expired; over it
    /// `api_keys.create` answers 409 `quota_exceeded` naming the limit.
    pub max_api_keys_per_org: u32,
    /// Quota: pending invitations an org may have at once; over it `invitations.create` and
    /// `members.add` answer 409 `quota_exceeded` naming the limit.
    pub max_pending_invitations_per_org: u32,
    /// Where artifact bytes (screenshots) are kept: `database` (default: the `blobs` table) or
    /// `s3` (an S3-compatible bucket, the `blob_s3_*` keys). Artifacts stored under one
    /// setting are not found under the other: switching does not move them.
    pub blob_store: BlobStoreKind,
    /// `s3`: the bucket (required). It must exist; Agentdesk does not create it.
    pub blob_s3_bucket: String,
    /// `s3`: the endpoint of an S3-compatible service (`https://…`; `http://` only on loopback,
    /// e.g. `http://127.0.0.1:9000`), addressed path-style. Empty: AWS S3 in `blob_s3_region`.
    pub blob_s3_endpoint: String,
    /// `s3`: the region requests are signed for. Default `us-east-1`.
    pub blob_s3_region: String,
    /// `s3`: the access key id. Empty (with an empty secret): the standard AWS credential
    /// chain (`AWS_*` variables, web identity, instance metadata).
    pub blob_s3_access_key_id: String,
    /// `s3`: the secret access key. A secret: never logged, shown as `***` in debug output.
    pub blob_s3_secret_access_key: Secret,
    /// `s3`: prefix of every object key (`<prefix><org_id>/<session_id>/<artifact_id>`): empty
    /// or ending in `/`. Default `artifacts/`.
    pub blob_s3_prefix: String,
}

/// One OpenID Connect provider (`[oidc_providers.<name>]` in `agentdesk.toml`, or
/// `AGENTDESK_OIDC_PROVIDERS='{name={issuer_url="…",…}}'`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct OidcProviderConfig {
    /// The issuer; discovery reads `<issuer_url>/.well-known/openid-configuration` and the
    /// ID token's `iss` must equal it.
    pub issuer_url: String,
    /// The client id registered at the provider (the ID token's `aud`).
    pub client_id: String,
    /// The client secret (sent with HTTP Basic to the token endpoint). Never logged.
    pub client_secret: String,
    /// Scopes requested; must include `openid` (default `openid email profile`).
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    /// Email domains allowed to log in (`example.com`); empty allows any.
    #[serde(default)]
    pub allowed_email_domains: Vec<String>,
    /// Frontend URLs the callback may redirect to, matched exactly against the
    /// `redirect_uri` given to `auth.oidc_authorize`.
    pub redirect_uris: Vec<String>,
}

fn default_scopes() -> Vec<String> {
    vec!["openid".into(), "email".into(), "profile".into()]
}

/// A configuration error; the message names the key.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(pub String);

impl Config {
    /// Loads defaults ← `agentdesk.toml` (or the file in `AGENTDESK_CONFIG`) ← `AGENTDESK_*`,
    /// then validates. The test, bench and CI variables (`AGENTDESK_TEST_POSTGRES_URL`,
    /// `AGENTDESK_TEST_S3`, `AGENTDESK_TEST_MOTO`, `AGENTDESK_BENCH_POSTGRES_URL`,
    /// `AGENTDESK_CI_VENV`, `AGENTDESK_BIN`, `AGENTDESK_CONTRACT_OUT`) are not configuration and
    /// are skipped. Errors: [`ConfigError`] naming the key and the source.
    pub fn load() -> Result<Self, ConfigError> {
        let file = std::env::var("AGENTDESK_CONFIG").unwrap_or_else(|_| "agentdesk.toml".into());
        let figment = Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::file(file))
            .merge(Env::prefixed("AGENTDESK_").ignore(&[
                "CONFIG",
                "TEST_POSTGRES_URL",
                "TEST_S3",
                "TEST_MOTO",
                "BENCH_POSTGRES_URL",
                "CI_VENV",
                "BIN",
                "CONTRACT_OUT",
            ]));
        Self::from_figment(figment)
    }

    /// Extracts and validates a config from any figment (tests build their own).
    pub fn from_figment(figment: Figment) -> Result<Self, ConfigError> {
        let mut config: Config = figment.extract().map_err(|e| ConfigError(e.to_string()))?;
        if let Some(ttl) = config.api_key_cache_ttl_s.take() {
            config.auth_cache_ttl_s = ttl;
        }
        config.validate()?;
        Ok(config)
    }

    /// Semantic checks that types alone cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |key: &str, msg: &str| Err(ConfigError(format!("`{key}`: {msg}")));
        if self.listen.parse::<SocketAddr>().is_err() {
            return err("listen", "expected a socket address such as 127.0.0.1:8080");
        }
        if let Some(url) = &self.database_url
            && !(url.starts_with("sqlite:")
                || url.starts_with("postgres://")
                || url.starts_with("postgresql://"))
        {
            return err("database_url", "expected a sqlite: or postgres:// URL");
        }
        if self.db_max_connections == 0 {
            return err("db_max_connections", "must be at least 1");
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log_level).is_err() {
            return err("log_level", "not a valid tracing filter directive");
        }
        for (key, v) in [
            ("request_timeout_s", self.request_timeout_s),
            ("body_limit_bytes", self.body_limit_bytes),
            ("access_token_ttl_s", self.access_token_ttl_s),
            ("refresh_token_ttl_s", self.refresh_token_ttl_s),
            ("job_lease_s", self.job_lease_s),
            ("job_backoff_base_ms", self.job_backoff_base_ms),
            ("job_poll_interval_ms", self.job_poll_interval_ms),
            ("reaper_interval_ms", self.reaper_interval_ms),
            ("session_default_timeout_s", self.session_default_timeout_s),
            (
                "session_default_max_duration_s",
                self.session_default_max_duration_s,
            ),
            ("command_claim_timeout_s", self.command_claim_timeout_s),
            ("event_payload_max_bytes", self.event_payload_max_bytes),
            ("idempotency_ttl_s", self.idempotency_ttl_s),
            ("sse_heartbeat_s", self.sse_heartbeat_s),
            ("desktop_ready_timeout_s", self.desktop_ready_timeout_s),
            ("shell_default_timeout_s", self.shell_default_timeout_s),
            ("shell_max_output_bytes", self.shell_max_output_bytes),
            ("desktop_ticket_ttl_s", self.desktop_ticket_ttl_s),
            (
                "desktop_viewers_per_session",
                u64::from(self.desktop_viewers_per_session),
            ),
            (
                "desktop_viewer_idle_timeout_s",
                self.desktop_viewer_idle_timeout_s,
            ),
            ("desktop_viewer_ping_s", self.desktop_viewer_ping_s),
            ("desktop_viewer_recheck_s", self.desktop_viewer_recheck_s),
            ("oidc_state_ttl_s", self.oidc_state_ttl_s),
            ("login_code_ttl_s", self.login_code_ttl_s),
            (
                "login_throttle_base_delay_s",
                self.login_throttle_base_delay_s,
            ),
            ("login_throttle_window_s", self.login_throttle_window_s),
            ("job_max_attempts", u64::from(self.job_max_attempts)),
            (
                "max_live_sessions_per_org",
                u64::from(self.max_live_sessions_per_org),
            ),
            ("email_verification_ttl_s", self.email_verification_ttl_s),
            ("max_orgs_per_user", u64::from(self.max_orgs_per_user)),
            (
                "max_live_sessions_per_user",
                u64::from(self.max_live_sessions_per_user),
            ),
            ("max_api_keys_per_org", u64::from(self.max_api_keys_per_org)),
            (
                "max_pending_invitations_per_org",
                u64::from(self.max_pending_invitations_per_org),
            ),
        ] {
            if v == 0 {
                return err(key, "must be greater than 0");
            }
        }
        for (key, v) in [
            ("rate_limit_per_ip_per_min", self.rate_limit_per_ip_per_min),
            (
                "auth_rate_limit_per_ip_per_min",
                self.auth_rate_limit_per_ip_per_min,
            ),
            (
                "login_rate_limit_per_account_per_min",
                self.login_rate_limit_per_account_per_min,
            ),
        ] {
            if v == 0 {
                return err(key, "must be greater than 0");
            }
        }
        if self.login_throttle_max_delay_s < self.login_throttle_base_delay_s {
            return err(
                "login_throttle_max_delay_s",
                "must be at least login_throttle_base_delay_s",
            );
        }
        for (key, v) in [
            ("public_url", &self.public_url),
            ("frontend_url", &self.frontend_url),
        ] {
            if !v.is_empty() && !is_base_url(v) {
                return err(
                    key,
                    "expected an http(s) URL without a trailing slash, query or fragment",
                );
            }
        }
        for (name, p) in &self.oidc_providers {
            let key = format!("oidc_providers.{name}");
            let bad = |field: &str, msg: &str| Err(ConfigError(format!("`{key}.{field}`: {msg}")));
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
            {
                return Err(ConfigError(format!(
                    "`{key}`: provider names are [a-z0-9_-]+ (they appear in URLs)"
                )));
            }
            if !is_base_url(p.issuer_url.trim_end_matches('/')) {
                return bad("issuer_url", "expected an http(s) URL");
            }
            if p.client_id.is_empty() {
                return bad("client_id", "must not be empty");
            }
            if p.client_secret.is_empty() {
                return bad("client_secret", "must not be empty");
            }
            if !p.scopes.iter().any(|s| s == "openid") {
                return bad("scopes", "must include openid");
            }
            if p.redirect_uris.is_empty() {
                return bad("redirect_uris", "list at least one frontend URL");
            }
            for uri in &p.redirect_uris {
                if !url::Url::parse(uri).is_ok_and(|u| {
                    (u.scheme() == "http" || u.scheme() == "https") && u.fragment().is_none()
                }) {
                    return bad(
                        "redirect_uris",
                        &format!("`{uri}` is not an absolute http(s) URL without a fragment"),
                    );
                }
            }
        }
        if self.job_backoff_max_ms < self.job_backoff_base_ms {
            return err("job_backoff_max_ms", "must be at least job_backoff_base_ms");
        }
        if self.desktop_display_max < self.desktop_display_min {
            return err(
                "desktop_display_max",
                "must be at least desktop_display_min",
            );
        }
        if u32::from(self.desktop_port_min) + (self.desktop_display_max - self.desktop_display_min)
            > u32::from(u16::MAX)
        {
            return err("desktop_port_min", "the display range runs past port 65535");
        }
        if self.desktop_runtime == DesktopRuntimeKind::Process
            && !self
                .desktop_vnc_host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
            && self.desktop_vnc_host != "localhost"
        {
            return err(
                "desktop_vnc_host",
                "the process runtime's desktops listen on loopback only (Xvnc -localhost)",
            );
        }
        if self.desktop_exec_uid_base < 1000
            || self
                .desktop_exec_uid_base
                .checked_add(self.desktop_display_max)
                .is_none_or(|top| top >= 4_000_000_000)
        {
            return err(
                "desktop_exec_uid_base",
                "must be at least 1000, and with desktop_display_max stay below 4000000000",
            );
        }
        if self.desktop_ticket_ttl_s > 60 {
            return err("desktop_ticket_ttl_s", "must be at most 60");
        }
        if self.shell_default_timeout_s > 300 {
            return err("shell_default_timeout_s", "must be at most 300");
        }
        if self.desktop_process_command.trim().is_empty() {
            return err("desktop_process_command", "must name the Xvnc binary");
        }
        for origin in &self.cors_allowed_origins {
            match url::Url::parse(origin) {
                Ok(u)
                    if (u.scheme() == "http" || u.scheme() == "https")
                        && u.path() == "/"
                        && !origin.ends_with('/') => {}
                _ => {
                    return err(
                        "cors_allowed_origins",
                        &format!("`{origin}` is not an origin like https://app.example.com"),
                    );
                }
            }
        }
        self.validate_blob_store()?;
        if !self.jwt_signing_key.is_empty() && decode_signing_key(&self.jwt_signing_key).is_none() {
            return err("jwt_signing_key", "expected base64 of at least 32 bytes");
        }
        if !self.secret_sealing_key.is_empty()
            && decode_signing_key(&self.secret_sealing_key).is_none_or(|k| k.len() != 32)
        {
            return err("secret_sealing_key", "expected base64 of exactly 32 bytes");
        }
        for k in &self.jwt_previous_signing_keys {
            if decode_signing_key(k).is_none() {
                return err(
                    "jwt_previous_signing_keys",
                    "expected base64 of at least 32 bytes each",
                );
            }
        }
        Ok(())
    }

    /// The blob store keys: checked whatever `blob_store` is (a typo in an unused key still
    /// fails at start), and `blob_s3_bucket` is required for `s3`.
    fn validate_blob_store(&self) -> Result<(), ConfigError> {
        let err = |key: &str, msg: &str| Err(ConfigError(format!("`{key}`: {msg}")));
        if self.blob_store == BlobStoreKind::S3 && self.blob_s3_bucket.trim().is_empty() {
            return err("blob_s3_bucket", "required when blob_store = \"s3\"");
        }
        if !self.blob_s3_endpoint.is_empty() && !is_blob_endpoint(&self.blob_s3_endpoint) {
            return err(
                "blob_s3_endpoint",
                "expected an https URL without path, query or fragment (http only on loopback, e.g. http://127.0.0.1:9000)",
            );
        }
        if self.blob_s3_region.trim().is_empty() {
            return err("blob_s3_region", "must not be empty (e.g. us-east-1)");
        }
        if self.blob_s3_access_key_id.is_empty() != self.blob_s3_secret_access_key.is_empty() {
            return err(
                "blob_s3_secret_access_key",
                "set both blob_s3_access_key_id and blob_s3_secret_access_key, or neither",
            );
        }
        let p = &self.blob_s3_prefix;
        if !p.is_empty()
            && (!p.ends_with('/')
                || p.starts_with('/')
                || p.contains("//")
                || !p
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"/-_.".contains(&b)))
        {
            return err(
                "blob_s3_prefix",
                "expected empty or segments of [A-Za-z0-9._-] each ending in `/`, e.g. artifacts/",
            );
        }
        Ok(())
    }

    /// The database URL in force: `database_url`, or the SQLite file in `data_dir`.
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("agentdesk.db").display()
            ),
        }
    }

    /// The external base URL: `public_url`, or `http://<listen>`.
    pub fn public_url(&self) -> String {
        if self.public_url.is_empty() {
            format!("http://{}", self.listen)
        } else {
            self.public_url.clone()
        }
    }

    /// Where the `dir` mail sender writes: `mail_dir`, or `<data_dir>/mail`.
    pub fn mail_dir(&self) -> PathBuf {
        if self.mail_dir.is_empty() {
            self.data_dir.join("mail")
        } else {
            PathBuf::from(&self.mail_dir)
        }
    }

    /// The frontend's base URL: `frontend_url`, or [`Config::public_url`].
    pub fn frontend_url(&self) -> String {
        if self.frontend_url.is_empty() {
            self.public_url()
        } else {
            self.frontend_url.clone()
        }
    }

    /// The parsed listen address (validated by [`Config::validate`]).
    pub fn listen_addr(&self) -> SocketAddr {
        self.listen.parse().expect("validated listen address")
    }
}

fn is_base_url(v: &str) -> bool {
    !v.ends_with('/')
        && url::Url::parse(v).is_ok_and(|u| {
            (u.scheme() == "http" || u.scheme() == "https")
                && u.query().is_none()
                && u.fragment().is_none()
                && u.host().is_some()
        })
}

/// An S3 endpoint: an https origin (optionally with a port), or an http one on a loopback
/// address (a local MinIO or moto; credentials never cross a network in clear).
fn is_blob_endpoint(v: &str) -> bool {
    let Ok(u) = url::Url::parse(v) else {
        return false;
    };
    let loopback = match u.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => return false,
    };
    (u.scheme() == "https" || (u.scheme() == "http" && loopback))
        && matches!(u.path(), "" | "/")
        && u.query().is_none()
        && u.fragment().is_none()
        && u.username().is_empty()
        && u.password().is_none()
}

/// Decodes a signing key from configuration: standard base64 of at least 32 bytes. `None` for
/// anything else (`Config::validate` refuses it, naming the key).
pub fn decode_signing_key(b64: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()
        .filter(|k| k.len() >= 32)
}

mod defaults;

#[cfg(test)]
mod tests;
