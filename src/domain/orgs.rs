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
    audit::{self, AuditCtx, Event, target},
    grants,
    page::{Page, PageRequest},
};
use crate::{
    auth::{
        Subject,
        cache::{AuthCache, Invalidation},
        rbac::{self, Rbac, Role},
    },
    blob::BlobStore,
    entity::{Tenant, api_key, membership, organization, role as role_entity, user},
    error::{AppError, AppResult, ProblemCode},
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
    /// The caller: a member or an API key of the org.
    pub subject: Subject,
    /// The caller's role there (built-in or custom name).
    pub role: String,
}

impl Access {
    /// The org, as a typed id.
    pub fn org(&self) -> crate::entity::OrgId {
        crate::entity::OrgId(self.org_id)
    }

    /// The calling user, when the caller is a user (not an API key).
    pub fn user_id(&self) -> Option<Uuid> {
        self.subject.user_id()
    }
}

/// The request path's authorization: checks that `subject` acts in `org_id` (a member, or an
/// API key of that org) with a role that holds `permission`, from the node's
/// [`AuthCache`](crate::auth::cache::AuthCache) when it holds the membership, the org row and
/// the decision (changes invalidate them on every node through the bus), else from the
/// database as [`authorize_uncached`] does, filling the cache. Errors: as
/// [`authorize_uncached`].
pub async fn authorize(
    db: &impl ConnectionTrait,
    rbac: &Rbac,
    subject: &Subject,
    org_id: Uuid,
    permission: &str,
) -> AppResult<Access> {
    let cache = rbac.cache();
    let fill = cache.begin();
    let (role, mut org) = match subject {
        Subject::User(user_id) => match cache.member(org_id, *user_id) {
            Some(Some(role)) => (role, cache.org(org_id)),
            Some(None) => return Err(AppError::NotFound("organization")),
            None => {
                let found = membership::Entity::find_by_id((org_id, *user_id))
                    .find_also_related(organization::Entity)
                    .one(db)
                    .await?;
                let Some((m, Some(org))) = found else {
                    cache.put_member(fill, org_id, *user_id, None);
                    return Err(AppError::NotFound("organization"));
                };
                cache.put_member(fill, org_id, *user_id, Some(m.role.clone()));
                cache.put_org(fill, org.clone());
                (m.role, Some(org))
            }
        },
        Subject::ApiKey { .. } => (key_role(subject, org_id)?, cache.org(org_id)),
    };
    if org.is_none() {
        let read = get(db, org_id).await?;
        cache.put_org(fill, read.clone());
        org = Some(read);
    }
    let allowed = match cache.decision(org_id, &role, permission) {
        Some(allowed) => allowed,
        None => {
            let allowed = role_allows(db, rbac, org_id, &role, permission).await?;
            cache.put_decision(fill, org_id, &role, permission, allowed);
            allowed
        }
    };
    if !allowed {
        return Err(AppError::permission_denied(permission));
    }
    Ok(Access {
        org: org.ok_or(AppError::NotFound("organization"))?,
        org_id,
        subject: subject.clone(),
        role,
    })
}

/// An API key's role in `org_id`: the key was verified (not revoked, not expired) on this
/// request and its org and role never change. Errors: 404 for a key of another org (or a
/// user).
fn key_role(subject: &Subject, org_id: Uuid) -> AppResult<String> {
    match subject {
        Subject::ApiKey {
            org_id: key_org,
            role,
            ..
        } if *key_org == org_id => Ok(role.clone()),
        _ => Err(AppError::NotFound("organization")),
    }
}

