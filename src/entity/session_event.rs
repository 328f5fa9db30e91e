//! `session_events`: the append-only event log; `(session_id, seq)` is the key and the read
//! order. Never updated.

use sea_orm::entity::prelude::*;

super::stored_enum! {
    /// What an event records (`session_events.kind`).
    pub enum Kind {
        /// Something the agent did (accepted commands too).
        Action = "action",
        /// A screenshot.
        Screenshot = "screenshot",
        /// An outcome (command results too).
        Result = "result",
        /// Chat between the agent and people.
        Message = "message",
        /// Diagnostics.
        Log = "log",
        /// A lifecycle change (server only).
        Status = "status",
    }
}

/// One event.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "session_events")]
pub struct Model {
    /// The session.
    #[sea_orm(primary_key, auto_increment = false)]
    pub session_id: Uuid,
    /// Per-session sequence number: gapless, from 1, in commit order.
    #[sea_orm(primary_key, auto_increment = false)]
    pub seq: i64,
    /// The session's organization (denormalised for tenant filtering).
    pub org_id: Uuid,
    /// What it records.
    pub kind: Kind,
    /// A JSON object.
    pub payload: Json,
    /// When it was appended (UTC).
    pub created_at: DateTimeUtc,
}

/// No relations are navigated through SeaORM.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
