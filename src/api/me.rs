//! `/v1/me`: the caller's own account.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::{ApiResponse, Object, OpenApi, param::Path, payload::Json};
use uuid::Uuid;

use super::{BearerAuth, Tag, audit::AuditEventOut};
use crate::{
    api_errors,
    domain::{accounts, orgs, verification},
    entity::{identity, user},
    http::middleware::ClientInfo,
    http::ratelimit::Limiters,
    state::AppState,
};

/// A user account as its owner sees it.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
pub struct UserOut {
    /// User id (UUIDv7).
    pub id: Uuid,
    /// The email address in its canonical form (lower case, NFC; see the README's email rules).
    pub email: String,
    /// Whether the owner proved the address (a verification link, or an SSO provider vouching
    /// for it). Unverified accounts cannot accept invitations.
    pub email_verified: bool,
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
            email_verified: u.email_verified_at.is_some(),
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
    /// New password, 10–256 characters. Changing it logs out every session: all refresh tokens
    /// are revoked and every access token ends at once.
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

/// A linked single sign-on identity.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
pub struct IdentityOut {
    /// The configured provider's name.
    pub provider: String,
    /// The provider's subject (`sub`) for this account.
    pub subject: String,
    /// The email the provider reported at the last login.
    pub email: Option<String>,
    /// When the identity was linked (RFC 3339, UTC).
    pub created_at: DateTime<Utc>,
    /// Last login through it (RFC 3339, UTC).
    pub last_login_at: DateTime<Utc>,
}

impl From<identity::Model> for IdentityOut {
    fn from(i: identity::Model) -> Self {
        Self {
            provider: i.provider,
            subject: i.subject,
            email: i.email,
            created_at: i.created_at,
            last_login_at: i.last_login_at,
        }
    }
}

/// A membership in the export.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ExportMembership {
    /// The organization.
    pub org_id: Uuid,
    /// Its name.
    pub org_name: Option<String>,
    /// The role held there.
    pub role: String,
    /// When the membership began (RFC 3339, UTC).
    pub joined_at: DateTime<Utc>,
}

/// Everything Agentdesk stores about the caller (GDPR Art. 15 and 20).
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
pub struct MeExport {
    /// The account.
    pub profile: UserOut,
    /// Whether the account has a password (single sign-on accounts may not).
    pub has_password: bool,
    /// Linked single sign-on identities.
    pub identities: Vec<IdentityOut>,
    /// Organization memberships.
    pub memberships: Vec<ExportMembership>,
    /// Audit events the caller acted in or that concern the account, oldest first.
    pub audit_events: Vec<AuditEventOut>,
}

/// The export.
#[derive(ApiResponse)]
pub enum MeExportResponse {
    /// The caller's data.
    #[oai(status = 200)]
    Ok(
        Json<MeExport>,
        /// `attachment; filename="agentdesk-export.json"`.
        #[oai(header = "Content-Disposition")]
        String,
    ),
}

/// A verification link was sent.
#[derive(ApiResponse)]
pub enum VerificationSent {
    /// Sent to the account's address.
    #[oai(status = 202)]
    Accepted,
}

/// Done, nothing to return.
#[derive(ApiResponse)]
pub enum MeNoContent {
    /// Done.
    #[oai(status = 204)]
    NoContent,
}

