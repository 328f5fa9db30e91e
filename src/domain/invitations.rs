//! Invitations: a member with `members:write` invites an email address with a role; the
//! person logs in (or registers) with that email and accepts with the one-time token, which
//! makes them a member. Sending the email is out of scope: the API returns the token and an
//! accept URL for the frontend to deliver.
//!
//! Only the token's SHA-256 is stored. A token is good once: expired, revoked or used tokens
//! answer 410 with `invitation_expired`, `invitation_revoked` or `invitation_used`. A pending
//! invitation never grants more than its inviter may grant NOW: it is revoked when the
//! inviter loses rights (`domain::grants`), and re-checked on acceptance.

use chrono::{DateTime, Duration, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait,
    IntoActiveModel, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, TransactionTrait,
    sea_query::Expr,
};
use serde_json::json;
use uuid::Uuid;

use super::{
    accounts::normalize_email,
    audit::{self, AuditCtx, Event, target},
    grants,
    orgs::{self, Access},
    page::{Page, PageRequest},
};
use crate::{
    auth::{
        Subject,
        rbac::{self, Rbac},
        secrets,
    },
    entity::{Tenant, invitation, membership, user},
    error::{AppError, AppResult, ProblemCode},
};

/// Default lifetime of an invitation (s): 7 days.
pub const DEFAULT_TTL_S: u64 = 7 * 24 * 3600;
/// Shortest lifetime (s).
pub const MIN_TTL_S: u64 = 60;
/// Longest lifetime (s): 30 days.
pub const MAX_TTL_S: u64 = 30 * 24 * 3600;

/// Where an invitation stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Can be accepted.
    Pending,
    /// Accepted (spent).
    Accepted,
    /// Revoked by a member.
    Revoked,
    /// Past `expires_at`.
    Expired,
}

impl Status {
    /// The API name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Accepted => "accepted",
            Status::Revoked => "revoked",
            Status::Expired => "expired",
        }
    }
}

/// The status of `inv` at `now`.
pub fn status(inv: &invitation::Model, now: DateTime<Utc>) -> Status {
    if inv.accepted_at.is_some() {
        Status::Accepted
    } else if inv.revoked_at.is_some() {
        Status::Revoked
    } else if inv.expires_at <= now {
        Status::Expired
    } else {
        Status::Pending
    }
}

/// A new invitation and its token, shown once.
#[derive(Debug)]
pub struct Created {
    /// The stored row.
    pub invitation: invitation::Model,
    /// The one-time token (`inv_…`).
    pub token: String,
}

/// Limits on invitations, from config.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// `max_pending_invitations_per_org`.
    pub max_pending_per_org: u32,
}

/// Invites `email` with the role named `role` for `ttl_s` seconds. The answer is the same
/// whether or not the address has an account (nothing is looked up but the org's members).
/// Errors: 422 `email`, `role`, `expires_in_s`; 409 `already_member`; 409 `quota_exceeded`
/// (`max_pending_invitations_per_org`); 403 (the role holds a permission the caller lacks, or
/// `owner` without `members:owner`); 404.
#[allow(clippy::too_many_arguments)]
pub async fn create(
    db: &DatabaseConnection,
    rbac: &Rbac,
    access: Access,
    limits: &Limits,
    email: &str,
    role: &str,
    ttl_s: Option<u64>,
    ctx: &AuditCtx,
) -> AppResult<Created> {
    let email = normalize_email("email", email).map_err(|e| AppError::Validation(vec![e]))?;
    let ttl_s = ttl_s.unwrap_or(DEFAULT_TTL_S);
    if !(MIN_TTL_S..=MAX_TTL_S).contains(&ttl_s) {
        return Err(AppError::field(
            "expires_in_s",
            format!("must be between {MIN_TTL_S} and {MAX_TTL_S} seconds"),
        ));
    }
    let tx = db.begin().await?;
    let access = orgs::lock_and_reauthorize(&tx, rbac, &access, rbac::MEMBERS_WRITE).await?;
    orgs::ensure_grantable(&tx, rbac, &access, role, "role").await?;
    let member = membership::Entity::find_in(access.org_id)
        .find_also_related(user::Entity)
        .filter(user::Column::Email.eq(email.clone()))
        .one(&tx)
        .await?;
    if member.is_some() {
        return Err(AppError::conflict(
            ProblemCode::AlreadyMember,
            "a member of this organization already has this email address",
        ));
    }
    let now = Utc::now();
    let pending = invitation::Entity::find_in(access.org_id)
        .filter(invitation::Column::AcceptedAt.is_null())
        .filter(invitation::Column::RevokedAt.is_null())
        .filter(invitation::Column::ExpiresAt.gt(now))
        .count(&tx)
        .await?;
    let max = u64::from(limits.max_pending_per_org);
    if pending >= max {
        return Err(AppError::quota(
            "max_pending_invitations_per_org",
            max,
            &format!("the organization has {pending} pending invitations"),
        ));
    }
    let (token, token_hash) = secrets::new_token("inv");
    let row = invitation::Model {
        id: Uuid::now_v7(),
        org_id: access.org_id,
        email: email.clone(),
        role: role.to_owned(),
        token_hash,
        invited_by: access.user_id(),
        invited_by_key: access.subject.key_id(),
        created_at: now,
        expires_at: now + Duration::seconds(ttl_s as i64),
        accepted_at: None,
        accepted_by: None,
        revoked_at: None,
    };
    invitation::Entity::insert(row.clone().into_active_model().reset_all())
        .exec_without_returning(&tx)
        .await?;
    let event = Event {
        org_id: Some(access.org_id),
        action: "invitation.created",
        target_type: target::INVITATION,
        target_id: Some(row.id),
        success: true,
        details: json!({ "role": role, "expires_at": row.expires_at }),
    };
    audit::record(&tx, ctx, event).await?;
    tx.commit().await?;
    Ok(Created {
        invitation: row,
        token,
    })
}

