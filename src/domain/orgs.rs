//! Organizations and memberships: the tenant boundary.
//!
//! [`authorize`] is the gate every `/v1/orgs/{org_id}/…` operation passes: a caller who is
//! not a member gets 404 for the org and everything in it (no existence leak); a member whose
//! role lacks the permission gets 403 `permission_denied`. Every finder below takes the
//! `org_id` it is scoped to. Membership changes lock the org row first (a no-op `UPDATE`,
//! which takes a row lock on PostgreSQL and the write lock on SQLite), so the "an org always
//! keeps an owner" check cannot race.

use chrono::Utc;
use sea_orm::{
    ActiveModelTrait,
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, TransactionTrait,
    sea_query::{Expr, ExprTrait},
};
use serde_json::json;
use uuid::Uuid;

use super::{
    accounts::normalize_email,
    audit::{self, AuditCtx, Event, target},
    page::{Page, PageRequest},
};
use crate::{
    auth::rbac::{self, Rbac, Role},
    entity::{membership, organization, user},
    error::{AppError, AppResult, FieldError},
};

/// Longest organization name, in characters.
pub const NAME_MAX: usize = 200;

/// The caller's standing in an org, returned by [`authorize`], with the org itself (read in
/// the same query, so a single-org read costs one round trip).
#[derive(Clone, Debug)]
pub struct Access {
    /// The org as read during authorization.
    pub org: organization::Model,
    /// The org.
    pub org_id: Uuid,
    /// The caller.
    pub user_id: Uuid,
    /// The caller's role there.
    pub role: Role,
}

/// Checks that `user_id` is a member of `org_id` whose role holds `permission`.
/// Errors: 404 `not_found` for non-members (and unknown orgs); 403 `permission_denied`.
pub async fn authorize(
    db: &impl ConnectionTrait,
    rbac: &Rbac,
    user_id: Uuid,
    org_id: Uuid,
    permission: &str,
) -> AppResult<Access> {
    let (m, org) = membership::Entity::find_by_id((org_id, user_id))
        .find_also_related(organization::Entity)
        .one(db)
        .await?
        .ok_or(AppError::NotFound("organization"))?;
    let org = org.ok_or(AppError::NotFound("organization"))?;
    let role = Role::parse(&m.role).ok_or_else(|| {
        AppError::Internal(anyhow::anyhow!("unknown role {:?} in membership", m.role))
    })?;
    if !rbac.allows(role, org_id, permission).await {
        return Err(AppError::permission_denied(permission));
    }
    Ok(Access {
        org,
        org_id,
        user_id,
        role,
    })
}

fn normalize_name(name: &str) -> AppResult<String> {
    let n = name.trim();
    let len = n.chars().count();
    if len == 0 || len > NAME_MAX || n.chars().any(char::is_control) {
        return Err(AppError::field(
            "name",
            format!("must be 1 to {NAME_MAX} printable characters"),
        ));
    }
    Ok(n.to_owned())
}

/// Creates an org with the caller as its owner (membership, casbin grant and audit in one
/// transaction). Errors: 422 `name`.
#[tracing::instrument(skip_all, fields(user_id = %user_id))]
pub async fn create(
    db: &DatabaseConnection,
    rbac: &Rbac,
    user_id: Uuid,
    name: &str,
    ctx: &AuditCtx,
) -> AppResult<organization::Model> {
    let name = normalize_name(name)?;
    let now = Utc::now();
    let org_id = Uuid::now_v7();
    let tx = db.begin().await?;
    let org = organization::ActiveModel {
        id: Set(org_id),
        name: Set(name.clone()),
        version: Set(1),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&tx)
    .await?;
    insert_membership(&tx, org_id, user_id, Role::Owner).await?;
    let change = rbac::grant_in_tx(&tx, user_id, org_id, Role::Owner).await?;
    let event = Event {
        org_id: Some(org_id),
        action: "org.created",
        target_type: target::ORGANIZATION,
        target_id: Some(org_id),
        success: true,
        details: json!({ "name": name }),
    };
    audit::record(&tx, ctx, event).await?;
    tx.commit().await?;
    rbac.apply(vec![change]).await;
    Ok(org)
}

