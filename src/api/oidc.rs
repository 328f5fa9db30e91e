//! `/v1/auth/oidc/…`: single sign-on with OpenID Connect (see [`crate::domain::oidc`]).

use poem::web::Data;
use poem_openapi::{
    ApiResponse, Object, OpenApi,
    param::{Path, Query},
    payload::Json,
};

use super::{Tag, auth::TokenOut};
use crate::{api_errors, domain::oidc, http::middleware::ClientInfo, state::AppState};

/// A redirect.
#[derive(ApiResponse)]
pub enum Redirect {
    /// Go to `Location`.
    #[oai(status = 302)]
    Found(
        /// Where the browser goes next.
        #[oai(header = "Location")]
        String,
        /// `no-store`: redirects carrying one-time values are never cached.
        #[oai(header = "Cache-Control")]
        String,
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
api_errors!(OidcCallbackErrors {
    BadRequest,
    NotFound
});
api_errors!(OidcExchangeErrors {
    BadRequest,
    PayloadTooLarge,
    UnsupportedMediaType,
    Unprocessable
});

fn found(location: String) -> Redirect {
    Redirect::Found(location, "no-store".into())
}

/// The OIDC operations.
pub struct OidcApi;

#[OpenApi(tag = "Tag::Auth")]
impl OidcApi {
    /// Start single sign-on
    ///
    /// Redirects (302) to the provider's login with the authorization code flow, PKCE (S256),
    /// `state` and `nonce`. `redirect_uri` is the frontend page the login ends on and must
    /// exactly match one configured for the provider (`422` otherwise). Unknown provider:
    /// `404`. Provider unreachable: `503 idp_unavailable`.
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
    ) -> Result<Redirect, OidcAuthorizeErrors> {
        let url = state
            .oidc
            .begin(&state.db, &provider.0, &redirect_uri.0)
            .await?;
        Ok(found(url))
    }

    /// Finish single sign-on (the provider's redirect target)
    ///
    /// Not called by clients: the provider sends the browser here. Spends `state` (single
    /// use; unknown, used or expired → `400 invalid_state`), exchanges the code with the PKCE
    /// verifier, checks the ID token (signature, `iss`, `aud`, `exp`, `nonce`), links or
    /// creates the account, and redirects (302) to the frontend's `redirect_uri` with a
    /// one-time `code` (60 s) for `auth.oidc_exchange` — or with `error` and
    /// `error_description` (`access_denied`, `code_exchange_failed`, `invalid_id_token`,
    /// `invalid_nonce`, `email_not_verified`, `email_domain_not_allowed`, …).
    #[oai(
        path = "/v1/auth/oidc/:provider/callback",
        method = "get",
        operation_id = "auth.oidc_callback"
    )]
    async fn callback(
        &self,
        state: Data<&AppState>,
        client: Data<&ClientInfo>,
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
    ) -> Result<Redirect, OidcCallbackErrors> {
        let url = state
            .oidc
            .callback(
                &state.db,
                &provider.0,
                code.0.as_deref(),
                state_.0.as_deref(),
                error.0.as_deref(),
                &client.audit(),
            )
            .await?;
        Ok(found(url))
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