/// The org's invitations, newest first.
pub async fn list(
    db: &impl ConnectionTrait,
    org_id: Uuid,
    page: PageRequest,
) -> AppResult<Page<invitation::Model>> {
    let mut q = invitation::Entity::find_in(org_id);
    if let Some(after) = page.after {
        q = q.filter(invitation::Column::Id.lt(after));
    }
    let rows = q
        .order_by_desc(invitation::Column::Id)
        .limit(page.fetch())
        .all(db)
        .await?;
    Ok(page.finish(rows, |i| i.id))
}

/// Revokes a pending invitation (its token then answers 410). Revoking a revoked or expired
/// one succeeds and changes nothing. Withdrawing a role takes what taking it from a member
/// takes: unless the caller made the invitation, they must hold every permission of its role
/// (`members:owner` for `owner`). Errors: 404; 403 `permission_denied` naming the first
/// permission lacking; 409 `invitation_used` once accepted.
pub async fn revoke(
    db: &DatabaseConnection,
    rbac: &Rbac,
    access: Access,
    id: Uuid,
    ctx: &AuditCtx,
) -> AppResult<()> {
    let tx = db.begin().await?;
    let access = orgs::lock_and_reauthorize(&tx, rbac, &access, rbac::MEMBERS_WRITE).await?;
    let inv = invitation::Entity::find_in_by_id(access.org_id, id)
        .one(&tx)
        .await?
        .ok_or(AppError::NotFound("invitation"))?;
    let own = match &access.subject {
        Subject::User(u) => inv.invited_by == Some(*u),
        Subject::ApiKey { id, .. } => inv.invited_by_key == Some(*id),
    };
    if !own {
        orgs::ensure_takeable(&tx, rbac, &access, &inv.role).await?;
    }
    match status(&inv, Utc::now()) {
        Status::Accepted => {
            return Err(AppError::conflict(
                ProblemCode::InvitationUsed,
                "the invitation was already accepted; remove the member instead",
            ));
        }
        Status::Revoked | Status::Expired => return Ok(()),
        Status::Pending => {}
    }
    let details = json!({ "role": inv.role });
    revoke_in_tx(&tx, &inv, ctx, Utc::now(), details).await?;
    tx.commit().await?;
    Ok(())
}

/// Revokes a pending invitation inside the caller's transaction (`invitations.revoke`, the
/// grantor bound, the SSO takeover guard): sets `revoked_at` to `now` and audits
/// `invitation.revoked` in its org with `details`. Errors: database errors.
pub(crate) async fn revoke_in_tx(
    tx: &impl ConnectionTrait,
    inv: &invitation::Model,
    ctx: &AuditCtx,
    now: DateTime<Utc>,
    details: serde_json::Value,
) -> AppResult<()> {
    invitation::Entity::update_many()
        .col_expr(invitation::Column::RevokedAt, Expr::value(now))
        .filter(invitation::Column::Id.eq(inv.id))
        .exec(tx)
        .await?;
    let event = Event {
        org_id: Some(inv.org_id),
        action: "invitation.revoked",
        target_type: target::INVITATION,
        target_id: Some(inv.id),
        success: true,
        details,
    };
    audit::record(tx, ctx, event).await
}

fn gone(status: Status) -> AppError {
    let (code, detail) = match status {
        Status::Accepted => (
            ProblemCode::InvitationUsed,
            "the invitation was already accepted",
        ),
        Status::Revoked => (ProblemCode::InvitationRevoked, "the invitation was revoked"),
        _ => (
            ProblemCode::InvitationExpired,
            "the invitation has expired; ask for a new one",
        ),
    };
    AppError::Gone {
        code,
        detail: detail.into(),
    }
}

/// What accepting produced.
#[derive(Debug)]
pub struct Accepted {
    /// The org joined.
    pub org_id: Uuid,
    /// The role granted.
    pub role: String,
    /// When the membership began.
    pub joined_at: DateTime<Utc>,
}

