//! `/v1/me`: the caller's own account.

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::{ApiResponse, Object, OpenApi, payload::Json};
use uuid::Uuid;

use super::{BearerAuth, Tag};
use crate::{
    api_errors, app::AppState, domain::accounts, entity::user, http::middleware::ClientInfo,
};

/// A user account as its owner sees it.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
pub struct UserOut {
    /// User id (UUIDv7).
    pub id: Uuid,
    /// Normalised (lower-case) email.
    pub email: String,
    /// Display name.
    pub display_name: String,
    /// When the account was created (RFC 3339, UTC).
    pub created_at: DateTime<Utc>,
    /// When the account last changed (RFC 3339, UTC).
    pub updated_at: DateTime<Utc>,
}

impl From<user::Model> for UserOut {
    fn from(u: user::Model) -> Self {
        Self {
            id: u.id,
            email: u.email,
            display_name: u.display_name,
            created_at: u.created_at,
            updated_at: u.updated_at,
        }
    }
}

/// `me.update` request: every field optional.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
pub struct MePatch {
    /// New display name, 1–200 characters, not blank, no control characters.
    #[oai(validator(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$"
    ))]
    pub display_name: Option<String>,
    /// The current password: required with `new_password`.
    #[oai(validator(max_length = 256))]
    pub current_password: Option<String>,
    /// New password, 10–256 characters. Changing it logs out every session (all refresh tokens
    /// are revoked).
    #[oai(validator(min_length = 10, max_length = 256))]
    pub new_password: Option<String>,
}

/// The caller's account.
#[derive(ApiResponse)]
pub enum MeResponse {
    /// The account.
    #[oai(status = 200)]
    Ok(Json<UserOut>),
}

api_errors!(MeGetErrors { Unauthorized });
api_errors!(MeUpdateErrors {
    BadRequest,
    Unauthorized,
    PayloadTooLarge,
    UnsupportedMediaType,
    Unprocessable
});

/// The `/v1/me` operations.
pub struct MeApi;

#[OpenApi(tag = "Tag::Me")]
impl MeApi {
    /// Get the caller's account
    ///
    /// `401 invalid_token` when the token is missing, invalid or expired, or the account is gone.
    #[oai(path = "/v1/me", method = "get", operation_id = "me.get")]
    async fn get(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
    ) -> Result<MeResponse, MeGetErrors> {
        let user = accounts::me(&state.db, auth.0.user_id).await?;
        Ok(MeResponse::Ok(Json(user.into())))
    }

    /// Update the caller's account
    ///
    /// Changes the display name and/or the password. A password change needs
    /// `current_password` (`422` naming it when missing or wrong; attempts are limited per account
    /// like logins, `429`), revokes every refresh token of the account and is audited as
    /// `user.password_changed`.
    #[oai(path = "/v1/me", method = "patch", operation_id = "me.update")]
    async fn update(
        &self,
        state: Data<&AppState>,
        client: Data<&ClientInfo>,
        auth: BearerAuth,
        body: Json<MePatch>,
    ) -> Result<MeResponse, MeUpdateErrors> {
        let b = body.0;
        if b.current_password.is_some() {
            // A stolen access token must not turn into unlimited password guessing.
            state
                .limiters
                .check_login_account(&auth.0.user_id.to_string())?;
        }
        let change = accounts::MeUpdate {
            display_name: b.display_name,
            new_password: b.new_password,
            current_password: b.current_password,
        };
        let user = accounts::update_me(&state.db, auth.0.user_id, change, &client.audit()).await?;
        Ok(MeResponse::Ok(Json(user.into())))
    }
}
