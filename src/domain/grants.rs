//! Grants: an API key or a pending invitation never exceeds the CURRENT rights of whoever
//! granted it, for its whole life, not only when it is made.
//!
//! The grantor of a key is `api_keys.created_by` (a user) or `api_keys.created_by_key` (a
//! key); of an invitation, `invitations.invited_by` / `invitations.invited_by_key`. A grantor
//! covers what it granted when
//!
//! * it is still there: a user still a member of the org, a key still live (neither revoked
//!   nor expired);
//! * its role holds every permission of the granted role (read in the caller's transaction:
//!   a custom role changed in it counts as changed);
//! * for the `owner` role, it holds `members:owner`.
//!
//! Rows with neither grantor recorded (made before grantors were recorded) are left alone.
//!
//! **Decision.** Whatever changes rights (a member's role changed, a member removed or gone
//! of their own accord, an account erased, a custom role edited, a key revoked) calls
//! [`enforce`] in the SAME transaction, under the org lock it already holds. [`enforce`]
//! revokes every key and pending invitation of the org that its grantor no longer covers;
//! it never silently downgrades them (a credential that changes meaning under its holder is
//! worse than one that stops working with a clear 401, and the audit says why). Keys can
//! make keys, so it iterates to a fixpoint: revoking a key takes with it the keys and
//! invitations it made that nothing else covers. Each revocation is audited in the org as
//! `api_key.revoked` / `invitation.revoked` with `{"reason": "grantor_lost_rights", …}`.
//! Accepting an invitation re-checks its grantor under the org lock ([`invitation_covered`]).
//!
//! A key whose grantor key merely EXPIRES is not revoked at that instant (nothing runs then):
//! it is revoked by the org's next [`enforce`].
//!
//! After the commit the caller applies the returned [`Enforced`]: the casbin rules of the
//! revoked keys leave the in-memory enforcer and their verifications leave this node's auth
//! cache (other nodes hear of them through the bus, as for `api_keys.revoke`).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use serde_json::json;
use uuid::Uuid;

use super::{audit::AuditCtx, orgs};
use crate::{
    auth::{
        cache::{AuthCache, Invalidation},
        rbac::{self, Rbac, Role, RuleChange},
    },
    entity::{Tenant, api_key, invitation, membership},
    error::AppResult,
};

/// The `reason` recorded in the audit details of every revocation made here.
pub const REASON: &str = "grantor_lost_rights";

/// What [`enforce`] revoked, to apply after the transaction commits ([`Enforced::apply`]).
#[derive(Debug, Default)]
#[must_use = "apply it after the commit"]
pub(crate) struct Enforced {
    /// The casbin rules of the revoked keys, removed in the transaction.
    pub changes: Vec<RuleChange>,
    /// The revoked keys, to invalidate in the auth cache.
    pub revoked_keys: Vec<Uuid>,
    /// The revoked invitations.
    pub revoked_invitations: Vec<Uuid>,
}

impl Enforced {
    /// Adds what another [`enforce`] (of another org) revoked.
    pub(crate) fn extend(&mut self, other: Enforced) {
        self.changes.extend(other.changes);
        self.revoked_keys.extend(other.revoked_keys);
        self.revoked_invitations.extend(other.revoked_invitations);
    }

    /// Applies the revocations to this node after the commit: evicts the keys from `cache`
    /// and removes their rules from the in-memory enforcer.
    pub(crate) async fn apply(self, rbac: &Rbac, cache: &AuthCache) {
        for id in &self.revoked_keys {
            cache.invalidate(Invalidation::Key(*id));
        }
        if !self.changes.is_empty() {
            rbac.apply(self.changes).await;
        }
    }
}

/// Who granted a key or an invitation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Grantor {
    /// A user (`created_by` / `invited_by`).
    User(Uuid),
    /// An API key (`created_by_key` / `invited_by_key`).
    Key(Uuid),
}

impl Grantor {
    /// The recorded grantor; `None` for legacy rows (left alone).
    fn of(user: Option<Uuid>, key: Option<Uuid>) -> Option<Self> {
        user.map(Grantor::User).or(key.map(Grantor::Key))
    }

    /// The audit name of the grantor's kind.
    fn kind(self) -> &'static str {
        match self {
            Grantor::User(_) => "user",
            Grantor::Key(_) => "api_key",
        }
    }
}

/// Why a grantor no longer covers what it granted.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Shortfall {
    /// The user is no longer a member, or the key is revoked or expired.
    GrantorGone,
    /// The grantor's role lacks this permission of the granted role.
    Missing(String),
}

/// The first permission of the role `granted_role` (holding `granted`) that a grantor
/// holding `held` lacks: `members:owner` first for `owner`, then `granted` in order. `None`:
/// covered.
fn first_uncovered(held: &[String], granted_role: &str, granted: &[String]) -> Option<String> {
    if granted_role == Role::Owner.as_str() && !held.iter().any(|p| p == rbac::MEMBERS_OWNER) {
        return Some(rbac::MEMBERS_OWNER.to_owned());
    }
    granted.iter().find(|p| !held.contains(p)).cloned()
}