/// Checks that `subject` acts in `org_id` (a member, or an API key of that org) with a role
/// that holds `permission`, reading the membership and the org in `db` (for decisions made in
/// a transaction, under a lock). Errors: 404 `not_found` for non-members, keys of other orgs
/// and unknown orgs; 403 `permission_denied` naming the permission.
pub async fn authorize_uncached(
    db: &impl ConnectionTrait,
    rbac: &Rbac,
    subject: &Subject,
    org_id: Uuid,
    permission: &str,
) -> AppResult<Access> {
    let (org, role) = match subject {
        Subject::User(user_id) => {
            let (m, org) = membership::Entity::find_by_id((org_id, *user_id))
                .find_also_related(organization::Entity)
                .one(db)
                .await?
                .ok_or(AppError::NotFound("organization"))?;
            (org.ok_or(AppError::NotFound("organization"))?, m.role)
        }
        Subject::ApiKey { .. } => (get(db, org_id).await?, key_role(subject, org_id)?),
    };
    if !role_allows(db, rbac, org_id, &role, permission).await? {
        return Err(AppError::permission_denied(permission));
    }
    Ok(Access {
        org,
        org_id,
        subject: subject.clone(),
        role,
    })
}

/// Whether the role named `role` (built-in, or custom in `org_id`) holds `permission`,
/// decided by casbin. A custom role's stored permissions are read in `db` first, so a change
/// made on another node holds at once.
pub async fn role_allows(
    db: &impl ConnectionTrait,
    rbac: &Rbac,
    org_id: Uuid,
    role: &str,
    permission: &str,
) -> AppResult<bool> {
    if let Some(builtin) = Role::parse(role) {
        return Ok(rbac.allows(builtin, org_id, permission).await);
    }
    let stored = rbac::custom_role_permissions(db, org_id, &[role.to_owned()])
        .await?
        .remove(role)
        .unwrap_or_default();
    Ok(rbac
        .role_allows(role, org_id, Some(&stored), permission)
        .await)
}

/// The permissions of the role named `role` in `org_id`, sorted; `None` when no built-in or
/// custom role has that name there.
pub async fn permissions_of(
    db: &impl ConnectionTrait,
    org_id: Uuid,
    role: &str,
) -> AppResult<Option<Vec<String>>> {
    if let Some(perms) = rbac::builtin_permissions(role) {
        let mut v: Vec<String> = perms.iter().map(|p| (*p).to_owned()).collect();
        v.sort();
        return Ok(Some(v));
    }
    let exists = role_entity::Entity::find_in(org_id)
        .filter(role_entity::Column::Name.eq(role))
        .one(db)
        .await?
        .is_some();
    if !exists {
        return Ok(None);
    }
    Ok(
        rbac::custom_role_permissions(db, org_id, &[role.to_owned()])
            .await?
            .remove(role),
    )
}

/// The first permission of `wanted` that the caller's role lacks, if any.
pub async fn first_missing(
    db: &impl ConnectionTrait,
    access: &Access,
    wanted: &[String],
) -> AppResult<Option<String>> {
    let held = permissions_of(db, access.org_id, &access.role)
        .await?
        .unwrap_or_default();
    Ok(wanted.iter().find(|p| !held.contains(p)).cloned())
}

