//! `/v1/auth/*`: register, login, refresh-token rotation, logout. Rate limited per IP
//! (`auth_rate_limit_per_ip_per_min`) and, for login, per account.

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::{ApiResponse, Object, OpenApi, payload::Json};

use super::{Tag, me::UserOut};
use crate::{
    api_errors,
    domain::{accounts, verification},
    http::middleware::ClientInfo,
    http::ratelimit::Limiters,
    state::AppState,
};

/// `auth.verify_email` request.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
pub struct VerifyEmailIn {
    /// The token from the verification link (`ev_…`, the `token` in its fragment).
    #[oai(validator(min_length = 1, max_length = 128))]
    pub token: String,
}

/// `auth.signup` answer: the same for a new and for a taken address.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
pub struct SignupOut {
    /// The address in the form the server stores it (see the README's email rules).
    pub email: String,
    /// Always `verification_sent`: a link went to the address. Open it (`auth.verify_email`),
    /// then log in with `auth.login`.
    pub status: String,
}

/// `auth.register` and `auth.signup` request.
#[derive(Object)]
#[oai(skip_serializing_if_is_none, example)]
pub struct RegisterIn {
    /// Email address (`local@domain`); normalised to lower case and unique across the server.
    /// Beyond the pattern, addresses that read like another are refused (422 naming the field):
    /// invisible or formatting characters (zero-width, bidi controls), fullwidth and other
    /// compatibility forms, symbols, a local part mixing scripts or written in look-alike
    /// letters of another script, a domain that is not valid IDNA. Compared lower-cased, NFC.
    #[oai(validator(
        max_length = 320,
        pattern = r"^\s*[^\s@\u0000-\u001F\u007F-\u009F]+@[^\s@.\u0000-\u001F\u007F-\u009F](?:[^\s@\u0000-\u001F\u007F-\u009F]*[^\s@.\u0000-\u001F\u007F-\u009F])?\s*$"
    ))]
    pub email: String,
    /// Password, 10–256 characters, not equal to the email.
    #[oai(validator(min_length = 10, max_length = 256))]
    pub password: String,
    /// Name shown to other members, 1–200 characters, not blank, no control characters.
    #[oai(validator(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$"
    ))]
    pub display_name: String,
}

/// `auth.login` request.
#[derive(Object)]
#[oai(skip_serializing_if_is_none, example)]
pub struct LoginIn {
    /// The account's email (case-insensitive).
    #[oai(validator(max_length = 320))]
    pub email: String,
    /// The account's password.
    #[oai(validator(max_length = 256))]
    pub password: String,
}

/// A refresh token presented to `auth.refresh` or `auth.logout`.
#[derive(Object)]
#[oai(skip_serializing_if_is_none, example)]
pub struct RefreshIn {
    /// The opaque refresh token from `auth.login` or the last `auth.refresh`.
    #[oai(validator(max_length = 128))]
    pub refresh_token: String,
}

/// A token pair (RFC 6749 §5.1 field names).
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
pub struct TokenOut {
    /// Access token (JWT): send as `Authorization: Bearer <access_token>`.
    pub access_token: String,
    /// Always `Bearer` (RFC 6750).
    pub token_type: String,
    /// Access token lifetime in seconds.
    pub expires_in: u64,
    /// Opaque refresh token, single use: `auth.refresh` spends it and returns a new one.
    /// Presenting a spent one revokes every token of its login.
    pub refresh_token: String,
    /// Refresh token lifetime in seconds.
    pub refresh_expires_in: u64,
}

impl From<accounts::TokenPair> for TokenOut {
    fn from(p: accounts::TokenPair) -> Self {
        Self {
            access_token: p.access_token,
            token_type: "Bearer".into(),
            expires_in: p.expires_in,
            refresh_token: p.refresh_token,
            refresh_expires_in: p.refresh_expires_in,
        }
    }
}

/// `auth.signup` success.
#[derive(ApiResponse)]
pub enum SignupResponse {
    /// Accepted: a verification link (for a new address) or a notice to the owner (for a
    /// taken one) was sent. The answer does not say which.
    #[oai(status = 202)]
    Accepted(Json<SignupOut>),
}

/// `auth.verify_email` success.
#[derive(ApiResponse)]
pub enum VerifyEmailResponse {
    /// The address is verified.
    #[oai(status = 204)]
    NoContent,
}

