//! Single sign-on with OpenID Connect (OIDC Core 1.0), the authorization code flow with PKCE
//! (RFC 7636, S256), `state` and `nonce`:
//!
//! 1. [`Oidc::begin`] (`auth.oidc_authorize`): the frontend's `redirect_uri` must exactly
//!    match a configured one. A random `state` (256 bits) is a one-time ticket
//!    ([`super::tickets`], stored as SHA-256) holding the provider, the `nonce`, the PKCE
//!    verifier and the `redirect_uri`; the browser is sent to the provider.
//! 2. [`Oidc::callback`] (`auth.oidc_callback`): the record is spent (single use) — an unknown,
//!    spent or expired `state` is 400 `invalid_state`. The code is exchanged with the PKCE
//!    verifier; the ID token's signature (provider JWKS, cached, refreshed on an unknown
//!    `kid`), `iss`, `aud`, `exp` and `nonce` are checked; the identity is linked (below) and
//!    the browser goes back to `redirect_uri?code=<one-time code>` (60 s, single use). Any
//!    failure after a valid `state` goes back as `redirect_uri?error=<code>&error_description=…`.
//! 3. [`exchange`] (`auth.oidc_exchange`): the SPA trades the one-time code for a token pair
//!    in a request body. Tokens never appear in a URL.
//!
//! Linking: a known identity `(provider, sub)` logs its user in. A new identity is linked to
//! the existing account with the same email only when the provider says `email_verified`;
//! an unverified email that collides with an account is refused (`email_not_verified`);
//! otherwise a new user (without password) is created. `allowed_email_domains` limits who
//! may log in at all.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration as StdDuration, Instant},
};

use chrono::Utc;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, jwk::JwkSet};
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet, EndpointSet,
    ExtraTokenFields, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope,
    StandardRevocableToken, StandardTokenResponse, TokenUrl,
    basic::{
        BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse,
        BasicTokenType,
    },
};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, sea_query::Expr,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::Mutex;
use uuid::Uuid;

