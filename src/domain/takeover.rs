//! The pre-account-takeover guard of single sign-on.
//!
//! With open registration anyone can create an account for an address they do not own, set a
//! password, and wait (the address stays unverified: the link goes to the real owner's
//! mailbox). If the owner later signs in with SSO and the provider vouches for the address
//! (`email_verified: true`), linking that identity to the waiting account would hand the
//! squatter a live session into the owner's account. Refusing the link instead would let the
//! squatter lock the owner out of their own address for good. So the provider's word wins:
//! when a verified identity meets an account whose `email_verified_at` is NULL,
//! [`hand_over`] takes away, in the linking transaction, everything an unproven claimant of
//! the account may hold, and marks the address verified:
//!
//! * the password (`password_hash = NULL`): the account becomes SSO-only;
//! * every refresh token (revoked), every access token (the token generation is bumped) and
//!   every pending one-time SSO login code of the account;
//! * every API key the user created in any org, and every key those keys created (a key may
//!   create keys), revoked with their casbin rules and audited in their org as
//!   `api_key.revoked` with `reason: account_takeover_guard`; the caller invalidates them in
//!   the node's auth cache after commit (other nodes hear of them through the bus);
//! * the pending invitations the user or those keys sent (revoked, audited
//!   `invitation.revoked`);
//! * every identity already linked to the account (deleted): no provider ever vouched for an
//!   unverified account's address — a vouching identity would have verified it — so each
//!   linked identity came from an unproven claim and may well be the squatter's own login at
//!   some provider.
//!
//! Memberships, and the orgs the account belongs to, stay: the guard cannot tell a squatter
//! from an owner who registered with a password and never opened the link, and the account is
//! the owner's from now on. Not here: the linking itself ([`super::oidc`]).

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, sea_query::Expr};
use serde_json::json;
use uuid::Uuid;

use super::{
    accounts,
    audit::AuditCtx,
    orgs,
    tickets::{self, Kind},
};
use crate::{
    auth::rbac::RuleChange,
    entity::{api_key, identity, invitation, membership, refresh_token, user},
    error::AppResult,
};

/// The `reason` in the audit details of what the guard revokes.
pub const REASON: &str = "account_takeover_guard";

/// What [`hand_over`] took away.
#[derive(Debug, Default)]
pub struct HandedOver {
    /// Whether the account had a password (now removed).
    pub password_removed: bool,
    /// Refresh tokens revoked.
    pub refresh_tokens_revoked: u64,
    /// API keys revoked (ids): invalidate them in the node's auth cache after commit.
    pub api_keys_revoked: Vec<Uuid>,
    /// The casbin rules of those keys, removed in the transaction: apply them to the enforcer
    /// after commit.
    pub rule_changes: Vec<RuleChange>,
    /// Pending invitations revoked.
    pub invitations_revoked: u64,
    /// Providers of the identities that were linked to the account (deleted), one per identity.
    pub identities_removed: Vec<String>,
    /// Unspent SSO login codes deleted.
    pub login_codes_revoked: u64,
}

impl HandedOver {
    /// The audit details of the `user.identity_linked` event that fired the guard.
    pub fn details(&self) -> serde_json::Value {
        json!({
            "takeover_guard": true,
            "password_removed": self.password_removed,
            "refresh_tokens_revoked": self.refresh_tokens_revoked,
            "api_keys_revoked": self.api_keys_revoked.len(),
            "invitations_revoked": self.invitations_revoked,
            "identities_removed": self.identities_removed,
            "login_codes_revoked": self.login_codes_revoked,
        })
    }
}

