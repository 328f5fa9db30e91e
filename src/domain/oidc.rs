//! Single sign-on with OpenID Connect (OIDC Core 1.0), the authorization code flow with PKCE
//! (RFC 7636, S256), `state` and `nonce`:
//!
//! 1. [`Oidc::begin`] (`auth.oidc_authorize`): the frontend's `redirect_uri` must exactly
//!    match a configured one. A random `state` (256 bits) is a one-time ticket
//!    ([`super::tickets`], stored as SHA-256) holding the provider, the `nonce`, the PKCE
//!    verifier, the `redirect_uri` and the SHA-256 of a random browser-binding secret
//!    (256 bits) that goes to the browser in a cookie (the API layer sets it); the browser is
//!    sent to the provider.
//! 2. [`Oidc::callback`] (`auth.oidc_callback`): the record is spent (single use) — an unknown,
//!    spent or expired `state` is 400 `invalid_state`. The browser must present the binding
//!    secret of that `state` (compared in constant time): a callback carried by another
//!    browser — login CSRF, an attacker's authorization response replayed in a victim's
//!    browser to log the victim into the attacker's account — goes back as
//!    `error=invalid_state` before the code is used. The code is exchanged with the PKCE
//!    verifier; the ID token's signature (provider JWKS, cached, refreshed on an unknown
//!    `kid`), `iss`, `aud`, `exp` and `nonce` are checked; the identity is linked (below) and
//!    the browser goes back to `redirect_uri?code=<one-time code>` (60 s, single use). Any
//!    failure after a valid `state` goes back as `redirect_uri?error=<code>&error_description=…`.
//! 3. [`exchange`] (`auth.oidc_exchange`): the SPA trades the one-time code for a token pair
//!    in a request body. Tokens never appear in a URL.
//!
//! Linking: a known identity `(provider, sub)` logs its user in. A new identity is linked to
//! the existing account with the same (canonical, [`super::email`]) email only when the
//! provider says `email_verified`; an unverified email that collides with an account is
//! refused (`email_not_verified`); otherwise a new user (without password) is created.
//! `allowed_email_domains` limits who may log in at all.
//!
//! When a verified identity meets an account whose address was never verified, the identity
//! wins: the takeover guard ([`super::takeover`]) removes the password, ends every token, API
//! key, pending invitation and earlier identity of the account, and marks the address
//! verified, in the linking transaction; the event `user.identity_linked` says so
//! (`takeover_guard: true`). Refusing instead would let whoever registered the address first
//! (without owning it) lock its owner out. An account whose address is verified links as is.
//!
//! The protocol itself (discovery, JWKS, the authorization URL, the code exchange, ID token
//! verification) is [`crate::auth::oidc`]'s; this module keeps the flow's records and the
//! account rules.

use std::collections::HashMap;

use chrono::Utc;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, sea_query::Expr,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use super::{
    accounts::{self, TokenPair},
    audit::{self, AuditCtx, Event},
    takeover,
    tickets::{self, Kind},
};
use crate::{
    auth::{
        cache::{AuthCache, Invalidation},
        oidc::{self as protocol, IdClaims},
        rbac::Rbac,
        secrets, tokens,
    },
    config::{Config, OidcProviderConfig},
    entity::{identity, user},
    error::{AppError, AppResult, ProblemCode},
};

/// `auth_tickets.kind` of an OIDC `state` record.
pub const KIND_STATE: &str = "oidc_state";
/// `auth_tickets.kind` of a one-time login code.
pub const KIND_LOGIN_CODE: &str = "login_code";
/// OIDC `state` records: the secret is the `state` (`st_…`).
const STATE_TICKET: Kind = Kind {
    name: KIND_STATE,
    prefix: "st",
};
/// One-time login codes (`lc_…`), for a user.
const LOGIN_CODE_TICKET: Kind = Kind {
    name: KIND_LOGIN_CODE,
    prefix: "lc",
};

/// Deletes expired tickets of every kind (run by the reaper); see [`tickets::purge`].
pub use super::tickets::purge as purge_tickets;

