//! The OpenID Connect protocol client (OIDC Core 1.0, authorization code flow with PKCE,
//! RFC 7636 S256): discovery (OIDC Discovery 1.0, cached for an hour), the provider's JWKS
//! (cached, refetched on an unknown `kid`), building the authorization URL, the code
//! exchange (oauth2 over reqwest) and ID token verification (signature, `iss`, `aud`, `exp`,
//! `nonce`) with jsonwebtoken.
//!
//! Not here: the database and accounts. This module takes a provider's settings and returns
//! verified claims; remembering `state` between the two legs of the flow, linking an identity
//! to an account, allowed email domains and login codes are the domain's (`domain::oidc`,
//! which calls in here).

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

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
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use super::secrets;
use crate::config::OidcProviderConfig;

/// How long discovery metadata is cached.
const METADATA_TTL: Duration = Duration::from_secs(3600);
/// An unknown `kid` refetches the JWKS at most this often (a flood of forged tokens cannot
/// turn into a flood of requests to the provider).
const JWKS_REFRESH_MIN: Duration = Duration::from_secs(10);
/// Timeout of every request to a provider.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

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

type OauthClient = oauth2::Client<
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

/// A protocol failure, with the stable `code` the relying party reports to the frontend
/// (`idp_unavailable`, `code_exchange_failed`, `invalid_id_token`, `invalid_nonce`) and a
/// human-readable description (may name provider URLs; never a secret).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProtocolError {
    /// The stable error code.
    pub code: &'static str,
    /// What went wrong, for people and logs.
    pub description: String,
}

impl ProtocolError {
    fn new(code: &'static str, description: impl Into<String>) -> Self {
        Self {
            code,
            description: description.into(),
        }
    }

    fn unavailable(description: impl Into<String>) -> Self {
        Self::new("idp_unavailable", description)
    }
}

impl std::fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.description)
    }
}

impl std::error::Error for ProtocolError {}

/// The claims read from a verified ID token.
#[derive(Clone, Debug, Deserialize)]
pub struct IdClaims {
    /// The provider's stable subject identifier of the user.
    pub sub: String,
    /// The `nonce` the ID token answers (already checked against the login's).
    pub nonce: Option<String>,
    /// The email address, when the provider shares it (scope `email`); as sent.
    pub email: Option<String>,
    /// Whether the provider vouches for `email`.
    pub email_verified: Option<bool>,
    /// The display name, when shared (scope `profile`); as sent.
    pub name: Option<String>,
}

/// The HTTP client for providers: follows no redirects, 10 s timeout. Errors: the client
/// cannot be built (TLS backend).
pub fn http_client() -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(HTTP_TIMEOUT)
        .build()
}

/// The protocol client of one provider, with its discovery and JWKS caches. Nothing is
/// fetched until first use.
pub struct Provider {
    config: OidcProviderConfig,
    redirect_url: String,
    http: reqwest::Client,
    cache: Mutex<Cache>,
}

/// A login ready to start: the secrets the relying party must remember until the callback
/// (`nonce`, `pkce_verifier`), and [`Authorization::url`] to send the browser to once a
/// `state` is chosen.
pub struct Authorization {
    client: OauthClient,
    challenge: PkceCodeChallenge,
    scopes: Vec<String>,
    /// The `nonce` (256 bits, `n_…`) the ID token must carry back.
    pub nonce: String,
    /// The PKCE code verifier (43 characters) for the code exchange.
    pub pkce_verifier: String,
}

impl Authorization {
    /// The provider's authorization URL for this login with `state` (the value the callback
    /// will carry back).
    pub fn url(&self, state: &str) -> String {
        let state = state.to_owned();
        let mut request = self
            .client
            .authorize_url(|| CsrfToken::new(state))
            .add_extra_param("nonce", self.nonce.clone())
            .set_pkce_challenge(self.challenge.clone());
        for scope in &self.scopes {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        request.url().0.to_string()
    }
}

impl Provider {
    /// The client of the provider configured as `config`, whose authorization responses go
    /// to `redirect_url` (this server's callback, registered at the provider), making its
    /// requests with `http` (see [`http_client`]).
    pub fn new(config: OidcProviderConfig, redirect_url: String, http: reqwest::Client) -> Self {
        Self {
            config,
            redirect_url,
            http,
            cache: Mutex::new(Cache::default()),
        }
    }

    /// The provider's settings.
    pub fn config(&self) -> &OidcProviderConfig {
        &self.config
    }

    /// Prepares a login: discovery (cached), a fresh `nonce` and PKCE pair. Errors:
    /// `idp_unavailable` when discovery fails or the provider's endpoints are unusable.
    pub async fn authorization(&self) -> Result<Authorization, ProtocolError> {
        let m = self.metadata().await.map_err(ProtocolError::unavailable)?;
        let client = self.client(&m).map_err(ProtocolError::unavailable)?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (nonce, _) = secrets::new_token("n");
        Ok(Authorization {
            client,
            challenge,
            scopes: self.config.scopes.clone(),
            nonce,
            pkce_verifier: verifier.secret().clone(),
        })
    }