/// `auth.register` success.
#[derive(ApiResponse)]
pub enum RegisterResponse {
    /// The account was created, its address not yet verified (a link was mailed). Log in with
    /// `auth.login`.
    #[oai(status = 201)]
    Created(Json<UserOut>, #[oai(header = "Location")] String),
}

/// `auth.login` / `auth.refresh` success.
#[derive(ApiResponse)]
pub enum TokenResponse {
    /// A new token pair.
    #[oai(status = 200)]
    Ok(Json<TokenOut>),
}

/// `auth.logout` success.
#[derive(ApiResponse)]
pub enum LogoutResponse {
    /// The refresh token's whole family is revoked (also when it was unknown or already revoked).
    #[oai(status = 204)]
    NoContent,
}

api_errors!(RegisterErrors {
    BadRequest,
    Forbidden,
    Conflict,
    PayloadTooLarge,
    UnsupportedMediaType,
    Unprocessable
});
api_errors!(SignupErrors {
    BadRequest,
    Forbidden,
    PayloadTooLarge,
    UnsupportedMediaType,
    Unprocessable
});
api_errors!(VerifyEmailErrors {
    BadRequest,
    PayloadTooLarge,
    UnsupportedMediaType,
    Unprocessable
});
api_errors!(LoginErrors {
    BadRequest,
    Unauthorized,
    PayloadTooLarge,
    UnsupportedMediaType,
    Unprocessable
});
api_errors!(LogoutErrors {
    BadRequest,
    PayloadTooLarge,
    UnsupportedMediaType,
    Unprocessable
});

/// The auth operations.
pub struct AuthApi;

fn registration(state: &AppState) -> accounts::Registration<'_> {
    accounts::Registration {
        open: state.config.registration_open,
        mailer: state.mailer.as_ref(),
        links: verification::Links::from_config(&state.config),
    }
}

impl From<RegisterIn> for accounts::SignupForm {
    fn from(b: RegisterIn) -> Self {
        Self {
            email: b.email,
            password: b.password,
            display_name: b.display_name,
        }
    }
}

/// `auth.register`, deprecated on 2026-11-29 (`auth.signup` replaces it), sunset 2027-06-01.
pub const REGISTER_DEPRECATION: crate::http::deprecation::Deprecation =
    super::deprecated_for_consent("POST", "/v1/auth/register", "/docs/#/Auth/auth.signup");

