//! `/v1/orgs/{org_id}/sessions/{session_id}/commands`: actions relayed to a session's
//! desktop — created by people or orchestrators, claimed and answered by the executor that
//! runs beside the desktop.

use std::time::Duration;

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::{
    ApiResponse, Enum, Object, OpenApi, Union,
    param::{Header, Path, Query},
    payload::Json,
};
use uuid::Uuid;

use super::{JsonObject, OrgAuth, Tag, access, command_result::CommandResult, to_object};
use crate::{
    api_errors,
    auth::rbac,
    domain::{
        commands::{self, CommandKind, CommandStatus},
        page::PageRequest,
    },
    entity::{CommandId, SessionId, command},
    error::{AppError, FieldError, ProblemCode},
    http::middleware::ClientInfo,
    state::AppState,
};

/// Longest long-poll wait of `commands.claim` (s).
pub const CLAIM_WAIT_MAX_S: u32 = 30;

/// A command kind, with the agent capability it needs and its `args`.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[oai(rename_all = "snake_case")]
pub enum CommandKindName {
    /// Capture the screen. Needs `desktop:screen.capture`. Args: none.
    Screenshot,
    /// Click at `x`, `y` (pixels) with optional `button` (`left`, `middle`, `right`). Needs `desktop:input.pointer`.
    Click,
    /// Move the pointer to `x`, `y`. Needs `desktop:input.pointer`.
    Move,
    /// Scroll by `dx`, `dy` (−100…100 wheel steps) at `x`, `y`. Needs `desktop:input.pointer`.
    Scroll,
    /// Type `text` (≤ 64 KiB). Needs `desktop:input.keyboard`.
    Type,
    /// Press the chord `keys`, e.g. `ctrl+c`. Needs `desktop:input.keyboard`.
    Key,
    /// Set the clipboard to `text`. Needs `desktop:clipboard`.
    ClipboardSet,
    /// Run `command` in a shell (≤ 8 KiB). Needs `desktop:shell`.
    Shell,
    /// Open `url` (http or https) in the browser. Needs `browser:navigate`.
    OpenUrl,
}

impl From<CommandKindName> for CommandKind {
    fn from(k: CommandKindName) -> Self {
        match k {
            CommandKindName::Screenshot => Self::Screenshot,
            CommandKindName::Click => Self::Click,
            CommandKindName::Move => Self::Move,
            CommandKindName::Scroll => Self::Scroll,
            CommandKindName::Type => Self::Type,
            CommandKindName::Key => Self::Key,
            CommandKindName::ClipboardSet => Self::ClipboardSet,
            CommandKindName::Shell => Self::Shell,
            CommandKindName::OpenUrl => Self::OpenUrl,
        }
    }
}

impl From<CommandKind> for CommandKindName {
    fn from(k: CommandKind) -> Self {
        match k {
            CommandKind::Screenshot => Self::Screenshot,
            CommandKind::Click => Self::Click,
            CommandKind::Move => Self::Move,
            CommandKind::Scroll => Self::Scroll,
            CommandKind::Type => Self::Type,
            CommandKind::Key => Self::Key,
            CommandKind::ClipboardSet => Self::ClipboardSet,
            CommandKind::Shell => Self::Shell,
            CommandKind::OpenUrl => Self::OpenUrl,
        }
    }
}

/// A command's state: `queued → dispatched → succeeded | failed`; `cancelled` when the
/// session winds down first; `expired` when no executor claimed it in time.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[oai(rename_all = "lowercase")]
pub enum CommandStatusName {
    /// Waiting for the executor.
    Queued,
    /// Claimed by the executor.
    Dispatched,
    /// Done.
    Succeeded,
    /// The executor reported failure (`error`).
    Failed,
    /// The session stopped first.
    Cancelled,
    /// Not claimed within `command_claim_timeout_s`.
    Expired,
}

impl From<CommandStatus> for CommandStatusName {
    fn from(s: CommandStatus) -> Self {
        match s {
            CommandStatus::Queued => Self::Queued,
            CommandStatus::Dispatched => Self::Dispatched,
            CommandStatus::Succeeded => Self::Succeeded,
            CommandStatus::Failed => Self::Failed,
            CommandStatus::Cancelled => Self::Cancelled,
            CommandStatus::Expired => Self::Expired,
        }
    }
}

