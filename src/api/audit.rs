//! `/v1/orgs/{org_id}/audit-events`: the org's audit log, newest first.

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::{
    ApiResponse, Object, OpenApi,
    param::{Path, Query},
    payload::Json,
};
use uuid::Uuid;

use super::{OrgAuth, Tag, access};
use crate::{
    api_errors,
    auth::rbac,
    domain::{audit, page::PageRequest},
    entity::audit_event,
    state::AppState,
};

/// Who acted.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
pub struct AuditActor {
    /// `user`, `api_key`, `anonymous` (e.g. a failed login) or `erased_user` (an account
    /// erased by `me.delete`; `id` is then a pseudonym, the same on all of its events).
    #[oai(rename = "type")]
    pub type_: String,
    /// The acting user's or API key's id, when known.
    pub id: Option<Uuid>,
}

/// What was acted on.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
pub struct AuditTarget {
    /// `user`, `organization`, `membership` (id = the member's user id), `agent`, `session`,
    /// `command`, `job`, `role`, `api_key` or `invitation`.
    #[oai(rename = "type")]
    pub type_: String,
    /// The target's id, when there is one.
    pub id: Option<String>,
}

/// One audit event.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
pub struct AuditEventOut {
    /// Event id (UUIDv7).
    pub id: Uuid,
    /// Stable action name: `auth.login`, `auth.refresh_token_reused`, `user.registered`,
    /// `user.password_changed`, `org.created`, `org.updated`, `org.deleted`, `member.added`,
    /// `member.updated`, `member.removed`, `agent.created`, `agent.updated`, `agent.deleted`,
    /// `session.created`, `session.stopped`, `command.denied`, `job.retried`,
    /// `auth.login_throttled`, `auth.logout_all`, `user.identity_linked`, `user.erased`,
    /// `role.created`, `role.updated`, `role.deleted`, `api_key.created`, `api_key.revoked`,
    /// `invitation.created`, `invitation.revoked`, `invitation.accepted`.
    pub action: String,
    /// `success` or `failure`.
    pub outcome: String,
    /// Who acted.
    pub actor: AuditActor,
    /// What was acted on.
    pub target: AuditTarget,
    /// Client IP address.
    pub ip: Option<String>,
    /// Client `User-Agent`.
    pub user_agent: Option<String>,
    /// The request's `X-Request-Id`.
    pub request_id: Option<String>,
    /// Action-specific details, e.g. `{"from": "viewer", "to": "admin"}`.
    pub details: serde_json::Value,
    /// When it happened (RFC 3339, UTC).
    pub created_at: DateTime<Utc>,
}

impl From<audit_event::Model> for AuditEventOut {
    fn from(e: audit_event::Model) -> Self {
        Self {
            id: e.id,
            action: e.action,
            outcome: e.outcome,
            actor: AuditActor {
                type_: e.actor_type,
                id: e.actor_id,
            },
            target: AuditTarget {
                type_: e.target_type,
                id: e.target_id,
            },
            ip: e.ip,
            user_agent: e.user_agent,
            request_id: e.request_id,
            details: e.details,
            created_at: e.created_at,
        }
    }
}

/// A page of audit events.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
pub struct AuditEventList {
    /// The events, newest first.
    pub items: Vec<AuditEventOut>,
    /// Pass as `cursor` to get the next (older) page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// A page of audit events.
#[derive(ApiResponse)]
pub enum AuditListResponse {
    /// The page.
    #[oai(status = 200)]
    Ok(Json<AuditEventList>),
}

api_errors!(AuditListErrors {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound
});

/// The audit operations.
pub struct AuditApi;

#[OpenApi(tag = "Tag::Audit")]
impl AuditApi {
    /// List audit events
    ///
    /// Needs `audit:read`. Newest first: the organization's own events plus account events
    /// (logins, password changes) of its current members. Filter by `action`, `actor_id` and
    /// a time range (`since` inclusive, `until` exclusive).
    #[oai(
        path = "/v1/orgs/:org_id/audit-events",
        method = "get",
        operation_id = "audit.list"
    )]
    #[allow(clippy::too_many_arguments)]
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
        /// Only events with this action, e.g. `member.added`.
        action: Query<Option<String>>,
        /// Only events whose actor (a user or an API key) has this id.
        actor_id: Query<Option<Uuid>>,
        /// Only events at or after this time (RFC 3339).
        since: Query<Option<DateTime<Utc>>>,
        /// Only events before this time (RFC 3339). A range with `until` ≤ `since` is empty.
        until: Query<Option<DateTime<Utc>>>,
    ) -> Result<AuditListResponse, AuditListErrors> {
        access(&state, &auth, org_id.0, rbac::AUDIT_READ).await?;
        let page = PageRequest::new(limit.0, cursor.0.as_deref())?;
        let filter = audit::Filter {
            action: action.0,
            actor_id: actor_id.0,
            since: since.0,
            until: until.0,
        };
        let page = audit::list(&state.db, org_id.0, &filter, page).await?;
        Ok(AuditListResponse::Ok(Json(AuditEventList {
            items: page.items.into_iter().map(Into::into).collect(),
            next_cursor: page.next_cursor,
        })))
    }
}