use super::{
    accounts::{self, TokenPair},
    audit::{self, AuditCtx, Event},
    tickets::{self, Kind},
};
use crate::{
    auth::{secrets, tokens},
    config::{Config, OidcProviderConfig},
    entity::{identity, user},
    error::{AppError, AppResult},
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
/// How long discovery metadata is cached.
const METADATA_TTL: StdDuration = StdDuration::from_secs(3600);
/// An unknown `kid` refetches the JWKS at most this often (a flood of forged tokens cannot
/// turn into a flood of requests to the provider).
const JWKS_REFRESH_MIN: StdDuration = StdDuration::from_secs(10);

/// Signature algorithms accepted on ID tokens: asymmetric only (an `HS256` ID token keyed by
/// the client secret is refused, so a leaked secret cannot mint identities).
const ALLOWED_ALGS: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// The token response fields beyond OAuth 2.0's: the ID token.
#[derive(Clone, Debug, Deserialize, Serialize)]
struct IdTokenFields {
    id_token: Option<String>,
}

impl ExtraTokenFields for IdTokenFields {}

type OidcClient = oauth2::Client<
    BasicErrorResponse,
    StandardTokenResponse<IdTokenFields, BasicTokenType>,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

/// Provider metadata from discovery (OIDC Discovery 1.0 §3).
#[derive(Clone, Debug, Deserialize)]
struct Metadata {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
}

#[derive(Default)]
struct Cache {
    metadata: Option<(Metadata, Instant)>,
    jwks: Option<(Arc<JwkSet>, Instant)>,
}

struct Provider {
    config: OidcProviderConfig,
    cache: Mutex<Cache>,
}

/// What a `state` record remembers.
#[derive(Debug, Deserialize, Serialize)]
struct StateData {
    provider: String,
    nonce: String,
    pkce_verifier: String,
    redirect_uri: String,
}

/// The claims read from an ID token.
#[derive(Debug, Deserialize)]
struct IdClaims {
    sub: String,
    nonce: Option<String>,
    email: Option<String>,
    email_verified: Option<bool>,
    name: Option<String>,
}

/// The configured providers and an HTTP client for them (no redirects followed, 10 s timeout).
pub struct Oidc {
    providers: HashMap<String, Provider>,
    http: reqwest::Client,
    public_url: String,
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

fn unknown_provider() -> AppError {
    AppError::NotFound("OIDC provider")
}

fn invalid_state() -> AppError {
    AppError::BadRequest {
        code: "invalid_state",
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
    /// The providers of `config.oidc_providers`. Nothing is fetched until first use.
    /// Errors: the HTTP client cannot be built.
    pub fn new(config: &Config) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(StdDuration::from_secs(10))
            .build()?;
        Ok(Self {
            providers: config
                .oidc_providers
                .iter()
                .map(|(name, c)| {
                    (
                        name.clone(),
                        Provider {
                            config: c.clone(),
                            cache: Mutex::new(Cache::default()),
                        },
                    )
                })
                .collect(),
            http,
            public_url: config.public_url(),
            state_ttl_s: config.oidc_state_ttl_s,
            login_code_ttl_s: config.login_code_ttl_s,
        })
    }

    fn provider(&self, name: &str) -> AppResult<&Provider> {
        self.providers.get(name).ok_or_else(unknown_provider)
    }

    fn callback_url(&self, name: &str) -> String {
        format!("{}/v1/auth/oidc/{name}/callback", self.public_url)
    }

    async fn metadata(&self, p: &Provider) -> Result<Metadata, String> {
        let mut cache = p.cache.lock().await;
        if let Some((m, at)) = &cache.metadata
            && at.elapsed() < METADATA_TTL
        {
            return Ok(m.clone());
        }
        let issuer = p.config.issuer_url.trim_end_matches('/');
        let url = format!("{issuer}/.well-known/openid-configuration");
        let m: Metadata = self
            .http
            .get(&url)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| format!("discovery at {url} failed: {e}"))?
            .json()
            .await
            .map_err(|e| format!("discovery at {url} returned an invalid document: {e}"))?;
        // OIDC Discovery §4.3: the issuer in the document must be the one we asked.
        if m.issuer.trim_end_matches('/') != issuer {
            return Err(format!(
                "discovery issuer {:?} differs from the configured {issuer:?}",
                m.issuer
            ));
        }
        cache.metadata = Some((m.clone(), Instant::now()));
        Ok(m)
    }

    async fn fetch_jwks(&self, jwks_uri: &str) -> Result<Arc<JwkSet>, String> {
        let set: JwkSet = self
            .http
            .get(jwks_uri)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| format!("JWKS fetch from {jwks_uri} failed: {e}"))?
            .json()
            .await
            .map_err(|e| format!("JWKS at {jwks_uri} is invalid: {e}"))?;
        Ok(Arc::new(set))
    }

    /// The verification key for `kid`: from the cached JWKS, refetched when the `kid` is
    /// unknown (key rotation at the provider), at most every [`JWKS_REFRESH_MIN`].
    async fn key(
        &self,
        p: &Provider,
        m: &Metadata,
        kid: Option<&str>,
    ) -> Result<DecodingKey, String> {
        let pick = |set: &JwkSet| match kid {
            Some(kid) => set.find(kid).cloned(),
            None if set.keys.len() == 1 => set.keys.first().cloned(),
            None => None,
        };
        let mut cache = p.cache.lock().await;
        if let Some((set, _)) = &cache.jwks
            && let Some(jwk) = pick(set)
        {
            return DecodingKey::from_jwk(&jwk).map_err(|e| format!("unusable JWK: {e}"));
        }
        let fresh_enough = cache
            .jwks
            .as_ref()
            .is_some_and(|(_, at)| at.elapsed() < JWKS_REFRESH_MIN);
        if !fresh_enough {
            let set = self.fetch_jwks(&m.jwks_uri).await?;
            cache.jwks = Some((set, Instant::now()));
        }
        let set = &cache.jwks.as_ref().expect("set above").0;
        let jwk = pick(set).ok_or_else(|| format!("no key {kid:?} in the provider's JWKS"))?;
        DecodingKey::from_jwk(&jwk).map_err(|e| format!("unusable JWK: {e}"))
    }

    fn client(&self, name: &str, p: &Provider, m: &Metadata) -> Result<OidcClient, String> {
        Ok(
            oauth2::Client::new(ClientId::new(p.config.client_id.clone()))
                .set_client_secret(ClientSecret::new(p.config.client_secret.clone()))
                .set_auth_uri(
                    AuthUrl::new(m.authorization_endpoint.clone()).map_err(|e| e.to_string())?,
                )
                .set_token_uri(TokenUrl::new(m.token_endpoint.clone()).map_err(|e| e.to_string())?)
                .set_redirect_uri(
                    RedirectUrl::new(self.callback_url(name)).map_err(|e| e.to_string())?,
                ),
        )
    }

    /// Starts a login at provider `name`: stores the `state` record and returns the
    /// provider's authorization URL. Errors: 404 unknown provider; 422 `redirect_uri` not
    /// configured; 503 `idp_unavailable` when discovery fails.
    pub async fn begin(
        &self,
        db: &DatabaseConnection,
        name: &str,
        redirect_uri: &str,
    ) -> AppResult<String> {
        let p = self.provider(name)?;
        if !p.config.redirect_uris.iter().any(|u| u == redirect_uri) {
            return Err(AppError::field(
                "redirect_uri",
                "must exactly match one of the provider's configured redirect_uris",
            ));
        }
        let m = self.metadata(p).await.map_err(idp_unavailable)?;
        let client = self.client(name, p, &m).map_err(idp_unavailable)?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (nonce, _) = secrets::new_token("n");
        let data = StateData {
            provider: name.to_owned(),
            nonce: nonce.clone(),
            pkce_verifier: verifier.secret().clone(),
            redirect_uri: redirect_uri.to_owned(),
        };
        let state = tickets::issue(db, STATE_TICKET, None, &data, self.state_ttl_s).await?;
        let mut request = client
            .authorize_url(|| CsrfToken::new(state.secret))
            .add_extra_param("nonce", nonce)
            .set_pkce_challenge(challenge);
        for scope in &p.config.scopes {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        let (url, _) = request.url();
        Ok(url.to_string())
    }

    /// Finishes a login at provider `name` and returns where to send the browser: the
    /// frontend's `redirect_uri` with `code` (success) or `error` / `error_description`.
    /// Errors: 404 unknown provider; 400 `invalid_state` (unknown, spent, expired, or for
    /// another provider).
    #[allow(clippy::too_many_arguments)]
    pub async fn callback(
        &self,
        db: &DatabaseConnection,
        name: &str,
        code: Option<&str>,
        state: Option<&str>,
        error: Option<&str>,
        ctx: &AuditCtx,
    ) -> AppResult<String> {
        let p = self.provider(name)?;
        let state = state.ok_or_else(invalid_state)?;
        let ticket = tickets::spend(db, STATE_TICKET, state)
            .await?
            .ok_or_else(invalid_state)?;
        let data: StateData = serde_json::from_value(ticket.data).map_err(|_| invalid_state())?;
        if data.provider != name {
            return Err(invalid_state());
        }
        let result = match (error, code) {
            (Some(err), _) => Err(fail(
                "access_denied",
                format!("the provider answered {err:?}"),
            )),
            (None, None) => Err(fail("invalid_request", "the provider sent no code")),
            (None, Some(code)) => self.finish(db, name, p, &data, code, ctx).await,
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

    async fn finish(
        &self,
        db: &DatabaseConnection,
        name: &str,
        p: &Provider,
        data: &StateData,
        code: &str,
        ctx: &AuditCtx,
    ) -> Result<String, Failure> {
        let m = self
            .metadata(p)
            .await
            .map_err(|e| fail("idp_unavailable", e))?;
        let client = self
            .client(name, p, &m)
            .map_err(|e| fail("idp_unavailable", e))?;
        let token = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .set_pkce_verifier(PkceCodeVerifier::new(data.pkce_verifier.clone()))
            .request_async(&self.http)
            .await
            .map_err(|e| {
                fail(
                    "code_exchange_failed",
                    format!("the provider refused the code: {e}"),
                )
            })?;
        let id_token = token
            .extra_fields()
            .id_token
            .clone()
            .ok_or_else(|| fail("invalid_id_token", "the token response has no id_token"))?;
        let claims = self.verify_id_token(p, &m, &id_token, &data.nonce).await?;
        let user_id = link_or_create(db, name, &p.config, &claims, ctx).await?;
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

    async fn verify_id_token(
        &self,
        p: &Provider,
        m: &Metadata,
        id_token: &str,
        nonce: &str,
    ) -> Result<IdClaims, Failure> {
        let bad = |d: String| fail("invalid_id_token", d);
        let header = jsonwebtoken::decode_header(id_token)
            .map_err(|e| bad(format!("unreadable ID token: {e}")))?;
        if !ALLOWED_ALGS.contains(&header.alg) {
            return Err(bad(format!(
                "ID token algorithm {:?} is not accepted",
                header.alg
            )));
        }
        let key = self.key(p, m, header.kid.as_deref()).await.map_err(bad)?;
        let mut v = Validation::new(header.alg);
        v.set_issuer(&[&m.issuer]);
        v.set_audience(&[&p.config.client_id]);
        v.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        v.leeway = 60;
        let data = jsonwebtoken::decode::<IdClaims>(id_token, &key, &v)
            .map_err(|e| bad(format!("ID token rejected: {e}")))?;
        let claims = data.claims;
        let nonce_ok = claims
            .nonce
            .as_deref()
            .is_some_and(|n| secrets::hashes_equal(&secrets::hash(n), &secrets::hash(nonce)));
        if !nonce_ok {
            return Err(fail(
                "invalid_nonce",
                "the ID token's nonce is not the one this login sent",
            ));
        }
        Ok(claims)
    }
}

fn idp_unavailable(detail: String) -> AppError {
    tracing::warn!(%detail, "OIDC provider unavailable");
    AppError::Unavailable {
        code: "idp_unavailable",
        detail: "the identity provider cannot be reached; try again later".into(),
    }
}

/// Links the identity to a user or creates one (see the module docs).
async fn link_or_create(
    db: &DatabaseConnection,
    provider: &str,
    config: &OidcProviderConfig,
    claims: &IdClaims,
    ctx: &AuditCtx,
) -> Result<Uuid, Failure> {
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
        let existing = user::Entity::find()
            .filter(user::Column::Email.eq(&email))
            .one(&tx)
            .await
            .map_err(|e| internal(e.into()))?;
        let (user_id, action) = match existing {
            Some(u) if claims.email_verified == Some(true) => (u.id, "user.identity_linked"),
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
        let event = Event::account(
            action,
            Some(user_id),
            true,
            json!({ "method": "oidc", "provider": provider }),
        );
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
    Ok(user_id)
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
        code: "invalid_grant",
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
        assert!(!ALLOWED_ALGS.contains(&Algorithm::HS256));
    }
}
