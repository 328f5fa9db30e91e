//! `users`: a person. `email` is stored normalised (trimmed, lower-case) and unique.

use sea_orm::entity::prelude::*;

/// A user row.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "users")]
pub struct Model {
    /// UUIDv7.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Normalised email (lower-case), unique.
    #[sea_orm(unique)]
    pub email: String,
    /// Display name, 1–200 characters.
    pub display_name: String,
    /// PHC string of the argon2id hash; `None` for accounts without a password.
    pub password_hash: Option<String>,
    /// Set when the account is disabled; disabled users cannot log in or refresh.
    pub disabled_at: Option<DateTimeUtc>,
    /// Creation time (UTC).
    pub created_at: DateTimeUtc,
    /// Last update time (UTC).
    pub updated_at: DateTimeUtc,
    /// Set when the account was erased (`me.delete`): email, name and identities are gone.
    pub deleted_at: Option<DateTimeUtc>,
    /// When the owner proved they receive mail at `email` (a one-time verification link, or an
    /// OIDC provider vouching for it at the first SSO login); `None` = never proven. Only a
    /// proven address may accept invitations or be linked to an SSO identity as is.
    pub email_verified_at: Option<DateTimeUtc>,
    /// The access-token generation: tokens carry the value they were issued in (`gen`) and are
    /// refused once it moved on (logout, logout-all, password change, refresh-token reuse,
    /// disable, the SSO takeover guard, erasure).
    pub token_generation: i64,
}

/// No relations are navigated through SeaORM; joins are written where they are used.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