#[OpenApi(tag = "Tag::Auth")]
impl AuthApi {
    /// Sign up
    ///
    /// Creates an account with an argon2id-hashed password and mails a verification link to
    /// the address, or, when the address already has an account, creates nothing and tells its
    /// owner that someone tried. Both answer `202` with the same body, so the answer does not
    /// reveal which addresses have accounts. Open unless the server turned registration off
    /// (`403 registration_closed`); invalid fields answer `422 validation_failed` naming each
    /// field. Until the address is verified (`auth.verify_email`) the account can log in but
    /// cannot accept invitations.
    #[oai(
        path = "/v1/auth/signup",
        method = "post",
        operation_id = "auth.signup"
    )]
    async fn signup(
        &self,
        state: Data<&AppState>,
        client: Data<&ClientInfo>,
        body: Json<RegisterIn>,
    ) -> Result<SignupResponse, SignupErrors> {
        let email = accounts::signup(
            &state.db,
            &registration(&state),
            body.0.into(),
            &client.audit(),
        )
        .await?;
        Ok(SignupResponse::Accepted(Json(SignupOut {
            email,
            status: "verification_sent".into(),
        })))
    }

    /// Verify an email address
    ///
    /// Spends the token of a verification link (mailed by `auth.signup`, `auth.register` or
    /// `me.send_verification`) and marks the address verified. No credential is needed: the
    /// token proves the mailbox. Audited as `user.email_verified`. An unknown, used or expired
    /// token, or one for an address the account no longer has, answers `400
    /// invalid_verification_token`.
    #[oai(
        path = "/v1/auth/verify-email",
        method = "post",
        operation_id = "auth.verify_email"
    )]
    async fn verify_email(
        &self,
        state: Data<&AppState>,
        client: Data<&ClientInfo>,
        body: Json<VerifyEmailIn>,
    ) -> Result<VerifyEmailResponse, VerifyEmailErrors> {
        verification::verify(&state.db, &body.token, &client.audit()).await?;
        Ok(VerifyEmailResponse::NoContent)
    }

    /// Register an account (deprecated: use `auth.signup`)
    ///
    /// Creates a user with an argon2id-hashed password and mails a verification link. Open
    /// unless the server turned registration off (`403 registration_closed`). A taken email
    /// answers `409 email_taken`, which tells anyone which addresses have accounts: use
    /// `auth.signup`, which answers the same for both. Invalid fields answer `422
    /// validation_failed` naming each field. Deprecated since 2026-11-29, sunset 2027-06-01.
    #[oai(
        path = "/v1/auth/register",
        method = "post",
        operation_id = "auth.register",
        deprecated
    )]
    async fn register(
        &self,
        state: Data<&AppState>,
        client: Data<&ClientInfo>,
        body: Json<RegisterIn>,
    ) -> Result<RegisterResponse, RegisterErrors> {
        let user = accounts::register(
            &state.db,
            &registration(&state),
            body.0.into(),
            &client.audit(),
        )
        .await?;
        Ok(RegisterResponse::Created(
            Json(user.into()),
            "/v1/me".into(),
        ))
    }

    /// Log in with email and password
    ///
    /// Returns an access token and a refresh token. A wrong email and a wrong password answer
    /// the same `401 invalid_credentials`. Limited per IP and per account
    /// (`login_rate_limit_per_account_per_min`, `429 rate_limited`); repeated failures lock the
    /// account and the client IP for a growing delay (`429 login_throttled` with
    /// `Retry-After`, audited as `auth.login_throttled`). Audited as `auth.login`.
    #[oai(path = "/v1/auth/login", method = "post", operation_id = "auth.login")]
    async fn login(
        &self,
        state: Data<&AppState>,
        client: Data<&ClientInfo>,
        limiters: Data<&Arc<Limiters>>,
        body: Json<LoginIn>,
    ) -> Result<TokenResponse, LoginErrors> {
        limiters.check_login_account(&body.email)?;
        let b = body.0;
        let pair = accounts::login(
            &state.db,
            &state.keyring,
            state.config.refresh_token_ttl_s,
            &crate::domain::throttle::Policy::from_config(&state.config),
            &b.email,
            b.password,
            &client.audit(),
        )
        .await?;
        Ok(TokenResponse::Ok(Json(pair.into())))
    }

    /// Rotate a refresh token
    ///
    /// Spends the refresh token and returns a new pair. Presenting a token that was already
    /// spent revokes every token descended from the same login (RFC 9700 §4.14) and answers
    /// `401 invalid_refresh_token`, as do unknown, expired and revoked tokens.
    #[oai(
        path = "/v1/auth/refresh",
        method = "post",
        operation_id = "auth.refresh"
    )]
    async fn refresh(
        &self,
        state: Data<&AppState>,
        client: Data<&ClientInfo>,
        body: Json<RefreshIn>,
    ) -> Result<TokenResponse, LoginErrors> {
        let pair = accounts::refresh(
            &state.db,
            &state.auth_cache,
            &state.keyring,
            state.config.refresh_token_ttl_s,
            &body.refresh_token,
            &client.audit(),
        )
        .await?;
        Ok(TokenResponse::Ok(Json(pair.into())))
    }

    /// Log out
    ///
    /// Revokes the refresh token and every token rotated from the same login, and ends the
    /// account's access tokens at once on every node (other devices refresh to go on).
    #[oai(
        path = "/v1/auth/logout",
        method = "post",
        operation_id = "auth.logout"
    )]
    async fn logout(
        &self,
        state: Data<&AppState>,
        body: Json<RefreshIn>,
    ) -> Result<LogoutResponse, LogoutErrors> {
        accounts::logout(&state.db, &state.auth_cache, &body.refresh_token).await?;
        Ok(LogoutResponse::NoContent)
    }
}

/// What Swagger UI's *Try it out* starts from: a new account that can log in right away.
impl poem_openapi::types::Example for RegisterIn {
    fn example() -> Self {
        Self {
            email: "ada.lovelace@example.com".into(),
            password: "analytical-engine-1843".into(),
            display_name: "Ada Lovelace".into(),
        }
    }
}

/// The account of [`RegisterIn`]'s example.
impl poem_openapi::types::Example for LoginIn {
    fn example() -> Self {
        Self {
            email: "ada.lovelace@example.com".into(),
            password: "analytical-engine-1843".into(),
        }
    }
}

/// The shape of a refresh token (paste the one `auth.login` returned).
impl poem_openapi::types::Example for RefreshIn {
    fn example() -> Self {
        Self {
            refresh_token: "paste the refresh_token of auth.login".into(),
        }
    }
}