/// Accepts an invitation as `user_id`, whose account email must be the invited one, and
/// verified. Its inviter (member or API key) must still hold every permission of the role
/// (`members:owner` for `owner`): if not, the invitation is revoked now
/// ([`grants::invitation_covered`]) and the answer is 410 `invitation_revoked`. Errors: 404
/// (unknown token), 410 (used, revoked, expired), 403 `invitation_email_mismatch`, 403
/// `email_not_verified`, 409 `already_member`.
pub async fn accept(
    db: &DatabaseConnection,
    rbac: &Rbac,
    user_id: Uuid,
    token: &str,
    ctx: &AuditCtx,
) -> AppResult<Accepted> {
    let hash = secrets::hash(token);
    let inv = invitation::Entity::find()
        .filter(invitation::Column::TokenHash.eq(hash))
        .one(db)
        .await?
        .ok_or(AppError::NotFound("invitation"))?;
    let now = Utc::now();
    let st = status(&inv, now);
    if st != Status::Pending {
        return Err(gone(st));
    }
    let user = super::accounts::me(db, user_id).await?;
    if user.email != inv.email {
        return Err(AppError::forbidden(
            ProblemCode::InvitationEmailMismatch,
            "this invitation is for another email address; log in with the invited account",
        ));
    }
    // The invitation is for whoever receives mail at the address: an account that never
    // proved it (possibly registered by someone else first) cannot accept.
    if user.email_verified_at.is_none() {
        return Err(AppError::forbidden(
            ProblemCode::EmailNotVerified,
            "verify your email address first (the link from auth.signup, or me.send_verification), then accept",
        ));
    }
    let tx = db.begin().await?;
    orgs::lock_org(&tx, inv.org_id).await?;
    // Under the org lock, which every change of rights holds while it re-checks grants: the
    // inviter must still cover the role now, else the invitation is revoked here and then.
    let inv = invitation::Entity::find_by_id(inv.id)
        .one(&tx)
        .await?
        .ok_or(AppError::NotFound("invitation"))?;
    let st = status(&inv, now);
    if st != Status::Pending {
        return Err(gone(st));
    }
    if !grants::invitation_covered(&tx, &inv, &ctx.as_actor(user_id)).await? {
        tx.commit().await?;
        return Err(gone(Status::Revoked));
    }
    // Spend it (compare-and-set): of two concurrent accepts, one wins.
    let spent = invitation::Entity::update_many()
        .col_expr(invitation::Column::AcceptedAt, Expr::value(now))
        .col_expr(invitation::Column::AcceptedBy, Expr::value(user_id))
        .filter(invitation::Column::Id.eq(inv.id))
        .filter(invitation::Column::AcceptedAt.is_null())
        .filter(invitation::Column::RevokedAt.is_null())
        .filter(invitation::Column::ExpiresAt.gt(now))
        .exec(&tx)
        .await?
        .rows_affected;
    if spent == 0 {
        let fresh = invitation::Entity::find_by_id(inv.id)
            .one(&tx)
            .await?
            .ok_or(AppError::NotFound("invitation"))?;
        return Err(gone(status(&fresh, now)));
    }
    orgs::insert_membership(&tx, inv.org_id, user_id, &inv.role).await?;
    let change = rbac::grant_in_tx(&tx, rbac::user_subject(user_id), inv.org_id, &inv.role).await?;
    for (action, target_type, target_id) in [
        ("invitation.accepted", target::INVITATION, inv.id),
        ("member.added", target::MEMBERSHIP, user_id),
    ] {
        let event = Event {
            org_id: Some(inv.org_id),
            action,
            target_type,
            target_id: Some(target_id),
            success: true,
            details: json!({ "role": inv.role, "invitation_id": inv.id }),
        };
        audit::record(&tx, &ctx.as_actor(user_id), event).await?;
    }
    tx.commit().await?;
    rbac.apply(vec![change]).await;
    Ok(Accepted {
        org_id: inv.org_id,
        role: inv.role,
        joined_at: now,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_follows_the_first_terminal_fact() {
        let now = Utc::now();
        let base = invitation::Model {
            id: Uuid::now_v7(),
            org_id: Uuid::now_v7(),
            email: "a@example.com".into(),
            role: "viewer".into(),
            token_hash: String::new(),
            invited_by: None,
            invited_by_key: None,
            created_at: now,
            expires_at: now + Duration::seconds(60),
            accepted_at: None,
            accepted_by: None,
            revoked_at: None,
        };
        assert_eq!(status(&base, now), Status::Pending);
        let expired = invitation::Model {
            expires_at: now,
            ..base.clone()
        };
        assert_eq!(status(&expired, now), Status::Expired);
        let revoked = invitation::Model {
            revoked_at: Some(now),
            ..expired.clone()
        };
        assert_eq!(status(&revoked, now), Status::Revoked);
        let used = invitation::Model {
            accepted_at: Some(now),
            ..revoked
        };
        assert_eq!(status(&used, now), Status::Accepted);
        assert_eq!(gone(Status::Expired).code(), ProblemCode::InvitationExpired);
    }
}
