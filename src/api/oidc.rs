//! `/v1/auth/oidc/…`: single sign-on with OpenID Connect (see [`crate::domain::oidc`]), and
//! the browser-binding cookie that ties a login's `state` to the browser that started it.

use poem::{
    http::{HeaderMap, header},
    web::Data,
};
use poem_openapi::{
    ApiResponse, Object, OpenApi,
    param::{Path, Query},
    payload::Json,
};

use super::{Tag, auth::TokenOut};
use crate::{
    api_errors,
    domain::oidc::{self, CallbackIn, NodeCaches},
    http::{middleware::ClientInfo, problem::Problem},
    state::AppState,
};

/// Name of the browser-binding cookie.
pub const BROWSER_COOKIE: &str = "agentdesk_oidc";
/// Path of the browser-binding cookie: sent only to the OIDC operations.
pub const BROWSER_COOKIE_PATH: &str = "/v1/auth/oidc/";

/// The `Set-Cookie` value of the browser-binding cookie: `value` for `max_age_s` seconds
/// (0 clears it), `HttpOnly`, `SameSite=Lax` (sent on the provider's top-level redirect back,
/// not on cross-site subrequests), `Secure` when `secure` (the server's `public_url` is
/// https).
fn browser_cookie(value: &str, max_age_s: u64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!(
        "{BROWSER_COOKIE}={value}; Path={BROWSER_COOKIE_PATH}; Max-Age={max_age_s}; HttpOnly; SameSite=Lax{secure}"
    )
}

/// The value of cookie `name` in the request's `Cookie` headers (the first one, which RFC 6265
/// §5.4 makes the most specific path's).
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim_matches('"'))
}

fn secure_cookies(state: &AppState) -> bool {
    state.config.public_url().starts_with("https://")
}

/// `auth.oidc_authorize`'s redirect to the provider.
#[derive(ApiResponse)]
pub enum AuthorizeRedirect {
    /// Go to the provider's authorization URL in `Location`.
    #[oai(status = 302)]
    Found(
        /// The provider's authorization URL.
        #[oai(header = "Location")]
        String,
        /// `no-store`: redirects carrying one-time values are never cached.
        #[oai(header = "Cache-Control")]
        String,
        /// The browser-binding cookie `agentdesk_oidc=ob_<43 base64url characters>` (256
        /// random bits; the server keeps only its SHA-256 with the `state`), with
        /// `Path=/v1/auth/oidc/; Max-Age=<oidc_state_ttl_s>; HttpOnly; SameSite=Lax`, and
        /// `Secure` when the server's `public_url` is https. The callback requires it.
        #[oai(header = "Set-Cookie")]
        String,
    ),
}

/// `auth.oidc_callback`'s answer; every one clears the browser-binding cookie.
// A response lives for one write; boxing the problem would change nothing that matters.
#[allow(clippy::large_enum_variant)]
#[derive(ApiResponse)]
pub enum CallbackResponse {
    /// Go back to the frontend's `redirect_uri` (in `Location`) with `code`, or with `error`
    /// and `error_description`.
    #[oai(status = 302)]
    Found(
        /// The frontend URL with the outcome in its query.
        #[oai(header = "Location")]
        String,
        /// `no-store`: redirects carrying one-time values are never cached.
        #[oai(header = "Cache-Control")]
        String,
        /// Clears the browser-binding cookie (`agentdesk_oidc=; Path=/v1/auth/oidc/;
        /// Max-Age=0; …`).
        #[oai(header = "Set-Cookie")]
        String,
    ),
    /// Unknown, used, expired or misdirected `state` (`invalid_state`), or an invalid
    /// parameter (`invalid_parameter`).
    #[oai(status = 400, content_type = "application/problem+json")]
    BadRequest(
        Json<Problem>,
        /// Clears the browser-binding cookie.
        #[oai(header = "Set-Cookie")]
        Option<String>,
    ),
}

