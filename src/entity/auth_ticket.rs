//! `auth_tickets`: short-lived single-use secrets stored as SHA-256: OIDC `state` records
//! (`kind = "oidc_state"`) and one-time login codes (`kind = "login_code"`).

use sea_orm::entity::prelude::*;

/// A ticket row; deleted when spent.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "auth_tickets")]
pub struct Model {
    /// Hex SHA-256 of the secret.
    #[sea_orm(primary_key, auto_increment = false)]
    pub hash: String,
    /// `oidc_state` or `login_code`.
    pub kind: String,
    /// The user a login code logs in.
    pub user_id: Option<Uuid>,
    /// Kind-specific data (for `oidc_state`: provider, nonce, PKCE verifier, redirect URI).
    pub data: Json,
    /// Expiry (UTC).
    pub expires_at: DateTimeUtc,
    /// Creation time (UTC).
    pub created_at: DateTimeUtc,
}

/// No relations are navigated through SeaORM.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