/// Permissions of the org's roles, read once per role in the transaction.
struct Roles {
    org_id: Uuid,
    perms: HashMap<String, Vec<String>>,
}

impl Roles {
    fn new(org_id: Uuid) -> Self {
        Self {
            org_id,
            perms: HashMap::new(),
        }
    }

    /// The permissions of `role` (none for a role that does not exist).
    async fn of(&mut self, db: &impl ConnectionTrait, role: &str) -> AppResult<&[String]> {
        if !self.perms.contains_key(role) {
            let p = orgs::permissions_of(db, self.org_id, role)
                .await?
                .unwrap_or_default();
            self.perms.insert(role.to_owned(), p);
        }
        Ok(self.perms.get(role).map(Vec::as_slice).unwrap_or_default())
    }

    /// Whether a grantor whose role is `grantor_role` (`None`: gone) covers `granted_role`.
    async fn shortfall(
        &mut self,
        db: &impl ConnectionTrait,
        grantor_role: Option<&str>,
        granted_role: &str,
    ) -> AppResult<Option<Shortfall>> {
        let Some(grantor_role) = grantor_role else {
            return Ok(Some(Shortfall::GrantorGone));
        };
        let held = self.of(db, grantor_role).await?.to_vec();
        let granted = self.of(db, granted_role).await?;
        Ok(first_uncovered(&held, granted_role, granted).map(Shortfall::Missing))
    }
}

fn is_live(key: &api_key::Model, now: DateTime<Utc>) -> bool {
    key.revoked_at.is_none() && key.expires_at.is_none_or(|e| e > now)
}

/// Re-checks every live API key (neither revoked nor expired) and every pending invitation of
/// `org_id` against its grantor's current rights (see the module docs), in the caller's
/// transaction, and revokes those no longer covered, to a fixpoint (a revoked key's own keys
/// and invitations are checked again). Each revocation is audited with `ctx` as actor and
/// `trigger` (the action that changed rights, e.g. `member.updated`) in its details. Call it
/// after the change, under the org lock; apply the result after the commit. Errors: database
/// errors.
#[tracing::instrument(skip_all, fields(org_id = %org_id, trigger))]
pub(crate) async fn enforce(
    tx: &impl ConnectionTrait,
    org_id: Uuid,
    ctx: &AuditCtx,
    trigger: &str,
) -> AppResult<Enforced> {
    let now = Utc::now();
    let members: HashMap<Uuid, String> = membership::Entity::find_in(org_id)
        .all(tx)
        .await?
        .into_iter()
        .map(|m| (m.user_id, m.role))
        .collect();
    let mut keys: Vec<api_key::Model> = api_key::Entity::find_in(org_id)
        .filter(api_key::Column::RevokedAt.is_null())
        .all(tx)
        .await?
        .into_iter()
        .filter(|k| is_live(k, now))
        .collect();
    // Live keys by id, with their roles: the keys that can still grant.
    let mut live: HashMap<Uuid, String> = keys.iter().map(|k| (k.id, k.role.clone())).collect();
    let mut roles = Roles::new(org_id);
    let mut out = Enforced::default();
    let grantor_role = |g: Grantor, live: &HashMap<Uuid, String>| match g {
        Grantor::User(u) => members.get(&u).cloned(),
        Grantor::Key(k) => live.get(&k).cloned(),
    };
    loop {
        let mut revoked = Vec::new();
        for key in &keys {
            let Some(grantor) = Grantor::of(key.created_by, key.created_by_key) else {
                continue;
            };
            let by = grantor_role(grantor, &live);
            if let Some(short) = roles.shortfall(tx, by.as_deref(), &key.role).await? {
                revoked.push((key.clone(), grantor, short));
            }
        }
        if revoked.is_empty() {
            break;
        }
        for (key, grantor, short) in revoked {
            live.remove(&key.id);
            keys.retain(|k| k.id != key.id);
            out.changes
                .push(revoke_key(tx, &key, grantor, &short, ctx, trigger, now).await?);
            out.revoked_keys.push(key.id);
        }
    }
    let pending = invitation::Entity::find_in(org_id)
        .filter(invitation::Column::AcceptedAt.is_null())
        .filter(invitation::Column::RevokedAt.is_null())
        .filter(invitation::Column::ExpiresAt.gt(now))
        .all(tx)
        .await?;
    for inv in pending {
        let Some(grantor) = Grantor::of(inv.invited_by, inv.invited_by_key) else {
            continue;
        };
        let by = grantor_role(grantor, &live);
        if let Some(short) = roles.shortfall(tx, by.as_deref(), &inv.role).await? {
            revoke_invitation(tx, &inv, grantor, &short, ctx, trigger, now).await?;
            out.revoked_invitations.push(inv.id);
        }
    }
    if !out.revoked_keys.is_empty() || !out.revoked_invitations.is_empty() {
        tracing::info!(
            keys = out.revoked_keys.len(),
            invitations = out.revoked_invitations.len(),
            "revoked grants their grantors no longer cover"
        );
    }
    Ok(out)
}

