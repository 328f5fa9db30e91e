//! The session job kinds (ARCHITECTURE §6), each idempotent (delivery is at least once): it
//! looks at the current state first and does only what is still missing.
//!
//! * [`ProvisionSession`] (`session.provision`): `pending → provisioning`, start the desktop,
//!   `→ running`. If the session was stopped meanwhile, the desktop it may have started is
//!   released again. Dead-lettered: the session fails.
//! * [`StopSession`] (`session.stop`): release the desktop, `stopping → stopped`.
//!   Dead-lettered: the session fails (its release job tries again).
//! * [`ReleaseDesktop`] (`session.release`): release a failed session's desktop.
//!   Dead-lettered: the session stays as it is (it is failed already).
//!
//! Payload of each: `{"session_id": "<uuid>", "org_id": "<uuid>"}` (`org_id` is absent in
//! rows written before it was added; it is only read at enqueue time).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{
    lifecycle::{Step, fail_step, transition_now},
    state::Status,
};
use crate::{
    entity::{SessionId, job, session},
    error::AppError,
    jobs::{BackgroundJob, JobContext},
    runtime::DesktopSpec,
};

/// Which session a session job works for.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
struct Target {
    session_id: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    org_id: Option<Uuid>,
}

impl Target {
    fn of(s: &session::Model) -> Self {
        Self {
            session_id: s.id,
            org_id: Some(s.org_id),
        }
    }
}

/// A session job type: its payload is the [`Target`]; `perform` (the work) and `dead` (the
/// dead-letter hook) are written per type below.
macro_rules! session_job {
    ($(#[$doc:meta])* $name:ident = $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Target);

        impl $name {
            /// The job for session `s`.
            pub fn of(s: &session::Model) -> Self {
                Self(Target::of(s))
            }
        }

        impl BackgroundJob for $name {
            const KIND: &'static str = $kind;

            fn org_id(&self) -> Option<Uuid> {
                self.0.org_id
            }

            fn session_id(&self) -> Option<Uuid> {
                Some(self.0.session_id)
            }

            #[tracing::instrument(name = $kind, skip_all, fields(session_id = %self.0.session_id))]
            async fn run(&self, ctx: &JobContext) -> anyhow::Result<()> {
                self.perform(ctx, self.0.session_id).await
            }

            async fn on_dead(&self, ctx: &JobContext, job: &job::Model) -> anyhow::Result<()> {
                self.dead(ctx, job).await
            }
        }
    };
}

session_job!(
    /// Brings a pending session's desktop up and marks it running.
    ProvisionSession = "session.provision"
);
session_job!(
    /// Releases a stopping session's desktop and marks it stopped.
    StopSession = "session.stop"
);
session_job!(
    /// Releases a failed session's desktop.
    ReleaseDesktop = "session.release"
);

async fn load(ctx: &JobContext, id: Uuid) -> anyhow::Result<Option<(session::Model, Status)>> {
    let Some(s) = super::store::find(&ctx.db, SessionId(id)).await? else {
        return Ok(None);
    };
    let status = s.status;
    Ok(Some((s, status)))
}

async fn step(ctx: &JobContext, id: Uuid, step: Step) -> Result<session::Model, AppError> {
    transition_now(&ctx.db, &ctx.bus, &ctx.config, SessionId(id), step).await
}

/// The session a dead provision or stop job worked for fails (its desktop is released by the
/// failure's release job); a session that ended meanwhile stays as it is.
async fn fail_session(ctx: &JobContext, id: Uuid, job: &job::Model) -> anyhow::Result<()> {
    let Some((s, status)) = load(ctx, id).await? else {
        return Ok(());
    };
    if status.is_final() {
        return Ok(());
    }
    // The error itself (logs, paths) stays in `jobs.last_error` for operators; tenants see
    // which job gave up.
    let reason = format!(
        "job {} dead after {} attempts (job {})",
        job.kind, job.attempts, job.id
    );
    match step(ctx, id, fail_step(&s, &reason)).await {
        Ok(_) | Err(AppError::SessionState { .. }) | Err(AppError::NotFound(_)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

impl ProvisionSession {
    /// `pending → provisioning`, the desktop, `→ running` (each step only if still missing).
    async fn perform(&self, ctx: &JobContext, id: Uuid) -> anyhow::Result<()> {
        let Some((s, status)) = load(ctx, id).await? else {
            return Ok(()); // The session is gone (org deleted): nothing to do.
        };
        match status {
            Status::Pending => {
                step(ctx, id, Step::to(Status::Provisioning)).await?;
            }
            Status::Provisioning => {} // A retry, or a worker that died mid-way: carry on.
            // Running already (a duplicate delivery), or stopped meanwhile (its own job
            // releases the desktop): nothing left to do.
            _ => return Ok(()),
        }
        let passwords =
            crate::domain::desktops::passwords_for_provision(&ctx.db, &ctx.sealer, &s).await?;
        let spec = DesktopSpec {
            session_id: id,
            width: s.screen_width.max(0) as u32,
            height: s.screen_height.max(0) as u32,
            passwords,
        };
        let desktop = ctx.runtime.provision(&spec).await?;
        let result = step(
            ctx,
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
            Ok(running) => {
                crate::domain::executor::start(ctx, &running);
                Ok(())
            }
            Err(AppError::SessionState { .. }) => {
                // Someone else moved it on. Give the desktop back only if the session is
                // winding down: a duplicate delivery that lost the race to `running` must not
                // kill the desktop the winner just recorded.
                let winding_down = load(ctx, id).await?.is_none_or(|(_, s)| {
                    matches!(s, Status::Stopping | Status::Stopped | Status::Failed)
                });
                if winding_down {
                    ctx.runtime.release(id).await?;
                }
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The session fails.
    async fn dead(&self, ctx: &JobContext, job: &job::Model) -> anyhow::Result<()> {
        fail_session(ctx, self.0.session_id, job).await
    }
}

impl StopSession {
    /// Releases the desktop, then `stopping → stopped`.
    async fn perform(&self, ctx: &JobContext, id: Uuid) -> anyhow::Result<()> {
        let Some((_, status)) = load(ctx, id).await? else {
            return ctx.runtime.release(id).await;
        };
        ctx.runtime.release(id).await?;
        if status == Status::Stopping {
            match step(ctx, id, Step::to(Status::Stopped)).await {
                Ok(_) | Err(AppError::SessionState { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// The session fails.
    async fn dead(&self, ctx: &JobContext, job: &job::Model) -> anyhow::Result<()> {
        fail_session(ctx, self.0.session_id, job).await
    }
}

impl ReleaseDesktop {
    /// Releases the desktop.
    async fn perform(&self, ctx: &JobContext, id: Uuid) -> anyhow::Result<()> {
        ctx.runtime.release(id).await
    }

    /// A dead release job leaves the session as it is (it is failed already).
    async fn dead(&self, _: &JobContext, _: &job::Model) -> anyhow::Result<()> {
        Ok(())
    }
}
