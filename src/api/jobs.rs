//! `/v1/orgs/{org_id}/jobs`: the org's background jobs, and re-driving dead ones.

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::{
    ApiResponse, Enum, Object, OpenApi,
    param::{Path, Query},
    payload::Json,
};
use uuid::Uuid;

use super::{OrgAuth, Tag, access};
use crate::{
    api_errors,
    auth::rbac,
    domain::{jobs, page::PageRequest},
    entity::job,
    http::middleware::ClientInfo,
    jobs::queue::JobStatus,
    state::AppState,
};

/// A job's state.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[oai(rename_all = "lowercase")]
pub enum JobStatusName {
    /// Waiting for `run_at` (new, or retrying after a backoff).
    Pending,
    /// Claimed by a worker under a lease (`lease_until`).
    Running,
    /// Done.
    Succeeded,
    /// Dead-lettered after `max_attempts`; re-drive with `jobs.retry`.
    Dead,
}

impl From<JobStatusName> for JobStatus {
    fn from(s: JobStatusName) -> Self {
        match s {
            JobStatusName::Pending => Self::Pending,
            JobStatusName::Running => Self::Running,
            JobStatusName::Succeeded => Self::Succeeded,
            JobStatusName::Dead => Self::Dead,
        }
    }
}

impl From<JobStatus> for JobStatusName {
    fn from(s: JobStatus) -> Self {
        match s {
            JobStatus::Pending => Self::Pending,
            JobStatus::Running => Self::Running,
            JobStatus::Succeeded => Self::Succeeded,
            JobStatus::Dead => Self::Dead,
        }
    }
}

/// A background job.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
pub struct JobOut {
    /// Job id (UUIDv7).
    pub id: Uuid,
    /// What it does: `session.provision`, `session.stop` or `session.release`.
    pub kind: String,
    /// Its state.
    pub status: JobStatusName,
    /// The session it works for.
    pub session_id: Option<Uuid>,
    /// Attempts so far (each claim counts).
    pub attempts: i32,
    /// Attempts before it is dead-lettered.
    pub max_attempts: i32,
    /// Not run before this time (RFC 3339, UTC): the retry backoff.
    pub run_at: DateTime<Utc>,
    /// While running: the worker's lease; past it another worker takes the job over.
    pub lease_until: Option<DateTime<Utc>>,
    /// The last failure's message.
    pub last_error: Option<String>,
    /// When it was dead-lettered.
    pub dead_at: Option<DateTime<Utc>>,
    /// Creation time (RFC 3339, UTC).
    pub created_at: DateTime<Utc>,
    /// Last change (RFC 3339, UTC).
    pub updated_at: DateTime<Utc>,
}

impl From<job::Model> for JobOut {
    fn from(j: job::Model) -> Self {
        Self {
            id: j.id,
            kind: j.kind,
            status: j.status.into(),
            session_id: j.session_id,
            attempts: j.attempts,
            max_attempts: j.max_attempts,
            run_at: j.run_at,
            lease_until: j.lease_until,
            last_error: j.last_error,
            dead_at: j.dead_at,
            created_at: j.created_at,
            updated_at: j.updated_at,
        }
    }
}

/// A page of jobs.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
pub struct JobList {
    /// The jobs, newest first.
    pub items: Vec<JobOut>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// A page of jobs.
#[derive(ApiResponse)]
pub enum JobListResponse {
    /// The page.
    #[oai(status = 200)]
    Ok(Json<JobList>),
}

/// One job.
#[derive(ApiResponse)]
pub enum JobResponse {
    /// The job, `pending` again and due now.
    #[oai(status = 200)]
    Ok(Json<JobOut>),
}

api_errors!(JobReadErrors {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound
});
api_errors!(JobRetryErrors {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    Conflict
});

/// The job operations.
pub struct JobsApi;

#[OpenApi(tag = "Tag::Jobs")]
impl JobsApi {
    /// List background jobs
    ///
    /// Needs `jobs:read` (owners, admins). Newest first; `status=dead` is the dead-letter
    /// queue.
    #[oai(
        path = "/v1/orgs/:org_id/jobs",
        method = "get",
        operation_id = "jobs.list"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn list(
        &self,
        state: Data<&AppState>,
        auth: OrgAuth,
        /// Organization id.
        org_id: Path<Uuid>,
        /// Only jobs in this state.
        status: Query<Option<JobStatusName>>,
        /// Only jobs for this session.
        session_id: Query<Option<Uuid>>,
        /// Page size, 1–200 (default 50).
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))]
        limit: Query<Option<u32>>,
        /// `next_cursor` from the previous page.
        cursor: Query<Option<String>>,
    ) -> Result<JobListResponse, JobReadErrors> {
        let a = access(&state, &auth, org_id.0, rbac::JOBS_READ).await?;
        let page = PageRequest::new(limit.0, cursor.0.as_deref())?;
        let page = jobs::list(
            &state.db,
            a.org_id,
            status.0.map(Into::into),
            session_id.0,
            page,
        )
        .await?;
        Ok(JobListResponse::Ok(Json(JobList {
            items: page.items.into_iter().map(Into::into).collect(),
            next_cursor: page.next_cursor,
        })))
    }

    /// Re-drive a dead job
    ///
    /// Needs `jobs:write`. Puts a dead job back to `pending` with its attempts reset, due
    /// now. A job that is not dead → 409 `job_not_dead`. Its handler is idempotent: if what
    /// it worked for has moved on (a failed session), it finishes without effect. Audited
    /// as `job.retried`.
    #[oai(
        path = "/v1/orgs/:org_id/jobs/:job_id/retry",
        method = "post",
        operation_id = "jobs.retry"
    )]
    async fn retry(
        &self,
        state: Data<&AppState>,
        client: Data<&ClientInfo>,
        auth: OrgAuth,
        /// Organization id.
        org_id: Path<Uuid>,
        /// Job id.
        job_id: Path<Uuid>,
    ) -> Result<JobResponse, JobRetryErrors> {
        let a = access(&state, &auth, org_id.0, rbac::JOBS_WRITE).await?;
        let ctx = client.audit().as_subject(&a.subject);
        let job = jobs::retry(&state.db, &state.bus, a.org_id, job_id.0, &ctx).await?;
        Ok(JobResponse::Ok(Json(job.into())))
    }
}