/// Prefix of the browser-binding secrets (`ob_…`).
const BROWSER_SECRET_PREFIX: &str = "ob";

/// What a `state` record remembers.
#[derive(Debug, Deserialize, Serialize)]
struct StateData {
    provider: String,
    nonce: String,
    pkce_verifier: String,
    redirect_uri: String,
    /// Hex SHA-256 of the browser-binding secret.
    browser_hash: String,
}

/// A login just started by [`Oidc::begin`].
#[derive(Debug)]
pub struct Begun {
    /// The provider's authorization URL, where the browser goes next.
    pub authorization_url: String,
    /// The browser-binding secret (`ob_` + 43 base64url characters, 256 bits), to keep in
    /// the starting browser (a cookie) and present at the callback; only its hash is stored.
    pub browser_secret: String,
    /// How long the login may take, in seconds (`oidc_state_ttl_s`): the cookie's lifetime.
    pub ttl_s: u64,
}

/// What came back to the callback.
#[derive(Clone, Copy, Debug, Default)]
pub struct CallbackIn<'a> {
    /// The authorization code (RFC 6749 §4.1.2).
    pub code: Option<&'a str>,
    /// The `state` this server sent.
    pub state: Option<&'a str>,
    /// The provider's error (RFC 6749 §4.1.2.1).
    pub error: Option<&'a str>,
    /// The browser-binding secret the browser presented (its cookie), if any.
    pub browser_secret: Option<&'a str>,
}

/// Where the node keeps what the takeover guard must update after commit.
#[derive(Clone, Copy)]
pub struct NodeCaches<'a> {
    /// The casbin enforcer (revoked keys' rules).
    pub rbac: &'a Rbac,
    /// The node's auth cache (the account's tokens and revoked keys are invalidated).
    pub auth: &'a AuthCache,
}

/// The configured providers' protocol clients ([`crate::auth::oidc`]) and the login rules.
pub struct Oidc {
    providers: HashMap<String, protocol::Provider>,
    state_ttl_s: u64,
    login_code_ttl_s: u64,
}

/// A failure after the `state` was accepted: sent back to the frontend as `error` /
/// `error_description` query parameters.
struct Failure {
    code: &'static str,
    description: String,
}

fn fail(code: &'static str, description: impl Into<String>) -> Failure {
    Failure {
        code,
        description: description.into(),
    }
}

impl From<protocol::ProtocolError> for Failure {
    fn from(e: protocol::ProtocolError) -> Self {
        fail(e.code, e.description)
    }
}

fn unknown_provider() -> AppError {
    AppError::NotFound("OIDC provider")
}

fn invalid_state() -> AppError {
    AppError::BadRequest {
        code: ProblemCode::InvalidState,
        detail: "unknown, expired or already used `state`; start the login again".into(),
        errors: vec![],
    }
}

/// `base` with `params` appended to its query.
fn with_params(base: &str, params: &[(&str, &str)]) -> String {
    match url::Url::parse(base) {
        Ok(mut u) => {
            u.query_pairs_mut().extend_pairs(params);
            u.to_string()
        }
        Err(_) => base.to_owned(),
    }
}

impl Oidc {
    /// The providers of `config.oidc_providers`, each calling back to
    /// `<public_url>/v1/auth/oidc/<name>/callback`. Nothing is fetched until first use.
    /// Errors: the HTTP client cannot be built.
    pub fn new(config: &Config) -> anyhow::Result<Self> {
        let http = protocol::http_client()?;
        let public_url = config.public_url();
        Ok(Self {
            providers: config
                .oidc_providers
                .iter()
                .map(|(name, c)| {
                    let callback = format!("{public_url}/v1/auth/oidc/{name}/callback");
                    let provider = protocol::Provider::new(c.clone(), callback, http.clone());
                    (name.clone(), provider)
                })
                .collect(),
            state_ttl_s: config.oidc_state_ttl_s,
            login_code_ttl_s: config.login_code_ttl_s,
        })
    }

    fn provider(&self, name: &str) -> AppResult<&protocol::Provider> {
        self.providers.get(name).ok_or_else(unknown_provider)
    }

