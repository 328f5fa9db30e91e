//! API keys: org-scoped machine credentials `ad_<prefix>_<secret>` for agent runners and
//! integrations.
//!
//! * The prefix (12 × `[a-z0-9]`) is public and unique: it finds the row with one indexed
//!   read. The secret (32 × `[A-Za-z0-9]`, 190 bits) is stored as SHA-256 and compared in
//!   constant time; no argon2 on the request path (see [`crate::auth::secrets`]).
//! * A key acts as subject `key:<id>` with its role, in its org only; it can never be given a
//!   role holding a permission its creator lacks, neither when it is made nor later: when
//!   its creator (a member, or the key that made it) loses rights, it is revoked
//!   (`domain::grants`). Expired or revoked keys answer 401.
//! * Revoking a key needs every permission of its role (`members:owner` for an `owner` key),
//!   like changing a member: a weaker role cannot disarm a stronger key. A key may always
//!   revoke itself.
//! * An org holds at most `max_api_keys_per_org` live keys.
//! * `last_used_at` is written at most once a minute per key, by a conditional `UPDATE`
//!   issued only when the known value is older: most requests write nothing.
//! * Verification of a presented key, and the per-node cache of verified keys, live in
//!   [`crate::auth::api_keys`]; revocation here evicts from that cache.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, EntityTrait,
    IntoActiveModel, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, TransactionTrait,
    sea_query::Expr,
};
use serde_json::json;
use uuid::Uuid;

use super::{
    audit::{self, AuditCtx, Event, target},
    grants,
    orgs::{self, Access},
    page::{Page, PageRequest},
};
use crate::{
    auth::{
        rbac::{self, Rbac, RuleChange},
        secrets,
    },
    entity::{Tenant, api_key},
    error::{AppError, AppResult},
};

/// Longest key name, in characters.
pub const NAME_MAX: usize = 200;

/// A new key and its secret, shown once.
#[derive(Debug)]
pub struct Created {
    /// The stored row.
    pub key: api_key::Model,
    /// The full key `ad_<prefix>_<secret>`; never stored, never shown again.
    pub secret: String,
}

/// Limits on API keys, from config.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// `max_api_keys_per_org`: keys of one org neither revoked nor expired.
    pub max_live_per_org: u32,
}

/// Creates a key with the role named `role`; the org's live keys are counted under the org
/// lock, so concurrent creations cannot exceed `limits`. Errors: 422 `name`, 422 `expires_at`
/// (not in the future), 422 `role` (no such role, or it holds a permission the caller lacks),
/// 409 `quota_exceeded` (`max_api_keys_per_org`), 403, 404.
#[allow(clippy::too_many_arguments)]
pub async fn create(
    db: &DatabaseConnection,
    rbac: &Rbac,
    access: Access,
    limits: &Limits,
    name: &str,
    role: &str,
    expires_at: Option<DateTime<Utc>>,
    ctx: &AuditCtx,
) -> AppResult<Created> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > NAME_MAX || name.chars().any(char::is_control) {
        return Err(AppError::field(
            "name",
            format!("must be 1 to {NAME_MAX} printable characters"),
        ));
    }
    let now = Utc::now();
    if expires_at.is_some_and(|e| e <= now) {
        return Err(AppError::field("expires_at", "must be in the future"));
    }
    let tx = db.begin().await?;
    let access = orgs::lock_and_reauthorize(&tx, rbac, &access, rbac::API_KEYS_WRITE).await?;
    let Some(perms) = orgs::permissions_of(&tx, access.org_id, role).await? else {
        return Err(AppError::field(
            "role",
            format!("no built-in or custom role named {role:?} in this organization"),
        ));
    };
    if let Some(missing) = orgs::first_missing(&tx, &access, &perms).await? {
        return Err(AppError::field(
            "role",
            format!(
                "the role holds `{missing}`, which your role lacks: a key cannot exceed the role of the member who makes it"
            ),
        ));
    }
    let live = api_key::Entity::find_in(access.org_id)
        .filter(api_key::Column::RevokedAt.is_null())
        .filter(
            Condition::any()
                .add(api_key::Column::ExpiresAt.is_null())
                .add(api_key::Column::ExpiresAt.gt(now)),
        )
        .count(&tx)
        .await?;
    let max = u64::from(limits.max_live_per_org);
    if live >= max {
        return Err(AppError::quota(
            "max_api_keys_per_org",
            max,
            &format!("the organization has {live} live API keys"),
        ));
    }
    let (secret, prefix, secret_hash) = secrets::new_api_key();
    let id = Uuid::now_v7();
    let model = api_key::Model {
        id,
        org_id: access.org_id,
        name: name.to_owned(),
        prefix,
        secret_hash,
        role: role.to_owned(),
        created_by: access.user_id(),
        created_by_key: access.subject.key_id(),
        created_at: now,
        expires_at,
        revoked_at: None,
        last_used_at: None,
    };
    api_key::Entity::insert(model.clone().into_active_model().reset_all())
        .exec_without_returning(&tx)
        .await?;
    let change = rbac::grant_in_tx(&tx, rbac::key_subject(id), access.org_id, role).await?;
    let event = Event {
        org_id: Some(access.org_id),
        action: "api_key.created",
        target_type: target::API_KEY,
        target_id: Some(id),
        success: true,
        details: json!({ "name": name, "role": role, "prefix": model.prefix, "expires_at": expires_at }),
    };
    audit::record(&tx, ctx, event).await?;
    tx.commit().await?;
    rbac.apply(vec![change]).await;
    Ok(Created { key: model, secret })
}

