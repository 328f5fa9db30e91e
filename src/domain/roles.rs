//! Roles: the four built-in roles ([`rbac::BUILTIN_ROLES`], read-only) and an org's custom
//! roles, each a named set of permissions from [`rbac::PERMISSIONS`].
//!
//! A custom role's permissions are casbin `p` rules `role:<name>, org:<id>, object, action`
//! (the one source of truth; the `roles` row holds its name, description and version). Custom
//! roles can be given to members, invitations and API keys. Nobody can create or change a role
//! to hold a permission they lack themselves (422 naming the permission), nor change or delete
//! a role that holds one (403). A role in use (by a member, a live key or a pending
//! invitation) cannot be deleted (409 `role_in_use`).

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait,
    IntoActiveModel, PaginatorTrait, QueryFilter, QueryOrder, TransactionTrait,
    sea_query::{Expr, ExprTrait},
};
use serde_json::json;
use uuid::Uuid;

use super::{
    audit::{self, AuditCtx, Event, target},
    grants,
    orgs::{self, Access},
};
use crate::{
    auth::{
        cache::AuthCache,
        rbac::{self, Rbac, Role},
    },
    entity::{Tenant, api_key, invitation, membership, role},
    error::{AppError, AppResult, FieldError, ProblemCode},
};

/// Most custom roles per org.
pub const MAX_CUSTOM_ROLES: u64 = 100;
/// Longest description, in characters.
pub const DESCRIPTION_MAX: usize = 500;

/// A role as shown by the API.
#[derive(Clone, Debug)]
pub struct RoleView {
    /// Name (`owner`, …, or the custom role's name).
    pub name: String,
    /// What the role is for.
    pub description: String,
    /// Whether it is a built-in (read-only) role.
    pub builtin: bool,
    /// Its permissions, sorted.
    pub permissions: Vec<String>,
    /// Version (`ETag`) of a custom role; built-in roles have 0.
    pub version: i64,
    /// When a custom role was created.
    pub created_at: Option<DateTime<Utc>>,
    /// When a custom role last changed.
    pub updated_at: Option<DateTime<Utc>>,
}

fn builtin_view(r: Role) -> RoleView {
    let description = match r {
        Role::Owner => {
            "Everything, including deleting the organization and granting or taking owner."
        }
        Role::Admin => {
            "Manages the organization, its non-owner members, roles, API keys and agents; reads the audit log."
        }
        Role::Operator => {
            "Runs sessions and commands; reads the organization, its members, agents and roles."
        }
        Role::Viewer => "Reads the organization, its members, agents, sessions and roles.",
    };
    let mut permissions: Vec<String> = r.permissions().iter().map(|p| (*p).to_owned()).collect();
    permissions.sort();
    RoleView {
        name: r.as_str().to_owned(),
        description: description.to_owned(),
        builtin: true,
        permissions,
        version: 0,
        created_at: None,
        updated_at: None,
    }
}

fn custom_view(row: role::Model, permissions: Vec<String>) -> RoleView {
    RoleView {
        name: row.name,
        description: row.description,
        builtin: false,
        permissions,
        version: row.version,
        created_at: Some(row.created_at),
        updated_at: Some(row.updated_at),
    }
}

/// Every role of the org: the built-in ones (most powerful first), then custom ones by name.
pub async fn list(db: &impl ConnectionTrait, org_id: Uuid) -> AppResult<Vec<RoleView>> {
    let rows = role::Entity::find_in(org_id)
        .order_by_asc(role::Column::Name)
        .all(db)
        .await?;
    let names: Vec<String> = rows.iter().map(|r| r.name.clone()).collect();
    let mut perms = rbac::custom_role_permissions(db, org_id, &names).await?;
    let mut out: Vec<RoleView> = Role::ALL.into_iter().map(builtin_view).collect();
    out.extend(rows.into_iter().map(|r| {
        let p = perms.remove(&r.name).unwrap_or_default();
        custom_view(r, p)
    }));
    Ok(out)
}

async fn find_custom(
    db: &impl ConnectionTrait,
    org_id: Uuid,
    name: &str,
) -> AppResult<role::Model> {
    role::Entity::find_in(org_id)
        .filter(role::Column::Name.eq(name))
        .one(db)
        .await?
        .ok_or(AppError::NotFound("role"))
}

/// One role by name. Errors: 404 `role`.
pub async fn get(db: &impl ConnectionTrait, org_id: Uuid, name: &str) -> AppResult<RoleView> {
    if let Some(r) = Role::parse(name) {
        return Ok(builtin_view(r));
    }
    let row = find_custom(db, org_id, name).await?;
    let perms = rbac::custom_role_permissions(db, org_id, std::slice::from_ref(&row.name))
        .await?
        .remove(&row.name)
        .unwrap_or_default();
    Ok(custom_view(row, perms))
}