    /// Starts a login at provider `name`: stores the `state` record and returns the
    /// provider's authorization URL and the browser-binding secret. Errors: 404 unknown
    /// provider; 422 `redirect_uri` not configured; 503 `idp_unavailable` when discovery
    /// fails.
    pub async fn begin(
        &self,
        db: &DatabaseConnection,
        name: &str,
        redirect_uri: &str,
    ) -> AppResult<Begun> {
        let p = self.provider(name)?;
        if !p.config().redirect_uris.iter().any(|u| u == redirect_uri) {
            return Err(AppError::field(
                "redirect_uri",
                "must exactly match one of the provider's configured redirect_uris",
            ));
        }
        let login = p
            .authorization()
            .await
            .map_err(|e| idp_unavailable(e.description))?;
        let (browser_secret, browser_hash) = secrets::new_token(BROWSER_SECRET_PREFIX);
        let data = StateData {
            provider: name.to_owned(),
            nonce: login.nonce.clone(),
            pkce_verifier: login.pkce_verifier.clone(),
            redirect_uri: redirect_uri.to_owned(),
            browser_hash,
        };
        let state = tickets::issue(db, STATE_TICKET, None, &data, self.state_ttl_s).await?;
        Ok(Begun {
            authorization_url: login.url(&state.secret),
            browser_secret,
            ttl_s: self.state_ttl_s,
        })
    }

    /// Finishes a login at provider `name` and returns where to send the browser: the
    /// frontend's `redirect_uri` with `code` (success) or `error` / `error_description`
    /// (`invalid_state` when the browser did not present the `state`'s binding secret).
    /// Keys revoked by the takeover guard are dropped from `caches` after commit.
    /// Errors: 404 unknown provider; 400 `invalid_state` (unknown, spent, expired, or for
    /// another provider).
    pub async fn callback(
        &self,
        db: &DatabaseConnection,
        caches: NodeCaches<'_>,
        name: &str,
        answer: CallbackIn<'_>,
        ctx: &AuditCtx,
    ) -> AppResult<String> {
        let p = self.provider(name)?;
        let state = answer.state.ok_or_else(invalid_state)?;
        let ticket = tickets::spend(db, STATE_TICKET, state)
            .await?
            .ok_or_else(invalid_state)?;
        let data: StateData = serde_json::from_value(ticket.data).map_err(|_| invalid_state())?;
        if data.provider != name {
            return Err(invalid_state());
        }
        let same_browser = answer
            .browser_secret
            .is_some_and(|s| secrets::hashes_equal(&secrets::hash(s), &data.browser_hash));
        let result = match (answer.error, answer.code) {
            _ if !same_browser => Err(fail(
                "invalid_state",
                "this login was not started in this browser (or its cookie expired); start the login again",
            )),
            (Some(err), _) => Err(fail(
                "access_denied",
                format!("the provider answered {err:?}"),
            )),
            (None, None) => Err(fail("invalid_request", "the provider sent no code")),
            (None, Some(code)) => self.finish(db, caches, name, p, &data, code, ctx).await,
        };
        match result {
            Ok(login_code) => Ok(with_params(&data.redirect_uri, &[("code", &login_code)])),
            Err(f) => {
                tracing::warn!(provider = name, code = f.code, detail = %f.description, "OIDC login failed");
                let event = Event::account(
                    "auth.login",
                    None,
                    false,
                    json!({ "method": "oidc", "provider": name, "reason": f.code }),
                );
                audit::record(db, ctx, event).await?;
                Ok(with_params(
                    &data.redirect_uri,
                    &[("error", f.code), ("error_description", &f.description)],
                ))
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn finish(
        &self,
        db: &DatabaseConnection,
        caches: NodeCaches<'_>,
        name: &str,
        p: &protocol::Provider,
        data: &StateData,
        code: &str,
        ctx: &AuditCtx,
    ) -> Result<String, Failure> {
        let claims = p.exchange(code, &data.pkce_verifier, &data.nonce).await?;
        let (user_id, handed_over) = link_or_create(db, name, p.config(), &claims, ctx).await?;
        if let Some(h) = handed_over {
            // The guard ended the account's access tokens.
            caches.auth.invalidate(Invalidation::User(user_id));
            for key_id in &h.api_keys_revoked {
                caches.auth.invalidate(Invalidation::Key(*key_id));
            }
            caches.rbac.apply(h.rule_changes).await;
        }
        let issued = tickets::issue(
            db,
            LOGIN_CODE_TICKET,
            Some(user_id),
            &json!({ "provider": name }),
            self.login_code_ttl_s,
        )
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "storing the login code failed");
            fail(
                "server_error",
                "the login could not be completed; try again",
            )
        })?;
        Ok(issued.secret)
    }
}

