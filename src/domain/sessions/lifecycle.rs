//! The session lifecycle: creating a session, stopping it, and every state change, each one
//! transaction (ARCHITECTURE §2).
//!
//! [`transition`] applies one step in the caller's transaction: on PostgreSQL it first takes
//! `pg_advisory_xact_lock` on the session; it compare-and-sets `status` and `version`,
//! takes the next `seq` from the session row (so status events are ordered with appended
//! events), appends the `status` event, cancels open commands when the session winds down,
//! and enqueues the follow-up jobs — all or nothing, committed with its outbox.

use chrono::Utc;
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect,
    sea_query::{Expr, ExprTrait},
};
use serde_json::{Value, json};
use uuid::Uuid;

use super::{
    jobs::{ProvisionSession, ReleaseDesktop, StopSession},
    state::{Status, check_transition, expiry_reason, invalid_transition},
    store::{advisory_lock, get},
};
use crate::{
    config::Config,
    domain::{
        audit::{self, AuditCtx, Event},
        orgs,
    },
    entity::{OrgId, SessionId, Tenant, agent, api_key, session, session_event},
    error::{AppError, AppResult, ProblemCode, RateLimited},
    jobs::queue::{self, NewJob},
    realtime::bus::{Bus, BusEvent, Outbox},
    runtime::Desktop,
};

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

/// Applies `step` to the session in the caller's transaction (see the module docs).
/// Errors: 404 `not_found`; 409 `invalid_transition` (with the current state) when the state
/// machine forbids it or a concurrent change won.
pub async fn transition(
    tx: &impl ConnectionTrait,
    config: &Config,
    session_id: SessionId,
    step: Step,
    outbox: &mut Outbox,
) -> AppResult<session::Model> {
    advisory_lock(tx, session_id).await?;
    let current = session::Entity::find_by_id(session_id)
        .one(tx)
        .await?
        .ok_or(AppError::NotFound("session"))?;
    let from = current.status;
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
        session_id: Set(session_id.0),
        seq: Set(updated.last_seq),
        org_id: Set(updated.org_id),
        kind: Set(session_event::Kind::Status),
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
        crate::domain::commands::cancel_open(tx, session_id).await?;
    }
    for job in step.jobs {
        queue::enqueue(tx, job, config.job_max_attempts, outbox).await?;
    }
    outbox.events.push(BusEvent {
        org_id: updated.org_id,
        session_id: session_id.0,
        seq: updated.last_seq,
        status: true,
    });
    Ok(updated)
}

/// Runs [`transition`] in its own transaction and publishes it. Errors: as [`transition`].
#[tracing::instrument(name = "sessions.transition_now", skip_all, fields(session_id = %session_id))]
pub async fn transition_now(
    db: &DatabaseConnection,
    bus: &Bus,
    config: &Config,
    session_id: SessionId,
    step: Step,
) -> AppResult<session::Model> {
    let tx = crate::domain::begin_write(db).await?;
    let mut outbox = Outbox::default();
    let s = transition(&tx, config, session_id, step, &mut outbox).await?;
    bus.commit(tx, outbox).await?;
    Ok(s)
}

/// Fails session `session_id` with `reason` if it is still `running` (its desktop is gone);
/// `Ok(false)` when it is gone or no longer running. The reason loses any NUL (it may quote
/// a desktop's own words, and PostgreSQL text cannot hold NUL). Errors: database errors;
/// a concurrent change of status.
pub async fn fail_running(
    db: &DatabaseConnection,
    bus: &Bus,
    config: &Config,
    session_id: SessionId,
    reason: &str,
) -> AppResult<bool> {
    let Some(s) = super::store::find(db, session_id).await? else {
        return Ok(false);
    };
    if s.status != Status::Running {
        return Ok(false);
    }
    let step = fail_step(&s, &reason.replace('\0', ""));
    transition_now(db, bus, config, session_id, step).await?;
    Ok(true)
}

