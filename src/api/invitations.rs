//! `/v1/orgs/{org_id}/invitations` and `/v1/invitations/{token}/accept`: invite someone by
//! email with a role; they accept with the one-time token while logged in as that email.

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::{
    ApiResponse, Object, OpenApi,
    param::{Path, Query},
    payload::Json,
};
use uuid::Uuid;

use super::{BearerAuth, OrgAuth, Tag, access};
use crate::{
    api_errors,
    auth::rbac,
    domain::{invitations, page::PageRequest},
    entity::invitation,
    http::middleware::ClientInfo,
    state::AppState,
};

/// An invitation, without its token.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
pub struct InvitationOut {
    /// Invitation id (UUIDv7).
    pub id: Uuid,
    /// The invited email address (normalised).
    pub email: String,
    /// The role granted on acceptance.
    pub role: String,
    /// `pending`, `accepted`, `revoked` or `expired`.
    pub status: String,
    /// The member who invited (absent when an API key did).
    pub invited_by: Option<Uuid>,
    /// Creation time (RFC 3339, UTC).
    pub created_at: DateTime<Utc>,
    /// Expiry (RFC 3339, UTC).
    pub expires_at: DateTime<Utc>,
    /// When it was accepted.
    pub accepted_at: Option<DateTime<Utc>>,
    /// The user who accepted it.
    pub accepted_by: Option<Uuid>,
    /// When it was revoked.
    pub revoked_at: Option<DateTime<Utc>>,
}

impl From<invitation::Model> for InvitationOut {
    fn from(i: invitation::Model) -> Self {
        Self {
            status: invitations::status(&i, Utc::now()).as_str().to_owned(),
            id: i.id,
            email: i.email,
            role: i.role,
            invited_by: i.invited_by,
            created_at: i.created_at,
            expires_at: i.expires_at,
            accepted_at: i.accepted_at,
            accepted_by: i.accepted_by,
            revoked_at: i.revoked_at,
        }
    }
}

/// A new invitation with its one-time token.
#[derive(Object)]
pub struct InvitationCreatedOut {
    /// The invitation's fields.
    #[oai(flatten)]
    pub invitation: InvitationOut,
    /// The one-time token (`inv_…`), shown only here. Deliver it to the invitee; it is
    /// accepted with `invitations.accept`.
    pub token: String,
    /// A link for the invitee: `<frontend_url>/invitations/accept#token=<token>` (the token
    /// rides in the fragment, which browsers never send to a server).
    pub accept_url: String,
}

/// `invitations.create` request.
#[derive(Object)]
#[oai(skip_serializing_if_is_none, example)]
pub struct InvitationIn {
    /// The invitee's email address; they accept while logged in with it, verified.
    /// Beyond the pattern, addresses that read like another are refused (422 naming the field):
    /// invisible or formatting characters (zero-width, bidi controls), fullwidth and other
    /// compatibility forms, symbols, a local part mixing scripts or written in look-alike
    /// letters of another script, a domain that is not valid IDNA. Compared lower-cased, NFC.
    #[oai(validator(
        max_length = 320,
        pattern = r"^\s*[^\s@\u0000-\u001F\u007F-\u009F]+@[^\s@.\u0000-\u001F\u007F-\u009F](?:[^\s@\u0000-\u001F\u007F-\u009F]*[^\s@.\u0000-\u001F\u007F-\u009F])?\s*$"
    ))]
    pub email: String,
    /// Role granted on acceptance, built-in or custom; `owner` needs `members:owner`, and a
    /// role holding a permission the caller lacks is refused (403).
    #[oai(validator(pattern = "^[a-z][a-z0-9_-]{0,63}$"))]
    pub role: String,
    /// Lifetime (s), 60 to 2,592,000 (30 days); default 604,800 (7 days).
    #[oai(validator(minimum(value = "60"), maximum(value = "2592000")))]
    pub expires_in_s: Option<u64>,
}

