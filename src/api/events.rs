//! `/v1/orgs/{org_id}/sessions/{session_id}/events`: append to and read a session's event
//! log, and follow it live over SSE; `/v1/orgs/{org_id}/events/stream`: status changes of
//! every session of the org, for dashboards.

use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::{StreamExt, stream::BoxStream};
use poem::web::Data;
use poem_openapi::{
    ApiResponse, Enum, Object, OpenApi,
    param::{Header, Path, Query},
    payload::{EventStream, Json},
};
use uuid::Uuid;

use super::{JsonObject, OrgAuth, Tag, access, sessions::SessionStatus, to_object};
use crate::{
    api_errors,
    auth::{Subject, rbac},
    domain::{
        events::{self, NewEvent},
        orgs,
        sessions::{self, Status},
    },
    entity::{SessionId, session_event},
    error::{AppError, FieldError, ProblemCode},
    realtime::sse,
    state::AppState,
};

/// An event kind. `status` (lifecycle changes) is written by the server only.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[oai(rename_all = "lowercase")]
pub enum EventKind {
    /// Something the agent did (accepted commands also appear as `action` events).
    Action,
    /// A screenshot (reference or small inline image).
    Screenshot,
    /// An outcome (command results also appear as `result` events).
    Result,
    /// Chat between the agent and people.
    Message,
    /// Diagnostics.
    Log,
    /// A lifecycle change: `{status, previous_status, reason}` (server only).
    Status,
}

impl From<events::EventKind> for EventKind {
    fn from(k: events::EventKind) -> Self {
        match k {
            events::EventKind::Action => Self::Action,
            events::EventKind::Screenshot => Self::Screenshot,
            events::EventKind::Result => Self::Result,
            events::EventKind::Message => Self::Message,
            events::EventKind::Log => Self::Log,
            events::EventKind::Status => Self::Status,
        }
    }
}

impl From<EventKind> for events::EventKind {
    fn from(k: EventKind) -> Self {
        match k {
            EventKind::Action => Self::Action,
            EventKind::Screenshot => Self::Screenshot,
            EventKind::Result => Self::Result,
            EventKind::Message => Self::Message,
            EventKind::Log => Self::Log,
            EventKind::Status => Self::Status,
        }
    }
}

/// One event of a session's log.
#[derive(Object, Clone)]
#[oai(skip_serializing_if_is_none)]
pub struct EventOut {
    /// Position in the session's log: gapless from 1, in commit order. The SSE `id:`.
    pub seq: i64,
    /// The kind. The SSE `event:`.
    pub kind: EventKind,
    /// The event's data (a JSON object).
    pub payload: JsonObject,
    /// When it was appended (RFC 3339, UTC).
    pub created_at: DateTime<Utc>,
}

impl From<session_event::Model> for EventOut {
    fn from(e: session_event::Model) -> Self {
        Self {
            seq: e.seq,
            kind: e.kind.into(),
            payload: to_object(e.payload),
            created_at: e.created_at,
        }
    }
}

/// The kinds a client may append (`status` is the server's).
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[oai(rename_all = "lowercase")]
pub enum ClientEventKind {
    /// Something the agent did.
    Action,
    /// A screenshot (reference or small inline image).
    Screenshot,
    /// An outcome.
    Result,
    /// Chat between the agent and people.
    Message,
    /// Diagnostics.
    Log,
}

impl From<ClientEventKind> for events::EventKind {
    fn from(k: ClientEventKind) -> Self {
        match k {
            ClientEventKind::Action => Self::Action,
            ClientEventKind::Screenshot => Self::Screenshot,
            ClientEventKind::Result => Self::Result,
            ClientEventKind::Message => Self::Message,
            ClientEventKind::Log => Self::Log,
        }
    }
}

/// One event to append.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
pub struct EventIn {
    /// `action`, `screenshot`, `result`, `message` or `log`.
    pub kind: ClientEventKind,
    /// The event's data: a JSON object of at most `event_payload_max_bytes` (256 KiB by
    /// default) as compact JSON.
    pub payload: JsonObject,
}

/// `events.append` request.
#[derive(Object)]
#[oai(skip_serializing_if_is_none, example)]
pub struct EventBatchIn {
    /// 1–500 events, appended in this order with consecutive seqs.
    #[oai(validator(min_items = 1, max_items = 500))]
    pub events: Vec<EventIn>,
}

