//! Accounts: registration, login, refresh-token rotation with reuse detection (RFC 9700
//! §4.14), logout, and the caller's profile.

use chrono::{Duration, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection,
    EntityTrait, QueryFilter, TransactionTrait, sea_query::Expr,
};
use serde_json::json;
use uuid::Uuid;

use super::{
    audit::{self, AuditCtx, Event},
    throttle,
};
use crate::{
    auth::{
        password,
        rbac::{self, Rbac, Role},
        tokens,
    },
    entity::{audit_event, identity, invitation, membership, organization, refresh_token, user},
    error::{AppError, AppResult, FieldError},
};

/// Longest display name, in characters.
pub const DISPLAY_NAME_MAX: usize = 200;
/// Longest email, in bytes (RFC 5321 §4.5.3.1 path limit rounded up).
pub const EMAIL_MAX: usize = 320;

/// An issued token pair.
#[derive(Debug)]
pub struct TokenPair {
    /// Access JWT.
    pub access_token: String,
    /// Access token lifetime (s).
    pub expires_in: u64,
    /// Opaque refresh token.
    pub refresh_token: String,
    /// Refresh token lifetime (s).
    pub refresh_expires_in: u64,
}

/// Normalises an email (trim, lower-case) and checks its shape. Errors name `field`.
pub fn normalize_email(field: &str, email: &str) -> Result<String, FieldError> {
    let e = email.trim().to_lowercase();
    let valid = e.chars().count() <= EMAIL_MAX
        && !e.chars().any(|c| c.is_whitespace() || c.is_control())
        && match e.split_once('@') {
            Some((local, domain)) => {
                !local.is_empty()
                    && !domain.is_empty()
                    && !domain.contains('@')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
            }
            None => false,
        };
    if valid {
        Ok(e)
    } else {
        Err(FieldError::new(
            field,
            "must be an email address such as ada@example.com",
        ))
    }
}

/// Trims a display name and checks it is 1–200 printable characters. Errors name `field`.
pub fn normalize_display_name(field: &str, name: &str) -> Result<String, FieldError> {
    let n = name.trim();
    let len = n.chars().count();
    if len == 0 || len > DISPLAY_NAME_MAX || n.chars().any(char::is_control) {
        return Err(FieldError::new(
            field,
            format!("must be 1 to {DISPLAY_NAME_MAX} printable characters"),
        ));
    }
    Ok(n.to_owned())
}

fn collect(errors: Vec<Option<FieldError>>) -> AppResult<()> {
    let errors: Vec<_> = errors.into_iter().flatten().collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(AppError::Validation(errors))
    }
}

/// Creates a user. Errors: 403 `registration_closed` when `open` is false; 422 naming each
/// invalid field; 409 `email_taken`.
#[tracing::instrument(skip_all)]
pub async fn register(
    db: &DatabaseConnection,
    open: bool,
    email: &str,
    password: String,
    display_name: &str,
    ctx: &AuditCtx,
) -> AppResult<user::Model> {
    if !open {
        return Err(AppError::Forbidden {
            code: "registration_closed",
            detail: "open registration is turned off on this server".into(),
            permission: None,
        });
    }
    let email_r = normalize_email("email", email);
    let name_r = normalize_display_name("display_name", display_name);
    let pw_r = password::validate("password", &password, email);
    collect(vec![
        email_r.clone().err(),
        name_r.clone().err(),
        pw_r.err(),
    ])?;
    let (email, display_name) = (email_r.expect("checked"), name_r.expect("checked"));

    let hash = password::hash_async(password).await?;
    let now = Utc::now();
    let id = Uuid::now_v7();
    let tx = db.begin().await?;
    let user = user::ActiveModel {
        id: Set(id),
        email: Set(email),
        display_name: Set(display_name),
        password_hash: Set(Some(hash)),
        disabled_at: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        deleted_at: Set(None),
    }
    .insert(&tx)
    .await
    .map_err(|e| {
        AppError::from_db(
            e,
            "email_taken",
            "an account with this email already exists",
        )
    })?;
    let event = Event::account("user.registered", Some(id), true, json!({}));
    audit::record(&tx, &ctx.as_actor(id), event).await?;
    tx.commit().await?;
    Ok(user)
}

