//! Sessions: one run of an agent on one desktop, and their lifecycle (ARCHITECTURE §2).
//!
//! ```text
//! pending → provisioning → running → stopping → stopped
//!    └──────────┴─────────────→ stopping          (stop before the desktop is up)
//! pending | provisioning | running | stopping → failed   (with status_reason)
//! ```
//!
//! [`check_transition`] is the state machine as a pure function. [`transition`] applies one
//! step in the caller's transaction: on PostgreSQL it first takes
//! `pg_advisory_xact_lock` on the session; it compare-and-sets `status` and `version`,
//! takes the next `seq` from the session row (so status events are ordered with appended
//! events), appends the `status` event, cancels open commands when the session winds down,
//! and enqueues the follow-up jobs — all or nothing.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, Statement,
    sea_query::{Expr, ExprTrait},
};
use serde_json::{Value, json};
use uuid::Uuid;

use super::{
    audit::{self, AuditCtx, Event},
    orgs,
    page::{Page, PageRequest},
};
use crate::{
    config::Config,
    entity::{agent, session, session_event},
    error::{AppError, AppResult, RateLimited},
    jobs::queue::{self, NewJob},
    realtime::bus::{Bus, BusEvent, Outbox},
    runtime::Desktop,
};

/// A session's lifecycle state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Status {
    /// Accepted; the provision job is queued.
    Pending,
    /// The desktop is being started.
    Provisioning,
    /// The desktop is up; the agent works.
    Running,
    /// Winding down; the desktop is being released.
    Stopping,
    /// Ended normally (final).
    Stopped,
    /// Ended by an error (final); `status_reason` says why.
    Failed,
}

impl Status {
    /// Every state.
    pub const ALL: [Status; 6] = [
        Status::Pending,
        Status::Provisioning,
        Status::Running,
        Status::Stopping,
        Status::Stopped,
        Status::Failed,
    ];
    /// The states in which a session counts against the org's limit and accepts events.
    pub const LIVE: [Status; 4] = [
        Status::Pending,
        Status::Provisioning,
        Status::Running,
        Status::Stopping,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Provisioning => "provisioning",
            Status::Running => "running",
            Status::Stopping => "stopping",
            Status::Stopped => "stopped",
            Status::Failed => "failed",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|x| x.as_str() == s)
    }

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

fn live_names() -> Vec<&'static str> {
    Status::LIVE.iter().map(|s| s.as_str()).collect()
}

/// The stored status of a row. Errors: internal when the row holds an unknown name.
pub fn status_of(s: &session::Model) -> AppResult<Status> {
    Status::parse(&s.status)
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("unknown session status {:?}", s.status)))
}

/// 409 `invalid_transition` naming the current state.
pub fn invalid_transition(current: Status, to: Status) -> AppError {
    AppError::SessionState {
        code: "invalid_transition",
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
        code: "session_not_live",
        current: current.as_str(),
        detail: format!(
            "the session is `{}` and accepts no more writes",
            current.as_str()
        ),
    }
}

/// A lifecycle step to apply with [`transition`].
#[derive(Debug)]
pub struct Step {
    /// Target state.
    pub to: Status,
    /// `status_reason` to record (kept when `None`).
    pub reason: Option<String>,
    /// The desktop endpoint to record (when reaching `running`).
    pub desktop: Option<Desktop>,
    /// Follow-up jobs to enqueue in the same transaction.
    pub jobs: Vec<NewJob>,
}

impl Step {
    /// A step to `to` with nothing else.
    pub fn to(to: Status) -> Self {
        Self {
            to,
            reason: None,
            desktop: None,
            jobs: Vec::new(),
        }
    }
}

/// Serialises lifecycle changes of one session on PostgreSQL (released at commit).
async fn advisory_lock(tx: &impl ConnectionTrait, session_id: Uuid) -> AppResult<()> {
    if tx.get_database_backend() == DbBackend::Postgres {
        let key = session_id.as_u64_pair().1 as i64;
        tx.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT pg_advisory_xact_lock($1)",
            [key.into()],
        ))
        .await?;
    }
    Ok(())
}

