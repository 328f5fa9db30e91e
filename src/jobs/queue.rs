//! The job queue in the database: `jobs(id, org_id, session_id, kind, payload, status,
//! attempts, max_attempts, run_at, lease_until, locked_by, last_error, dead_at, …)`.
//!
//! * [`enqueue`] only inside the caller's transaction (transactional outbox: no job without
//!   the state change that wants it, and no state change without its job).
//! * [`claim`] takes due `pending` jobs and `running` jobs whose lease expired, oldest
//!   `run_at` first: `FOR UPDATE SKIP LOCKED` on PostgreSQL (two workers never claim the same
//!   job), a single-writer transaction on SQLite. A claim counts as an attempt.
//! * The claim is fenced by `(locked_by, attempts)`: [`extend_lease`], [`complete`] and
//!   [`fail`] change the row only while the caller still holds that claim, so a worker whose
//!   lease lapsed cannot overwrite the newer attempt's outcome.
//! * [`fail`] schedules a retry after [`backoff`] or, at `max_attempts`, dead-letters.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, QueryFilter,
    QuerySelect, Statement, sea_query::Expr,
};
use serde_json::Value;
use uuid::Uuid;

use crate::{entity::job, realtime::bus::Outbox};

pub use crate::entity::job::Status as JobStatus;

/// A job to enqueue.
#[derive(Clone, Debug)]
pub struct NewJob {
    /// The job kind (`BackgroundJob::KIND`).
    pub kind: &'static str,
    /// The org it works for.
    pub org_id: Option<Uuid>,
    /// The session it works for.
    pub session_id: Option<Uuid>,
    /// Handler input.
    pub payload: Value,
}

/// Inserts `job` (due now) in the caller's transaction and marks `outbox` so workers are
/// woken after the commit. Errors: database errors.
pub async fn enqueue(
    tx: &impl ConnectionTrait,
    job: NewJob,
    max_attempts: u32,
    outbox: &mut Outbox,
) -> Result<Uuid, DbErr> {
    let now = Utc::now();
    let id = Uuid::now_v7();
    job::Entity::insert(job::ActiveModel {
        id: Set(id),
        org_id: Set(job.org_id),
        session_id: Set(job.session_id),
        kind: Set(job.kind.to_owned()),
        payload: Set(job.payload),
        status: Set(JobStatus::Pending),
        attempts: Set(0),
        max_attempts: Set(max_attempts.min(i32::MAX as u32) as i32),
        run_at: Set(now),
        lease_until: Set(None),
        locked_by: Set(None),
        last_error: Set(None),
        dead_at: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    })
    .exec_without_returning(tx)
    .await?;
    outbox.job_enqueued = true;
    Ok(id)
}

/// Claims up to `limit` due jobs for `worker_id` under a lease of `lease`: `pending` jobs
/// whose `run_at` has come, and `running` jobs whose lease expired with attempts left.
/// Each claimed job has `status = running`, `attempts + 1`, `locked_by = worker_id`.
/// Errors: database errors.
pub async fn claim(
    db: &impl ConnectionTrait,
    worker_id: &str,
    limit: u32,
    lease: Duration,
) -> Result<Vec<job::Model>, DbErr> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let now = Utc::now();
    let lease_until = now + chrono::Duration::from_std(lease).unwrap_or_default();
    let backend = db.get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => {
            "UPDATE jobs SET status = 'running', attempts = attempts + 1, lease_until = $1, \
             locked_by = $2, updated_at = $3 \
             WHERE id IN (SELECT id FROM jobs \
               WHERE (status = 'pending' AND run_at <= $3) \
                  OR (status = 'running' AND lease_until < $3 AND attempts < max_attempts) \
               ORDER BY run_at LIMIT $4 FOR UPDATE SKIP LOCKED) \
             RETURNING *"
        }
        _ => {
            "UPDATE jobs SET status = 'running', attempts = attempts + 1, lease_until = $1, \
             locked_by = $2, updated_at = $3 \
             WHERE id IN (SELECT id FROM jobs \
               WHERE (status = 'pending' AND run_at <= $3) \
                  OR (status = 'running' AND lease_until < $3 AND attempts < max_attempts) \
               ORDER BY run_at LIMIT $4) \
             RETURNING *"
        }
    };
    let mut jobs = job::Entity::find()
        .from_raw_sql(Statement::from_sql_and_values(
            backend,
            sql,
            [
                lease_until.into(),
                worker_id.into(),
                now.into(),
                i64::from(limit).into(),
            ],
        ))
        .all(db)
        .await?;
    jobs.sort_by_key(|j| j.run_at);
    Ok(jobs)
}

fn fenced(
    q: sea_orm::UpdateMany<job::Entity>,
    claimed: &job::Model,
) -> sea_orm::UpdateMany<job::Entity> {
    q.filter(job::Column::Id.eq(claimed.id))
        .filter(job::Column::Status.eq(JobStatus::Running))
        .filter(job::Column::LockedBy.eq(claimed.locked_by.clone()))
        .filter(job::Column::Attempts.eq(claimed.attempts))
}