/// A command.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
pub struct CommandOut {
    /// Command id (UUIDv7).
    pub id: Uuid,
    /// The session it is for.
    pub session_id: Uuid,
    /// What to do.
    pub kind: CommandKindName,
    /// Kind-specific arguments.
    pub args: JsonObject,
    /// Its state.
    pub status: CommandStatusName,
    /// What an external executor reported (`commands.complete`), verbatim (any JSON); absent
    /// for the built-in executor, whose typed outcome is `result`.
    pub output: Option<serde_json::Value>,
    // No doc comment: a described field becomes `allOf: [$ref]`, which generators read as
    // inheritance and lose the union's `kind`; `CommandResult` carries the description.
    pub result: Option<CommandResult>,
    /// The executor's error message, when failed.
    pub error: Option<String>,
    /// Why it failed, as a stable code: `no_desktop`, `desktop_unreachable`, `invalid_args`,
    /// `unsupported`, `storage_failed`, `exec_failed`, `timeout`, `no_browser`; absent when
    /// it did not fail or an external executor gave no code.
    pub error_code: Option<String>,
    /// The user who asked for it.
    pub created_by: Option<Uuid>,
    /// A queued command not claimed by then expires (RFC 3339, UTC).
    pub expires_at: DateTime<Utc>,
    /// When the executor claimed it.
    pub dispatched_at: Option<DateTime<Utc>>,
    /// When it reached a final state.
    pub completed_at: Option<DateTime<Utc>>,
    /// Creation time (RFC 3339, UTC).
    pub created_at: DateTime<Utc>,
    /// Last change (RFC 3339, UTC).
    pub updated_at: DateTime<Utc>,
}

impl From<command::Model> for CommandOut {
    fn from(c: command::Model) -> Self {
        Self {
            id: c.id,
            session_id: c.session_id,
            kind: c.kind.into(),
            args: to_object(c.args),
            status: c.status.into(),
            output: c.output,
            result: c.result.and_then(CommandResult::from_stored),
            error: c.error,
            error_code: c.error_code,
            created_by: c.created_by,
            expires_at: c.expires_at,
            dispatched_at: c.dispatched_at,
            completed_at: c.completed_at,
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

/// Where and how to click.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ClickArgs {
    /// Horizontal position (pixels from the left), 0–16384.
    #[oai(validator(minimum(value = "0"), maximum(value = "16384")))]
    pub x: u32,
    /// Vertical position (pixels from the top), 0–16384.
    #[oai(validator(minimum(value = "0"), maximum(value = "16384")))]
    pub y: u32,
    /// Mouse button (default `left`).
    pub button: Option<MouseButton>,
    /// Clicks in a row: 1 (default), 2 for a double click, 3 for a triple click.
    #[oai(validator(minimum(value = "1"), maximum(value = "3")))]
    pub count: Option<u8>,
}

/// A mouse button.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[oai(rename_all = "lowercase")]
pub enum MouseButton {
    /// The primary button.
    Left,
    /// The wheel button.
    Middle,
    /// The secondary button.
    Right,
}

/// A pointer position.
#[derive(Object)]
pub struct PointArgs {
    /// Horizontal position (pixels from the left), 0–16384.
    #[oai(validator(minimum(value = "0"), maximum(value = "16384")))]
    pub x: u32,
    /// Vertical position (pixels from the top), 0–16384.
    #[oai(validator(minimum(value = "0"), maximum(value = "16384")))]
    pub y: u32,
}

/// Where and how far to scroll.
#[derive(Object)]
pub struct ScrollArgs {
    /// Horizontal position (pixels from the left), 0–16384.
    #[oai(validator(minimum(value = "0"), maximum(value = "16384")))]
    pub x: u32,
    /// Vertical position (pixels from the top), 0–16384.
    #[oai(validator(minimum(value = "0"), maximum(value = "16384")))]
    pub y: u32,
    /// Horizontal wheel steps, −100–100 (positive: right).
    #[oai(validator(minimum(value = "-100"), maximum(value = "100")))]
    pub dx: i32,
    /// Vertical wheel steps, −100–100 (positive: down).
    #[oai(validator(minimum(value = "-100"), maximum(value = "100")))]
    pub dy: i32,
}

/// Text to type or to put on the clipboard.
#[derive(Object)]
pub struct TextArgs {
    /// The text, 1–65,536 characters.
    #[oai(validator(min_length = 1, max_length = 65536))]
    pub text: String,
}

/// A key chord.
#[derive(Object)]
pub struct KeyArgs {
    /// The chord, 1–100 characters: key names joined by `+`, pressed in order and released
    /// in reverse, e.g. `ctrl+shift+t`, `Return`, `super`, `F5`, `a`. Names are
    /// xdotool-compatible X keysym names (`ctrl`/`control`, `shift`, `alt`, `super`/`win`,
    /// `Return`/`Enter`, `Escape`, `Tab`, `BackSpace`, `Delete`, `Home`, `End`, `Page_Up`,
    /// `Page_Down`, arrows `Left`…, `F1`–`F24`, `space`, punctuation names, any single
    /// character); an unknown name → 422 naming `args.keys`.
    #[oai(validator(min_length = 1, max_length = 100))]
    pub keys: String,
}

/// A shell command.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ShellArgs {
    /// The command line, 1–8,192 characters, run by `/bin/sh -c` on the desktop as an
    /// unprivileged user, in the session's working directory, with the desktop's `DISPLAY`.
    #[oai(validator(min_length = 1, max_length = 8192))]
    pub command: String,
    /// Killed (with everything it started) after this many seconds, 1–300 (default 30).
    #[oai(validator(minimum(value = "1"), maximum(value = "300")))]
    pub timeout_s: Option<u32>,
}

/// A URL to open.
#[derive(Object)]
pub struct OpenUrlArgs {
    /// An http or https URL with a host name, up to 2,048 characters.
    #[oai(validator(
        max_length = 2048,
        pattern = r"^https?://(?:(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?|(?:(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9]))(?::[0-9]{1,4})?(?:[/?#][!-~]*)?$"
    ))]
    pub url: String,
}

