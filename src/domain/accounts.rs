//! Accounts: registration, login, refresh-token rotation with reuse detection (RFC 9700
//! §4.14), logout, and the caller's profile.

use chrono::{Duration, Utc};
use sea_orm::{
    ActiveModelTrait,
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, TransactionTrait,
    sea_query::{Expr, ExprTrait},
};
use serde_json::json;
use uuid::Uuid;

use super::{
    audit::{self, AuditCtx, Event},
    throttle, verification,
};
use crate::{
    auth::{
        cache::{AuthCache, Invalidation},
        password,
        rbac::{self, Rbac, Role},
        tokens,
    },
    entity::{audit_event, identity, invitation, membership, organization, refresh_token, user},
    error::{AppError, AppResult, FieldError, ProblemCode},
    mail::Mailer,
};

/// Longest display name, in characters.
pub const DISPLAY_NAME_MAX: usize = 200;
pub use super::email::EMAIL_MAX;

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

/// Normalises an email to its canonical form and checks it (see [`super::email`]). Errors
/// name `field`.
pub fn normalize_email(field: &str, email: &str) -> Result<String, FieldError> {
    super::email::normalize(field, email)
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

/// What creating an account needs besides the form: whether registration is open, and where
/// the verification link goes.
pub struct Registration<'a> {
    /// `registration_open`.
    pub open: bool,
    /// The node's mail sender.
    pub mailer: &'a dyn Mailer,
    /// Verification link settings.
    pub links: verification::Links,
}

/// The sign-up form.
pub struct SignupForm {
    /// Email address (normalised, see [`super::email`]).
    pub email: String,
    /// Password, 10–256 characters, not the email.
    pub password: String,
    /// Display name, 1–200 printable characters.
    pub display_name: String,
}

/// Checks the form (422 naming each invalid field; 403 `registration_closed`) and hashes the
/// password: the same work whether or not the address is taken.
async fn prepare(reg: &Registration<'_>, form: SignupForm) -> AppResult<user::ActiveModel> {
    if !reg.open {
        return Err(AppError::Forbidden {
            code: ProblemCode::RegistrationClosed,
            detail: "open registration is turned off on this server".into(),
            permission: None,
        });
    }
    let email_r = normalize_email("email", &form.email);
    let name_r = normalize_display_name("display_name", &form.display_name);
    let pw_r = password::validate("password", &form.password, &form.email);
    collect(vec![
        email_r.clone().err(),
        name_r.clone().err(),
        pw_r.err(),
    ])?;
    let (email, display_name) = (email_r.expect("checked"), name_r.expect("checked"));
    let hash = password::hash_async(form.password).await?;
    let now = Utc::now();
    Ok(user::ActiveModel {
        id: Set(Uuid::now_v7()),
        email: Set(email),
        display_name: Set(display_name),
        password_hash: Set(Some(hash)),
        disabled_at: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        deleted_at: Set(None),
        email_verified_at: Set(None),
        token_generation: Set(0),
    })
}

/// Inserts the prepared account, audits `user.registered` and sends the verification link.
/// `None` when the address is taken (nothing written).
async fn create(
    db: &DatabaseConnection,
    reg: &Registration<'_>,
    row: user::ActiveModel,
    ctx: &AuditCtx,
) -> AppResult<Option<user::Model>> {
    let tx = super::begin_write(db).await?;
    let user = match row.insert(&tx).await {
        Ok(u) => u,
        Err(e)
            if matches!(
                e.sql_err(),
                Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
            ) =>
        {
            return Ok(None);
        }
        Err(e) => return Err(e.into()),
    };
    let event = Event::account("user.registered", Some(user.id), true, json!({}));
    audit::record(&tx, &ctx.as_actor(user.id), event).await?;
    tx.commit().await?;
    verification::send(db, reg.mailer, &reg.links, &user).await?;
    Ok(Some(user))
}

/// Creates an account with an unverified address and mails the verification link
/// (`auth.register`, deprecated). Errors: 403 `registration_closed`; 422 naming each invalid
/// field; 409 `email_taken` (which tells whoever asks that the address has an account: use
/// [`signup`]).
#[tracing::instrument(skip_all)]
pub async fn register(
    db: &DatabaseConnection,
    reg: &Registration<'_>,
    form: SignupForm,
    ctx: &AuditCtx,
) -> AppResult<user::Model> {
    let row = prepare(reg, form).await?;
    create(db, reg, row, ctx).await?.ok_or_else(|| {
        AppError::conflict(
            ProblemCode::EmailTaken,
            "an account with this email already exists",
        )
    })
}

/// Signs up without telling anyone whether the address has an account (`auth.signup`): for a
/// new address the account is created unverified and the verification link is mailed; for a
/// taken one nothing is created and its owner is told that someone tried. Both cost one argon2
/// hash and return the normalised address. Errors: 403 `registration_closed`; 422 naming each
/// invalid field.
#[tracing::instrument(skip_all)]
pub async fn signup(
    db: &DatabaseConnection,
    reg: &Registration<'_>,
    form: SignupForm,
    ctx: &AuditCtx,
) -> AppResult<String> {
    let row = prepare(reg, form).await?;
    let email = row.email.clone().unwrap();
    if create(db, reg, row, ctx).await?.is_none() {
        verification::notify_signup_attempt(reg.mailer, &reg.links, &email).await;
    }
    Ok(email)
}

