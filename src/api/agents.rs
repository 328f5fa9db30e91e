//! `/v1/orgs/{org_id}/agents`: AI agent definitions and their capabilities.

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::{
    ApiResponse, Enum, Object, OpenApi,
    param::{Header, Path, Query},
    payload::Json,
};
use uuid::Uuid;

use super::{OrgAuth, Tag, access, etag, required_if_match};
use crate::{
    api_errors,
    auth::rbac,
    domain::{
        agents::{self, AgentFields, AgentView},
        page::PageRequest,
    },
    entity::agent,
    http::middleware::ClientInfo,
    state::AppState,
};

/// An agent capability: what the agent may do on its desktop. Commands needing a capability
/// the agent lacks are refused with 403 `capability_denied`.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Capability {
    /// Take screenshots (`screenshot` commands).
    #[oai(rename = "desktop:screen.capture")]
    ScreenCapture,
    /// Move, click and scroll the pointer (`move`, `click`, `scroll`).
    #[oai(rename = "desktop:input.pointer")]
    InputPointer,
    /// Type text and press keys (`type`, `key`).
    #[oai(rename = "desktop:input.keyboard")]
    InputKeyboard,
    /// Set the clipboard (`clipboard_set`).
    #[oai(rename = "desktop:clipboard")]
    Clipboard,
    /// Run shell commands (`shell`).
    #[oai(rename = "desktop:shell")]
    Shell,
    /// Read and write files on the desktop.
    #[oai(rename = "desktop:files")]
    Files,
    /// Open URLs in the browser (`open_url`).
    #[oai(rename = "browser:navigate")]
    Navigate,
}

impl Capability {
    const ALL: [Capability; 7] = [
        Self::ScreenCapture,
        Self::InputPointer,
        Self::InputKeyboard,
        Self::Clipboard,
        Self::Shell,
        Self::Files,
        Self::Navigate,
    ];

    /// The catalog name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ScreenCapture => "desktop:screen.capture",
            Self::InputPointer => "desktop:input.pointer",
            Self::InputKeyboard => "desktop:input.keyboard",
            Self::Clipboard => "desktop:clipboard",
            Self::Shell => "desktop:shell",
            Self::Files => "desktop:files",
            Self::Navigate => "browser:navigate",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// The desktop an agent's sessions get.
#[derive(Object, Clone, Copy)]
#[oai(skip_serializing_if_is_none)]
pub struct DesktopProfile {
    /// Screen width in pixels, 320–7680 (default 1280).
    #[oai(validator(minimum(value = "320"), maximum(value = "7680")))]
    pub width: i32,
    /// Screen height in pixels, 200–4320 (default 800).
    #[oai(validator(minimum(value = "200"), maximum(value = "4320")))]
    pub height: i32,
}

/// Who performs an agent's commands.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[oai(rename_all = "lowercase")]
pub enum ExecutorChoice {
    /// The default: Agentdesk's built-in executor when the session has a desktop (the
    /// `process` runtime), else an external one.
    Auto,
    /// Agentdesk performs the commands itself over its RFB link to the desktop.
    Builtin,
    /// An outside executor claims them (`commands.claim`) and reports results
    /// (`commands.complete`); Agentdesk performs nothing.
    External,
}

impl ExecutorChoice {
    fn stored(self) -> Option<agent::Executor> {
        match self {
            Self::Auto => None,
            Self::Builtin => Some(agent::Executor::Builtin),
            Self::External => Some(agent::Executor::External),
        }
    }

