//! `invitations`: one-time invitations to join an org with a role. Only the SHA-256 of the
//! token is stored.

use sea_orm::entity::prelude::*;

/// An invitation row.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "invitations")]
pub struct Model {
    /// UUIDv7.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// The org to join.
    pub org_id: Uuid,
    /// Normalised email address the invitation is for.
    pub email: String,
    /// Role granted on acceptance.
    pub role: String,
    /// Hex SHA-256 of the token.
    #[sea_orm(unique)]
    pub token_hash: String,
    /// The member who invited (`None` when an API key did).
    pub invited_by: Option<Uuid>,
    /// The API key that invited, when a key did.
    pub invited_by_key: Option<Uuid>,
    /// Creation time (UTC).
    pub created_at: DateTimeUtc,
    /// Expiry (UTC).
    pub expires_at: DateTimeUtc,
    /// When it was accepted.
    pub accepted_at: Option<DateTimeUtc>,
    /// Who accepted it.
    pub accepted_by: Option<Uuid>,
    /// When it was revoked.
    pub revoked_at: Option<DateTimeUtc>,
}

/// No relations are navigated through SeaORM.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
