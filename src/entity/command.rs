//! `commands`: actions asked of a session's desktop, claimed by its executor.

use sea_orm::entity::prelude::*;

super::stored_enum! {
    /// What a command asks of the desktop (`commands.kind`); arguments and capabilities per
    /// kind are `domain::commands`.
    pub enum Kind {
        /// Capture the screen.
        Screenshot = "screenshot",
        /// Click at `x`, `y` (pixels).
        Click = "click",
        /// Move the pointer to `x`, `y`.
        Move = "move",
        /// Scroll at `x`, `y` by `dx`, `dy` wheel steps.
        Scroll = "scroll",
        /// Type `text`.
        Type = "type",
        /// Press a key chord `keys`.
        Key = "key",
        /// Set the clipboard to `text`.
        ClipboardSet = "clipboard_set",
        /// Run a shell `command`.
        Shell = "shell",
        /// Open `url` in the browser.
        OpenUrl = "open_url",
    }
}

super::stored_enum! {
    /// A command's state (`commands.status`).
    pub enum Status {
        /// Waiting for an executor.
        Queued = "queued",
        /// Claimed by an executor.
        Dispatched = "dispatched",
        /// Done.
        Succeeded = "succeeded",
        /// The executor reported failure.
        Failed = "failed",
        /// The session wound down first.
        Cancelled = "cancelled",
        /// Not claimed in time.
        Expired = "expired",
    }
}

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
    /// What it asks of the desktop.
    pub kind: Kind,
    /// Kind-specific arguments (JSON object).
    pub args: Json,
    /// Its state.
    pub status: Status,
    /// The executor's output, once finished.
    pub output: Option<Json>,
    /// The executor's error message, when failed.
    pub error: Option<String>,
    /// Why it failed, as a stable code (`desktop_unreachable`, `timeout`, …); `None` when it
    /// did not fail or an external executor gave no code.
    pub error_code: Option<String>,
    /// The built-in executor's typed outcome (`{kind, …}`), once finished; `output` is what an
    /// external executor reported.
    pub result: Option<Json>,
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