fn invalid_credentials() -> AppError {
    AppError::unauthorized("invalid_credentials", "the email or password is wrong")
}

/// Checks email and password and issues a token pair in a new refresh-token family.
/// A wrong email and a wrong password cost the same (one argon2 verification) and answer the
/// same 401 `invalid_credentials`; both are audited (`auth.login`, outcome `failure`).
/// Throttled per account and per IP ([`throttle`]): while locked, 429 `login_throttled`
/// before the password is checked; a new lock is audited as `auth.login_throttled`.
#[tracing::instrument(skip_all)]
#[allow(clippy::too_many_arguments)]
pub async fn login(
    db: &DatabaseConnection,
    keyring: &tokens::Keyring,
    refresh_ttl_s: u64,
    policy: &throttle::Policy,
    email: &str,
    password: String,
    ctx: &AuditCtx,
) -> AppResult<TokenPair> {
    let email = email.trim().to_lowercase();
    let account_key = throttle::account_key(&email);
    let mut keys = vec![account_key.clone()];
    if let Some(ip) = &ctx.ip {
        keys.push(throttle::ip_key(ip));
    }
    let now = Utc::now();
    let found = user::Entity::find()
        .filter(user::Column::Email.eq(&email))
        .filter(user::Column::DeletedAt.is_null())
        .one(db)
        .await?;
    if let Some(wait) = throttle::locked_for(db, &keys, now).await? {
        let event = Event::account(
            "auth.login",
            found.as_ref().map(|u| u.id),
            false,
            json!({ "reason": "throttled", "retry_after_s": wait }),
        );
        audit::record(db, ctx, event).await?;
        return Err(throttle::throttled(wait, policy));
    }
    let hash = found.as_ref().and_then(|u| u.password_hash.clone());
    let password_ok = password::verify_async(password, hash).await?;
    let reason = match &found {
        None => Some("unknown_account"),
        Some(_) if !password_ok => Some("wrong_password"),
        Some(u) if u.disabled_at.is_some() => Some("account_disabled"),
        Some(_) => None,
    };
    let user_id = found.as_ref().map(|u| u.id);
    if let Some(reason) = reason {
        let event = Event::account("auth.login", user_id, false, json!({ "reason": reason }));
        audit::record(db, ctx, event).await?;
        // The lock runs from now, not from when the (slow) password check began.
        let failed_at = Utc::now();
        for (key, failures, delay_s) in
            throttle::record_failure(db, policy, &keys, failed_at).await?
        {
            if delay_s > 0 {
                let scope = if key == account_key { "account" } else { "ip" };
                let event = Event::account(
                    "auth.login_throttled",
                    user_id,
                    false,
                    json!({ "scope": scope, "failures": failures, "delay_s": delay_s }),
                );
                audit::record(db, ctx, event).await?;
            }
        }
        return Err(invalid_credentials());
    }
    throttle::clear(db, &account_key).await?;
    let user_id = user_id.expect("found");
    let tx = db.begin().await?;
    let pair = issue_pair(&tx, keyring, refresh_ttl_s, user_id, Uuid::now_v7()).await?;
    let event = Event::account("auth.login", Some(user_id), true, json!({}));
    audit::record(&tx, &ctx.as_actor(user_id), event).await?;
    tx.commit().await?;
    Ok(pair)
}

pub(crate) async fn issue_pair(
    db: &impl ConnectionTrait,
    keyring: &tokens::Keyring,
    refresh_ttl_s: u64,
    user_id: Uuid,
    family_id: Uuid,
) -> AppResult<TokenPair> {
    let (refresh, hash) = tokens::new_refresh_token();
    let now = Utc::now();
    refresh_token::Entity::insert(refresh_token::ActiveModel {
        id: Set(Uuid::now_v7()),
        user_id: Set(user_id),
        family_id: Set(family_id),
        token_hash: Set(hash),
        expires_at: Set(now + Duration::seconds(refresh_ttl_s as i64)),
        used_at: Set(None),
        revoked_at: Set(None),
        created_at: Set(now),
    })
    .exec_without_returning(db)
    .await?;
    let (access_token, expires_in) = keyring.issue(user_id)?;
    Ok(TokenPair {
        access_token,
        expires_in,
        refresh_token: refresh,
        refresh_expires_in: refresh_ttl_s,
    })
}

