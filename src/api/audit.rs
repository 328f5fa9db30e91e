//! `/v1/orgs/{org_id}/audit-events`: the org's audit log, newest first.

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::{
    ApiResponse, Enum, Object, OpenApi,
    param::{Path, Query},
    payload::Json,
    types::ParseFromParameter,
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

/// What kind of caller acted.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[oai(rename_all = "snake_case")]
pub enum AuditActorType {
    /// A user (`id` is the user id).
    User,
    /// An API key (`id` is the key id).
    ApiKey,
    /// Not authenticated (registration, a failed login).
    Anonymous,
    /// An account erased by `me.delete`: `id` is a pseudonym, the same on all of its events.
    ErasedUser,
}

/// What kind of thing was acted on.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[oai(rename_all = "snake_case")]
pub enum AuditTargetType {
    /// A user account.
    User,
    /// An organization.
    Organization,
    /// A membership (`id` is the member's user id).
    Membership,
    /// An agent.
    Agent,
    /// A session.
    Session,
    /// A command (`id` is the session's for a refused command, which has none).
    Command,
    /// A background job.
    Job,
    /// A custom role.
    Role,
    /// An API key.
    ApiKey,
    /// An invitation.
    Invitation,
}

/// How an audited attempt ended.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[oai(rename_all = "lowercase")]
pub enum AuditOutcome {
    /// It happened.
    Success,
    /// It was refused or failed (a wrong password, a denied command).
    Failure,
}

/// The API value of a stored audit column: the server writes only the names these enums list
/// (tested), so `fallback` answers a row changed outside the server, logged as an error.
fn stored<T: ParseFromParameter>(column: &str, value: &str, fallback: T) -> T {
    T::parse_from_parameter(value).unwrap_or_else(|_| {
        tracing::error!(
            column,
            value,
            "an audit row holds a name the API does not list"
        );
        fallback
    })
}

/// Who acted.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
pub struct AuditActor {
    /// What kind of caller.
    #[oai(rename = "type")]
    pub type_: AuditActorType,
    /// The acting user's or API key's id, when known.
    pub id: Option<Uuid>,
}

/// What was acted on.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
pub struct AuditTarget {
    /// What kind of thing.
    #[oai(rename = "type")]
    pub type_: AuditTargetType,
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
    /// How it ended.
    pub outcome: AuditOutcome,
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
            outcome: stored("outcome", &e.outcome, AuditOutcome::Failure),
            actor: AuditActor {
                type_: stored("actor_type", &e.actor_type, AuditActorType::Anonymous),
                id: e.actor_id,
            },
            target: AuditTarget {
                type_: stored("target_type", &e.target_type, AuditTargetType::Organization),
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

#[cfg(test)]
mod tests {
    use poem_openapi::types::ParseFromParameter;

    use super::{AuditActorType, AuditTargetType};
    use crate::domain::audit::{ActorType, ERASED_USER, target};

    #[test]
    fn every_stored_name_is_listed() {
        for t in target::ALL {
            assert!(AuditTargetType::parse_from_parameter(t).is_ok(), "{t}");
        }
        for a in [ActorType::Anonymous, ActorType::User, ActorType::ApiKey] {
            assert!(
                AuditActorType::parse_from_parameter(a.as_str()).is_ok(),
                "{a:?}"
            );
        }
        assert!(AuditActorType::parse_from_parameter(ERASED_USER).is_ok());
    }
}
