//! `refresh_tokens`: opaque refresh tokens, stored as SHA-256 hashes, grouped in families
//! for rotation and reuse detection (RFC 9700 §4.14).

use sea_orm::entity::prelude::*;

/// A refresh token row.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "refresh_tokens")]
pub struct Model {
    /// UUIDv7.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// The user the token was issued to.
    pub user_id: Uuid,
    /// All tokens rotated from one login share a family; reuse revokes the family.
    pub family_id: Uuid,
    /// Hex SHA-256 of the token; the token itself is never stored.
    #[sea_orm(unique)]
    pub token_hash: String,
    /// Expiry (UTC).
    pub expires_at: DateTimeUtc,
    /// Set when the token was spent by a refresh; presenting it again is reuse.
    pub used_at: Option<DateTimeUtc>,
    /// Set when the family was revoked (logout, reuse, password change).
    pub revoked_at: Option<DateTimeUtc>,
    /// Issue time (UTC).
    pub created_at: DateTimeUtc,
}

/// No relations are navigated through SeaORM.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
