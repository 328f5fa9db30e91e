//! `api_keys`: org-scoped machine credentials `ad_<prefix>_<secret>`. Only the SHA-256 of
//! the secret is stored; the prefix is the lookup key.

use sea_orm::entity::prelude::*;

/// An API key row.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "api_keys")]
pub struct Model {
    /// UUIDv7.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// The only org the key acts in.
    pub org_id: Uuid,
    /// Human label.
    pub name: String,
    /// Public lookup part of the key (`ad_<prefix>_…`), unique.
    #[sea_orm(unique)]
    pub prefix: String,
    /// Hex SHA-256 of the secret part.
    pub secret_hash: String,
    /// Role name (built-in or custom) the key acts with.
    pub role: String,
    /// The member who created it (`None` when a key did).
    pub created_by: Option<Uuid>,
    /// The key that created it, when a key did. The creator's current rights bound the key for
    /// its whole life (see `domain::grants`).
    pub created_by_key: Option<Uuid>,
    /// Creation time (UTC).
    pub created_at: DateTimeUtc,
    /// Expiry (UTC); `None` never expires.
    pub expires_at: Option<DateTimeUtc>,
    /// Revocation time (UTC).
    pub revoked_at: Option<DateTimeUtc>,
    /// Last authenticated use (UTC), updated at most once a minute.
    pub last_used_at: Option<DateTimeUtc>,
}

/// No relations are navigated through SeaORM.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
