//! Commands: actions asked of a session's desktop, relayed to the executor running beside
//! it.
//!
//! `queued → dispatched → succeeded | failed`; `queued | dispatched → cancelled` when the
//! session winds down; `queued → expired` when no executor claims it within
//! `command_claim_timeout_s`. Every command kind needs one agent capability
//! ([`CommandKind::capability`]); a command outside the agent's capabilities is refused with
//! 403 `capability_denied`, audited, and never queued. Accepted commands also appear in the
//! event log as `action` events, and results as `result` events.

use std::time::Duration;

use chrono::Utc;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, sea_query::Expr,
};
use serde_json::{Value, json};
use uuid::Uuid;

use super::{
    audit::{self, AuditCtx, Event},
    events::{self, EventKind, NewEvent},
    page::{Page, PageRequest},
    sessions::{self, Status},
};
use crate::{
    auth::rbac::{self, Rbac},
    config::Config,
    entity::{CommandId, OrgId, SessionId, Tenant, command, session},
    error::{AppError, AppResult, FieldError, ProblemCode},
    realtime::bus::{Bus, BusMessage, Outbox},
};

pub use crate::entity::command::{Kind as CommandKind, Status as CommandStatus};

impl CommandKind {
    /// The agent capability the kind needs.
    pub fn capability(self) -> &'static str {
        match self {
            Self::Screenshot => "desktop:screen.capture",
            Self::Click | Self::Move | Self::Scroll => "desktop:input.pointer",
            Self::Type | Self::Key => "desktop:input.keyboard",
            Self::ClipboardSet => "desktop:clipboard",
            Self::Shell => "desktop:shell",
            Self::OpenUrl => "browser:navigate",
        }
    }

    /// Checks `args` for this kind. Errors: field errors named `args.<name>`.
    pub fn validate_args(self, args: &Value) -> Result<(), Vec<FieldError>> {
        let Some(obj) = args.as_object() else {
            return Err(vec![FieldError::new("args", "must be a JSON object")]);
        };
        let mut errors = Vec::new();
        let int = |name: &str, min: i64, max: i64, errors: &mut Vec<FieldError>| match obj
            .get(name)
            .and_then(Value::as_i64)
        {
            Some(v) if (min..=max).contains(&v) => {}
            _ => errors.push(FieldError::new(
                format!("args.{name}"),
                format!("must be an integer from {min} to {max}"),
            )),
        };
        let text = |name: &str, max: usize, errors: &mut Vec<FieldError>| match obj
            .get(name)
            .and_then(Value::as_str)
        {
            Some(v) if !v.is_empty() && v.chars().count() <= max => {}
            _ => errors.push(FieldError::new(
                format!("args.{name}"),
                format!("must be a string of 1 to {max} characters"),
            )),
        };
        let optional_int = |name: &str, min: i64, max: i64, errors: &mut Vec<FieldError>| {
            if obj.get(name).is_some_and(|v| !v.is_null()) {
                int(name, min, max, errors);
            }
        };
        match self {
            Self::Screenshot => {
                optional_int("max_width", 1, 16_384, &mut errors);
                optional_int("max_height", 1, 16_384, &mut errors);
            }
            Self::Click | Self::Move => {
                int("x", 0, 16_384, &mut errors);
                int("y", 0, 16_384, &mut errors);
                if self == Self::Click
                    && let Some(b) = obj.get("button")
                    && !matches!(b.as_str(), Some("left" | "middle" | "right"))
                {
                    errors.push(FieldError::new(
                        "args.button",
                        "must be `left`, `middle` or `right`",
                    ));
                }
                if self == Self::Click {
                    optional_int("count", 1, 3, &mut errors);
                }
            }
            Self::Scroll => {
                int("x", 0, 16_384, &mut errors);
                int("y", 0, 16_384, &mut errors);
                int("dx", -100, 100, &mut errors);
                int("dy", -100, 100, &mut errors);
            }
            Self::Type | Self::ClipboardSet => text("text", 65_536, &mut errors),
            Self::Key => {
                text("keys", 100, &mut errors);
                if let Some(keys) = obj.get("keys").and_then(Value::as_str)
                    && let Err(e) = crate::desktop::keys::parse_chord(keys)
                {
                    errors.push(FieldError::new("args.keys", e.to_string()));
                }
            }
            Self::Shell => {
                text("command", 8_192, &mut errors);
                optional_int("timeout_s", 1, 300, &mut errors);
            }
            Self::OpenUrl => match obj.get("url").and_then(Value::as_str).map(url::Url::parse) {
                Some(Ok(u)) if u.scheme() == "http" || u.scheme() == "https" => {}
                _ => errors.push(FieldError::new("args.url", "must be an http(s) URL")),
            },
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

/// Creates a command for a running session of `org_id`: checks the kind's capability
/// against the agent's casbin rules, then queues it and appends its `action` event in one
/// transaction. Errors: 404; 422 for bad args; 409 `session_not_running`; 403
/// `capability_denied` (audited as `command.denied`, nothing queued).
#[allow(clippy::too_many_arguments)]
#[tracing::instrument(name = "commands.create", skip_all, fields(org_id = %org_id, session_id = %session_id))]
pub async fn create(
    db: &DatabaseConnection,
    bus: &Bus,
    rbac: &Rbac,
    config: &Config,
    org_id: OrgId,
    session_id: SessionId,
    kind: CommandKind,
    args: Value,
    ctx: &AuditCtx,
) -> AppResult<command::Model> {
    kind.validate_args(&args).map_err(AppError::Validation)?;
    let tx = super::begin_write(db).await?;
    // Lock the session row first (a no-op seq take), so a concurrent stop either commits
    // before this check or waits for this command to be queued and then cancels it.
    sessions::take_seqs(&tx, org_id, session_id, 0).await?;
    let s = sessions::get(&tx, org_id, session_id).await?;
    check_inside_desktop(kind, &args, &s)?;
    let status = s.status;
    if status != Status::Running {
        return Err(AppError::SessionState {
            code: ProblemCode::SessionNotRunning,
            current: status.as_str(),
            detail: format!(
                "the session is `{}`; commands are accepted while it is `running`",
                status.as_str()
            ),
        });
    }
    let caps = rbac::agent_capabilities(&tx, &[s.agent_id]).await?;
    let caps = caps.get(&s.agent_id).cloned().unwrap_or_default();
    let capability = kind.capability();
    if !rbac
        .agent_allows(s.agent_id, org_id.0, &caps, capability)
        .await
    {
        drop(tx);
        audit::record(
            db,
            ctx,
            Event {
                org_id: Some(org_id.0),
                action: "command.denied",
                target_type: audit::target::SESSION,
                target_id: Some(session_id.0),
                success: false,
                details: json!({
                    "kind": kind.as_str(),
                    "capability": capability,
                    "agent_id": s.agent_id,
                }),
            },
        )
        .await?;
        return Err(AppError::Forbidden {
            code: ProblemCode::CapabilityDenied,
            detail: format!(
                "the session's agent lacks the `{capability}` capability that `{}` needs",
                kind.as_str()
            ),
            permission: Some(capability.to_owned()),
        });
    }
    let now = Utc::now();
    let id = Uuid::now_v7();
    let expires_at = now + chrono::Duration::seconds(config.command_claim_timeout_s as i64);
    let row = command::Model {
        id,
        org_id: org_id.0,
        session_id: session_id.0,
        kind,
        args: args.clone(),
        status: CommandStatus::Queued,
        output: None,
        error: None,
        error_code: None,
        result: None,
        created_by: ctx.user_id(),
        expires_at,
        dispatched_at: None,
        completed_at: None,
        created_at: now,
        updated_at: now,
    };
    let active: command::ActiveModel = row.clone().into();
    command::Entity::insert(active)
        .exec_without_returning(&tx)
        .await?;
    let mut outbox = Outbox::default();
    events::append_in_tx(
        &tx,
        org_id,
        session_id,
        vec![NewEvent {
            kind: EventKind::Action,
            payload: json!({ "command_id": id, "kind": kind.as_str(), "args": args }),
        }],
        &mut outbox,
    )
    .await?;
    bus.commit(tx, outbox).await?;
    Ok(row)
}

/// A pointer command's `x`, `y` must lie inside the session's desktop. Errors: 422 naming
/// `args.x` / `args.y`.
fn check_inside_desktop(kind: CommandKind, args: &Value, s: &session::Model) -> AppResult<()> {
    if !matches!(
        kind,
        CommandKind::Click | CommandKind::Move | CommandKind::Scroll
    ) {
        return Ok(());
    }
    let mut errors = Vec::new();
    for (name, size) in [("x", s.screen_width), ("y", s.screen_height)] {
        let v = args.get(name).and_then(Value::as_i64).unwrap_or(0);
        if v >= i64::from(size) {
            errors.push(FieldError::new(
                format!("args.{name}"),
                format!(
                    "must lie inside the {}×{} desktop: 0 to {}",
                    s.screen_width,
                    s.screen_height,
                    size - 1
                ),
            ));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(AppError::Validation(errors))
    }
}

/// Claims the oldest queued, unexpired command of a live session of `org_id` for the
/// executor, waiting up to `wait` for one to arrive (long poll). `Ok(None)` when none came.
/// Concurrent claimers never get the same command (compare-and-set on `status`).
/// Errors: 404; 409 `session_not_live` once the session is stopping or has ended.
#[tracing::instrument(name = "commands.claim", skip_all, fields(org_id = %org_id, session_id = %session_id))]
pub async fn claim(
    db: &DatabaseConnection,
    bus: &Bus,
    org_id: OrgId,
    session_id: SessionId,
    wait: Duration,
) -> AppResult<Option<command::Model>> {
    claim_for(db, bus, org_id, session_id, wait, Claimer::Builtin).await
}

/// Who claims: the built-in executor, or an external one (refused on built-in sessions).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Claimer {
    Builtin,
    External,
}

/// 409 `executor_builtin`: an external executor asked for a built-in session's work.
fn builtin_session() -> AppError {
    AppError::conflict(
        ProblemCode::ExecutorBuiltin,
        "Agentdesk's built-in executor performs this session's commands; set the agent's \
         `executor` to `external` to perform them yourself",
    )
}

async fn claim_for(
    db: &DatabaseConnection,
    bus: &Bus,
    org_id: OrgId,
    session_id: SessionId,
    wait: Duration,
    claimer: Claimer,
) -> AppResult<Option<command::Model>> {
    let deadline = tokio::time::Instant::now() + wait;
    // Subscribe before looking, so a command queued in between wakes us.
    let mut rx = bus.subscribe();
    loop {
        let s = sessions::get(db, org_id, session_id).await?;
        let status = s.status;
        if status.is_final() || status == Status::Stopping {
            return Err(sessions::not_live(status));
        }
        // Checked on every round: an `auto` session turns built-in once its desktop is up,
        // possibly while an external executor's long poll waits.
        if claimer == Claimer::External && super::desktops::is_builtin(&s) {
            return Err(builtin_session());
        }
        let now = Utc::now();
        let candidates = command::Entity::find_in(org_id)
            .filter(command::Column::SessionId.eq(session_id))
            .filter(command::Column::Status.eq(CommandStatus::Queued))
            .filter(command::Column::ExpiresAt.gt(now))
            .order_by_asc(command::Column::Id)
            .limit(5)
            .all(db)
            .await?;
        for c in candidates {
            let won = command::Entity::update_many()
                .col_expr(
                    command::Column::Status,
                    Expr::value(CommandStatus::Dispatched),
                )
                .col_expr(command::Column::DispatchedAt, Expr::value(now))
                .col_expr(command::Column::UpdatedAt, Expr::value(now))
                .filter(command::Column::Id.eq(c.id))
                .filter(command::Column::Status.eq(CommandStatus::Queued))
                .exec(db)
                .await?
                .rows_affected
                == 1;
            if won {
                return Ok(command::Entity::find_in_by_id(org_id, CommandId(c.id))
                    .one(db)
                    .await?);
            }
        }
        // Wait for any event of this session (an accepted command appends one) or time out.
        loop {
            let msg = tokio::time::timeout_at(deadline, rx.recv()).await;
            match msg {
                // Timed out, or the bus is gone (shutting down): nothing came.
                Err(_) | Ok(Err(tokio::sync::broadcast::error::RecvError::Closed)) => {
                    return Ok(None);
                }
                Ok(Ok(BusMessage::Event(e))) if e.session_id != session_id.0 => continue,
                Ok(_) => break,
            }
        }
    }
}

/// What an executor reports for a dispatched command.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    /// Whether it worked.
    pub succeeded: bool,
    /// What an external executor reported (any JSON), kept verbatim.
    pub output: Option<Value>,
    /// The built-in executor's typed outcome (`{kind, …}` per command kind).
    pub result: Option<Value>,
    /// A message when it failed.
    pub error: Option<String>,
    /// A stable code when it failed (`desktop_unreachable`, `timeout`, …).
    pub error_code: Option<&'static str>,
    /// More events to append after the `result` event in the same transaction (e.g. the
    /// `screenshot` event that references its artifact).
    pub events: Vec<NewEvent>,
}

/// [`claim`] for an external executor (`commands.claim`). Errors: as [`claim`]; 409
/// `executor_builtin` when the built-in executor performs the session's commands.
pub async fn claim_external(
    db: &DatabaseConnection,
    bus: &Bus,
    org_id: OrgId,
    session_id: SessionId,
    wait: Duration,
) -> AppResult<Option<command::Model>> {
    claim_for(db, bus, org_id, session_id, wait, Claimer::External).await
}

/// [`complete`] for an external executor (`commands.complete`). Errors: as [`complete`];
/// 409 `executor_builtin` when the built-in executor performs the session's commands (its
/// results cannot be forged from outside).
pub async fn complete_external(
    db: &DatabaseConnection,
    bus: &Bus,
    org_id: OrgId,
    session_id: SessionId,
    command_id: CommandId,
    outcome: Outcome,
) -> AppResult<command::Model> {
    let s = sessions::get(db, org_id, session_id).await?;
    if super::desktops::is_builtin(&s) {
        return Err(builtin_session());
    }
    complete(db, bus, org_id, session_id, command_id, outcome).await
}

/// Records the executor's result of a dispatched command and appends its `result` event
/// (and the outcome's own events). Errors: 404; 409 `command_not_dispatched` (already
/// finished, or never claimed).
#[tracing::instrument(name = "commands.complete", skip_all, fields(org_id = %org_id, session_id = %session_id, command_id = %command_id))]
pub async fn complete(
    db: &DatabaseConnection,
    bus: &Bus,
    org_id: OrgId,
    session_id: SessionId,
    command_id: CommandId,
    outcome: Outcome,
) -> AppResult<command::Model> {
    let Outcome {
        succeeded,
        output,
        result,
        error,
        error_code,
        events: more,
    } = outcome;
    let tx = super::begin_write(db).await?;
    let c = get(&tx, org_id, session_id, command_id).await?;
    let now = Utc::now();
    let status = if succeeded {
        CommandStatus::Succeeded
    } else {
        CommandStatus::Failed
    };
    let changed = command::Entity::update_many()
        .col_expr(command::Column::Status, Expr::value(status))
        .col_expr(command::Column::Output, Expr::value(output.clone()))
        .col_expr(command::Column::Result, Expr::value(result.clone()))
        .col_expr(command::Column::Error, Expr::value(error.clone()))
        .col_expr(command::Column::ErrorCode, Expr::value(error_code))
        .col_expr(command::Column::CompletedAt, Expr::value(now))
        .col_expr(command::Column::UpdatedAt, Expr::value(now))
        .filter(command::Column::Id.eq(c.id))
        .filter(command::Column::Status.eq(CommandStatus::Dispatched))
        .exec(&tx)
        .await?
        .rows_affected;
    if changed != 1 {
        return Err(AppError::conflict(
            ProblemCode::CommandNotDispatched,
            format!(
                "the command is `{}`; only a dispatched command takes a result",
                c.status
            ),
        ));
    }
    let mut outbox = Outbox::default();
    let mut appended = vec![NewEvent {
        kind: EventKind::Result,
        payload: json!({
            "command_id": c.id,
            "kind": c.kind.as_str(),
            "status": status.as_str(),
            "output": output,
            "result": result,
            "error": error,
            "error_code": error_code,
        }),
    }];
    appended.extend(more);
    events::append_in_tx(&tx, org_id, session_id, appended, &mut outbox).await?;
    bus.commit(tx, outbox).await?;
    get(db, org_id, session_id, command_id).await
}

/// One command of a session of `org_id`. Errors: 404.
pub async fn get(
    db: &impl ConnectionTrait,
    org_id: OrgId,
    session_id: SessionId,
    command_id: CommandId,
) -> AppResult<command::Model> {
    command::Entity::find_in_by_id(org_id, command_id)
        .filter(command::Column::SessionId.eq(session_id))
        .one(db)
        .await?
        .ok_or(AppError::NotFound("command"))
}

/// A session's commands, oldest first.
pub async fn list(
    db: &impl ConnectionTrait,
    org_id: OrgId,
    session_id: SessionId,
    page: PageRequest,
) -> AppResult<Page<command::Model>> {
    sessions::get(db, org_id, session_id).await?;
    let mut q = command::Entity::find_in(org_id).filter(command::Column::SessionId.eq(session_id));
    if let Some(after) = page.after {
        q = q.filter(command::Column::Id.gt(after));
    }
    let rows = q
        .order_by_asc(command::Column::Id)
        .limit(page.fetch())
        .all(db)
        .await?;
    Ok(page.finish(rows, |c| c.id))
}

/// Cancels a session's queued and dispatched commands (the session is winding down), in
/// the caller's transaction.
pub async fn cancel_open(tx: &impl ConnectionTrait, session_id: SessionId) -> AppResult<u64> {
    let now = Utc::now();
    Ok(command::Entity::update_many()
        .col_expr(
            command::Column::Status,
            Expr::value(CommandStatus::Cancelled),
        )
        .col_expr(command::Column::CompletedAt, Expr::value(now))
        .col_expr(command::Column::UpdatedAt, Expr::value(now))
        .filter(command::Column::SessionId.eq(session_id))
        .filter(command::Column::Status.is_in([CommandStatus::Queued, CommandStatus::Dispatched]))
        .exec(tx)
        .await?
        .rows_affected)
}

/// The reaper's command pass: queued commands past `expires_at` become `expired`.
#[tracing::instrument(name = "commands.expire", skip_all)]
pub async fn expire(db: &impl ConnectionTrait) -> AppResult<u64> {
    let now = Utc::now();
    Ok(command::Entity::update_many()
        .col_expr(command::Column::Status, Expr::value(CommandStatus::Expired))
        .col_expr(command::Column::CompletedAt, Expr::value(now))
        .col_expr(command::Column::UpdatedAt, Expr::value(now))
        .filter(command::Column::Status.eq(CommandStatus::Queued))
        .filter(command::Column::ExpiresAt.lte(now))
        .exec(db)
        .await?
        .rows_affected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_maps_to_a_catalog_capability() {
        for &k in CommandKind::ALL {
            assert!(rbac::is_capability(k.capability()), "{k:?}");
            assert_eq!(CommandKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(CommandKind::Shell.capability(), "desktop:shell");
        assert_eq!(CommandKind::parse("reboot"), None);
    }

    #[test]
    fn args_are_checked_per_kind() {
        assert!(
            CommandKind::Click
                .validate_args(&json!({"x": 1, "y": 2}))
                .is_ok()
        );
        let errs = CommandKind::Click
            .validate_args(&json!({"x": -1, "button": "side"}))
            .unwrap_err();
        let fields: Vec<_> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["args.x", "args.y", "args.button"]);
        assert!(
            CommandKind::OpenUrl
                .validate_args(&json!({"url": "file:///etc/passwd"}))
                .is_err()
        );
        assert!(
            CommandKind::OpenUrl
                .validate_args(&json!({"url": "https://a.example"}))
                .is_ok()
        );
        assert!(CommandKind::Screenshot.validate_args(&json!([])).is_err());
        assert!(
            CommandKind::Type
                .validate_args(&json!({"text": ""}))
                .is_err()
        );
    }
}
