//! `/v1/orgs/{org_id}/members`: who belongs to an org and with which role. Only owners grant
//! or take `owner`; an org never loses its last owner. Nobody is added without consent:
//! people join by accepting an invitation, and leave with `me.leave_org`.

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::{
    ApiResponse, Object, OpenApi,
    param::{Path, Query},
    payload::Json,
};
use uuid::Uuid;

use super::{OrgAuth, Tag, access, invitations::InvitationCreatedOut};
use crate::{
    api_errors,
    auth::rbac,
    domain::{
        orgs::{self, Member},
        page::PageRequest,
    },
    http::middleware::ClientInfo,
    state::AppState,
};

/// A member of an organization.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
pub struct MemberOut {
    /// The member's user id.
    pub user_id: Uuid,
    /// The member's email.
    pub email: String,
    /// The member's display name.
    pub display_name: String,
    /// The member's role: built-in (`owner`, `admin`, `operator`, `viewer`) or custom.
    pub role: String,
    /// When the user joined (RFC 3339, UTC).
    pub joined_at: DateTime<Utc>,
    /// When the role last changed (RFC 3339, UTC).
    pub updated_at: DateTime<Utc>,
}

impl From<Member> for MemberOut {
    fn from(m: Member) -> Self {
        Self {
            user_id: m.user.id,
            email: m.user.email,
            display_name: m.user.display_name,
            role: m.membership.role,
            joined_at: m.membership.created_at,
            updated_at: m.membership.updated_at,
        }
    }
}

/// `members.add` request.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
pub struct MemberIn {
    /// The invitee's email address (any address: the answer does not say whether it has an
    /// account).
    /// Beyond the pattern, addresses that read like another are refused (422 naming the field):
    /// invisible or formatting characters (zero-width, bidi controls), fullwidth and other
    /// compatibility forms, symbols, a local part mixing scripts or written in look-alike
    /// letters of another script, a domain that is not valid IDNA. Compared lower-cased, NFC.
    #[oai(validator(
        max_length = 320,
        pattern = r"^\s*[^\s@\u0000-\u001F\u007F-\u009F]+@[^\s@.\u0000-\u001F\u007F-\u009F](?:[^\s@\u0000-\u001F\u007F-\u009F]*[^\s@.\u0000-\u001F\u007F-\u009F])?\s*$"
    ))]
    pub email: String,
    /// Role to grant: built-in or custom (`roles.list`). `owner` needs `members:owner`; a
    /// role holding a permission the caller lacks is refused (403).
    #[oai(validator(pattern = "^[a-z][a-z0-9_-]{0,63}$"))]
    pub role: String,
}

/// `members.update` request.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
pub struct MemberRoleIn {
    /// The new role, built-in or custom; granting or taking `owner` needs `members:owner`,
    /// and neither the old nor the new role may hold a permission the caller lacks.
    #[oai(validator(pattern = "^[a-z][a-z0-9_-]{0,63}$"))]
    pub role: String,
}

/// A page of members.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
pub struct MemberList {
    /// The members, in user-id order.
    pub items: Vec<MemberOut>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// `members.add` success.
#[derive(ApiResponse)]
pub enum MemberCreated {
    /// Not returned since 2026-11-29 (joining takes the person's consent: `members.add` now
    /// invites and answers 202). Kept in the contract so that clients written against the
    /// earlier one still build.
    #[oai(status = 201)]
    Created(
        Json<MemberOut>,
        /// The membership's URL.
        #[oai(header = "Location")]
        String,
    ),
    /// An invitation was created, as `invitations.create` does: the person becomes a member
    /// when they accept it with the token (`invitations.accept`).
    #[oai(status = 202)]
    Invited(
        Json<InvitationCreatedOut>,
        /// The invitation's URL.
        #[oai(header = "Location")]
        String,
    ),
}

/// `members.add`, deprecated on 2026-11-29 (`invitations.create` replaces it: joining takes
/// the person's consent), sunset 2027-06-01.
pub const ADD_DEPRECATION: crate::http::deprecation::Deprecation = super::deprecated_for_consent(
    "POST",
    "/v1/orgs/{org_id}/members",
    "/docs/#/Invitations/invitations.create",
);

/// One member.
#[derive(ApiResponse)]
pub enum MemberResponse {
    /// The member.
    #[oai(status = 200)]
    Ok(Json<MemberOut>),
}

/// A page of members.
#[derive(ApiResponse)]
pub enum MemberListResponse {
    /// The page.
    #[oai(status = 200)]
    Ok(Json<MemberList>),
}

/// Removed.
#[derive(ApiResponse)]
pub enum MemberRemoved {
    /// The user is no longer a member.
    #[oai(status = 204)]
    NoContent,
}

api_errors!(MemberListErrors {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound
});
api_errors!(MemberWriteErrors {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    Conflict,
    PayloadTooLarge,
    UnsupportedMediaType,
    Unprocessable
});
api_errors!(MemberRemoveErrors {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    Conflict
});

/// The membership operations.
pub struct MembersApi;

#[OpenApi(tag = "Tag::Members")]
impl MembersApi {
    /// List members
    ///
    /// Needs `members:read`. Cursor-paginated in user-id order.
    #[oai(
        path = "/v1/orgs/:org_id/members",
        method = "get",
        operation_id = "members.list"
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
    ) -> Result<MemberListResponse, MemberListErrors> {
        access(&state, &auth, org_id.0, rbac::MEMBERS_READ).await?;
        let page = PageRequest::new(limit.0, cursor.0.as_deref())?;
        let page = orgs::list_members(&state.db, org_id.0, page).await?;
        Ok(MemberListResponse::Ok(Json(MemberList {
            items: page.items.into_iter().map(Into::into).collect(),
            next_cursor: page.next_cursor,
        })))
    }

