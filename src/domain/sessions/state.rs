//! The session state machine as pure functions (ARCHITECTURE §2): the states, which
//! transitions are legal, the conflicts a refused transition answers, and when the reaper
//! stops a session. No database, no I/O.
//!
//! ```text
//! pending → provisioning → running → stopping → stopped
//!    └──────────┴─────────────→ stopping          (stop before the desktop is up)
//! pending | provisioning | running | stopping → failed   (with status_reason)
//! ```

use chrono::{DateTime, Utc};

use crate::{
    entity::session,
    error::{AppError, ProblemCode},
};

pub use crate::entity::session::Status;

impl Status {
    /// The states in which a session counts against the org's limit and accepts events.
    pub const LIVE: [Status; 4] = [
        Status::Pending,
        Status::Provisioning,
        Status::Running,
        Status::Stopping,
    ];

    /// `stopped` or `failed`: nothing follows.
    pub fn is_final(self) -> bool {
        matches!(self, Status::Stopped | Status::Failed)
    }
}

/// Whether a session may go from `from` to `to`. Errors: `(from, to)` back when illegal.
pub fn check_transition(from: Status, to: Status) -> Result<(), (Status, Status)> {
    use Status::*;
    let ok = matches!(
        (from, to),
        (Pending, Provisioning)
            | (Pending, Stopping)
            | (Provisioning, Running)
            | (Provisioning, Stopping)
            | (Running, Stopping)
            | (Stopping, Stopped)
            | (Pending | Provisioning | Running | Stopping, Failed)
    );
    if ok { Ok(()) } else { Err((from, to)) }
}

/// 409 `invalid_transition` naming the current state.
pub fn invalid_transition(current: Status, to: Status) -> AppError {
    AppError::SessionState {
        code: ProblemCode::InvalidTransition,
        current: current.as_str(),
        detail: format!(
            "the session is `{}`; it cannot go to `{}`",
            current.as_str(),
            to.as_str()
        ),
    }
}

/// 409 `session_not_live` for writes to a finished session.
pub fn not_live(current: Status) -> AppError {
    AppError::SessionState {
        code: ProblemCode::SessionNotLive,
        current: current.as_str(),
        detail: format!(
            "the session is `{}` and accepts no more writes",
            current.as_str()
        ),
    }
}

/// Why the reaper stops a session, if it should now: `idle_timeout` (no activity for
/// `timeout_s`) or `max_duration` (older than `max_duration_s`). Pure.
pub fn expiry_reason(s: &session::Model, now: DateTime<Utc>) -> Option<&'static str> {
    if now - s.created_at >= chrono::Duration::seconds(s.max_duration_s) {
        Some("max_duration")
    } else if now - s.last_activity_at >= chrono::Duration::seconds(s.timeout_s) {
        Some("idle_timeout")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use uuid::Uuid;

    use super::*;

    #[test]
    fn every_transition_pair() {
        use Status::*;
        let allowed = [
            (Pending, Provisioning),
            (Pending, Stopping),
            (Pending, Failed),
            (Provisioning, Running),
            (Provisioning, Stopping),
            (Provisioning, Failed),
            (Running, Stopping),
            (Running, Failed),
            (Stopping, Stopped),
            (Stopping, Failed),
        ];
        for &from in Status::ALL {
            for &to in Status::ALL {
                assert_eq!(
                    check_transition(from, to).is_ok(),
                    allowed.contains(&(from, to)),
                    "{from:?} → {to:?}"
                );
            }
        }
        // Final states have no way out; every live state can fail.
        for &s in Status::ALL {
            assert_eq!(s.is_final(), !Status::LIVE.contains(&s));
            assert_eq!(Status::parse(s.as_str()), Some(s));
        }
    }

    #[test]
    fn expiry_reasons() {
        let now = Utc::now();
        let mut s = session::Model {
            id: Uuid::now_v7(),
            org_id: Uuid::now_v7(),
            agent_id: Uuid::now_v7(),
            created_by: None,
            accountable_user_id: None,
            status: Status::Running,
            status_reason: None,
            version: 1,
            timeout_s: 60,
            max_duration_s: 3600,
            metadata: json!({}),
            desktop: None,
            desktop_secret: None,
            executor: None,
            screen_width: 1280,
            screen_height: 800,
            last_seq: 1,
            last_activity_at: now,
            started_at: None,
            ended_at: None,
            created_at: now,
            updated_at: now,
        };
        assert_eq!(expiry_reason(&s, now), None);
        s.last_activity_at = now - chrono::Duration::seconds(61);
        assert_eq!(expiry_reason(&s, now), Some("idle_timeout"));
        s.created_at = now - chrono::Duration::seconds(3600);
        assert_eq!(expiry_reason(&s, now), Some("max_duration"));
    }
}