api_errors!(MeGetErrors {
    Unauthorized,
    Forbidden
});
api_errors!(MeDeleteErrors {
    Unauthorized,
    Forbidden,
    Conflict
});
api_errors!(MeLeaveErrors {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    Conflict
});
api_errors!(MeVerificationErrors {
    Unauthorized,
    Forbidden,
    Conflict
});
api_errors!(MeUpdateErrors {
    BadRequest,
    Unauthorized,
    Forbidden,
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
        let user = accounts::me(&state.db, auth.user()?).await?;
        Ok(MeResponse::Ok(Json(user.into())))
    }

    /// Log out everywhere
    ///
    /// Revokes every refresh token of the caller's account (all devices and logins) and ends
    /// every access token at once, on every node. Audited as `auth.logout_all`.
    #[oai(
        path = "/v1/me/logout-all",
        method = "post",
        operation_id = "me.logout_all"
    )]
    async fn logout_all(
        &self,
        state: Data<&AppState>,
        client: Data<&ClientInfo>,
        auth: BearerAuth,
    ) -> Result<MeNoContent, MeGetErrors> {
        let user_id = auth.user()?;
        accounts::me(&state.db, user_id).await?;
        accounts::logout_all(&state.db, &state.auth_cache, user_id, &client.audit()).await?;
        Ok(MeNoContent::NoContent)
    }

    /// Export the caller's data
    ///
    /// Everything Agentdesk stores about the caller as one JSON document: profile, linked
    /// identities, memberships and the audit events the caller acted in or that concern the
    /// account (GDPR Art. 15 and 20).
    #[oai(path = "/v1/me/export", method = "get", operation_id = "me.export")]
    async fn export(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
    ) -> Result<MeExportResponse, MeGetErrors> {
        let e = accounts::export(&state.db, auth.user()?).await?;
        let has_password = e.user.password_hash.is_some();
        let body = MeExport {
            profile: e.user.into(),
            has_password,
            identities: e.identities.into_iter().map(Into::into).collect(),
            memberships: e
                .memberships
                .into_iter()
                .map(|(m, o)| ExportMembership {
                    org_id: m.org_id,
                    org_name: o.map(|o| o.name),
                    role: m.role,
                    joined_at: m.created_at,
                })
                .collect(),
            audit_events: e.audit_events.into_iter().map(Into::into).collect(),
        };
        Ok(MeExportResponse::Ok(
            Json(body),
            "attachment; filename=\"agentdesk-export.json\"".into(),
        ))
    }

    /// Erase the caller's account
    ///
    /// Erases the account's personal data in one transaction: email and name are replaced,
    /// the password, linked identities, memberships and refresh tokens are deleted. Audit
    /// events stay, with the caller replaced by a pseudonym (`actor.type` `erased_user`) and
    /// without IP or user agent. The API keys and pending invitations the caller made (or
    /// their keys made) in every organization are revoked with it (audited in each as
    /// `api_key.revoked` / `invitation.revoked` with reason `grantor_lost_rights`). Refused
    /// with `409 last_owner` while the caller is the only owner of an organization. Audited
    /// as `user.erased`.
    #[oai(path = "/v1/me", method = "delete", operation_id = "me.delete")]
    async fn delete(
        &self,
        state: Data<&AppState>,
        client: Data<&ClientInfo>,
        auth: BearerAuth,
    ) -> Result<MeNoContent, MeDeleteErrors> {
        accounts::erase(
            &state.db,
            &state.rbac,
            &state.auth_cache,
            auth.user()?,
            &client.audit(),
        )
        .await?;
        Ok(MeNoContent::NoContent)
    }

    /// Update the caller's account
    ///
    /// Changes the display name and/or the password. A password change needs
    /// `current_password` (`422` naming it when missing or wrong; attempts are limited per account
    /// like logins, `429`), revokes every refresh token of the account, ends every access token
    /// at once (this one included: log in again with the new password) and is audited as
    /// `user.password_changed`.
    #[oai(path = "/v1/me", method = "patch", operation_id = "me.update")]
    async fn update(
        &self,
        state: Data<&AppState>,
        client: Data<&ClientInfo>,
        limiters: Data<&Arc<Limiters>>,
        auth: BearerAuth,
        body: Json<MePatch>,
    ) -> Result<MeResponse, MeUpdateErrors> {
        let b = body.0;
        if b.current_password.is_some() {
            // A stolen access token must not turn into unlimited password guessing.
            limiters.check_login_account(&auth.user()?.to_string())?;
        }
        let change = accounts::MeUpdate {
            display_name: b.display_name,
            new_password: b.new_password,
            current_password: b.current_password,
        };
        let user = accounts::update_me(
            &state.db,
            &state.auth_cache,
            auth.user()?,
            change,
            &client.audit(),
        )
        .await?;
        Ok(MeResponse::Ok(Json(user.into())))
    }

    /// Leave an organization
    ///
    /// Ends the caller's membership of the organization: no permission is needed, only the
    /// membership. The organization's only owner cannot leave (`409 last_owner`: make someone
    /// else owner, or delete the organization). The API keys and pending invitations the
    /// caller made there (or their keys made) are revoked with it, each audited as
    /// `api_key.revoked` / `invitation.revoked` with reason `grantor_lost_rights`. Audited in
    /// the organization as `member.left`. `404` when the caller is not a member.
    #[oai(
        path = "/v1/me/memberships/:org_id",
        method = "delete",
        operation_id = "me.leave_org"
    )]
    async fn leave_org(
        &self,
        state: Data<&AppState>,
        client: Data<&ClientInfo>,
        auth: BearerAuth,
        /// The organization to leave.
        org_id: Path<Uuid>,
    ) -> Result<MeNoContent, MeLeaveErrors> {
        let user = auth.user()?;
        orgs::leave(
            &state.db,
            &state.rbac,
            &state.auth_cache,
            user,
            org_id.0,
            &client.audit(),
        )
        .await?;
        Ok(MeNoContent::NoContent)
    }

    /// Send a new verification link
    ///
    /// Mails a new link for the caller's email address (`auth.verify_email` spends it).
    /// `409 email_already_verified` when there is nothing to prove. Limited per account like
    /// logins (`429`).
    #[oai(
        path = "/v1/me/email-verification",
        method = "post",
        operation_id = "me.send_verification"
    )]
    async fn send_verification(
        &self,
        state: Data<&AppState>,
        limiters: Data<&Arc<Limiters>>,
        auth: BearerAuth,
    ) -> Result<VerificationSent, MeVerificationErrors> {
        let user = auth.user()?;
        limiters.check_login_account(&user.to_string())?;
        let links = verification::Links::from_config(&state.config);
        verification::resend(&state.db, state.mailer.as_ref(), &links, user).await?;
        Ok(VerificationSent::Accepted)
    }
}