/// How to capture the screen.
#[derive(Object)]
#[oai(skip_serializing_if_is_none, example)]
pub struct ScreenshotArgs {
    /// Downscale (aspect kept, never up) so the image is at most this wide (pixels),
    /// 1–16384; the output's `scale` says by how much.
    #[oai(validator(minimum(value = "1"), maximum(value = "16384")))]
    pub max_width: Option<u32>,
    /// Likewise for the height (pixels), 1–16384.
    #[oai(validator(minimum(value = "1"), maximum(value = "16384")))]
    pub max_height: Option<u32>,
}

/// `screenshot`: capture the screen as a PNG artifact. Needs `desktop:screen.capture`.
#[derive(Object)]
pub struct ScreenshotCommand {
    /// Optional size bounds; `{}` or absent for the full desktop.
    pub args: Option<ScreenshotArgs>,
}

/// `click`. Needs `desktop:input.pointer`.
#[derive(Object)]
pub struct ClickCommand {
    /// Where and how.
    pub args: ClickArgs,
}

/// `move`: move the pointer. Needs `desktop:input.pointer`.
#[derive(Object)]
pub struct MoveCommand {
    /// Where to.
    pub args: PointArgs,
}

/// `scroll`. Needs `desktop:input.pointer`.
#[derive(Object)]
pub struct ScrollCommand {
    /// Where and how far.
    pub args: ScrollArgs,
}

/// `type`: type text. Needs `desktop:input.keyboard`.
#[derive(Object)]
pub struct TypeCommand {
    /// The text.
    pub args: TextArgs,
}

/// `key`: press a key chord. Needs `desktop:input.keyboard`.
#[derive(Object)]
pub struct KeyCommand {
    /// The chord.
    pub args: KeyArgs,
}

/// `clipboard_set`: set the clipboard. Needs `desktop:clipboard`.
#[derive(Object)]
pub struct ClipboardSetCommand {
    /// The text.
    pub args: TextArgs,
}

/// `shell`: run a command. Needs `desktop:shell`.
#[derive(Object)]
pub struct ShellCommand {
    /// The command.
    pub args: ShellArgs,
}

/// `open_url`: open a URL in the browser. Needs `browser:navigate`.
#[derive(Object)]
pub struct OpenUrlCommand {
    /// The URL.
    pub args: OpenUrlArgs,
}

