//! Agents: an org's AI agent definitions and what each may do on a desktop.
//!
//! Capabilities are not a column: they are casbin `p` rules on the subject `agent:<id>` in
//! the org's domain, written in the same transaction as the agent row
//! ([`rbac::set_agent_capabilities_in_tx`]) and read back from `casbin_rule`, the one source
//! of truth. Updates need the version the caller read (`If-Match`), so two editors cannot
//! silently overwrite each other.

use chrono::Utc;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
    sea_query::{Expr, ExprTrait},
};
use serde_json::json;
use uuid::Uuid;

use super::{
    audit::{self, AuditCtx, Event, target},
    page::{Page, PageRequest},
    sessions,
};
use crate::{
    auth::rbac::{self, Rbac},
    entity::{Tenant, agent},
    error::{AppError, AppResult, FieldError, ProblemCode},
};

/// Longest name, description, model and instructions (characters).
pub const NAME_MAX: usize = 200;
/// Longest description (characters).
pub const DESCRIPTION_MAX: usize = 2000;
/// Longest instructions (characters).
pub const INSTRUCTIONS_MAX: usize = 32_768;
/// Screen size bounds (pixels): width 320–7680, height 200–4320.
pub const WIDTH_RANGE: (i32, i32) = (320, 7680);
/// See [`WIDTH_RANGE`].
pub const HEIGHT_RANGE: (i32, i32) = (200, 4320);

/// An agent with its capabilities (sorted).
#[derive(Clone, Debug)]
pub struct AgentView {
    /// The row.
    pub agent: agent::Model,
    /// Capability names from the catalog.
    pub capabilities: Vec<String>,
}

/// Fields of a create (all present) or an update (`None` = unchanged).
#[derive(Clone, Debug, Default)]
pub struct AgentFields {
    /// Name, unique in the org.
    pub name: Option<String>,
    /// Free text.
    pub description: Option<String>,
    /// Model name.
    pub model: Option<String>,
    /// System instructions.
    pub instructions: Option<String>,
    /// Screen width (pixels).
    pub screen_width: Option<i32>,
    /// Screen height (pixels).
    pub screen_height: Option<i32>,
    /// The full capability set (replaces the old one).
    pub capabilities: Option<Vec<String>>,
    /// Who performs its commands: `Some(None)` sets the default back, `None` leaves it.
    pub executor: Option<Option<agent::Executor>>,
}

fn check_text(
    errors: &mut Vec<FieldError>,
    field: &str,
    v: &Option<String>,
    min: usize,
    max: usize,
) -> Option<String> {
    let v = v.as_ref()?;
    let t = if field == "instructions" || field == "description" {
        v.clone()
    } else {
        v.trim().to_owned()
    };
    let len = t.chars().count();
    if len < min || len > max {
        errors.push(FieldError::new(
            field,
            format!("must be {min} to {max} characters"),
        ));
    }
    Some(t)
}

/// Validates and normalises fields. Errors: 422 naming each bad field.
fn validate(f: &AgentFields) -> AppResult<AgentFields> {
    let mut errors = Vec::new();
    let mut out = AgentFields {
        name: check_text(&mut errors, "name", &f.name, 1, NAME_MAX),
        description: check_text(
            &mut errors,
            "description",
            &f.description,
            0,
            DESCRIPTION_MAX,
        ),
        model: check_text(&mut errors, "model", &f.model, 1, NAME_MAX),
        instructions: check_text(
            &mut errors,
            "instructions",
            &f.instructions,
            0,
            INSTRUCTIONS_MAX,
        ),
        screen_width: f.screen_width,
        screen_height: f.screen_height,
        capabilities: None,
        executor: f.executor,
    };
    for (field, v, (lo, hi)) in [
        ("desktop.width", f.screen_width, WIDTH_RANGE),
        ("desktop.height", f.screen_height, HEIGHT_RANGE),
    ] {
        if let Some(v) = v
            && !(lo..=hi).contains(&v)
        {
            errors.push(FieldError::new(
                field,
                format!("must be {lo} to {hi} pixels"),
            ));
        }
    }
    if let Some(caps) = &f.capabilities {
        let mut caps = caps.clone();
        for (i, c) in caps.iter().enumerate() {
            if !rbac::is_capability(c) {
                errors.push(FieldError::new(
                    format!("capabilities[{i}]"),
                    format!("`{c}` is not in the capability catalog"),
                ));
            }
        }
        caps.sort();
        caps.dedup();
        out.capabilities = Some(caps);
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(AppError::Validation(errors))
    }
}