    /// Invite a member (deprecated: use `invitations.create`)
    ///
    /// Needs `members:write` (`members:owner` to invite as `owner`). Joining an organization
    /// takes the person's consent, so this no longer adds anyone: it creates an invitation
    /// exactly as `invitations.create` does (default lifetime) and answers `202` with it, for
    /// any address, whether or not it has an account. `409 already_member` when a member has
    /// the email. Audited as `invitation.created`. Deprecated since 2026-11-29, sunset
    /// 2027-06-01.
    #[oai(
        path = "/v1/orgs/:org_id/members",
        method = "post",
        operation_id = "members.add",
        deprecated
    )]
    async fn add(
        &self,
        state: Data<&AppState>,
        client: Data<&ClientInfo>,
        auth: OrgAuth,
        /// Organization id.
        org_id: Path<Uuid>,
        body: Json<MemberIn>,
    ) -> Result<MemberCreated, MemberWriteErrors> {
        let a = access(&state, &auth, org_id.0, rbac::MEMBERS_WRITE).await?;
        let (out, location) =
            super::invitations::invite(&state, &client, a, &body.email, &body.role, None).await?;
        Ok(MemberCreated::Invited(Json(out), location))
    }

    /// Change a member's role
    ///
    /// Needs `members:write` (`members:owner` to grant or take `owner`). Demoting the last
    /// owner answers `409 last_owner`. API keys and pending invitations the member made (or
    /// their keys made) that the new role no longer covers are revoked in the same
    /// transaction, each audited as `api_key.revoked` / `invitation.revoked` with reason
    /// `grantor_lost_rights`. Audited as `member.updated`.
    #[oai(
        path = "/v1/orgs/:org_id/members/:user_id",
        method = "put",
        operation_id = "members.update"
    )]
    async fn update(
        &self,
        state: Data<&AppState>,
        client: Data<&ClientInfo>,
        auth: OrgAuth,
        /// Organization id.
        org_id: Path<Uuid>,
        /// The member's user id.
        user_id: Path<Uuid>,
        body: Json<MemberRoleIn>,
    ) -> Result<MemberResponse, MemberWriteErrors> {
        let access = access(&state, &auth, org_id.0, rbac::MEMBERS_WRITE).await?;
        let ctx = client.audit().as_subject(&access.subject);
        let member = orgs::update_member(
            &state.db,
            &state.rbac,
            &state.auth_cache,
            access,
            user_id.0,
            &body.role,
            &ctx,
        )
        .await?;
        Ok(MemberResponse::Ok(Json(member.into())))
    }

    /// Remove a member
    ///
    /// Needs `members:write` (`members:owner` to remove an owner). Removing the last owner
    /// answers `409 last_owner`. The API keys and pending invitations the member made (or
    /// their keys made) are revoked in the same transaction, each audited as
    /// `api_key.revoked` / `invitation.revoked` with reason `grantor_lost_rights`. Audited as
    /// `member.removed`.
    #[oai(
        path = "/v1/orgs/:org_id/members/:user_id",
        method = "delete",
        operation_id = "members.remove"
    )]
    async fn remove(
        &self,
        state: Data<&AppState>,
        client: Data<&ClientInfo>,
        auth: OrgAuth,
        /// Organization id.
        org_id: Path<Uuid>,
        /// The member's user id.
        user_id: Path<Uuid>,
    ) -> Result<MemberRemoved, MemberRemoveErrors> {
        let access = access(&state, &auth, org_id.0, rbac::MEMBERS_WRITE).await?;
        let ctx = client.audit().as_subject(&access.subject);
        orgs::remove_member(
            &state.db,
            &state.rbac,
            &state.auth_cache,
            access,
            user_id.0,
            &ctx,
        )
        .await?;
        Ok(MemberRemoved::NoContent)
    }
}