/// Extends the lease of a job the caller holds. `Ok(false)` when the claim was lost (the
/// lease lapsed and someone else claimed it). Errors: database errors.
pub async fn extend_lease(
    db: &impl ConnectionTrait,
    claimed: &job::Model,
    lease: Duration,
) -> Result<bool, DbErr> {
    let until = Utc::now() + chrono::Duration::from_std(lease).unwrap_or_default();
    let q = job::Entity::update_many().col_expr(job::Column::LeaseUntil, Expr::value(until));
    Ok(fenced(q, claimed).exec(db).await?.rows_affected == 1)
}

/// Marks a held job succeeded. `Ok(false)` when the claim was lost. Errors: database errors.
pub async fn complete(db: &impl ConnectionTrait, claimed: &job::Model) -> Result<bool, DbErr> {
    let q = job::Entity::update_many()
        .col_expr(job::Column::Status, Expr::value(JobStatus::Succeeded))
        .col_expr(
            job::Column::LeaseUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(job::Column::UpdatedAt, Expr::value(Utc::now()));
    Ok(fenced(q, claimed).exec(db).await?.rows_affected == 1)
}

/// What [`fail`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failed {
    /// Scheduled again at the given time.
    Retry(DateTime<Utc>),
    /// Dead-lettered (attempts exhausted).
    Dead,
    /// The claim had been lost; nothing changed.
    LostClaim,
}

/// The retry delay after failed attempt number `attempt` (1-based): `base · 2^(attempt−1)`,
/// capped at `max`, then scaled by `0.5 + jitter` (`jitter` in `[0, 1)`), so retries of many
/// jobs that failed together spread out.
pub fn backoff(attempt: u32, base: Duration, max: Duration, jitter: f64) -> Duration {
    let exp = attempt.saturating_sub(1).min(32);
    let raw = base.saturating_mul(1u32 << exp.min(31)).min(max);
    raw.mul_f64(0.5 + jitter.clamp(0.0, 1.0))
}

/// Records a failed attempt of a held job: retry after `retry_in`, or dead when attempts are
/// exhausted. `error` is kept as `last_error` (truncated to 2,000 bytes). Errors: database
/// errors.
pub async fn fail(
    db: &impl ConnectionTrait,
    claimed: &job::Model,
    error: &str,
    retry_in: Duration,
) -> Result<Failed, DbErr> {
    let now = Utc::now();
    let error = truncate(error, 2000);
    let dead = claimed.attempts >= claimed.max_attempts;
    let mut q = job::Entity::update_many()
        .col_expr(job::Column::LastError, Expr::value(error))
        .col_expr(
            job::Column::LeaseUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(job::Column::UpdatedAt, Expr::value(now));
    let run_at = now + chrono::Duration::from_std(retry_in).unwrap_or_default();
    q = if dead {
        q.col_expr(job::Column::Status, Expr::value(JobStatus::Dead))
            .col_expr(job::Column::DeadAt, Expr::value(now))
    } else {
        q.col_expr(job::Column::Status, Expr::value(JobStatus::Pending))
            .col_expr(job::Column::RunAt, Expr::value(run_at))
    };
    if fenced(q, claimed).exec(db).await?.rows_affected != 1 {
        return Ok(Failed::LostClaim);
    }
    Ok(if dead {
        Failed::Dead
    } else {
        Failed::Retry(run_at)
    })
}

/// Dead-letters `running` jobs whose lease expired with no attempts left (their last worker
/// died on the last attempt). Returns them. Errors: database errors.
pub async fn sweep_expired(db: &impl ConnectionTrait) -> Result<Vec<job::Model>, DbErr> {
    let now = Utc::now();
    let expired = job::Entity::find()
        .filter(job::Column::Status.eq(JobStatus::Running))
        .filter(job::Column::LeaseUntil.lt(now))
        .filter(sea_orm::sea_query::ExprTrait::gte(
            Expr::col(job::Column::Attempts),
            Expr::col(job::Column::MaxAttempts),
        ))
        .limit(100)
        .all(db)
        .await?;
    let mut dead = Vec::new();
    for j in expired {
        let q = job::Entity::update_many()
            .col_expr(job::Column::Status, Expr::value(JobStatus::Dead))
            .col_expr(job::Column::DeadAt, Expr::value(now))
            .col_expr(
                job::Column::LastError,
                Expr::value("lease expired on the last attempt (worker stopped)"),
            )
            .col_expr(job::Column::UpdatedAt, Expr::value(now));
        if fenced(q, &j).exec(db).await?.rows_affected == 1 {
            dead.push(j);
        }
    }
    Ok(dead)
}

/// `s` cut to at most `max` bytes on a character boundary.
pub fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_caps_and_jitters() {
        let (base, max) = (Duration::from_millis(1000), Duration::from_millis(10_000));
        let mid = |a| backoff(a, base, max, 0.5);
        assert_eq!(mid(1), Duration::from_millis(1000));
        assert_eq!(mid(2), Duration::from_millis(2000));
        assert_eq!(mid(4), Duration::from_millis(8000));
        assert_eq!(mid(5), Duration::from_millis(10_000), "capped");
        assert_eq!(mid(60), Duration::from_millis(10_000), "no overflow");
        assert_eq!(backoff(1, base, max, 0.0), Duration::from_millis(500));
        assert!(backoff(1, base, max, 0.999) < Duration::from_millis(1500));
    }

    #[test]
    fn truncation_keeps_characters_whole() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("abc", 10), "abc");
    }
}
