//! Verifying a presented API key `ad_<prefix>_<secret>` (the credential side of API keys;
//! creating, listing and revoking them is `domain::api_keys`).
//!
//! * The prefix finds the row with one indexed read; the secret is compared as SHA-256 in
//!   constant time ([`crate::auth::secrets`]); no argon2 on the request path.
//! * A verified key is kept in the node's [`AuthCache`], keyed by the SHA-256 of the whole
//!   presented key (a different secret with the same prefix never hits), so the hot path
//!   costs a hash and a map lookup, no database read. Revoking, deleting or changing a key
//!   invalidates it on every node through the bus (see [`crate::auth::cache`]). Expiry is
//!   checked on every request, cached or not.
//! * `last_used_at` is written at most once a minute per key, by a conditional `UPDATE`
//!   issued only when the known value is older: most requests write nothing.

use chrono::{DateTime, Duration, Utc};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, sea_query::Expr};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::{
    auth::{
        Subject,
        cache::{AuthCache, VerifiedKey},
        secrets,
    },
    entity::api_key,
    error::{AppError, AppResult},
};

/// `last_used_at` is refreshed when older than this (s).
pub const LAST_USED_RESOLUTION_S: i64 = 60;

fn bad_key(detail: &str) -> AppError {
    AppError::invalid_token(detail)
}

/// Verifies an API key and returns the subject it acts as: from `cache` when this node
/// verified the same key and nothing invalidated it since, else from the database. Errors: 401
/// `invalid_token` for a malformed, unknown, wrong, revoked or expired key (the detail says
/// which of the last two).
pub async fn authenticate(
    db: &DatabaseConnection,
    cache: &AuthCache,
    key: &str,
) -> AppResult<Subject> {
    let Some((prefix, secret)) = secrets::parse_api_key(key) else {
        return Err(bad_key("malformed API key: expected ad_<prefix>_<secret>"));
    };
    let now = Utc::now();
    let full_hash: [u8; 32] = Sha256::digest(key.as_bytes()).into();
    if let Some(hit) = cache.key(&full_hash) {
        if hit.expires_at.is_some_and(|e| e <= now) {
            return Err(bad_key("the API key has expired"));
        }
        record_use(db, cache, &full_hash, hit.key_id, hit.last_used_at, now).await;
        return Ok(hit.subject);
    }
    let fill = cache.begin();
    let row = api_key::Entity::find()
        .filter(api_key::Column::Prefix.eq(prefix))
        .one(db)
        .await?;
    // Hash even when the prefix is unknown, so both failures cost the same.
    let presented = secrets::hash(secret);
    let Some(row) = row else {
        return Err(bad_key("invalid API key"));
    };
    if !secrets::hashes_equal(&presented, &row.secret_hash) {
        return Err(bad_key("invalid API key"));
    }
    if row.revoked_at.is_some() {
        return Err(bad_key("the API key was revoked"));
    }
    if row.expires_at.is_some_and(|e| e <= now) {
        return Err(bad_key("the API key has expired"));
    }
    let subject = Subject::ApiKey {
        id: row.id,
        org_id: row.org_id,
        role: row.role,
    };
    cache.put_key(
        fill,
        full_hash,
        VerifiedKey {
            subject: subject.clone(),
            key_id: row.id,
            expires_at: row.expires_at,
            last_used_at: row.last_used_at,
        },
    );
    record_use(db, cache, &full_hash, row.id, row.last_used_at, now).await;
    Ok(subject)
}

/// Writes `last_used_at` when the known value is older than [`LAST_USED_RESOLUTION_S`].
/// Conditional, so concurrent requests (and nodes) write once; a failure is logged, never
/// fails the request.
async fn record_use(
    db: &DatabaseConnection,
    cache: &AuthCache,
    hash: &[u8; 32],
    key_id: Uuid,
    last_used_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) {
    let stale = now - Duration::seconds(LAST_USED_RESOLUTION_S);
    if last_used_at.is_some_and(|t| t >= stale) {
        return;
    }
    cache.touch_key(hash, now);
    let r = api_key::Entity::update_many()
        .col_expr(api_key::Column::LastUsedAt, Expr::value(now))
        .filter(api_key::Column::Id.eq(key_id))
        .filter(
            sea_orm::Condition::any()
                .add(api_key::Column::LastUsedAt.is_null())
                .add(api_key::Column::LastUsedAt.lt(stale)),
        )
        .exec(db)
        .await;
    if let Err(e) = r {
        tracing::warn!(error = %e, %key_id, "could not record API key use");
    }
}
