//! `/v1/orgs/{org_id}/sessions`: start, watch and stop sessions.

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::{
    ApiResponse, Enum, Object, OpenApi,
    param::{Header, Path, Query},
    payload::Json,
};
use uuid::Uuid;

use super::{JsonObject, OrgAuth, Tag, access, etag, to_object};
use crate::{
    api_errors,
    auth::rbac,
    domain::{
        page::PageRequest,
        sessions::{self, NewSession, Status},
    },
    entity::{SessionId, session},
    http::middleware::ClientInfo,
    runtime::Desktop,
    state::AppState,
};

/// A session's lifecycle state: `pending → provisioning → running → stopping → stopped`, or
/// `failed` from any state before `stopped` (see `status_reason`).
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[oai(rename_all = "lowercase")]
pub enum SessionStatus {
    /// Accepted; waiting for a worker to provision the desktop.
    Pending,
    /// The desktop is starting.
    Provisioning,
    /// The desktop is up (see `desktop`); the agent works.
    Running,
    /// Winding down; the desktop is being released.
    Stopping,
    /// Ended normally (final).
    Stopped,
    /// Ended by an error (final); `status_reason` says why.
    Failed,
}

impl From<Status> for SessionStatus {
    fn from(s: Status) -> Self {
        match s {
            Status::Pending => Self::Pending,
            Status::Provisioning => Self::Provisioning,
            Status::Running => Self::Running,
            Status::Stopping => Self::Stopping,
            Status::Stopped => Self::Stopped,
            Status::Failed => Self::Failed,
        }
    }
}

impl From<SessionStatus> for Status {
    fn from(s: SessionStatus) -> Self {
        match s {
            SessionStatus::Pending => Self::Pending,
            SessionStatus::Provisioning => Self::Provisioning,
            SessionStatus::Running => Self::Running,
            SessionStatus::Stopping => Self::Stopping,
            SessionStatus::Stopped => Self::Stopped,
            SessionStatus::Failed => Self::Failed,
        }
    }
}

/// Where a running session's desktop is reachable (RFB/VNC).
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
pub struct DesktopOut {
    /// Host of the VNC server, e.g. `127.0.0.1`.
    pub vnc_host: String,
    /// TCP port of the VNC server.
    pub vnc_port: u16,
    /// X display, e.g. `:101`.
    pub display: String,
    /// Screen width (pixels).
    pub width: u32,
    /// Screen height (pixels).
    pub height: u32,
}

/// A session.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
pub struct SessionOut {
    /// Session id (UUIDv7).
    pub id: Uuid,
    /// The organization it belongs to.
    pub org_id: Uuid,
    /// The agent it runs.
    pub agent_id: Uuid,
    /// Lifecycle state.
    pub status: SessionStatus,
    /// Why it is stopping, stopped or failed: `stop_requested`, `idle_timeout`,
    /// `max_duration`, or an error message.
    pub status_reason: Option<String>,
    /// Idle timeout (s): stopped when no event or command arrives for this long.
    pub timeout_s: i64,
    /// Longest run (s) from creation.
    pub max_duration_s: i64,
    /// Caller-supplied metadata.
    pub metadata: JsonObject,
    /// The desktop, once provisioned (absent with the `none` runtime and before `running`).
    pub desktop: Option<DesktopOut>,
    /// Who performs its commands: `builtin` (Agentdesk, over its link to the desktop) or
    /// `external` (`commands.claim`); absent while an `auto` agent's session has no desktop
    /// yet.
    pub executor: Option<SessionExecutor>,
    /// The last event `seq` written so far.
    pub last_seq: i64,
    /// Version, +1 per status change: the `ETag` is `"<version>"`.
    pub version: i64,
    /// The user who started it.
    pub created_by: Option<Uuid>,
    /// Creation time (RFC 3339, UTC).
    pub created_at: DateTime<Utc>,
    /// When it reached `running`.
    pub started_at: Option<DateTime<Utc>>,
    /// When it reached `stopped` or `failed`.
    pub ended_at: Option<DateTime<Utc>>,
    /// Last event or command (the idle clock).
    pub last_activity_at: DateTime<Utc>,
    /// Last change (RFC 3339, UTC).
    pub updated_at: DateTime<Utc>,
}

/// Who performs a session's commands.
#[derive(poem_openapi::Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[oai(rename_all = "lowercase")]
pub enum SessionExecutor {
    /// Agentdesk's built-in executor.
    Builtin,
    /// An external executor (`commands.claim`, `commands.complete`).
    External,
}