/// Re-checks one pending invitation's grantor at acceptance, in the caller's transaction
/// under the org lock: `true` when it is still covered (or has no recorded grantor); else it
/// is revoked and audited like in [`enforce`] (trigger `invitation.accept`) and `false` is
/// returned. Errors: database errors.
pub(crate) async fn invitation_covered(
    tx: &impl ConnectionTrait,
    inv: &invitation::Model,
    ctx: &AuditCtx,
) -> AppResult<bool> {
    let Some(grantor) = Grantor::of(inv.invited_by, inv.invited_by_key) else {
        return Ok(true);
    };
    let now = Utc::now();
    let by = match grantor {
        Grantor::User(u) => membership::Entity::find_by_id((inv.org_id, u))
            .one(tx)
            .await?
            .map(|m| m.role),
        Grantor::Key(k) => api_key::Entity::find_in_by_id(inv.org_id, k)
            .one(tx)
            .await?
            .filter(|key| is_live(key, now))
            .map(|key| key.role),
    };
    let mut roles = Roles::new(inv.org_id);
    match roles.shortfall(tx, by.as_deref(), &inv.role).await? {
        None => Ok(true),
        Some(short) => {
            revoke_invitation(tx, inv, grantor, &short, ctx, "invitation.accept", now).await?;
            Ok(false)
        }
    }
}

/// The audit details of a revocation made here.
fn details(
    grantor: Grantor,
    short: &Shortfall,
    trigger: &str,
    extra: serde_json::Value,
) -> serde_json::Value {
    let mut d = json!({
        "reason": REASON,
        "trigger": trigger,
        "grantor_type": grantor.kind(),
        "grantor_gone": *short == Shortfall::GrantorGone,
    });
    if let Shortfall::Missing(p) = short {
        d["missing_permission"] = json!(p);
    }
    if let (Some(d), serde_json::Value::Object(extra)) = (d.as_object_mut(), extra) {
        d.extend(extra);
    }
    d
}

async fn revoke_key(
    tx: &impl ConnectionTrait,
    key: &api_key::Model,
    grantor: Grantor,
    short: &Shortfall,
    ctx: &AuditCtx,
    trigger: &str,
    now: DateTime<Utc>,
) -> AppResult<RuleChange> {
    let base = json!({ "name": key.name, "prefix": key.prefix, "role": key.role });
    let details = details(grantor, short, trigger, base);
    super::api_keys::revoke_in_tx(tx, key, ctx, now, details).await
}

async fn revoke_invitation(
    tx: &impl ConnectionTrait,
    inv: &invitation::Model,
    grantor: Grantor,
    short: &Shortfall,
    ctx: &AuditCtx,
    trigger: &str,
    now: DateTime<Utc>,
) -> AppResult<()> {
    let details = details(grantor, short, trigger, json!({ "role": inv.role }));
    super::invitations::revoke_in_tx(tx, inv, ctx, now, details).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn perms(role: Role) -> Vec<String> {
        let mut v: Vec<String> = role.permissions().iter().map(|p| (*p).to_owned()).collect();
        v.sort();
        v
    }

    #[test]
    fn a_grantor_covers_what_its_role_holds() {
        let (owner, admin, viewer) = (perms(Role::Owner), perms(Role::Admin), perms(Role::Viewer));
        assert_eq!(first_uncovered(&admin, "admin", &admin), None);
        assert_eq!(first_uncovered(&admin, "viewer", &viewer), None);
        assert_eq!(first_uncovered(&owner, "owner", &owner), None);
        assert_eq!(
            first_uncovered(&admin, "owner", &owner).as_deref(),
            Some(rbac::MEMBERS_OWNER)
        );
        // Sorted: the first permission admin holds that viewer lacks.
        assert_eq!(
            first_uncovered(&viewer, "admin", &admin).as_deref(),
            Some(rbac::AGENTS_WRITE)
        );
        // A role with no permissions (or one that does not exist) is always covered.
        assert_eq!(first_uncovered(&[], "empty", &[]), None);
    }

    #[test]
    fn the_recorded_user_is_the_grantor_first() {
        let (u, k) = (Uuid::now_v7(), Uuid::now_v7());
        assert_eq!(Grantor::of(Some(u), Some(k)), Some(Grantor::User(u)));
        assert_eq!(Grantor::of(None, Some(k)), Some(Grantor::Key(k)));
        assert_eq!(Grantor::of(None, None), None);
    }
}