/// Locks the user's row for the rest of the transaction. Every write to a user's refresh tokens
/// takes this lock first (rotation, reuse revocation, logout, password change), so a revocation
/// can never miss a token that a concurrent rotation is about to commit (PostgreSQL runs each
/// statement on its own snapshot; SQLite serialises writers anyway).
async fn lock_user(db: &impl ConnectionTrait, user_id: Uuid) -> AppResult<()> {
    user::Entity::update_many()
        .col_expr(user::Column::Id, Expr::col(user::Column::Id))
        .filter(user::Column::Id.eq(user_id))
        .exec(db)
        .await?;
    Ok(())
}

fn invalid_refresh() -> AppError {
    AppError::unauthorized(
        "invalid_refresh_token",
        "the refresh token is invalid, expired or revoked",
    )
}

async fn revoke_family(db: &impl ConnectionTrait, family_id: Uuid) -> AppResult<u64> {
    Ok(refresh_token::Entity::update_many()
        .col_expr(refresh_token::Column::RevokedAt, Expr::value(Utc::now()))
        .filter(refresh_token::Column::FamilyId.eq(family_id))
        .filter(refresh_token::Column::RevokedAt.is_null())
        .exec(db)
        .await?
        .rows_affected)
}

/// Rotates a refresh token: spends it and issues a new pair in the same family. Presenting a
/// spent token (reuse, RFC 9700 §4.14) revokes the whole family, is audited
/// (`auth.refresh_token_reused`) and answers 401 `invalid_refresh_token`, as do unknown,
/// expired and revoked tokens and disabled accounts. Two concurrent uses of one token: one
/// wins, the other counts as reuse.
#[tracing::instrument(skip_all)]
pub async fn refresh(
    db: &DatabaseConnection,
    keyring: &tokens::Keyring,
    refresh_ttl_s: u64,
    token: &str,
    ctx: &AuditCtx,
) -> AppResult<TokenPair> {
    let hash = tokens::hash_refresh_token(token);
    let Some(owner) = refresh_token::Entity::find()
        .filter(refresh_token::Column::TokenHash.eq(&hash))
        .one(db)
        .await?
    else {
        return Err(invalid_refresh());
    };
    let tx = db.begin().await?;
    lock_user(&tx, owner.user_id).await?;
    // Spend (compare-and-set), then re-read the row under the lock.
    let now = Utc::now();
    let spent = refresh_token::Entity::update_many()
        .col_expr(refresh_token::Column::UsedAt, Expr::value(now))
        .filter(refresh_token::Column::TokenHash.eq(&hash))
        .filter(refresh_token::Column::UsedAt.is_null())
        .filter(refresh_token::Column::RevokedAt.is_null())
        .filter(refresh_token::Column::ExpiresAt.gt(now))
        .exec(&tx)
        .await?
        .rows_affected;
    let row = refresh_token::Entity::find()
        .filter(refresh_token::Column::TokenHash.eq(&hash))
        .one(&tx)
        .await?;
    let Some(row) = row else {
        return Err(invalid_refresh());
    };
    if spent == 0 {
        if row.used_at.is_some() && row.revoked_at.is_none() {
            let revoked = revoke_family(&tx, row.family_id).await?;
            let event = Event::account(
                "auth.refresh_token_reused",
                Some(row.user_id),
                false,
                json!({ "family_id": row.family_id, "revoked_tokens": revoked }),
            );
            audit::record(&tx, ctx, event).await?;
            tx.commit().await?;
            tracing::warn!(family_id = %row.family_id, "refresh token reuse: family revoked");
        }
        return Err(invalid_refresh());
    }
    let active = user::Entity::find_by_id(row.user_id)
        .one(&tx)
        .await?
        .filter(|u| u.disabled_at.is_none());
    if active.is_none() {
        return Err(invalid_refresh());
    }
    let pair = issue_pair(&tx, keyring, refresh_ttl_s, row.user_id, row.family_id).await?;
    tx.commit().await?;
    Ok(pair)
}