async fn insert_membership(
    db: &impl ConnectionTrait,
    org_id: Uuid,
    user_id: Uuid,
    role: Role,
) -> AppResult<()> {
    let now = Utc::now();
    membership::Entity::insert(membership::ActiveModel {
        org_id: Set(org_id),
        user_id: Set(user_id),
        role: Set(role.as_str().to_owned()),
        created_at: Set(now),
        updated_at: Set(now),
    })
    .exec_without_returning(db)
    .await
    .map_err(|e| {
        AppError::from_db(
            e,
            "already_member",
            "the user is already a member of this organization",
        )
    })?;
    Ok(())
}

/// The caller's orgs with the caller's role in each, in creation order.
pub async fn list_for_user(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    page: PageRequest,
) -> AppResult<Page<(organization::Model, Role)>> {
    let mut q = membership::Entity::find()
        .find_also_related(organization::Entity)
        .filter(membership::Column::UserId.eq(user_id));
    if let Some(after) = page.after {
        q = q.filter(membership::Column::OrgId.gt(after));
    }
    let rows = q
        .order_by_asc(membership::Column::OrgId)
        .limit(page.fetch())
        .all(db)
        .await?;
    let rows = rows
        .into_iter()
        .filter_map(|(m, org)| Some((org?, Role::parse(&m.role)?)))
        .collect();
    Ok(page.finish(rows, |(o, _)| o.id))
}

/// One org (call [`authorize`] first). Errors: 404.
pub async fn get(db: &impl ConnectionTrait, org_id: Uuid) -> AppResult<organization::Model> {
    organization::Entity::find_by_id(org_id)
        .one(db)
        .await?
        .ok_or(AppError::NotFound("organization"))
}

