//! Verifying a presented API key `ad_<prefix>_<secret>` (the credential side of API keys;
//! creating, listing and revoking them is `domain::api_keys`).
//!
//! * The prefix finds the row with one indexed read; the secret is compared as SHA-256 in
//!   constant time ([`crate::auth::secrets`]); no argon2 on the request path.
//! * A verified key is cached per node for `api_key_cache_ttl_s` ([`KeyCache`]), so the hot
//!   path costs a hash and a map lookup, no database read. Revocation evicts at once on the
//!   node that revoked; other nodes stop accepting the key within the TTL. Expiry is checked
//!   on every request, cached or not.
//! * `last_used_at` is written at most once a minute per key, by a conditional `UPDATE`
//!   issued only when the known value is older: most requests write nothing.

use chrono::{DateTime, Duration, Utc};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, sea_query::Expr};
use uuid::Uuid;

use crate::{
    auth::{Subject, secrets},
    entity::api_key,
    error::{AppError, AppResult},
};

/// `last_used_at` is refreshed when older than this (s).
pub const LAST_USED_RESOLUTION_S: i64 = 60;

fn bad_key(detail: &str) -> AppError {
    AppError::invalid_token(detail)
}

#[derive(Clone)]
struct Cached {
    subject: Subject,
    key_id: Uuid,
    expires_at: Option<DateTime<Utc>>,
    last_used_at: Option<DateTime<Utc>>,
    verified_at: std::time::Instant,
}

/// Most entries kept; past it, stale entries are dropped (and, if still full, all of them).
const CACHE_MAX: usize = 10_000;

/// Per-node cache of verified API keys, keyed by the SHA-256 of the whole presented key (a
/// different secret with the same prefix never hits). Entries live `ttl`; revocation on
/// this node evicts at once ([`KeyCache::evict`]).
pub struct KeyCache {
    ttl: std::time::Duration,
    entries: std::sync::Mutex<std::collections::HashMap<String, Cached>>,
}

impl KeyCache {
    /// A cache whose entries live `ttl` (zero: no caching).
    pub fn new(ttl: std::time::Duration) -> Self {
        Self {
            ttl,
            entries: std::sync::Mutex::new(std::collections::HashMap::new()),
        }
    }

    fn get(&self, hash: &str) -> Option<Cached> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(hash)
            .filter(|c| c.verified_at.elapsed() < self.ttl)
            .cloned()
    }

    fn put(&self, hash: String, entry: Cached) {
        if self.ttl.is_zero() {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= CACHE_MAX {
            let ttl = self.ttl;
            entries.retain(|_, c| c.verified_at.elapsed() < ttl);
            if entries.len() >= CACHE_MAX {
                entries.clear();
            }
        }
        entries.insert(hash, entry);
    }

    fn touch(&self, hash: &str, at: DateTime<Utc>) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = entries.get_mut(hash) {
            c.last_used_at = Some(at);
        }
    }

    /// Forgets every cached verification of key `key_id` (after a revocation).
    pub fn evict(&self, key_id: Uuid) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.retain(|_, c| c.key_id != key_id);
    }
}

/// Verifies an API key and returns the subject it acts as: from `cache` when this node
/// verified the same key within the TTL, else from the database. Errors: 401
/// `invalid_token` for a malformed, unknown, wrong, revoked or expired key (the detail says
/// which of the last two).
pub async fn authenticate(
    db: &DatabaseConnection,
    cache: &KeyCache,
    key: &str,
) -> AppResult<Subject> {
    let Some((prefix, secret)) = secrets::parse_api_key(key) else {
        return Err(bad_key("malformed API key: expected ad_<prefix>_<secret>"));
    };
    let now = Utc::now();
    let full_hash = secrets::hash(key);
    if let Some(hit) = cache.get(&full_hash) {
        if hit.expires_at.is_some_and(|e| e <= now) {
            return Err(bad_key("the API key has expired"));
        }
        record_use(db, cache, &full_hash, hit.key_id, hit.last_used_at, now).await;
        return Ok(hit.subject);
    }
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
    cache.put(
        full_hash.clone(),
        Cached {
            subject: subject.clone(),
            key_id: row.id,
            expires_at: row.expires_at,
            last_used_at: row.last_used_at,
            verified_at: std::time::Instant::now(),
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
    cache: &KeyCache,
    hash: &str,
    key_id: Uuid,
    last_used_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) {
    let stale = now - Duration::seconds(LAST_USED_RESOLUTION_S);
    if last_used_at.is_some_and(|t| t >= stale) {
        return;
    }
    cache.touch(hash, now);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key_id: Uuid) -> Cached {
        Cached {
            subject: Subject::ApiKey {
                id: key_id,
                org_id: Uuid::now_v7(),
                role: "viewer".into(),
            },
            key_id,
            expires_at: None,
            last_used_at: None,
            verified_at: std::time::Instant::now(),
        }
    }

    #[test]
    fn cache_entries_lapse_and_revocation_evicts() {
        let cache = KeyCache::new(std::time::Duration::from_secs(60));
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        cache.put("ha".into(), entry(a));
        cache.put("hb".into(), entry(b));
        assert!(cache.get("ha").is_some());
        cache.evict(a);
        assert!(cache.get("ha").is_none());
        assert!(cache.get("hb").is_some());
        let lapsed = KeyCache::new(std::time::Duration::ZERO);
        lapsed.put("ha".into(), entry(a));
        assert!(lapsed.get("ha").is_none(), "a zero TTL caches nothing");
        let mut old = entry(a);
        old.verified_at -= std::time::Duration::from_secs(120);
        cache.put("old".into(), old);
        assert!(
            cache.get("old").is_none(),
            "entries past the TTL are not served"
        );
    }
}