/// Revokes the family of `token`. Unknown or already revoked tokens succeed too (logout is
/// idempotent and reveals nothing).
pub async fn logout(db: &DatabaseConnection, token: &str) -> AppResult<()> {
    let hash = tokens::hash_refresh_token(token);
    if let Some(row) = refresh_token::Entity::find()
        .filter(refresh_token::Column::TokenHash.eq(hash))
        .one(db)
        .await?
    {
        let tx = db.begin().await?;
        lock_user(&tx, row.user_id).await?;
        revoke_family(&tx, row.family_id).await?;
        tx.commit().await?;
    }
    Ok(())
}

/// The caller's account. Errors: 401 `invalid_token` when it no longer exists or is disabled.
pub async fn me(db: &impl ConnectionTrait, user_id: Uuid) -> AppResult<user::Model> {
    user::Entity::find_by_id(user_id)
        .one(db)
        .await?
        .filter(|u| u.disabled_at.is_none())
        .ok_or_else(|| {
            AppError::invalid_token("the account behind this token no longer exists or is disabled")
        })
}

/// A change to the caller's account.
pub struct MeUpdate {
    /// New display name.
    pub display_name: Option<String>,
    /// New password; needs `current_password`.
    pub new_password: Option<String>,
    /// The current password, required with `new_password`.
    pub current_password: Option<String>,
}

/// Updates display name and/or password. A password change needs the current password
/// (422 `current_password` otherwise), revokes every refresh token of the account and is
/// audited (`user.password_changed`).
#[tracing::instrument(skip_all, fields(user_id = %user_id))]
pub async fn update_me(
    db: &DatabaseConnection,
    user_id: Uuid,
    change: MeUpdate,
    ctx: &AuditCtx,
) -> AppResult<user::Model> {
    let current = me(db, user_id).await?;
    let name = change
        .display_name
        .as_deref()
        .map(|n| normalize_display_name("display_name", n))
        .transpose();
    let mut errors = vec![name.as_ref().err().cloned()];
    let mut new_hash = None;
    if let Some(new_pw) = change.new_password {
        errors.push(password::validate("new_password", &new_pw, &current.email).err());
        match change.current_password {
            None => errors.push(Some(FieldError::new(
                "current_password",
                "is required to change the password",
            ))),
            Some(cur) => {
                if !password::verify_async(cur, current.password_hash.clone()).await? {
                    errors.push(Some(FieldError::new(
                        "current_password",
                        "is not the account's current password",
                    )));
                }
            }
        }
        collect(std::mem::take(&mut errors))?;
        new_hash = Some(password::hash_async(new_pw).await?);
    }
    collect(errors)?;
    let tx = db.begin().await?;
    let mut am: user::ActiveModel = current.into();
    if let Ok(Some(n)) = name {
        am.display_name = Set(n);
    }
    let password_changed = new_hash.is_some();
    if let Some(h) = new_hash {
        am.password_hash = Set(Some(h));
    }
    am.updated_at = Set(Utc::now());
    let updated = am.update(&tx).await?;
    if password_changed {
        refresh_token::Entity::update_many()
            .col_expr(refresh_token::Column::RevokedAt, Expr::value(Utc::now()))
            .filter(refresh_token::Column::UserId.eq(user_id))
            .filter(refresh_token::Column::RevokedAt.is_null())
            .exec(&tx)
            .await?;
        let event = Event::account("user.password_changed", Some(user_id), true, json!({}));
        audit::record(&tx, &ctx.as_actor(user_id), event).await?;
    }
    tx.commit().await?;
    Ok(updated)
}

