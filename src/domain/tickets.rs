//! One-time tickets (`auth_tickets`): short-lived, single-use bearer secrets of a [`Kind`],
//! optionally for a user, with kind-specific JSON data. Only the secret's SHA-256 is
//! stored; the secret itself is returned once by [`issue`]. [`spend`] consumes a ticket
//! atomically (of two concurrent spends, one gets it) and refuses unknown, spent, expired
//! and wrong-kind secrets alike; [`purge`] deletes expired rows (run by the reaper).
//!
//! Used today for OIDC `state` records and login codes ([`super::oidc`]) and desktop tickets
//! ([`super::viewers`]). Not here:
//! invitations ([`super::invitations`]) have their own table, because an invitation stays
//! listed after use (accepted, revoked, expired are told apart and audited), unlike a ticket,
//! which disappears when spent.

use chrono::{DateTime, Duration, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
};
use serde::Serialize;
use uuid::Uuid;

use crate::{
    auth::secrets,
    entity::auth_ticket,
    error::{AppError, AppResult},
};

/// A kind of ticket: its `auth_tickets.kind` and the prefix of its secrets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Kind {
    /// Stored in `auth_tickets.kind` (at most 32 characters); a ticket is only spent as its
    /// own kind.
    pub name: &'static str,
    /// The secrets' prefix (`<prefix>_` + 43 base64url characters, 256 bits), so a leaked
    /// secret says what it is.
    pub prefix: &'static str,
}

/// A ticket just issued.
#[derive(Debug)]
pub struct Issued {
    /// The secret, shown once; only its hash is stored.
    pub secret: String,
    /// When it stops being spendable (UTC).
    pub expires_at: DateTime<Utc>,
}

/// A spent ticket: what was stored with it.
#[derive(Clone, Debug)]
pub struct Ticket {
    /// The user it was issued for, if any.
    pub user_id: Option<Uuid>,
    /// The kind-specific data given to [`issue`].
    pub data: serde_json::Value,
    /// When it was issued (UTC).
    pub created_at: DateTime<Utc>,
    /// When it would have expired (UTC; always after the spend).
    pub expires_at: DateTime<Utc>,
}

/// Issues a ticket of `kind` for `user_id` (if any), carrying `data` (any serializable value;
/// `&()` for none), spendable once within `ttl_s` seconds, and returns its secret. Works in
/// the caller's transaction when `db` is one. Errors: database errors; 500 when `data` does
/// not serialize.
pub async fn issue(
    db: &impl ConnectionTrait,
    kind: Kind,
    user_id: Option<Uuid>,
    data: &impl Serialize,
    ttl_s: u64,
) -> AppResult<Issued> {
    let data = serde_json::to_value(data).map_err(|e| AppError::Internal(e.into()))?;
    let (secret, hash) = secrets::new_token(kind.prefix);
    let now = Utc::now();
    let expires_at = now + Duration::seconds(ttl_s as i64);
    auth_ticket::Entity::insert(auth_ticket::ActiveModel {
        hash: Set(hash),
        kind: Set(kind.name.to_owned()),
        user_id: Set(user_id),
        data: Set(data),
        expires_at: Set(expires_at),
        created_at: Set(now),
    })
    .exec_without_returning(db)
    .await?;
    Ok(Issued { secret, expires_at })
}

/// Spends the ticket whose secret is `secret`: deletes it and returns it when it existed,
/// was of `kind` and had not expired; `None` otherwise (unknown, already spent, expired — an
/// expired one is deleted too — or of another kind, which is left alone). Of two concurrent
/// spends, one gets it. Errors: database errors.
pub async fn spend(db: &DatabaseConnection, kind: Kind, secret: &str) -> AppResult<Option<Ticket>> {
    Ok(take(db, kind, secret)
        .await?
        .filter(|t| t.expires_at > Utc::now()))
}