/// `events.append` result.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
pub struct AppendedOut {
    /// Seq of the first event appended.
    pub first_seq: i64,
    /// Seq of the last event appended.
    pub last_seq: i64,
}

/// A page of a session's log.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
pub struct EventPage {
    /// Events with `seq > after_seq`, oldest first.
    pub items: Vec<EventOut>,
    /// Pass as `after_seq` for the next page (the last seq returned, or the `after_seq`
    /// sent when the page is empty): polling with it never skips or repeats an event.
    pub next_after_seq: i64,
    /// More events were already there beyond this page.
    pub has_more: bool,
}

/// A session's status change, as the org stream reports it.
#[derive(Object, Clone)]
#[oai(skip_serializing_if_is_none)]
pub struct SessionStatusEvent {
    /// The session.
    pub session_id: Uuid,
    /// The status event's seq in that session's log.
    pub seq: i64,
    /// The new status.
    pub status: SessionStatus,
    /// The status before.
    pub previous_status: Option<SessionStatus>,
    /// Why (`stop_requested`, `idle_timeout`, an error…).
    pub reason: Option<String>,
    /// When it changed (RFC 3339, UTC).
    pub created_at: DateTime<Utc>,
}

/// A session's live event stream.
#[derive(ApiResponse)]
pub enum SessionStream {
    /// `text/event-stream`: `id:` = seq, `event:` = kind, `data:` = the event as JSON; a `:`
    /// heartbeat comment every `sse_heartbeat_s`; ends after the final `status` event.
    #[oai(status = 200)]
    Ok(sse::EncodedEventStream<EventOut>),
}