/// Revokes every refresh token of the account (all devices, all logins), audited as
/// `auth.logout_all`. Access tokens already issued stay valid until they expire. Returns how
/// many tokens were revoked.
pub async fn logout_all(db: &DatabaseConnection, user_id: Uuid, ctx: &AuditCtx) -> AppResult<u64> {
    let tx = db.begin().await?;
    lock_user(&tx, user_id).await?;
    let revoked = refresh_token::Entity::update_many()
        .col_expr(refresh_token::Column::RevokedAt, Expr::value(Utc::now()))
        .filter(refresh_token::Column::UserId.eq(user_id))
        .filter(refresh_token::Column::RevokedAt.is_null())
        .exec(&tx)
        .await?
        .rows_affected;
    let event = Event::account(
        "auth.logout_all",
        Some(user_id),
        true,
        json!({ "revoked_tokens": revoked }),
    );
    audit::record(&tx, &ctx.as_actor(user_id), event).await?;
    tx.commit().await?;
    Ok(revoked)
}

/// Everything stored about a user, for `me.export`.
#[derive(Debug)]
pub struct Export {
    /// The account.
    pub user: user::Model,
    /// Linked OIDC identities, oldest first.
    pub identities: Vec<identity::Model>,
    /// Memberships with their orgs, oldest first.
    pub memberships: Vec<(membership::Model, Option<organization::Model>)>,
    /// Audit events the user acted in or that concern their account, oldest first.
    pub audit_events: Vec<audit_event::Model>,
}

/// Everything stored about the caller, for `me.export` (GDPR Art. 15 and 20). Errors: 401
/// when the account is gone.
pub async fn export(db: &DatabaseConnection, user_id: Uuid) -> AppResult<Export> {
    use sea_orm::QueryOrder;
    let user = me(db, user_id).await?;
    let identities = identity::Entity::find()
        .filter(identity::Column::UserId.eq(user_id))
        .order_by_asc(identity::Column::CreatedAt)
        .all(db)
        .await?;
    let memberships = membership::Entity::find()
        .find_also_related(organization::Entity)
        .filter(membership::Column::UserId.eq(user_id))
        .order_by_asc(membership::Column::CreatedAt)
        .all(db)
        .await?;
    let audit_events = audit_event::Entity::find()
        .filter(
            sea_orm::Condition::any()
                .add(
                    sea_orm::Condition::all()
                        .add(audit_event::Column::ActorType.eq("user"))
                        .add(audit_event::Column::ActorId.eq(user_id)),
                )
                .add(audit_event::Column::SubjectUserId.eq(user_id)),
        )
        .order_by_asc(audit_event::Column::Id)
        .all(db)
        .await?;
    Ok(Export {
        user,
        identities,
        memberships,
        audit_events,
    })
}

