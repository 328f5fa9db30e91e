//! `commands`: actions asked of a session's desktop, claimed by its executor.

use sea_orm::entity::prelude::*;

/// A command row.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "commands")]
pub struct Model {
    /// UUIDv7 (claim order).
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// The owning organization.
    pub org_id: Uuid,
    /// The session it is for.
    pub session_id: Uuid,
    /// `screenshot`, `click`, `move`, `scroll`, `type`, `key`, `clipboard_set`, `shell`, `open_url`.
    pub kind: String,
    /// Kind-specific arguments (JSON object).
    pub args: Json,
    /// `queued`, `dispatched`, `succeeded`, `failed`, `cancelled` or `expired`.
    pub status: String,
    /// The executor's output, once finished.
    pub output: Option<Json>,
    /// The executor's error message, when failed.
    pub error: Option<String>,
    /// The user who asked for it.
    pub created_by: Option<Uuid>,
    /// A queued command not claimed by then expires (UTC).
    pub expires_at: DateTimeUtc,
    /// When an executor claimed it.
    pub dispatched_at: Option<DateTimeUtc>,
    /// When it reached a final status.
    pub completed_at: Option<DateTimeUtc>,
    /// Creation time (UTC).
    pub created_at: DateTimeUtc,
    /// Last change (UTC).
    pub updated_at: DateTimeUtc,
}

/// No relations are navigated through SeaORM.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