fn read_only(name: &str) -> AppError {
    AppError::conflict(
        ProblemCode::RoleReadOnly,
        format!(
            "{name:?} is a built-in role and cannot be changed or deleted; create a custom role instead"
        ),
    )
}

/// Checks the permission list: each must be in the catalog and held by the caller. Returns
/// it sorted and without duplicates. Errors: 422 naming `permissions[i]`.
async fn check_permissions(
    db: &impl ConnectionTrait,
    access: &Access,
    permissions: &[String],
) -> AppResult<Vec<String>> {
    let held = orgs::permissions_of(db, access.org_id, &access.role)
        .await?
        .unwrap_or_default();
    let mut errors = Vec::new();
    for (i, p) in permissions.iter().enumerate() {
        if !rbac::is_permission(p) {
            errors.push(FieldError::new(
                format!("permissions[{i}]"),
                format!("unknown permission {p:?}; see GET /v1/permissions"),
            ));
        } else if !held.contains(p) {
            errors.push(FieldError::new(
                format!("permissions[{i}]"),
                format!("your role lacks `{p}`: a role cannot hold a permission its author lacks"),
            ));
        }
    }
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    let mut out = permissions.to_vec();
    out.sort();
    out.dedup();
    Ok(out)
}

fn check_description(description: &str) -> AppResult<String> {
    let d = description.trim();
    let bad = |c: char| c.is_control() && !matches!(c, '\t' | '\n' | '\r');
    if d.chars().count() > DESCRIPTION_MAX || d.chars().any(bad) {
        return Err(AppError::field(
            "description",
            format!(
                "must be at most {DESCRIPTION_MAX} characters without control characters (tab and line breaks allowed)"
            ),
        ));
    }
    Ok(d.to_owned())
}

/// Creates a custom role. Errors: 422 `description`, `permissions[i]`; 409 `role_name_taken`
/// (also for a built-in role's name), `role_limit_reached`; 403; 404.
pub async fn create(
    db: &DatabaseConnection,
    rbac: &Rbac,
    access: Access,
    name: &str,
    description: &str,
    permissions: &[String],
    ctx: &AuditCtx,
) -> AppResult<RoleView> {
    if Role::parse(name).is_some() {
        return Err(AppError::conflict(
            ProblemCode::RoleNameTaken,
            "a built-in role has this name; pick another",
        ));
    }
    let description = check_description(description)?;
    let tx = db.begin().await?;
    let access = orgs::lock_and_reauthorize(&tx, rbac, &access, rbac::ROLES_WRITE).await?;
    let permissions = check_permissions(&tx, &access, permissions).await?;
    let count = role::Entity::find_in(access.org_id).count(&tx).await?;
    if count >= MAX_CUSTOM_ROLES {
        return Err(AppError::conflict(
            ProblemCode::RoleLimitReached,
            format!("an organization can have at most {MAX_CUSTOM_ROLES} custom roles"),
        ));
    }
    let now = Utc::now();
    let row = role::Model {
        id: Uuid::now_v7(),
        org_id: access.org_id,
        name: name.to_owned(),
        description,
        version: 1,
        created_by: access.user_id(),
        created_at: now,
        updated_at: now,
    };
    role::Entity::insert(row.clone().into_active_model().reset_all())
        .exec_without_returning(&tx)
        .await
        .map_err(|e| {
            AppError::from_db(
                e,
                ProblemCode::RoleNameTaken,
                "this organization already has a role with that name",
            )
        })?;
    let change = rbac::set_role_permissions_in_tx(&tx, name, access.org_id, &permissions).await?;
    let event = Event {
        org_id: Some(access.org_id),
        action: "role.created",
        target_type: target::ROLE,
        target_id: Some(row.id),
        success: true,
        details: json!({ "name": name, "permissions": permissions }),
    };
    audit::record(&tx, ctx, event).await?;
    tx.commit().await?;
    rbac.apply(vec![change]).await;
    Ok(custom_view(row, permissions))
}