/// The org's live status stream.
#[derive(ApiResponse)]
pub enum OrgStream {
    /// `text/event-stream`: `event: status`, `id: <session_id>:<seq>`, `data:` a
    /// `SessionStatusEvent`; a `:` heartbeat comment every `sse_heartbeat_s`.
    #[oai(status = 200)]
    Ok(EventStream<BoxStream<'static, SessionStatusEvent>>),
}

/// `events.append` success.
#[derive(ApiResponse)]
pub enum Appended {
    /// Appended; their seqs are `first_seq..=last_seq`.
    #[oai(status = 201)]
    Created(Json<AppendedOut>),
}

/// A page of events.
#[derive(ApiResponse)]
pub enum EventPageResponse {
    /// The page.
    #[oai(status = 200)]
    Ok(Json<EventPage>),
}

api_errors!(EventAppendErrors {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    Conflict,
    PayloadTooLarge,
    UnsupportedMediaType,
    Unprocessable
});
api_errors!(EventReadErrors {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound
});

fn bad_param(name: &str, message: &str) -> AppError {
    AppError::BadRequest {
        code: ProblemCode::InvalidParameter,
        detail: format!("parameter `{name}` {message}"),
        errors: vec![FieldError::new(name, message)],
    }
}

/// Whether a stream's caller may still read the org's sessions (re-checked every
/// [`sse::REAUTHORIZE`], so a removed member's stream ends): the callback the stream
/// plumbing calls.
fn still_allowed(
    state: &AppState,
    subject: &Subject,
    org_id: Uuid,
) -> impl FnMut() -> futures_util::future::BoxFuture<'static, bool> + Send + 'static {
    let (state, subject) = (state.clone(), subject.clone());
    move || {
        let (state, subject) = (state.clone(), subject.clone());
        Box::pin(async move {
            orgs::authorize_fresh(
                &state.db,
                &state.rbac,
                &subject,
                org_id,
                rbac::SESSIONS_READ,
            )
            .await
            .is_ok()
        })
    }
}

/// An event's SSE frame on `events.stream`: `id:` = seq, `event:` = kind, `data:` = the
/// [`EventOut`] (written once per node for all subscribers, [`crate::realtime::feed`]).
fn encode_event(e: &session_event::Model, out: &mut Vec<u8>) {
    let kind = e.kind;
    let seq = e.seq.to_string();
    sse::write_frame(out, &seq, kind.as_str(), &EventOut::from(e.clone()));
}

/// The org stream's item for a `status` event row; `None` when its payload is not a status
/// change.
fn status_event(row: session_event::Model) -> Option<SessionStatusEvent> {
    let status_of = |k: &str| {
        row.payload
            .get(k)
            .and_then(|v| v.as_str())
            .and_then(Status::parse)
    };
    let status = status_of("status")?;
    Some(SessionStatusEvent {
        session_id: row.session_id,
        seq: row.seq,
        status: status.into(),
        previous_status: status_of("previous_status").map(Into::into),
        reason: row
            .payload
            .get("reason")
            .and_then(|v| v.as_str())
            .map(str::to_owned),
        created_at: row.created_at,
    })
}

/// The event operations.
pub struct EventsApi;

#[OpenApi(tag = "Tag::Events")]
impl EventsApi {
    /// Append events
    ///
    /// Needs `sessions:write`. Appends 1–500 events in order; each gets the next `seq`
    /// (gapless, per session, in commit order — also under concurrent appends). Only while
    /// the session is live (409 `session_not_live` with `current_status` once it ended).
    /// Honours `Idempotency-Key`.
    #[oai(
        path = "/v1/orgs/:org_id/sessions/:session_id/events",
        method = "post",
        operation_id = "events.append"
    )]
    async fn append(
        &self,
        state: Data<&AppState>,
        auth: OrgAuth,
        /// Organization id.
        org_id: Path<Uuid>,
        /// Session id.
        session_id: Path<Uuid>,
        /// Makes a retry safe: the same key with the same body replays the first response
        /// (with `Idempotent-Replayed: true`) for 24 h, so no event is appended twice; with
        /// another body → 422 `idempotency_key_reused`; while the first is running → 409
        /// `idempotency_key_in_use`.
        #[oai(
            name = "Idempotency-Key",
            validator(min_length = 1, max_length = 255, pattern = r"^[!-~]+$")
        )]
        _idempotency_key: Header<Option<String>>,
        body: Json<EventBatchIn>,
    ) -> Result<Appended, EventAppendErrors> {
        let a = access(&state, &auth, org_id.0, rbac::SESSIONS_WRITE).await?;
        let batch = body
            .0
            .events
            .into_iter()
            .map(|e| NewEvent {
                kind: e.kind.into(),
                payload: serde_json::Value::Object(e.payload.into_iter().collect()),
            })
            .collect();
        let (first_seq, last_seq) = events::append(
            &state.appenders,
            state.config.event_payload_max_bytes,
            a.org(),
            SessionId(session_id.0),
            batch,
        )
        .await?;
        Ok(Appended::Created(Json(AppendedOut {
            first_seq,
            last_seq,
        })))
    }

    /// Read events
    ///
    /// Needs `sessions:read`. Events with `seq > after_seq`, oldest first, optionally of one
    /// kind. Page with `next_after_seq`.
    #[oai(
        path = "/v1/orgs/:org_id/sessions/:session_id/events",
        method = "get",
        operation_id = "events.list"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn list(
        &self,
        state: Data<&AppState>,
        auth: OrgAuth,
        /// Organization id.
        org_id: Path<Uuid>,
        /// Session id.
        session_id: Path<Uuid>,
        /// Return events after this seq (default 0: from the start).
        #[oai(validator(minimum(value = "0")))]
        after_seq: Query<Option<i64>>,
        /// Page size, 1–500 (default 100).
        #[oai(validator(minimum(value = "1"), maximum(value = "500")))]
        limit: Query<Option<u32>>,
        /// Only events of this kind.
        kind: Query<Option<EventKind>>,
    ) -> Result<EventPageResponse, EventReadErrors> {
        let a = access(&state, &auth, org_id.0, rbac::SESSIONS_READ).await?;
        let after = after_seq.0.unwrap_or(0);
        if after < 0 {
            return Err(bad_param("after_seq", "must be 0 or more").into());
        }
        let limit = limit.0.unwrap_or(100);
        if !(1..=500).contains(&limit) {
            return Err(bad_param("limit", "must be between 1 and 500").into());
        }
        let (rows, has_more) = events::list(
            &state.db,
            a.org(),
            SessionId(session_id.0),
            after,
            limit,
            kind.0.map(Into::into),
        )
        .await?;
        let next_after_seq = rows.last().map(|e| e.seq).unwrap_or(after);
        Ok(EventPageResponse::Ok(Json(EventPage {
            items: rows.into_iter().map(Into::into).collect(),
            next_after_seq,
            has_more,
        })))
    }

    /// Follow a session's events (SSE)
    ///
    /// Needs `sessions:read`. A `text/event-stream`: each event has `id:` = seq, `event:` =
    /// kind and `data:` = the event as JSON. Resumes after `Last-Event-ID` (or `after_seq`):
    /// it first replays what was missed from the log, then follows live, without a gap or a
    /// duplicate. A `:` comment is sent every `sse_heartbeat_s` (15 s). The stream ends after
    /// the session's final `status` event (`stopped` or `failed`).
    #[oai(
        path = "/v1/orgs/:org_id/sessions/:session_id/events/stream",
        method = "get",
        operation_id = "events.stream"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn stream(
        &self,
        req: &poem::Request,
        state: Data<&AppState>,
        auth: OrgAuth,
        /// Organization id.
        org_id: Path<Uuid>,
        /// Session id.
        session_id: Path<Uuid>,
        /// Resume after this seq (the last `id:` received; digits only, empty = absent). Wins
        /// over `after_seq`.
        #[oai(
            name = "Last-Event-ID",
            validator(max_length = 18, pattern = r"^[0-9]*$")
        )]
        last_event_id: Header<Option<String>>,
        /// Start after this seq (default 0: the whole log).
        #[oai(validator(minimum(value = "0")))]
        after_seq: Query<Option<i64>>,
    ) -> Result<SessionStream, EventReadErrors> {
        let a = access(&state, &auth, org_id.0, rbac::SESSIONS_READ).await?;
        // A header that is not visible ASCII never reaches `last_event_id` (poem drops it):
        // refuse it rather than silently replaying from `after_seq`.
        if last_event_id.0.is_none() && req.headers().contains_key("last-event-id") {
            return Err(bad_param("Last-Event-ID", "must be a seq (0 or more)").into());
        }
        let after = match last_event_id
            .0
            .as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty())
        {
            Some(v) => v
                .parse::<i64>()
                .ok()
                .filter(|n| *n >= 0)
                .ok_or_else(|| bad_param("Last-Event-ID", "must be a seq (0 or more)"))?,
            None => after_seq.0.unwrap_or(0),
        };
        if after < 0 {
            return Err(bad_param("after_seq", "must be 0 or more").into());
        }
        let s = sessions::get(&state.db, a.org(), SessionId(session_id.0)).await?;
        let done = s.status.is_final() && after >= s.last_seq;
        let frames = if done {
            futures_util::stream::empty().boxed()
        } else {
            let follower = state
                .feeds
                .follow(session_id.0, after)
                .await
                .map_err(AppError::from)?;
            sse::follow_session(
                follower,
                encode_event,
                events::is_final_status,
                still_allowed(&state, &a.subject, a.org_id),
            )
        };
        Ok(SessionStream::Ok(sse::EncodedEventStream::new(
            frames,
            Duration::from_secs(state.config.sse_heartbeat_s),
        )))
    }

    /// Follow the org's session status changes (SSE)
    ///
    /// Needs `sessions:read`. A `text/event-stream` of every session status change in the
    /// organization (`event: status`, `id: <session_id>:<seq>`, `data:` a
    /// `SessionStatusEvent`), for dashboards. Live only: after a reconnect, re-read
    /// `sessions.list`. The caller's access is re-checked every 30 s; the stream ends when
    /// it is gone. Heartbeat comment every `sse_heartbeat_s`.
    #[oai(
        path = "/v1/orgs/:org_id/events/stream",
        method = "get",
        operation_id = "events.stream_org"
    )]
    async fn stream_org(
        &self,
        state: Data<&AppState>,
        auth: OrgAuth,
        /// Organization id.
        org_id: Path<Uuid>,
    ) -> Result<OrgStream, EventReadErrors> {
        let a = access(&state, &auth, org_id.0, rbac::SESSIONS_READ).await?;
        let stream = sse::follow_org_status(
            state.db.clone(),
            &state.bus,
            a.org_id,
            status_event,
            still_allowed(&state, &a.subject, a.org_id),
        );
        Ok(OrgStream::Ok(sse::event_stream(
            stream,
            Duration::from_secs(state.config.sse_heartbeat_s),
            |e: &SessionStatusEvent| ("status", format!("{}:{}", e.session_id, e.seq)),
        )))
    }
}

/// Two events an agent runner might append: a note to the people watching and a diagnostic.
impl poem_openapi::types::Example for EventBatchIn {
    fn example() -> Self {
        let object = |v: serde_json::Value| super::to_object(v);
        Self {
            events: vec![
                EventIn {
                    kind: ClientEventKind::Message,
                    payload: object(serde_json::json!({ "text": "Opening the invoice inbox." })),
                },
                EventIn {
                    kind: ClientEventKind::Log,
                    payload: object(
                        serde_json::json!({ "level": "info", "message": "3 unread invoices" }),
                    ),
                },
            ],
        }
    }
}