/// `auth.oidc_exchange` request.
#[derive(Object)]
pub struct OidcExchangeIn {
    /// The one-time `code` the callback put on the frontend's `redirect_uri` (valid 60 s,
    /// once).
    #[oai(validator(min_length = 1, max_length = 128))]
    pub code: String,
}

/// A single sign-on provider configured on this server.
#[derive(Object)]
pub struct OidcProviderOut {
    /// Its name: the `{provider}` of `auth.oidc_authorize`.
    pub name: String,
}

/// The single sign-on providers a login page can offer.
#[derive(Object)]
pub struct OidcProviderList {
    /// The providers, by name (empty when single sign-on is not configured).
    pub items: Vec<OidcProviderOut>,
}

/// The configured providers.
#[derive(ApiResponse)]
pub enum OidcProvidersResponse {
    /// The providers.
    #[oai(status = 200)]
    Ok(Json<OidcProviderList>),
}

/// A token pair.
#[derive(ApiResponse)]
pub enum OidcTokenResponse {
    /// A new token pair (a new login).
    #[oai(status = 200)]
    Ok(Json<TokenOut>),
}

api_errors!(OidcAuthorizeErrors {
    BadRequest,
    NotFound,
    Unprocessable
});
api_errors!(OidcCallbackErrors { NotFound });
api_errors!(OidcProvidersErrors {});
api_errors!(OidcExchangeErrors {
    BadRequest,
    PayloadTooLarge,
    UnsupportedMediaType,
    Unprocessable
});

/// The OIDC operations.
pub struct OidcApi;