/// As [`spend`], but an expired ticket is returned too (and deleted), so the caller can tell
/// "expired" from "never issued or already spent" (and audit it): check `expires_at`.
/// Errors: database errors.
pub async fn take(db: &DatabaseConnection, kind: Kind, secret: &str) -> AppResult<Option<Ticket>> {
    let hash = secrets::hash(secret);
    let tx = super::begin_write(db).await?;
    let Some(row) = auth_ticket::Entity::find_by_id(hash.clone())
        .filter(auth_ticket::Column::Kind.eq(kind.name))
        .one(&tx)
        .await?
    else {
        return Ok(None);
    };
    let gone = auth_ticket::Entity::delete_by_id(hash)
        .exec(&tx)
        .await?
        .rows_affected;
    tx.commit().await?;
    Ok((gone == 1).then_some(Ticket {
        user_id: row.user_id,
        data: row.data,
        created_at: row.created_at,
        expires_at: row.expires_at,
    }))
}

/// Deletes every unspent ticket of `kind` issued for `user_id` and returns how many (none of
/// them can be spent afterwards). Works in the caller's transaction when `db` is one.
/// Errors: database errors.
pub async fn revoke_for_user(
    db: &impl ConnectionTrait,
    kind: Kind,
    user_id: Uuid,
) -> AppResult<u64> {
    Ok(auth_ticket::Entity::delete_many()
        .filter(auth_ticket::Column::Kind.eq(kind.name))
        .filter(auth_ticket::Column::UserId.eq(user_id))
        .exec(db)
        .await?
        .rows_affected)
}

/// Deletes expired tickets of every kind and returns how many. Errors: database errors.
pub async fn purge(db: &impl ConnectionTrait) -> AppResult<u64> {
    Ok(auth_ticket::Entity::delete_many()
        .filter(auth_ticket::Column::ExpiresAt.lt(Utc::now()))
        .exec(db)
        .await?
        .rows_affected)
}

#[cfg(test)]
mod tests {
    use migration::MigratorTrait;
    use sea_orm::Database;
    use serde_json::json;

    use super::*;

    const A: Kind = Kind {
        name: "test_a",
        prefix: "ta",
    };
    const B: Kind = Kind {
        name: "test_b",
        prefix: "tb",
    };

    #[tokio::test]
    async fn tickets_are_spent_once_as_their_own_kind_before_expiry() {
        let db = Database::connect("sqlite::memory:").await.unwrap();
        migration::Migrator::up(&db, None).await.unwrap();
        let user = Uuid::now_v7();

        let issued = issue(&db, A, Some(user), &json!({ "x": 1 }), 60)
            .await
            .unwrap();
        assert!(issued.secret.starts_with("ta_"));
        assert!(spend(&db, B, &issued.secret).await.unwrap().is_none());
        let t = spend(&db, A, &issued.secret).await.unwrap().unwrap();
        assert_eq!(t.user_id, Some(user));
        assert_eq!(t.data, json!({ "x": 1 }));
        assert_eq!(t.expires_at, issued.expires_at);
        assert!(spend(&db, A, &issued.secret).await.unwrap().is_none());
        assert!(spend(&db, A, "ta_unknown").await.unwrap().is_none());

        let expired = issue(&db, B, None, &(), 0).await.unwrap();
        let kept = issue(&db, B, None, &(), 60).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        assert_eq!(purge(&db).await.unwrap(), 1);
        assert!(spend(&db, B, &expired.secret).await.unwrap().is_none());
        assert!(spend(&db, B, &kept.secret).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn an_expired_ticket_is_refused() {
        let db = Database::connect("sqlite::memory:").await.unwrap();
        migration::Migrator::up(&db, None).await.unwrap();
        let issued = issue(&db, A, None, &(), 0).await.unwrap();
        assert!(spend(&db, A, &issued.secret).await.unwrap().is_none());
        assert_eq!(purge(&db).await.unwrap(), 0, "spending deleted it");
    }
}
