//! `Idempotency-Key` records (ARCHITECTURE §4): per `(scope, key)` — the scope is the
//! principal's name (`user:<id>` or `key:<id>`), so one caller never sees another's stored
//! response — a fingerprint of the request, its state (`in_flight` under a lock, then
//! `completed` with the stored response), and a retention (`idempotency_ttl_s`).
//!
//! The HTTP side (which operations, reading the header, replaying) is
//! `http::idempotency`; this module only stores.

use chrono::Utc;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    sea_query::Expr,
};

use crate::entity::idempotency_key;

/// What [`begin`] found for a key.
pub enum Begin {
    /// The key is new (or abandoned and taken over): run the request, then [`complete`] or
    /// [`release`].
    Run,
    /// The same request finished before: replay its stored response.
    Replay(Box<idempotency_key::Model>),
    /// The key was used with a different request (another fingerprint).
    Reused,
    /// The first request with this key is still running.
    InFlight,
}

/// Records the start of a request under `(scope, key)` with fingerprint `fp`, unless the key
/// is known: see [`Begin`]. A record whose lock (`lock_s`) lapsed is taken over
/// (compare-and-set), one past its retention (`ttl_s`) is replaced. Errors: database errors.
pub async fn begin(
    db: &DatabaseConnection,
    scope: &str,
    key: &str,
    fp: &str,
    ttl_s: u64,
    lock_s: u64,
) -> Result<Begin, sea_orm::DbErr> {
    for _ in 0..3 {
        let now = Utc::now();
        let row = idempotency_key::ActiveModel {
            principal: Set(scope.to_owned()),
            key: Set(key.to_owned()),
            fingerprint: Set(fp.to_owned()),
            status: Set("in_flight".into()),
            response_status: Set(None),
            response_headers: Set(None),
            response_body: Set(None),
            authorized: Set(None),
            locked_until: Set(now + chrono::Duration::seconds(lock_s as i64)),
            created_at: Set(now),
            expires_at: Set(now + chrono::Duration::seconds(ttl_s as i64)),
        };
        match idempotency_key::Entity::insert(row)
            .exec_without_returning(db)
            .await
        {
            Ok(_) => return Ok(Begin::Run),
            Err(e)
                if matches!(
                    e.sql_err(),
                    Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
                ) => {}
            Err(e) => return Err(e),
        }
        let Some(existing) =
            idempotency_key::Entity::find_by_id((scope.to_owned(), key.to_owned()))
                .one(db)
                .await?
        else {
            continue; // Deleted meanwhile: try again.
        };
        if existing.expires_at <= now {
            release(db, scope, key).await?;
            continue;
        }
        if existing.fingerprint != fp {
            return Ok(Begin::Reused);
        }
        if existing.status == "completed" {
            return Ok(Begin::Replay(Box::new(existing)));
        }
        if existing.locked_until <= now {
            // Abandoned by a crashed request: take it over (compare-and-set on the lock).
            let taken = idempotency_key::Entity::update_many()
                .col_expr(
                    idempotency_key::Column::LockedUntil,
                    Expr::value(now + chrono::Duration::seconds(lock_s as i64)),
                )
                .filter(idempotency_key::Column::Principal.eq(scope))
                .filter(idempotency_key::Column::Key.eq(key))
                .filter(idempotency_key::Column::LockedUntil.eq(existing.locked_until))
                .exec(db)
                .await?
                .rows_affected;
            if taken == 1 {
                return Ok(Begin::Run);
            }
        }
        return Ok(Begin::InFlight);
    }
    Ok(Begin::InFlight)
}

/// Forgets `(scope, key)`, so a retry runs again (after a 5xx or a 429). Errors: database
/// errors.
pub async fn release(
    db: &DatabaseConnection,
    scope: &str,
    key: &str,
) -> Result<(), sea_orm::DbErr> {
    idempotency_key::Entity::delete_many()
        .filter(idempotency_key::Column::Principal.eq(scope))
        .filter(idempotency_key::Column::Key.eq(key))
        .exec(db)
        .await?;
    Ok(())
}

/// Deletes records past their retention. Errors: database errors.
pub async fn purge_expired(db: &impl ConnectionTrait) -> Result<u64, sea_orm::DbErr> {
    Ok(idempotency_key::Entity::delete_many()
        .filter(idempotency_key::Column::ExpiresAt.lte(Utc::now()))
        .exec(db)
        .await?
        .rows_affected)
}

/// A finished request's outcome, kept for replay.
#[derive(Clone, Debug)]
pub struct Stored {
    /// The response's status code.
    pub status: u16,
    /// The kept response headers, `{name: value}`.
    pub headers: serde_json::Value,
    /// The response body bytes.
    pub body: Vec<u8>,
    /// What the request was authorized for, `[{"org_id": …, "permission": …}]`: a replay is
    /// authorized for the same again first.
    pub authorized: serde_json::Value,
}

/// Stores the finished request's outcome under `(scope, key)` for replay. Errors: database
/// errors.
pub async fn complete(
    db: &DatabaseConnection,
    scope: &str,
    key: &str,
    stored: Stored,
) -> Result<(), sea_orm::DbErr> {
    idempotency_key::Entity::update_many()
        .col_expr(idempotency_key::Column::Status, Expr::value("completed"))
        .col_expr(
            idempotency_key::Column::ResponseStatus,
            Expr::value(i32::from(stored.status)),
        )
        .col_expr(
            idempotency_key::Column::ResponseHeaders,
            Expr::value(stored.headers),
        )
        .col_expr(
            idempotency_key::Column::ResponseBody,
            Expr::value(stored.body),
        )
        .col_expr(
            idempotency_key::Column::Authorized,
            Expr::value(stored.authorized),
        )
        .filter(idempotency_key::Column::Principal.eq(scope))
        .filter(idempotency_key::Column::Key.eq(key))
        .exec(db)
        .await?;
    Ok(())
}