/// Takes the unverified account `account` away from whoever else may hold it and marks its
/// address verified at `now` (see the module docs). Runs in the caller's transaction `tx`,
/// which must be a write transaction that then links the vouching identity; `ctx` is the
/// actor of the audit events (the SSO login). `login_codes` is the kind of the SSO login
/// codes. Errors: database errors.
pub async fn hand_over(
    tx: &impl ConnectionTrait,
    account: &user::Model,
    login_codes: Kind,
    ctx: &AuditCtx,
    now: DateTime<Utc>,
) -> AppResult<HandedOver> {
    let user_id = account.id;
    // Lock order as everywhere: the user row, then org rows in id order.
    accounts::lock_user(tx, user_id).await?;
    let mut org_ids: Vec<Uuid> = membership::Entity::find()
        .filter(membership::Column::UserId.eq(user_id))
        .all(tx)
        .await?
        .into_iter()
        .map(|m| m.org_id)
        .collect();
    let own_keys = api_key::Entity::find()
        .filter(api_key::Column::CreatedBy.eq(user_id))
        .all(tx)
        .await?;
    org_ids.extend(own_keys.iter().map(|k| k.org_id));
    org_ids.sort();
    org_ids.dedup();
    for org_id in &org_ids {
        orgs::lock_org(tx, *org_id).await?;
    }

    let mut out = HandedOver {
        password_removed: account.password_hash.is_some(),
        ..HandedOver::default()
    };
    user::Entity::update_many()
        .col_expr(user::Column::PasswordHash, Expr::value(None::<String>))
        .col_expr(user::Column::EmailVerifiedAt, Expr::value(now))
        .col_expr(user::Column::UpdatedAt, Expr::value(now))
        .filter(user::Column::Id.eq(user_id))
        .exec(tx)
        .await?;
    out.refresh_tokens_revoked = refresh_token::Entity::update_many()
        .col_expr(refresh_token::Column::RevokedAt, Expr::value(now))
        .filter(refresh_token::Column::UserId.eq(user_id))
        .filter(refresh_token::Column::RevokedAt.is_null())
        .exec(tx)
        .await?
        .rows_affected;
    accounts::end_access_tokens(tx, user_id).await?;
    out.login_codes_revoked = tickets::revoke_for_user(tx, login_codes, user_id).await?;

    // The user's keys, then the keys those keys made, until no new key turns up.
    let mut keys: Vec<api_key::Model> = Vec::new();
    let mut frontier = own_keys;
    while !frontier.is_empty() {
        let ids: Vec<Uuid> = frontier.iter().map(|k| k.id).collect();
        keys.append(&mut frontier);
        frontier = api_key::Entity::find()
            .filter(api_key::Column::CreatedByKey.is_in(ids))
            .all(tx)
            .await?;
        frontier.retain(|k| !keys.iter().any(|seen| seen.id == k.id));
    }
    let key_ids: Vec<Uuid> = keys.iter().map(|k| k.id).collect();
    for key in keys.iter().filter(|k| k.revoked_at.is_none()) {
        let details = json!({ "name": key.name, "prefix": key.prefix, "reason": REASON });
        out.rule_changes
            .push(super::api_keys::revoke_in_tx(tx, key, ctx, now, details).await?);
        out.api_keys_revoked.push(key.id);
    }

    let pending = invitation::Entity::find()
        .filter(
            sea_orm::Condition::any()
                .add(invitation::Column::InvitedBy.eq(user_id))
                .add(invitation::Column::InvitedByKey.is_in(key_ids)),
        )
        .filter(invitation::Column::AcceptedAt.is_null())
        .filter(invitation::Column::RevokedAt.is_null())
        .filter(invitation::Column::ExpiresAt.gt(now))
        .all(tx)
        .await?;
    for inv in &pending {
        let details = json!({ "role": inv.role, "reason": REASON });
        super::invitations::revoke_in_tx(tx, inv, ctx, now, details).await?;
    }
    out.invitations_revoked = pending.len() as u64;

    let linked = identity::Entity::find()
        .filter(identity::Column::UserId.eq(user_id))
        .all(tx)
        .await?;
    identity::Entity::delete_many()
        .filter(identity::Column::UserId.eq(user_id))
        .exec(tx)
        .await?;
    out.identities_removed = linked.into_iter().map(|i| i.provider).collect();
    Ok(out)
}