/// Checks that the caller may give (or take) the role named `role`: it must exist in the org
/// (422 naming `field` otherwise); `owner` needs `members:owner`; and no role may hold a
/// permission the caller lacks (403 `permission_denied` naming it).
pub async fn ensure_grantable(
    db: &impl ConnectionTrait,
    rbac: &Rbac,
    access: &Access,
    role: &str,
    field: &str,
) -> AppResult<()> {
    let Some(perms) = permissions_of(db, access.org_id, role).await? else {
        return Err(AppError::field(
            field,
            format!("no built-in or custom role named {role:?} in this organization"),
        ));
    };
    if role == Role::Owner.as_str() {
        require_owner_rights(db, rbac, access).await?;
    }
    if let Some(missing) = first_missing(db, access, &perms).await? {
        return Err(AppError::permission_denied(&missing));
    }
    Ok(())
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
/// transaction). The caller may have created at most `max_orgs_per_user` orgs that still
/// exist: they are counted under a lock of the caller's user row, so concurrent creations
/// cannot exceed it. Errors: 422 `name`; 409 `quota_exceeded` (`max_orgs_per_user`).
#[tracing::instrument(skip_all, fields(user_id = %user_id))]
pub async fn create(
    db: &DatabaseConnection,
    rbac: &Rbac,
    user_id: Uuid,
    name: &str,
    max_orgs_per_user: u32,
    ctx: &AuditCtx,
) -> AppResult<organization::Model> {
    let name = normalize_name(name)?;
    let now = Utc::now();
    let org_id = Uuid::now_v7();
    let tx = super::begin_write(db).await?;
    super::accounts::lock_user(&tx, user_id).await?;
    let created = organization::Entity::find()
        .filter(organization::Column::CreatedBy.eq(user_id))
        .count(&tx)
        .await?;
    let max = u64::from(max_orgs_per_user);
    if created >= max {
        return Err(AppError::quota(
            "max_orgs_per_user",
            max,
            &format!("you have created {created} organizations that still exist"),
        ));
    }
    let org = organization::ActiveModel {
        id: Set(org_id),
        name: Set(name.clone()),
        version: Set(1),
        created_at: Set(now),
        updated_at: Set(now),
        created_by: Set(Some(user_id)),
    }
    .insert(&tx)
    .await?;
    insert_membership(&tx, org_id, user_id, Role::Owner.as_str()).await?;
    let change = rbac::grant_in_tx(
        &tx,
        rbac::user_subject(user_id),
        org_id,
        Role::Owner.as_str(),
    )
    .await?;
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

pub(crate) async fn insert_membership(
    db: &impl ConnectionTrait,
    org_id: Uuid,
    user_id: Uuid,
    role: &str,
) -> AppResult<()> {
    let now = Utc::now();
    membership::Entity::insert(membership::ActiveModel {
        org_id: Set(org_id),
        user_id: Set(user_id),
        role: Set(role.to_owned()),
        created_at: Set(now),
        updated_at: Set(now),
    })
    .exec_without_returning(db)
    .await
    .map_err(|e| {
        AppError::from_db(
            e,
            ProblemCode::AlreadyMember,
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
) -> AppResult<Page<(organization::Model, String)>> {
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
        .filter_map(|(m, org)| Some((org?, m.role)))
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
    cache: &AuthCache,
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
    cache.invalidate(Invalidation::Org(org_id));
    Ok(org)
}

/// Deletes an org, its memberships, agents, sessions (with their logs, commands and
/// artifacts), jobs and casbin rules; the audit rows stay. Artifact blobs in the database go
/// in the same transaction; those in S3 are deleted after commit, best effort (failures are
/// logged). Errors: 404; 409 `org_has_live_sessions`.
pub async fn delete(
    db: &DatabaseConnection,
    rbac: &Rbac,
    blobs: &dyn BlobStore,
    org_id: Uuid,
    ctx: &AuditCtx,
) -> AppResult<()> {
    let tx = db.begin().await?;
    // Same lock order as membership changes (org row first), so they cannot deadlock.
    lock_org(&tx, org_id).await?;
    // Live sessions hold desktops; deleting their org would orphan them.
    if super::sessions::org_has_live_work(&tx, org_id).await? {
        return Err(AppError::conflict(
            ProblemCode::OrgHasLiveSessions,
            "the organization has live sessions or unfinished jobs; stop them and retry",
        ));
    }
    let blob_keys = super::artifacts::delete_in_org(&tx, crate::entity::OrgId(org_id)).await?;
    membership::Entity::delete_in(org_id).exec(&tx).await?;
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
    super::artifacts::delete_blobs(blobs, crate::entity::OrgId(org_id), blob_keys).await;
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
    let mut q = membership::Entity::find_in(org_id).find_also_related(user::Entity);
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

pub(crate) async fn owner_count(db: &impl ConnectionTrait, org_id: Uuid) -> AppResult<u64> {
    Ok(membership::Entity::find_in(org_id)
        .filter(membership::Column::Role.eq(Role::Owner.as_str()))
        .count(db)
        .await?)
}

/// Locks the org and re-reads the caller's membership (or API key) inside the transaction: a
/// decision made under the lock uses the caller's role as it is now, not as it was when the
/// request began (a concurrently demoted owner cannot still grant `owner`, a revoked key
/// cannot finish a change). Errors: 404, 403; 401 for a key revoked meanwhile.
pub(crate) async fn lock_and_reauthorize(
    db: &impl ConnectionTrait,
    rbac: &Rbac,
    access: &Access,
    permission: &str,
) -> AppResult<Access> {
    lock_org(db, access.org_id).await?;
    authorize_fresh(db, rbac, &access.subject, access.org_id, permission).await
}

/// [`authorize_uncached`], re-checking first that an API key is still neither revoked nor
/// expired (for decisions made long after the request authenticated: under a lock, or when a
/// live stream re-checks its caller). Errors: as [`authorize_uncached`]; 401 for a key gone
/// bad.
pub async fn authorize_fresh(
    db: &impl ConnectionTrait,
    rbac: &Rbac,
    subject: &Subject,
    org_id: Uuid,
    permission: &str,
) -> AppResult<Access> {
    if let Subject::ApiKey { id, .. } = subject {
        let now = Utc::now();
        let live = api_key::Entity::find_by_id(*id)
            .one(db)
            .await?
            .is_some_and(|k| k.revoked_at.is_none() && k.expires_at.is_none_or(|e| e > now));
        if !live {
            return Err(AppError::invalid_token(
                "the API key was revoked or has expired",
            ));
        }
    }
    authorize_uncached(db, rbac, subject, org_id, permission).await
}

async fn require_owner_rights(
    db: &impl ConnectionTrait,
    rbac: &Rbac,
    access: &Access,
) -> AppResult<()> {
    if role_allows(db, rbac, access.org_id, &access.role, rbac::MEMBERS_OWNER).await? {
        Ok(())
    } else {
        Err(AppError::permission_denied(rbac::MEMBERS_OWNER))
    }
}

/// Checks that the caller may take the role named `role` away from someone: taking `owner`
/// needs `members:owner`, and a role holding a permission the caller lacks cannot be taken
/// (403 `permission_denied` naming it).
pub(crate) async fn ensure_takeable(
    db: &impl ConnectionTrait,
    rbac: &Rbac,
    access: &Access,
    role: &str,
) -> AppResult<()> {
    if role == Role::Owner.as_str() {
        require_owner_rights(db, rbac, access).await?;
    }
    let perms = permissions_of(db, access.org_id, role)
        .await?
        .unwrap_or_default();
    if let Some(missing) = first_missing(db, access, &perms).await? {
        return Err(AppError::permission_denied(&missing));
    }
    Ok(())
}

pub(crate) fn last_owner() -> AppError {
    AppError::conflict(
        ProblemCode::LastOwner,
        "an organization must keep at least one owner; make someone else owner first",
    )
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

/// Changes a member's role. Granting or taking `owner` needs `members:owner`; the caller can
/// neither grant nor take a role holding a permission they lack; demoting the last owner is
/// 409 `last_owner`. In the same transaction, the org's API keys and pending invitations
/// the member's new role no longer covers are revoked ([`grants::enforce`]; `cache` loses
/// the revoked keys after the commit). Errors: 404 `member`, 422 `role`, 403, 409.
pub async fn update_member(
    db: &DatabaseConnection,
    rbac: &Rbac,
    cache: &AuthCache,
    access: Access,
    user_id: Uuid,
    role: &str,
    ctx: &AuditCtx,
) -> AppResult<Member> {
    let tx = db.begin().await?;
    let access = lock_and_reauthorize(&tx, rbac, &access, rbac::MEMBERS_WRITE).await?;
    let current = find_member(&tx, access.org_id, user_id).await?;
    let old = current.membership.role.clone();
    if old == role {
        return Ok(current);
    }
    ensure_grantable(&tx, rbac, &access, role, "role").await?;
    ensure_takeable(&tx, rbac, &access, &old).await?;
    if old == Role::Owner.as_str() && owner_count(&tx, access.org_id).await? <= 1 {
        return Err(last_owner());
    }
    let mut am: membership::ActiveModel = current.membership.into();
    am.role = Set(role.to_owned());
    am.updated_at = Set(Utc::now());
    let membership = am.update(&tx).await?;
    let revoke = rbac::revoke_in_tx(&tx, rbac::user_subject(user_id), access.org_id, &old).await?;
    let grant = rbac::grant_in_tx(&tx, rbac::user_subject(user_id), access.org_id, role).await?;
    let event = Event {
        org_id: Some(access.org_id),
        action: "member.updated",
        target_type: target::MEMBERSHIP,
        target_id: Some(user_id),
        success: true,
        details: json!({ "from": old, "to": role }),
    };
    audit::record(&tx, ctx, event).await?;
    let enforced = grants::enforce(&tx, access.org_id, ctx, "member.updated").await?;
    tx.commit().await?;
    rbac.apply(vec![revoke, grant]).await;
    enforced.apply(rbac, cache).await;
    Ok(Member {
        membership,
        user: current.user,
    })
}

/// Removes a member. Removing an owner needs `members:owner`; removing the last owner is 409
/// `last_owner`. In the same transaction, the API keys and pending invitations the member
/// made (and those made by those keys) are revoked ([`grants::enforce`]; `cache` loses the
/// revoked keys after the commit). Errors: 404 `member`, 403, 409.
pub async fn remove_member(
    db: &DatabaseConnection,
    rbac: &Rbac,
    cache: &AuthCache,
    access: Access,
    user_id: Uuid,
    ctx: &AuditCtx,
) -> AppResult<()> {
    let tx = db.begin().await?;
    let access = lock_and_reauthorize(&tx, rbac, &access, rbac::MEMBERS_WRITE).await?;
    let current = find_member(&tx, access.org_id, user_id).await?;
    let role = current.membership.role.clone();
    ensure_takeable(&tx, rbac, &access, &role).await?;
    if role == Role::Owner.as_str() && owner_count(&tx, access.org_id).await? <= 1 {
        return Err(last_owner());
    }
    membership::Entity::delete_by_id((access.org_id, user_id))
        .exec(&tx)
        .await?;
    let revoke = rbac::revoke_in_tx(&tx, rbac::user_subject(user_id), access.org_id, &role).await?;
    let event = Event {
        org_id: Some(access.org_id),
        action: "member.removed",
        target_type: target::MEMBERSHIP,
        target_id: Some(user_id),
        success: true,
        details: json!({ "role": role }),
    };
    audit::record(&tx, ctx, event).await?;
    let enforced = grants::enforce(&tx, access.org_id, ctx, "member.removed").await?;
    tx.commit().await?;
    rbac.apply(vec![revoke]).await;
    enforced.apply(rbac, cache).await;
    Ok(())
}

/// The caller leaves an org of their own accord (`me.leave_org`): the membership and its
/// casbin grant go, audited in the org as `member.left`. Needs no permission, only the
/// membership. In the same transaction, the API keys and pending invitations the caller made
/// there (and those made by those keys) are revoked ([`grants::enforce`]; `cache` loses the
/// revoked keys after the commit). Errors: 404 when the caller is not a member (or the org
/// does not exist); 409 `last_owner` for the org's only owner.
pub async fn leave(
    db: &DatabaseConnection,
    rbac: &Rbac,
    cache: &AuthCache,
    user_id: Uuid,
    org_id: Uuid,
    ctx: &AuditCtx,
) -> AppResult<()> {
    let tx = super::begin_write(db).await?;
    lock_org(&tx, org_id).await?;
    let current = membership::Entity::find_by_id((org_id, user_id))
        .one(&tx)
        .await?
        .ok_or(AppError::NotFound("organization"))?;
    let role = current.role;
    if role == Role::Owner.as_str() && owner_count(&tx, org_id).await? <= 1 {
        return Err(last_owner());
    }
    membership::Entity::delete_by_id((org_id, user_id))
        .exec(&tx)
        .await?;
    let revoke = rbac::revoke_in_tx(&tx, rbac::user_subject(user_id), org_id, &role).await?;
    let event = Event {
        org_id: Some(org_id),
        action: "member.left",
        target_type: target::MEMBERSHIP,
        target_id: Some(user_id),
        success: true,
        details: json!({ "role": role }),
    };
    let ctx = ctx.as_actor(user_id);
    audit::record(&tx, &ctx, event).await?;
    let enforced = grants::enforce(&tx, org_id, &ctx, "member.left").await?;
    tx.commit().await?;
    rbac.apply(vec![revoke]).await;
    enforced.apply(rbac, cache).await;
    Ok(())
}