/// Takes the next `n` seqs of a session that is live, returning the new `last_seq` (the
/// row stays locked until the transaction ends, so seqs commit in order). `Ok(None)` when the
/// session is not live (or not in `org_id`).
pub(crate) async fn take_seqs(
    tx: &impl ConnectionTrait,
    org_id: Uuid,
    session_id: Uuid,
    n: i64,
) -> AppResult<Option<i64>> {
    let now = Utc::now();
    let rows = session::Entity::update_many()
        .col_expr(
            session::Column::LastSeq,
            Expr::col(session::Column::LastSeq).add(n),
        )
        .col_expr(session::Column::LastActivityAt, Expr::value(now))
        .filter(session::Column::Id.eq(session_id))
        .filter(session::Column::OrgId.eq(org_id))
        .filter(session::Column::Status.is_in(live_names()))
        .exec_with_returning(tx)
        .await?;
    Ok(rows.first().map(|s| s.last_seq))
}

/// Applies `step` to the session in the caller's transaction (see the module docs).
/// Errors: 404 `not_found`; 409 `invalid_transition` (with the current state) when the state
/// machine forbids it or a concurrent change won.
pub async fn transition(
    tx: &impl ConnectionTrait,
    config: &Config,
    session_id: Uuid,
    step: Step,
    outbox: &mut Outbox,
) -> AppResult<session::Model> {
    advisory_lock(tx, session_id).await?;
    let current = session::Entity::find_by_id(session_id)
        .one(tx)
        .await?
        .ok_or(AppError::NotFound("session"))?;
    let from = status_of(&current)?;
    check_transition(from, step.to).map_err(|(f, t)| invalid_transition(f, t))?;
    let now = Utc::now();
    let mut q = session::Entity::update_many()
        .col_expr(session::Column::Status, Expr::value(step.to.as_str()))
        .col_expr(
            session::Column::Version,
            Expr::col(session::Column::Version).add(1),
        )
        .col_expr(
            session::Column::LastSeq,
            Expr::col(session::Column::LastSeq).add(1),
        )
        .col_expr(session::Column::UpdatedAt, Expr::value(now));
    if let Some(reason) = &step.reason {
        q = q.col_expr(session::Column::StatusReason, Expr::value(reason.clone()));
    }
    if let Some(d) = &step.desktop {
        q = q.col_expr(
            session::Column::Desktop,
            Expr::value(serde_json::to_value(d).map_err(anyhow::Error::from)?),
        );
    }
    if step.to == Status::Running {
        q = q
            .col_expr(session::Column::StartedAt, Expr::value(now))
            .col_expr(session::Column::LastActivityAt, Expr::value(now));
    }
    if step.to.is_final() {
        q = q.col_expr(session::Column::EndedAt, Expr::value(now));
    }
    let updated = q
        .filter(session::Column::Id.eq(session_id))
        .filter(session::Column::Status.eq(from.as_str()))
        .filter(session::Column::Version.eq(current.version))
        .exec_with_returning(tx)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| invalid_transition(from, step.to))?;
    session_event::Entity::insert(session_event::ActiveModel {
        session_id: Set(session_id),
        seq: Set(updated.last_seq),
        org_id: Set(updated.org_id),
        kind: Set("status".into()),
        payload: Set(json!({
            "status": step.to.as_str(),
            "previous_status": from.as_str(),
            "reason": updated.status_reason,
        })),
        created_at: Set(now),
    })
    .exec_without_returning(tx)
    .await?;
    if matches!(step.to, Status::Stopping | Status::Stopped | Status::Failed) {
        super::commands::cancel_open(tx, session_id).await?;
    }
    for job in step.jobs {
        queue::enqueue(tx, job, config.job_max_attempts, outbox).await?;
    }
    outbox.events.push(BusEvent {
        org_id: updated.org_id,
        session_id,
        seq: updated.last_seq,
        status: true,
    });
    Ok(updated)
}

