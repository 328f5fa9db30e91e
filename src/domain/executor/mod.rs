//! The built-in executor: Agentdesk performs a session's commands itself, over its RFB link
//! to the session's desktop (`desktop::RfbLink`) and the runtime's `exec` for `shell` and
//! `open_url`.
//!
//! It takes work through the same queue semantics as an external executor
//! (`commands::claim` → `dispatched` → `commands::complete` → `succeeded | failed`), so the
//! two never perform one command twice. Which one performs a session's commands is the
//! agent's `executor` setting, copied to the session at creation ([`is_builtin`]); for a
//! built-in session `commands.claim` answers 409 `executor_builtin`.
//!
//! One task per running session on the node that provisioned its desktop
//! (`jobs::SessionTasks`), started when the session reaches `running`. It waits for commands
//! on the bus (an accepted command appends its `action` event, which wakes the claim; no
//! polling), and ends when the session leaves `running`. When the link is lost for good
//! (the desktop died, or stayed unreachable through the link's reconnect backoff), the
//! session goes `failed` with `status_reason` `desktop lost: <why>`.

mod perform;

use std::time::Duration;

use crate::{
    desktop::{LinkError, LinkTarget, RfbLink},
    domain::{
        commands,
        desktops::{endpoint, passwords},
        sessions,
    },
    entity::{OrgId, SessionId, command, session},
    error::AppError,
    jobs::JobContext,
};

pub use perform::error_codes;

/// Longest wait of one claim (s); the claim returns early when a command arrives.
const CLAIM_WAIT: Duration = Duration::from_secs(30);
/// Pause after an unexpected database error before claiming again.
const ERROR_PAUSE: Duration = Duration::from_secs(1);
/// How long the first connection to a new desktop is retried (with the link's backoff)
/// before the session fails.
const CONNECT_FOR: Duration = Duration::from_secs(10);
/// Attempts at recording a command's outcome before recording a bare failure instead.
const COMPLETE_ATTEMPTS: u32 = 3;

pub use crate::domain::desktops::is_builtin;

/// Starts the executor of running session `s` on this node, unless its commands are
/// external or an executor runs for it already.
pub fn start(ctx: &JobContext, s: &session::Model) {
    if !is_builtin(s) {
        return;
    }
    let task_ctx = ctx.clone();
    let session = s.clone();
    let spawned = ctx.session_tasks.spawn_once(s.id, async move {
        let id = SessionId(session.id);
        if let Err(e) = run(&task_ctx, session).await {
            // Without its executor the session cannot do anything: it fails, and says so.
            tracing::warn!(session_id = %id, error = %e, "the built-in executor stopped");
            fail_session(&task_ctx, id, "desktop lost: the executor could not start").await;
        }
    });
    if !spawned && !ctx.session_tasks.is_running(s.id) {
        tracing::error!(session_id = %s.id, "could not start the built-in executor");
    }
}

/// The executor's loop for one session (see the module docs).
async fn run(ctx: &JobContext, s: session::Model) -> Result<(), AppError> {
    let org = OrgId(s.org_id);
    let sid = SessionId(s.id);
    let link = match endpoint(&s) {
        None => None,
        Some(desktop) => {
            let target = LinkTarget {
                host: desktop.vnc_host.clone(),
                port: desktop.vnc_port,
                password: passwords(&ctx.sealer, &s)?.control,
            };
            match connect(target).await {
                Ok(link) => Some(link),
                Err(e) => {
                    fail_session(ctx, sid, &format!("desktop lost: cannot connect: {e}")).await;
                    return Ok(());
                }
            }
        }
    };
    tracing::info!(session_id = %s.id, linked = link.is_some(), "built-in executor started");
    loop {
        let claimed = match &link {
            Some(l) => tokio::select! {
                gone = l.lost() => {
                    fail_session(ctx, sid, &format!("desktop lost: {gone}")).await;
                    break;
                }
                c = commands::claim(&ctx.db, &ctx.bus, org, sid, CLAIM_WAIT) => c,
            },
            None => commands::claim(&ctx.db, &ctx.bus, org, sid, CLAIM_WAIT).await,
        };
        match claimed {
            Ok(Some(c)) => finish(ctx, &s, link.as_ref(), c).await,
            Ok(None) => {}
            // The session left `running` (or is gone): the executor's work is over.
            Err(AppError::SessionState { .. } | AppError::NotFound(_)) => break,
            Err(e) => {
                tracing::warn!(session_id = %s.id, error = %e, "claiming a command failed");
                tokio::time::sleep(ERROR_PAUSE).await;
            }
        }
    }
    if let Some(l) = link {
        l.close();
    }
    tracing::info!(session_id = %s.id, "built-in executor ended");
    Ok(())
}

/// Connects to a new desktop, retrying with backoff for [`CONNECT_FOR`] (it may still be
/// settling). Wrong passwords and refused security types are not retried.
async fn connect(target: LinkTarget) -> Result<RfbLink, LinkError> {
    let deadline = tokio::time::Instant::now() + CONNECT_FOR;
    let mut delay = Duration::from_millis(50);
    loop {
        match RfbLink::connect(target.clone()).await {
            Ok(link) => return Ok(link),
            Err(e @ (LinkError::AuthFailed(_) | LinkError::NoVncAuth { .. })) => return Err(e),
            Err(e) if tokio::time::Instant::now() + delay >= deadline => return Err(e),
            Err(_) => {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
        }
    }
}

/// Performs a claimed command and records its outcome; a command is never left
/// `dispatched`: if its outcome cannot be recorded, a bare failure is.
async fn finish(ctx: &JobContext, s: &session::Model, link: Option<&RfbLink>, c: command::Model) {
    let started = std::time::Instant::now();
    let outcome = perform::perform(ctx, s, link, &c).await;
    metrics::histogram!("agentdesk_command_duration_seconds", "kind" => c.kind.as_str(), "status" => if outcome.succeeded { "succeeded" } else { "failed" })
        .record(started.elapsed().as_secs_f64());
    let record = |outcome| {
        commands::complete(
            &ctx.db,
            &ctx.bus,
            OrgId(s.org_id),
            SessionId(s.id),
            crate::entity::CommandId(c.id),
            outcome,
        )
    };
    let mut error = None;
    for attempt in 0..COMPLETE_ATTEMPTS {
        match record(outcome.clone()).await {
            Ok(_) | Err(AppError::Conflict { .. } | AppError::NotFound(_)) => return,
            Err(e) => {
                tracing::warn!(session_id = %s.id, command_id = %c.id, attempt, error = %e, "recording a command's result failed");
                error = Some(e);
                tokio::time::sleep(ERROR_PAUSE).await;
            }
        }
    }
    let bare = commands::Outcome {
        error: Some("the command's result could not be recorded".into()),
        error_code: Some(perform::error_codes::INTERNAL),
        ..commands::Outcome::default()
    };
    if let Err(e) = record(bare).await {
        tracing::error!(session_id = %s.id, command_id = %c.id, error = %e, first_error = ?error.map(|e| e.to_string()), "a command stays dispatched: no outcome could be recorded");
    }
}

/// The session fails with `reason` (unless it already left `running`).
async fn fail_session(ctx: &JobContext, id: SessionId, reason: &str) {
    match sessions::fail_running(&ctx.db, &ctx.bus, &ctx.config, id, reason).await {
        Ok(true) => tracing::warn!(session_id = %id, reason, "session failed: its desktop is gone"),
        Ok(false) => {}
        Err(e) => tracing::warn!(session_id = %id, error = %e, "could not fail a session"),
    }
}
