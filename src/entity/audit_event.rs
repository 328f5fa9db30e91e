//! `audit_events`: append-only record of who did what to which target, from where.

use sea_orm::entity::prelude::*;

/// An audit event row. Never updated.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_events")]
pub struct Model {
    /// UUIDv7 (time-ordered; the list cursor).
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// The organization the event belongs to; `None` for account events (login, password).
    pub org_id: Option<Uuid>,
    /// `user` or `anonymous`.
    pub actor_type: String,
    /// The acting user, when known.
    pub actor_id: Option<Uuid>,
    /// Stable action name, e.g. `member.added`.
    pub action: String,
    /// `user`, `organization` or `membership`.
    pub target_type: String,
    /// The target's id, when there is one.
    pub target_id: Option<String>,
    /// For account events (`org_id` is `None`): the account concerned.
    pub subject_user_id: Option<Uuid>,
    /// `success` or `failure`.
    pub outcome: String,
    /// Client IP as seen by the server (see `trust_forwarded_for`).
    pub ip: Option<String>,
    /// Client `User-Agent`, truncated to 512 bytes.
    pub user_agent: Option<String>,
    /// The request's `X-Request-Id`.
    pub request_id: Option<String>,
    /// Action-specific details (never secrets).
    pub details: Json,
    /// When it happened (UTC).
    pub created_at: DateTimeUtc,
}

/// No relations are navigated through SeaORM.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