/// Replaces a custom role's description and permissions. `if_match` is the version last read
/// (412 on mismatch). In the same transaction, the org's API keys and pending invitations
/// that the change leaves uncovered are revoked ([`grants::enforce`]): those granted by a
/// holder of the role when it shrinks, and those holding the role when it grows beyond their
/// grantor's rights; `cache` loses the revoked keys after the commit. Errors: 409
/// `role_read_only` (built-in), 404, 412, 422, 403 (the role holds a permission the caller
/// lacks).
#[allow(clippy::too_many_arguments)]
pub async fn update(
    db: &DatabaseConnection,
    rbac: &Rbac,
    cache: &AuthCache,
    access: Access,
    name: &str,
    description: &str,
    permissions: &[String],
    if_match: i64,
    ctx: &AuditCtx,
) -> AppResult<RoleView> {
    if Role::parse(name).is_some() {
        return Err(read_only(name));
    }
    let description = check_description(description)?;
    let tx = db.begin().await?;
    let access = orgs::lock_and_reauthorize(&tx, rbac, &access, rbac::ROLES_WRITE).await?;
    let row = find_custom(&tx, access.org_id, name).await?;
    if row.version != if_match {
        return Err(AppError::PreconditionFailed(format!(
            "the role changed since you read it (current ETag \"{}\"); re-read and retry",
            row.version
        )));
    }
    let before = rbac::custom_role_permissions(&tx, access.org_id, &[name.to_owned()])
        .await?
        .remove(name)
        .unwrap_or_default();
    if let Some(missing) = orgs::first_missing(&tx, &access, &before).await? {
        return Err(AppError::permission_denied(&missing));
    }
    let permissions = check_permissions(&tx, &access, permissions).await?;
    let now = Utc::now();
    role::Entity::update_many()
        .col_expr(role::Column::Description, Expr::value(description.clone()))
        .col_expr(
            role::Column::Version,
            Expr::col(role::Column::Version).add(1),
        )
        .col_expr(role::Column::UpdatedAt, Expr::value(now))
        .filter(role::Column::Id.eq(row.id))
        .exec(&tx)
        .await?;
    let change = rbac::set_role_permissions_in_tx(&tx, name, access.org_id, &permissions).await?;
    let event = Event {
        org_id: Some(access.org_id),
        action: "role.updated",
        target_type: target::ROLE,
        target_id: Some(row.id),
        success: true,
        details: json!({ "name": name, "from": before, "to": permissions }),
    };
    audit::record(&tx, ctx, event).await?;
    let enforced = grants::enforce(&tx, access.org_id, ctx, "role.updated").await?;
    tx.commit().await?;
    rbac.apply(vec![change]).await;
    enforced.apply(rbac, cache).await;
    let updated = role::Model {
        description,
        version: row.version + 1,
        updated_at: now,
        ..row
    };
    Ok(custom_view(updated, permissions))
}

/// Deletes a custom role. Errors: 409 `role_read_only` (built-in), 409 `role_in_use` (held by
/// a member, a live API key or a pending invitation), 404, 403. Nobody's rights change when
/// it goes (nobody holds it), so no grant needs re-checking ([`grants`]).
pub async fn delete(
    db: &DatabaseConnection,
    rbac: &Rbac,
    access: Access,
    name: &str,
    ctx: &AuditCtx,
) -> AppResult<()> {
    if Role::parse(name).is_some() {
        return Err(read_only(name));
    }
    let tx = db.begin().await?;
    let access = orgs::lock_and_reauthorize(&tx, rbac, &access, rbac::ROLES_WRITE).await?;
    let row = find_custom(&tx, access.org_id, name).await?;
    let perms = rbac::custom_role_permissions(&tx, access.org_id, &[name.to_owned()])
        .await?
        .remove(name)
        .unwrap_or_default();
    if let Some(missing) = orgs::first_missing(&tx, &access, &perms).await? {
        return Err(AppError::permission_denied(&missing));
    }
    let members = membership::Entity::find_in(access.org_id)
        .filter(membership::Column::Role.eq(name))
        .count(&tx)
        .await?;
    let keys = api_key::Entity::find_in(access.org_id)
        .filter(api_key::Column::Role.eq(name))
        .filter(api_key::Column::RevokedAt.is_null())
        .count(&tx)
        .await?;
    let invitations = invitation::Entity::find_in(access.org_id)
        .filter(invitation::Column::Role.eq(name))
        .filter(invitation::Column::AcceptedAt.is_null())
        .filter(invitation::Column::RevokedAt.is_null())
        .filter(invitation::Column::ExpiresAt.gt(Utc::now()))
        .count(&tx)
        .await?;
    if members + keys + invitations > 0 {
        return Err(AppError::conflict(
            ProblemCode::RoleInUse,
            format!(
                "the role is assigned to {members} member(s), {keys} API key(s) and {invitations} pending invitation(s); reassign or revoke them first"
            ),
        ));
    }
    role::Entity::delete_by_id(row.id).exec(&tx).await?;
    let change = rbac::set_role_permissions_in_tx(&tx, name, access.org_id, &[]).await?;
    let event = Event {
        org_id: Some(access.org_id),
        action: "role.deleted",
        target_type: target::ROLE,
        target_id: Some(row.id),
        success: true,
        details: json!({ "name": name, "permissions": perms }),
    };
    audit::record(&tx, ctx, event).await?;
    tx.commit().await?;
    rbac.apply(vec![change]).await;
    Ok(())
}