/// Erases the account's personal data in one transaction (GDPR Art. 17): email and display
/// name are replaced, the password hash, identities, memberships and refresh tokens are
/// deleted; audit rows stay, with the user replaced by one random pseudonym (`actor.type`
/// `erased_user`) and their IP and user agent removed. Invitations addressed to the email are
/// scrubbed. Errors: 409 `last_owner` while the user is the only owner of an org (naming it);
/// 401 when the account is already gone.
pub async fn erase(
    db: &DatabaseConnection,
    rbac: &Rbac,
    user_id: Uuid,
    ctx: &AuditCtx,
) -> AppResult<Uuid> {
    let user = me(db, user_id).await?;
    let tx = super::begin_write(db).await?;
    lock_user(&tx, user_id).await?;
    let mut held = membership::Entity::find()
        .filter(membership::Column::UserId.eq(user_id))
        .all(&tx)
        .await?;
    held.sort_by_key(|m| m.org_id);
    let mut changes = Vec::new();
    for m in &held {
        // Same lock order as membership changes: org row first.
        super::orgs::lock_org(&tx, m.org_id).await?;
        if m.role == Role::Owner.as_str() && super::orgs::owner_count(&tx, m.org_id).await? <= 1 {
            return Err(AppError::conflict(
                "last_owner",
                format!(
                    "you are the last owner of organization {}; make someone else owner or delete it first",
                    m.org_id
                ),
            ));
        }
        changes
            .push(rbac::revoke_in_tx(&tx, rbac::user_subject(user_id), m.org_id, &m.role).await?);
    }
    membership::Entity::delete_many()
        .filter(membership::Column::UserId.eq(user_id))
        .exec(&tx)
        .await?;
    identity::Entity::delete_many()
        .filter(identity::Column::UserId.eq(user_id))
        .exec(&tx)
        .await?;
    refresh_token::Entity::delete_many()
        .filter(refresh_token::Column::UserId.eq(user_id))
        .exec(&tx)
        .await?;
    invitation::Entity::update_many()
        .col_expr(
            invitation::Column::Email,
            Expr::value("erased@erased.invalid"),
        )
        .filter(invitation::Column::Email.eq(user.email.clone()))
        .exec(&tx)
        .await?;
    // Random (v4), so the pseudonym reveals nothing, not even when it was made.
    let pseudonym = uuid::Builder::from_random_bytes(tokens::random_bytes::<16>()).into_uuid();
    audit_event::Entity::update_many()
        .col_expr(
            audit_event::Column::ActorType,
            Expr::value(audit::ERASED_USER),
        )
        .col_expr(audit_event::Column::ActorId, Expr::value(pseudonym))
        .col_expr(audit_event::Column::Ip, Expr::value(None::<String>))
        .col_expr(audit_event::Column::UserAgent, Expr::value(None::<String>))
        .filter(audit_event::Column::ActorType.eq("user"))
        .filter(audit_event::Column::ActorId.eq(user_id))
        .exec(&tx)
        .await?;
    audit_event::Entity::update_many()
        .col_expr(audit_event::Column::SubjectUserId, Expr::value(pseudonym))
        .col_expr(audit_event::Column::Ip, Expr::value(None::<String>))
        .col_expr(audit_event::Column::UserAgent, Expr::value(None::<String>))
        .filter(audit_event::Column::SubjectUserId.eq(user_id))
        .exec(&tx)
        .await?;
    audit_event::Entity::update_many()
        .col_expr(
            audit_event::Column::TargetId,
            Expr::value(pseudonym.to_string()),
        )
        .filter(audit_event::Column::TargetId.eq(user_id.to_string()))
        .exec(&tx)
        .await?;
    let now = Utc::now();
    user::Entity::update_many()
        .col_expr(
            user::Column::Email,
            Expr::value(format!("erased-{user_id}@erased.invalid")),
        )
        .col_expr(user::Column::DisplayName, Expr::value("Erased user"))
        .col_expr(user::Column::PasswordHash, Expr::value(None::<String>))
        .col_expr(user::Column::DisabledAt, Expr::value(now))
        .col_expr(user::Column::DeletedAt, Expr::value(now))
        .col_expr(user::Column::UpdatedAt, Expr::value(now))
        .filter(user::Column::Id.eq(user_id))
        .exec(&tx)
        .await?;
    let erased_ctx = AuditCtx {
        actor_id: None,
        actor_type: audit::ActorType::Anonymous,
        ip: None,
        user_agent: None,
        request_id: ctx.request_id.clone(),
    };
    let event = Event::account(
        "user.erased",
        Some(pseudonym),
        true,
        json!({ "memberships_removed": held.len() }),
    );
    audit::record(&tx, &erased_ctx, event).await?;
    tx.commit().await?;
    rbac.apply(changes).await;
    Ok(pseudonym)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(
            normalize_email("email", "  Ada@Example.COM ").unwrap(),
            "ada@example.com"
        );
        for bad in [
            "",
            "ada",
            "@example.com",
            "ada@",
            "a b@example.com",
            "a@b@c",
            "ada@.com",
        ] {
            assert!(normalize_email("email", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn display_names() {
        assert_eq!(normalize_display_name("n", "  Ada  ").unwrap(), "Ada");
        assert!(normalize_display_name("n", "   ").is_err());
        assert!(normalize_display_name("n", "a\u{0}b").is_err());
        assert!(normalize_display_name("n", &"x".repeat(201)).is_err());
    }
}