fn name_taken() -> (ProblemCode, &'static str) {
    (
        ProblemCode::AgentNameTaken,
        "an agent with this name already exists in the organization",
    )
}

/// Creates an agent and its capability rules in one transaction. Audited as
/// `agent.created`. Errors: 422 fields; 409 `agent_name_taken`.
pub async fn create(
    db: &DatabaseConnection,
    rbac: &Rbac,
    org_id: Uuid,
    fields: AgentFields,
    ctx: &AuditCtx,
) -> AppResult<AgentView> {
    let f = validate(&fields)?;
    let now = Utc::now();
    let id = Uuid::now_v7();
    let row = agent::Model {
        id,
        org_id,
        name: f.name.unwrap_or_default(),
        description: f.description.unwrap_or_default(),
        model: f.model.unwrap_or_default(),
        instructions: f.instructions.unwrap_or_default(),
        screen_width: f.screen_width.unwrap_or(1280),
        screen_height: f.screen_height.unwrap_or(800),
        executor: f.executor.flatten(),
        version: 1,
        created_by: ctx.user_id(),
        created_at: now,
        updated_at: now,
    };
    let caps = f.capabilities.unwrap_or_default();
    let tx = super::begin_write(db).await?;
    let active: agent::ActiveModel = row.clone().into();
    let (code, detail) = name_taken();
    agent::Entity::insert(active)
        .exec_without_returning(&tx)
        .await
        .map_err(|e| AppError::from_db(e, code, detail))?;
    let change = rbac::set_agent_capabilities_in_tx(&tx, id, org_id, &caps).await?;
    audit::record(
        &tx,
        ctx,
        Event {
            org_id: Some(org_id),
            action: "agent.created",
            target_type: target::AGENT,
            target_id: Some(id),
            success: true,
            details: json!({ "name": row.name, "capabilities": caps }),
        },
    )
    .await?;
    tx.commit().await?;
    rbac.apply(vec![change]).await;
    Ok(AgentView {
        agent: row,
        capabilities: caps,
    })
}

/// One agent of `org_id` with its capabilities. Errors: 404.
pub async fn get(db: &impl ConnectionTrait, org_id: Uuid, agent_id: Uuid) -> AppResult<AgentView> {
    let agent = agent::Entity::find_in_by_id(org_id, agent_id)
        .one(db)
        .await?
        .ok_or(AppError::NotFound("agent"))?;
    let mut caps = rbac::agent_capabilities(db, &[agent_id]).await?;
    Ok(AgentView {
        capabilities: caps.remove(&agent_id).unwrap_or_default(),
        agent,
    })
}

/// The org's agents, oldest first, with capabilities (two queries per page).
pub async fn list(
    db: &impl ConnectionTrait,
    org_id: Uuid,
    page: PageRequest,
) -> AppResult<Page<AgentView>> {
    let mut q = agent::Entity::find_in(org_id);
    if let Some(after) = page.after {
        q = q.filter(agent::Column::Id.gt(after));
    }
    let rows = q
        .order_by_asc(agent::Column::Id)
        .limit(page.fetch())
        .all(db)
        .await?;
    let page = page.finish(rows, |a| a.id);
    let ids: Vec<Uuid> = page.items.iter().map(|a| a.id).collect();
    let mut caps = rbac::agent_capabilities(db, &ids).await?;
    Ok(Page {
        items: page
            .items
            .into_iter()
            .map(|a| AgentView {
                capabilities: caps.remove(&a.id).unwrap_or_default(),
                agent: a,
            })
            .collect(),
        next_cursor: page.next_cursor,
    })
}