/// `commands.create` request: `{kind, args}`, where `kind` picks the command and the shape
/// of its `args`.
#[derive(Union)]
#[oai(discriminator_name = "kind", one_of = true)]
pub enum CommandIn {
    /// Capture the screen.
    #[oai(mapping = "screenshot")]
    Screenshot(ScreenshotCommand),
    /// Click.
    #[oai(mapping = "click")]
    Click(ClickCommand),
    /// Move the pointer.
    #[oai(mapping = "move")]
    Move(MoveCommand),
    /// Scroll.
    #[oai(mapping = "scroll")]
    Scroll(ScrollCommand),
    /// Type text.
    #[oai(mapping = "type")]
    Type(TypeCommand),
    /// Press a key chord.
    #[oai(mapping = "key")]
    Key(KeyCommand),
    /// Set the clipboard.
    #[oai(mapping = "clipboard_set")]
    ClipboardSet(ClipboardSetCommand),
    /// Run a shell command.
    #[oai(mapping = "shell")]
    Shell(ShellCommand),
    /// Open a URL.
    #[oai(mapping = "open_url")]
    OpenUrl(OpenUrlCommand),
}

impl CommandIn {
    /// The domain's view: the kind and its arguments as a JSON object.
    fn into_parts(self) -> (CommandKind, serde_json::Value) {
        fn json(v: &impl poem_openapi::types::ToJSON) -> serde_json::Value {
            v.to_json().unwrap_or_else(|| serde_json::json!({}))
        }
        match self {
            Self::Screenshot(c) => (
                CommandKind::Screenshot,
                c.args
                    .map(|a| json(&a))
                    .unwrap_or_else(|| serde_json::json!({})),
            ),
            Self::Click(c) => (CommandKind::Click, json(&c.args)),
            Self::Move(c) => (CommandKind::Move, json(&c.args)),
            Self::Scroll(c) => (CommandKind::Scroll, json(&c.args)),
            Self::Type(c) => (CommandKind::Type, json(&c.args)),
            Self::Key(c) => (CommandKind::Key, json(&c.args)),
            Self::ClipboardSet(c) => (CommandKind::ClipboardSet, json(&c.args)),
            Self::Shell(c) => (CommandKind::Shell, json(&c.args)),
            Self::OpenUrl(c) => (CommandKind::OpenUrl, json(&c.args)),
        }
    }
}

/// The outcome an executor reports.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[oai(rename_all = "lowercase")]
pub enum ResultStatus {
    /// It worked.
    Succeeded,
    /// It did not (say why in `error`).
    Failed,
}

/// `commands.complete` request.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
pub struct CommandResultIn {
    /// The outcome.
    pub status: ResultStatus,
    /// Output to keep with the command and in its `result` event (any JSON, e.g. a
    /// screenshot reference).
    pub output: Option<serde_json::Value>,
    /// Error message when `failed`, up to 2,000 characters.
    #[oai(validator(max_length = 2000))]
    pub error: Option<String>,
}