    /// Exchanges an authorization `code` with the login's `pkce_verifier` and returns the
    /// claims of the verified ID token, whose `nonce` must be the login's. Errors (codes):
    /// `idp_unavailable`, `code_exchange_failed`, `invalid_id_token`, `invalid_nonce`.
    pub async fn exchange(
        &self,
        code: &str,
        pkce_verifier: &str,
        nonce: &str,
    ) -> Result<IdClaims, ProtocolError> {
        let m = self.metadata().await.map_err(ProtocolError::unavailable)?;
        let client = self.client(&m).map_err(ProtocolError::unavailable)?;
        let token = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.to_owned()))
            .request_async(&self.http)
            .await
            .map_err(|e| {
                ProtocolError::new(
                    "code_exchange_failed",
                    format!("the provider refused the code: {e}"),
                )
            })?;
        let id_token = token.extra_fields().id_token.clone().ok_or_else(|| {
            ProtocolError::new("invalid_id_token", "the token response has no id_token")
        })?;
        self.verify_id_token(&m, &id_token, nonce).await
    }

    async fn metadata(&self) -> Result<Metadata, String> {
        let mut cache = self.cache.lock().await;
        if let Some((m, at)) = &cache.metadata
            && at.elapsed() < METADATA_TTL
        {
            return Ok(m.clone());
        }
        let issuer = self.config.issuer_url.trim_end_matches('/');
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
    async fn key(&self, m: &Metadata, kid: Option<&str>) -> Result<DecodingKey, String> {
        let pick = |set: &JwkSet| match kid {
            Some(kid) => set.find(kid).cloned(),
            None if set.keys.len() == 1 => set.keys.first().cloned(),
            None => None,
        };
        let mut cache = self.cache.lock().await;
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

    fn client(&self, m: &Metadata) -> Result<OauthClient, String> {
        Ok(
            oauth2::Client::new(ClientId::new(self.config.client_id.clone()))
                .set_client_secret(ClientSecret::new(self.config.client_secret.clone()))
                .set_auth_uri(
                    AuthUrl::new(m.authorization_endpoint.clone()).map_err(|e| e.to_string())?,
                )
                .set_token_uri(TokenUrl::new(m.token_endpoint.clone()).map_err(|e| e.to_string())?)
                .set_redirect_uri(
                    RedirectUrl::new(self.redirect_url.clone()).map_err(|e| e.to_string())?,
                ),
        )
    }

    async fn verify_id_token(
        &self,
        m: &Metadata,
        id_token: &str,
        nonce: &str,
    ) -> Result<IdClaims, ProtocolError> {
        let bad = |d: String| ProtocolError::new("invalid_id_token", d);
        let header = jsonwebtoken::decode_header(id_token)
            .map_err(|e| bad(format!("unreadable ID token: {e}")))?;
        if !ALLOWED_ALGS.contains(&header.alg) {
            return Err(bad(format!(
                "ID token algorithm {:?} is not accepted",
                header.alg
            )));
        }
        let key = self.key(m, header.kid.as_deref()).await.map_err(bad)?;
        let mut v = Validation::new(header.alg);
        v.set_issuer(&[&m.issuer]);
        v.set_audience(&[&self.config.client_id]);
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
            return Err(ProtocolError::new(
                "invalid_nonce",
                "the ID token's nonce is not the one this login sent",
            ));
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_asymmetric_algorithms_are_accepted() {
        assert!(!ALLOWED_ALGS.contains(&Algorithm::HS256));
    }

    #[tokio::test]
    async fn authorization_url_carries_state_nonce_and_s256_challenge() {
        let p = Provider::new(
            OidcProviderConfig {
                issuer_url: "https://idp.example.com".into(),
                client_id: "agentdesk".into(),
                client_secret: "secret".into(),
                scopes: vec!["openid".into(), "email".into()],
                allowed_email_domains: vec![],
                redirect_uris: vec![],
            },
            "https://api.example.com/v1/auth/oidc/idp/callback".into(),
            http_client().unwrap(),
        );
        // Discovery is served from the cache: no request is made.
        p.cache.lock().await.metadata = Some((
            Metadata {
                issuer: "https://idp.example.com".into(),
                authorization_endpoint: "https://idp.example.com/auth".into(),
                token_endpoint: "https://idp.example.com/token".into(),
                jwks_uri: "https://idp.example.com/jwks".into(),
            },
            Instant::now(),
        ));
        let a = p.authorization().await.unwrap();
        let url = url::Url::parse(&a.url("st_abc")).unwrap();
        let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
        assert!(url.as_str().starts_with("https://idp.example.com/auth?"));
        assert_eq!(q["state"], "st_abc");
        assert_eq!(q["nonce"], a.nonce);
        assert_eq!(q["code_challenge_method"], "S256");
        assert_eq!(
            &q["code_challenge"],
            PkceCodeChallenge::from_code_verifier_sha256(&PkceCodeVerifier::new(
                a.pkce_verifier.clone()
            ))
            .as_str()
        );
        assert_eq!(q["scope"], "openid email");
        assert_eq!(q["client_id"], "agentdesk");
        assert_eq!(
            q["redirect_uri"],
            "https://api.example.com/v1/auth/oidc/idp/callback"
        );
    }
}