/// Updates an agent at version `if_match` (compare-and-set). Audited as `agent.updated`.
/// Errors: 404; 412 `precondition_failed` when the version moved on; 422; 409
/// `agent_name_taken`.
pub async fn update(
    db: &DatabaseConnection,
    rbac: &Rbac,
    org_id: Uuid,
    agent_id: Uuid,
    fields: AgentFields,
    if_match: i64,
    ctx: &AuditCtx,
) -> AppResult<AgentView> {
    let f = validate(&fields)?;
    let tx = super::begin_write(db).await?;
    let mut q = agent::Entity::update_in(org_id)
        .col_expr(
            agent::Column::Version,
            Expr::col(agent::Column::Version).add(1),
        )
        .col_expr(agent::Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(agent::Column::Id.eq(agent_id))
        .filter(agent::Column::Version.eq(if_match));
    for (col, v) in [
        (agent::Column::Name, &f.name),
        (agent::Column::Description, &f.description),
        (agent::Column::Model, &f.model),
        (agent::Column::Instructions, &f.instructions),
    ] {
        if let Some(v) = v {
            q = q.col_expr(col, Expr::value(v.clone()));
        }
    }
    if let Some(w) = f.screen_width {
        q = q.col_expr(agent::Column::ScreenWidth, Expr::value(w));
    }
    if let Some(h) = f.screen_height {
        q = q.col_expr(agent::Column::ScreenHeight, Expr::value(h));
    }
    if let Some(e) = f.executor {
        q = q.col_expr(agent::Column::Executor, Expr::value(e));
    }
    let (code, detail) = name_taken();
    let changed = q
        .exec(&tx)
        .await
        .map_err(|e| AppError::from_db(e, code, detail))?
        .rows_affected;
    if changed == 0 {
        let current = get(&tx, org_id, agent_id).await?;
        return Err(AppError::PreconditionFailed(format!(
            "the agent changed since you read it (current ETag \"{}\"); re-read and retry",
            current.agent.version
        )));
    }
    let mut changes = Vec::new();
    if let Some(caps) = &f.capabilities {
        changes.push(rbac::set_agent_capabilities_in_tx(&tx, agent_id, org_id, caps).await?);
    }
    let view = get(&tx, org_id, agent_id).await?;
    audit::record(
        &tx,
        ctx,
        Event {
            org_id: Some(org_id),
            action: "agent.updated",
            target_type: target::AGENT,
            target_id: Some(agent_id),
            success: true,
            details: json!({ "version": view.agent.version, "capabilities": f.capabilities }),
        },
    )
    .await?;
    tx.commit().await?;
    rbac.apply(changes).await;
    Ok(view)
}

/// Deletes an agent and its capability rules; its past sessions stay. Audited as
/// `agent.deleted`. Errors: 404; 409 `agent_has_live_sessions`.
pub async fn delete(
    db: &DatabaseConnection,
    rbac: &Rbac,
    org_id: Uuid,
    agent_id: Uuid,
    ctx: &AuditCtx,
) -> AppResult<()> {
    let tx = super::begin_write(db).await?;
    // Lock the org like sessions.create does, so no session of this agent starts meanwhile.
    super::orgs::lock_org(&tx, org_id).await?;
    get(&tx, org_id, agent_id).await?;
    if sessions::agent_has_live_sessions(&tx, agent_id).await? {
        return Err(AppError::conflict(
            ProblemCode::AgentHasLiveSessions,
            "the agent has live sessions; stop them first",
        ));
    }
    agent::Entity::delete_by_id(agent_id).exec(&tx).await?;
    let change = rbac::set_agent_capabilities_in_tx(&tx, agent_id, org_id, &[]).await?;
    audit::record(
        &tx,
        ctx,
        Event {
            org_id: Some(org_id),
            action: "agent.deleted",
            target_type: target::AGENT,
            target_id: Some(agent_id),
            success: true,
            details: json!({}),
        },
    )
    .await?;
    tx.commit().await?;
    rbac.apply(vec![change]).await;
    Ok(())
}