/// A `stopping` step with its stop job.
pub fn stop_step(s: &session::Model, reason: &str) -> Step {
    Step {
        to: Status::Stopping,
        reason: Some(reason.to_owned()),
        desktop: None,
        jobs: vec![NewJob::of(&StopSession::of(s))],
    }
}

/// A `failed` step with its release job (failed sessions' desktops are always released).
pub fn fail_step(s: &session::Model, reason: &str) -> Step {
    Step {
        to: Status::Failed,
        reason: Some(queue::truncate(reason, 500)),
        desktop: None,
        jobs: vec![NewJob::of(&ReleaseDesktop::of(s))],
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
/// under concurrency). The session counts against its accountable user's
/// `max_live_sessions_per_user` across all orgs ([`accountable_user`]), checked under a lock
/// of that user's row (taken before the org lock). Audited as `session.created`. Errors: 422
/// for bad fields (an agent id from another org is `agent_id: no such agent`); 429
/// `session_limit_reached` (the org's limit); 429 `quota_exceeded`
/// (`max_live_sessions_per_user`, `Retry-After: 5`).
#[tracing::instrument(name = "sessions.create", skip_all, fields(org_id = %org_id))]
pub async fn create(
    db: &DatabaseConnection,
    bus: &Bus,
    config: &Config,
    org_id: OrgId,
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
    let tx = crate::domain::begin_write(db).await?;
    let accountable = accountable_user(&tx, ctx).await?;
    if let Some(user_id) = accountable {
        // The user row before the org row: the lock order of `accounts::erase`.
        crate::domain::accounts::lock_user(&tx, user_id).await?;
    }
    orgs::lock_org(&tx, org_id.0).await?;
    let agent = agent::Entity::find_in_by_id(org_id, input.agent_id)
        .one(&tx)
        .await?
        .ok_or_else(|| AppError::field("agent_id", "no such agent in this organization"))?;
    let live = session::Entity::find_in(org_id)
        .filter(session::Column::Status.is_in(Status::LIVE))
        .count(&tx)
        .await?;
    let limit = u64::from(config.max_live_sessions_per_org);
    if live >= limit {
        return Err(AppError::TooManyRequests {
            code: ProblemCode::SessionLimitReached,
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
    if let Some(user_id) = accountable {
        let live = session::Entity::find()
            .filter(session::Column::AccountableUserId.eq(user_id))
            .filter(session::Column::Status.is_in(Status::LIVE))
            .count(&tx)
            .await?;
        let max = u64::from(config.max_live_sessions_per_user);
        if live >= max {
            return Err(AppError::QuotaExceeded {
                limit: "max_live_sessions_per_user",
                max,
                detail: format!(
                    "{live} live sessions across your organizations count against you (started by you or your API keys), the limit `max_live_sessions_per_user`; stop one and retry"
                ),
                retry_after_s: Some(5),
            });
        }
    }
    let now = Utc::now();
    let id = Uuid::now_v7();
    let row = session::Model {
        id,
        org_id: org_id.0,
        agent_id: agent.id,
        created_by: ctx.user_id(),
        accountable_user_id: accountable,
        status: Status::Pending,
        status_reason: None,
        version: 1,
        timeout_s,
        max_duration_s,
        metadata,
        desktop: None,
        desktop_secret: None,
        executor: agent.executor,
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
        org_id: Set(org_id.0),
        kind: Set(session_event::Kind::Status),
        payload: Set(json!({ "status": "pending", "previous_status": null, "reason": null })),
        created_at: Set(now),
    })
    .exec_without_returning(&tx)
    .await?;
    let mut outbox = Outbox::default();
    queue::enqueue(
        &tx,
        NewJob::of(&ProvisionSession::of(&row)),
        config.job_max_attempts,
        &mut outbox,
    )
    .await?;
    outbox.events.push(BusEvent {
        org_id: org_id.0,
        session_id: id,
        seq: 1,
        status: true,
    });
    audit::record(
        &tx,
        ctx,
        Event {
            org_id: Some(org_id.0),
            action: "session.created",
            target_type: audit::target::SESSION,
            target_id: Some(id),
            success: true,
            details: json!({ "agent_id": agent.id }),
        },
    )
    .await?;
    bus.commit(tx, outbox).await?;
    Ok(row)
}

/// Most API-key hops followed from a key to the user behind it.
const MAX_KEY_CHAIN: usize = 32;

/// The user a new session started by `ctx`'s actor counts against: the user themself, or
/// for an API key the user behind it (`created_by`, following `created_by_key` through keys
/// made by keys); `None` when there is none (a key chain with no recorded user).
pub async fn accountable_user(
    db: &impl ConnectionTrait,
    ctx: &AuditCtx,
) -> AppResult<Option<Uuid>> {
    if let Some(user_id) = ctx.user_id() {
        return Ok(Some(user_id));
    }
    let mut next = match ctx.actor_type {
        audit::ActorType::ApiKey => ctx.actor_id,
        _ => None,
    };
    for _ in 0..MAX_KEY_CHAIN {
        let Some(key_id) = next else {
            return Ok(None);
        };
        let Some(key) = api_key::Entity::find_by_id(key_id).one(db).await? else {
            return Ok(None);
        };
        if key.created_by.is_some() {
            return Ok(key.created_by);
        }
        next = key.created_by_key;
    }
    Ok(None)
}

/// Asks a session of `org_id` to stop: `stopping` now, the stop job releases the desktop.
/// Audited as `session.stopped`. Errors: 404; 409 `invalid_transition` when it is already
/// stopping or ended.
#[tracing::instrument(name = "sessions.stop", skip_all, fields(org_id = %org_id, session_id = %session_id))]
pub async fn stop(
    db: &DatabaseConnection,
    bus: &Bus,
    config: &Config,
    org_id: OrgId,
    session_id: SessionId,
    ctx: &AuditCtx,
) -> AppResult<session::Model> {
    let tx = crate::domain::begin_write(db).await?;
    let s = get(&tx, org_id, session_id).await?;
    let mut outbox = Outbox::default();
    let s = transition(
        &tx,
        config,
        SessionId(s.id),
        stop_step(&s, "stop_requested"),
        &mut outbox,
    )
    .await?;
    audit::record(
        &tx,
        ctx,
        Event {
            org_id: Some(org_id.0),
            action: "session.stopped",
            target_type: audit::target::SESSION,
            target_id: Some(session_id.0),
            success: true,
            details: json!({ "reason": "stop_requested" }),
        },
    )
    .await?;
    bus.commit(tx, outbox).await?;
    Ok(s)
}

/// The reaper's session pass: stops live sessions past their idle timeout or maximum
/// duration (a stuck `stopping` session past its maximum duration is failed). Returns how
/// many it moved. Concurrent reapers on several nodes are safe: transitions compare-and-set.
#[tracing::instrument(name = "sessions.reap", skip_all)]
pub async fn reap(db: &DatabaseConnection, bus: &Bus, config: &Config) -> AppResult<usize> {
    let now = Utc::now();
    let mut moved = 0;
    let mut after: Option<Uuid> = None;
    // Every live session, a page at a time, so none is starved however many there are.
    loop {
        let mut q = session::Entity::find().filter(session::Column::Status.is_in(Status::LIVE));
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
            let step = if s.status == Status::Stopping {
                if reason != "max_duration" {
                    continue;
                }
                fail_step(&s, "stop did not finish within max_duration_s")
            } else {
                stop_step(&s, reason)
            };
            match transition_now(db, bus, config, SessionId(s.id), step).await {
                Ok(_) => moved += 1,
                Err(AppError::SessionState { .. }) | Err(AppError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
    }
}
