//! `sessions`: one run of an agent on one desktop. Status changes only through
//! `domain::sessions::transition` (compare-and-set on `status` and `version`).

use sea_orm::entity::prelude::*;

super::stored_enum! {
    /// A session's lifecycle state (`sessions.status`); the transitions between them are
    /// `domain::sessions::state`.
    pub enum Status {
        /// Accepted; the provision job is queued.
        Pending = "pending",
        /// The desktop is being started.
        Provisioning = "provisioning",
        /// The desktop is up; the agent works.
        Running = "running",
        /// Winding down; the desktop is being released.
        Stopping = "stopping",
        /// Ended normally (final).
        Stopped = "stopped",
        /// Ended by an error (final); `status_reason` says why.
        Failed = "failed",
    }
}

/// A session row.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "sessions")]
pub struct Model {
    /// UUIDv7.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// The owning organization.
    pub org_id: Uuid,
    /// The agent it runs (no foreign key: history outlives the agent).
    pub agent_id: Uuid,
    /// The user who started it.
    pub created_by: Option<Uuid>,
    /// The user whose `max_live_sessions_per_user` quota it counts against: the user who
    /// started it, or the user behind the API key that did.
    pub accountable_user_id: Option<Uuid>,
    /// The lifecycle state.
    pub status: Status,
    /// Why it stopped or failed (`stop_requested`, `idle_timeout`, an error message).
    pub status_reason: Option<String>,
    /// +1 on every status change.
    pub version: i64,
    /// Idle timeout (s): stopped when no event or command arrives for this long.
    pub timeout_s: i64,
    /// Longest run (s) from creation.
    pub max_duration_s: i64,
    /// Caller-supplied JSON object.
    pub metadata: Json,
    /// The desktop endpoint (`runtime::Desktop` as JSON) once provisioned.
    pub desktop: Option<Json>,
    /// The desktop's VNC passwords, sealed (`auth::seal`); never leaves the server.
    pub desktop_secret: Option<String>,
    /// The agent's executor setting when the session was created; `None` = the default
    /// (built-in when the session has a desktop).
    pub executor: Option<super::agent::Executor>,
    /// Screen width (pixels) copied from the agent at creation.
    pub screen_width: i32,
    /// Screen height (pixels) copied from the agent at creation.
    pub screen_height: i32,
    /// The last event `seq` written (0 before the first); the append counter.
    pub last_seq: i64,
    /// Last event or command (UTC): the idle clock.
    pub last_activity_at: DateTimeUtc,
    /// When it reached `running`.
    pub started_at: Option<DateTimeUtc>,
    /// When it reached `stopped` or `failed`.
    pub ended_at: Option<DateTimeUtc>,
    /// Creation time (UTC).
    pub created_at: DateTimeUtc,
    /// Last change (UTC).
    pub updated_at: DateTimeUtc,
}

/// No relations are navigated through SeaORM.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