/// Renames an org. `if_match` is the version the caller last read (`ETag`); a mismatch is
/// 412. Errors: 422 `name`, 404, 412.
pub async fn update(
    db: &DatabaseConnection,
    org_id: Uuid,
    name: Option<&str>,
    if_match: Option<i64>,
    ctx: &AuditCtx,
) -> AppResult<organization::Model> {
    let name = name.map(normalize_name).transpose()?;
    let tx = db.begin().await?;
    let mut q = organization::Entity::update_many()
        .col_expr(
            organization::Column::Version,
            Expr::col(organization::Column::Version).add(1),
        )
        .col_expr(organization::Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(organization::Column::Id.eq(org_id));
    if let Some(n) = &name {
        q = q.col_expr(organization::Column::Name, Expr::value(n.clone()));
    }
    if let Some(v) = if_match {
        q = q.filter(organization::Column::Version.eq(v));
    }
    if q.exec(&tx).await?.rows_affected == 0 {
        let current = get(&tx, org_id).await?;
        return Err(AppError::PreconditionFailed(format!(
            "the organization changed since you read it (current ETag \"{}\"); re-read and retry",
            current.version
        )));
    }
    let org = get(&tx, org_id).await?;
    let event = Event {
        org_id: Some(org_id),
        action: "org.updated",
        target_type: target::ORGANIZATION,
        target_id: Some(org_id),
        success: true,
        details: json!({ "name": name, "version": org.version }),
    };
    audit::record(&tx, ctx, event).await?;
    tx.commit().await?;
    Ok(org)
}

/// Deletes an org, its memberships, agents, sessions (with their logs and commands), jobs and
/// casbin rules; the audit rows stay. Errors: 404; 409 `org_has_live_sessions`.
pub async fn delete(
    db: &DatabaseConnection,
    rbac: &Rbac,
    org_id: Uuid,
    ctx: &AuditCtx,
) -> AppResult<()> {
    let tx = db.begin().await?;
    // Same lock order as membership changes (org row first), so they cannot deadlock.
    lock_org(&tx, org_id).await?;
    // Live sessions hold desktops; deleting their org would orphan them.
    if super::sessions::org_has_live_work(&tx, org_id).await? {
        return Err(AppError::conflict(
            "org_has_live_sessions",
            "the organization has live sessions or unfinished jobs; stop them and retry",
        ));
    }
    membership::Entity::delete_many()
        .filter(membership::Column::OrgId.eq(org_id))
        .exec(&tx)
        .await?;
    let gone = organization::Entity::delete_by_id(org_id)
        .exec(&tx)
        .await?
        .rows_affected;
    if gone == 0 {
        return Err(AppError::NotFound("organization"));
    }
    let change = rbac::drop_domain_in_tx(&tx, org_id).await?;
    let event = Event {
        org_id: Some(org_id),
        action: "org.deleted",
        target_type: target::ORGANIZATION,
        target_id: Some(org_id),
        success: true,
        details: json!({}),
    };
    audit::record(&tx, ctx, event).await?;
    tx.commit().await?;
    rbac.apply(vec![change]).await;
    Ok(())
}

/// A member with their account's public fields.
#[derive(Debug)]
pub struct Member {
    /// The membership.
    pub membership: membership::Model,
    /// The member's account.
    pub user: user::Model,
}

/// An org's members in user-id order.
pub async fn list_members(
    db: &impl ConnectionTrait,
    org_id: Uuid,
    page: PageRequest,
) -> AppResult<Page<Member>> {
    let mut q = membership::Entity::find()
        .find_also_related(user::Entity)
        .filter(membership::Column::OrgId.eq(org_id));
    if let Some(after) = page.after {
        q = q.filter(membership::Column::UserId.gt(after));
    }
    let rows = q
        .order_by_asc(membership::Column::UserId)
        .limit(page.fetch())
        .all(db)
        .await?;
    let rows = rows
        .into_iter()
        .filter_map(|(m, u)| {
            Some(Member {
                membership: m,
                user: u?,
            })
        })
        .collect();
    Ok(page.finish(rows, |m| m.membership.user_id))
}

pub(crate) async fn lock_org(db: &impl ConnectionTrait, org_id: Uuid) -> AppResult<()> {
    let locked = organization::Entity::update_many()
        .col_expr(
            organization::Column::Version,
            Expr::col(organization::Column::Version),
        )
        .filter(organization::Column::Id.eq(org_id))
        .exec(db)
        .await?
        .rows_affected;
    if locked == 0 {
        Err(AppError::NotFound("organization"))
    } else {
        Ok(())
    }
}

async fn owner_count(db: &impl ConnectionTrait, org_id: Uuid) -> AppResult<u64> {
    Ok(membership::Entity::find()
        .filter(membership::Column::OrgId.eq(org_id))
        .filter(membership::Column::Role.eq(Role::Owner.as_str()))
        .count(db)
        .await?)
}

/// Locks the org and re-reads the caller's membership inside the transaction: a decision made
/// under the lock uses the caller's role as it is now, not as it was when the request began
/// (a concurrently demoted owner cannot still grant `owner`). Errors: 404, 403.
async fn lock_and_reauthorize(
    db: &impl ConnectionTrait,
    rbac: &Rbac,
    access: &Access,
    permission: &str,
) -> AppResult<Access> {
    lock_org(db, access.org_id).await?;
    authorize(db, rbac, access.user_id, access.org_id, permission).await
}

async fn require_owner_rights(rbac: &Rbac, access: &Access) -> AppResult<()> {
    if rbac
        .allows(access.role, access.org_id, rbac::MEMBERS_OWNER)
        .await
    {
        Ok(())
    } else {
        Err(AppError::permission_denied(rbac::MEMBERS_OWNER))
    }
}

fn last_owner() -> AppError {
    AppError::conflict(
        "last_owner",
        "an organization must keep at least one owner; make someone else owner first",
    )
}

/// Adds an existing user by email. Granting `owner` needs `members:owner`.
/// Errors: 422 `email` (malformed or no such account), 409 `already_member`, 403.
pub async fn add_member(
    db: &DatabaseConnection,
    rbac: &Rbac,
    access: Access,
    email: &str,
    role: Role,
    ctx: &AuditCtx,
) -> AppResult<Member> {
    let email = normalize_email("email", email).map_err(|e| AppError::Validation(vec![e]))?;
    let user = user::Entity::find()
        .filter(user::Column::Email.eq(email))
        .one(db)
        .await?
        .ok_or_else(|| {
            AppError::Validation(vec![FieldError::new(
                "email",
                "no account has this email address",
            )])
        })?;
    let tx = db.begin().await?;
    let access = lock_and_reauthorize(&tx, rbac, &access, rbac::MEMBERS_WRITE).await?;
    if role == Role::Owner {
        require_owner_rights(rbac, &access).await?;
    }
    insert_membership(&tx, access.org_id, user.id, role).await?;
    let change = rbac::grant_in_tx(&tx, user.id, access.org_id, role).await?;
    let event = Event {
        org_id: Some(access.org_id),
        action: "member.added",
        target_type: target::MEMBERSHIP,
        target_id: Some(user.id),
        success: true,
        details: json!({ "role": role.as_str() }),
    };
    audit::record(&tx, ctx, event).await?;
    let membership = membership::Entity::find_by_id((access.org_id, user.id))
        .one(&tx)
        .await?
        .ok_or_else(|| {
            AppError::Internal(anyhow::anyhow!(
                "membership vanished inside its transaction"
            ))
        })?;
    tx.commit().await?;
    rbac.apply(vec![change]).await;
    Ok(Member { membership, user })
}

async fn find_member(db: &impl ConnectionTrait, org_id: Uuid, user_id: Uuid) -> AppResult<Member> {
    let (membership, user) = membership::Entity::find_by_id((org_id, user_id))
        .find_also_related(user::Entity)
        .one(db)
        .await?
        .ok_or(AppError::NotFound("member"))?;
    let user = user.ok_or(AppError::NotFound("member"))?;
    Ok(Member { membership, user })
}

/// Changes a member's role. Granting or taking `owner` needs `members:owner`; demoting the
/// last owner is 409 `last_owner`. Errors: 404 `member`, 403, 409.
pub async fn update_member(
    db: &DatabaseConnection,
    rbac: &Rbac,
    access: Access,
    user_id: Uuid,
    role: Role,
    ctx: &AuditCtx,
) -> AppResult<Member> {
    let tx = db.begin().await?;
    let access = lock_and_reauthorize(&tx, rbac, &access, rbac::MEMBERS_WRITE).await?;
    let current = find_member(&tx, access.org_id, user_id).await?;
    let old = Role::parse(&current.membership.role).unwrap_or(Role::Viewer);
    if old == role {
        return Ok(current);
    }
    if old == Role::Owner || role == Role::Owner {
        require_owner_rights(rbac, &access).await?;
    }
    if old == Role::Owner && owner_count(&tx, access.org_id).await? <= 1 {
        return Err(last_owner());
    }
    let mut am: membership::ActiveModel = current.membership.into();
    am.role = Set(role.as_str().to_owned());
    am.updated_at = Set(Utc::now());
    let membership = am.update(&tx).await?;
    let revoke = rbac::revoke_in_tx(&tx, user_id, access.org_id, old).await?;
    let grant = rbac::grant_in_tx(&tx, user_id, access.org_id, role).await?;
    let event = Event {
        org_id: Some(access.org_id),
        action: "member.updated",
        target_type: target::MEMBERSHIP,
        target_id: Some(user_id),
        success: true,
        details: json!({ "from": old.as_str(), "to": role.as_str() }),
    };
    audit::record(&tx, ctx, event).await?;
    tx.commit().await?;
    rbac.apply(vec![revoke, grant]).await;
    Ok(Member {
        membership,
        user: current.user,
    })
}

/// Removes a member. Removing an owner needs `members:owner`; removing the last owner is 409
/// `last_owner`. Errors: 404 `member`, 403, 409.
pub async fn remove_member(
    db: &DatabaseConnection,
    rbac: &Rbac,
    access: Access,
    user_id: Uuid,
    ctx: &AuditCtx,
) -> AppResult<()> {
    let tx = db.begin().await?;
    let access = lock_and_reauthorize(&tx, rbac, &access, rbac::MEMBERS_WRITE).await?;
    let current = find_member(&tx, access.org_id, user_id).await?;
    let role = Role::parse(&current.membership.role).unwrap_or(Role::Viewer);
    if role == Role::Owner {
        require_owner_rights(rbac, &access).await?;
        if owner_count(&tx, access.org_id).await? <= 1 {
            return Err(last_owner());
        }
    }
    membership::Entity::delete_by_id((access.org_id, user_id))
        .exec(&tx)
        .await?;
    let revoke = rbac::revoke_in_tx(&tx, user_id, access.org_id, role).await?;
    let event = Event {
        org_id: Some(access.org_id),
        action: "member.removed",
        target_type: target::MEMBERSHIP,
        target_id: Some(user_id),
        success: true,
        details: json!({ "role": role.as_str() }),
    };
    audit::record(&tx, ctx, event).await?;
    tx.commit().await?;
    rbac.apply(vec![revoke]).await;
    Ok(())
}