/// Runs [`transition`] in its own transaction and publishes it. Errors: as [`transition`].
pub async fn transition_now(
    db: &DatabaseConnection,
    bus: &Bus,
    config: &Config,
    session_id: Uuid,
    step: Step,
) -> AppResult<session::Model> {
    let tx = super::begin_write(db).await?;
    let mut outbox = Outbox::default();
    let s = transition(&tx, config, session_id, step, &mut outbox).await?;
    bus.stage(&tx, &outbox).await?;
    tx.commit().await?;
    bus.committed(outbox);
    Ok(s)
}

/// Job kinds this module enqueues.
pub mod job_kind {
    /// Bring a pending session's desktop up and mark it running.
    pub const PROVISION: &str = "session.provision";
    /// Release a stopping session's desktop and mark it stopped.
    pub const STOP: &str = "session.stop";
    /// Release a failed session's desktop.
    pub const RELEASE: &str = "session.release";
}

fn session_job(kind: &'static str, s: &session::Model) -> NewJob {
    NewJob {
        kind,
        org_id: Some(s.org_id),
        session_id: Some(s.id),
        payload: json!({ "session_id": s.id }),
    }
}

/// A `stopping` step with its stop job.
pub fn stop_step(s: &session::Model, reason: &str) -> Step {
    Step {
        to: Status::Stopping,
        reason: Some(reason.to_owned()),
        desktop: None,
        jobs: vec![session_job(job_kind::STOP, s)],
    }
}

/// A `failed` step with its release job (failed sessions' desktops are always released).
pub fn fail_step(s: &session::Model, reason: &str) -> Step {
    Step {
        to: Status::Failed,
        reason: Some(queue::truncate(reason, 500)),
        desktop: None,
        jobs: vec![session_job(job_kind::RELEASE, s)],
    }
}

/// Largest `metadata`, in bytes of compact JSON.
pub const METADATA_MAX_BYTES: usize = 16 * 1024;
/// Longest `timeout_s` / `max_duration_s` accepted: 7 days.
pub const DURATION_MAX_S: i64 = 7 * 24 * 3600;

/// `sessions.create` input.
#[derive(Debug)]
pub struct NewSession {
    /// The agent to run (in the same org).
    pub agent_id: Uuid,
    /// Idle timeout (s); default `session_default_timeout_s`.
    pub timeout_s: Option<i64>,
    /// Longest run (s); default `session_default_max_duration_s`.
    pub max_duration_s: Option<i64>,
    /// A JSON object (≤ 16 KiB), default `{}`.
    pub metadata: Option<Value>,
}

