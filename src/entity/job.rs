//! `jobs`: the durable job queue (see `jobs::queue` for its semantics).

use sea_orm::entity::prelude::*;

super::stored_enum! {
    /// A job's state (`jobs.status`).
    pub enum Status {
        /// Waiting for `run_at`.
        Pending = "pending",
        /// Claimed under a lease.
        Running = "running",
        /// Done.
        Succeeded = "succeeded",
        /// Dead-lettered after `max_attempts`; re-drivable.
        Dead = "dead",
    }
}

/// A job row.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "jobs")]
pub struct Model {
    /// UUIDv7.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// The organization it works for, if any.
    pub org_id: Option<Uuid>,
    /// The session it works for, if any (it goes `failed` when the job dies).
    pub session_id: Option<Uuid>,
    /// The job kind (`BackgroundJob::KIND`), e.g. `session.provision`.
    pub kind: String,
    /// Handler input (JSON object).
    pub payload: Json,
    /// Its state.
    pub status: Status,
    /// Claims so far (a claim counts as an attempt).
    pub attempts: i32,
    /// After this many failed attempts the job is dead.
    pub max_attempts: i32,
    /// Not claimed before this time (UTC): the backoff.
    pub run_at: DateTimeUtc,
    /// While `running`: the lease; past it, another worker may claim the job.
    pub lease_until: Option<DateTimeUtc>,
    /// While `running`: the claim token of the worker holding the lease.
    pub locked_by: Option<String>,
    /// The last failure's message.
    pub last_error: Option<String>,
    /// When it was dead-lettered.
    pub dead_at: Option<DateTimeUtc>,
    /// Creation time (UTC).
    pub created_at: DateTimeUtc,
    /// Last change (UTC).
    pub updated_at: DateTimeUtc,
}

/// No relations are navigated through SeaORM.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
