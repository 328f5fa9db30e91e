//! An org's view of its background jobs (`jobs.list`, `jobs.retry`) and the one place the
//! domain's job kinds and reaper sweeps are registered ([`registry`]).
//!
//! The queue itself (claim, lease, retry, dead-letter) is `crate::jobs::queue`; it knows
//! nothing about orgs' rules. Re-driving a dead job commits through the bus's outbox like
//! every other writer, so on PostgreSQL the `NOTIFY` wakes a worker on any node at once.

use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, QueryFilter, QueryOrder, QuerySelect,
    sea_query::Expr,
};
use serde_json::json;
use uuid::Uuid;

use super::{
    audit::{self, AuditCtx, Event},
    page::{Page, PageRequest},
};
use crate::{
    entity::{Tenant, job},
    error::{AppError, AppResult, ProblemCode},
    jobs::{Registry, queue::JobStatus},
    realtime::bus::{Bus, Outbox},
};

/// Every job kind of the domain and every reaper sweep, in the order the reaper runs them:
/// stop expired sessions, expire unclaimed commands, purge expired idempotency records,
/// one-time tickets and idle login-failure counters.
pub fn registry() -> Registry {
    Registry::new()
        .register::<super::sessions::jobs::ProvisionSession>()
        .register::<super::sessions::jobs::StopSession>()
        .register::<super::sessions::jobs::ReleaseDesktop>()
        .sweep("sessions.reap", |ctx| async move {
            super::sessions::reap(&ctx.db, &ctx.bus, &ctx.config).await?;
            Ok(())
        })
        .sweep("commands.expire", |ctx| async move {
            super::commands::expire(&ctx.db).await?;
            Ok(())
        })
        .sweep("idempotency.purge", |ctx| async move {
            super::idempotency::purge_expired(&ctx.db).await?;
            Ok(())
        })
        .sweep("tickets.purge", |ctx| async move {
            super::oidc::purge_tickets(&ctx.db).await?;
            Ok(())
        })
        .sweep("login_failures.purge", |ctx| async move {
            let policy = super::throttle::Policy::from_config(&ctx.config);
            super::throttle::purge(&ctx.db, &policy, Utc::now()).await?;
            Ok(())
        })
}

/// One job of `org_id`. Errors: 404 (also for another org's job).
pub async fn get(db: &impl ConnectionTrait, org_id: Uuid, job_id: Uuid) -> AppResult<job::Model> {
    job::Entity::find_in_by_id(org_id, job_id)
        .one(db)
        .await?
        .ok_or(AppError::NotFound("job"))
}

/// The org's jobs, newest first, optionally of one status and one session.
pub async fn list(
    db: &impl ConnectionTrait,
    org_id: Uuid,
    status: Option<JobStatus>,
    session_id: Option<Uuid>,
    page: PageRequest,
) -> AppResult<Page<job::Model>> {
    let mut q = job::Entity::find_in(org_id);
    if let Some(s) = status {
        q = q.filter(job::Column::Status.eq(s));
    }
    if let Some(s) = session_id {
        q = q.filter(job::Column::SessionId.eq(s));
    }
    if let Some(after) = page.after {
        q = q.filter(job::Column::Id.lt(after));
    }
    let rows = q
        .order_by_desc(job::Column::Id)
        .limit(page.fetch())
        .all(db)
        .await?;
    Ok(page.finish(rows, |j| j.id))
}

/// Re-drives a dead job of `org_id`: `pending`, attempts reset, due now, audited as
/// `job.retried`, committed with the job wake-up in its outbox. Returns the row as this
/// update left it (a worker may claim it a moment later). Errors: 404; 409 `job_not_dead`
/// naming the current status.
#[tracing::instrument(name = "jobs.retry", skip_all, fields(org_id = %org_id, job_id = %job_id))]
pub async fn retry(
    db: &DatabaseConnection,
    bus: &Bus,
    org_id: Uuid,
    job_id: Uuid,
    ctx: &AuditCtx,
) -> AppResult<job::Model> {
    let tx = super::begin_write(db).await?;
    let now = Utc::now();
    let updated = job::Entity::update_in(org_id)
        .col_expr(job::Column::Status, Expr::value(JobStatus::Pending))
        .col_expr(job::Column::Attempts, Expr::value(0))
        .col_expr(job::Column::RunAt, Expr::value(now))
        .col_expr(
            job::Column::DeadAt,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(job::Column::LockedBy, Expr::value(Option::<String>::None))
        .col_expr(job::Column::UpdatedAt, Expr::value(now))
        .filter(job::Column::Id.eq(job_id))
        .filter(job::Column::Status.eq(JobStatus::Dead))
        .exec_with_returning(&tx)
        .await?;
    let Some(row) = updated.into_iter().next() else {
        let current = get(&tx, org_id, job_id).await?;
        return Err(AppError::conflict(
            ProblemCode::JobNotDead,
            format!(
                "the job is `{}`; only dead jobs can be re-driven",
                current.status
            ),
        ));
    };
    audit::record(
        &tx,
        ctx,
        Event {
            org_id: Some(org_id),
            action: "job.retried",
            target_type: audit::target::JOB,
            target_id: Some(row.id),
            success: true,
            details: json!({ "kind": row.kind }),
        },
    )
    .await?;
    let outbox = Outbox {
        job_enqueued: true,
        ..Outbox::default()
    };
    bus.commit(tx, outbox).await?;
    Ok(row)
}
