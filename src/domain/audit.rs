//! The audit log: append-only rows for logins, role and membership changes, org changes.
//! Written in the same transaction as the change they describe (a failed login is written
//! on its own). Details never contain secrets.

use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use uuid::Uuid;

use super::page::{Page, PageRequest};
use crate::{
    entity::{audit_event, membership},
    error::AppResult,
};

/// Who is acting and from where; built by the API layer from the request.
#[derive(Clone, Debug, Default)]
pub struct AuditCtx {
    /// The authenticated user, if any.
    pub actor_id: Option<Uuid>,
    /// Client IP.
    pub ip: Option<String>,
    /// Client `User-Agent` (truncated to 512 bytes).
    pub user_agent: Option<String>,
    /// `X-Request-Id`.
    pub request_id: Option<String>,
}

impl AuditCtx {
    /// The same context with `actor_id` set.
    pub fn as_actor(&self, user_id: Uuid) -> Self {
        Self {
            actor_id: Some(user_id),
            ..self.clone()
        }
    }
}

/// Target kinds.
pub mod target {
    /// A user account.
    pub const USER: &str = "user";
    /// An organization.
    pub const ORGANIZATION: &str = "organization";
    /// A membership (target id = the member's user id).
    pub const MEMBERSHIP: &str = "membership";
    /// An agent.
    pub const AGENT: &str = "agent";
    /// A session.
    pub const SESSION: &str = "session";
    /// A command (target id = the session id for refused commands, which have no id).
    pub const COMMAND: &str = "command";
    /// A background job.
    pub const JOB: &str = "job";
}

/// One event to record.
pub struct Event<'a> {
    /// Org the event belongs to; `None` for account events.
    pub org_id: Option<Uuid>,
    /// Stable action name (`member.added`).
    pub action: &'a str,
    /// Target kind (see [`target`]).
    pub target_type: &'a str,
    /// Target id.
    pub target_id: Option<Uuid>,
    /// Whether the action succeeded.
    pub success: bool,
    /// Extra JSON details (no secrets).
    pub details: serde_json::Value,
}

impl<'a> Event<'a> {
    /// An account event (login, registration, password change): no org, the user as target.
    /// Shown in the audit logs of the orgs the user belongs to.
    pub fn account(
        action: &'a str,
        user_id: Option<Uuid>,
        success: bool,
        details: serde_json::Value,
    ) -> Self {
        Self {
            org_id: None,
            action,
            target_type: target::USER,
            target_id: user_id,
            success,
            details,
        }
    }
}

/// Appends `event` with `ctx`.
pub async fn record(db: &impl ConnectionTrait, ctx: &AuditCtx, event: Event<'_>) -> AppResult<()> {
    let row = audit_event::ActiveModel {
        id: Set(Uuid::now_v7()),
        org_id: Set(event.org_id),
        actor_type: Set(if ctx.actor_id.is_some() {
            "user"
        } else {
            "anonymous"
        }
        .to_owned()),
        actor_id: Set(ctx.actor_id),
        action: Set(event.action.to_owned()),
        target_type: Set(event.target_type.to_owned()),
        target_id: Set(event.target_id.map(|t| t.to_string())),
        subject_user_id: Set(
            if event.org_id.is_none() && event.target_type == target::USER {
                event.target_id
            } else {
                None
            },
        ),
        outcome: Set(if event.success { "success" } else { "failure" }.to_owned()),
        ip: Set(ctx.ip.clone()),
        user_agent: Set(ctx.user_agent.clone()),
        request_id: Set(ctx.request_id.clone()),
        details: Set(event.details),
        created_at: Set(chrono::Utc::now()),
    };
    audit_event::Entity::insert(row)
        .exec_without_returning(db)
        .await?;
    Ok(())
}

/// An org's audit log, newest first: events recorded in the org plus account events (login,
/// password change) of its current members from the time they joined (never their history
/// from before). Filters: `action` exact match.
pub async fn list(
    db: &impl ConnectionTrait,
    org_id: Uuid,
    action: Option<&str>,
    page: PageRequest,
) -> AppResult<Page<audit_event::Model>> {
    use sea_orm::sea_query::{Expr, ExprTrait, Query};
    let member_since = Query::select()
        .expr(Expr::val(1))
        .from(membership::Entity)
        .and_where(Expr::col((membership::Entity, membership::Column::OrgId)).eq(org_id))
        .and_where(
            Expr::col((membership::Entity, membership::Column::UserId))
                .equals((audit_event::Entity, audit_event::Column::SubjectUserId)),
        )
        .and_where(
            Expr::col((membership::Entity, membership::Column::CreatedAt)).lte(Expr::col((
                audit_event::Entity,
                audit_event::Column::CreatedAt,
            ))),
        )
        .to_owned();
    let scope = Condition::any()
        .add(audit_event::Column::OrgId.eq(org_id))
        .add(
            Condition::all()
                .add(audit_event::Column::OrgId.is_null())
                .add(Expr::exists(member_since)),
        );
    let mut q = audit_event::Entity::find().filter(scope);
    if let Some(action) = action {
        q = q.filter(audit_event::Column::Action.eq(action));
    }
    if let Some(after) = page.after {
        q = q.filter(audit_event::Column::Id.lt(after));
    }
    let rows = q
        .order_by_desc(audit_event::Column::Id)
        .limit(page.fetch())
        .all(db)
        .await?;
    Ok(page.finish(rows, |r| r.id))
}