/// Creates a `pending` session of an agent of `org_id` with its first `status` event and its
/// provision job, in one transaction under the org lock (so the live-session limit holds
/// under concurrency). Audited as `session.created`. Errors: 422 for bad fields (an agent id
/// from another org is `agent_id: no such agent`); 429 `session_limit_reached`.
pub async fn create(
    db: &DatabaseConnection,
    bus: &Bus,
    config: &Config,
    org_id: Uuid,
    input: NewSession,
    ctx: &AuditCtx,
) -> AppResult<session::Model> {
    let mut errors = Vec::new();
    let timeout_s = input
        .timeout_s
        .unwrap_or(config.session_default_timeout_s as i64);
    let max_duration_s = input
        .max_duration_s
        .unwrap_or(config.session_default_max_duration_s as i64);
    for (field, v) in [("timeout_s", timeout_s), ("max_duration_s", max_duration_s)] {
        if !(1..=DURATION_MAX_S).contains(&v) {
            errors.push(crate::error::FieldError::new(
                field,
                format!("must be between 1 and {DURATION_MAX_S} seconds"),
            ));
        }
    }
    let metadata = input.metadata.unwrap_or_else(|| json!({}));
    if !metadata.is_object() {
        errors.push(crate::error::FieldError::new(
            "metadata",
            "must be a JSON object",
        ));
    } else if metadata.to_string().len() > METADATA_MAX_BYTES {
        errors.push(crate::error::FieldError::new(
            "metadata",
            format!("must be at most {METADATA_MAX_BYTES} bytes as JSON"),
        ));
    }
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    let tx = super::begin_write(db).await?;
    orgs::lock_org(&tx, org_id).await?;
    let agent = agent::Entity::find_by_id(input.agent_id)
        .filter(agent::Column::OrgId.eq(org_id))
        .one(&tx)
        .await?
        .ok_or_else(|| AppError::field("agent_id", "no such agent in this organization"))?;
    let live = session::Entity::find()
        .filter(session::Column::OrgId.eq(org_id))
        .filter(session::Column::Status.is_in(live_names()))
        .count(&tx)
        .await?;
    let limit = u64::from(config.max_live_sessions_per_org);
    if live >= limit {
        return Err(AppError::TooManyRequests {
            code: "session_limit_reached",
            detail: format!(
                "the organization has {live} live sessions, its limit; stop one and retry"
            ),
            limit: RateLimited {
                retry_after_s: 5,
                policy: format!("\"live_sessions\";q={limit}"),
                limit: "\"live_sessions\";r=0".into(),
            },
        });
    }
    let now = Utc::now();
    let id = Uuid::now_v7();
    let row = session::Model {
        id,
        org_id,
        agent_id: agent.id,
        created_by: ctx.user_id(),
        status: Status::Pending.as_str().into(),
        status_reason: None,
        version: 1,
        timeout_s,
        max_duration_s,
        metadata,
        desktop: None,
        screen_width: agent.screen_width,
        screen_height: agent.screen_height,
        last_seq: 1,
        last_activity_at: now,
        started_at: None,
        ended_at: None,
        created_at: now,
        updated_at: now,
    };
    let active: session::ActiveModel = row.clone().into();
    session::Entity::insert(active)
        .exec_without_returning(&tx)
        .await?;
    session_event::Entity::insert(session_event::ActiveModel {
        session_id: Set(id),
        seq: Set(1),
        org_id: Set(org_id),
        kind: Set("status".into()),
        payload: Set(json!({ "status": "pending", "previous_status": null, "reason": null })),
        created_at: Set(now),
    })
    .exec_without_returning(&tx)
    .await?;
    let mut outbox = Outbox::default();
    queue::enqueue(
        &tx,
        session_job(job_kind::PROVISION, &row),
        config.job_max_attempts,
        &mut outbox,
    )
    .await?;
    outbox.events.push(BusEvent {
        org_id,
        session_id: id,
        seq: 1,
        status: true,
    });
    audit::record(
        &tx,
        ctx,
        Event {
            org_id: Some(org_id),
            action: "session.created",
            target_type: audit::target::SESSION,
            target_id: Some(id),
            success: true,
            details: json!({ "agent_id": agent.id }),
        },
    )
    .await?;
    bus.stage(&tx, &outbox).await?;
    tx.commit().await?;
    bus.committed(outbox);
    Ok(row)
}

/// Asks a session of `org_id` to stop: `stopping` now, the stop job releases the desktop.
/// Audited as `session.stopped`. Errors: 404; 409 `invalid_transition` when it is already
/// stopping or ended.
pub async fn stop(
    db: &DatabaseConnection,
    bus: &Bus,
    config: &Config,
    org_id: Uuid,
    session_id: Uuid,
    ctx: &AuditCtx,
) -> AppResult<session::Model> {
    let tx = super::begin_write(db).await?;
    let s = get(&tx, org_id, session_id).await?;
    let mut outbox = Outbox::default();
    let s = transition(
        &tx,
        config,
        s.id,
        stop_step(&s, "stop_requested"),
        &mut outbox,
    )
    .await?;
    audit::record(
        &tx,
        ctx,
        Event {
            org_id: Some(org_id),
            action: "session.stopped",
            target_type: audit::target::SESSION,
            target_id: Some(session_id),
            success: true,
            details: json!({ "reason": "stop_requested" }),
        },
    )
    .await?;
    bus.stage(&tx, &outbox).await?;
    tx.commit().await?;
    bus.committed(outbox);
    Ok(s)
}

/// One session of `org_id`. Errors: 404 (also for another org's session).
pub async fn get(
    db: &impl ConnectionTrait,
    org_id: Uuid,
    session_id: Uuid,
) -> AppResult<session::Model> {
    session::Entity::find_by_id(session_id)
        .filter(session::Column::OrgId.eq(org_id))
        .one(db)
        .await?
        .ok_or(AppError::NotFound("session"))
}