fn idp_unavailable(detail: String) -> AppError {
    tracing::warn!(%detail, "OIDC provider unavailable");
    AppError::Unavailable {
        code: ProblemCode::IdpUnavailable,
        detail: "the identity provider cannot be reached; try again later".into(),
    }
}

/// Links the identity to a user or creates one (see the module docs); returns the user and,
/// when the takeover guard fired, what it took away (committed).
async fn link_or_create(
    db: &DatabaseConnection,
    provider: &str,
    config: &OidcProviderConfig,
    claims: &IdClaims,
    ctx: &AuditCtx,
) -> Result<(Uuid, Option<takeover::HandedOver>), Failure> {
    let internal = |e: AppError| {
        tracing::error!(error = %e, "OIDC account linking failed");
        fail(
            "server_error",
            "the login could not be completed; try again",
        )
    };
    let email = claims.email.as_deref().map(|e| e.trim().to_lowercase());
    if !config.allowed_email_domains.is_empty() {
        let domain = email
            .as_deref()
            .and_then(|e| e.rsplit_once('@'))
            .map(|(_, d)| d);
        if !domain.is_some_and(|d| {
            config
                .allowed_email_domains
                .iter()
                .any(|a| a.eq_ignore_ascii_case(d))
        }) {
            return Err(fail(
                "email_domain_not_allowed",
                "this provider only admits accounts from the configured email domains",
            ));
        }
    }
    let now = Utc::now();
    let tx = super::begin_write(db)
        .await
        .map_err(|e| internal(e.into()))?;
    let known = identity::Entity::find()
        .filter(identity::Column::Provider.eq(provider))
        .filter(identity::Column::Subject.eq(&claims.sub))
        .one(&tx)
        .await
        .map_err(|e| internal(e.into()))?;
    let mut handed_over = None;
    let (user_id, action) = if let Some(known) = known {
        identity::Entity::update_many()
            .col_expr(identity::Column::LastLoginAt, Expr::value(now))
            .col_expr(identity::Column::Email, Expr::value(email.clone()))
            .filter(identity::Column::Id.eq(known.id))
            .exec(&tx)
            .await
            .map_err(|e| internal(e.into()))?;
        (known.user_id, None)
    } else {
        let Some(email) = email.clone() else {
            return Err(fail(
                "email_required",
                "the provider did not share an email address (scope `email`)",
            ));
        };
        // The accounts' form of the address (an address that has none matches no account).
        let email = accounts::normalize_email("email", &email).unwrap_or(email);
        let existing = user::Entity::find()
            .filter(user::Column::Email.eq(&email))
            .one(&tx)
            .await
            .map_err(|e| internal(e.into()))?;
        let (user_id, action) = match existing {
            Some(u) if claims.email_verified == Some(true) => {
                if u.email_verified_at.is_none() {
                    let guard =
                        takeover::hand_over(&tx, &u, LOGIN_CODE_TICKET, &ctx.as_actor(u.id), now)
                            .await
                            .map_err(internal)?;
                    tracing::warn!(user_id = %u.id, provider, "SSO takeover guard: unverified account handed to the verified identity");
                    handed_over = Some(guard);
                }
                (u.id, "user.identity_linked")
            }
            Some(_) => {
                return Err(fail(
                    "email_not_verified",
                    "an account with this email exists, and the provider does not vouch for the address; log in with your password",
                ));
            }
            None => {
                let id = Uuid::now_v7();
                let display = claims
                    .name
                    .as_deref()
                    .map(str::trim)
                    .filter(|n| !n.is_empty() && n.chars().count() <= accounts::DISPLAY_NAME_MAX)
                    .map(str::to_owned)
                    .unwrap_or_else(|| email.split('@').next().unwrap_or("user").to_owned());
                user::Entity::insert(user::ActiveModel {
                    id: Set(id),
                    email: Set(email.clone()),
                    display_name: Set(display),
                    password_hash: Set(None),
                    disabled_at: Set(None),
                    created_at: Set(now),
                    updated_at: Set(now),
                    deleted_at: Set(None),
                    // The provider vouched for the address, or it stays unproven.
                    email_verified_at: Set((claims.email_verified == Some(true)).then_some(now)),
                    token_generation: Set(0),
                })
                .exec_without_returning(&tx)
                .await
                .map_err(|e| internal(e.into()))?;
                (id, "user.registered")
            }
        };
        identity::Entity::insert(identity::ActiveModel {
            id: Set(Uuid::now_v7()),
            user_id: Set(user_id),
            provider: Set(provider.to_owned()),
            subject: Set(claims.sub.clone()),
            email: Set(Some(email)),
            created_at: Set(now),
            last_login_at: Set(now),
        })
        .exec_without_returning(&tx)
        .await
        .map_err(|e| internal(e.into()))?;
        (user_id, Some(action))
    };
    let active = user::Entity::find_by_id(user_id)
        .one(&tx)
        .await
        .map_err(|e| internal(e.into()))?
        .is_some_and(|u| u.disabled_at.is_none() && u.deleted_at.is_none());
    if !active {
        return Err(fail("account_disabled", "the account is disabled"));
    }
    let actor = ctx.as_actor(user_id);
    if let Some(action) = action {
        let mut details = json!({ "method": "oidc", "provider": provider });
        if let (Some(h), Some(d)) = (&handed_over, details.as_object_mut()) {
            d.extend(h.details().as_object().cloned().unwrap_or_default());
        }
        let event = Event::account(action, Some(user_id), true, details);
        audit::record(&tx, &actor, event).await.map_err(internal)?;
    }
    let event = Event::account(
        "auth.login",
        Some(user_id),
        true,
        json!({ "method": "oidc", "provider": provider }),
    );
    audit::record(&tx, &actor, event).await.map_err(internal)?;
    tx.commit().await.map_err(|e| internal(e.into()))?;
    Ok((user_id, handed_over))
}