#[OpenApi(tag = "Tag::Auth")]
impl OidcApi {
    /// List the single sign-on providers
    ///
    /// The configured OpenID Connect providers, by name, for a login page's buttons: start
    /// each login with `auth.oidc_authorize` (a `redirect_uri` configured for the provider).
    /// Public; empty when single sign-on is not configured.
    #[oai(
        path = "/v1/auth/oidc/providers",
        method = "get",
        operation_id = "auth.oidc_providers"
    )]
    async fn providers(
        &self,
        state: Data<&AppState>,
    ) -> Result<OidcProvidersResponse, OidcProvidersErrors> {
        Ok(OidcProvidersResponse::Ok(Json(OidcProviderList {
            items: state
                .config
                .oidc_providers
                .keys()
                .map(|name| OidcProviderOut { name: name.clone() })
                .collect(),
        })))
    }

    /// Start single sign-on
    ///
    /// Redirects (302) to the provider's login with the authorization code flow, PKCE (S256),
    /// `state` and `nonce`, and sets the browser-binding cookie `agentdesk_oidc` that the
    /// callback requires (login CSRF protection: a login finishes only in the browser that
    /// started it). `redirect_uri` is the frontend page the login ends on and must exactly
    /// match one configured for the provider (`422` otherwise). Unknown provider: `404`.
    /// Provider unreachable: `503 idp_unavailable`.
    #[oai(
        path = "/v1/auth/oidc/:provider/authorize",
        method = "get",
        operation_id = "auth.oidc_authorize"
    )]
    async fn authorize(
        &self,
        state: Data<&AppState>,
        /// The configured provider's name.
        provider: Path<String>,
        /// The frontend URL to return to; exact match against the provider's `redirect_uris`.
        #[oai(validator(max_length = 2048))]
        redirect_uri: Query<String>,
    ) -> Result<AuthorizeRedirect, OidcAuthorizeErrors> {
        let begun = state
            .oidc
            .begin(&state.db, &provider.0, &redirect_uri.0)
            .await?;
        let cookie = browser_cookie(&begun.browser_secret, begun.ttl_s, secure_cookies(&state));
        Ok(AuthorizeRedirect::Found(
            begun.authorization_url,
            "no-store".into(),
            cookie,
        ))
    }

    /// Finish single sign-on (the provider's redirect target)
    ///
    /// Not called by clients: the provider sends the browser here. Spends `state` (single
    /// use; unknown, used or expired → `400 invalid_state`), requires the browser-binding
    /// cookie `agentdesk_oidc` set by `auth.oidc_authorize` for that `state` (missing or
    /// different → back to the frontend with `error=invalid_state`), exchanges the code with
    /// the PKCE verifier, checks the ID token (signature, `iss`, `aud`, `exp`, `nonce`), links
    /// or creates the account, and redirects (302) to the frontend's `redirect_uri` with a
    /// one-time `code` (60 s) for `auth.oidc_exchange` — or with `error` and
    /// `error_description` (`invalid_state`, `access_denied`, `code_exchange_failed`,
    /// `invalid_id_token`, `invalid_nonce`, `email_not_verified`, `email_domain_not_allowed`,
    /// …). Every answer clears the cookie.
    #[oai(
        path = "/v1/auth/oidc/:provider/callback",
        method = "get",
        operation_id = "auth.oidc_callback"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn callback(
        &self,
        state: Data<&AppState>,
        client: Data<&ClientInfo>,
        headers: &HeaderMap,
        /// The configured provider's name.
        provider: Path<String>,
        /// The authorization code (RFC 6749 §4.1.2).
        #[oai(validator(max_length = 2048))]
        code: Query<Option<String>>,
        /// The `state` this server sent.
        #[oai(name = "state", validator(max_length = 256))]
        state_: Query<Option<String>>,
        /// An error from the provider (RFC 6749 §4.1.2.1).
        #[oai(validator(max_length = 256))]
        error: Query<Option<String>>,
    ) -> Result<CallbackResponse, OidcCallbackErrors> {
        let answer = CallbackIn {
            code: code.0.as_deref(),
            state: state_.0.as_deref(),
            error: error.0.as_deref(),
            browser_secret: cookie(headers, BROWSER_COOKIE),
        };
        let caches = NodeCaches {
            rbac: &state.rbac,
            auth: &state.auth_cache,
        };
        let cleared = browser_cookie("", 0, secure_cookies(&state));
        match state
            .oidc
            .callback(&state.db, caches, &provider.0, answer, &client.audit())
            .await
        {
            Ok(url) => Ok(CallbackResponse::Found(url, "no-store".into(), cleared)),
            Err(e) if e.status() == poem::http::StatusCode::BAD_REQUEST => Ok(
                CallbackResponse::BadRequest(Json(e.to_problem().0), Some(cleared)),
            ),
            Err(e) => Err(e.into()),
        }
    }

    /// Exchange a single sign-on code for tokens
    ///
    /// Trades the one-time `code` from the callback redirect for an access and refresh token
    /// pair. Unknown, used or expired codes answer `400 invalid_grant`.
    #[oai(
        path = "/v1/auth/oidc/exchange",
        method = "post",
        operation_id = "auth.oidc_exchange"
    )]
    async fn exchange(
        &self,
        state: Data<&AppState>,
        body: Json<OidcExchangeIn>,
    ) -> Result<OidcTokenResponse, OidcExchangeErrors> {
        let pair = oidc::exchange(
            &state.db,
            &state.keyring,
            state.config.refresh_token_ttl_s,
            &body.code,
        )
        .await?;
        Ok(OidcTokenResponse::Ok(Json(pair.into())))
    }
}

#[cfg(test)]
mod tests {
    use poem::http::HeaderValue;

    use super::*;

    #[test]
    fn the_browser_cookie_is_scoped_and_read_back() {
        assert_eq!(
            browser_cookie("ob_x", 600, true),
            "agentdesk_oidc=ob_x; Path=/v1/auth/oidc/; Max-Age=600; HttpOnly; SameSite=Lax; Secure"
        );
        assert!(!browser_cookie("", 0, false).contains("Secure"));
        let mut headers = HeaderMap::new();
        assert_eq!(cookie(&headers, BROWSER_COOKIE), None);
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; agentdesk_oidcx=no"),
        );
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("agentdesk_oidc=ob_1; agentdesk_oidc=ob_2"),
        );
        assert_eq!(cookie(&headers, BROWSER_COOKIE), Some("ob_1"));
        assert_eq!(cookie(&headers, "a"), Some("1"));
    }
}