    fn of(e: Option<agent::Executor>) -> Self {
        match e {
            None => Self::Auto,
            Some(agent::Executor::Builtin) => Self::Builtin,
            Some(agent::Executor::External) => Self::External,
        }
    }
}

/// An agent.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
pub struct AgentOut {
    /// Agent id (UUIDv7).
    pub id: Uuid,
    /// The organization it belongs to.
    pub org_id: Uuid,
    /// Name, unique in the organization.
    pub name: String,
    /// Free text ("" when none).
    pub description: String,
    /// The model it runs on, e.g. `claude-sonnet-4-5`.
    pub model: String,
    /// System instructions ("" when none).
    pub instructions: String,
    /// The desktop its sessions get.
    pub desktop: DesktopProfile,
    /// What it may do on the desktop, sorted.
    pub capabilities: Vec<Capability>,
    /// Who performs its sessions' commands.
    pub executor: ExecutorChoice,
    /// Version for optimistic concurrency: the `ETag` is `"<version>"`; `agents.update` needs it in `If-Match`.
    pub version: i64,
    /// The user who created it.
    pub created_by: Option<Uuid>,
    /// Creation time (RFC 3339, UTC).
    pub created_at: DateTime<Utc>,
    /// Last change (RFC 3339, UTC).
    pub updated_at: DateTime<Utc>,
}

impl From<AgentView> for AgentOut {
    fn from(v: AgentView) -> Self {
        let a = v.agent;
        Self {
            id: a.id,
            org_id: a.org_id,
            name: a.name,
            description: a.description,
            model: a.model,
            instructions: a.instructions,
            desktop: DesktopProfile {
                width: a.screen_width,
                height: a.screen_height,
            },
            capabilities: v
                .capabilities
                .iter()
                .filter_map(|c| Capability::parse(c))
                .collect(),
            executor: ExecutorChoice::of(a.executor),
            version: a.version,
            created_by: a.created_by,
            created_at: a.created_at,
            updated_at: a.updated_at,
        }
    }
}

/// `agents.create` request.
#[derive(Object)]
#[oai(skip_serializing_if_is_none, example)]
pub struct AgentIn {
    /// Name, 1–200 characters (not blank, no control characters), unique in the organization
    /// (409 `agent_name_taken`).
    #[oai(validator(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$"
    ))]
    pub name: String,
    /// Free text, up to 2,000 characters.
    #[oai(validator(max_length = 2000))]
    pub description: Option<String>,
    /// The model it runs on, 1–200 characters, not blank, no control characters.
    #[oai(validator(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$"
    ))]
    pub model: String,
    /// System instructions, up to 32,768 characters.
    #[oai(validator(max_length = 32768))]
    pub instructions: Option<String>,
    /// The desktop its sessions get (default 1280×800).
    pub desktop: Option<DesktopProfile>,
    /// What it may do on the desktop (default: nothing).
    #[oai(validator(max_items = 16))]
    pub capabilities: Option<Vec<Capability>>,
    /// Who performs its sessions' commands (default `auto`).
    pub executor: Option<ExecutorChoice>,
}

/// `agents.update` request: absent fields are unchanged; `capabilities` replaces the set.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
pub struct AgentPatch {
    /// New name, 1–200 characters, not blank, no control characters.
    #[oai(validator(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$"
    ))]
    pub name: Option<String>,
    /// New description, up to 2,000 characters.
    #[oai(validator(max_length = 2000))]
    pub description: Option<String>,
    /// New model, 1–200 characters, not blank, no control characters.
    #[oai(validator(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$"
    ))]
    pub model: Option<String>,
    /// New instructions, up to 32,768 characters.
    #[oai(validator(max_length = 32768))]
    pub instructions: Option<String>,
    /// New desktop profile (for sessions started from now on).
    pub desktop: Option<DesktopProfile>,
    /// The complete new capability set.
    #[oai(validator(max_items = 16))]
    pub capabilities: Option<Vec<Capability>>,
    /// Who performs commands of sessions started from now on (`auto` restores the default).
    pub executor: Option<ExecutorChoice>,
}

fn caps(v: Option<Vec<Capability>>) -> Option<Vec<String>> {
    v.map(|c| c.into_iter().map(|c| c.as_str().to_owned()).collect())
}

