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

/// What kind of caller acted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ActorType {
    /// Not authenticated (registration, failed logins).
    #[default]
    Anonymous,
    /// A user (`actor_id` is the user id).
    User,
    /// An API key (`actor_id` is the key id).
    ApiKey,
}

impl ActorType {
    /// The stored name: `anonymous`, `user`, `api_key`.
    pub fn as_str(self) -> &'static str {
        match self {
            ActorType::Anonymous => "anonymous",
            ActorType::User => "user",
            ActorType::ApiKey => "api_key",
        }
    }
}

/// Stored `actor_type` of rows whose actor erased their account (`me.delete`); their
/// `actor_id` is a pseudonym, the same for all of that account's rows.
pub const ERASED_USER: &str = "erased_user";

/// Who is acting and from where; built by the API layer from the request.
#[derive(Clone, Debug, Default)]
pub struct AuditCtx {
    /// The authenticated user or API key, if any.
    pub actor_id: Option<Uuid>,
    /// What `actor_id` is.
    pub actor_type: ActorType,
    /// Client IP.
    pub ip: Option<String>,
    /// Client `User-Agent` (truncated to 512 bytes).
    pub user_agent: Option<String>,
    /// `X-Request-Id`.
    pub request_id: Option<String>,
}

impl AuditCtx {
    /// The same context with the user as actor.
    pub fn as_actor(&self, user_id: Uuid) -> Self {
        Self {
            actor_id: Some(user_id),
            actor_type: ActorType::User,
            ..self.clone()
        }
    }

    /// The same context with `subject` (a user or an API key) as actor.
    pub fn as_subject(&self, subject: &crate::auth::Subject) -> Self {
        match subject {
            crate::auth::Subject::User(id) => self.as_actor(*id),
            crate::auth::Subject::ApiKey { id, .. } => Self {
                actor_id: Some(*id),
                actor_type: ActorType::ApiKey,
                ..self.clone()
            },
        }
    }

    /// The acting user, when the actor is a user (what `created_by` columns record).
    pub fn user_id(&self) -> Option<Uuid> {
        (self.actor_type == ActorType::User)
            .then_some(self.actor_id)
            .flatten()
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
    /// A custom role (target id = the role id).
    pub const ROLE: &str = "role";
    /// An API key.
    pub const API_KEY: &str = "api_key";
    /// An invitation.
    pub const INVITATION: &str = "invitation";

    /// Every target kind above (what the API's closed `AuditTarget.type` lists).
    pub const ALL: &[&str] = &[
        USER,
        ORGANIZATION,
        MEMBERSHIP,
        AGENT,
        SESSION,
        COMMAND,
        JOB,
        ROLE,
        API_KEY,
        INVITATION,
    ];
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
        actor_type: Set(ctx.actor_type.as_str().to_owned()),
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

/// Filters of [`list`]; all optional, combined with AND.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// Exact action name (`member.added`).
    pub action: Option<String>,
    /// The acting user's or API key's id.
    pub actor_id: Option<Uuid>,
    /// Events at or after this time (UTC).
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    /// Events before this time (UTC).
    pub until: Option<chrono::DateTime<chrono::Utc>>,
}

/// An org's audit log, newest first: events recorded in the org, plus the account events
/// (login, password change, logout) that its current members performed themselves, from the
/// time they joined (which took their consent: an invitation they accepted) and only while
/// they are members — never their history from before, never after they left, and never what
/// others did against their account (failed logins by third parties, with their IP and user
/// agent, stay in the member's own export). Narrowed by `filter`.
pub async fn list(
    db: &impl ConnectionTrait,
    org_id: Uuid,
    filter: &Filter,
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
    let by_the_member = Condition::all()
        .add(audit_event::Column::ActorType.eq(ActorType::User.as_str()))
        .add(
            Expr::col((audit_event::Entity, audit_event::Column::ActorId))
                .equals((audit_event::Entity, audit_event::Column::SubjectUserId)),
        );
    let scope = Condition::any()
        .add(audit_event::Column::OrgId.eq(org_id))
        .add(
            Condition::all()
                .add(audit_event::Column::OrgId.is_null())
                .add(by_the_member)
                .add(Expr::exists(member_since)),
        );
    let mut q = audit_event::Entity::find().filter(scope);
    if let Some(action) = &filter.action {
        q = q.filter(audit_event::Column::Action.eq(action.clone()));
    }
    if let Some(actor) = filter.actor_id {
        q = q.filter(audit_event::Column::ActorId.eq(actor));
    }
    if let Some(since) = filter.since {
        q = q.filter(audit_event::Column::CreatedAt.gte(since));
    }
    if let Some(until) = filter.until {
        q = q.filter(audit_event::Column::CreatedAt.lt(until));
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
