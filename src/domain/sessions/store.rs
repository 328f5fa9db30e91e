//! The session row store: finding a session of an org, the live-state filter, the
//! per-session `seq` counter that orders events, and the PostgreSQL advisory lock that
//! serialises lifecycle changes. Events and commands build on this module; it builds on
//! nothing else of the domain.

use chrono::Utc;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, Statement,
    sea_query::{Expr, ExprTrait},
};
use uuid::Uuid;

use super::state::Status;
use crate::{
    domain::page::{Page, PageRequest},
    entity::{OrgId, SessionId, Tenant, session},
    error::{AppError, AppResult},
};

/// Serialises lifecycle changes of one session on PostgreSQL (released at commit).
pub(crate) async fn advisory_lock(
    tx: &impl ConnectionTrait,
    session_id: SessionId,
) -> AppResult<()> {
    if tx.get_database_backend() == DbBackend::Postgres {
        let key = session_id.0.as_u64_pair().1 as i64;
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
    org_id: OrgId,
    session_id: SessionId,
    n: i64,
) -> AppResult<Option<i64>> {
    let now = Utc::now();
    let rows = session::Entity::update_in(org_id)
        .col_expr(
            session::Column::LastSeq,
            Expr::col(session::Column::LastSeq).add(n),
        )
        .col_expr(session::Column::LastActivityAt, Expr::value(now))
        .filter(session::Column::Id.eq(session_id))
        .filter(session::Column::Status.is_in(Status::LIVE))
        .exec_with_returning(tx)
        .await?;
    Ok(rows.first().map(|s| s.last_seq))
}

/// A session by id in any org, for background work that already holds the id (a job, the
/// crash recovery); requests use [`get`], which is scoped to the caller's org.
pub async fn find(
    db: &impl ConnectionTrait,
    session_id: SessionId,
) -> AppResult<Option<session::Model>> {
    Ok(session::Entity::find_by_id(session_id).one(db).await?)
}

/// One session of `org_id`. Errors: 404 (also for another org's session).
pub async fn get(
    db: &impl ConnectionTrait,
    org_id: OrgId,
    session_id: SessionId,
) -> AppResult<session::Model> {
    session::Entity::find_in_by_id(org_id, session_id)
        .one(db)
        .await?
        .ok_or(AppError::NotFound("session"))
}

/// The org's sessions, newest first, optionally by status and agent.
pub async fn list(
    db: &impl ConnectionTrait,
    org_id: OrgId,
    status: Option<Status>,
    agent_id: Option<Uuid>,
    page: PageRequest,
) -> AppResult<Page<session::Model>> {
    let mut q = session::Entity::find_in(org_id);
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
        .filter(session::Column::Status.is_in(Status::LIVE))
        .count(db)
        .await?
        > 0)
}

/// Whether the org has live sessions, or jobs still to run (a failed session's desktop
/// release, say): it cannot be deleted then, or a desktop could be stranded.
pub async fn org_has_live_work(db: &impl ConnectionTrait, org_id: Uuid) -> AppResult<bool> {
    use crate::{entity::job, jobs::queue::JobStatus};
    let live = session::Entity::find_in(org_id)
        .filter(session::Column::Status.is_in(Status::LIVE))
        .count(db)
        .await?;
    let unfinished = job::Entity::find_in(org_id)
        .filter(job::Column::Status.is_in([JobStatus::Pending, JobStatus::Running]))
        .count(db)
        .await?;
    Ok(live + unfinished > 0)
}