/// A page of agents.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
pub struct AgentList {
    /// The agents, oldest first.
    pub items: Vec<AgentOut>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// `agents.create` success.
#[derive(ApiResponse)]
pub enum AgentCreated {
    /// Created.
    #[oai(status = 201)]
    Created(
        Json<AgentOut>,
        /// The new agent's URL.
        #[oai(header = "Location")]
        String,
        /// Current version, for `If-Match`.
        #[oai(header = "ETag")]
        String,
    ),
}

/// One agent.
#[derive(ApiResponse)]
pub enum AgentResponse {
    /// The agent.
    #[oai(status = 200)]
    Ok(
        Json<AgentOut>,
        /// Current version, for `If-Match`.
        #[oai(header = "ETag")]
        String,
    ),
}

/// A page of agents.
#[derive(ApiResponse)]
pub enum AgentListResponse {
    /// The page.
    #[oai(status = 200)]
    Ok(Json<AgentList>),
}

/// Deleted.
#[derive(ApiResponse)]
pub enum AgentDeleted {
    /// The agent and its capability rules are gone; its past sessions are kept.
    #[oai(status = 204)]
    NoContent,
}

api_errors!(AgentCreateErrors {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    Conflict,
    PayloadTooLarge,
    UnsupportedMediaType,
    Unprocessable
});
api_errors!(AgentReadErrors {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound
});
api_errors!(AgentUpdateErrors {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    Conflict,
    PreconditionFailed,
    PreconditionRequired,
    PayloadTooLarge,
    UnsupportedMediaType,
    Unprocessable
});
api_errors!(AgentDeleteErrors {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    Conflict
});

/// The agent operations.
pub struct AgentsApi;

#[OpenApi(tag = "Tag::Agents")]
impl AgentsApi {
    /// Create an agent
    ///
    /// Needs `agents:write`. The capabilities become casbin policies on the agent, written in
    /// the same transaction. Honours `Idempotency-Key`. Audited as `agent.created`.
    #[oai(
        path = "/v1/orgs/:org_id/agents",
        method = "post",
        operation_id = "agents.create"
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
        body: Json<AgentIn>,
    ) -> Result<AgentCreated, AgentCreateErrors> {
        let a = access(&state, &auth, org_id.0, rbac::AGENTS_WRITE).await?;
        let b = body.0;
        let fields = AgentFields {
            name: Some(b.name),
            description: b.description,
            model: Some(b.model),
            instructions: b.instructions,
            screen_width: b.desktop.map(|d| d.width),
            screen_height: b.desktop.map(|d| d.height),
            capabilities: Some(caps(b.capabilities).unwrap_or_default()),
            executor: b.executor.map(ExecutorChoice::stored),
        };
        let ctx = client.audit().as_subject(&a.subject);
        let view = agents::create(&state.db, &state.rbac, a.org_id, fields, &ctx).await?;
        let location = format!("/v1/orgs/{}/agents/{}", a.org_id, view.agent.id);
        let tag = etag(view.agent.version);
        Ok(AgentCreated::Created(Json(view.into()), location, tag))
    }