/// The org's keys, newest first (revoked and expired ones included, marked by their fields).
pub async fn list(
    db: &impl ConnectionTrait,
    org_id: Uuid,
    page: PageRequest,
) -> AppResult<Page<api_key::Model>> {
    let mut q = api_key::Entity::find_in(org_id);
    if let Some(after) = page.after {
        q = q.filter(api_key::Column::Id.lt(after));
    }
    let rows = q
        .order_by_desc(api_key::Column::Id)
        .limit(page.fetch())
        .all(db)
        .await?;
    Ok(page.finish(rows, |k| k.id))
}

/// Revokes a key: every later request with it answers 401, on every node (the auth caches
/// hear of it through the bus). The caller must hold every permission of the
/// key's role, and `members:owner` for an `owner` key (checked under the org lock with the
/// caller's current role); a key may always revoke itself. Revoking a revoked key succeeds
/// and changes nothing. In the same transaction, the keys and pending invitations the
/// revoked key made (and so on down) are revoked too ([`grants::enforce`]: their grantor is
/// gone). Errors: 404 (not a key of this org); 403 `permission_denied` naming the first
/// permission of the key's role the caller lacks; 401 when the calling key was revoked
/// meanwhile.
pub async fn revoke(
    db: &DatabaseConnection,
    rbac: &Rbac,
    cache: &crate::auth::cache::AuthCache,
    access: Access,
    key_id: Uuid,
    ctx: &AuditCtx,
) -> AppResult<()> {
    let tx = db.begin().await?;
    let access = orgs::lock_and_reauthorize(&tx, rbac, &access, rbac::API_KEYS_WRITE).await?;
    let key = api_key::Entity::find_in_by_id(access.org_id, key_id)
        .one(&tx)
        .await?
        .ok_or(AppError::NotFound("API key"))?;
    if access.subject.key_id() != Some(key_id) {
        // Taking a key away takes what taking a role away takes.
        orgs::ensure_takeable(&tx, rbac, &access, &key.role).await?;
    }
    if key.revoked_at.is_some() {
        return Ok(());
    }
    let details = json!({ "name": key.name, "prefix": key.prefix });
    let change = revoke_in_tx(&tx, &key, ctx, Utc::now(), details).await?;
    let enforced = grants::enforce(&tx, access.org_id, ctx, "api_key.revoked").await?;
    tx.commit().await?;
    cache.invalidate(crate::auth::cache::Invalidation::Key(key_id));
    rbac.apply(vec![change]).await;
    enforced.apply(rbac, cache).await;
    Ok(())
}

/// Revokes `key` inside the caller's transaction (every revocation goes through here:
/// `api_keys.revoke`, the grantor bound, the SSO takeover guard): sets `revoked_at` to `now`,
/// drops its casbin grant and audits `api_key.revoked` in the key's org with `details`.
/// Returns the casbin change to apply after the commit; the caller also evicts the key from
/// the node's cache then. Errors: database errors.
pub(crate) async fn revoke_in_tx(
    tx: &impl ConnectionTrait,
    key: &api_key::Model,
    ctx: &AuditCtx,
    now: DateTime<Utc>,
    details: serde_json::Value,
) -> AppResult<RuleChange> {
    api_key::Entity::update_many()
        .col_expr(api_key::Column::RevokedAt, Expr::value(now))
        .filter(api_key::Column::Id.eq(key.id))
        .exec(tx)
        .await?;
    let change = rbac::revoke_in_tx(tx, rbac::key_subject(key.id), key.org_id, &key.role).await?;
    let event = Event {
        org_id: Some(key.org_id),
        action: "api_key.revoked",
        target_type: target::API_KEY,
        target_id: Some(key.id),
        success: true,
        details,
    };
    audit::record(tx, ctx, event).await?;
    Ok(change)
}