fn invalid_credentials() -> AppError {
    AppError::unauthorized(
        ProblemCode::InvalidCredentials,
        "the email or password is wrong",
    )
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
    // The canonical form (an address that cannot be one matches no account; it still counts
    // against the throttle under its plain lower-cased form).
    let email = normalize_email("email", email).unwrap_or_else(|_| email.trim().to_lowercase());
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
    let generation = user::Entity::find_by_id(user_id)
        .one(db)
        .await?
        .map_or(0, |u| u.token_generation);
    let (access_token, expires_in) = keyring.issue(user_id, generation)?;
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
/// statement on its own snapshot; SQLite serialises writers anyway). The per-user quotas
/// (`orgs.create`, `sessions.create`) count under it too. Lock order: the user row before
/// any org row.
pub(crate) async fn lock_user(db: &impl ConnectionTrait, user_id: Uuid) -> AppResult<()> {
    user::Entity::update_many()
        .col_expr(user::Column::Id, Expr::col(user::Column::Id))
        .filter(user::Column::Id.eq(user_id))
        .exec(db)
        .await?;
    Ok(())
}

/// Ends every access token of the account at once, on every node: bumps its access-token
/// generation, which the principal resolver compares with the token's `gen` on each request.
/// Run inside the transaction that revokes the refresh tokens (logout, logout-all, password
/// change, refresh-token reuse, erasure, the SSO takeover guard).
pub(crate) async fn end_access_tokens(db: &impl ConnectionTrait, user_id: Uuid) -> AppResult<()> {
    user::Entity::update_many()
        .col_expr(
            user::Column::TokenGeneration,
            Expr::col(user::Column::TokenGeneration).add(1),
        )
        .filter(user::Column::Id.eq(user_id))
        .exec(db)
        .await?;
    Ok(())
}

fn invalid_refresh() -> AppError {
    AppError::unauthorized(
        ProblemCode::InvalidRefreshToken,
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
    cache: &AuthCache,
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
            end_access_tokens(&tx, row.user_id).await?;
            let event = Event::account(
                "auth.refresh_token_reused",
                Some(row.user_id),
                false,
                json!({ "family_id": row.family_id, "revoked_tokens": revoked }),
            );
            audit::record(&tx, ctx, event).await?;
            tx.commit().await?;
            cache.invalidate(Invalidation::User(row.user_id));
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
pub async fn logout(db: &DatabaseConnection, cache: &AuthCache, token: &str) -> AppResult<()> {
    let hash = tokens::hash_refresh_token(token);
    if let Some(row) = refresh_token::Entity::find()
        .filter(refresh_token::Column::TokenHash.eq(hash))
        .one(db)
        .await?
    {
        let tx = db.begin().await?;
        lock_user(&tx, row.user_id).await?;
        revoke_family(&tx, row.family_id).await?;
        end_access_tokens(&tx, row.user_id).await?;
        tx.commit().await?;
        cache.invalidate(Invalidation::User(row.user_id));
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
    cache: &AuthCache,
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
        end_access_tokens(&tx, user_id).await?;
        let event = Event::account("user.password_changed", Some(user_id), true, json!({}));
        audit::record(&tx, &ctx.as_actor(user_id), event).await?;
    }
    tx.commit().await?;
    cache.invalidate(Invalidation::User(user_id));
    Ok(updated)
}

/// Revokes every refresh token of the account (all devices, all logins) and ends every access
/// token at once ([`end_access_tokens`]), audited as `auth.logout_all`. Returns how many
/// refresh tokens were revoked.
pub async fn logout_all(
    db: &DatabaseConnection,
    cache: &AuthCache,
    user_id: Uuid,
    ctx: &AuditCtx,
) -> AppResult<u64> {
    let tx = db.begin().await?;
    lock_user(&tx, user_id).await?;
    let revoked = refresh_token::Entity::update_many()
        .col_expr(refresh_token::Column::RevokedAt, Expr::value(Utc::now()))
        .filter(refresh_token::Column::UserId.eq(user_id))
        .filter(refresh_token::Column::RevokedAt.is_null())
        .exec(&tx)
        .await?
        .rows_affected;
    end_access_tokens(&tx, user_id).await?;
    let event = Event::account(
        "auth.logout_all",
        Some(user_id),
        true,
        json!({ "revoked_tokens": revoked }),
    );
    audit::record(&tx, &ctx.as_actor(user_id), event).await?;
    tx.commit().await?;
    cache.invalidate(Invalidation::User(user_id));
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
/// scrubbed. In the same transaction, every API key and pending invitation the user made (and
/// those made by those keys) is revoked in each org they were in ([`super::grants::enforce`];
/// `cache` loses the revoked keys after the commit). Errors: 409 `last_owner` while the user
/// is the only owner of an org (naming it); 401 when the account is already gone.
pub async fn erase(
    db: &DatabaseConnection,
    rbac: &Rbac,
    cache: &AuthCache,
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
                ProblemCode::LastOwner,
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
    // Before the audit rows are pseudonymised below, so these revocations are too (the user
    // is their actor).
    let mut enforced = super::grants::Enforced::default();
    for m in &held {
        let revoked =
            super::grants::enforce(&tx, m.org_id, &ctx.as_actor(user_id), "user.erased").await?;
        enforced.extend(revoked);
    }
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
    end_access_tokens(&tx, user_id).await?;
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
    cache.invalidate(Invalidation::User(user_id));
    rbac.apply(changes).await;
    enforced.apply(rbac, cache).await;
    Ok(pseudonym)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names() {
        assert_eq!(normalize_display_name("n", "  Ada  ").unwrap(), "Ada");
        assert!(normalize_display_name("n", "   ").is_err());
        assert!(normalize_display_name("n", "a\u{0}b").is_err());
        assert!(normalize_display_name("n", &"x".repeat(201)).is_err());
    }
}