    /// List agents
    ///
    /// Needs `agents:read`. Cursor-paginated, oldest first.
    #[oai(
        path = "/v1/orgs/:org_id/agents",
        method = "get",
        operation_id = "agents.list"
    )]
    async fn list(
        &self,
        state: Data<&AppState>,
        auth: OrgAuth,
        /// Organization id.
        org_id: Path<Uuid>,
        /// Page size, 1–200 (default 50).
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))]
        limit: Query<Option<u32>>,
        /// `next_cursor` from the previous page.
        cursor: Query<Option<String>>,
    ) -> Result<AgentListResponse, AgentReadErrors> {
        let a = access(&state, &auth, org_id.0, rbac::AGENTS_READ).await?;
        let page = PageRequest::new(limit.0, cursor.0.as_deref())?;
        let page = agents::list(&state.db, a.org_id, page).await?;
        Ok(AgentListResponse::Ok(Json(AgentList {
            items: page.items.into_iter().map(Into::into).collect(),
            next_cursor: page.next_cursor,
        })))
    }

    /// Get an agent
    ///
    /// Needs `agents:read`. Sends `ETag`.
    #[oai(
        path = "/v1/orgs/:org_id/agents/:agent_id",
        method = "get",
        operation_id = "agents.get"
    )]
    async fn get(
        &self,
        state: Data<&AppState>,
        auth: OrgAuth,
        /// Organization id.
        org_id: Path<Uuid>,
        /// Agent id.
        agent_id: Path<Uuid>,
    ) -> Result<AgentResponse, AgentReadErrors> {
        let a = access(&state, &auth, org_id.0, rbac::AGENTS_READ).await?;
        let view = agents::get(&state.db, a.org_id, agent_id.0).await?;
        let tag = etag(view.agent.version);
        Ok(AgentResponse::Ok(Json(view.into()), tag))
    }

    /// Update an agent
    ///
    /// Needs `agents:write` and `If-Match` with the `ETag` you read: 428
    /// `precondition_required` without it, 412 `precondition_failed` when the agent changed
    /// meanwhile. `capabilities`, when sent, replaces the whole set. Audited as
    /// `agent.updated`.
    #[oai(
        path = "/v1/orgs/:org_id/agents/:agent_id",
        method = "patch",
        operation_id = "agents.update"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn update(
        &self,
        state: Data<&AppState>,
        client: Data<&ClientInfo>,
        auth: OrgAuth,
        /// Organization id.
        org_id: Path<Uuid>,
        /// Agent id.
        agent_id: Path<Uuid>,
        /// The `ETag` last read (`"<version>"`). Required: without it 428
        /// `precondition_required`.
        #[oai(name = "If-Match", validator(min_length = 1))]
        if_match: Header<String>,
        body: Json<AgentPatch>,
    ) -> Result<AgentResponse, AgentUpdateErrors> {
        let a = access(&state, &auth, org_id.0, rbac::AGENTS_WRITE).await?;
        let version = required_if_match(&if_match.0)?;
        let b = body.0;
        let fields = AgentFields {
            name: b.name,
            description: b.description,
            model: b.model,
            instructions: b.instructions,
            screen_width: b.desktop.map(|d| d.width),
            screen_height: b.desktop.map(|d| d.height),
            capabilities: caps(b.capabilities),
            executor: b.executor.map(ExecutorChoice::stored),
        };
        let ctx = client.audit().as_subject(&a.subject);
        let view = agents::update(
            &state.db,
            &state.rbac,
            a.org_id,
            agent_id.0,
            fields,
            version,
            &ctx,
        )
        .await?;
        let tag = etag(view.agent.version);
        Ok(AgentResponse::Ok(Json(view.into()), tag))
    }

    /// Delete an agent
    ///
    /// Needs `agents:write`. Refused with 409 `agent_has_live_sessions` while a session of
    /// the agent is live; its past sessions and their logs are kept. Audited as
    /// `agent.deleted`.
    #[oai(
        path = "/v1/orgs/:org_id/agents/:agent_id",
        method = "delete",
        operation_id = "agents.delete"
    )]
    async fn delete(
        &self,
        state: Data<&AppState>,
        client: Data<&ClientInfo>,
        auth: OrgAuth,
        /// Organization id.
        org_id: Path<Uuid>,
        /// Agent id.
        agent_id: Path<Uuid>,
    ) -> Result<AgentDeleted, AgentDeleteErrors> {
        let a = access(&state, &auth, org_id.0, rbac::AGENTS_WRITE).await?;
        let ctx = client.audit().as_subject(&a.subject);
        agents::delete(&state.db, &state.rbac, a.org_id, agent_id.0, &ctx).await?;
        Ok(AgentDeleted::NoContent)
    }
}

/// An agent that may look at and click on its desktop.
impl poem_openapi::types::Example for AgentIn {
    fn example() -> Self {
        Self {
            name: "invoice-clerk".into(),
            description: Some("Files supplier invoices in the accounting web app.".into()),
            model: "claude-sonnet-4-5".into(),
            instructions: Some("Open each invoice e-mail and enter it in the ledger.".into()),
            desktop: Some(DesktopProfile {
                width: 1280,
                height: 800,
            }),
            capabilities: Some(vec![
                Capability::ScreenCapture,
                Capability::InputPointer,
                Capability::InputKeyboard,
            ]),
            executor: Some(ExecutorChoice::Auto),
        }
    }
}
