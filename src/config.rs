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
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            database_url: None,
            data_dir: PathBuf::from("./data"),
            migrate_on_start: true,
            db_max_connections: 10,
            log_format: LogFormat::Pretty,
            log_level: "info".into(),
            shutdown_timeout_s: 30,
            request_timeout_s: 30,
            body_limit_bytes: 1024 * 1024,
            cors_allowed_origins: Vec::new(),
            hsts_max_age_s: 0,
            trust_forwarded_for: false,
            registration_open: true,
            jwt_issuer: "agentdesk".into(),
            jwt_audience: "agentdesk-api".into(),
            jwt_signing_key: String::new(),
            jwt_previous_signing_keys: Vec::new(),
            access_token_ttl_s: 900,
            refresh_token_ttl_s: 30 * 24 * 3600,
            rate_limit_per_ip_per_min: 600,
            auth_rate_limit_per_ip_per_min: 10,
            login_rate_limit_per_account_per_min: 10,
        }
    }
}

/// A configuration error; the message names the key.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(pub String);

impl Config {
    /// Loads defaults ← `agentdesk.toml` (or the file in `AGENTDESK_CONFIG`) ← `AGENTDESK_*`,
    /// then validates. Errors: [`ConfigError`] naming the key and the source.
    pub fn load() -> Result<Self, ConfigError> {
        let file = std::env::var("AGENTDESK_CONFIG").unwrap_or_else(|_| "agentdesk.toml".into());
        let figment = Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::file(file))
            .merge(Env::prefixed("AGENTDESK_").ignore(&["CONFIG"]));
        Self::from_figment(figment)
    }

    /// Extracts and validates a config from any figment (tests build their own).
    pub fn from_figment(figment: Figment) -> Result<Self, ConfigError> {
        let config: Config = figment.extract().map_err(|e| ConfigError(e.to_string()))?;
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
        if !self.jwt_signing_key.is_empty()
            && crate::auth::tokens::decode_key(&self.jwt_signing_key).is_none()
        {
            return err("jwt_signing_key", "expected base64 of at least 32 bytes");
        }
        for k in &self.jwt_previous_signing_keys {
            if crate::auth::tokens::decode_key(k).is_none() {
                return err(
                    "jwt_previous_signing_keys",
                    "expected base64 of at least 32 bytes each",
                );
            }
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

    /// The parsed listen address (validated by [`Config::validate`]).
    pub fn listen_addr(&self) -> SocketAddr {
        self.listen.parse().expect("validated listen address")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(toml: &str) -> Result<Config, ConfigError> {
        Config::from_figment(
            Figment::from(Serialized::defaults(Config::default())).merge(Toml::string(toml)),
        )
    }

    #[test]
    fn defaults_are_valid() {
        let c = with("").unwrap();
        assert_eq!(c.listen, "127.0.0.1:8080");
        assert!(c.database_url().starts_with("sqlite://"));
    }

    #[test]
    fn errors_name_the_key() {
        let e = with("body_limit_bytes = \"lots\"").unwrap_err().to_string();
        assert!(e.contains("body_limit_bytes"), "{e}");
        let e = with("listen = \"nowhere\"").unwrap_err().to_string();
        assert!(e.contains("`listen`"), "{e}");
        let e = with("cors_allowed_origins = [\"https://a.example/path\"]")
            .unwrap_err()
            .to_string();
        assert!(e.contains("cors_allowed_origins"), "{e}");
        let e = with("jwt_signing_key = \"short\"").unwrap_err().to_string();
        assert!(e.contains("jwt_signing_key"), "{e}");
        let e = with("no_such_knob = 1").unwrap_err().to_string();
        assert!(e.contains("no_such_knob"), "{e}");
    }
}