/// A page of commands.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
pub struct CommandList {
    /// The commands, oldest first.
    pub items: Vec<CommandOut>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// `commands.create` success.
#[derive(ApiResponse)]
pub enum CommandAccepted {
    /// Queued for the executor; also appended to the log as an `action` event.
    #[oai(status = 202)]
    Accepted(
        Json<CommandOut>,
        /// The command's URL.
        #[oai(header = "Location")]
        String,
    ),
}

/// `commands.claim` result.
#[derive(ApiResponse)]
#[allow(clippy::large_enum_variant)] // built once per response, moved once: no gain in boxing
pub enum Claimed {
    /// A command, now `dispatched` to the caller.
    #[oai(status = 200)]
    Ok(Json<CommandOut>),
    /// No command arrived within `wait_s`; claim again.
    #[oai(status = 204)]
    NoContent,
}

/// One command.
#[derive(ApiResponse)]
pub enum CommandResponse {
    /// The command.
    #[oai(status = 200)]
    Ok(Json<CommandOut>),
}

/// A page of commands.
#[derive(ApiResponse)]
pub enum CommandListResponse {
    /// The page.
    #[oai(status = 200)]
    Ok(Json<CommandList>),
}

api_errors!(CommandCreateErrors {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    Conflict,
    PayloadTooLarge,
    UnsupportedMediaType,
    Unprocessable
});
api_errors!(CommandReadErrors {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound
});
api_errors!(CommandClaimErrors {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    Conflict
});

/// The command operations.
pub struct CommandsApi;

#[OpenApi(tag = "Tag::Commands")]
impl CommandsApi {
    /// Send a command to the desktop
    ///
    /// Needs `commands:write`; the session must be `running` (409 `session_not_running`).
    /// The kind's capability is checked against the agent's policies first: outside them →
    /// 403 `capability_denied` (naming it in `missing_permission`), audited as
    /// `command.denied`, and nothing is queued. 422 names the field at fault, also for a
    /// point outside the session's desktop (`args.x`, `args.y`) and an unknown key name
    /// (`args.keys`). Accepted commands are queued for the executor (the agent's `executor`:
    /// Agentdesk's built-in one, or an external one) and appended as `action` events.
    /// Honours `Idempotency-Key`.
    #[oai(
        path = "/v1/orgs/:org_id/sessions/:session_id/commands",
        method = "post",
        operation_id = "commands.create"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn create(
        &self,
        state: Data<&AppState>,
        client: Data<&ClientInfo>,
        auth: OrgAuth,
        /// Organization id.
        org_id: Path<Uuid>,
        /// Session id.
        session_id: Path<Uuid>,
        /// Makes a retry safe: the same key with the same body replays the first response
        /// (with `Idempotent-Replayed: true`) for 24 h, so the command is queued once; with
        /// another body → 422 `idempotency_key_reused`; while the first is running → 409
        /// `idempotency_key_in_use`.
        #[oai(
            name = "Idempotency-Key",
            validator(min_length = 1, max_length = 255, pattern = r"^[!-~]+$")
        )]
        _idempotency_key: Header<Option<String>>,
        body: Json<CommandIn>,
    ) -> Result<CommandAccepted, CommandCreateErrors> {
        let a = access(&state, &auth, org_id.0, rbac::COMMANDS_WRITE).await?;
        let (kind, args) = body.0.into_parts();
        let ctx = client.audit().as_subject(&a.subject);
        let c = commands::create(
            &state.db,
            &state.bus,
            &state.rbac,
            &state.config,
            a.org(),
            SessionId(session_id.0),
            kind,
            args,
            &ctx,
        )
        .await?;
        let loc = format!(
            "/v1/orgs/{}/sessions/{}/commands/{}",
            a.org_id, c.session_id, c.id
        );
        Ok(CommandAccepted::Accepted(Json(c.into()), loc))
    }

    /// List a session's commands
    ///
    /// Needs `sessions:read`. Oldest first, cursor-paginated.
    #[oai(
        path = "/v1/orgs/:org_id/sessions/:session_id/commands",
        method = "get",
        operation_id = "commands.list"
    )]
    async fn list(
        &self,
        state: Data<&AppState>,
        auth: OrgAuth,
        /// Organization id.
        org_id: Path<Uuid>,
        /// Session id.
        session_id: Path<Uuid>,
        /// Page size, 1–200 (default 50).
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))]
        limit: Query<Option<u32>>,
        /// `next_cursor` from the previous page.
        cursor: Query<Option<String>>,
    ) -> Result<CommandListResponse, CommandReadErrors> {
        let a = access(&state, &auth, org_id.0, rbac::SESSIONS_READ).await?;
        let page = PageRequest::new(limit.0, cursor.0.as_deref())?;
        let page = commands::list(&state.db, a.org(), SessionId(session_id.0), page).await?;
        Ok(CommandListResponse::Ok(Json(CommandList {
            items: page.items.into_iter().map(Into::into).collect(),
            next_cursor: page.next_cursor,
        })))
    }

    /// Get a command
    ///
    /// Needs `sessions:read`.
    #[oai(
        path = "/v1/orgs/:org_id/sessions/:session_id/commands/:command_id",
        method = "get",
        operation_id = "commands.get"
    )]
    async fn get(
        &self,
        state: Data<&AppState>,
        auth: OrgAuth,
        /// Organization id.
        org_id: Path<Uuid>,
        /// Session id.
        session_id: Path<Uuid>,
        /// Command id.
        command_id: Path<Uuid>,
    ) -> Result<CommandResponse, CommandReadErrors> {
        let a = access(&state, &auth, org_id.0, rbac::SESSIONS_READ).await?;
        let c = commands::get(
            &state.db,
            a.org(),
            SessionId(session_id.0),
            CommandId(command_id.0),
        )
        .await?;
        Ok(CommandResponse::Ok(Json(c.into())))
    }

    /// Claim the next command (executor)
    ///
    /// Needs `commands:execute`. Long poll: returns the oldest queued command, now
    /// `dispatched` to the caller, or waits up to `wait_s` (≤ 30, capped below
    /// `request_timeout_s`) for one and answers 204 when none came. Two executors never get
    /// the same command. 409 `session_not_live` once the session is stopping or has ended;
    /// 409 `executor_builtin` when Agentdesk's built-in executor performs the session's
    /// commands (the agent's `executor`).
    #[oai(
        path = "/v1/orgs/:org_id/sessions/:session_id/commands/claim",
        method = "post",
        operation_id = "commands.claim"
    )]
    async fn claim(
        &self,
        state: Data<&AppState>,
        auth: OrgAuth,
        /// Organization id.
        org_id: Path<Uuid>,
        /// Session id.
        session_id: Path<Uuid>,
        /// Longest wait (s), 0–30 (default 0: answer at once).
        #[oai(validator(minimum(value = "0"), maximum(value = "30")))]
        wait_s: Query<Option<u32>>,
    ) -> Result<Claimed, CommandClaimErrors> {
        let a = access(&state, &auth, org_id.0, rbac::COMMANDS_EXECUTE).await?;
        let wait = wait_s.0.unwrap_or(0);
        if wait > CLAIM_WAIT_MAX_S {
            return Err(AppError::BadRequest {
                code: ProblemCode::InvalidParameter,
                detail: format!("parameter `wait_s` must be between 0 and {CLAIM_WAIT_MAX_S}"),
                errors: vec![FieldError::new("wait_s", "must be between 0 and 30")],
            }
            .into());
        }
        let cap = state.config.request_timeout_s.saturating_sub(1);
        let wait = Duration::from_secs(u64::from(wait).min(cap));
        match commands::claim_external(
            &state.db,
            &state.bus,
            a.org(),
            SessionId(session_id.0),
            wait,
        )
        .await?
        {
            Some(c) => Ok(Claimed::Ok(Json(c.into()))),
            None => Ok(Claimed::NoContent),
        }
    }

    /// Report a command's result (executor)
    ///
    /// Needs `commands:execute`. Finishes a `dispatched` command as `succeeded` or `failed`
    /// and appends a `result` event to the log. A command that is not dispatched → 409
    /// `command_not_dispatched`; a session the built-in executor serves → 409
    /// `executor_builtin`.
    #[oai(
        path = "/v1/orgs/:org_id/sessions/:session_id/commands/:command_id/result",
        method = "post",
        operation_id = "commands.complete"
    )]
    async fn complete(
        &self,
        state: Data<&AppState>,
        auth: OrgAuth,
        /// Organization id.
        org_id: Path<Uuid>,
        /// Session id.
        session_id: Path<Uuid>,
        /// Command id.
        command_id: Path<Uuid>,
        body: Json<CommandResultIn>,
    ) -> Result<CommandResponse, CommandCreateErrors> {
        let a = access(&state, &auth, org_id.0, rbac::COMMANDS_EXECUTE).await?;
        let b = body.0;
        let c = commands::complete_external(
            &state.db,
            &state.bus,
            a.org(),
            SessionId(session_id.0),
            CommandId(command_id.0),
            commands::Outcome {
                succeeded: b.status == ResultStatus::Succeeded,
                output: b.output,
                error: b.error,
                ..Default::default()
            },
        )
        .await?;
        Ok(CommandResponse::Ok(Json(c.into())))
    }
}

/// A screenshot no wider than 1280 pixels.
impl poem_openapi::types::Example for ScreenshotArgs {
    fn example() -> Self {
        Self {
            max_width: Some(1280),
            max_height: None,
        }
    }
}