/// Trades a one-time login code from the OIDC callback for a token pair (new refresh-token
/// family). Errors: 400 `invalid_grant` for an unknown, spent or expired code, or a disabled
/// account.
pub async fn exchange(
    db: &DatabaseConnection,
    keyring: &tokens::Keyring,
    refresh_ttl_s: u64,
    code: &str,
) -> AppResult<TokenPair> {
    let invalid = || AppError::BadRequest {
        code: ProblemCode::InvalidGrant,
        detail: "the login code is unknown, expired or already used; log in again".into(),
        errors: vec![],
    };
    let ticket = tickets::spend(db, LOGIN_CODE_TICKET, code)
        .await?
        .ok_or_else(invalid)?;
    let user_id = ticket.user_id.ok_or_else(invalid)?;
    let tx = super::begin_write(db).await?;
    let active = user::Entity::find_by_id(user_id)
        .one(&tx)
        .await?
        .is_some_and(|u| u.disabled_at.is_none() && u.deleted_at.is_none());
    if !active {
        return Err(invalid());
    }
    let pair = accounts::issue_pair(&tx, keyring, refresh_ttl_s, user_id, Uuid::now_v7()).await?;
    tx.commit().await?;
    Ok(pair)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_are_appended_to_the_frontend_url() {
        assert_eq!(
            with_params("https://app.example.com/sso?x=1", &[("code", "lc_a b")]),
            "https://app.example.com/sso?x=1&code=lc_a+b"
        );
    }
}
