//! `blobs`: the database blob store's bytes by key (`blob::DatabaseBlobs`). Keys are chosen
//! by the writer (`<org_id>/<session_id>/<artifact_id>` for artifacts); not a tenant table
//! itself, but every key starts with the org id it belongs to.

use sea_orm::entity::prelude::*;

/// One stored blob.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "blobs")]
pub struct Model {
    /// The key (`<org_id>/<session_id>/<artifact_id>` for artifacts).
    #[sea_orm(primary_key, auto_increment = false)]
    pub key: String,
    /// The bytes (BYTEA on PostgreSQL, BLOB on SQLite).
    pub data: Vec<u8>,
    /// When it was written (UTC).
    pub created_at: DateTimeUtc,
}

/// No relations are navigated through SeaORM.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