impl From<session::Model> for SessionOut {
    fn from(s: session::Model) -> Self {
        let executor = if crate::domain::desktops::is_builtin(&s) {
            Some(SessionExecutor::Builtin)
        } else if s.executor.is_none()
            && s.desktop.is_none()
            && !s.status.is_final()
            && s.status != crate::entity::session::Status::Running
        {
            None
        } else {
            Some(SessionExecutor::External)
        };
        let desktop = s
            .desktop
            .and_then(|d| serde_json::from_value::<Desktop>(d).ok())
            .map(|d| DesktopOut {
                vnc_host: d.vnc_host,
                vnc_port: d.vnc_port,
                display: d.display,
                width: d.width,
                height: d.height,
            });
        Self {
            id: s.id,
            org_id: s.org_id,
            agent_id: s.agent_id,
            status: s.status.into(),
            status_reason: s.status_reason,
            timeout_s: s.timeout_s,
            max_duration_s: s.max_duration_s,
            metadata: to_object(s.metadata),
            desktop,
            executor,
            last_seq: s.last_seq,
            version: s.version,
            created_by: s.created_by,
            created_at: s.created_at,
            started_at: s.started_at,
            ended_at: s.ended_at,
            last_activity_at: s.last_activity_at,
            updated_at: s.updated_at,
        }
    }
}

/// `sessions.create` request.
#[derive(Object)]
#[oai(skip_serializing_if_is_none, example)]
pub struct SessionIn {
    /// The agent to run (of this organization).
    pub agent_id: Uuid,
    /// Idle timeout (s), 1–604800; default `session_default_timeout_s` (900).
    #[oai(validator(minimum(value = "1"), maximum(value = "604800")))]
    pub timeout_s: Option<i64>,
    /// Longest run (s), 1–604800; default `session_default_max_duration_s` (14400).
    #[oai(validator(minimum(value = "1"), maximum(value = "604800")))]
    pub max_duration_s: Option<i64>,
    /// Your own data about the session (a JSON object, at most 16 KiB).
    pub metadata: Option<JsonObject>,
}

