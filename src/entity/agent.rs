//! `agents`: an AI agent definition in an org. Its capabilities are casbin `p` rules on the
//! subject `agent:<id>` (see `auth::rbac`), not columns here.

use sea_orm::entity::prelude::*;

super::stored_enum! {
    /// Who performs an agent's commands (`agents.executor`).
    pub enum Executor {
        /// Agentdesk's own executor, over the RFB link to the session's desktop.
        Builtin = "builtin",
        /// An outside process that claims commands through `commands.claim`.
        External = "external",
    }
}

/// An agent row.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "agents")]
pub struct Model {
    /// UUIDv7.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// The owning organization.
    pub org_id: Uuid,
    /// Name, unique in the org, 1–200 characters.
    pub name: String,
    /// Free text, up to 2,000 characters ("" when none).
    pub description: String,
    /// The model the agent runs on, e.g. `claude-sonnet-4-5`.
    pub model: String,
    /// System instructions, up to 32,768 characters ("" when none).
    pub instructions: String,
    /// Desktop profile: screen width (pixels).
    pub screen_width: i32,
    /// Desktop profile: screen height (pixels).
    pub screen_height: i32,
    /// Who performs its sessions' commands; `None` = the default (built-in when the session
    /// has a desktop).
    pub executor: Option<Executor>,
    /// Optimistic-concurrency version, from 1 (ETag / If-Match).
    pub version: i64,
    /// The user who created it.
    pub created_by: Option<Uuid>,
    /// Creation time (UTC).
    pub created_at: DateTimeUtc,
    /// Last change (UTC).
    pub updated_at: DateTimeUtc,
}

/// No relations are navigated through SeaORM.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