/// The org's sessions, newest first, optionally by status and agent.
pub async fn list(
    db: &impl ConnectionTrait,
    org_id: Uuid,
    status: Option<Status>,
    agent_id: Option<Uuid>,
    page: PageRequest,
) -> AppResult<Page<session::Model>> {
    let mut q = session::Entity::find().filter(session::Column::OrgId.eq(org_id));
    if let Some(s) = status {
        q = q.filter(session::Column::Status.eq(s.as_str()));
    }
    if let Some(a) = agent_id {
        q = q.filter(session::Column::AgentId.eq(a));
    }
    if let Some(after) = page.after {
        q = q.filter(session::Column::Id.lt(after));
    }
    let rows = q
        .order_by_desc(session::Column::Id)
        .limit(page.fetch())
        .all(db)
        .await?;
    Ok(page.finish(rows, |s| s.id))
}

/// Whether the agent has live sessions (it cannot be deleted then).
pub async fn agent_has_live_sessions(db: &impl ConnectionTrait, agent_id: Uuid) -> AppResult<bool> {
    Ok(session::Entity::find()
        .filter(session::Column::AgentId.eq(agent_id))
        .filter(session::Column::Status.is_in(live_names()))
        .count(db)
        .await?
        > 0)
}

/// Whether the org has live sessions, or jobs still to run (a failed session's desktop
/// release, say): it cannot be deleted then, or a desktop could be stranded.
pub async fn org_has_live_work(db: &impl ConnectionTrait, org_id: Uuid) -> AppResult<bool> {
    use crate::{entity::job, jobs::queue::JobStatus};
    let live = session::Entity::find()
        .filter(session::Column::OrgId.eq(org_id))
        .filter(session::Column::Status.is_in(live_names()))
        .count(db)
        .await?;
    let unfinished = job::Entity::find()
        .filter(job::Column::OrgId.eq(org_id))
        .filter(
            job::Column::Status.is_in([JobStatus::Pending.as_str(), JobStatus::Running.as_str()]),
        )
        .count(db)
        .await?;
    Ok(live + unfinished > 0)
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

/// The reaper's session pass: stops live sessions past their idle timeout or maximum
/// duration (a stuck `stopping` session past its maximum duration is failed). Returns how
/// many it moved. Concurrent reapers on several nodes are safe: transitions compare-and-set.
pub async fn reap(db: &DatabaseConnection, bus: &Bus, config: &Config) -> AppResult<usize> {
    let now = Utc::now();
    let mut moved = 0;
    let mut after: Option<Uuid> = None;
    // Every live session, a page at a time, so none is starved however many there are.
    loop {
        let mut q = session::Entity::find().filter(session::Column::Status.is_in(live_names()));
        if let Some(a) = after {
            q = q.filter(session::Column::Id.gt(a));
        }
        let page = q
            .order_by_asc(session::Column::Id)
            .limit(500)
            .all(db)
            .await?;
        let Some(last) = page.last().map(|s| s.id) else {
            return Ok(moved);
        };
        after = Some(last);
        for s in page {
            let Some(reason) = expiry_reason(&s, now) else {
                continue;
            };
            let step = if s.status == Status::Stopping.as_str() {
                if reason != "max_duration" {
                    continue;
                }
                fail_step(&s, "stop did not finish within max_duration_s")
            } else {
                stop_step(&s, reason)
            };
            match transition_now(db, bus, config, s.id, step).await {
                Ok(_) => moved += 1,
                Err(AppError::SessionState { .. }) | Err(AppError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
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
        for from in Status::ALL {
            for to in Status::ALL {
                assert_eq!(
                    check_transition(from, to).is_ok(),
                    allowed.contains(&(from, to)),
                    "{from:?} → {to:?}"
                );
            }
        }
        // Final states have no way out; every live state can fail.
        for s in Status::ALL {
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
            status: "running".into(),
            status_reason: None,
            version: 1,
            timeout_s: 60,
            max_duration_s: 3600,
            metadata: json!({}),
            desktop: None,
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