/// A page of sessions.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
pub struct SessionList {
    /// The sessions, newest first.
    pub items: Vec<SessionOut>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// `sessions.create` / `sessions.stop` success.
#[derive(ApiResponse)]
pub enum SessionAccepted {
    /// Accepted: the session is `pending` (create) or `stopping` (stop); follow it with
    /// `sessions.get` or the event stream.
    #[oai(status = 202)]
    Accepted(
        Json<SessionOut>,
        /// The session's URL.
        #[oai(header = "Location")]
        String,
    ),
}

/// One session.
#[derive(ApiResponse)]
pub enum SessionResponse {
    /// The session.
    #[oai(status = 200)]
    Ok(
        Json<SessionOut>,
        /// Current version.
        #[oai(header = "ETag")]
        String,
    ),
}

/// A page of sessions.
#[derive(ApiResponse)]
pub enum SessionListResponse {
    /// The page.
    #[oai(status = 200)]
    Ok(Json<SessionList>),
}

api_errors!(SessionCreateErrors {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    Conflict,
    PayloadTooLarge,
    UnsupportedMediaType,
    Unprocessable
});
api_errors!(SessionReadErrors {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound
});
api_errors!(SessionStopErrors {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    Conflict,
    Unprocessable
});

fn location(s: &session::Model) -> String {
    format!("/v1/orgs/{}/sessions/{}", s.org_id, s.id)
}

/// The session operations.
pub struct SessionsApi;

#[OpenApi(tag = "Tag::Sessions")]
impl SessionsApi {
    /// Start a session
    ///
    /// Needs `sessions:write`. Answers 202 with the session `pending`; a worker provisions
    /// its desktop and moves it to `running` (watch `sessions.get` or the event stream).
    /// Over the org's live-session limit → 429 `session_limit_reached`. The session counts
    /// against the calling user (for an API key, the user who made it, or made the key that
    /// made it) across all their organizations: over `max_live_sessions_per_user` → 429
    /// `quota_exceeded` naming the limit in `limit`, with `Retry-After`. Honours
    /// `Idempotency-Key`. Audited as `session.created`.
    #[oai(
        path = "/v1/orgs/:org_id/sessions",
        method = "post",
        operation_id = "sessions.create"
    )]
    async fn create(
        &self,
        state: Data<&AppState>,
        client: Data<&ClientInfo>,
        auth: OrgAuth,
        /// Organization id.
        org_id: Path<Uuid>,
        /// Makes a retry safe: the same key with the same body replays the first response
        /// (with `Idempotent-Replayed: true`) for 24 h; with another body → 422
        /// `idempotency_key_reused`; while the first is running → 409 `idempotency_key_in_use`.
        #[oai(
            name = "Idempotency-Key",
            validator(min_length = 1, max_length = 255, pattern = r"^[!-~]+$")
        )]
        _idempotency_key: Header<Option<String>>,
        body: Json<SessionIn>,
    ) -> Result<SessionAccepted, SessionCreateErrors> {
        let a = access(&state, &auth, org_id.0, rbac::SESSIONS_WRITE).await?;
        let b = body.0;
        let input = NewSession {
            agent_id: b.agent_id,
            timeout_s: b.timeout_s,
            max_duration_s: b.max_duration_s,
            metadata: b
                .metadata
                .map(|m| serde_json::Value::Object(m.into_iter().collect())),
        };
        let ctx = client.audit().as_subject(&a.subject);
        let s =
            sessions::create(&state.db, &state.bus, &state.config, a.org(), input, &ctx).await?;
        let loc = location(&s);
        Ok(SessionAccepted::Accepted(Json(s.into()), loc))
    }

    /// List sessions
    ///
    /// Needs `sessions:read`. Newest first; filter by `status` and `agent_id`.
    #[oai(
        path = "/v1/orgs/:org_id/sessions",
        method = "get",
        operation_id = "sessions.list"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn list(
        &self,
        state: Data<&AppState>,
        auth: OrgAuth,
        /// Organization id.
        org_id: Path<Uuid>,
        /// Only sessions in this state.
        status: Query<Option<SessionStatus>>,
        /// Only sessions of this agent.
        agent_id: Query<Option<Uuid>>,
        /// Page size, 1–200 (default 50).
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))]
        limit: Query<Option<u32>>,
        /// `next_cursor` from the previous page.
        cursor: Query<Option<String>>,
    ) -> Result<SessionListResponse, SessionReadErrors> {
        let a = access(&state, &auth, org_id.0, rbac::SESSIONS_READ).await?;
        let page = PageRequest::new(limit.0, cursor.0.as_deref())?;
        let page = sessions::list(
            &state.db,
            a.org(),
            status.0.map(Into::into),
            agent_id.0,
            page,
        )
        .await?;
        Ok(SessionListResponse::Ok(Json(SessionList {
            items: page.items.into_iter().map(Into::into).collect(),
            next_cursor: page.next_cursor,
        })))
    }

    /// Get a session
    ///
    /// Needs `sessions:read`. Sends `ETag`. `desktop` is present once it is `running` (with a
    /// desktop runtime).
    #[oai(
        path = "/v1/orgs/:org_id/sessions/:session_id",
        method = "get",
        operation_id = "sessions.get"
    )]
    async fn get(
        &self,
        state: Data<&AppState>,
        auth: OrgAuth,
        /// Organization id.
        org_id: Path<Uuid>,
        /// Session id.
        session_id: Path<Uuid>,
    ) -> Result<SessionResponse, SessionReadErrors> {
        let a = access(&state, &auth, org_id.0, rbac::SESSIONS_READ).await?;
        let s = sessions::get(&state.db, a.org(), SessionId(session_id.0)).await?;
        let tag = etag(s.version);
        Ok(SessionResponse::Ok(Json(s.into()), tag))
    }

    /// Stop a session
    ///
    /// Needs `sessions:write`. Answers 202 with the session `stopping`; a worker releases
    /// the desktop and moves it to `stopped`. Open commands are cancelled. A session already
    /// stopping or ended → 409 `invalid_transition` with `current_status`. Honours
    /// `Idempotency-Key`. Audited as `session.stopped`.
    #[oai(
        path = "/v1/orgs/:org_id/sessions/:session_id/stop",
        method = "post",
        operation_id = "sessions.stop"
    )]
    async fn stop(
        &self,
        state: Data<&AppState>,
        client: Data<&ClientInfo>,
        auth: OrgAuth,
        /// Organization id.
        org_id: Path<Uuid>,
        /// Session id.
        session_id: Path<Uuid>,
        /// Makes a retry safe: the same key replays the first response (with
        /// `Idempotent-Replayed: true`) for 24 h; while the first is running → 409
        /// `idempotency_key_in_use`.
        #[oai(
            name = "Idempotency-Key",
            validator(min_length = 1, max_length = 255, pattern = r"^[!-~]+$")
        )]
        _idempotency_key: Header<Option<String>>,
    ) -> Result<SessionAccepted, SessionStopErrors> {
        let a = access(&state, &auth, org_id.0, rbac::SESSIONS_WRITE).await?;
        let ctx = client.audit().as_subject(&a.subject);
        let s = sessions::stop(
            &state.db,
            &state.bus,
            &state.config,
            a.org(),
            SessionId(session_id.0),
            &ctx,
        )
        .await?;
        let loc = location(&s);
        Ok(SessionAccepted::Accepted(Json(s.into()), loc))
    }
}

/// A session of an agent (replace `agent_id` with the `id` `agents.create` returned).
impl poem_openapi::types::Example for SessionIn {
    fn example() -> Self {
        Self {
            agent_id: uuid::Uuid::from_u128(0x0193_8a5c_1f00_7000_8000_0000_0000_0001),
            timeout_s: Some(900),
            max_duration_s: Some(3600),
            metadata: Some(
                [("ticket".to_owned(), serde_json::json!("SUP-1042"))]
                    .into_iter()
                    .collect(),
            ),
        }
    }
}