/// A page of invitations.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
pub struct InvitationList {
    /// The invitations, newest first.
    pub items: Vec<InvitationOut>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// What accepting produced.
#[derive(Object)]
pub struct InvitationAccepted {
    /// The organization joined.
    pub org_id: Uuid,
    /// The role granted there.
    pub role: String,
    /// When the membership began (RFC 3339, UTC).
    pub joined_at: DateTime<Utc>,
}

/// Creates an invitation as the authorized caller `a` and returns its body and URL
/// (`invitations.create`, and `members.add`, which now invites).
pub(super) async fn invite(
    state: &AppState,
    client: &ClientInfo,
    a: crate::domain::orgs::Access,
    email: &str,
    role: &str,
    expires_in_s: Option<u64>,
) -> crate::error::AppResult<(InvitationCreatedOut, String)> {
    let ctx = client.audit().as_subject(&a.subject);
    let org = a.org_id;
    let limits = invitations::Limits {
        max_pending_per_org: state.config.max_pending_invitations_per_org,
    };
    let created = invitations::create(
        &state.db,
        &state.rbac,
        a,
        &limits,
        email,
        role,
        expires_in_s,
        &ctx,
    )
    .await?;
    let location = format!("/v1/orgs/{org}/invitations/{}", created.invitation.id);
    let accept_url = format!(
        "{}/invitations/accept#token={}",
        state.config.frontend_url(),
        created.token
    );
    Ok((
        InvitationCreatedOut {
            invitation: created.invitation.into(),
            token: created.token,
            accept_url,
        },
        location,
    ))
}

/// Created.
#[derive(ApiResponse)]
pub enum InvitationCreated {
    /// Created; the token is in the body, once.
    #[oai(status = 201)]
    Created(
        Json<InvitationCreatedOut>,
        /// The invitation's URL.
        #[oai(header = "Location")]
        String,
    ),
}

/// A page of invitations.
#[derive(ApiResponse)]
pub enum InvitationListResponse {
    /// The page.
    #[oai(status = 200)]
    Ok(Json<InvitationList>),
}

/// Revoked.
#[derive(ApiResponse)]
pub enum InvitationRevoked {
    /// The invitation can no longer be accepted (also when it already could not).
    #[oai(status = 204)]
    NoContent,
}

/// Accepted.
#[derive(ApiResponse)]
pub enum InvitationAcceptResponse {
    /// The caller is now a member.
    #[oai(status = 200)]
    Ok(Json<InvitationAccepted>),
}

api_errors!(InvitationCreateErrors {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    Conflict,
    PayloadTooLarge,
    UnsupportedMediaType,
    Unprocessable
});
api_errors!(InvitationReadErrors {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound
});
api_errors!(InvitationRevokeErrors {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    Conflict
});
api_errors!(InvitationAcceptErrors {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    Conflict,
    Gone
});

/// The invitation operations.
pub struct InvitationsApi;

#[OpenApi(tag = "Tag::Invitations")]
impl InvitationsApi {
    /// Invite someone
    ///
    /// Needs `members:write`. Returns a one-time token and an accept URL to deliver (no email
    /// is sent). `409 already_member` when a member has the email. Audited as
    /// `invitation.created`.
    #[oai(
        path = "/v1/orgs/:org_id/invitations",
        method = "post",
        operation_id = "invitations.create"
    )]
    async fn create(
        &self,
        state: Data<&AppState>,
        client: Data<&ClientInfo>,
        auth: OrgAuth,
        /// Organization id.
        org_id: Path<Uuid>,
        body: Json<InvitationIn>,
    ) -> Result<InvitationCreated, InvitationCreateErrors> {
        let a = access(&state, &auth, org_id.0, rbac::MEMBERS_WRITE).await?;
        let b = body.0;
        let (out, location) = invite(&state, &client, a, &b.email, &b.role, b.expires_in_s).await?;
        Ok(InvitationCreated::Created(Json(out), location))
    }

    /// List invitations
    ///
    /// Needs `members:read`. Newest first, with each one's status.
    #[oai(
        path = "/v1/orgs/:org_id/invitations",
        method = "get",
        operation_id = "invitations.list"
    )]
    async fn list(
        &self,
        state: Data<&AppState>,
        auth: OrgAuth,
        /// Organization id.
        org_id: Path<Uuid>,
        /// Page size, 1–200 (default 50).
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))]
        limit: Query<Option<u32>>,
        /// `next_cursor` from the previous page.
        cursor: Query<Option<String>>,
    ) -> Result<InvitationListResponse, InvitationReadErrors> {
        let a = access(&state, &auth, org_id.0, rbac::MEMBERS_READ).await?;
        let page = PageRequest::new(limit.0, cursor.0.as_deref())?;
        let page = invitations::list(&state.db, a.org_id, page).await?;
        Ok(InvitationListResponse::Ok(Json(InvitationList {
            items: page.items.into_iter().map(Into::into).collect(),
            next_cursor: page.next_cursor,
        })))
    }

    /// Revoke an invitation
    ///
    /// Needs `members:write`, and, unless the caller made the invitation, every permission of
    /// its role (`members:owner` for `owner`; else `403 permission_denied` naming the first one
    /// lacking), as taking that role from a member would. Its token then answers `410
    /// invitation_revoked`. An accepted invitation cannot be revoked (`409 invitation_used`:
    /// remove the member instead). Audited as `invitation.revoked`.
    #[oai(
        path = "/v1/orgs/:org_id/invitations/:invitation_id",
        method = "delete",
        operation_id = "invitations.revoke"
    )]
    async fn revoke(
        &self,
        state: Data<&AppState>,
        client: Data<&ClientInfo>,
        auth: OrgAuth,
        /// Organization id.
        org_id: Path<Uuid>,
        /// Invitation id.
        invitation_id: Path<Uuid>,
    ) -> Result<InvitationRevoked, InvitationRevokeErrors> {
        let a = access(&state, &auth, org_id.0, rbac::MEMBERS_WRITE).await?;
        let ctx = client.audit().as_subject(&a.subject);
        invitations::revoke(&state.db, &state.rbac, a, invitation_id.0, &ctx).await?;
        Ok(InvitationRevoked::NoContent)
    }

    /// Accept an invitation
    ///
    /// By a logged-in user whose account email is the invited one (`403
    /// invitation_email_mismatch` otherwise) and verified (`403 email_not_verified`: an
    /// invitation goes to whoever receives mail at the address); makes them a member with the
    /// invitation's role.
    /// Used, revoked or expired tokens answer `410` (`invitation_used`, `invitation_revoked`,
    /// `invitation_expired`); unknown ones `404`. An invitation whose inviter (member or API
    /// key) no longer holds every permission of its role is revoked, here at the latest
    /// (`410 invitation_revoked`). Audited as `invitation.accepted` and
    /// `member.added`.
    #[oai(
        path = "/v1/invitations/:token/accept",
        method = "post",
        operation_id = "invitations.accept"
    )]
    async fn accept(
        &self,
        state: Data<&AppState>,
        client: Data<&ClientInfo>,
        auth: BearerAuth,
        /// The invitation token (`inv_…`).
        #[oai(validator(max_length = 128))]
        token: Path<String>,
    ) -> Result<InvitationAcceptResponse, InvitationAcceptErrors> {
        let user_id = auth.user()?;
        let done =
            invitations::accept(&state.db, &state.rbac, user_id, &token.0, &client.audit()).await?;
        Ok(InvitationAcceptResponse::Ok(Json(InvitationAccepted {
            org_id: done.org_id,
            role: done.role,
            joined_at: done.joined_at,
        })))
    }
}

/// A colleague invited as `operator` for a week.
impl poem_openapi::types::Example for InvitationIn {
    fn example() -> Self {
        Self {
            email: "charles.babbage@example.com".into(),
            role: "operator".into(),
            expires_in_s: Some(604_800),
        }
    }
}
