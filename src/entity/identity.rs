//! `identities`: external OpenID Connect identities `(provider, subject)` linked to users.

use sea_orm::entity::prelude::*;

/// An identity row; `(provider, subject)` is unique.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "identities")]
pub struct Model {
    /// UUIDv7.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// The linked user.
    pub user_id: Uuid,
    /// Configured provider name.
    pub provider: String,
    /// The provider's `sub` claim.
    pub subject: String,
    /// The email the provider reported at the last login.
    pub email: Option<String>,
    /// When the identity was linked (UTC).
    pub created_at: DateTimeUtc,
    /// Last login through it (UTC).
    pub last_login_at: DateTimeUtc,
}

/// No relations are navigated through SeaORM.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
