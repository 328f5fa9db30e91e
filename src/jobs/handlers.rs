//! Job handlers. Each is idempotent (delivery is at least once): it looks at the current
//! state first and does only what is still missing, so running it twice does no harm.
//!
//! * `session.provision`: `pending → provisioning`, start the desktop, `→ running`. If the
//!   session was stopped meanwhile, the desktop it may have started is released again.
//! * `session.stop`: release the desktop, `stopping → stopped`.
//! * `session.release`: release a failed session's desktop.

use sea_orm::EntityTrait;
use uuid::Uuid;

use crate::{
    app::AppState,
    domain::sessions::{self, Status, Step, job_kind},
    entity::{job, session},
    error::AppError,
    runtime::DesktopSpec,
};

/// Runs `job`. Errors: anything that should be retried (the message becomes `last_error`).
pub async fn run(state: &AppState, job: &job::Model) -> anyhow::Result<()> {
    let session_id = job
        .payload
        .get("session_id")
        .and_then(|v| v.as_str())
        .and_then(|s| Uuid::parse_str(s).ok());
    match (job.kind.as_str(), session_id) {
        (job_kind::PROVISION, Some(id)) => provision(state, id).await,
        (job_kind::STOP, Some(id)) => stop(state, id).await,
        (job_kind::RELEASE, Some(id)) => release(state, id).await,
        (kind, _) => anyhow::bail!("unknown job kind {kind:?} or payload without session_id"),
    }
}

/// What to do when a job is dead-lettered: the session it worked for fails (its desktop is
/// released by the failure's release job). A dead release job leaves the session as it is.
pub async fn on_dead(state: &AppState, job: &job::Model) -> anyhow::Result<()> {
    let Some(id) = job.session_id else {
        return Ok(());
    };
    if job.kind == job_kind::RELEASE {
        return Ok(());
    }
    let Some(s) = session::Entity::find_by_id(id).one(&state.db).await? else {
        return Ok(());
    };
    if sessions::status_of(&s)?.is_final() {
        return Ok(());
    }
    // The error itself (logs, paths) stays in `jobs.last_error` for operators; tenants see
    // which job gave up.
    let reason = format!(
        "job {} dead after {} attempts (job {})",
        job.kind, job.attempts, job.id
    );
    match sessions::transition_now(
        &state.db,
        &state.bus,
        &state.config,
        id,
        sessions::fail_step(&s, &reason),
    )
    .await
    {
        Ok(_) | Err(AppError::SessionState { .. }) | Err(AppError::NotFound(_)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

async fn load(state: &AppState, id: Uuid) -> anyhow::Result<Option<(session::Model, Status)>> {
    let Some(s) = session::Entity::find_by_id(id).one(&state.db).await? else {
        return Ok(None);
    };
    let status = sessions::status_of(&s)?;
    Ok(Some((s, status)))
}

async fn step(state: &AppState, id: Uuid, step: Step) -> Result<session::Model, AppError> {
    sessions::transition_now(&state.db, &state.bus, &state.config, id, step).await
}

async fn provision(state: &AppState, id: Uuid) -> anyhow::Result<()> {
    let Some((s, status)) = load(state, id).await? else {
        return Ok(()); // The session is gone (org deleted): nothing to do.
    };
    match status {
        Status::Pending => {
            step(state, id, Step::to(Status::Provisioning)).await?;
        }
        Status::Provisioning => {} // A retry, or a worker that died mid-way: carry on.
        // Running already (a duplicate delivery), or stopped meanwhile (its own job
        // releases the desktop): nothing left to do.
        _ => return Ok(()),
    }
    let spec = DesktopSpec {
        session_id: id,
        width: s.screen_width.max(0) as u32,
        height: s.screen_height.max(0) as u32,
    };
    let desktop = state.runtime.provision(&spec).await?;
    let result = step(
        state,
        id,
        Step {
            to: Status::Running,
            reason: None,
            desktop,
            jobs: Vec::new(),
        },
    )
    .await;
    match result {
        Ok(_) => Ok(()),
        Err(AppError::SessionState { .. }) => {
            // Someone else moved it on. Give the desktop back only if the session is winding
            // down: a duplicate delivery that lost the race to `running` must not kill the
            // desktop the winner just recorded.
            let winding_down = load(state, id).await?.is_none_or(|(_, s)| {
                matches!(s, Status::Stopping | Status::Stopped | Status::Failed)
            });
            if winding_down {
                state.runtime.release(id).await?;
            }
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

async fn stop(state: &AppState, id: Uuid) -> anyhow::Result<()> {
    let Some((_, status)) = load(state, id).await? else {
        return state.runtime.release(id).await;
    };
    state.runtime.release(id).await?;
    if status == Status::Stopping {
        match step(state, id, Step::to(Status::Stopped)).await {
            Ok(_) | Err(AppError::SessionState { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

async fn release(state: &AppState, id: Uuid) -> anyhow::Result<()> {
    state.runtime.release(id).await
}
